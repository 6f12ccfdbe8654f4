//! The range of every number and string a request can carry. `convert` refuses anything
//! outside them where a request enters the daemon, and the CLI checks the same limits before
//! it connects, so that nothing deeper (capture threads, retention, the spool) has to guard
//! against overflow.
//!
//! Every refusal is [`Error::BadRequest`] naming the field as a user knows it (`--duration`)
//! and the range it must be in.

use std::fmt;

use crate::{Error, Result};

/// Seconds in ten years (of 365 days): the longest duration or age a capture may be given.
/// Far beyond any real capture, and small enough that `secs * 1_000_000_000` fits an i64
/// (about 292 years) and `Instant + Duration` cannot overflow.
const TEN_YEARS_SECS: u64 = 10 * 365 * 86_400;

/// Most packets a stop condition or a `listen` may wait for: 10^12, more than a 100 Gbit/s
/// link carries in a day, with room left in every counter that adds to it.
pub const MAX_PACKET_COUNT: u64 = 1_000_000_000_000;

/// Most bytes of spool a capture may keep: 1 PiB, beyond any disk yet far from `u64::MAX`,
/// so that sums of sizes never overflow.
pub const MAX_SPOOL_BYTES: u64 = 1 << 50;

/// Fewest bytes kept of each packet: enough for link, IP and transport headers to mean
/// something, as tcpdump's smallest useful snaplen.
pub const MIN_SNAPLEN: u32 = 16;

/// Most bytes kept of each packet: libpcap's own default and maximum (262144).
pub const MAX_SNAPLEN: u32 = 262_144;

/// Longest alias, in bytes (aliases are ASCII).
pub const MAX_ALIAS_LEN: usize = 64;

/// Most aliases one capture may have.
pub const MAX_ALIASES: usize = 32;

/// Longest interface name: Linux's `IFNAMSIZ` (16) less the terminating NUL.
pub const MAX_INTERFACE_LEN: usize = 15;

/// Most interfaces one capture names.
pub const MAX_INTERFACES: usize = 64;

/// Longest BPF filter text a request may carry: 64 KiB. A hard ceiling on what is parsed at
/// all; the daemon applies its own, smaller, configurable `max_filter_len` after it.
pub const MAX_FILTER_BYTES: usize = 64 << 10;

/// Longest namespace path or name accepted (PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// Highest process id Linux gives (PID_MAX_LIMIT, 2^22).
pub const MAX_PID: u32 = 1 << 22;

/// A number a request can carry: the flag it is known by, its unit and its inclusive range.
/// Zero in the API means "none" or "the default" and is never checked against a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The option as a user types it, such as `--duration`.
    pub flag: &'static str,
    /// Unit after each number in messages (`s`, `bytes`).
    pub unit: &'static str,
    pub min: u64,
    pub max: u64,
    /// The maximum as people say it (`10 years`), or empty.
    pub max_words: &'static str,
}

/// `init --duration`, `start --duration`: stop after this many seconds.
pub const DURATION: Bound = Bound {
    flag: "--duration",
    unit: "s",
    min: 1,
    max: TEN_YEARS_SECS,
    max_words: "10 years",
};

/// `init --count`, `start --count`: stop after this many packets.
pub const PACKET_COUNT: Bound = Bound {
    flag: "--count",
    unit: "packets",
    min: 1,
    max: MAX_PACKET_COUNT,
    max_words: "10^12",
};

/// `listen --count`: end after this many packets.
pub const LISTEN_COUNT: Bound = PACKET_COUNT;

/// `init --max-size`: bytes of spool kept.
pub const MAX_SIZE: Bound = Bound {
    flag: "--max-size",
    unit: "bytes",
    min: 1,
    max: MAX_SPOOL_BYTES,
    max_words: "1 PiB",
};

/// `init --max-age`: seconds a packet is kept.
pub const MAX_AGE: Bound = Bound {
    flag: "--max-age",
    unit: "s",
    min: 1,
    max: TEN_YEARS_SECS,
    max_words: "10 years",
};

/// `init --snaplen`: bytes kept of each packet.
pub const SNAPLEN: Bound = Bound {
    flag: "--snaplen",
    unit: "bytes",
    min: MIN_SNAPLEN as u64,
    max: MAX_SNAPLEN as u64,
    max_words: "",
};

impl Bound {
    /// `value` if it is within the range; otherwise a message with the flag and the range.
    pub fn check(&self, value: u64) -> Result<u64> {
        if (self.min..=self.max).contains(&value) {
            return Ok(value);
        }
        // Seconds read best with their unit ("--duration 5 s"), other values without it.
        let unit = if self.unit == "s" { " s" } else { "" };
        Err(Error::BadRequest(format!(
            "{} {value}{unit} is out of range: use {self}",
            self.flag
        )))
    }

