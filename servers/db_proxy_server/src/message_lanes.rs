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
//! one batch (`message_batch`). A lightly loaded lane never waits for
//! more: when it holds one message the batch is that one message, stored
//! as before, so a lightly loaded server answers as fast as it did; while
//! the worker is busy storing, the next messages gather in the lane and
//! go together. A lane under load (its last batch held at least
//! [`GATHER_FROM`] messages) starts a batch at most every [`MIN_CYCLE`],
//! or as soon as [`GATHER_UP_TO`] wait ([`gather_until`]): batches that
//! are bigger cost fewer round trips and commits per message. A drain
//! task that finds the lane empty (an earlier task took its message)
//! ends at once.
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
use parking_lot::{Condvar, Mutex};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
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

/// A lane whose last batch held at least this many messages is under
/// load: its next batch waits for more (see [`gather_until`]). Below it
/// (one or two messages a batch, as at 1,000 msgs/s on 2 cores) nothing
/// waits.
pub const GATHER_FROM: usize = 4;

/// A lane under load starts a batch at most this long after its last one
/// started: time for the next batch to gather while this one commits.
pub const MIN_CYCLE: Duration = Duration::from_micros(3000);

/// A lane under load stops waiting once this many messages wait: a
/// batch that size already costs little per message.
pub const GATHER_UP_TO: usize = 24;

/// Lanes for `workers` workers: up to [`MAX_LANES`], leaving at least one
/// worker without a lane (when there are two or more) to make new pairs,
/// whose named locks may wait seconds: a lane's worker held up by one
/// would hold up every message of the lane.
pub fn lane_count(workers: usize) -> usize {
    workers.saturating_sub(1).clamp(1, MAX_LANES)
}

/// The worker for the next task that takes no lane (requests, logins,
/// new pairs): round robin over the workers that carry no lane, which
/// never wait for a batch to gather; all of them when every worker
/// carries one.
pub fn spare_worker(next: &mut usize, workers: usize, lanes: usize) -> usize {
    *next = next.wrapping_add(1);
    if workers > lanes {
        lanes + *next % (workers - lanes)
    } else {
        *next % workers.max(1)
    }
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

/// The start and size of a lane's last batch: what [`gather_until`]
/// decides from.
#[derive(Debug, Clone, Copy)]
pub struct LastBatch {
    /// When it was taken from the lane.
    pub started: Instant,
    /// Messages it held.
    pub size: usize,
}

/// When the drain of a lane holding `queued` messages (at least one)
/// takes its batch, if not at once: a lane under load (its last batch
/// held [`GATHER_FROM`] or more) waits until [`MIN_CYCLE`] after its last
/// batch started, or until [`GATHER_UP_TO`] wait, whichever comes first.
/// `None`: at once (light load, enough waiting, or the time has passed).
pub fn gather_until(last: Option<LastBatch>, queued: usize, now: Instant) -> Option<Instant> {
    let last = last?;
    if last.size < GATHER_FROM || queued >= GATHER_UP_TO {
        return None;
    }
    let until = last.started + MIN_CYCLE;
    (until > now).then_some(until)
}

/// One lane's queue and its last batch.
#[derive(Default)]
struct LaneQueue {
    pending: VecDeque<Pending>,
    last: Option<LastBatch>,
}

/// One lane: its queue, and the signal that [`GATHER_UP_TO`] wait.
#[derive(Default)]
struct Lane {
    queue: Mutex<LaneQueue>,
    filled: Condvar,
}

/// The lanes of one db_proxy: a bounded number of queues, each bound by
/// the work queue's limits (every pending message holds a place there),
/// and which pair is on which.
pub struct MessageLanes {
    lanes: Vec<Lane>,
    router: Mutex<LaneRouter>,
    /// Whether a lane under load waits for more ([`gather_until`]): only
    /// when its worker runs nothing but the lane (there are workers
    /// without a lane for the rest).
    gather: bool,
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
    /// `n` empty lanes (at least one); `gather`: whether a lane under
    /// load waits for more (see [`Self::gather`]).
    pub fn new(n: usize, gather: bool) -> MessageLanes {
        let n = n.max(1);
        MessageLanes {
            lanes: (0..n).map(|_| Lane::default()).collect(),
            router: Mutex::new(LaneRouter::new(n)),
            gather,
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
        let l = &self.lanes[lane];
        let mut q = l.queue.lock();
        q.pending.push_back(p);
        if q.pending.len() == GATHER_UP_TO {
            l.filled.notify_one();
        }
        lane
    }

    /// On the lane's worker: stores what `lane` holds, at most
    /// [`MAX_BATCH`] messages, once [`gather_until`] says so, and hands
    /// their replies back. Nothing to do when an earlier drain took them.
    pub fn drain(&self, lane: usize, services: &Services, metrics: &WorkMetrics) {
        let batch: Vec<Pending> = {
            let l = &self.lanes[lane % self.lanes.len()];
            let mut q = l.queue.lock();
            if q.pending.is_empty() {
                return;
            }
            if self.gather {
                if let Some(until) = gather_until(q.last, q.pending.len(), Instant::now()) {
                    while q.pending.len() < GATHER_UP_TO {
                        if l.filled.wait_until(&mut q, until).timed_out() {
                            break;
                        }
                    }
                }
            }
            let n = q.pending.len().min(MAX_BATCH);
            q.last = Some(LastBatch {
                started: Instant::now(),
                size: n,
            });
            q.pending.drain(..n).collect()
        };
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
    fn other_tasks_go_to_workers_without_a_lane() {
        let mut next = 0;
        let picked: Vec<usize> = (0..12).map(|_| spare_worker(&mut next, 8, 2)).collect();
        assert!(picked.iter().all(|&w| (2..8).contains(&w)), "{picked:?}");
        for w in 2..8 {
            assert!(picked.contains(&w), "{picked:?}");
        }
        let mut next = 0;
        assert!((0..5).all(|_| spare_worker(&mut next, 2, 2) < 2));
    }

    #[test]
    fn only_a_lane_under_load_waits_and_never_past_its_cycle() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let last = |size| Some(LastBatch { started: t0, size });
        // The first batch, and light load: at once.
        assert_eq!(gather_until(None, 1, t0), None);
        assert_eq!(gather_until(last(GATHER_FROM - 1), 1, at(100)), None);
        // Under load: until the cycle is up ...
        assert_eq!(
            gather_until(last(GATHER_FROM), 1, at(100)),
            Some(t0 + MIN_CYCLE)
        );
        assert_eq!(
            gather_until(last(40), GATHER_UP_TO - 1, at(100)),
            Some(t0 + MIN_CYCLE)
        );
        // ... unless it is, or enough wait.
        let due = MIN_CYCLE.as_micros() as u64;
        assert_eq!(gather_until(last(40), 3, at(due)), None);
        assert_eq!(gather_until(last(40), 3, at(due + 500)), None);
        assert_eq!(gather_until(last(40), GATHER_UP_TO, at(100)), None);
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
