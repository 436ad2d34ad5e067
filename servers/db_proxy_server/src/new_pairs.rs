//! New user pairs made off the message lanes (not in the C++, whose
//! worker makes a pair's relation and sessions inline before storing the
//! pair's first message; see `MessageContent.cpp`).
//!
//! A lane stores its messages one batch after another (`message_lanes`),
//! so a pair made inside the lane (a named lock and several round trips)
//! would hold up every other pair's messages in it. Instead the loop parks
//! the messages of a pair it has not in its pair cache ([`ParkedPairs`]),
//! in arrival order, and has the pair made by a worker that carries no
//! lane ([`PairMaker`]: pairs that exist, as after a restart, are found in
//! one lookup for the batch, with no lock); once made and cached, the loop puts the pair's
//! parked messages into their lane, behind whatever of the pair was
//! already there, so the pair's order holds. A pair that could not be
//! made has its parked messages answered as not stored (id 0), as one
//! message would be.
//!
//! Bounded: every parked message keeps its place in the work queue
//! (`work_queue`), and at most one pair to make is queued per parked pair.

use crate::business::message_batch::{self, PairMade};
use crate::business::relation_model::ordered;
use crate::business::LOCK_TIMEOUT_SECS;
use crate::message_lanes::{spare_worker, Pending};
use crate::services::Services;
use crate::state::{CompletionBatch, ProxyState, REPLY_WAIT};
use netlib::Remote;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

/// Most pairs one worker makes together (one lock statement, one
/// transaction); it takes a power of two of them, so each connection
/// prepares few lock statements.
pub const MAX_PAIRS_AT_ONCE: usize = 16;

/// The loop's messages waiting for their pair, by `(small, big)`.
#[derive(Default)]
pub struct ParkedPairs {
    parked: HashMap<(u32, u32), Vec<Pending>>,
}

impl ParkedPairs {
    /// True while the pair `key` is being made.
    pub fn is_parked(&self, key: (u32, u32)) -> bool {
        self.parked.contains_key(&key)
    }

    /// Parks `p` behind the pair's earlier ones; true when it is the
    /// first, so the pair is to be made.
    pub fn park(&mut self, key: (u32, u32), p: Pending) -> bool {
        let entry = self.parked.entry(key);
        let first = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
        entry.or_default().push(p);
        first
    }

    /// The pair's parked messages (in order), no longer parked.
    pub fn release(&mut self, key: (u32, u32)) -> Option<Vec<Pending>> {
        self.parked.remove(&key)
    }
}

/// The pairs to make, shared by the loop (which queues them) and the
/// workers (which make them).
#[derive(Default)]
pub struct PairMaker {
    queue: Mutex<VecDeque<(u32, u32)>>,
}

/// How many of `queued` pairs one worker takes: the largest power of two
/// not above it nor [`MAX_PAIRS_AT_ONCE`].
pub fn take_count(queued: usize) -> usize {
    let mut n = MAX_PAIRS_AT_ONCE;
    while n > queued {
        n /= 2;
    }
    n
}

impl PairMaker {
    /// Queues the pair `(from, to)` (its first message's direction); the
    /// loop then queues a [`Self::make`] task on a worker.
    pub fn push(&self, from: u32, to: u32) {
        self.queue.lock().push_back((from, to));
    }

