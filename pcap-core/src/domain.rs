//! Domain types of captures, independent of gRPC. The daemon's registry stores them,
//! `convert` maps them to and from the API messages.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Small integer naming a capture; never reused.
pub type CaptureId = u64;

/// A capture name chosen by a user: 1-64 of letters, digits, `.`, `_`, `-`; not all digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Alias(String);

impl Alias {
    /// Validates a user-supplied alias.
    pub fn new(name: &str) -> Result<Self> {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if name.is_empty() || name.len() > 64 || !ok_chars {
            return Err(Error::Invalid(format!(
                "invalid alias {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
            )));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Invalid(format!(
                "invalid alias {name:?}: an alias cannot be all digits, those name capture ids"
            )));
        }
        Ok(Alias(name.to_owned()))
    }

    /// The alias as typed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Alias {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Alias::new(&s)
    }
}

impl From<Alias> for String {
    fn from(a: Alias) -> String {
        a.0
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which captures a call applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Id(CaptureId),
    Alias(Alias),
    All,
}

impl Selector {
    /// Parses what a user typed: all digits is an id, anything else an alias.
    pub fn parse(s: &str) -> Result<Self> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Selector::Id)
                .map_err(|_| Error::Invalid(format!("capture id {s:?} is out of range")));
        }
        if s.is_empty() {
            return Err(Error::Invalid(
                "no capture given: name one by id or alias, or use --all".into(),
            ));
        }
        Alias::new(s).map(Selector::Alias)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Id(id) => write!(f, "{id}"),
            Selector::Alias(a) => write!(f, "{a}"),
            Selector::All => f.write_str("--all"),
        }
    }
}

/// Where a capture listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Interface name; `None` captures on all interfaces.
    pub interface: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface.as_deref().unwrap_or("any"))
    }
}

/// Life cycle of a capture; see DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Pending,
    Active,
    Retrying,
    Paused,
    Finished,
    Failed,
}

impl State {
    /// Whether a capture thread should be running in this state.
    pub fn is_running(self) -> bool {
        matches!(self, State::Active | State::Retrying)
    }

    /// Upper-case name as shown in `pcap list`.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Active => "ACTIVE",
            State::Retrying => "RETRYING",
            State::Paused => "PAUSED",
            State::Finished => "FINISHED",
            State::Failed => "FAILED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Conditions that end a capture by themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopConditions {
    pub duration_secs: Option<u64>,
    pub packet_count: Option<u64>,
}

/// How much of a capture's spool is kept; `None` means the daemon's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age_secs: Option<u64>,
}

/// What a user asks for in `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    pub target: Target,
    pub filter: String,
    pub aliases: Vec<Alias>,
    pub snaplen: u32,
    pub promisc: bool,
    pub stop: StopConditions,
    pub retention: Retention,
}

/// Counters of a capture; see the `Counters` message for each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub received: u64,
    pub dropped_kernel: u64,
    pub dropped_interface: u64,
    pub spooled_packets: u64,
    pub spooled_bytes: u64,
    pub spool_bytes: u64,
    pub spool_segments: u32,
    pub expired_packets: u64,
}

/// Everything known of one capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInfo {
    pub id: CaptureId,
    pub aliases: Vec<Alias>,
    pub target: Target,
    pub filter: String,
    pub applied_filter: String,
    pub snaplen: u32,
    pub promisc: bool,
    pub stop: StopConditions,
    pub retention: Retention,
    pub owner: String,
    pub state: State,
    pub reason: String,
    pub counters: Counters,
    pub link_type: u32,
    pub created_unix_ns: i64,
    pub started_unix_ns: i64,
}

/// A `Replay` call: what is spooled, optionally bounded in time and filtered, then live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySpec {
    pub selector: Selector,
    pub live: bool,
    pub since_unix_ns: Option<i64>,
    pub until_unix_ns: Option<i64>,
    pub filter: String,
    /// Packets as savefile records ([`RecordBatch`](crate::api::RecordBatch)) rather than
    /// one message per packet.
    pub raw_records: bool,
}

/// A `Listen` call: new packets only, optionally a bounded number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub selector: Selector,
    pub count: Option<u64>,
    /// As [`ReplaySpec::raw_records`].
    pub raw_records: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_follow_the_contract() {
        for ok in ["web", "a", "dns-1", "x.y_z", "1a", &"a".repeat(64)] {
            assert!(Alias::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in ["", "123", "has space", "slash/x", "ü", &"a".repeat(65)] {
            assert!(Alias::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn selectors_tell_ids_from_aliases() {
        assert_eq!(Selector::parse("12").unwrap(), Selector::Id(12));
        assert_eq!(
            Selector::parse("web").unwrap(),
            Selector::Alias(Alias::new("web").unwrap())
        );
        assert!(Selector::parse("99999999999999999999999").is_err());
        assert!(Selector::parse("").is_err());
    }
}
