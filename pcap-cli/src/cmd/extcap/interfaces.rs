//! Wireshark's view of pcapd's captures: one interface per capture of the local daemon and
//! of each remote, and the answers to `--extcap-interfaces`, `--extcap-dlts` and
//! `--extcap-config`.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use pcap_core::api::v1 as api;
use pcap_core::domain::CaptureInfo;

use super::{LIST_WAIT, PREFIX};
use crate::cmd::Context;
use crate::target::Endpoint;

/// One capture as a Wireshark interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Interface {
    /// `pcapd-web`, `pcapd-lab-db`.
    pub(super) value: String,
    /// As `pcap replay` takes it: `web`, `lab:db`, `3`.
    pub(super) label: String,
    pub(super) info: CaptureInfo,
}

/// Every capture of the local daemon and of each remote; a daemon that cannot be reached
/// (or does not answer within [`LIST_WAIT`]) contributes none.
pub(super) async fn interfaces(ctx: &Context) -> Vec<Interface> {
    let mut endpoints = Vec::new();
    if let Ok(local) = ctx.targets.resolve_remote(None) {
        endpoints.push(local);
    }
    if let Ok(remotes) = ctx.targets.remotes() {
        endpoints.extend(remotes.iter().cloned().map(Endpoint::Remote));
    }
    // Asked all at once: the list waits LIST_WAIT at most, however many are away.
    let mut asked = tokio::task::JoinSet::new();
    for (n, e) in endpoints.iter().enumerate() {
        let (targets, e) = (ctx.targets.clone(), e.clone());
        asked.spawn(async move {
            let listed = tokio::time::timeout(LIST_WAIT, async {
                let mut client = targets.connect(&e).await.ok()?;
                let list = client.list(api::ListRequest {}).await.ok()?.into_inner();
                crate::cmd::captures(list.captures).ok()
            });
            (n, listed.await.ok().flatten().unwrap_or_default())
        });
    }
    let mut lists = vec![Vec::new(); endpoints.len()];
    while let Some(done) = asked.join_next().await {
        if let Ok((n, list)) = done {
            lists[n] = list;
        }
    }
    let mut out = Vec::new();
    for (endpoint, mut captures) in endpoints.iter().zip(lists) {
        captures.sort_by_key(|c| c.id);
        for c in captures {
            let name = match c.aliases.first() {
                Some(a) => a.to_string(),
                None => c.id.to_string(),
            };
            let (value, label) = match endpoint {
                Endpoint::Unix(_) => (format!("{PREFIX}{name}"), name),
                Endpoint::Remote(r) => (
                    format!("{PREFIX}{}-{name}", r.name),
                    format!("{}:{name}", r.name),
                ),
            };
            out.push(Interface {
                value,
                label,
                info: c,
            });
        }
    }
    out
}

/// The interface Wireshark named.
pub(super) async fn find(ctx: &Context, value: &str) -> Result<Interface> {
    if !value.starts_with(PREFIX) {
        bail!("{value:?} is not an interface of pcapd: they are named {PREFIX}ALIAS");
    }
    let list = interfaces(ctx).await;
    if let Some(i) = list.iter().find(|i| i.value == value) {
        return Ok(i.clone());
    }
    let known: Vec<&str> = list.iter().map(|i| i.value.as_str()).collect();
    Err(anyhow!(
        "no capture of pcapd is interface {value}: {}",
        match known.is_empty() {
            true => "no daemon listed any capture (is pcapd running? see `pcap list`)".to_owned(),
            false => format!("the interfaces are {}", known.join(", ")),
        }
    ))
}

/// Extcap syntax puts values in braces: a brace in a value would end it early.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

pub(super) fn render_interfaces(list: &[Interface]) -> String {
    let mut out = format!(
        "extcap {{version={}}}{{help=file:///usr/share/doc/pcapd/README.md}}\n",
        env!("CARGO_PKG_VERSION")
    );
    for i in list {
        let filter = match i.info.filter.trim() {
            "" => "no filter".to_owned(),
            f => f.to_owned(),
        };
        let shown = format!("pcapd: {} ({}, {filter})", i.label, i.info.target);
        let _ = writeln!(
            out,
            "interface {{value={}}}{{display={}}}",
            clean(&i.value),
            clean(&shown)
        );
    }
    out
}

pub(super) fn render_dlt(link_type: u32) -> String {
    let (name, display) = match link_type {
        0 => ("NULL", "BSD loopback"),
        1 => ("EN10MB", "Ethernet"),
        101 => ("RAW", "Raw IP"),
        113 => ("LINUX_SLL", "Linux cooked capture v1"),
        276 => ("LINUX_SLL2", "Linux cooked capture v2"),
        _ => ("USER", "link type of the capture"),
    };
    let name = match name {
        "USER" => format!("DLT_{link_type}"),
        n => n.to_owned(),
    };
    format!("dlt {{number={link_type}}}{{name={name}}}{{display={display}}}\n")
}

pub(super) fn render_config() -> String {
    [
        "arg {number=0}{call=--spooled}{display=Spooled packets first}{type=boolflag}\
         {default=false}{tooltip=Start with what the capture spooled, then go on live; \
         otherwise new packets only}",
        "arg {number=1}{call=--since}{display=Spooled since}{type=string}\
         {tooltip=Start with the packets spooled from this time on, then go on live (RFC 3339, \
         unix seconds, or how long ago: 30s, 5m, 2h)}",
        "arg {number=2}{call=--filter}{display=Filter}{type=string}\
         {tooltip=Only packets matching this BPF filter (as tcpdump's)}",
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlts_and_config_follow_the_syntax() {
        assert_eq!(
            render_dlt(276),
            "dlt {number=276}{name=LINUX_SLL2}{display=Linux cooked capture v2}\n"
        );
        assert!(render_dlt(147).contains("{name=DLT_147}"));
        let config = render_config();
        assert_eq!(config.lines().count(), 3);
        assert!(config.contains("{call=--spooled}") && config.contains("{type=boolflag}"));
    }
}
