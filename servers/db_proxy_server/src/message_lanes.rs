//! Group commit of one-to-one messages (not in the C++, whose worker
//! stores each `CID_MSG_DATA` alone: one `INSERT`, its own commit and
//! several Redis round trips per message; see `ProxyConn.cpp` and
//! `business/MessageContent.cpp`).
//!
//! The loop hands every one-to-one `CID_MSG_DATA` to a lane chosen by the
//! [`LaneRouter`]: a pair with messages in a lane sends its next ones to
//! the same lane, so they stay in arrival order; a pair with none in
//! flight goes to the first lane holding fewer than [`SPILL_AT`]
//! messages. So a moderate load fills one lane (bigger batches: fewer
//! round trips and commits per message), and only a load one lane cannot
//! keep up with spills onto the next. A lane is a queue of pending
//! messages and a fixed worker of the pool (`ThreadPool::add_task_to`):
//! each message also queues a drain task on that worker, and the task
//! takes whatever the lane holds (up to [`MAX_BATCH`]) and stores it as
//! one batch (`message_batch`). It never waits for more: when the lane
//! holds one message the batch is that one message, stored as before, so
//! a lightly loaded server answers as fast as it did; while the worker is
//! busy storing, the next messages gather in the lane and go together.
//! A drain task that finds the lane empty (an earlier task took its
//! message) ends at once.
//!
//! Each message keeps its own place in the work queue (its bounds and
//! backpressure are untouched, and they bound the router's table: it
//! holds only pairs with a message in flight) and its own reply; the
//! replies of a batch go back to the loop in one hand-over, and only then
//! are its pairs free to change lanes, so a pair's replies also keep
//! their order.

use crate::business::{message_batch, relation_model};
use crate::metrics::Busy;
use crate::services::Services;
use crate::state::{Completion, CompletionBatch, WorkMetrics};
use base::pdu::ImPdu;
use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
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

/// A lane takes pairs that have nothing in flight only while it holds
/// fewer messages than this (queued or being stored); past it they go to
/// the next lane. Half a full batch: a lane this far behind is
/// committing one batch while the next gathers (measured on 2 cores: see
/// the README's figures).
pub const SPILL_AT: usize = MAX_BATCH / 2;

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
/// the work queue's limits (every pending message holds a place there),
/// and which pair is on which.
pub struct MessageLanes {
    lanes: Vec<Mutex<VecDeque<Pending>>>,
    router: Mutex<LaneRouter>,
}

/// A `CID_MSG_DATA` body that goes through the lanes: one-to-one
/// messages; `None` for anything else (group messages, a body that does
/// not decode), which goes the usual way.
pub fn lane_message(pdu: &ImPdu) -> Option<IMMsgData> {
    if pdu.command_id() != cid::MSG_DATA {
        return None;
    }
    let msg: IMMsgData = pdu.msg().ok()?;
    matches!(
        msg.msg_type,
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_SINGLE_AUDIO
    )
    .then_some(msg)
}

/// The pair (`(small, big)`) of a one-to-one message.
fn pair_key(msg: &IMMsgData) -> (u32, u32) {
    relation_model::ordered(msg.from_user_id, msg.to_session_id)
}

/// Which lane each pair with messages in flight is on, and how many
/// messages each lane holds: the lane choice as a pure table (no
/// queues, no threads), so it can be tested alone.
#[derive(Debug)]
pub struct LaneRouter {
    /// Messages assigned to each lane and not yet released.
    held: Vec<usize>,
    /// Pairs in flight: their lane and their messages there.
    pairs: HashMap<(u32, u32), (usize, usize)>,
}

impl LaneRouter {
    /// `lanes` empty lanes (at least one).
    pub fn new(lanes: usize) -> LaneRouter {
        LaneRouter {
            held: vec![0; lanes.max(1)],
            pairs: HashMap::new(),
        }
    }

    /// The lane of one more message of `pair`: its pair's lane while it
    /// has messages in flight; else the first lane holding fewer than
    /// [`SPILL_AT`]; else the one holding fewest.
    pub fn assign(&mut self, pair: (u32, u32)) -> usize {
        let lane = match self.pairs.entry(pair) {
            Entry::Occupied(mut e) => {
                let (lane, n) = e.get_mut();
                *n += 1;
                *lane
            }
            Entry::Vacant(e) => {
                let held = &self.held;
                let lane = held
                    .iter()
                    .position(|&h| h < SPILL_AT)
                    .unwrap_or_else(|| (0..held.len()).min_by_key(|&l| held[l]).unwrap_or(0));
                e.insert((lane, 1));
                lane
            }
        };
        self.held[lane] += 1;
        lane
    }

    /// One message of `pair` is stored and answered.
    pub fn release(&mut self, pair: (u32, u32)) {
        if let Entry::Occupied(mut e) = self.pairs.entry(pair) {
            let (lane, n) = e.get_mut();
            self.held[*lane] = self.held[*lane].saturating_sub(1);
            *n -= 1;
            if *n == 0 {
                e.remove();
            }
        }
    }

    /// Messages held by `lane`.
    pub fn held(&self, lane: usize) -> usize {
        self.held.get(lane).copied().unwrap_or(0)
    }

    /// Pairs with messages in flight.
    pub fn pairs_in_flight(&self) -> usize {
        self.pairs.len()
    }
}

