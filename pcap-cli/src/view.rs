//! How a capture is shown: as a JSON object for scripts and as table cells for people.

use std::time::{Duration, UNIX_EPOCH};

use pcap_core::domain::{Alias, CaptureInfo, Counters, Retention, State, StopConditions};
use serde::Serialize;

/// A capture as scripts see it in `--json` output; field names are part of the interface.
#[derive(Debug, Serialize)]
pub struct CaptureJson<'a> {
    pub id: u64,
    pub aliases: Vec<&'a str>,
    /// The first interface; `None` (JSON null) for a capture on all interfaces. Kept for
    /// scripts written before captures had several: `interfaces` has them all.
    pub interface: Option<&'a str>,
    /// Every interface named; empty for a capture on all interfaces.
    pub interfaces: &'a [String],
    /// Interface index -> name, as pcapd found them when it opened the interfaces
    /// (LINUX_SLL2 records carry the index): `{"2": "eth0"}`.
    pub interface_names: &'a std::collections::BTreeMap<u32, String>,
    /// Where it captures, as `list` shows it: `eth0`, `any`, `netns blue: eth0`,
    /// `pid 1234: all`.
    pub target: String,
    pub filter: &'a str,
    pub applied_filter: &'a str,
    pub state: &'static str,
    pub reason: &'a str,
    pub snaplen: u32,
    pub promisc: bool,
    pub owner: &'a str,
    pub link_type: u32,
    pub counters: &'a Counters,
    /// RFC 3339.
    pub created: Option<String>,
    /// RFC 3339; null if the capture never ran.
    pub started: Option<String>,
    pub stop: &'a StopConditions,
    pub retention: &'a Retention,
    /// The `--decode` rules, as given (`"http:80,8080"`, `"dns"`); empty when none.
    pub decode: Vec<String>,
    /// The file an imported capture came from (`pcap import`); null for the others.
    pub imported_from: Option<&'a str>,
}

impl<'a> From<&'a CaptureInfo> for CaptureJson<'a> {
    fn from(c: &'a CaptureInfo) -> Self {
        CaptureJson {
            id: c.id,
            aliases: c.aliases.iter().map(Alias::as_str).collect(),
            interface: c.target.interfaces.first().map(String::as_str),
            interfaces: &c.target.interfaces,
            interface_names: &c.interface_names,
            target: target_cell(c),
            filter: &c.filter,
            applied_filter: &c.applied_filter,
            state: c.state.name(),
            reason: &c.reason,
            snaplen: c.snaplen,
            promisc: c.promisc,
            owner: &c.owner,
            link_type: c.link_type,
            counters: &c.counters,
            created: rfc3339(c.created_unix_ns),
            started: rfc3339(c.started_unix_ns),
            stop: &c.stop,
            retention: &c.retention,
            decode: c.decode.iter().map(ToString::to_string).collect(),
            imported_from: c.imported_from.as_deref(),
        }
    }
}

/// Where a capture's packets come from: its target (`eth0`, `netns blue: eth0`), or `file
/// NAME` for an imported one.
pub fn target_cell(c: &CaptureInfo) -> String {
    match &c.imported_from {
        Some(file) => format!("file {file}"),
        None => c.target.to_string(),
    }
}

/// Unix nanoseconds as RFC 3339 in UTC with microseconds; `None` for 0 (never) or before 1970.
pub fn rfc3339(unix_ns: i64) -> Option<String> {
    let ns = u64::try_from(unix_ns).ok().filter(|&ns| ns > 0)?;
    Some(humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(ns)).to_string())
}

