//! The flow table: flows by 5-tuple (both directions of a connection find the same entry),
//! kept in order of last activity so that the idlest flow is found without a scan: idle
//! expiry and eviction take flows from the front, every packet moves its flow to the back.
//! Entries live in a slab linked by index, so a lookup, a touch or a removal allocates
//! nothing once the table has grown.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};

/// Marks the end of the activity list.
const NIL: u32 = u32::MAX;

/// A flow's identity: transport protocol and both endpoints, the lower one first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    proto: u8,
    lo: SocketAddr,
    hi: SocketAddr,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst` (the same for the reply).
    pub fn new(proto: u8, src: SocketAddr, dst: SocketAddr) -> FlowKey {
        let (lo, hi) = if order(&src) <= order(&dst) {
            (src, dst)
        } else {
            (dst, src)
        };
        FlowKey { proto, lo, hi }
    }
}

fn order(a: &SocketAddr) -> (IpAddr, u16) {
    (a.ip(), a.port())
}

/// FxHash (as in rustc): flow keys are not attacker-chosen in a way a table of this size
/// cares about, and SipHash would cost more than the rest of a lookup.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

struct Slot<V> {
    key: FlowKey,
    prev: u32,
    next: u32,
    last_ns: i64,
    value: Option<V>,
}

/// Flows by key, in order of last activity.
pub struct FlowTable<V> {
    map: HashMap<FlowKey, u32, BuildHasherDefault<FxHasher>>,
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    /// Least recently active.
    head: u32,
    /// Most recently active.
    tail: u32,
}

impl<V> Default for FlowTable<V> {
    fn default() -> Self {
        FlowTable {
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
}

impl<V> FlowTable<V> {
    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The slot of `key`, if tracked.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// Adds a flow as the most recently active one; returns its slot.
    pub fn insert(&mut self, key: FlowKey, value: V, now_ns: i64) -> u32 {
        let slot = Slot {
            key,
            prev: NIL,
            next: NIL,
            last_ns: now_ns,
            value: Some(value),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(old) = self.map.insert(key, idx) {
            // Callers remove a flow before adding one with the same key; keep the table
            // consistent all the same.
            self.unlink(old);
            self.slots[old as usize].value = None;
            self.free.push(old);
        }
        self.push_back(idx);
        idx
    }

    /// Marks the flow in `idx` as active now.
    pub fn touch(&mut self, idx: u32, now_ns: i64) {
        self.slots[idx as usize].last_ns = now_ns;
        if self.tail != idx {
            self.unlink(idx);
            self.push_back(idx);
        }
    }

    /// The flow in `idx`.
    pub fn get_mut(&mut self, idx: u32) -> &mut V {
        self.slots[idx as usize]
            .value
            .as_mut()
            .expect("a slot in the activity list holds a flow")
    }

    /// The least recently active flow and when it was last active.
    pub fn oldest(&self) -> Option<(u32, i64)> {
        (self.head != NIL).then(|| (self.head, self.slots[self.head as usize].last_ns))
    }

    /// Takes the flow in `idx` out of the table.
    pub fn remove(&mut self, idx: u32) -> V {
        self.unlink(idx);
        let slot = &mut self.slots[idx as usize];
        self.map.remove(&slot.key);
        self.free.push(idx);
        slot.value
            .take()
            .expect("a slot in the activity list holds a flow")
    }

    /// Every flow, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().filter_map(|s| s.value.as_mut())
    }

    /// Every flow with its slot and when it was last active, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, i64, &mut V)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.last_ns, s.value.as_mut()?)))
    }

    /// Slots of every flow, least recently active first.
    pub fn slots_by_age(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len());
        let mut i = self.head;
        while i != NIL {
            out.push(i);
            i = self.slots[i as usize].next;
        }
        out
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_back(&mut self, idx: u32) {
        let tail = self.tail;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.tail = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey::new(
            6,
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 2], 80)),
        )
    }

    #[test]
    fn both_directions_share_a_key() {
        let a = SocketAddr::from(([10, 0, 0, 1], 4000));
        let b = SocketAddr::from(([10, 0, 0, 2], 80));
        assert_eq!(FlowKey::new(6, a, b), FlowKey::new(6, b, a));
        assert_ne!(FlowKey::new(6, a, b), FlowKey::new(17, a, b));
    }

    #[test]
    fn keeps_flows_in_order_of_activity() {
        let mut t = FlowTable::default();
        let a = t.insert(key(1), "a", 10);
        let b = t.insert(key(2), "b", 20);
        let c = t.insert(key(3), "c", 30);
        assert_eq!(t.oldest(), Some((a, 10)));
        t.touch(a, 40);
        assert_eq!(t.oldest(), Some((b, 20)));
        assert_eq!(t.slots_by_age(), vec![b, c, a]);
        assert_eq!(t.remove(b), "b");
        assert_eq!(t.find(&key(2)), None);
        assert_eq!(t.oldest(), Some((c, 30)));
        let d = t.insert(key(4), "d", 50);
        assert_eq!(d, b, "a freed slot is used again");
        assert_eq!(t.slots_by_age(), vec![c, a, d]);
        assert_eq!(t.len(), 3);
        assert_eq!(*t.get_mut(t.find(&key(1)).unwrap()), "a");
        for idx in t.slots_by_age() {
            t.remove(idx);
        }
        assert_eq!(t.oldest(), None);
        assert_eq!(t.len(), 0);
    }
}
