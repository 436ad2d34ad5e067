//! The bound on work handed to the worker pool, with backpressure per
//! link: what the C++ `ThreadPool.cpp` (`CThreadPool::AddTask`) and
//! `ProxyConn.cpp` (`HandlePduBuf`) do without any bound.
//!
//! Differences from the C++, on purpose: the C++ queues every request it
//! reads, so while MySQL stalls its queues (and memory) grow with whatever
//! msg_servers send. Here at most [`Limits::queue_size`] requests are in
//! the worker pool at once (queued or running), and at most
//! [`Limits::link_queue_size`] of them from one link. A request past
//! either bound is held in its link's own queue, in arrival order, and
//! handed to the workers as earlier ones finish; a link whose held queue
//! passes [`Limits::link_hold_size`] requests or
//! [`Limits::link_hold_bytes`] bytes is closed (its held requests, never
//! answered nor acknowledged, go with it).
//!
//! A link with held requests is also paused (`Reactor::pause_reading`)
//! until they are all with the workers again, so TCP pushes back on the
//! msg_server instead of its requests piling up here: the held queue then
//! holds at most what one turn had already read. The loop keeps its
//! heartbeats and timers meanwhile. This struct is pure bookkeeping, free
//! of sockets and threads, so its decisions are unit-tested directly.

use netlib::ConnId;
use std::collections::{HashMap, VecDeque};

/// The bounds, from the conf (keys not in the C++; see `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most requests in the worker pool at once, from all links.
    pub queue_size: usize,
    /// Most requests of one link in the worker pool at once; past it the
    /// link's further requests are held (backpressure).
    pub link_queue_size: usize,
    /// Most requests one link may have held; one more closes the link.
    pub link_hold_size: usize,
    /// Most bytes of PDUs one link may have held; more closes the link.
    pub link_hold_bytes: usize,
}

impl Limits {
    /// `WorkerQueueSize` when absent: far above what msg_servers keep in
    /// flight (tens), small enough to bound memory during a MySQL stall.
    pub const DEFAULT_QUEUE_SIZE: usize = 10_000;
    /// `LinkQueueSize` when absent.
    pub const DEFAULT_LINK_QUEUE_SIZE: usize = 2_500;
    /// `LinkHoldSize` when absent.
    pub const DEFAULT_LINK_HOLD_SIZE: usize = 100_000;
    /// Held bytes per link (as netlib's 64 MiB out-buffer cap).
    pub const LINK_HOLD_BYTES: usize = 64 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_size: Self::DEFAULT_QUEUE_SIZE,
            link_queue_size: Self::DEFAULT_LINK_QUEUE_SIZE,
            link_hold_size: Self::DEFAULT_LINK_HOLD_SIZE,
            link_hold_bytes: Self::LINK_HOLD_BYTES,
        }
    }
}

/// What to do with an offered request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// Hand it to the workers now.
    Run(T),
    /// Held in the link's queue; `engaged` when it is the first one held
    /// (backpressure starts on that link).
    Held {
        /// True for the first request held since the link last ran freely.
        engaged: bool,
    },
    /// The link's held queue is full: close the link (see [`WorkQueue::close`]).
    Overflow,
}

#[derive(Debug)]
struct LinkWork<T> {
    in_flight: usize,
    held: VecDeque<(T, usize)>,
    held_bytes: usize,
}

