//! Parsers for what users type on the command line: sizes, durations and points in time;
//! and sizes written back for people to read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Parses a size: bytes, or a number with K, M, G, T, P (powers of 1024; `KiB`, `MB` and `k`
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
        "p" => 1 << 50,
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
        "invalid size {s:?}: use a positive number of bytes, optionally with K, M, G, T or P \
         (for example 500M or 2G)"
    ))
}

/// A byte count in binary units with one decimal, for tables, progress and messages:
/// `512 B`, `1.2 MiB`, `3.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit when rounding to one decimal would show 1024.0.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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
        return checked_unix_ns(at, s);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Exact: whole seconds and up to nine digits of fraction, no float rounding.
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
            return Err(bad_time(s));
        }
        let secs: i64 = match whole {
            "" => 0,
            w => w.parse().map_err(|_| out_of_range(s))?,
        };
        let digits = &frac[..frac.len().min(9)];
        let nanos: i64 = format!("{digits:0<9}").parse().map_err(|_| bad_time(s))?;
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(nanos))
            .ok_or_else(|| out_of_range(s));
    }
    let ago = humantime::parse_duration(t).map_err(|_| bad_time(s))?;
    let at = now.checked_sub(ago).ok_or_else(|| bad_time(s))?;
    checked_unix_ns(at, s)
}

/// [`unix_ns`], refusing times that nanoseconds in an i64 cannot hold (before 1677, after 2262).
fn checked_unix_ns(t: SystemTime, s: &str) -> Result<i64> {
    let fits = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() <= i64::MAX as u128,
        Err(e) => e.duration().as_nanos() <= i64::MAX as u128,
    };
    if fits {
        Ok(unix_ns(t))
    } else {
        Err(Error::Invalid(format!(
            "time {s:?} is out of range: use a time between the years 1678 and 2262"
        )))
    }
}

fn out_of_range(s: &str) -> Error {
    Error::Invalid(format!(
        "time {s:?} is out of range: unix seconds go up to {} (the year 2262)",
        i64::MAX / 1_000_000_000
    ))
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
    fn times_beyond_what_nanoseconds_hold_are_refused() {
        let now = SystemTime::now();
        for bad in [
            "99999999999999999999999",
            "9999999999.5e9",
            "9999-01-01T00:00:00Z",
            "300000y",
        ] {
            let e = time(bad, now).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(time("9223372035", now).unwrap(), 9_223_372_035_000_000_000);
        assert_eq!(
            time("1795000000.000000001", now).unwrap(),
            1_795_000_000_000_000_001
        );
        assert_eq!(time("1.5", now).unwrap(), 1_500_000_000);
        assert!(time("1.2.3", now).is_err());
        assert!(time(".", now).is_err());
        assert!(time("2262-01-01T00:00:00Z", now).is_ok());
    }

    #[test]
    fn sizes_read_like_people_say_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1_258_291), "1.2 MiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn sizes() {
        assert_eq!(size("1024").unwrap(), 1024);
        assert_eq!(size("1K").unwrap(), 1024);
        assert_eq!(size("500M").unwrap(), 500 << 20);
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("1.5g").unwrap(), 3 << 29);
        assert_eq!(size("10 MB").unwrap(), 10 << 20);
        assert_eq!(size("1PiB").unwrap(), 1 << 50);
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
