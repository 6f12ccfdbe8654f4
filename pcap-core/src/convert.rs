//! Every conversion between API messages and domain types. Conversions from messages
//! validate every field against its bound in [`limits`](crate::limits), so that handlers
//! never read raw proto fields and nothing deeper can overflow.

mod decode;

use crate::api::v1 as api;
use crate::domain::{
    Alias, CaptureInfo, CaptureSpec, Counters, ImportSpec, ListenSpec, Netns, ReplaySpec,
    Retention, Selector, State, StopConditions, Target,
};
use crate::limits::{self, LISTEN_COUNT, SNAPLEN};
use crate::{Error, Result, DEFAULT_SNAPLEN};

/// A refusal of user input ([`Error::Invalid`]) as a refusal of the request.
fn bad_request(e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::BadRequest(m),
        e => e,
    }
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

// === Selector ===

impl TryFrom<Option<api::Selector>> for Selector {
    type Error = Error;
    fn try_from(s: Option<api::Selector>) -> Result<Self> {
        match s.and_then(|s| s.kind) {
            Some(api::selector::Kind::Id(id)) => Selector::id(id).map_err(bad_request),
            Some(api::selector::Kind::Alias(a)) => Selector::parse(&a).map_err(bad_request),
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
        let netns = netns(&t)?;
        Ok(Target {
            netns,
            ..Target::with_interfaces(t.interfaces).map_err(bad_request)?
        })
    }
}

impl TryFrom<api::InterfacesRequest> for Option<Netns> {
    type Error = Error;
    fn try_from(r: api::InterfacesRequest) -> Result<Self> {
        netns(&r.target.unwrap_or_default())
    }
}

/// The namespace a target names: at most one of netns, pid and container.
fn netns(t: &api::Target) -> Result<Option<Netns>> {
    match (
        t.netns.as_str(),
        t.pid,
        t.container.as_str(),
        t.runtime.as_str(),
    ) {
        ("", 0, "", "") => Ok(None),
        (ns, 0, "", "") if !ns.is_empty() => Netns::parse(ns).map(Some),
        ("", pid, "", "") if pid != 0 => Netns::pid(pid).map(Some),
        ("", 0, name, runtime) => Netns::container(name, runtime).map(Some),
        _ => Err(Error::BadRequest(
            "more than one of --netns, --pid and --container given: name the namespace one way"
                .into(),
        )),
    }
}

impl From<&Target> for api::Target {
    fn from(t: &Target) -> Self {
        let (netns, pid) = match &t.netns {
            None => (String::new(), 0),
            Some(Netns::Name(n)) | Some(Netns::Path(n)) => (n.clone(), 0),
            Some(Netns::Inode(i)) => (i.to_string(), 0),
            Some(Netns::Pid(p)) => (String::new(), *p),
            Some(Netns::Container { name, runtime }) => {
                return api::Target {
                    interfaces: t.interfaces.clone(),
                    container: name.clone(),
                    runtime: runtime.clone().unwrap_or_default(),
                    ..Default::default()
                }
            }
        };
        api::Target {
            interfaces: t.interfaces.clone(),
            netns,
            pid,
            ..Default::default()
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
        let mut aliases = r
            .aliases
            .iter()
            .map(|a| Alias::new(a).map_err(bad_request))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        aliases.retain(|a| seen.insert(a.clone()));
        limits::check_alias_count(aliases.len())?;
        let snaplen = match r.snaplen {
            0 => DEFAULT_SNAPLEN,
            // The bound is within u32, so the value is too.
            n => SNAPLEN.check(n.into())? as u32,
        };
        limits::check_filter("the filter", &r.filter)?;
        let retention = r.retention.unwrap_or_default();
        Ok(CaptureSpec {
            target: Target::try_from(r.target)?,
            filter: r.filter.trim().to_owned(),
            aliases,
            snaplen,
            promisc: !r.no_promisc,
            stop: StopConditions::try_from(r.stop.unwrap_or_default())?,
            retention: Retention::new(retention.max_bytes, retention.max_age_secs)?,
            decode: decode::rules("--decode", r.decode)?,
        })
    }
}

impl TryFrom<api::ImportHeader> for ImportSpec {
    type Error = Error;
    fn try_from(h: api::ImportHeader) -> Result<Self> {
        let mut aliases = h
            .aliases
            .iter()
            .map(|a| Alias::new(a).map_err(bad_request))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        aliases.retain(|a| seen.insert(a.clone()));
        limits::check_alias_count(aliases.len())?;
        let snaplen = match h.snaplen {
            0 => DEFAULT_SNAPLEN,
            n => SNAPLEN.check(n.into())? as u32,
        };
        if h.file_name.is_empty() || h.file_name.len() > limits::MAX_PATH_LEN {
            return Err(Error::BadRequest(format!(
                "the imported file's name is {} bytes long; give one of 1 to {} bytes",
                h.file_name.len(),
                limits::MAX_PATH_LEN
            )));
        }
        Ok(ImportSpec {
            file_name: h.file_name,
            aliases,
            link_type: h.link_type,
            snaplen,
        })
    }
}

impl From<&ImportSpec> for api::ImportHeader {
    fn from(s: &ImportSpec) -> Self {
        api::ImportHeader {
            file_name: s.file_name.clone(),
            aliases: s.aliases.iter().map(|a| a.to_string()).collect(),
            link_type: s.link_type,
            snaplen: s.snaplen,
        }
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
            decode: s.decode.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<api::StopConditions> for StopConditions {
    type Error = Error;
    fn try_from(s: api::StopConditions) -> Result<Self> {
        StopConditions::new(s.duration_secs, s.packet_count)
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

macro_rules! counters_conversions {
    ($($field:ident: $ty:ty,)*) => {
        impl From<Counters> for api::Counters {
            fn from(c: Counters) -> Self {
                api::Counters { $($field: c.$field,)* }
            }
        }

        impl From<api::Counters> for Counters {
            fn from(c: api::Counters) -> Self {
                Counters { $($field: c.$field,)* }
            }
        }
    };
}
crate::counter_fields!(counters_conversions);

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
            interface_names: c
                .interface_names
                .iter()
                .map(|(i, n)| (*i, n.clone()))
                .collect(),
            decode: c.decode.iter().map(Into::into).collect(),
            imported_from: c.imported_from.clone().unwrap_or_default(),
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
            // As sent: a daemon knows its own interfaces' names.
            target: {
                let t = c.target.unwrap_or_default();
                Target {
                    netns: netns(&t).ok().flatten(),
                    interfaces: t
                        .interfaces
                        .into_iter()
                        .filter(|name| !name.is_empty() && name != "any")
                        .collect(),
                }
            },
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
            anchor: None,
            netns_cookie: None,
            interface_names: c.interface_names.into_iter().collect(),
            decode: decode::rules("--decode", c.decode)?,
            imported_from: (!c.imported_from.is_empty()).then_some(c.imported_from),
        })
    }
}

// === Streams ===

impl TryFrom<api::ReplayRequest> for ReplaySpec {
    type Error = Error;
    fn try_from(r: api::ReplayRequest) -> Result<Self> {
        limits::check_time_range(r.since_unix_ns, r.until_unix_ns)?;
        limits::check_filter("--filter", &r.filter)?;
        Ok(ReplaySpec {
            selector: single(Selector::try_from(r.selector)?, "replay")?,
            live: r.live,
            since_unix_ns: r.since_unix_ns,
            until_unix_ns: r.until_unix_ns,
            filter: r.filter.trim().to_owned(),
            raw_records: r.raw_records,
            microseconds: r.microseconds,
            segment_handoff: r.segment_handoff,
        })
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
            microseconds: s.microseconds,
            segment_handoff: s.segment_handoff,
        }
    }
}

impl TryFrom<api::ListenRequest> for ListenSpec {
    type Error = Error;
    fn try_from(r: api::ListenRequest) -> Result<Self> {
        Ok(ListenSpec {
            selector: single(Selector::try_from(r.selector)?, "listen")?,
            count: LISTEN_COUNT.check_nonzero(r.count)?,
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
    use crate::limits::MAX_ALIASES;

    #[test]
    fn init_request_round_trips_and_validates() {
        let spec = CaptureSpec {
            target: Target {
                interfaces: vec!["lo".into(), "eth0".into()],
                netns: None,
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
            decode: vec!["http:80,8080".parse().unwrap(), "dns".parse().unwrap()],
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
        assert!(default.target.interfaces.is_empty());
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

    /// Converts `req`, which must be refused with a message holding every piece of `want`.
    fn refused<M, T>(req: M, want: &[&str])
    where
        T: TryFrom<M, Error = Error> + std::fmt::Debug,
    {
        match T::try_from(req) {
            Ok(v) => panic!("accepted {v:?}, expected a refusal with {want:?}"),
            Err(Error::BadRequest(m)) => {
                for w in want {
                    assert!(m.contains(w), "{m:?} lacks {w:?}");
                }
            }
            Err(e) => panic!("refused as {e:?} instead of a bad request"),
        }
    }

    fn init(f: impl FnOnce(&mut api::InitRequest)) -> api::InitRequest {
        let mut r = api::InitRequest::default();
        f(&mut r);
        r
    }

    fn stop(duration_secs: u64, packet_count: u64) -> api::StopConditions {
        api::StopConditions {
            duration_secs,
            packet_count,
        }
    }

    fn retention(max_bytes: u64, max_age_secs: u64) -> api::Retention {
        api::Retention {
            max_bytes,
            max_age_secs,
        }
    }

    #[test]
    fn stop_conditions_are_bounded() {
        let s = CaptureSpec::try_from(init(|r| {
            r.stop = Some(stop(315_360_000, 1_000_000_000_000))
        }))
        .unwrap()
        .stop;
        assert_eq!(s.duration_secs, Some(315_360_000));
        assert_eq!(s.packet_count, Some(1_000_000_000_000));
        let huge = 10_000_000_000_000_000_000;
        refused::<_, CaptureSpec>(
            init(|r| r.stop = Some(stop(huge, 0))),
            &[
                "--duration 10000000000000000000 s",
                "1 s to 315360000 s (10 years)",
            ],
        );
        refused::<_, CaptureSpec>(
            init(|r| r.stop = Some(stop(315_360_001, 0))),
            &["--duration 315360001", "315360000 s"],
        );
        refused::<_, CaptureSpec>(
            init(|r| r.stop = Some(stop(0, 1_000_000_000_001))),
            &["--count 1000000000001", "1 to 1000000000000 packets"],
        );
        // Start carries them alone.
        assert_eq!(
            StopConditions::try_from(stop(0, 0)).unwrap(),
            StopConditions::default()
        );
        assert_eq!(
            StopConditions::try_from(stop(5, 7)).unwrap(),
            StopConditions {
                duration_secs: Some(5),
                packet_count: Some(7)
            }
        );
        refused::<_, StopConditions>(stop(u64::MAX, 0), &["--duration", "10 years"]);
        refused::<_, StopConditions>(stop(0, u64::MAX), &["--count", "1000000000000"]);
    }

    #[test]
    fn retention_is_bounded() {
        let r = CaptureSpec::try_from(init(|r| {
            r.retention = Some(retention(1 << 50, 315_360_000))
        }))
        .unwrap()
        .retention;
        assert_eq!(
            (r.max_bytes, r.max_age_secs),
            (Some(1 << 50), Some(315_360_000))
        );
        refused::<_, CaptureSpec>(
            init(|r| r.retention = Some(retention((1 << 50) + 1, 0))),
            &[
                "--max-size 1125899906842625 is",
                "1 to 1125899906842624 bytes (1 PiB)",
            ],
        );
        // About 300 years: its nanoseconds do not fit an i64.
        refused::<_, CaptureSpec>(
            init(|r| r.retention = Some(retention(0, 9_467_280_000))),
            &["--max-age 9467280000 s", "315360000 s (10 years)"],
        );
        refused::<_, CaptureSpec>(
            init(|r| r.retention = Some(retention(0, 315_360_001))),
            &["--max-age 315360001"],
        );
    }

    #[test]
    fn snaplen_is_bounded() {
        for ok in [16, 262_144] {
            assert_eq!(
                CaptureSpec::try_from(init(|r| r.snaplen = ok))
                    .unwrap()
                    .snaplen,
                ok
            );
        }
        for bad in [15, 262_145, u32::MAX] {
            refused::<_, CaptureSpec>(
                init(|r| r.snaplen = bad),
                &[&format!("--snaplen {bad} is"), "16 to 262144 bytes"],
            );
        }
    }

    #[test]
    fn aliases_are_bounded_in_length_and_number() {
        let a64 = "a".repeat(64);
        let spec = CaptureSpec::try_from(init(|r| r.aliases = vec![a64.clone()])).unwrap();
        assert_eq!(spec.aliases[0].as_str(), a64);
        refused::<_, CaptureSpec>(init(|r| r.aliases = vec!["a".repeat(65)]), &["1 to 64"]);
        let names = |n: usize| (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>();
        let spec = CaptureSpec::try_from(init(|r| r.aliases = names(MAX_ALIASES))).unwrap();
        assert_eq!(spec.aliases.len(), 32);
        refused::<_, CaptureSpec>(
            init(|r| r.aliases = names(MAX_ALIASES + 1)),
            &["33 aliases", "at most 32"],
        );
    }

    #[test]
    fn interface_names_are_bounded() {
        let target = |name: &str| {
            init(|r| {
                r.target = Some(api::Target {
                    interfaces: vec![name.into()],
                    ..Default::default()
                })
            })
        };
        let spec = CaptureSpec::try_from(target("a23456789012345")).unwrap();
        assert_eq!(spec.target.single_interface(), Some("a23456789012345"));
        assert!(CaptureSpec::try_from(target("any"))
            .unwrap()
            .target
            .interfaces
            .is_empty());
        let twice = init(|r| {
            r.target = Some(api::Target {
                interfaces: vec!["lo".into(), "lo".into()],
                ..Default::default()
            })
        });
        refused::<_, CaptureSpec>(twice, &["named twice"]);
        for bad in ["a234567890123456", "..", "../../etc", "eth 0", "lo\n"] {
            refused::<_, CaptureSpec>(target(bad), &["interface name", "1 to 15 bytes"]);
        }
    }

    #[test]
    fn filters_are_bounded() {
        let ok = "x".repeat(64 << 10);
        assert_eq!(
            CaptureSpec::try_from(init(|r| r.filter = ok.clone()))
                .unwrap()
                .filter,
            ok
        );
        let long = "x".repeat((64 << 10) + 1);
        refused::<_, CaptureSpec>(
            init(|r| r.filter = long.clone()),
            &["65537 bytes", "at most 65536 bytes"],
        );
        let replay = api::ReplayRequest {
            selector: Some((&Selector::Id(1)).into()),
            filter: long,
            ..Default::default()
        };
        refused::<_, ReplaySpec>(replay, &["--filter is 65537 bytes", "65536"]);
    }

    #[test]
    fn times_are_bounded() {
        let replay = |since, until| api::ReplayRequest {
            selector: Some((&Selector::Id(1)).into()),
            since_unix_ns: since,
            until_unix_ns: until,
            ..Default::default()
        };
        let spec = ReplaySpec::try_from(replay(Some(0), Some(i64::MAX))).unwrap();
        assert_eq!(
            (spec.since_unix_ns, spec.until_unix_ns),
            (Some(0), Some(i64::MAX))
        );
        refused::<_, ReplaySpec>(replay(Some(-1), None), &["--since -1 ns", "1970"]);
        refused::<_, ReplaySpec>(replay(None, Some(i64::MIN)), &["--until", "1970"]);
        refused::<_, ReplaySpec>(replay(Some(6), Some(5)), &["--since is later than --until"]);
        assert!(ReplaySpec::try_from(replay(Some(5), Some(5))).is_ok());
    }

    #[test]
    fn listen_count_is_bounded() {
        let listen = |count| api::ListenRequest {
            selector: Some((&Selector::Id(1)).into()),
            count,
            raw_records: false,
        };
        assert_eq!(
            ListenSpec::try_from(listen(1_000_000_000_000))
                .unwrap()
                .count,
            Some(1_000_000_000_000)
        );
        assert_eq!(ListenSpec::try_from(listen(0)).unwrap().count, None);
        refused::<_, ListenSpec>(
            listen(1_000_000_000_001),
            &["--count 1000000000001 is", "1 to 1000000000000 packets"],
        );
    }

    #[test]
    fn selectors_refuse_id_zero_and_bad_aliases() {
        let sel = |kind| Some(api::Selector { kind: Some(kind) });
        assert_eq!(
            Selector::try_from(sel(api::selector::Kind::Id(1))).unwrap(),
            Selector::Id(1)
        );
        refused::<_, Selector>(sel(api::selector::Kind::Id(0)), &["id 0", "start at 1"]);
        refused::<_, Selector>(sel(api::selector::Kind::Alias("0".into())), &["start at 1"]);
        refused::<_, Selector>(
            sel(api::selector::Kind::Alias("a".repeat(65))),
            &["1 to 64"],
        );
    }

    #[test]
    fn captures_sent_by_a_daemon_are_read_as_they_are() {
        let spec = CaptureInfo::try_from(api::Capture {
            id: 1,
            state: api::State::Active.into(),
            target: Some(api::Target {
                interfaces: vec!["a-name-longer-than-15".into()],
                ..Default::default()
            }),
            stop: Some(stop(u64::MAX, u64::MAX)),
            retention: Some(retention(u64::MAX, u64::MAX)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.target.interfaces, ["a-name-longer-than-15"]);
        assert_eq!(spec.stop.duration_secs, Some(u64::MAX));
        assert_eq!(spec.retention.max_age_secs, Some(u64::MAX));
    }

    #[test]
    fn import_headers_are_checked_like_init_requests() {
        let header = |name: &str, aliases: &[&str], snaplen| api::ImportHeader {
            file_name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            link_type: 1,
            snaplen,
        };
        let spec = ImportSpec::try_from(header("t.pcap", &["a", "a", "b"], 0)).unwrap();
        assert_eq!(spec.snaplen, DEFAULT_SNAPLEN);
        assert_eq!(spec.aliases.len(), 2);
        assert_eq!(api::ImportHeader::from(&spec).aliases, ["a", "b"]);
        let e = ImportSpec::try_from(header("t.pcap", &[], 262_145)).unwrap_err();
        assert!(e.to_string().contains("262144"), "{e}");
        let e = ImportSpec::try_from(header("", &[], 0)).unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e}");
        assert!(ImportSpec::try_from(header("t", &["no/such"], 0)).is_err());
    }
}