    /// On a worker: makes what is queued, [`take_count`] pairs at a time,
    /// until nothing is, and after each batch tells the loop which pairs
    /// are ready. A batch's named locks are asked without waiting; a pair
    /// whose lock another process holds is then made alone, waiting for
    /// its lock as the single path does, after the rest of its batch is
    /// answered and while the worker holds no other lock. So a pair held
    /// up keeps only itself waiting: the next task on any other worker
    /// takes what is queued. Nothing to do when earlier tasks took them all.
    pub fn make(&self, services: &Services, remote: &Remote<ProxyState>) {
        loop {
            let pairs: Vec<(u32, u32)> = {
                let mut q = self.queue.lock();
                let n = take_count(q.len());
                q.drain(..n).collect()
            };
            if pairs.is_empty() {
                return;
            }
            // From here every pair taken is answered to the loop, even if
            // this task panics: a pair never answered would keep its
            // messages parked for ever.
            let mut answer = PairsAnswer {
                remote,
                unanswered: pairs.iter().map(|&(a, b)| ordered(a, b)).collect(),
            };
            let made = message_batch::make_pairs(services, &pairs, base::tick::unix_time(), 0);
            let mut busy = Vec::new();
            let mut done = Vec::new();
            for (&pair, made) in pairs.iter().zip(made) {
                match made {
                    PairMade::LockBusy => busy.push(pair),
                    made => done.push((ordered(pair.0, pair.1), made == PairMade::Made)),
                }
            }
            answer.send(done);
            for pair in busy {
                let now = base::tick::unix_time();
                let made = message_batch::make_pairs(services, &[pair], now, LOCK_TIMEOUT_SECS);
                let made = made.first() == Some(&PairMade::Made);
                answer.send(vec![(ordered(pair.0, pair.1), made)]);
            }
        }
    }
}

/// Tells the loop which of the pairs a worker took are ready
/// (`ProxyState::pairs_made`); those still unanswered when it is dropped
/// (the task panicked) are answered as not made.
struct PairsAnswer<'a> {
    remote: &'a Remote<ProxyState>,
    unanswered: Vec<(u32, u32)>,
}

impl PairsAnswer<'_> {
    fn send(&mut self, done: Vec<((u32, u32), bool)>) {
        if done.is_empty() {
            return;
        }
        self.unanswered
            .retain(|k| !done.iter().any(|(d, _)| d == k));
        let n = done.len();
        let handed = self
            .remote
            .run_timeout(move |_, state| state.pairs_made(done), REPLY_WAIT);
        if !handed {
            log::error!("{n} new pairs made but the event loop is gone or its inbox stayed full");
        }
    }
}

impl Drop for PairsAnswer<'_> {
    fn drop(&mut self) {
        if !self.unanswered.is_empty() {
            log::error!(
                "{} new pairs not made: their task stopped",
                self.unanswered.len()
            );
            let done = std::mem::take(&mut self.unanswered)
                .into_iter()
                .map(|k| (k, false))
                .collect();
            self.send(done);
        }
    }
}

/// On a worker: answers `batch` as not stored (their pair could not be made).
pub fn answer_not_stored(batch: Vec<Pending>) {
    let (requests, completions): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|p| ((p.pdu, p.msg), p.completion))
        .unzip();
    let mut completions = CompletionBatch::new(completions);
    for (i, reply) in message_batch::not_stored(requests).into_iter().enumerate() {
        if let Ok(Some(pdu)) = reply {
            completions.set_reply(i, pdu.into_bytes());
        }
    }
}

/// The workers a new pair's task goes to: the next two of
/// [`spare_worker`] (one when there is only one): a task makes whatever
/// is queued, so the pair waits only if both are held up.
pub fn maker_workers(next: &mut usize, workers: usize, lanes: usize) -> Vec<usize> {
    let first = spare_worker(next, workers, lanes);
    let second = spare_worker(next, workers, lanes);
    if second == first {
        vec![first]
    } else {
        vec![first, second]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_takes_a_power_of_two_of_the_queued_pairs() {
        assert_eq!(take_count(0), 0);
        assert_eq!(take_count(1), 1);
        assert_eq!(take_count(3), 2);
        assert_eq!(take_count(13), 8);
        assert_eq!(take_count(16), 16);
        assert_eq!(take_count(500), MAX_PAIRS_AT_ONCE);
    }

    #[test]
    fn pair_tasks_go_to_two_workers_without_a_lane() {
        let mut next = 0;
        assert_eq!(maker_workers(&mut next, 4, 2).len(), 2);
        assert_eq!(maker_workers(&mut next, 3, 2), vec![2]);
    }
}
