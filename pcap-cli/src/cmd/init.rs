//! `pcap init`: define a capture, or add aliases to the one that already has the same
//! interface and filter.

use anyhow::Result;
use clap::Args;
use pcap_core::api::v1 as api;
use pcap_core::domain::{Alias, CaptureInfo, CaptureSpec, State};
use pcap_decode::ProtoRule;

use super::Context;
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::values::{self, Usage};
use crate::view::{aliases_cell, CaptureJson};

/// Arguments of `pcap init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Interface to capture on, or several separated by commas (`eth0,eth1`, recorded as
    /// LINUX_SLL2 with each packet's interface), after `REMOTE:` for a remote daemon
    /// (`lab:eth0`); empty or "any" captures on all interfaces
    #[arg(value_name = "[REMOTE:]IFACE")]
    iface: Option<String>,
    /// BPF filter in libpcap syntax; several words are joined with spaces, as in tcpdump
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,
    /// Name for the capture (repeatable)
    #[arg(long = "alias", value_name = "NAME", value_parser = parse_alias)]
    aliases: Vec<Alias>,
    /// Bytes kept of each packet, 16 to 262144; 0 for the default [default: 262144]
    #[arg(long, value_name = "N", value_parser = values::snaplen)]
    snaplen: Option<u32>,
    /// Do not put the interface into promiscuous mode
    #[arg(long)]
    no_promisc: bool,
    /// Stop after this long (seconds, or 30s, 5m, 2h; at most 10 years)
    #[arg(long, value_name = "SECS", value_parser = values::duration)]
    duration: Option<u64>,
    /// Stop after this many packets (at most 10^12)
    #[arg(long, value_name = "N", value_parser = values::count)]
    count: Option<u64>,
    /// Keep at most this much spool (bytes, or 500M, 2G; at most 1 PiB) [default: the
    /// daemon's]
    #[arg(long, value_name = "SIZE", value_parser = values::max_size)]
    max_size: Option<u64>,
    /// Keep packets at most this long (seconds, or 30m, 7d; at most 10 years) [default: the
    /// daemon's]
    #[arg(long, value_name = "SECS", value_parser = values::max_age)]
    max_age: Option<u64>,
    /// Capture in this network namespace: an `ip netns` name, a namespace file's path
    /// (/proc/PID/ns/net, /run/docker/netns/ID) or its inode number
    #[arg(long, value_name = "NETNS", conflicts_with_all = ["pid", "container"])]
    netns: Option<String>,
    /// Capture in the network namespace of this process; the capture finishes when it exits
    #[arg(long, value_name = "PID", conflicts_with = "container")]
    pid: Option<u32>,
    /// Capture in this container's network namespace (name, id or id prefix)
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// The engine that runs --container: docker, podman or containerd [default: the first
    /// that knows it]
    #[arg(long, value_name = "RUNTIME", requires = "container")]
    runtime: Option<String>,
    /// Decode this protocol while capturing and export its metrics on pcapd's /metrics:
    /// http, dns, http2, grpc or tls, optionally on these server ports (`http:80,8080`);
    /// repeatable
    #[arg(long = "decode", value_name = "PROTO[:PORTS]", value_parser = parse_rule)]
    decode: Vec<ProtoRule>,
}

/// Runs `pcap init`.
pub async fn run(args: InitArgs, ctx: &Context) -> Result<()> {
    let (endpoint, iface) = ctx.targets.resolve(args.iface.as_deref().unwrap_or(""))?;
    let spec = spec(&args, iface)?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let response = client
        .init(api::InitRequest::from(&spec))
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    let capture = response
        .capture
        .ok_or_else(|| anyhow::anyhow!("pcapd answered init without the capture"))?;
    let capture = super::capture(capture)?;
    eprintln!(
        "{}",
        outcome(
            &capture,
            response.created,
            &spec.aliases,
            &endpoint.prefix()
        )
    );
    if ctx.json {
        print_json(&CaptureJson::from(&capture))
    } else {
        print_stdout(&format!("{}\n", capture.id))
    }
}

