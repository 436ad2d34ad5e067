//! Handing work back to the loop from other threads, through a bounded
//! inbox.
//!
//! The C++ db_proxy's workers push replies into a locked list that the loop
//! only drains on its next 10 ms timer tick, and the list has no bound.
//! Here a [`Remote`] sends into the reactor's inbox and wakes its poll at
//! once through mio's `Waker`; the inbox holds at most
//! [`DEFAULT_INBOX_BOUND`] messages ([`Reactor::set_inbox_bound`]). When it
//! is full, [`Remote::send`] and [`Remote::run`] return false at once and
//! [`Remote::send_timeout`] / [`Remote::run_timeout`] wait for room up to a
//! timeout; [`InboxStats`] counts how often that happened. Signals are
//! never refused (a few per process life).

use crate::reactor::{ConnId, Reactor};
use crossbeam_channel::Sender;
use mio::Waker;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many messages a reactor's inbox holds by default: far more than a
/// loop that keeps up ever has waiting (it drains the inbox every turn),
/// few enough that a loop that has stopped draining cannot take all memory.
pub const DEFAULT_INBOX_BOUND: usize = 65_536;

/// A closure another thread runs on the loop thread.
pub type RemoteFn<S> = Box<dyn FnOnce(&mut Reactor<S>, &mut S) + Send>;

/// What other threads hand to the loop.
pub(crate) enum Inbox<S> {
    /// Run a closure on the loop thread.
    Run(RemoteFn<S>),
    /// Send these bytes on a connection (the common case: a worker's reply).
    Send(ConnId, Vec<u8>),
    /// A signal arrived.
    Signal(i32),
}

/// How a reactor's inbox has fared, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxStats {
    /// Messages waiting for the loop now.
    pub queued: usize,
    /// The most messages it holds.
    pub bound: usize,
    /// Senders waiting for room now.
    pub waiting: usize,
    /// Messages that found the inbox full (since the reactor was made),
    /// whether they then waited for room or were refused.
    pub full: u64,
    /// Messages refused: the inbox was full (and, for the `_timeout`
    /// sends, stayed full for the whole timeout).
    pub refused: u64,
}

/// What the loop and every [`Remote`] share: the waker and the bound.
pub(crate) struct InboxShared {
    waker: Waker,
    bound: AtomicUsize,
    queued: AtomicUsize,
    waiting: AtomicUsize,
    full: AtomicU64,
    refused: AtomicU64,
    room_lock: Mutex<()>,
    room: Condvar,
}