/// Aliases joined by commas, or a dash.
pub fn aliases_cell(aliases: &[Alias]) -> String {
    if aliases.is_empty() {
        return "-".to_owned();
    }
    aliases
        .iter()
        .map(Alias::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Decode rules separated by spaces (`http:80 dns`), or a dash.
pub fn decode_cell(rules: &[pcap_decode::ProtoRule]) -> String {
    if rules.is_empty() {
        return "-".to_owned();
    }
    rules
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The state with its reason, as in `FAILED (disk full)`.
pub fn state_cell(state: State, reason: &str) -> String {
    match reason.trim() {
        "" => state.name().to_owned(),
        reason => format!("{} ({reason})", state.name()),
    }
}

/// Packets lost before pcapd saw them, by the kernel and by the interface.
pub fn drops(c: &Counters) -> u64 {
    c.dropped_kernel.saturating_add(c.dropped_interface)
}

/// The one-line summary of a capture after start, stop or delete: `3 web ACTIVE`.
pub fn summary_line(c: &CaptureInfo) -> String {
    format!(
        "{} {} {}",
        c.id,
        aliases_cell(&c.aliases),
        state_cell(c.state, &c.reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::domain::Target;

    fn capture() -> CaptureInfo {
        CaptureInfo {
            id: 3,
            aliases: vec![Alias::new("web").unwrap(), Alias::new("http").unwrap()],
            target: Target::default(),
            filter: "tcp port 80".into(),
            applied_filter: "tcp port 80".into(),
            snaplen: 262_144,
            promisc: true,
            stop: StopConditions::default(),
            retention: Retention {
                max_bytes: Some(1 << 30),
                max_age_secs: None,
            },
            owner: "uid 1000 (alice)".into(),
            state: State::Failed,
            reason: "disk full".into(),
            counters: Counters {
                dropped_kernel: 2,
                dropped_interface: 3,
                ..Default::default()
            },
            link_type: 276,
            created_unix_ns: 1_795_356_300_250_000_000,
            started_unix_ns: 0,
            anchor: None,
            netns_cookie: None,
            interface_names: Default::default(),
            decode: Vec::new(),
            imported_from: None,
        }
    }

    #[test]
    fn cells_and_summary() {
        let c = capture();
        assert_eq!(summary_line(&c), "3 web,http FAILED (disk full)");
        assert_eq!(state_cell(State::Active, ""), "ACTIVE");
        assert_eq!(aliases_cell(&[]), "-");
        assert_eq!(drops(&c.counters), 5);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let c = capture();
        let v = serde_json::to_value(CaptureJson::from(&c)).unwrap();
        assert_eq!(v["interface"], serde_json::Value::Null);
        assert_eq!(v["state"], "FAILED");
        assert_eq!(v["aliases"][1], "http");
        assert_eq!(v["counters"]["dropped_interface"], 3);
        assert_eq!(v["created"], "2026-11-22T14:05:00.250000Z");
        assert_eq!(v["started"], serde_json::Value::Null);
        assert_eq!(v["retention"]["max_bytes"], 1 << 30);
        assert_eq!(v["stop"]["packet_count"], serde_json::Value::Null);
        assert_eq!(v["interfaces"], serde_json::json!([]));
        assert_eq!(v["interface_names"], serde_json::json!({}));
        assert_eq!(v["decode"], serde_json::json!([]));
        let mut c = capture();
        c.decode = vec!["http:80".parse().unwrap(), "dns".parse().unwrap()];
        let v = serde_json::to_value(CaptureJson::from(&c)).unwrap();
        assert_eq!(v["decode"], serde_json::json!(["http:80", "dns"]));
    }

    #[test]
    fn json_names_several_interfaces_and_their_indexes() {
        let mut c = capture();
        c.target = Target::named("eth0,eth1").unwrap();
        c.interface_names = [(2, "eth0".to_owned()), (7, "eth1".to_owned())].into();
        let v = serde_json::to_value(CaptureJson::from(&c)).unwrap();
        assert_eq!(v["interface"], "eth0");
        assert_eq!(v["interfaces"], serde_json::json!(["eth0", "eth1"]));
        assert_eq!(v["target"], "eth0,eth1");
        assert_eq!(
            v["interface_names"],
            serde_json::json!({"2": "eth0", "7": "eth1"})
        );
    }
}
