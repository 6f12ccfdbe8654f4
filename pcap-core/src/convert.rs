//! Every conversion between API messages and domain types. Conversions from messages
//! validate, so that handlers never read raw proto fields.

use crate::api::v1 as api;
use crate::domain::{
    Alias, CaptureInfo, CaptureSpec, Counters, ListenSpec, ReplaySpec, Retention, Selector, State,
    StopConditions, Target,
};
use crate::{Error, Result, DEFAULT_SNAPLEN};

/// Most aliases one capture may have.
pub const MAX_ALIASES: usize = 32;

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

// === Selector ===

impl TryFrom<Option<api::Selector>> for Selector {
    type Error = Error;
    fn try_from(s: Option<api::Selector>) -> Result<Self> {
        match s.and_then(|s| s.kind) {
            Some(api::selector::Kind::Id(id)) => Ok(Selector::Id(id)),
            Some(api::selector::Kind::Alias(a)) => {
                Selector::parse(&a).map_err(|e| Error::BadRequest(e.to_string()))
            }
            Some(api::selector::Kind::All(true)) => Ok(Selector::All),
            Some(api::selector::Kind::All(false)) | None => Err(Error::BadRequest(
                "selector missing: give a capture id, an alias, or all".into(),
            )),
        }
    }
}

impl From<&Selector> for api::Selector {
    fn from(s: &Selector) -> Self {
        let kind = match s {
            Selector::Id(id) => api::selector::Kind::Id(*id),
            Selector::Alias(a) => api::selector::Kind::Alias(a.to_string()),
            Selector::All => api::selector::Kind::All(true),
        };
        api::Selector { kind: Some(kind) }
    }
}

// === Target ===

impl TryFrom<Option<api::Target>> for Target {
    type Error = Error;
    fn try_from(t: Option<api::Target>) -> Result<Self> {
        let t = t.unwrap_or_default();
        if !t.netns.is_empty() {
            return Err(Error::BadRequest(
                "capturing in another network namespace is not supported yet".into(),
            ));
        }
        match t.interfaces.len() {
            0 => Ok(Target { interface: None }),
            1 if t.interfaces[0].is_empty() || t.interfaces[0] == "any" => {
                Ok(Target { interface: None })
            }
            1 => Ok(Target {
                interface: Some(t.interfaces[0].clone()),
            }),
            _ => Err(Error::BadRequest(
                "a capture on several interfaces is not supported yet: give one, or none for all"
                    .into(),
            )),
        }
    }
}

impl From<&Target> for api::Target {
    fn from(t: &Target) -> Self {
        api::Target {
            interfaces: t.interface.iter().cloned().collect(),
            netns: String::new(),
        }
    }
}

// === State ===

impl From<State> for api::State {
    fn from(s: State) -> Self {
        match s {
            State::Pending => api::State::Pending,
            State::Active => api::State::Active,
            State::Retrying => api::State::Retrying,
            State::Paused => api::State::Paused,
            State::Finished => api::State::Finished,
            State::Failed => api::State::Failed,
        }
    }
}

impl TryFrom<i32> for State {
    type Error = Error;
    fn try_from(v: i32) -> Result<Self> {
        Ok(match api::State::try_from(v) {
            Ok(api::State::Pending) => State::Pending,
            Ok(api::State::Active) => State::Active,
            Ok(api::State::Retrying) => State::Retrying,
            Ok(api::State::Paused) => State::Paused,
            Ok(api::State::Finished) => State::Finished,
            Ok(api::State::Failed) => State::Failed,
            Ok(api::State::Unspecified) | Err(_) => {
                return Err(Error::BadRequest(format!("unknown capture state {v}")))
            }
        })
    }
}

// === Init ===

