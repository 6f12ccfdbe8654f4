//! Domain types of captures, independent of gRPC. The daemon's registry stores them,
//! `convert` maps them to and from the API messages.

use std::fmt;

use pcap_decode::ProtoRule;
use serde::{Deserialize, Serialize};

use crate::limits::{self, MAX_ALIAS_LEN};
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
        if name.is_empty() || name.len() > MAX_ALIAS_LEN || !ok_chars {
            return Err(Error::Invalid(format!(
                "invalid alias {name:?}: use 1 to {MAX_ALIAS_LEN} letters, digits, '.', '_' or '-'"
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
            let id = s.parse().map_err(|_| {
                Error::Invalid(format!(
                    "capture id {s:?} is out of range: ids go from 1 to {}",
                    CaptureId::MAX
                ))
            })?;
            return Selector::id(id);
        }
        if s.is_empty() {
            return Err(Error::Invalid(
                "no capture given: name one by id or alias, or use --all".into(),
            ));
        }
        Alias::new(s).map(Selector::Alias)
    }
}

impl Selector {
    /// The selector of one capture id; ids start at 1, so 0 names no capture.
    pub fn id(id: CaptureId) -> Result<Self> {
        match id {
            0 => Err(Error::Invalid(
                "capture id 0 is out of range: ids start at 1 (see `pcap list`)".into(),
            )),
            id => Ok(Selector::Id(id)),
        }
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

pub use crate::target::{Netns, Target};

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

/// Conditions that end a capture by themselves. Made with [`StopConditions::new`], each
/// is within its [`limits`] bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopConditions {
    /// At most [`limits::DURATION`]`.max`.
    pub duration_secs: Option<u64>,
    /// At most [`limits::PACKET_COUNT`]`.max`.
    pub packet_count: Option<u64>,
}

impl StopConditions {
    /// Checked stop conditions; 0 means none, as in the API.
    pub fn new(duration_secs: u64, packet_count: u64) -> Result<Self> {
        Ok(StopConditions {
            duration_secs: limits::DURATION.check_nonzero(duration_secs)?,
            packet_count: limits::PACKET_COUNT.check_nonzero(packet_count)?,
        })
    }
}

/// How much of a capture's spool is kept; `None` means the daemon's default. Made with
/// [`Retention::new`], each is within its [`limits`] bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// At most [`limits::MAX_SIZE`]`.max`.
    pub max_bytes: Option<u64>,
    /// At most [`limits::MAX_AGE`]`.max`, so that it fits in nanoseconds as an i64.
    pub max_age_secs: Option<u64>,
}

impl Retention {
    /// Checked retention; 0 means the daemon's default, as in the API.
    pub fn new(max_bytes: u64, max_age_secs: u64) -> Result<Self> {
        Ok(Retention {
            max_bytes: limits::MAX_SIZE.check_nonzero(max_bytes)?,
            max_age_secs: limits::MAX_AGE.check_nonzero(max_age_secs)?,
        })
    }
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
    /// Protocols decoded while capturing, for metrics (`--decode`).
    pub decode: Vec<ProtoRule>,
}

/// What a user asks for in `import`: the file's name (for the reason), the aliases, and
/// what the file's records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSpec {
    pub file_name: String,
    pub aliases: Vec<Alias>,
    pub link_type: u32,
    pub snaplen: u32,
}

/// Calls the macro `$m` with every capture counter's name and type: the one list of them,
/// from which [`Counters`], its conversions and the daemon's live counters are made.
#[macro_export]
macro_rules! counter_fields {
    ($m:ident) => {
        $m! {
            received: u64,
            dropped_kernel: u64,
            dropped_interface: u64,
            spooled_packets: u64,
            spooled_bytes: u64,
            spool_bytes: u64,
            spool_segments: u32,
            expired_packets: u64,
            deferred_closes: u64,
            ring_bytes: u64,
            ring_resizes: u64,
        }
    };
}

macro_rules! counters_struct {
    ($($field:ident: $ty:ty,)*) => {
        /// Counters of a capture; see the `Counters` message for each field. A field added
        /// later reads as 0 from a registry written before it.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Counters {
            $(pub $field: $ty,)*
        }
    };
}
counter_fields!(counters_struct);

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
    /// The process whose namespace a capture in another namespace was found through (a
    /// `--pid` target, or what held an inode): a reused pid is never taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<ProcessRef>,
    /// Interface index -> name, as the capture found them each time it opened its
    /// interfaces; an index keeps the last name it had. LINUX_SLL2 records carry the index.
    #[serde(default)]
    pub interface_names: std::collections::BTreeMap<u32, String>,
    /// Protocols decoded while capturing (`--decode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decode: Vec<ProtoRule>,
    /// For a namespace named by inode: its cookie when the capture was defined, since an
    /// inode number is given to a new namespace as soon as the old one is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
    /// The file the capture was imported from (`pcap import`): such a capture has no
    /// interface and is never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// A process, known by its pid and its start time (clock ticks after boot), since pids are
/// reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub start_time: u64,
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
    /// Spooled records in microseconds (see `ReplayRequest.microseconds`).
    pub microseconds: bool,
    /// The segment files handed over rather than streamed (see `ReplayRequest.segment_handoff`).
    pub segment_handoff: bool,
}

impl ReplaySpec {
    /// The time bounds records are judged against, `(since, until)` in unix ns. With
    /// microseconds, records are judged by the microsecond times they are written with,
    /// against bounds cut to the microsecond too: a record in the same microsecond as a
    /// bound shows that bound's time in the file, and is kept. One rule for pcapd's
    /// streamed replays and the segment files `pcap` reads itself.
    pub fn time_bounds(&self) -> (Option<i64>, Option<i64>) {
        let cut = |t: Option<i64>| match self.microseconds {
            true => t.map(|t| t - t.rem_euclid(1_000)),
            false => t,
        };
        (cut(self.since_unix_ns), cut(self.until_unix_ns))
    }
}

/// A `Decode` call: roundtrips from what is spooled (optionally bounded in time and
/// filtered), then live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeSpec {
    pub selector: Selector,
    pub live: bool,
    pub since_unix_ns: Option<i64>,
    pub until_unix_ns: Option<i64>,
    pub filter: String,
    /// Protocols (and ports) to decode; empty: all, recognised by content.
    pub protocols: Vec<ProtoRule>,
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
    fn time_bounds_are_cut_to_the_microsecond_only_for_microsecond_output() {
        let mut spec = ReplaySpec {
            selector: Selector::Id(1),
            live: false,
            since_unix_ns: Some(1_700_000_000_123_456_789),
            until_unix_ns: Some(-1_500),
            filter: String::new(),
            raw_records: true,
            microseconds: false,
            segment_handoff: false,
        };
        assert_eq!(
            spec.time_bounds(),
            (Some(1_700_000_000_123_456_789), Some(-1_500))
        );
        spec.microseconds = true;
        assert_eq!(
            spec.time_bounds(),
            (Some(1_700_000_000_123_456_000), Some(-2_000))
        );
    }

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
        let zero = Selector::parse("0").unwrap_err().to_string();
        assert!(zero.contains("ids start at 1"), "{zero}");
    }

    #[test]
    fn interface_names_follow_linux() {
        assert!(Target::named("").unwrap().interfaces.is_empty());
        assert!(Target::named("any").unwrap().interfaces.is_empty());
        for ok in ["lo", "eth0", "eth0:1", "a23456789012345", "veth-x.10"] {
            assert_eq!(Target::named(ok).unwrap().single_interface(), Some(ok));
        }
        for bad in [
            "a234567890123456",
            ".",
            "..",
            "../../etc",
            "a b",
            "a\tb",
            "a\0b",
        ] {
            let e = Target::named(bad).unwrap_err().to_string();
            assert!(e.contains("1 to 15 bytes"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn several_interfaces_are_distinct_and_bounded() {
        let t = Target::named("eth0, eth1").unwrap();
        assert_eq!(t.interfaces, ["eth0", "eth1"]);
        assert_eq!(t.single_interface(), None);
        assert_eq!(t.to_string(), "eth0,eth1");
        for (bad, says) in [
            ("eth0,eth0", "named twice"),
            ("eth0,,eth1", "empty interface name"),
            ("eth0,", "empty interface name"),
            ("eth0,any", "`any` means all"),
            ("eth0,a b", "1 to 15 bytes"),
        ] {
            let e = Target::named(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let many: Vec<String> = (0..=limits::MAX_INTERFACES)
            .map(|i| format!("v{i}"))
            .collect();
        let e = Target::named(&many.join(",")).unwrap_err().to_string();
        assert!(e.contains("at most 64"), "{e}");
        assert!(Target::named(&many[1..].join(",")).is_ok());
    }

    #[test]
    fn targets_show_their_interfaces() {
        let mut t = Target::named("eth0,eth1").unwrap();
        t.netns = Some(Netns::Name("blue".into()));
        assert_eq!(t.to_string(), "netns blue: eth0,eth1");
        assert_eq!(Target::default().to_string(), "any");
        let all = Target {
            netns: Some(Netns::Name("blue".into())),
            ..Target::default()
        };
        assert_eq!(all.to_string(), "netns blue: all");
    }

    #[test]
    fn stored_targets_of_one_interface_still_read() {
        let old: Target = serde_json::from_str(r#"{"interface": "lo"}"#).unwrap();
        assert_eq!(old.interfaces, ["lo"]);
        let old_all: Target = serde_json::from_str(r#"{"interface": null}"#).unwrap();
        assert!(old_all.interfaces.is_empty());
        let old_ns: Target =
            serde_json::from_str(r#"{"interface": null, "netns": {"Name": "blue"}}"#).unwrap();
        assert_eq!(old_ns.netns, Some(Netns::Name("blue".into())));
        let new = Target::named("eth0,eth1").unwrap();
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(json, r#"{"interfaces":["eth0","eth1"]}"#);
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), new);
    }
}