/// The capture asked for, checked as pcapd will check it (interface name, number of
/// aliases, filter length), so that what pcapd would refuse is refused before connecting.
fn spec(args: &InitArgs, iface: &str) -> Result<CaptureSpec, Usage> {
    let request = api::InitRequest {
        target: Some(api::Target {
            interfaces: iface.split(',').map(|n| n.trim().to_owned()).collect(),
            netns: args.netns.clone().unwrap_or_default(),
            pid: args.pid.unwrap_or(0),
            container: args.container.clone().unwrap_or_default(),
            runtime: args.runtime.clone().unwrap_or_default(),
        }),
        filter: join_filter(&args.filter),
        aliases: args.aliases.iter().map(Alias::to_string).collect(),
        snaplen: args.snaplen.unwrap_or(0),
        no_promisc: args.no_promisc,
        decode: args.decode.iter().map(api::DecodeRule::from).collect(),
        stop: Some(api::StopConditions {
            duration_secs: args.duration.unwrap_or(0),
            packet_count: args.count.unwrap_or(0),
        }),
        retention: Some(api::Retention {
            max_bytes: args.max_size.unwrap_or(0),
            max_age_secs: args.max_age.unwrap_or(0),
        }),
    };
    Ok(CaptureSpec::try_from(request)?)
}