impl InboxShared {
    pub(crate) fn new(waker: Waker) -> InboxShared {
        InboxShared {
            waker,
            bound: AtomicUsize::new(DEFAULT_INBOX_BOUND),
            queued: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            full: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            room_lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    pub(crate) fn set_bound(&self, bound: usize) {
        self.bound.store(bound.max(1), SeqCst);
        self.wake_waiters();
    }

    pub(crate) fn stats(&self) -> InboxStats {
        InboxStats {
            queued: self.queued.load(SeqCst),
            bound: self.bound.load(SeqCst),
            waiting: self.waiting.load(SeqCst),
            full: self.full.load(SeqCst),
            refused: self.refused.load(SeqCst),
        }
    }

    /// Takes one place if there is room.
    fn try_reserve(&self) -> bool {
        let bound = self.bound.load(SeqCst);
        self.queued
            .fetch_update(SeqCst, SeqCst, |q| (q < bound).then_some(q + 1))
            .is_ok()
    }

    /// Takes one place, waiting up to `wait` for one (`None`: not at all).
    fn reserve(&self, wait: Option<Duration>) -> bool {
        if self.try_reserve() {
            return true;
        }
        self.full.fetch_add(1, SeqCst);
        let got = match wait {
            None => false,
            Some(wait) => self.wait_for_room(Instant::now() + wait),
        };
        if !got {
            self.refused.fetch_add(1, SeqCst);
        }
        got
    }

    fn wait_for_room(&self, deadline: Instant) -> bool {
        let mut guard = self
            .room_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Counted before looking, under the lock: the loop either sees us
        // waiting after it made room, or we see the room it made.
        self.waiting.fetch_add(1, SeqCst);
        let got = loop {
            if self.try_reserve() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            guard = self
                .room
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        self.waiting.fetch_sub(1, SeqCst);
        got
    }

    /// The loop took `n` messages out.
    pub(crate) fn taken(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.queued.fetch_sub(n, SeqCst);
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        if self.waiting.load(SeqCst) > 0 {
            let _guard = self
                .room_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.room.notify_all();
        }
    }
}

/// A cloneable, thread-safe handle to a reactor.
pub struct Remote<S> {
    inbox: Sender<Inbox<S>>,
    shared: Arc<InboxShared>,
}

impl<S> Clone for Remote<S> {
    fn clone(&self) -> Self {
        Remote {
            inbox: self.inbox.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> Remote<S> {
    pub(crate) fn new(inbox: Sender<Inbox<S>>, shared: Arc<InboxShared>) -> Remote<S> {
        Remote { inbox, shared }
    }

    /// Queues `msg` once `reserved` (a place was taken for it) and wakes
    /// the loop; false when the reactor is gone.
    fn push_reserved(&self, msg: Inbox<S>) -> bool {
        if self.inbox.send(msg).is_err() {
            self.shared.queued.fetch_sub(1, SeqCst);
            return false; // the reactor is gone
        }
        if let Err(e) = self.shared.waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
        true
    }

    fn push(&self, msg: Inbox<S>, wait: Option<Duration>) -> bool {
        self.shared.reserve(wait) && self.push_reserved(msg)
    }

    /// Queues `bytes` (usually a whole PDU) for connection `id` and wakes the
    /// loop. Returns false, at once, when the inbox is full or the reactor
    /// no longer exists. A connection that has closed meanwhile drops the
    /// bytes.
    pub fn send(&self, id: ConnId, bytes: Vec<u8>) -> bool {
        self.push(Inbox::Send(id, bytes), None)
    }

    /// [`send`](Self::send), waiting up to `timeout` for room when the inbox
    /// is full (what a worker whose reply must not be lost does). Never call
    /// it on the loop thread: only the loop makes room.
    pub fn send_timeout(&self, id: ConnId, bytes: Vec<u8>, timeout: Duration) -> bool {
        self.push(Inbox::Send(id, bytes), Some(timeout))
    }

    /// Runs `f` on the loop thread, with the reactor and the server state.
    /// Returns false, at once, when the inbox is full or the reactor no
    /// longer exists.
    pub fn run(&self, f: impl FnOnce(&mut Reactor<S>, &mut S) + Send + 'static) -> bool {
        self.push(Inbox::Run(Box::new(f)), None)
    }

    /// [`run`](Self::run), waiting up to `timeout` for room when the inbox
    /// is full. Never call it on the loop thread.
    pub fn run_timeout(
        &self,
        f: impl FnOnce(&mut Reactor<S>, &mut S) + Send + 'static,
        timeout: Duration,
    ) -> bool {
        self.push(Inbox::Run(Box::new(f)), Some(timeout))
    }

    /// The inbox's counters (the same for every `Remote` of one reactor).
    pub fn inbox_stats(&self) -> InboxStats {
        self.shared.stats()
    }
}

/// Starts a thread that forwards `signals` into the loop's inbox.
pub(crate) fn forward_signals<S: 'static>(
    signals: &[i32],
    remote: Remote<S>,
) -> std::io::Result<()> {
    let mut iter = signal_hook::iterator::Signals::new(signals)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in iter.forever() {
                log::info!("signal {sig} received");
                // Past the bound: a signal is never refused.
                remote.shared.queued.fetch_add(1, SeqCst);
                if !remote.push_reserved(Inbox::Signal(sig)) {
                    break;
                }
            }
        })?;
    Ok(())
}
