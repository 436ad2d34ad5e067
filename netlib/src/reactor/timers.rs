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
//! - One connection tick (the C++ registers one timer per connection
//!   kind) retries accepting on every listener and calls
//!   [`ImConn::on_timer`](crate::ImConn::on_timer) of the connections due
//!   on it, from the timer [`wheel`](super::wheel): by default every
//!   connection, every tick, as the C++; a handler that says when it next
//!   has something to do ([`Reactor::timer_at`], e.g. through
//!   [`Ctx::keep_alive_until_due`](crate::Ctx::keep_alive_until_due)) is
//!   called only then, so a tick costs O(connections due), not O(all).

use super::wheel::Wheel;
use super::{ConnId, Reactor, Timer, TimerId};
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
        self.restart_wheel();
    }

    /// A new wheel on the current clock and tick, every connection due on
    /// the next tick.
    fn restart_wheel(&mut self) {
        self.wheel = Wheel::new(self.conn_tick_ms, self.now_ms());
        let ids: Vec<ConnId> = self
            .conns
            .iter_mut()
            .map(|(k, c)| {
                c.timer_bucket = 0;
                ConnId {
                    key: k as u32,
                    serial: c.serial,
                }
            })
            .collect();
        for id in ids {
            self.schedule_next_tick(id);
        }
    }

    /// Files `id` (not filed now) for the next connection tick.
    pub(super) fn schedule_next_tick(&mut self, id: ConnId) {
        let bucket = self.wheel.next_bucket();
        if let Some(c) = self.conns.get_mut(id.slot()) {
            c.timer_bucket = bucket;
            self.wheel.insert(bucket, id);
        }
    }

    /// Asks for `id`'s next [`ImConn::on_timer`](crate::ImConn::on_timer)
    /// on the first connection tick at or after `when_ms` (the reactor's
    /// ms, [`Reactor::now_ms`]), or earlier if something else asked for an
    /// earlier one. Asked from within its `on_timer`, it replaces the
    /// default of the next tick: a handler that asks every time it runs is
    /// called only when it asked (plus the first tick after it opened, and
    /// after [`set_clock`](Self::set_clock) or
    /// [`set_conn_tick_ms`](Self::set_conn_tick_ms)). Asked at another time
    /// it only ever moves the next call earlier. A closed or unknown `id`
    /// is ignored.
    pub fn timer_at(&mut self, id: ConnId, when_ms: u64) {
        let Some(c) = self
            .conns
            .get_mut(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)
        else {
            return;
        };
        if c.timer_bucket == 0 {
            // Its on_timer is running: the call after it.
            c.timer_asked = c.timer_asked.min(when_ms);
            return;
        }
        let bucket = self.wheel.bucket_for(when_ms);
        if bucket < c.timer_bucket {
            c.timer_bucket = bucket;
            self.wheel.insert(bucket, id);
        }
    }

    /// Entries in the connection timer wheel (one per connection, plus
    /// those left behind by a deadline moved earlier until their tick).
    pub fn timer_wheel_len(&self) -> usize {
        self.wheel.len()
    }

    /// Sets the interval of the connection tick that calls
    /// `ImConn::on_timer` (default [`CONN_TICK_MS`]).
    pub fn set_conn_tick_ms(&mut self, ms: u64) {
        self.conn_tick_ms = ms.max(1);
        self.next_conn_tick = self.now_ms() + self.conn_tick_ms;
        self.restart_wheel();
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
            self.run_conn_timers(state, now);
            self.reap(state);
        }
    }

    /// The `on_timer` of every connection due at `now`, each filed again
    /// for when it asked ([`Reactor::timer_at`]) or else the next tick.
    fn run_conn_timers(&mut self, state: &mut S, now: u64) {
        let mut due = std::mem::take(&mut self.due_scratch);
        self.wheel.take_due(now, &mut due);
        for &(bucket, id) in &due {
            // A stale entry (moved earlier, or its connection gone) is dropped.
            let Some(c) = self
                .conns
                .get_mut(id.slot())
                .filter(|c| c.serial == id.serial && !c.closed && c.timer_bucket == bucket)
            else {
                continue;
            };
            c.timer_bucket = 0;
            c.timer_asked = u64::MAX;
            self.with_handler(state, id.slot(), |h, cx| h.on_timer(cx, now));
            let Some(c) = self
                .conns
                .get_mut(id.slot())
                .filter(|c| c.serial == id.serial && !c.closed && c.timer_bucket == 0)
            else {
                continue;
            };
            let bucket = match c.timer_asked {
                u64::MAX => self.wheel.next_bucket(),
                asked => self.wheel.bucket_for(asked),
            };
            c.timer_bucket = bucket;
            self.wheel.insert(bucket, id);
        }
        due.clear();
        self.due_scratch = due;
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