    /// [`Bound::check`] for a value where 0 means "none": `None` for 0.
    pub fn check_nonzero(&self, value: u64) -> Result<Option<u64>> {
        match value {
            0 => Ok(None),
            v => self.check(v).map(Some),
        }
    }
}

/// The range as a message puts it: `1 s to 315360000 s (10 years)`.
impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, max, unit) = (self.min, self.max, self.unit);
        match unit {
            "s" => write!(f, "{min} s to {max} s")?,
            _ => write!(f, "{min} to {max} {unit}")?,
        }
        if !self.max_words.is_empty() {
            write!(f, " ({})", self.max_words)?;
        }
        Ok(())
    }
}

/// Checks a point in time of `--since` or `--until` (`flag`), in unix nanoseconds: pcap
/// timestamps are unsigned seconds since 1970, so nothing earlier can match.
pub fn check_time(flag: &str, unix_ns: i64) -> Result<i64> {
    if unix_ns < 0 {
        return Err(Error::BadRequest(format!(
            "{flag} {unix_ns} ns is before 1970: packets carry times from 1970-01-01T00:00:00Z \
             on, so use 0 or later"
        )));
    }
    Ok(unix_ns)
}

/// Checks `--since` and `--until`, those given: each with [`check_time`], and `--since`
/// not later than `--until`.
pub fn check_time_range(since_ns: Option<i64>, until_ns: Option<i64>) -> Result<()> {
    since_ns.map(|t| check_time("--since", t)).transpose()?;
    until_ns.map(|t| check_time("--until", t)).transpose()?;
    match (since_ns, until_ns) {
        (Some(s), Some(u)) if s > u => Err(Error::BadRequest(
            "--since is later than --until: nothing could match; give --since first in time".into(),
        )),
        _ => Ok(()),
    }
}

/// Checks the length of a BPF filter's text, `flag` saying where it came from.
pub fn check_filter(flag: &str, filter: &str) -> Result<()> {
    if filter.len() > MAX_FILTER_BYTES {
        return Err(Error::BadRequest(format!(
            "{flag} is {} bytes long: a filter has at most {MAX_FILTER_BYTES} bytes (64 KiB)",
            filter.len()
        )));
    }
    Ok(())
}

/// Most `--decode` or `--proto` rules one capture or request may carry.
pub const MAX_DECODE_RULES: usize = 16;

/// Checks the number of decode rules (`flag`: `--decode` or `--proto`).
pub fn check_decode_rules(flag: &str, n: usize) -> Result<()> {
    if n > MAX_DECODE_RULES {
        return Err(Error::BadRequest(format!(
            "{n} {flag} rules given: at most {MAX_DECODE_RULES}; name several ports in one rule \
             (http:80,8080) instead"
        )));
    }
    Ok(())
}

/// Checks the number of aliases of one capture.
pub fn check_alias_count(n: usize) -> Result<()> {
    if n > MAX_ALIASES {
        return Err(Error::BadRequest(format!(
            "{n} aliases given (--alias): a capture has at most {MAX_ALIASES}"
        )));
    }
    Ok(())
}

/// Checks an interface name as Linux does (`dev_valid_name`): 1 to 15 bytes, not `.` or
/// `..`, no `/` and no whitespace; control characters are refused too, as no tool could
/// type them. A `:` is allowed, for IPv4 alias labels such as `eth0:1`.
pub fn check_interface(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_INTERFACE_LEN {
        "it is longer than 15 bytes, the most Linux allows (IFNAMSIZ)"
    } else if name == "." || name == ".." {
        "`.` and `..` are not interface names"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.chars().any(char::is_whitespace) {
        "it contains whitespace"
    } else if name.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::BadRequest(format!(
        "interface name {name:?} is not valid: {why}; give 1 to {MAX_INTERFACE_LEN} bytes \
         without '/' or whitespace (see `pcap ifaces`), or none for all interfaces"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_durations_fit_nanoseconds_in_an_i64() {
        for b in [DURATION, MAX_AGE] {
            let ns = i64::try_from(b.max).unwrap().checked_mul(1_000_000_000);
            assert!(ns.is_some(), "{} max {} overflows", b.flag, b.max);
        }
        assert_eq!(DURATION.max, 315_360_000);
    }

    #[test]
    fn messages_name_the_flag_and_the_range() {
        let e = DURATION.check(10_000_000_000_000_000_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid request: --duration 10000000000000000000 s is out of range: \
             use 1 s to 315360000 s (10 years)"
        );
        let e = SNAPLEN.check(15).unwrap_err().to_string();
        assert!(e.ends_with("--snaplen 15 is out of range: use 16 to 262144 bytes"));
        assert_eq!(MAX_SIZE.check_nonzero(0).unwrap(), None);
        assert_eq!(MAX_SIZE.check_nonzero(1 << 50).unwrap(), Some(1 << 50));
    }
}
