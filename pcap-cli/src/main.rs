//! `pcap`: the command-line client of pcapd. It defines and drives captures through the
//! daemon's API and writes what they captured as standard pcap savefiles.

// Denied, not forbidden: taking ownership of descriptors received from pcapd needs one
// `unsafe` line (handoff.rs); loading libpcap for filters on files needs a few (bpf.rs).
#![deny(unsafe_code)]

mod bpf;
mod capfile;
mod cmd;
mod handoff;
mod merge;
mod output;
mod pcapng;
mod progress;
mod remotes;
mod roundtrips;
mod rpc;
mod sink;
mod sources;
mod table;
mod target;
mod values;
mod view;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Capture packets through pcapd: define named captures, start and stop them, and read
/// them back as pcap (`pcap replay web | wireshark -k -i -`).
#[derive(Debug, Parser)]
#[command(name = "pcap", version, propagate_version = true)]
struct Cli {
    /// UNIX socket of the local pcapd
    #[arg(long, global = true, value_name = "PATH", env = "PCAP_SOCKET",
          default_value = pcap_core::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print JSON for scripts instead of text for people
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: cmd::Command,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse_from(extcap_dispatch(std::env::args_os().collect()));
    let ctx = cmd::Context {
        json: cli.json,
        targets: target::Targets::new(cli.socket),
        cli: <Cli as clap::CommandFactory>::command,
    };
    match cmd::run(cli.command, &ctx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcap: error: {}", report(&e));
            match e.downcast_ref::<values::Usage>() {
                // As clap's own usage errors: the command line, not the daemon, was wrong.
                Some(_) => ExitCode::from(2),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// The command line to parse: `pcap extcap ARGS` when this binary runs under another name
/// with Wireshark's `--extcap-*` arguments. The Debian package links it into Wireshark's
/// extcap folder (`.../wireshark/extcap/pcapd -> /usr/bin/pcap`), and Wireshark runs every
/// file there with those arguments and nothing else.
fn extcap_dispatch(mut args: Vec<OsString>) -> Vec<OsString> {
    let renamed = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n != "pcap");
    let wireshark = args
        .iter()
        .skip(1)
        .any(|a| a.to_str().is_some_and(|a| a.starts_with("--extcap-")));
    if renamed && wireshark {
        args.insert(1, "extcap".into());
    }
    args
}

/// The error and its causes on one line, leaving out a cause its parent already quotes.
fn report(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from(["pcap", "list", "--json", "--socket", "/tmp/s"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        let cli = Cli::try_parse_from(["pcap", "--json", "version"]).unwrap();
        assert!(cli.json);
    }

    #[test]
    fn another_name_with_wireshark_arguments_is_the_extcap() {
        let line = |args: &[&str]| {
            extcap_dispatch(args.iter().map(OsString::from).collect())
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect::<Vec<_>>()
        };
        let link = "/usr/lib/x86_64-linux-gnu/wireshark/extcap/pcapd";
        assert_eq!(
            line(&[link, "--extcap-interfaces", "--extcap-version=4.0"]),
            [
                link,
                "extcap",
                "--extcap-interfaces",
                "--extcap-version=4.0"
            ]
        );
        let capture = [
            link,
            "--capture",
            "--extcap-interface",
            "pcapd-web",
            "--fifo",
            "/f",
        ];
        assert_eq!(line(&capture)[1], "extcap");
        let cli = Cli::try_parse_from(line(&capture)).unwrap();
        assert!(matches!(cli.command, cmd::Command::Extcap(_)));
        // Under its own name, or without Wireshark's arguments, nothing changes.
        assert_eq!(
            line(&["/usr/bin/pcap", "--extcap-interfaces"])[1],
            "--extcap-interfaces"
        );
        assert_eq!(line(&["pcap", "list"]), ["pcap", "list"]);
        assert_eq!(line(&[link, "list"]), [link, "list"]);
    }

    #[test]
    fn causes_are_told_once() {
        let io = std::io::Error::other("disk full");
        let e = Err::<(), _>(io)
            .context("cannot write to out.pcap")
            .unwrap_err();
        assert_eq!(report(&e), "cannot write to out.pcap: disk full");
        let core = pcap_core::Error::io("/x", std::io::Error::other("gone"));
        assert_eq!(report(&anyhow::Error::from(core)), "/x: gone");
    }
}
