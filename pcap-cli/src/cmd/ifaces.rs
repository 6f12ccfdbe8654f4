//! `pcap ifaces`: the interfaces the daemon can capture on.

use anyhow::Result;
use pcap_core::api::v1 as api;
use serde::Serialize;

use super::{Context, RemoteArg};
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::table::{Align, Table};

/// An interface as scripts see it in `--json` output.
#[derive(Debug, Serialize)]
struct InterfaceJson<'a> {
    name: &'a str,
    description: &'a str,
    addresses: &'a [String],
    up: bool,
    running: bool,
    loopback: bool,
}

/// Arguments of `pcap ifaces`.
#[derive(Debug, clap::Args)]
pub struct IfacesArgs {
    #[command(flatten)]
    remote: RemoteArg,
    /// The interfaces of this network namespace: an `ip netns` name, a namespace file's
    /// path or its inode number
    #[arg(long, value_name = "NETNS", conflicts_with = "pid")]
    netns: Option<String>,
    /// The interfaces of this process's network namespace
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
}

/// Runs `pcap ifaces`.
pub async fn run(args: IfacesArgs, ctx: &Context) -> Result<()> {
    let request = api::InterfacesRequest {
        target: Some(api::Target {
            netns: args.netns.clone().unwrap_or_default(),
            pid: args.pid.unwrap_or(0),
            ..Default::default()
        }),
    };
    // Checked as pcapd will check it, before connecting.
    Option::<pcap_core::domain::Netns>::try_from(request.clone())
        .map_err(crate::values::Usage::from)?;
    let endpoint = ctx.targets.resolve_remote(args.remote.remote.as_deref())?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let response = client
        .interfaces(request)
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    if ctx.json {
        let list: Vec<InterfaceJson> = response
            .interfaces
            .iter()
            .map(|i| InterfaceJson {
                name: &i.name,
                description: &i.description,
                addresses: &i.addresses,
                up: i.up,
                running: i.running,
                loopback: i.loopback,
            })
            .collect();
        return print_json(&list);
    }
    print_stdout(&render(&response.interfaces))
}

fn render(interfaces: &[api::Interface]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("STATE", Align::Left),
        ("ADDRESSES", Align::Left),
    ]);
    for i in interfaces {
        let addresses = match i.addresses.is_empty() {
            true => "-".to_owned(),
            false => i.addresses.join(", "),
        };
        table.row(vec![i.name.clone(), state(i), addresses]);
    }
    table.render()
}

/// `up` or `down`, then `running` and `loopback` when they hold: `up,running,loopback`.
fn state(i: &api::Interface) -> String {
    let mut words = vec![if i.up { "up" } else { "down" }];
    if i.running {
        words.push("running");
    }
    if i.loopback {
        words.push("loopback");
    }
    words.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_table() {
        let lo = api::Interface {
            name: "lo".into(),
            description: String::new(),
            addresses: vec!["127.0.0.1".into(), "::1".into()],
            up: true,
            running: true,
            loopback: true,
        };
        let eth = api::Interface {
            name: "eth1".into(),
            ..Default::default()
        };
        assert_eq!(
            render(&[lo, eth]),
            "NAME  STATE                ADDRESSES\n\
             lo    up,running,loopback  127.0.0.1, ::1\n\
             eth1  down                 -\n"
        );
    }
}
