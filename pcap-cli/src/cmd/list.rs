//! `pcap list`: every capture with its state and counters.

use anyhow::Result;
use pcap_core::api::v1 as api;
use pcap_core::domain::CaptureInfo;
use pcap_core::parse::human_size;

use super::{Context, RemoteArg};
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::table::{or_dash, Align, Table};
use crate::view::{aliases_cell, decode_cell, drops, state_cell, CaptureJson};

/// Runs `pcap list`.
pub async fn run(args: RemoteArg, ctx: &Context) -> Result<()> {
    let endpoint = ctx.targets.resolve_remote(args.remote.as_deref())?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let response = client
        .list(api::ListRequest {})
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    let mut captures = super::captures(response.captures)?;
    captures.sort_by_key(|c| c.id);
    if ctx.json {
        return print_json(&captures.iter().map(CaptureJson::from).collect::<Vec<_>>());
    }
    print_stdout(&render(&captures))?;
    if captures.is_empty() {
        eprintln!(
            "no captures; create one with `pcap init {}IFACE FILTER --alias NAME`",
            endpoint.prefix()
        );
    }
    Ok(())
}

/// The table, followed by the filters pcapd compiled where they differ from those given.
/// A DECODE column (the `--decode` rules) is shown only when some capture has rules.
fn render(captures: &[CaptureInfo]) -> String {
    let mut columns = vec![
        ("ID", Align::Left),
        ("ALIASES", Align::Left),
        ("IFACE", Align::Left),
        ("FILTER", Align::Left),
        ("OWNER", Align::Left),
        ("STATE", Align::Left),
        ("PACKETS", Align::Right),
        ("BYTES", Align::Right),
        ("DROPS", Align::Right),
        ("SPOOL", Align::Right),
    ];
    let decoding = captures.iter().any(|c| !c.decode.is_empty());
    if decoding {
        columns.push(("DECODE", Align::Left));
    }
    let mut table = Table::new(&columns);
    for c in captures {
        let mut row = vec![
            c.id.to_string(),
            aliases_cell(&c.aliases),
            crate::view::target_cell(c),
            or_dash(&c.filter),
            or_dash(&c.owner),
            state_cell(c.state, &c.reason),
            c.counters.spooled_packets.to_string(),
            human_size(c.counters.spooled_bytes),
            drops(&c.counters).to_string(),
            human_size(c.counters.spool_bytes),
        ];
        if decoding {
            row.push(decode_cell(&c.decode));
        }
        table.row(row);
    }
    let mut out = table.render();
    let applied: Vec<&CaptureInfo> = captures
        .iter()
        .filter(|c| !c.applied_filter.is_empty() && c.applied_filter != c.filter)
        .collect();
    if !applied.is_empty() {
        out.push_str("\nfilters as applied by pcapd:\n");
        for c in applied {
            out.push_str(&format!("  {}: {}\n", c.id, c.applied_filter));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::domain::{Alias, Counters, Retention, State, StopConditions, Target};

    fn capture(
        id: u64,
        alias: &str,
        iface: Option<&str>,
        filter: &str,
        applied: &str,
    ) -> CaptureInfo {
        CaptureInfo {
            id,
            aliases: vec![Alias::new(alias).unwrap()],
            target: Target {
                interfaces: iface.map(str::to_owned).into_iter().collect(),
                netns: None,
            },
            filter: filter.into(),
            applied_filter: applied.into(),
            snaplen: 262_144,
            promisc: true,
            stop: StopConditions::default(),
            retention: Retention::default(),
            owner: "uid 0 (root)".into(),
            state: State::Active,
            reason: String::new(),
            counters: Counters::default(),
            link_type: 276,
            created_unix_ns: 1,
            started_unix_ns: 1,
            anchor: None,
            netns_cookie: None,
            interface_names: Default::default(),
            decode: Vec::new(),
            imported_from: None,
        }
    }

    #[test]
    fn table_with_states_sizes_and_applied_filters() {
        let mut a = capture(1, "web", Some("lo"), "udp port 9999", "udp port 9999");
        a.counters = Counters {
            spooled_packets: 12,
            spooled_bytes: 1_258_291,
            spool_bytes: 2048,
            dropped_kernel: 1,
            dropped_interface: 2,
            ..Default::default()
        };
        let mut b = capture(12, "all", None, "", "not tcp port 2020");
        b.state = State::Failed;
        b.reason = "disk full".into();
        b.owner = "uid 1000 (alice)".into();
        let mut c = capture(13, "tls", None, "tcp", "tcp");
        c.owner = String::new();
        assert_eq!(
            render(&[a, b, c]),
            "ID  ALIASES  IFACE  FILTER         OWNER             STATE               PACKETS    BYTES  DROPS    SPOOL\n\
             1   web      lo     udp port 9999  uid 0 (root)      ACTIVE                   12  1.2 MiB      3  2.0 KiB\n\
             12  all      any    -              uid 1000 (alice)  FAILED (disk full)        0      0 B      0      0 B\n\
             13  tls      any    tcp            -                 ACTIVE                    0      0 B      0      0 B\n\
             \n\
             filters as applied by pcapd:\n  \
             12: not tcp port 2020\n"
        );
    }

    #[test]
    fn a_decode_column_only_when_a_capture_decodes() {
        let mut a = capture(1, "web", Some("lo"), "tcp", "tcp");
        a.decode = vec!["http:80,8080".parse().unwrap(), "dns".parse().unwrap()];
        let b = capture(2, "db", Some("lo"), "udp", "udp");
        assert_eq!(
            render(&[a, b.clone()]),
            "ID  ALIASES  IFACE  FILTER  OWNER         STATE   PACKETS  BYTES  DROPS  SPOOL  DECODE\n\
             1   web      lo     tcp     uid 0 (root)  ACTIVE        0    0 B      0    0 B  http:80,8080 dns\n\
             2   db       lo     udp     uid 0 (root)  ACTIVE        0    0 B      0    0 B  -\n"
        );
        assert!(!render(&[b]).contains("DECODE"));
    }

    #[test]
    fn empty_list_is_just_the_header() {
        assert_eq!(
            render(&[]),
            "ID  ALIASES  IFACE  FILTER  OWNER  STATE  PACKETS  BYTES  DROPS  SPOOL\n"
        );
    }
}
