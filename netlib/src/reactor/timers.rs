//! Timers, loop callbacks and the connection tick: the C++
//! `netlib_register_timer`, `netlib_delete_timer`, `netlib_add_loop`
//! (`netlib.cpp`) and `CEventDispatch::AddTimer`/`_CheckTimer`/`_CheckLoop`
//! (`EventDispatch.cpp`), plus the 1 s timer every C++ `CImConn` subclass
//! registers for its heartbeats (`imconn_timer_callback`).
//!
//! Differences from the C++:
//! - A [`TimerId`] carries a serial, so deleting a timer twice (or through
//!   a stale id) never deletes another that took its slot; a timer
//!   registered during a pass waits its interval even when it takes the
//!   slot of one that was due in that pass.
//! - One connection tick calls every connection's
//!   [`ImConn::on_timer`](crate::ImConn::on_timer) (the C++ registers one
//!   timer per connection kind), and retries accepting on every listener.

use super::{Reactor, Timer, TimerId};
use crate::clock::Clock;

/// Interval of the connection tick that calls `ImConn::on_timer`.
pub const CONN_TICK_MS: u64 = 1_000;

impl<S: 'static> Reactor<S> {
    /// The reactor's time in ms, from its [`Clock`]: when connections last
    /// sent and received, the `now` of `on_timer`, when timers are due.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Changes the reactor's clock. What was timed on the old one starts
    /// over on the new one: every timer and the connection tick are due an
    /// interval from its now, and every connection counts as having just
    /// sent and received.
    pub fn set_clock(&mut self, clock: impl Clock + 'static) {
        self.clock = Box::new(clock);
        let now = self.now_ms();
        self.next_conn_tick = now + self.conn_tick_ms;
        for (_, t) in self.timers.iter_mut() {
            t.next = now + t.interval;
        }
        for (_, c) in self.conns.iter_mut() {
            c.last_send = now;
            c.last_recv = now;
        }
    }

    /// Sets the interval of the connection tick that calls
    /// `ImConn::on_timer` (default [`CONN_TICK_MS`]).
    pub fn set_conn_tick_ms(&mut self, ms: u64) {
        self.conn_tick_ms = ms.max(1);
        self.next_conn_tick = self.now_ms() + self.conn_tick_ms;
    }

    /// `netlib_register_timer`: calls `callback` every `interval_ms`.
    pub fn register_timer(
        &mut self,
        interval_ms: u64,
        callback: impl FnMut(&mut Reactor<S>, &mut S) + 'static,
    ) -> TimerId {
        let interval = interval_ms.max(1);
        self.next_timer_serial += 1;
        let serial = self.next_timer_serial;
        let key = self.timers.insert(Timer {
            serial,
            interval,
            next: self.now_ms() + interval,
            callback: Some(Box::new(callback)),
        });
        TimerId { key, serial }
    }

    /// `netlib_delete_timer`.
    pub fn delete_timer(&mut self, id: TimerId) {
        if self
            .timers
            .get(id.key)
            .is_some_and(|t| t.serial == id.serial)
        {
            self.timers.remove(id.key);
        }
    }

    /// `netlib_add_loop`: calls `callback` once per loop iteration.
    pub fn add_loop(&mut self, callback: impl FnMut(&mut Reactor<S>, &mut S) + 'static) {
        self.loops.push(Some(Box::new(callback)));
    }

    /// When the next timer or connection tick is due.
    pub(super) fn next_due(&self) -> u64 {
        self.timers
            .iter()
            .map(|(_, t)| t.next)
            .chain(std::iter::once(self.next_conn_tick))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// `_CheckTimer`: runs the due timers, then the connection tick if due.
    pub(super) fn run_timers(&mut self, state: &mut S) {
        let now = self.now_ms();
        let due: Vec<usize> = self
            .timers
            .iter()
            .filter(|(_, t)| t.next <= now)
            .map(|(k, _)| k)
            .collect();
        for key in due {
            // Still due: an earlier callback may have deleted this timer and
            // registered another in its slot.
            let Some(mut cb) = self
                .timers
                .get_mut(key)
                .filter(|t| t.next <= now)
                .and_then(|t| {
                    t.next = now + t.interval;
                    t.callback.take()
                })
            else {
                continue;
            };
            cb(self, state);
            if let Some(t) = self.timers.get_mut(key) {
                if t.callback.is_none() {
                    t.callback = Some(cb);
                }
            }
            self.reap(state);
        }
        if now >= self.next_conn_tick {
            self.next_conn_tick = now + self.conn_tick_ms;
            // Edge-triggered listeners that hit EMFILE are not woken again
            // for connections already queued: retry them on the tick.
            let listeners: Vec<usize> = self.listeners.iter().map(|(k, _)| k).collect();
            for lkey in listeners {
                self.on_acceptable(state, lkey);
            }
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.with_handler(state, key, |h, cx| h.on_timer(cx, now));
            }
            self.reap(state);
        }
    }

    /// `_CheckLoop`: the loop callbacks, once per turn.
    pub(super) fn run_loops(&mut self, state: &mut S) {
        for i in 0..self.loops.len() {
            if let Some(mut cb) = self.loops[i].take() {
                cb(self, state);
                self.loops[i] = Some(cb);
            }
        }
    }
}