impl TryFrom<api::InitRequest> for CaptureSpec {
    type Error = Error;
    fn try_from(r: api::InitRequest) -> Result<Self> {
        let aliases = r
            .aliases
            .iter()
            .map(|a| Alias::new(a).map_err(|e| Error::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let mut aliases: Vec<Alias> = aliases;
        let mut seen = std::collections::HashSet::new();
        aliases.retain(|a| seen.insert(a.clone()));
        if aliases.len() > MAX_ALIASES {
            return Err(Error::BadRequest(format!(
                "{} aliases given; a capture has at most {MAX_ALIASES}",
                aliases.len()
            )));
        }
        let snaplen = match r.snaplen {
            0 => DEFAULT_SNAPLEN,
            n if !(16..=DEFAULT_SNAPLEN).contains(&n) => {
                return Err(Error::BadRequest(format!(
                    "snaplen {n} is out of range: use 16 to {DEFAULT_SNAPLEN} bytes"
                )))
            }
            n => n,
        };
        let stop = r.stop.unwrap_or_default();
        let retention = r.retention.unwrap_or_default();
        Ok(CaptureSpec {
            target: Target::try_from(r.target)?,
            filter: r.filter.trim().to_owned(),
            aliases,
            snaplen,
            promisc: !r.no_promisc,
            stop: StopConditions {
                duration_secs: nonzero(stop.duration_secs),
                packet_count: nonzero(stop.packet_count),
            },
            retention: Retention {
                max_bytes: nonzero(retention.max_bytes),
                max_age_secs: nonzero(retention.max_age_secs),
            },
        })
    }
}

impl From<&CaptureSpec> for api::InitRequest {
    fn from(s: &CaptureSpec) -> Self {
        api::InitRequest {
            target: Some((&s.target).into()),
            filter: s.filter.clone(),
            aliases: s.aliases.iter().map(|a| a.to_string()).collect(),
            snaplen: s.snaplen,
            no_promisc: !s.promisc,
            stop: Some(s.stop.into()),
            retention: Some(s.retention.into()),
        }
    }
}

impl From<api::StopConditions> for StopConditions {
    fn from(s: api::StopConditions) -> Self {
        StopConditions {
            duration_secs: nonzero(s.duration_secs),
            packet_count: nonzero(s.packet_count),
        }
    }
}

impl From<StopConditions> for api::StopConditions {
    fn from(s: StopConditions) -> Self {
        api::StopConditions {
            duration_secs: s.duration_secs.unwrap_or(0),
            packet_count: s.packet_count.unwrap_or(0),
        }
    }
}

impl From<Retention> for api::Retention {
    fn from(r: Retention) -> Self {
        api::Retention {
            max_bytes: r.max_bytes.unwrap_or(0),
            max_age_secs: r.max_age_secs.unwrap_or(0),
        }
    }
}

// === Capture ===

impl From<Counters> for api::Counters {
    fn from(c: Counters) -> Self {
        api::Counters {
            received: c.received,
            dropped_kernel: c.dropped_kernel,
            dropped_interface: c.dropped_interface,
            spooled_packets: c.spooled_packets,
            spooled_bytes: c.spooled_bytes,
            spool_bytes: c.spool_bytes,
            spool_segments: c.spool_segments,
            expired_packets: c.expired_packets,
        }
    }
}

impl From<api::Counters> for Counters {
    fn from(c: api::Counters) -> Self {
        Counters {
            received: c.received,
            dropped_kernel: c.dropped_kernel,
            dropped_interface: c.dropped_interface,
            spooled_packets: c.spooled_packets,
            spooled_bytes: c.spooled_bytes,
            spool_bytes: c.spool_bytes,
            spool_segments: c.spool_segments,
            expired_packets: c.expired_packets,
        }
    }
}

impl From<&CaptureInfo> for api::Capture {
    fn from(c: &CaptureInfo) -> Self {
        api::Capture {
            id: c.id,
            aliases: c.aliases.iter().map(|a| a.to_string()).collect(),
            target: Some((&c.target).into()),
            filter: c.filter.clone(),
            applied_filter: c.applied_filter.clone(),
            snaplen: c.snaplen,
            promisc: c.promisc,
            stop: Some(c.stop.into()),
            retention: Some(c.retention.into()),
            owner: c.owner.clone(),
            state: api::State::from(c.state).into(),
            reason: c.reason.clone(),
            counters: Some(c.counters.into()),
            link_type: c.link_type,
            created_unix_ns: c.created_unix_ns,
            started_unix_ns: c.started_unix_ns,
        }
    }
}

impl TryFrom<api::Capture> for CaptureInfo {
    type Error = Error;
    fn try_from(c: api::Capture) -> Result<Self> {
        let stop = c.stop.unwrap_or_default();
        let retention = c.retention.unwrap_or_default();
        Ok(CaptureInfo {
            id: c.id,
            aliases: c
                .aliases
                .iter()
                .map(|a| Alias::new(a))
                .collect::<Result<_>>()?,
            target: Target::try_from(c.target)?,
            filter: c.filter,
            applied_filter: c.applied_filter,
            snaplen: c.snaplen,
            promisc: c.promisc,
            stop: StopConditions {
                duration_secs: nonzero(stop.duration_secs),
                packet_count: nonzero(stop.packet_count),
            },
            retention: Retention {
                max_bytes: nonzero(retention.max_bytes),
                max_age_secs: nonzero(retention.max_age_secs),
            },
            owner: c.owner,
            state: State::try_from(c.state)?,
            reason: c.reason,
            counters: c.counters.unwrap_or_default().into(),
            link_type: c.link_type,
            created_unix_ns: c.created_unix_ns,
            started_unix_ns: c.started_unix_ns,
        })
    }
}

// === Streams ===

impl TryFrom<api::ReplayRequest> for ReplaySpec {
    type Error = Error;
    fn try_from(r: api::ReplayRequest) -> Result<Self> {
        let spec = ReplaySpec {
            selector: single(Selector::try_from(r.selector)?, "replay")?,
            live: r.live,
            since_unix_ns: r.since_unix_ns,
            until_unix_ns: r.until_unix_ns,
            filter: r.filter.trim().to_owned(),
            raw_records: r.raw_records,
        };
        if let (Some(s), Some(u)) = (spec.since_unix_ns, spec.until_unix_ns) {
            if s > u {
                return Err(Error::BadRequest(
                    "--since is later than --until: nothing could match".into(),
                ));
            }
        }
        Ok(spec)
    }
}

impl From<&ReplaySpec> for api::ReplayRequest {
    fn from(s: &ReplaySpec) -> Self {
        api::ReplayRequest {
            selector: Some((&s.selector).into()),
            live: s.live,
            since_unix_ns: s.since_unix_ns,
            until_unix_ns: s.until_unix_ns,
            filter: s.filter.clone(),
            raw_records: s.raw_records,
        }
    }
}

impl TryFrom<api::ListenRequest> for ListenSpec {
    type Error = Error;
    fn try_from(r: api::ListenRequest) -> Result<Self> {
        Ok(ListenSpec {
            selector: single(Selector::try_from(r.selector)?, "listen")?,
            count: nonzero(r.count),
            raw_records: r.raw_records,
        })
    }
}

impl From<&ListenSpec> for api::ListenRequest {
    fn from(s: &ListenSpec) -> Self {
        api::ListenRequest {
            selector: Some((&s.selector).into()),
            count: s.count.unwrap_or(0),
            raw_records: s.raw_records,
        }
    }
}

fn single(s: Selector, what: &str) -> Result<Selector> {
    if s == Selector::All {
        return Err(Error::BadRequest(format!(
            "{what} reads one capture: name it by id or alias instead of all"
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_request_round_trips_and_validates() {
        let spec = CaptureSpec {
            target: Target {
                interface: Some("lo".into()),
            },
            filter: "udp port 53".into(),
            aliases: vec![Alias::new("dns").unwrap()],
            snaplen: 1500,
            promisc: false,
            stop: StopConditions {
                duration_secs: Some(5),
                packet_count: None,
            },
            retention: Retention {
                max_bytes: Some(1 << 20),
                max_age_secs: None,
            },
        };
        let back = CaptureSpec::try_from(api::InitRequest::from(&spec)).unwrap();
        assert_eq!(back, spec);

        let bad = api::InitRequest {
            aliases: vec!["42".into()],
            ..Default::default()
        };
        assert!(CaptureSpec::try_from(bad).is_err());
        let bad = api::InitRequest {
            snaplen: 4,
            ..Default::default()
        };
        assert!(CaptureSpec::try_from(bad).is_err());
        let twice = api::InitRequest {
            aliases: vec!["web".into(), "web".into()],
            ..Default::default()
        };
        assert_eq!(CaptureSpec::try_from(twice).unwrap().aliases.len(), 1);
        let many = api::InitRequest {
            aliases: (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect(),
            ..Default::default()
        };
        assert!(CaptureSpec::try_from(many).is_err());
        let default = CaptureSpec::try_from(api::InitRequest::default()).unwrap();
        assert_eq!(default.snaplen, DEFAULT_SNAPLEN);
        assert_eq!(default.target.interface, None);
    }

    #[test]
    fn replay_refuses_all_and_inverted_bounds() {
        let all = api::ReplayRequest {
            selector: Some((&Selector::All).into()),
            ..Default::default()
        };
        assert!(ReplaySpec::try_from(all).is_err());
        let inverted = api::ReplayRequest {
            selector: Some((&Selector::Id(1)).into()),
            since_unix_ns: Some(10),
            until_unix_ns: Some(5),
            ..Default::default()
        };
        assert!(ReplaySpec::try_from(inverted).is_err());
        assert!(ReplaySpec::try_from(api::ReplayRequest::default()).is_err());
    }
}
