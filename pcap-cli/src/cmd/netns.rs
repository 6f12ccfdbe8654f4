//! `pcap netns`: every network namespace on the daemon's host, with its names, processes
//! and interfaces, so that a capture can be pointed at one with `--netns` or `--pid`.

use anyhow::Result;
use pcap_core::api::v1 as api;
use serde::Serialize;

use super::{Context, RemoteArg};
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::table::{Align, Table};
use crate::view::rfc3339;

/// Processes named in the table per namespace; `--json` has them all.
const SHOWN_PROCESSES: usize = 3;

/// A namespace as scripts see it in `--json` output.
#[derive(Debug, Serialize)]
struct NamespaceJson<'a> {
    inode: u64,
    /// pcapd's own namespace.
    own: bool,
    names: &'a [String],
    paths: &'a [String],
    processes: Vec<ProcessJson<'a>>,
    containers: Vec<ContainerJson<'a>>,
    interfaces: Vec<InterfaceJson<'a>>,
}

#[derive(Debug, Serialize)]
struct ProcessJson<'a> {
    pid: u32,
    command: &'a str,
    /// RFC 3339.
    started: Option<String>,
}

#[derive(Debug, Serialize)]
struct ContainerJson<'a> {
    runtime: &'a str,
    name: &'a str,
    id: &'a str,
}

#[derive(Debug, Serialize)]
struct InterfaceJson<'a> {
    name: &'a str,
    up: bool,
    running: bool,
    loopback: bool,
    addresses: &'a [String],
}

impl<'a> From<&'a api::Namespace> for NamespaceJson<'a> {
    fn from(n: &'a api::Namespace) -> Self {
        NamespaceJson {
            inode: n.inode,
            own: n.own,
            names: &n.names,
            paths: &n.paths,
            processes: n
                .processes
                .iter()
                .map(|p| ProcessJson {
                    pid: p.pid,
                    command: &p.command,
                    started: rfc3339(p.started_unix_ns),
                })
                .collect(),
            containers: n
                .containers
                .iter()
                .map(|c| ContainerJson {
                    runtime: &c.runtime,
                    name: &c.name,
                    id: &c.id,
                })
                .collect(),
            interfaces: n
                .interfaces
                .iter()
                .map(|i| InterfaceJson {
                    name: &i.name,
                    up: i.up,
                    running: i.running,
                    loopback: i.loopback,
                    addresses: &i.addresses,
                })
                .collect(),
        }
    }
}

/// Runs `pcap netns`.
pub async fn run(args: RemoteArg, ctx: &Context) -> Result<()> {
    let endpoint = ctx.targets.resolve_remote(args.remote.as_deref())?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let response = client
        .namespaces(api::NamespacesRequest {})
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    if ctx.json {
        return print_json(
            &response
                .namespaces
                .iter()
                .map(NamespaceJson::from)
                .collect::<Vec<_>>(),
        );
    }
    print_stdout(&render(&response.namespaces))
}

fn render(namespaces: &[api::Namespace]) -> String {
    let mut table = Table::new(&[
        ("INODE", Align::Right),
        ("NAMES", Align::Left),
        ("PROCESSES", Align::Left),
        ("INTERFACES", Align::Left),
    ]);
    for n in namespaces {
        let mut names = n.names.clone();
        if n.own {
            names.insert(0, "(pcapd's own)".into());
        }
        names.extend(
            n.paths
                .iter()
                .filter(|p| !n.names.iter().any(|name| p.ends_with(&format!("/{name}"))))
                .cloned(),
        );
        let mut procs: Vec<String> = n
            .processes
            .iter()
            .take(SHOWN_PROCESSES)
            .map(|p| format!("{} {}", p.pid, p.command))
            .collect();
        if n.processes.len() > SHOWN_PROCESSES {
            procs.push(format!("+{} more", n.processes.len() - SHOWN_PROCESSES));
        }
        let ifaces: Vec<String> = n
            .interfaces
            .iter()
            .map(|i| match i.up {
                true => i.name.clone(),
                false => format!("{} (down)", i.name),
            })
            .collect();
        let or_dash = |v: Vec<String>| match v.is_empty() {
            true => "-".to_owned(),
            false => v.join(", "),
        };
        table.row(vec![
            n.inode.to_string(),
            or_dash(names),
            or_dash(procs),
            or_dash(ifaces),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_table() {
        let ns = |inode, own, names: &[&str]| api::Namespace {
            inode,
            own,
            names: names.iter().map(|s| s.to_string()).collect(),
            paths: names.iter().map(|s| format!("/run/netns/{s}")).collect(),
            processes: (1..=5)
                .map(|pid| api::NamespaceProcess {
                    pid,
                    command: "sh".into(),
                    started_unix_ns: 0,
                })
                .collect(),
            interfaces: vec![api::Interface {
                name: "lo".into(),
                up: !own,
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = render(&[ns(4026531840, true, &[]), ns(4026532300, false, &["blue"])]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("     INODE  NAMES"), "{out}");
        assert!(lines[1].contains("(pcapd's own)"), "{out}");
        assert!(lines[1].contains("1 sh, 2 sh, 3 sh, +2 more"), "{out}");
        assert!(lines[1].contains("lo (down)"), "{out}");
        assert!(
            lines[2].contains("blue") && !lines[2].contains("/run/netns"),
            "{out}"
        );
    }
}
