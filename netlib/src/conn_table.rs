//! [`ConnTable`]: a server's own values for each of its connections, found
//! by the connection's slab slot (the C++ keeps such values in maps keyed
//! by the socket handle, `ConnMap_t`).
//!
//! Not a hash map: the reactor hands out slots densely from 0 and reuses
//! them, so a vector indexed by slot holds the same entries in about 60 %
//! of the memory of a `HashMap<ConnId, T>` at the sizes a msg_server runs
//! at (a hash table doubles at 7/8 full and keeps a control byte a bucket;
//! this grows by an eighth), and a lookup touches one place in memory
//! instead of two. An entry remembers the whole [`ConnId`], so a stale id
//! (its connection closed, the slot reused) finds nothing, as with a map.

use crate::ConnId;

/// Values of type `T` for connections of one reactor, by [`ConnId`]. The
/// API is the part of `HashMap<ConnId, T>` the servers use; iteration goes
/// by slot (a map's order is arbitrary anyway).
#[derive(Debug, Clone)]
pub struct ConnTable<T> {
    slots: Vec<Option<(ConnId, T)>>,
    len: usize,
}

impl<T> Default for ConnTable<T> {
    fn default() -> Self {
        ConnTable::new()
    }
}

impl<T> ConnTable<T> {
    /// An empty table.
    pub fn new() -> ConnTable<T> {
        ConnTable {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// The value of `id`, if it has one (a stale id has none).
    pub fn get(&self, id: &ConnId) -> Option<&T> {
        match self.slots.get(id.slot()) {
            Some(Some((held, v))) if held == id => Some(v),
            _ => None,
        }
    }

    /// The value of `id`, to change.
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut T> {
        match self.slots.get_mut(id.slot()) {
            Some(Some((held, v))) if held == id => Some(v),
            _ => None,
        }
    }

    /// Sets the value of `id`; returns the value its slot held for the same
    /// id. A value left in the slot by an older connection is dropped.
    pub fn insert(&mut self, id: ConnId, value: T) -> Option<T> {
        let slot = id.slot();
        if slot >= self.slots.len() {
            // Grow by an eighth (at least to the slot): no doubling.
            let want = (slot + 1).max(self.slots.len() + self.slots.len() / 8);
            self.slots.reserve_exact(want - self.slots.len());
            self.slots.resize_with(want, || None);
        }
        match self.slots[slot].replace((id, value)) {
            Some((held, old)) if held == id => Some(old),
            Some(_) => None,
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// Takes the value of `id` out.
    pub fn remove(&mut self, id: &ConnId) -> Option<T> {
        let entry = self.slots.get_mut(id.slot())?;
        if entry.as_ref().is_some_and(|(held, _)| held == id) {
            self.len -= 1;
            entry.take().map(|(_, v)| v)
        } else {
            None
        }
    }

    /// Number of connections with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no connection has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every (id, value), by slot.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnId, &T)> {
        self.slots
            .iter()
            .filter_map(|e| e.as_ref().map(|(id, v)| (id, v)))
    }

    /// Every id with a value, by slot.
    pub fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.iter().map(|(id, _)| id)
    }

    /// Slots allocated (for memory accounting and tests).
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32, serial: u32) -> ConnId {
        ConnId::from_u64((u64::from(serial) << 32) | u64::from(key))
    }

    #[test]
    fn behaves_as_a_map_of_live_ids() {
        let mut t = ConnTable::new();
        assert!(t.is_empty());
        assert_eq!(t.insert(id(3, 1), "a"), None);
        assert_eq!(t.insert(id(0, 2), "b"), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&id(3, 1)), Some(&"a"));
        assert_eq!(t.insert(id(3, 1), "a2"), Some("a"), "same id: replaced");
        assert_eq!(t.len(), 2);
        // A stale id (slot 3 with another serial) finds nothing.
        assert_eq!(t.get(&id(3, 9)), None);
        assert_eq!(t.remove(&id(3, 9)), None);
        assert_eq!(t.len(), 2);
        // Far past the end, as an id decoded from attach data may be.
        assert_eq!(t.get(&id(u32::MAX, 1)), None);
        assert_eq!(t.remove(&id(1_000_000, 1)), None);
        *t.get_mut(&id(0, 2)).expect("there") = "b2";
        let all: Vec<_> = t.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, vec![(id(0, 2), "b2"), (id(3, 1), "a2")]);
        assert_eq!(t.remove(&id(3, 1)), Some("a2"));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&id(3, 1)), None);
        // A new connection in a slot an old one left a value in.
        t.insert(id(5, 4), "old");
        assert_eq!(t.insert(id(5, 7), "new"), None);
        assert_eq!(t.len(), 2, "the old value was dropped, not counted twice");
        assert_eq!(t.get(&id(5, 7)), Some(&"new"));
        assert_eq!(t.keys().count(), 2);
    }

    #[test]
    fn grows_by_an_eighth_not_by_doubling() {
        let mut t = ConnTable::new();
        for k in 0..20_000u32 {
            t.insert(id(k, 1), k);
        }
        assert_eq!(t.len(), 20_000);
        assert!(
            t.capacity() < 20_000 + 20_000 / 8 + 16,
            "capacity {} for 20,000",
            t.capacity()
        );
    }
}
