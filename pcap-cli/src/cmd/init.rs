//! `pcap init`: define a capture, or add aliases to the one that already has the same
//! interface and filter.

use anyhow::Result;
use clap::Args;
use pcap_core::api::v1 as api;
use pcap_core::domain::{
    Alias, CaptureInfo, CaptureSpec, Retention, State, StopConditions, Target,
};
use pcap_core::parse;

use super::Context;
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::view::{aliases_cell, CaptureJson};

/// Arguments of `pcap init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Interface to capture on, after `REMOTE:` for a remote daemon (`lab:eth0`); empty or
    /// "any" captures on all interfaces
    #[arg(value_name = "[REMOTE:]IFACE")]
    iface: Option<String>,
    /// BPF filter in libpcap syntax; several words are joined with spaces, as in tcpdump
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,
    /// Name for the capture (repeatable)
    #[arg(long = "alias", value_name = "NAME", value_parser = parse_alias)]
    aliases: Vec<Alias>,
    /// Bytes kept of each packet [default: 262144]
    #[arg(long, value_name = "N")]
    snaplen: Option<u32>,
    /// Do not put the interface into promiscuous mode
    #[arg(long)]
    no_promisc: bool,
    /// Stop after this long (seconds, or 30s, 5m, 2h)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<u64>,
    /// Stop after this many packets
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Keep at most this much spool (bytes, or 500M, 2G) [default: the daemon's]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
    /// Keep packets at most this long (seconds, or 30m, 7d) [default: the daemon's]
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    max_age: Option<u64>,
}

/// Runs `pcap init`.
pub async fn run(args: InitArgs, ctx: &Context) -> Result<()> {
    let conn = ctx
        .targets
        .client_for(args.iface.as_deref().unwrap_or(""))
        .await?;
    let (mut client, iface, endpoint) = (conn.client, conn.name, conn.endpoint);
    let spec = CaptureSpec {
        target: target(iface),
        filter: join_filter(&args.filter),
        aliases: args.aliases,
        snaplen: args.snaplen.unwrap_or(0),
        promisc: !args.no_promisc,
        stop: StopConditions {
            duration_secs: args.duration,
            packet_count: args.count,
        },
        retention: Retention {
            max_bytes: args.max_size,
            max_age_secs: args.max_age,
        },
    };
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

/// The interface as the daemon wants it: none for all interfaces.
fn target(iface: &str) -> Target {
    let iface = iface.trim();
    let interface = (!iface.is_empty() && iface != "any").then(|| iface.to_owned());
    Target { interface }
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
        let on = match &c.target.interface {
            Some(iface) => iface.clone(),
            None => "all interfaces".to_owned(),
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

fn parse_alias(s: &str) -> pcap_core::Result<Alias> {
    Alias::new(s)
}

fn parse_size(s: &str) -> pcap_core::Result<u64> {
    parse::size(s)
}

/// A duration in whole seconds; less than a second would mean "no limit" to the daemon.
fn parse_secs(s: &str) -> Result<u64, String> {
    let d = parse::duration(s).map_err(|e| e.to_string())?;
    match d.as_secs() {
        0 => Err(format!("{s:?} is less than a second: use at least 1s")),
        secs => Ok(secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
    fn outcome_lines() {
        let web = Alias::new("web").unwrap();
        let mut c = CaptureInfo {
            id: 3,
            aliases: vec![web.clone()],
            target: target("lo"),
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
        };
        assert_eq!(
            outcome(&c, true, std::slice::from_ref(&web), ""),
            "created capture 3 (web) on lo"
        );
        assert_eq!(
            outcome(&c, false, std::slice::from_ref(&web), ""),
            "capture 3 already has this interface and filter; alias web added"
        );
        c.target = target("any");
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
        assert_eq!(target("").interface, None);
        assert_eq!(target("any").interface, None);
        assert_eq!(target("lo").interface.as_deref(), Some("lo"));
    }
}
