//! IP fragment reassembly, bounded: etherparse's [`IpDefragBuf`] puts the pieces of one
//! packet together; this table keeps at most `max_sets` of them and `max_bytes` in all,
//! drops the oldest set to make room, and drops sets not completed within the timeout
//! (packet time).

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::defrag::IpDefragBuf;
use etherparse::IpNumber;

use crate::ip::{Fragment, IpPacket};

/// What identifies the fragments of one packet (RFC 791, RFC 8200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SetKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct FragSet {
    buf: IpDefragBuf,
    first_ns: i64,
}

/// Fragment sets in progress.
pub struct Defrag {
    sets: HashMap<SetKey, FragSet>,
    max_sets: usize,
    max_bytes: usize,
    timeout_ns: i64,
    bytes: usize,
    /// Buffers of finished sets, reused for new ones.
    spare: Vec<Vec<u8>>,
}

/// The most a reassembled IP payload can be.
const MAX_PACKET: usize = 65_535;

impl Defrag {
    /// A table of at most `max_sets` sets and `max_bytes` buffered.
    pub fn new(max_sets: usize, max_bytes: usize, timeout_ns: i64) -> Defrag {
        Defrag {
            sets: HashMap::new(),
            max_sets: max_sets.max(1),
            max_bytes,
            timeout_ns,
            bytes: 0,
            spare: Vec::new(),
        }
    }

    /// Bytes held in unfinished sets.
    pub fn buffered(&self) -> usize {
        self.bytes
    }

    /// Adds one fragment; returns the whole payload once the last piece is in. A fragment
    /// that conflicts with its set drops the set (its packet is lost).
    pub fn add(&mut self, ip: &IpPacket<'_>, frag: Fragment, now_ns: i64) -> Option<Vec<u8>> {
        let key = SetKey {
            src: ip.src,
            dst: ip.dst,
            id: frag.id,
            proto: ip.proto,
        };
        if !self.sets.contains_key(&key) {
            if self.max_bytes < ip.payload.len() {
                return None;
            }
            while self.sets.len() >= self.max_sets {
                self.drop_oldest();
            }
            let data = self.spare.pop().unwrap_or_default();
            let set = FragSet {
                buf: IpDefragBuf::new(IpNumber(ip.proto), data, Vec::new()),
                first_ns: now_ns,
            };
            self.sets.insert(key, set);
        }
        let set = self.sets.get_mut(&key)?;
        let before = set.buf.data().len();
        let added = set.buf.add(frag.offset, frag.more, ip.payload);
        let after = set.buf.data().len().min(MAX_PACKET);
        self.bytes = self.bytes + after - before.min(after);
        let complete = added.is_ok() && set.buf.is_complete();
        if added.is_err() {
            self.remove(&key);
            return None;
        }
        if complete {
            let set = self.sets.remove(&key)?;
            self.bytes -= set.buf.data().len().min(self.bytes);
            let (data, _) = set.buf.take_bufs();
            return Some(data);
        }
        while self.bytes > self.max_bytes && !self.sets.is_empty() {
            self.drop_oldest();
        }
        None
    }

    /// Returns a payload [`add`](Self::add) gave out, so that its buffer serves again.
    pub fn give_back(&mut self, mut data: Vec<u8>) {
        if self.spare.len() < 8 {
            data.clear();
            self.spare.push(data);
        }
    }

    /// Drops sets older than the timeout.
    pub fn expire(&mut self, now_ns: i64) {
        let timeout = self.timeout_ns;
        let mut freed = 0;
        self.sets.retain(|_, s| {
            let keep = now_ns.saturating_sub(s.first_ns) < timeout;
            if !keep {
                freed += s.buf.data().len();
            }
            keep
        });
        self.bytes -= freed.min(self.bytes);
    }

    /// Drops every set (the end of input).
    pub fn clear(&mut self) {
        self.sets.clear();
        self.bytes = 0;
    }

    fn drop_oldest(&mut self) {
        let oldest = self
            .sets
            .iter()
            .min_by_key(|(_, s)| s.first_ns)
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &SetKey) {
        if let Some(set) = self.sets.remove(key) {
            self.bytes -= set.buf.data().len().min(self.bytes);
            let (data, _) = set.buf.take_bufs();
            self.give_back(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip;
    use etherparse::{IpFragOffset, Ipv4Header};

    fn fragment(id: u16, offset_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(
            payload.len() as u16,
            64,
            IpNumber(17),
            [1, 1, 1, 1],
            [2, 2, 2, 2],
        )
        .unwrap();
        h.identification = id;
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new(offset_units).unwrap();
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn puts_fragments_together_in_any_order() {
        let mut d = Defrag::new(4, 1 << 20, 1_000);
        let second = fragment(9, 2, false, b"tail");
        let first = fragment(9, 0, true, b"0123456789abcdef");
        let p = ip::parse(&second).unwrap();
        assert!(d.add(&p, p.fragment.unwrap(), 0).is_none());
        assert!(d.buffered() > 0);
        let p = ip::parse(&first).unwrap();
        let whole = d.add(&p, p.fragment.unwrap(), 1).unwrap();
        assert_eq!(whole, b"0123456789abcdeftail");
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn is_bounded_in_sets_bytes_and_time() {
        let mut d = Defrag::new(2, 1 << 20, 1_000);
        for id in 0..10 {
            let f = fragment(id, 0, true, &[0; 64]);
            let p = ip::parse(&f).unwrap();
            assert!(d.add(&p, p.fragment.unwrap(), i64::from(id)).is_none());
            assert!(d.sets.len() <= 2);
        }
        d.expire(2_000);
        assert_eq!((d.sets.len(), d.buffered()), (0, 0));

        let mut d = Defrag::new(100, 100, 1_000);
        for id in 0..10 {
            let f = fragment(id, 0, true, &[0; 64]);
            let p = ip::parse(&f).unwrap();
            d.add(&p, p.fragment.unwrap(), 0);
            assert!(d.buffered() <= 100);
        }
        // A conflicting end drops the set.
        let mut d = Defrag::new(4, 1 << 20, 1_000);
        for (off, expect_bytes) in [(1, 16), (2, 0)] {
            let f = fragment(1, off, false, b"12345678");
            let p = ip::parse(&f).unwrap();
            assert!(d.add(&p, p.fragment.unwrap(), 0).is_none());
            assert_eq!(d.buffered(), expect_bytes);
        }
    }
}