/// Releases a drained batch's pairs when dropped: after its replies were
/// handed back, and also if storing it panicked.
struct InFlight<'a> {
    router: &'a Mutex<LaneRouter>,
    pairs: Vec<(u32, u32)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut router = self.router.lock();
        for &pair in &self.pairs {
            router.release(pair);
        }
    }
}

impl MessageLanes {
    /// `n` empty lanes (at least one).
    pub fn new(n: usize) -> MessageLanes {
        let n = n.max(1);
        MessageLanes {
            lanes: (0..n).map(|_| Mutex::new(VecDeque::new())).collect(),
            router: Mutex::new(LaneRouter::new(n)),
        }
    }

    /// Number of lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Messages each lane holds now (queued or being stored), and the
    /// pairs in flight: for `GET /metrics`.
    pub fn load(&self) -> (Vec<usize>, usize) {
        let r = self.router.lock();
        let held = (0..self.lanes.len()).map(|l| r.held(l)).collect();
        (held, r.pairs_in_flight())
    }

    /// Queues a message in the lane the router gives its pair, and
    /// returns that lane (the loop then queues a drain task on the lane's
    /// worker).
    pub fn push(&self, p: Pending) -> usize {
        let lane = self.router.lock().assign(pair_key(&p.msg)) % self.lanes.len();
        self.lanes[lane].lock().push_back(p);
        lane
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
        // Declared before the replies, so dropped after them.
        let in_flight = InFlight {
            router: &self.router,
            pairs: batch.iter().map(|p| pair_key(&p.msg)).collect(),
        };
        let started = Instant::now();
        let busy = Busy::new(&metrics.busy_workers);
        metrics.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = metrics.lane_batches.get(lane) {
            n.fetch_add(1, Ordering::Relaxed);
        }
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
        completions.set_results(cid::MSG_DATA, replies, started.elapsed(), metrics);
        drop(completions);
        drop(in_flight);
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
    fn one_to_one_messages_take_the_lanes_and_groups_go_the_usual_way() {
        let text = lane_message(&msg_pdu(7, 3, MsgType::MSG_TYPE_SINGLE_TEXT)).unwrap();
        assert_eq!(pair_key(&text), (3, 7), "both directions, one pair");
        assert!(lane_message(&msg_pdu(1, 2, MsgType::MSG_TYPE_SINGLE_AUDIO)).is_some());
        assert!(lane_message(&msg_pdu(1, 2, MsgType::MSG_TYPE_GROUP_TEXT)).is_none());
    }

    #[test]
    fn a_moderate_load_fills_the_first_lane_only() {
        let mut r = LaneRouter::new(2);
        for p in 0..SPILL_AT as u32 {
            assert_eq!(r.assign((p, p + 1)), 0, "pair {p}");
        }
        assert_eq!((r.held(0), r.held(1)), (SPILL_AT, 0));
        for p in 0..SPILL_AT as u32 {
            r.release((p, p + 1));
        }
        assert_eq!((r.held(0), r.pairs_in_flight()), (0, 0), "all released");
        assert_eq!(r.assign((1, 2)), 0);
    }

    #[test]
    fn a_full_lane_spills_new_pairs_but_keeps_its_own() {
        let mut r = LaneRouter::new(2);
        for p in 0..SPILL_AT as u32 {
            r.assign((p, 1000));
        }
        assert_eq!(r.assign((5000, 5001)), 1, "a new pair spills");
        assert_eq!(r.assign((0, 1000)), 0, "a pair in flight stays");
        assert_eq!(r.assign((5000, 5001)), 1, "and so does the spilled one");
        // The second lane fills up too; then the one holding fewest.
        for p in 0..SPILL_AT as u32 - 2 {
            assert_eq!(r.assign((p, 2000)), 1);
        }
        assert_eq!((r.held(0), r.held(1)), (SPILL_AT + 1, SPILL_AT));
        assert_eq!(r.assign((9000, 9001)), 1);
        assert_eq!(r.assign((9100, 9101)), 0, "a tie goes to the first");
        // Once the first lane's messages are released, new pairs go there
        // again, while the spilled pair is still in flight on the second.
        for p in 0..SPILL_AT as u32 {
            r.release((p, 1000));
        }
        r.release((0, 1000));
        r.release((9100, 9101));
        assert_eq!(r.held(0), 0);
        assert_eq!(r.assign((5000, 5001)), 1);
        assert_eq!(r.assign((7000, 7001)), 0);
    }

    #[test]
    fn a_pair_changes_lanes_only_when_nothing_of_it_is_in_flight() {
        let mut r = LaneRouter::new(2);
        for p in 0..SPILL_AT as u32 {
            r.assign((p, 1000));
        }
        assert_eq!(r.assign((1, 2)), 1);
        assert_eq!(r.assign((1, 2)), 1);
        for p in 0..SPILL_AT as u32 {
            r.release((p, 1000));
        }
        r.release((1, 2));
        assert_eq!(r.assign((1, 2)), 1, "one message still in flight there");
        r.release((1, 2));
        r.release((1, 2));
        assert_eq!(r.pairs_in_flight(), 0);
        assert_eq!(r.assign((1, 2)), 0, "free again: the first lane");
        r.release((7, 8)); // never assigned: nothing happens
        assert_eq!(r.held(0), 1);
    }
}
