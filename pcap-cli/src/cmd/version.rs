//! `pcap version`: this client's version and the daemon's.

use anyhow::Result;
use pcap_core::api::v1 as api;
use serde::Serialize;

use super::{Context, RemoteArg};
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::target::Endpoint;

/// This program's name and version.
const CLIENT: Program = Program {
    name: "pcap",
    version: env!("CARGO_PKG_VERSION"),
};

/// A program's name and semantic version.
#[derive(Debug, Serialize)]
struct Program<'a> {
    name: &'a str,
    version: &'a str,
}

/// Both versions, for `--json`; `daemon` is null when it could not be asked.
#[derive(Debug, Serialize)]
struct Versions<'a> {
    client: Program<'a>,
    daemon: Option<Program<'a>>,
}

/// Runs `pcap version`: `pcap X.Y.Z` then `pcapd X.Y.Z`. The client line comes first so
/// that it is shown even when the daemon cannot be reached, which is then an error. With
/// `REMOTE:` the daemon is that remote's.
pub async fn run(args: RemoteArg, ctx: &Context) -> Result<()> {
    // A misspelt remote is told before anything is printed.
    let endpoint = ctx.targets.resolve_remote(args.remote.as_deref())?;
    if !ctx.json {
        print_stdout(&format!("{} {}\n", CLIENT.name, CLIENT.version))?;
    }
    let daemon = ask_daemon(&endpoint, ctx).await;
    let reply = daemon.as_ref().ok();
    if ctx.json {
        let daemon = reply.map(|r| Program {
            name: &r.name,
            version: &r.version,
        });
        print_json(&Versions {
            client: CLIENT,
            daemon,
        })?;
    } else if let Some(r) = reply {
        print_stdout(&format!("{} {}\n", r.name, r.version))?;
    }
    daemon.map(|_| ())
}

async fn ask_daemon(endpoint: &Endpoint, ctx: &Context) -> Result<api::VersionResponse> {
    let mut client = ctx.targets.connect(endpoint).await?;
    Ok(client
        .version(api::VersionRequest {})
        .await
        .map_err(status_error(endpoint))?
        .into_inner())
}
