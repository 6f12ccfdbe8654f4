//! `pcap start`, `pcap stop` and `pcap delete`: the same selection, three verbs.

use anyhow::Result;
use clap::Args;
use pcap_core::api::v1 as api;
use pcap_core::domain::{CaptureInfo, Selector, State};

use super::Context;
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::values::{self, Usage};
use crate::view::{summary_line, CaptureJson};

/// Which captures a command applies to: one by id or alias, or all of them, on the local
/// daemon or a remote one (`lab:web`, `--all lab:`).
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`); with --all,
    /// only `REMOTE:`
    #[arg(value_name = "[REMOTE:]ID|ALIAS", required_unless_present = "all")]
    capture: Option<String>,
    /// Every capture (of the remote given as `REMOTE:`, if any)
    #[arg(long)]
    all: bool,
}

/// `pcap start`: the selection, and optionally new stop conditions for this run.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Stop by itself after this long (seconds, or 30s, 5m, 2h; at most 10 years); replaces
    /// the capture's own
    #[arg(long, value_name = "SECS", value_parser = values::duration)]
    pub duration: Option<u64>,
    /// Stop by itself after this many packets (at most 10^12); replaces the capture's own
    #[arg(long, value_name = "N", value_parser = values::count)]
    pub count: Option<u64>,
}

impl StartArgs {
    /// The stop conditions asked for, if any.
    pub fn stop(&self) -> Option<api::StopConditions> {
        if self.duration.is_none() && self.count.is_none() {
            return None;
        }
        Some(api::StopConditions {
            duration_secs: self.duration.unwrap_or(0),
            packet_count: self.count.unwrap_or(0),
        })
    }
}

/// What to do to the selected captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Delete,
}

/// Runs `pcap start|stop|delete`: one line per capture affected (`3 web ACTIVE`), or JSON.
pub async fn run(
    action: Action,
    args: SelectArgs,
    stop: Option<api::StopConditions>,
    ctx: &Context,
) -> Result<()> {
    let (endpoint, name) = ctx.targets.resolve(args.capture.as_deref().unwrap_or(""))?;
    let selector = selector(args.all, name)?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let request = api::SelectRequest {
        selector: Some((&selector).into()),
        stop,
    };
    let response = match action {
        Action::Start => client.start(request).await,
        Action::Stop => client.stop(request).await,
        Action::Delete => client.delete(request).await,
    }
    .map_err(status_error(&endpoint))?
    .into_inner();
    let captures = super::captures(response.captures)?;
    if ctx.json {
        print_json(&captures.iter().map(CaptureJson::from).collect::<Vec<_>>())?;
        return start_failures(action, &captures);
    }
    if captures.is_empty() {
        eprintln!(
            "no captures; create one with `pcap init {}IFACE FILTER --alias NAME`",
            endpoint.prefix()
        );
        return Ok(());
    }
    let mut text = String::new();
    for c in &captures {
        text.push_str(&summary_line(c));
        text.push('\n');
    }
    print_stdout(&text)?;
    start_failures(action, &captures)
}

/// A start that left a capture FAILED is an error, so that `pcap start web && ...` stops.
fn start_failures(action: Action, captures: &[CaptureInfo]) -> Result<()> {
    if action != Action::Start {
        return Ok(());
    }
    let failed: Vec<String> = captures
        .iter()
        .filter(|c| c.state == State::Failed)
        .map(|c| format!("capture {} could not start: {}", c.id, c.reason))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}

/// The selector for `--all` or a typed id or alias (already stripped of any remote); what
/// cannot name a capture is a usage error.
pub fn selector(all: bool, name: &str) -> Result<Selector, Usage> {
    if all {
        if !name.is_empty() {
            return Err(Usage(
                "--all selects every capture: give it no id or alias (with a remote, only \
                 the remote: `--all lab:`)"
                    .into(),
            ));
        }
        return Ok(Selector::All);
    }
    match name.split_once(':') {
        Some((remote, _)) => Err(Usage(format!(
            "no capture {name:?}: an alias cannot hold ':', and {remote:?} is not a known \
             remote (see `pcap remote list`)"
        ))),
        None => Ok(Selector::parse(name)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use pcap_core::domain::Alias;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        select: SelectArgs,
    }

    fn parse(argv: &[&str]) -> Result<SelectArgs, clap::Error> {
        Wrap::try_parse_from(std::iter::once("start").chain(argv.iter().copied())).map(|w| w.select)
    }

    #[test]
    fn one_capture_or_all_but_not_neither() {
        let a = parse(&["web"]).unwrap();
        assert_eq!(a.capture.as_deref(), Some("web"));
        assert!(parse(&["--all"]).unwrap().all);
        let a = parse(&["--all", "lab:"]).unwrap();
        assert!(a.all);
        assert_eq!(a.capture.as_deref(), Some("lab:"));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn ids_aliases_and_all() {
        assert_eq!(selector(false, "7").unwrap(), Selector::Id(7));
        assert_eq!(
            selector(false, "web").unwrap(),
            Selector::Alias(Alias::new("web").unwrap())
        );
        assert_eq!(selector(true, "").unwrap(), Selector::All);
        let err = selector(false, "no/such").unwrap_err().to_string();
        assert!(err.contains("invalid alias"), "{err}");
    }

    #[test]
    fn all_with_a_capture_is_refused() {
        // `--all lab:` reaches here as --all and an empty name.
        assert_eq!(selector(true, "").unwrap(), Selector::All);
        let err = selector(true, "web").unwrap_err().to_string();
        assert!(err.contains("--all lab:"), "{err}");
    }

    #[test]
    fn a_remote_with_no_capture_or_an_unknown_prefix() {
        let err = selector(false, "").unwrap_err().to_string();
        assert!(err.contains("no capture given"), "{err}");
        let err = selector(false, "prod:web").unwrap_err().to_string();
        assert!(err.contains("\"prod\" is not a known remote"), "{err}");
    }
}
