//! Validations looked up in batches (not in the C++, whose workers run one
//! `SELECT` per `CID_OTHER_VALIDATE_REQ`; see `business/Login.cpp`).
//!
//! The loop queues every validation here. At most one drain task is with
//! the workers at a time: it takes whatever the queue holds (up to
//! [`MAX_LOGIN_BATCH`]) and answers it with one lookup
//! (`login::validate_batch`), on a worker without a message lane (so a
//! lookup never waits behind a batch's commit). It never waits for more:
//! a validation that finds the queue idle goes to a worker at once, alone,
//! as before; while
//! a batch is being looked up, the next validations gather and go
//! together once its replies are back with the loop, which then hands the
//! next drain task out. So a login storm costs MariaDB and the workers one
//! query and one wake-up per batch instead of one per login, and the
//! batches grow only as fast as the lookups fall behind.
//!
//! Each validation keeps its own place in the work queue (its bounds and
//! backpressure are untouched; they also bound this queue) and its own
//! reply; the replies of a batch go back to the loop in one hand-over.

use crate::business::login;
use crate::metrics::Busy;
use crate::services::Services;
use crate::state::{Completion, CompletionBatch, WorkMetrics};
use base::pdu::ImPdu;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tt_proto::cid;

/// Most validations answered by one drain task.
pub const MAX_LOGIN_BATCH: usize = 64;

/// A validation waiting for its lookup.
pub struct PendingLogin {
    /// The request.
    pub pdu: ImPdu,
    /// Brings the reply back and frees the request's place.
    pub completion: Completion,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<PendingLogin>,
    /// A drain task is with the workers (queued or running).
    draining: bool,
}

/// The validations waiting, and whether a drain task is out: shared by
/// the loop (which queues and hands drain tasks out) and the workers.
#[derive(Default)]
pub struct LoginLane {
    queue: Mutex<Queue>,
}

/// Held by a drain task from its start: when dropped (the batch
/// answered, or a panic anywhere in the task) it marks the lane idle and
/// then hands the batch's replies back, in that order, so the loop that
/// gets them can hand the next drain task out.
struct Drained<'a> {
    queue: &'a Mutex<Queue>,
    completions: Option<CompletionBatch>,
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        self.queue.lock().draining = false;
        drop(self.completions.take());
    }
}

impl LoginLane {
    /// Queues `p`; true when the caller must hand a drain task to the
    /// workers (none is out).
    pub fn push(&self, p: PendingLogin) -> bool {
        let mut q = self.queue.lock();
        q.waiting.push_back(p);
        !std::mem::replace(&mut q.draining, true)
    }

    /// True when validations wait and no drain task is out: the caller
    /// hands one out (the loop asks after each reply).
    pub fn wants_drain(&self) -> bool {
        let mut q = self.queue.lock();
        if q.draining || q.waiting.is_empty() {
            return false;
        }
        q.draining = true;
        true
    }

    /// Validations waiting (not yet taken by a drain task).
    pub fn len(&self) -> usize {
        self.queue.lock().waiting.len()
    }

    /// On a worker: answers what the lane holds now, at most
    /// [`MAX_LOGIN_BATCH`] validations, and hands their replies back.
    pub fn drain(&self, services: &Services, metrics: &WorkMetrics) {
        let mut drained = Drained {
            queue: &self.queue,
            completions: None,
        };
        let batch: Vec<PendingLogin> = {
            let mut q = self.queue.lock();
            let n = q.waiting.len().min(MAX_LOGIN_BATCH);
            q.waiting.drain(..n).collect()
        };
        let (reqs, completions): (Vec<ImPdu>, Vec<Completion>) =
            batch.into_iter().map(|p| (p.pdu, p.completion)).unzip();
        let completions = drained
            .completions
            .insert(CompletionBatch::new(completions));
        if reqs.is_empty() {
            return;
        }
        let started = Instant::now();
        let busy = Busy::new(&metrics.busy_workers);
        metrics.login_batches.fetch_add(1, Ordering::Relaxed);
        metrics
            .batched_logins
            .fetch_add(reqs.len() as u64, Ordering::Relaxed);
        let replies = login::validate_batch(services, &reqs);
        drop(busy);
        completions.set_results(cid::OTHER_VALIDATE_REQ, replies, started.elapsed(), metrics);
    }
}
