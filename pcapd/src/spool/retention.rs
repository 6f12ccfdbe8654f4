//! Retention: how much of a capture's spool is kept. Oldest closed segments go first;
//! the segment being written is never deleted.

use std::path::Path;

use crate::store::SegmentMeta;

/// Limits of one capture's spool, plus the daemon-wide free-space floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionPolicy {
    pub max_bytes: u64,
    pub max_age_ns: Option<i64>,
    /// Percentage of the filesystem kept free.
    pub floor_percent: f64,
}

impl RetentionPolicy {
    /// Size at which the open segment is rotated: an eighth of the byte limit, so that
    /// retention deletes in steps of about 12%, within 64 KiB..64 MiB.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(64 << 10, 64 << 20)
    }

    /// Age at which the open segment is rotated so that age-based retention can act.
    pub fn segment_age_ns(&self) -> Option<i64> {
        self.max_age_ns.map(|a| (a / 4).max(1_000_000_000))
    }

    /// How many of the oldest `closed` segments exceed the byte or age limit, given that the
    /// open segment holds `open_bytes`.
    pub fn expired(&self, closed: &[SegmentMeta], open_bytes: u64, now_ns: i64) -> usize {
        let mut total: u64 = closed.iter().map(|s| s.bytes).sum::<u64>() + open_bytes;
        let mut n = 0;
        for seg in closed {
            let too_big = total > self.max_bytes;
            let too_old = self
                .max_age_ns
                .is_some_and(|age| seg.last_ts_ns < now_ns - age);
            if !too_big && !too_old {
                break;
            }
            total -= seg.bytes;
            n += 1;
        }
        n
    }

    /// Bytes missing to the free-space floor on the filesystem holding `dir` (0 if none).
    pub fn floor_deficit(&self, dir: &Path) -> u64 {
        if self.floor_percent <= 0.0 {
            return 0;
        }
        let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
            return 0;
        };
        let frsize = st.fragment_size();
        let total = st.blocks() * frsize;
        let avail = st.blocks_available() * frsize;
        let floor = (total as f64 * self.floor_percent / 100.0) as u64;
        floor.saturating_sub(avail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first_seq: u64, bytes: u64, last_ts_ns: i64) -> SegmentMeta {
        SegmentMeta {
            first_seq,
            packets: 1,
            first_ts_ns: last_ts_ns,
            last_ts_ns,
            bytes,
        }
    }

    #[test]
    fn oldest_go_first_until_under_the_byte_limit() {
        let p = RetentionPolicy {
            max_bytes: 250,
            max_age_ns: None,
            floor_percent: 0.0,
        };
        let closed = [seg(1, 100, 1), seg(2, 100, 2), seg(3, 100, 3)];
        assert_eq!(p.expired(&closed, 0, 10), 1);
        assert_eq!(p.expired(&closed, 60, 10), 2);
        assert_eq!(p.expired(&closed[2..], 0, 10), 0);
    }

    #[test]
    fn age_limit_expires_old_segments_only() {
        let p = RetentionPolicy {
            max_bytes: u64::MAX,
            max_age_ns: Some(10),
            floor_percent: 0.0,
        };
        let closed = [seg(1, 1, 5), seg(2, 1, 15), seg(3, 1, 25)];
        assert_eq!(p.expired(&closed, 0, 20), 1);
        assert_eq!(p.expired(&closed, 0, 100), 3);
    }

    #[test]
    fn segment_size_follows_the_limit() {
        let p = |max_bytes| RetentionPolicy {
            max_bytes,
            max_age_ns: None,
            floor_percent: 5.0,
        };
        assert_eq!(p(1 << 30).segment_bytes(), 64 << 20);
        assert_eq!(p(256 << 10).segment_bytes(), 64 << 10);
        assert_eq!(p(8 << 20).segment_bytes(), 1 << 20);
    }
}
