//! Group commit of one-to-one messages (not in the C++, whose worker
//! stores each `CID_MSG_DATA` alone: one `INSERT`, its own commit and
//! several Redis round trips per message; see `ProxyConn.cpp` and
//! `business/MessageContent.cpp`).
//!
//! The loop hands every one-to-one `CID_MSG_DATA` to a lane chosen by the
//! user pair ([`lane_of`]), so the messages of a pair always go through
//! the same lane, in arrival order. A lane is a queue of pending messages
//! and a fixed worker of the pool (`ThreadPool::add_task_to`): each
//! message also queues a drain task on that worker, and the task takes
//! whatever the lane holds (up to [`MAX_BATCH`]) and stores it as one
//! batch (`message_batch`). It never waits for more: when the lane holds
//! one message the batch is that one message, stored as before, so a
//! lightly loaded server answers as fast as it did; while the worker is
//! busy storing, the next messages gather in the lane and go together.
//! A drain task that finds the lane empty (an earlier task took its
//! message) ends at once.
//!
//! Each message keeps its own place in the work queue (its bounds and
//! backpressure are untouched) and its own reply; the replies of a batch
//! go back to the loop in one hand-over.

use crate::business::message_batch;
use crate::metrics::Busy;
use crate::services::Services;
use crate::state::{Completion, CompletionBatch, WorkMetrics};
use base::pdu::ImPdu;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::MsgType;
use tt_proto::IM::Message::IMMsgData;

/// Most messages stored in one batch: one multi-row `INSERT` per message
/// table of at most this many rows.
pub const MAX_BATCH: usize = 64;

/// Most lanes: more lanes store more batches at once, fewer make bigger
/// batches (measured on 2 cores: see the README's figures).
pub const MAX_LANES: usize = 2;

/// Lanes for `workers` workers: up to [`MAX_LANES`], leaving at least one
/// worker without a lane (when there are two or more) to make new pairs,
/// whose named locks may wait seconds: a lane's worker held up by one
/// would hold up every message of the lane.
pub fn lane_count(workers: usize) -> usize {
    workers.saturating_sub(1).clamp(1, MAX_LANES)
}

/// A message waiting in its lane.
pub struct Pending {
    /// The request, for its seq number and for the handler's path.
    pub pdu: ImPdu,
    /// Its body, decoded by the loop to choose the lane.
    pub msg: IMMsgData,
    /// Brings the reply back and frees the request's place.
    pub completion: Completion,
}

/// The lanes of one db_proxy: a bounded number of queues, each bound by
/// the work queue's limits (every pending message holds a place there).
pub struct MessageLanes {
    lanes: Vec<Mutex<VecDeque<Pending>>>,
}

/// The lane of a `CID_MSG_DATA` body among `lanes`: one-to-one messages
/// by their (unordered) user pair; `None` for anything else (group
/// messages, a body that does not decode), which goes the usual way.
pub fn lane_of(pdu: &ImPdu, lanes: usize) -> Option<(usize, IMMsgData)> {
    if pdu.command_id() != cid::MSG_DATA || lanes == 0 {
        return None;
    }
    let msg: IMMsgData = pdu.msg().ok()?;
    if !matches!(
        msg.msg_type,
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_SINGLE_AUDIO
    ) {
        return None;
    }
    let (a, b) = (msg.from_user_id, msg.to_session_id);
    let (small, big) = if a <= b { (a, b) } else { (b, a) };
    // A cheap mix of both ids (a multiplicative hash), so that pairs
    // sharing a user still spread over the lanes.
    let h = (u64::from(small) << 32 | u64::from(big)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Some(((h >> 32) as usize % lanes, msg))
}

impl MessageLanes {
    /// `n` empty lanes (at least one).
    pub fn new(n: usize) -> MessageLanes {
        MessageLanes {
            lanes: (0..n.max(1)).map(|_| Mutex::new(VecDeque::new())).collect(),
        }
    }

    /// Number of lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Queues a message in `lane` (the loop then queues a drain task on
    /// the lane's worker).
    pub fn push(&self, lane: usize, p: Pending) {
        self.lanes[lane % self.lanes.len()].lock().push_back(p);
    }

    /// On the lane's worker: stores what `lane` holds now, at most
    /// [`MAX_BATCH`] messages, and hands their replies back. Nothing to do
    /// when an earlier drain took them.
    pub fn drain(&self, lane: usize, services: &Services, metrics: &WorkMetrics) {
        let batch: Vec<Pending> = {
            let mut q = self.lanes[lane % self.lanes.len()].lock();
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let busy = Busy::new(&metrics.busy_workers);
        metrics.batches.fetch_add(1, Ordering::Relaxed);
        metrics
            .batched_messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (requests, completions): (Vec<(ImPdu, IMMsgData)>, Vec<Completion>) = batch
            .into_iter()
            .map(|p| ((p.pdu, p.msg), p.completion))
            .unzip();
        // Replies go back together, even if storing panics.
        let mut completions = CompletionBatch::new(completions);
        let replies = message_batch::send_messages(services, requests);
        drop(busy);
        let took = started.elapsed();
        for (i, reply) in replies.into_iter().enumerate() {
            metrics.latency.observe(cid::MSG_DATA, took);
            match reply {
                Ok(Some(pdu)) => completions.set_reply(i, pdu.into_bytes()),
                Ok(None) => {}
                Err(e) => log::warn!("command {:#06x}: {e}", cid::MSG_DATA),
            }
        }
        drop(completions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_left_without_a_lane_to_make_pairs() {
        assert_eq!(lane_count(0), 1);
        assert_eq!(lane_count(1), 1);
        assert_eq!(lane_count(2), 1);
        assert_eq!(lane_count(3), 2);
        assert_eq!(lane_count(8), MAX_LANES);
    }

    fn msg_pdu(from: u32, to: u32, msg_type: MsgType) -> ImPdu {
        let m = IMMsgData {
            from_user_id: from,
            to_session_id: to,
            msg_id: 0,
            create_time: 1,
            msg_type,
            msg_data: b"hi".to_vec(),
            attach_data: None,
        };
        ImPdu::for_msg(1, &m).unwrap()
    }

    #[test]
    fn both_directions_of_a_pair_share_a_lane_and_groups_go_the_usual_way() {
        for lanes in 1..=4 {
            for (a, b) in [(1, 2), (7, 300), (100_000, 3)] {
                let (x, _) = lane_of(&msg_pdu(a, b, MsgType::MSG_TYPE_SINGLE_TEXT), lanes).unwrap();
                let (y, _) =
                    lane_of(&msg_pdu(b, a, MsgType::MSG_TYPE_SINGLE_AUDIO), lanes).unwrap();
                assert_eq!(x, y);
                assert!(x < lanes);
            }
        }
        assert!(lane_of(&msg_pdu(1, 2, MsgType::MSG_TYPE_GROUP_TEXT), 2).is_none());
        assert!(lane_of(&msg_pdu(1, 2, MsgType::MSG_TYPE_SINGLE_TEXT), 0).is_none());
    }

    #[test]
    fn pairs_spread_over_the_lanes() {
        let mut seen = [0usize; 2];
        for u in 1..=200u32 {
            let (l, _) = lane_of(&msg_pdu(u, u + 1, MsgType::MSG_TYPE_SINGLE_TEXT), 2).unwrap();
            seen[l] += 1;
        }
        assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
    }
}
