//! `pcap version`: this client's version and the daemon's.

use anyhow::Result;
use pcap_core::api::v1 as api;
use serde::Serialize;

use super::Context;
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;

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
/// that it is shown even when the daemon cannot be reached, which is then an error.
pub async fn run(ctx: &Context) -> Result<()> {
    if !ctx.json {
        print_stdout(&format!("{} {}\n", CLIENT.name, CLIENT.version))?;
    }
    let daemon = ask_daemon(ctx).await;
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

async fn ask_daemon(ctx: &Context) -> Result<api::VersionResponse> {
    let (mut client, _) = ctx.targets.client_for("").await?;
    Ok(client
        .version(api::VersionRequest {})
        .await
        .map_err(status_error)?
        .into_inner())
}
