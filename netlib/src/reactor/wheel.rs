//! The connection timer wheel: when each connection's
//! [`ImConn::on_timer`](crate::ImConn::on_timer) is next due, in buckets
//! one connection tick wide. The C++ has none: every `CImConn` subclass's
//! 1 s timer walks all of its connections (`imconn_timer_callback`), so a
//! tick costs O(connections); here a tick costs O(connections due).
//!
//! A hashed wheel of [`SLOTS`] slots; bucket `b` (deadlines in
//! `((b-1)·w, b·w]` ms, `w` the tick) lives in slot `b mod SLOTS`, and an
//! entry remembers its bucket so a deadline more than a turn of the wheel
//! away waits in its slot for the right turn. Moving a deadline earlier
//! adds an entry and leaves the old one stale: the reactor keeps the live
//! bucket beside the connection and drops an entry that does not match it.

use super::ids::ConnId;

/// Slots of the wheel: at a 1 s tick, one turn spans 17 minutes, longer
/// than any timeout of the C++ (300 s for mobile clients).
pub(super) const SLOTS: usize = 1024;

/// Deadline buckets of connections.
pub(super) struct Wheel {
    slots: Vec<Vec<(u64, ConnId)>>,
    /// Width of a bucket in ms (the connection tick).
    width: u64,
    /// The last bucket handed out by [`Wheel::take_due`].
    processed: u64,
    /// Entries held, stale ones included.
    len: usize,
}

impl Wheel {
    /// An empty wheel of `width_ms` buckets, with every bucket up to `now_ms` done.
    pub(super) fn new(width_ms: u64, now_ms: u64) -> Wheel {
        let width = width_ms.max(1);
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            width,
            processed: now_ms / width,
            len: 0,
        }
    }

    /// The bucket of the next tick.
    pub(super) fn next_bucket(&self) -> u64 {
        self.processed + 1
    }

    /// The bucket a deadline of `when_ms` falls in: the first tick at or
    /// after it, and never one already handed out.
    pub(super) fn bucket_for(&self, when_ms: u64) -> u64 {
        when_ms.div_ceil(self.width).max(self.next_bucket())
    }

    /// Files `id` under `bucket`.
    pub(super) fn insert(&mut self, bucket: u64, id: ConnId) {
        self.slots[(bucket % SLOTS as u64) as usize].push((bucket, id));
        self.len += 1;
    }

    /// Moves into `out` every entry whose bucket ends at or before
    /// `now_ms`, looking only at the slots of the buckets not handed out
    /// yet (at most one turn of the wheel).
    pub(super) fn take_due(&mut self, now_ms: u64, out: &mut Vec<(u64, ConnId)>) {
        let current = now_ms / self.width;
        if current <= self.processed {
            return;
        }
        let first = self.processed + 1;
        let last = current.min(self.processed + SLOTS as u64);
        for bucket in first..=last {
            let slot = &mut self.slots[(bucket % SLOTS as u64) as usize];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].0 <= current {
                    out.push(slot.swap_remove(i));
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
        }
        self.processed = current;
    }

    /// Entries held, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32) -> ConnId {
        ConnId { key, serial: 1 }
    }

    fn due(w: &mut Wheel, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.take_due(now, &mut out);
        let mut keys: Vec<u32> = out.into_iter().map(|(_, i)| i.key).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_deadline_comes_due_at_the_first_tick_at_or_after_it() {
        let mut w = Wheel::new(1000, 10_500);
        assert_eq!(w.next_bucket(), 11);
        w.insert(w.bucket_for(12_000), id(1));
        w.insert(w.bucket_for(12_001), id(2));
        w.insert(w.bucket_for(0), id(3)); // past: the next tick
        assert_eq!(due(&mut w, 10_999), Vec::<u32>::new());
        assert_eq!(due(&mut w, 11_000), vec![3]);
        assert_eq!(due(&mut w, 11_999), Vec::<u32>::new());
        assert_eq!(due(&mut w, 12_000), vec![1]);
        assert_eq!(due(&mut w, 12_999), Vec::<u32>::new());
        assert_eq!(due(&mut w, 13_000), vec![2]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_deadline_past_a_turn_of_the_wheel_waits_for_its_turn() {
        let mut w = Wheel::new(1000, 0);
        let far = (SLOTS as u64 + 5) * 1000;
        w.insert(w.bucket_for(far), id(1));
        w.insert(w.bucket_for(5_000), id(2)); // the same slot, one turn earlier
        assert_eq!(due(&mut w, 5_000), vec![2]);
        for t in (6..SLOTS as u64 + 5).map(|s| s * 1000) {
            assert_eq!(due(&mut w, t), Vec::<u32>::new(), "at {t}");
        }
        assert_eq!(due(&mut w, far), vec![1]);
    }

    #[test]
    fn a_late_tick_hands_out_every_bucket_it_skipped_and_no_more() {
        let mut w = Wheel::new(1000, 0);
        for k in 1..=20u32 {
            w.insert(w.bucket_for(u64::from(k) * 1000), id(k));
        }
        assert_eq!(due(&mut w, 7_400), (1..=7).collect::<Vec<u32>>());
        // A stall longer than the whole wheel: everything due comes out once.
        w.insert(w.bucket_for(50_000_000), id(99));
        assert_eq!(due(&mut w, 10_000_000), (8..=20).collect::<Vec<u32>>());
        assert_eq!(w.len(), 1);
        assert_eq!(due(&mut w, 50_000_000), vec![99]);
    }

    #[test]
    fn a_tick_looks_only_at_its_own_bucket() {
        // 100,000 entries a minute away; a tick that has none due takes
        // nothing out and leaves every entry in place.
        let mut w = Wheel::new(1000, 0);
        for k in 0..100_000u32 {
            w.insert(w.bucket_for(60_000 + u64::from(k % 7) * 1000), id(k));
        }
        assert!(due(&mut w, 1_000).is_empty());
        assert_eq!(w.len(), 100_000);
        let n = due(&mut w, 60_000).len();
        assert_eq!(n, 100_000_usize.div_ceil(7));
    }
}