impl<T> Default for LinkWork<T> {
    fn default() -> Self {
        LinkWork {
            in_flight: 0,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }
}

/// The requests in the worker pool and those held back, per link.
#[derive(Debug)]
pub struct WorkQueue<T> {
    limits: Limits,
    in_flight: usize,
    links: HashMap<ConnId, LinkWork<T>>,
    /// Links with held requests, in the order they are served.
    waiting: VecDeque<ConnId>,
}

impl<T> WorkQueue<T> {
    /// An empty queue with these bounds (each at least 1).
    pub fn new(limits: Limits) -> WorkQueue<T> {
        let limits = Limits {
            queue_size: limits.queue_size.max(1),
            link_queue_size: limits.link_queue_size.max(1),
            link_hold_size: limits.link_hold_size.max(1),
            link_hold_bytes: limits.link_hold_bytes.max(1),
        };
        WorkQueue {
            limits,
            in_flight: 0,
            links: HashMap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// A request of `bytes` bytes arrived on `link`: run it, hold it, or
    /// close the link. Requests of one link run in arrival order: none
    /// passes one that is held.
    pub fn offer(&mut self, link: ConnId, item: T, bytes: usize) -> Admit<T> {
        let global_full = self.in_flight >= self.limits.queue_size;
        let w = self.links.entry(link).or_default();
        if w.held.is_empty() && !global_full && w.in_flight < self.limits.link_queue_size {
            w.in_flight += 1;
            self.in_flight += 1;
            return Admit::Run(item);
        }
        if w.held.len() >= self.limits.link_hold_size
            || w.held_bytes.saturating_add(bytes) > self.limits.link_hold_bytes
        {
            return Admit::Overflow;
        }
        let engaged = w.held.is_empty();
        w.held.push_back((item, bytes));
        w.held_bytes += bytes;
        if engaged {
            self.waiting.push_back(link);
        }
        Admit::Held { engaged }
    }

    /// A request of `link` finished (answered or not): frees its place and
    /// returns the held requests that may run now, each with its link,
    /// served round-robin over the waiting links.
    pub fn done(&mut self, link: ConnId) -> Vec<(ConnId, T)> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(w) = self.links.get_mut(&link) {
            w.in_flight = w.in_flight.saturating_sub(1);
            if w.in_flight == 0 && w.held.is_empty() {
                self.links.remove(&link);
            }
        }
        let mut run = Vec::new();
        for _ in 0..self.waiting.len() {
            if self.in_flight >= self.limits.queue_size {
                break;
            }
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            let Some(w) = self.links.get_mut(&id) else {
                continue;
            };
            // One each per pass, so that a link with room does not take
            // every place freed while others wait.
            if w.in_flight < self.limits.link_queue_size {
                if let Some((item, bytes)) = w.held.pop_front() {
                    w.held_bytes -= bytes;
                    w.in_flight += 1;
                    self.in_flight += 1;
                    run.push((id, item));
                }
            }
            if w.held.is_empty() {
                log::info!("link {id}: its held requests are all with the workers again");
            } else {
                self.waiting.push_back(id);
            }
        }
        run
    }

    /// `link` closed: drops its held requests (returning how many); its
    /// requests with the workers still count until each is [`done`](Self::done).
    pub fn close(&mut self, link: ConnId) -> usize {
        let Some(w) = self.links.get_mut(&link) else {
            return 0;
        };
        let dropped = w.held.len();
        w.held.clear();
        w.held_bytes = 0;
        if w.in_flight == 0 {
            self.links.remove(&link);
        }
        self.waiting.retain(|&id| id != link);
        dropped
    }

    /// True while `link` has requests held back (its reads stay paused).
    pub fn is_holding(&self, link: ConnId) -> bool {
        self.links.get(&link).is_some_and(|w| !w.held.is_empty())
    }

    /// Requests in the worker pool (queued or running).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests held back, over all links.
    pub fn held(&self) -> usize {
        self.links.values().map(|w| w.held.len()).sum()
    }

    /// Nothing with the workers, nothing held: a shutdown may finish.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u64) -> ConnId {
        ConnId::from_u64(n << 32 | 1)
    }

    fn limits(queue: usize, per_link: usize, hold: usize) -> Limits {
        Limits {
            queue_size: queue,
            link_queue_size: per_link,
            link_hold_size: hold,
            link_hold_bytes: 1_000,
        }
    }

