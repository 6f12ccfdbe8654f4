//! Parsers of option values, each checking the bound pcapd will check (from
//! `pcap_core::limits`), so that a value out of range is a usage error (exit status 2)
//! before anything connects; and [`Usage`], the same for what is checked after parsing.

use std::fmt;
use std::time::SystemTime;

use pcap_core::limits::{self, Bound, DURATION, MAX_AGE, MAX_SIZE, PACKET_COUNT, SNAPLEN};
use pcap_core::{parse, Error};

/// A command line refused before any call, for a reason clap could not see (a value that
/// depends on another, or on the `REMOTE:` prefix): exit status 2, as clap's own.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

impl From<Error> for Usage {
    fn from(e: Error) -> Self {
        Usage(message(e))
    }
}

/// The message of a refusal without the "invalid request" pcapd puts before it: here
/// nothing was sent yet.
fn message(e: Error) -> String {
    match e {
        Error::BadRequest(m) | Error::Invalid(m) => m,
        e => e.to_string(),
    }
}

/// `--duration`: seconds or a duration with units, within [`DURATION`].
pub fn duration(s: &str) -> Result<u64, String> {
    secs(s).and_then(|v| bounded(&DURATION, v))
}

/// `--max-age`: as [`duration`], within [`MAX_AGE`].
pub fn max_age(s: &str) -> Result<u64, String> {
    secs(s).and_then(|v| bounded(&MAX_AGE, v))
}

/// `--count` of `init`, `start` and `listen`: packets, within [`PACKET_COUNT`].
pub fn count(s: &str) -> Result<u64, String> {
    integer(s).and_then(|v| bounded(&PACKET_COUNT, v))
}

/// `--max-size`: bytes or a size with units, within [`MAX_SIZE`].
pub fn max_size(s: &str) -> Result<u64, String> {
    parse::size(s)
        .map_err(message)
        .and_then(|v| bounded(&MAX_SIZE, v))
}

/// `--snaplen`: bytes within [`SNAPLEN`], or 0 for the default (as `tcpdump -s 0`).
pub fn snaplen(s: &str) -> Result<u32, String> {
    match integer(s)? {
        0 => Ok(0),
        // The bound is within u32.
        v => bounded(&SNAPLEN, v).map(|v| v as u32),
    }
}

/// `--since`: a point in time, not before 1970.
pub fn since(s: &str) -> Result<i64, String> {
    time("--since", s)
}

/// `--until`: a point in time, not before 1970.
pub fn until(s: &str) -> Result<i64, String> {
    time("--until", s)
}

fn time(flag: &str, s: &str) -> Result<i64, String> {
    let t = parse::time(s, SystemTime::now()).map_err(message)?;
    limits::check_time(flag, t).map_err(message)
}

fn bounded(bound: &Bound, v: u64) -> Result<u64, String> {
    bound.check(v).map_err(message)
}

fn integer(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|e| format!("{e}"))
}

/// A duration in whole seconds; less than a second would mean "no limit" to the daemon.
fn secs(s: &str) -> Result<u64, String> {
    let d = parse::duration(s).map_err(message)?;
    match d.as_secs() {
        0 => Err(format!("{s:?} is less than a second: use at least 1s")),
        secs => Ok(secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_and_out() {
        assert_eq!(duration("5m"), Ok(300));
        assert_eq!(duration("315360000"), Ok(315_360_000));
        let e = duration("10000000000000000000").unwrap_err();
        assert_eq!(
            e,
            "--duration 10000000000000000000 s is out of range: use 1 s to 315360000 s (10 years)"
        );
        assert!(duration("10ms").unwrap_err().contains("less than a second"));
        assert!(max_age("300y")
            .unwrap_err()
            .contains("315360000 s (10 years)"));
        assert_eq!(count("1000000000000"), Ok(1_000_000_000_000));
        assert!(count("1000000000001")
            .unwrap_err()
            .contains("1 to 1000000000000"));
        assert!(count("0").unwrap_err().contains("out of range"));
        assert_eq!(max_size("1024T"), Ok(1 << 50));
        assert!(max_size("1025T").unwrap_err().contains("(1 PiB)"));
        assert_eq!(snaplen("0"), Ok(0));
        assert_eq!(snaplen("16"), Ok(16));
        assert!(snaplen("15").unwrap_err().contains("16 to 262144 bytes"));
        assert!(snaplen("99999999999").unwrap_err().contains("16 to 262144"));
        assert!(snaplen("abc").unwrap_err().contains("invalid digit"));
        assert_eq!(since("0"), Ok(0));
        assert!(since("100y").unwrap_err().contains("before 1970"));
        assert!(until("garbage").unwrap_err().contains("invalid time"));
    }

    #[test]
    fn usage_errors_drop_the_request_wording() {
        let u = Usage::from(Error::BadRequest("--since is later".into()));
        assert_eq!(u.to_string(), "--since is later");
    }
}
