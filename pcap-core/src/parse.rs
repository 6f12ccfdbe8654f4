//! Parsers for what users type on the command line: sizes, durations and points in time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Parses a size: bytes, or a number with K, M, G, T (powers of 1024; `KiB`, `MB` and `k`
/// are read the same way, as tcpdump and dumpcap users expect binary units).
pub fn size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad_size(s)),
    };
    let n: f64 = num.parse().map_err(|_| bad_size(s))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad_size(s));
    }
    Ok(bytes as u64)
}

fn bad_size(s: &str) -> Error {
    Error::Invalid(format!(
        "invalid size {s:?}: use a positive number of bytes, optionally with K, M, G or T \
         (for example 500M or 2G)"
    ))
}

/// Parses a duration: plain seconds (`90`) or with units (`30s`, `5m`, `2h`, `1d`, `1h30m`).
pub fn duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().map(Duration::from_secs).ok()
    } else {
        humantime::parse_duration(t).ok()
    };
    match d {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::Invalid(format!(
            "invalid duration {s:?}: use seconds (90) or a number with a unit (30s, 5m, 2h, 1d)"
        ))),
    }
}

/// Parses a point in time for `--since`/`--until` into unix nanoseconds: an RFC 3339 time
/// (`2026-11-22T14:05:00Z`, fractions allowed), unix seconds (`1795000000`, fractions
/// allowed), or a duration meaning that long before `now` (`30s`, `5m`, `2h`).
pub fn time(s: &str, now: SystemTime) -> Result<i64> {
    let t = s.trim();
    if t.contains('T') || t.contains('-') && t.contains(':') {
        let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
            Error::Invalid(format!(
                "invalid time {s:?}: {e}; use RFC 3339 (2026-11-22T14:05:00Z), unix seconds, \
                 or how long ago (30s, 5m, 2h)"
            ))
        })?;
        return Ok(unix_ns(at));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| bad_time(s))?;
        return Ok((secs * 1e9) as i64);
    }
    let ago = humantime::parse_duration(t).map_err(|_| bad_time(s))?;
    let at = now.checked_sub(ago).ok_or_else(|| bad_time(s))?;
    Ok(unix_ns(at))
}

fn bad_time(s: &str) -> Error {
    Error::Invalid(format!(
        "invalid time {s:?}: use RFC 3339 (2026-11-22T14:05:00Z), unix seconds (1795000000), \
         or how long ago (30s, 5m, 2h)"
    ))
}

/// Nanoseconds since the unix epoch (negative before it).
pub fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("1024").unwrap(), 1024);
        assert_eq!(size("1K").unwrap(), 1024);
        assert_eq!(size("500M").unwrap(), 500 << 20);
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("1.5g").unwrap(), 3 << 29);
        assert_eq!(size("10 MB").unwrap(), 10 << 20);
        for bad in ["", "0", "-5", "12X", "M", "1e999"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "0", "abc", "5 parsecs"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            time("2026-11-22T14:05:00Z", now).unwrap(),
            1_795_356_300_000_000_000
        );
        assert_eq!(
            time("2026-11-22T14:05:00.25Z", now).unwrap(),
            1_795_356_300_250_000_000
        );
        assert_eq!(time("1795000000", now).unwrap(), 1_795_000_000_000_000_000);
        assert_eq!(
            time("1795000000.5", now).unwrap(),
            1_795_000_000_500_000_000
        );
        assert_eq!(time("30s", now).unwrap(), 1_799_999_970_000_000_000);
        assert_eq!(time("2h", now).unwrap(), 1_799_992_800_000_000_000);
        for bad in ["", "yesterday", "2026-13-40T00:00:00Z", "5 parsecs"] {
            assert!(time(bad, now).is_err(), "{bad:?}");
        }
    }
}