    #[test]
    fn a_link_over_its_bound_is_held_then_resumes_in_order() {
        let mut q = WorkQueue::new(limits(10, 2, 100));
        let a = link(1);
        assert_eq!(q.offer(a, 1, 10), Admit::Run(1));
        assert_eq!(q.offer(a, 2, 10), Admit::Run(2));
        assert_eq!(q.offer(a, 3, 10), Admit::Held { engaged: true });
        assert_eq!(q.offer(a, 4, 10), Admit::Held { engaged: false });
        assert_eq!((q.in_flight(), q.held()), (2, 2));
        assert_eq!(q.done(a), vec![(a, 3)]);
        // A newer request does not pass the held one.
        assert_eq!(q.offer(a, 5, 10), Admit::Held { engaged: false });
        assert_eq!(q.done(a), vec![(a, 4)]);
        assert_eq!(q.done(a), vec![(a, 5)]);
        assert_eq!(q.held(), 0);
        assert_eq!(q.done(a), vec![]);
        assert_eq!(q.done(a), vec![]);
        assert!(q.is_idle());
        // Free again: the next one runs at once, and a new hold engages.
        assert_eq!(q.offer(a, 6, 10), Admit::Run(6));
    }

    #[test]
    fn the_global_bound_holds_every_link_and_frees_round_robin() {
        let mut q = WorkQueue::new(limits(2, 5, 100));
        let (a, b) = (link(1), link(2));
        assert_eq!(q.offer(a, "a1", 1), Admit::Run("a1"));
        assert_eq!(q.offer(b, "b1", 1), Admit::Run("b1"));
        assert_eq!(q.offer(a, "a2", 1), Admit::Held { engaged: true });
        assert_eq!(q.offer(a, "a3", 1), Admit::Held { engaged: false });
        assert_eq!(q.offer(b, "b2", 1), Admit::Held { engaged: true });
        assert_eq!(q.in_flight(), 2, "never more than queue_size");
        // a frees one place: a waited first.
        assert_eq!(q.done(a), vec![(a, "a2")]);
        // b frees one: b's turn now, not a's again.
        assert_eq!(q.done(b), vec![(b, "b2")]);
        assert_eq!(q.done(b), vec![(a, "a3")]);
        assert_eq!(q.in_flight(), 2);
        q.done(a);
        q.done(a);
        assert!(q.is_idle());
    }

    #[test]
    fn past_the_hard_cap_the_link_is_closed_and_its_held_requests_dropped() {
        let mut q = WorkQueue::new(limits(10, 1, 2));
        let (a, b) = (link(1), link(2));
        assert_eq!(q.offer(a, 1, 1), Admit::Run(1));
        assert_eq!(q.offer(a, 2, 1), Admit::Held { engaged: true });
        assert_eq!(q.offer(a, 3, 1), Admit::Held { engaged: false });
        assert_eq!(q.offer(a, 4, 1), Admit::Overflow);
        assert_eq!(q.close(a), 2);
        assert_eq!(q.held(), 0);
        // Its request with a worker still counts until done.
        assert_eq!(q.in_flight(), 1);
        assert!(!q.is_idle());
        assert_eq!(q.offer(b, 5, 1), Admit::Run(5));
        assert_eq!(q.done(a), vec![]);
        assert_eq!(q.done(b), vec![]);
        assert!(q.is_idle());
    }

    #[test]
    fn held_bytes_are_bounded_too() {
        let mut q = WorkQueue::new(limits(1, 1, 100));
        let a = link(1);
        assert_eq!(q.offer(a, 1, 900), Admit::Run(1));
        assert_eq!(q.offer(a, 2, 600), Admit::Held { engaged: true });
        assert_eq!(q.offer(a, 3, 400), Admit::Held { engaged: false });
        assert_eq!(q.offer(a, 4, 1), Admit::Overflow, "1,001 bytes held");
        assert_eq!(q.done(a), vec![(a, 2)]);
        // 600 bytes left the held queue: room again.
        assert_eq!(q.offer(a, 4, 1), Admit::Held { engaged: false });
    }

    #[test]
    fn a_closed_link_with_nothing_in_flight_leaves_no_entry() {
        let mut q: WorkQueue<u8> = WorkQueue::new(limits(1, 1, 1));
        let (a, b) = (link(1), link(2));
        assert_eq!(q.offer(a, 1, 1), Admit::Run(1));
        assert_eq!(q.offer(b, 2, 1), Admit::Held { engaged: true });
        assert_eq!(q.close(b), 1);
        assert_eq!(q.done(a), vec![], "b's held request is gone");
        assert!(q.is_idle());
        assert!(q.links.is_empty());
    }
}
