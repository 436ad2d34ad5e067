//! Handing work back to the loop from other threads.
//!
//! The C++ db_proxy's workers push replies into a locked list that the loop
//! only drains on its next 10 ms timer tick. Here a [`Remote`] sends into
//! the reactor's channel and wakes its poll at once through mio's `Waker`.

use crate::reactor::{ConnId, Reactor};
use crossbeam_channel::Sender;
use mio::Waker;
use std::sync::Arc;

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

/// A cloneable, thread-safe handle to a reactor.
pub struct Remote<S> {
    inbox: Sender<Inbox<S>>,
    waker: Arc<Waker>,
}

impl<S> Clone for Remote<S> {
    fn clone(&self) -> Self {
        Remote {
            inbox: self.inbox.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<S> Remote<S> {
    pub(crate) fn new(inbox: Sender<Inbox<S>>, waker: Arc<Waker>) -> Remote<S> {
        Remote { inbox, waker }
    }

    fn push(&self, msg: Inbox<S>) -> bool {
        if self.inbox.send(msg).is_err() {
            return false; // the reactor is gone
        }
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
        true
    }

    /// Queues `bytes` (usually a whole PDU) for connection `id` and wakes the
    /// loop. Returns false when the reactor no longer exists. A connection
    /// that has closed meanwhile drops the bytes.
    pub fn send(&self, id: ConnId, bytes: Vec<u8>) -> bool {
        self.push(Inbox::Send(id, bytes))
    }

    /// Runs `f` on the loop thread, with the reactor and the server state.
    pub fn run(&self, f: impl FnOnce(&mut Reactor<S>, &mut S) + Send + 'static) -> bool {
        self.push(Inbox::Run(Box::new(f)))
    }
}

/// Starts a thread that forwards `signals` into the loop's inbox.
pub(crate) fn forward_signals<S: 'static>(
    signals: &[i32],
    inbox: Sender<Inbox<S>>,
    waker: Arc<Waker>,
) -> std::io::Result<()> {
    let mut iter = signal_hook::iterator::Signals::new(signals)?;
    let remote = Remote::new(inbox, waker);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in iter.forever() {
                log::info!("signal {sig} received");
                if !remote.push(Inbox::Signal(sig)) {
                    break;
                }
            }
        })?;
    Ok(())
}