/// The filter words as one filter, the way tcpdump reads them.
fn join_filter(words: &[String]) -> String {
    words
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line on stderr that says what happened; `remote` (`lab:` or empty) goes before the
/// id in the command it suggests.
fn outcome(c: &CaptureInfo, created: bool, requested: &[Alias], remote: &str) -> String {
    let mut line = if created {
        let names = match c.aliases.is_empty() {
            true => String::new(),
            false => format!(" ({})", aliases_cell(&c.aliases)),
        };
        let on = match (c.target.all_interfaces(), &c.target.netns) {
            (true, None) => "all interfaces".to_owned(),
            _ => c.target.to_string(),
        };
        format!("created capture {}{names} on {on}", c.id)
    } else {
        let mut line = format!("capture {} already has this interface and filter", c.id);
        match requested {
            [] => {}
            [one] => line.push_str(&format!("; alias {one} added")),
            many => line.push_str(&format!("; aliases {} added", aliases_cell(many))),
        }
        line
    };
    if c.state == State::Pending {
        line.push_str(&format!("; start it with `pcap start {remote}{}`", c.id));
    }
    line
}

pub(super) fn parse_alias(s: &str) -> pcap_core::Result<Alias> {
    Alias::new(s)
}

fn parse_rule(s: &str) -> pcap_decode::Result<ProtoRule> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use pcap_core::domain::{Retention, StopConditions, Target};

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        init: InitArgs,
    }

    fn parse(argv: &[&str]) -> InitArgs {
        Wrap::try_parse_from(std::iter::once("init").chain(argv.iter().copied()))
            .unwrap()
            .init
    }

    #[test]
    fn first_word_is_the_interface_and_the_rest_the_filter() {
        let a = parse(&[
            "lo", "udp", "port", "9999", "--alias", "web", "--count", "10",
        ]);
        assert_eq!(a.iface.as_deref(), Some("lo"));
        assert_eq!(join_filter(&a.filter), "udp port 9999");
        assert_eq!(a.aliases, vec![Alias::new("web").unwrap()]);
        assert_eq!(a.count, Some(10));
        let a = parse(&["eth0", "tcp port 80 and host 10.0.0.1"]);
        assert_eq!(join_filter(&a.filter), "tcp port 80 and host 10.0.0.1");
        let a = parse(&[]);
        assert_eq!((a.iface, join_filter(&a.filter)), (None, String::new()));
    }

    #[test]
    fn units_and_bad_values() {
        let a = parse(&[
            "lo",
            "--duration",
            "5m",
            "--max-age",
            "90",
            "--max-size",
            "500M",
        ]);
        assert_eq!(
            (a.duration, a.max_age, a.max_size),
            (Some(300), Some(90), Some(500 << 20))
        );
        for bad in [
            &["--alias", "123"][..],
            &["--max-size", "lots"],
            &["--duration", "10ms"],
        ] {
            assert!(
                Wrap::try_parse_from(std::iter::once("init").chain(bad.iter().copied())).is_err()
            );
        }
    }

    #[test]
    fn decode_rules_are_parsed_and_sent() {
        let a = parse(&["lo", "--decode", "http:80,8080", "--decode", "dns"]);
        assert_eq!(
            a.decode.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["http:80,8080", "dns"]
        );
        assert_eq!(spec(&a, "lo").unwrap().decode, a.decode);
        let err = Wrap::try_parse_from(["init", "lo", "--decode", "smtp"])
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("use http, dns, http2, grpc or tls"),
            "{err}"
        );
        let many: Vec<String> = (1..=17).map(|p| format!("--decode=dns:{p}")).collect();
        let a = parse(&many.iter().map(String::as_str).collect::<Vec<_>>());
        let err = spec(&a, "lo").unwrap_err();
        assert!(err.0.contains("at most 16"), "{}", err.0);
    }

    #[test]
    fn outcome_lines() {
        let web = Alias::new("web").unwrap();
        let mut c = CaptureInfo {
            id: 3,
            aliases: vec![web.clone()],
            target: Target::named("lo").unwrap(),
            filter: "udp".into(),
            applied_filter: "udp".into(),
            snaplen: 262_144,
            promisc: true,
            stop: StopConditions::default(),
            retention: Retention::default(),
            owner: String::new(),
            state: State::Active,
            reason: String::new(),
            counters: Default::default(),
            link_type: 1,
            created_unix_ns: 1,
            started_unix_ns: 0,
            anchor: None,
            netns_cookie: None,
            interface_names: Default::default(),
            decode: Vec::new(),
            imported_from: None,
        };
        assert_eq!(
            outcome(&c, true, std::slice::from_ref(&web), ""),
            "created capture 3 (web) on lo"
        );
        assert_eq!(
            outcome(&c, false, std::slice::from_ref(&web), ""),
            "capture 3 already has this interface and filter; alias web added"
        );
        c.target = Target::named("any").unwrap();
        c.state = State::Pending;
        assert_eq!(
            outcome(&c, true, &[], ""),
            "created capture 3 (web) on all interfaces; start it with `pcap start 3`"
        );
        assert_eq!(
            outcome(&c, true, &[], "lab:"),
            "created capture 3 (web) on all interfaces; start it with `pcap start lab:3`"
        );
    }

    #[test]
    fn any_and_empty_mean_all_interfaces() {
        let args = parse(&[]);
        assert!(spec(&args, "").unwrap().target.interfaces.is_empty());
        assert!(spec(&args, "any").unwrap().target.interfaces.is_empty());
        assert_eq!(
            spec(&args, " lo ").unwrap().target.single_interface(),
            Some("lo")
        );
        assert_eq!(
            spec(&args, "lo, eth0").unwrap().target.interfaces,
            ["lo", "eth0"]
        );
        for (bad, says) in [("lo,lo", "named twice"), ("lo,,eth0", "empty interface")] {
            let e = spec(&args, bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn what_pcapd_would_refuse_is_refused_here() {
        let args = parse(&[]);
        let e = spec(&args, "a234567890123456").unwrap_err().to_string();
        assert!(e.contains("1 to 15 bytes"), "{e}");
        let mut many = vec!["lo"];
        let names: Vec<String> = (0..33).map(|i| format!("a{i}")).collect();
        for n in &names {
            many.extend(["--alias", n]);
        }
        let e = spec(&parse(&many), "lo").unwrap_err().to_string();
        assert_eq!(e, "33 aliases given (--alias): a capture has at most 32");
        let long = "x".repeat(65_537);
        let e = spec(&parse(&["lo", &long]), "lo").unwrap_err().to_string();
        assert!(e.contains("at most 65536 bytes"), "{e}");
        let a = parse(&[
            "lo",
            "--duration",
            "1h",
            "--max-size",
            "1G",
            "--snaplen",
            "0",
        ]);
        let s = spec(&a, "lo").unwrap();
        assert_eq!(s.stop.duration_secs, Some(3600));
        assert_eq!(s.retention.max_bytes, Some(1 << 30));
        assert_eq!(s.snaplen, pcap_core::DEFAULT_SNAPLEN);
    }
}
