//! A fresh `pcapd` inside the receiving namespace, on a socket and data directory of its
//! own, and the `pcap` command line pointed at it. The socket is a path, so `pcap` itself
//! runs in the benchmark's own namespace, except where it matters: a local replay is handed
//! the segment files over an abstract socket, which only `pcap` in pcapd's namespace (as on
//! any host where both run) can reach, so replays are timed there.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::guard::{self, run, Output, Proc};
use crate::netns::Lab;

/// How long a `pcap` command may take.
const PCAP_LIMIT: Duration = Duration::from_secs(60);

/// Where the programs under test are.
#[derive(Debug, Clone)]
pub struct Bins {
    pub pcapd: PathBuf,
    pub pcap: PathBuf,
    /// This program, re-run as the traffic sender inside a namespace.
    pub bench: PathBuf,
}

/// A running pcapd; killed when dropped, unless [`Pcapd::shutdown`] stopped it first.
#[derive(Debug)]
pub struct Pcapd {
    proc: Proc,
    socket: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pcap: PathBuf,
    /// The network namespace it runs in, when not this program's.
    netns: Option<String>,
}

// === impl Pcapd ===

impl Pcapd {
    /// Starts `ip netns exec NS pcapd --socket DIR/pcapd.sock --data-dir DIR/data` and waits
    /// until the socket accepts connections.
    pub fn start(bins: &Bins, ns: &str, dir: &Path) -> Result<Pcapd> {
        Pcapd::spawn(bins, Lab::command(ns, &bins.pcapd), dir, Some(ns))
    }

    /// Like [`Pcapd::start`], with an empty config file (`--config DIR/pcapd.toml`): every
    /// setting at its default, whatever /etc/pcapd/pcapd.toml says.
    pub fn start_default(bins: &Bins, ns: &str, dir: &Path) -> Result<Pcapd> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("pcapd.toml");
        std::fs::write(&config, "")?;
        let mut cmd = Lab::command(ns, &bins.pcapd);
        cmd.arg("--config").arg(&config);
        Pcapd::spawn(bins, cmd, dir, Some(ns))
    }

    /// Starts `pcapd --socket DIR/pcapd.sock --data-dir DIR/data` in this program's own
    /// network namespace (its captures see this host's `lo`).
    pub fn start_here(bins: &Bins, dir: &Path) -> Result<Pcapd> {
        Pcapd::spawn(bins, Command::new(&bins.pcapd), dir, None)
    }

    /// As [`Pcapd::start_here`], with `config` as its configuration file.
    pub fn start_here_with(bins: &Bins, dir: &Path, config: &str) -> Result<Pcapd> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("pcapd.toml");
        std::fs::write(&path, config)?;
        let mut cmd = Command::new(&bins.pcapd);
        cmd.arg("--config").arg(path);
        Pcapd::spawn(bins, cmd, dir, None)
    }

    fn spawn(bins: &Bins, mut cmd: Command, dir: &Path, netns: Option<&str>) -> Result<Pcapd> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("pcapd.sock");
        let data = dir.join("data");
        let log = dir.join("pcapd.log");
        let logf = File::create(&log)?;
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::from(logf.try_clone()?))
            .stderr(Stdio::from(logf));
        let mut proc = Proc::spawn(&mut cmd, "pcapd")?;
        let sock = socket.clone();
        let started = guard::wait_for(Duration::from_secs(20), "pcapd to listen", || {
            if let Some(s) = proc.try_wait()? {
                bail!("pcapd exited during start-up ({s})");
            }
            Ok(UnixStream::connect(&sock).is_ok())
        });
        let d = Pcapd {
            proc,
            socket,
            data,
            log,
            pcap: bins.pcap.clone(),
            netns: netns.map(str::to_owned),
        };
        started.map_err(|e| anyhow!("{e}; pcapd log:\n{}", d.log_tail()))?;
        Ok(d)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The daemon's API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A `pcap` command line for this daemon (stdin closed, no remotes file).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.pcap);
        c.env("PCAP_SOCKET", &self.socket)
            .env("XDG_CONFIG_HOME", self.data.with_file_name("config"));
        c
    }

    /// `bash -c 'set -o pipefail; SCRIPT' sh` in pcapd's network namespace, with the
    /// environment for `pcap` (`$PCAP` is its path); the arguments added next are `$1`, ...
    pub fn shell_beside(&self, script: &str) -> Command {
        let pipefail = format!("set -o pipefail; {script}");
        let mut c = match &self.netns {
            Some(ns) => Lab::command(ns, "bash"),
            None => Command::new("bash"),
        };
        c.args(["-c", &pipefail, "sh"]).envs(self.shell_env());
        c
    }

    /// The environment for `pcap` in a shell pipeline.
    fn shell_env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("PCAP_SOCKET", self.socket.clone()),
            ("PCAP", self.pcap.clone()),
            ("XDG_CONFIG_HOME", self.data.with_file_name("config")),
        ]
    }

    /// Runs `pcap ARGS` and fails with its message unless it succeeds.
    pub fn pcap<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        let what = describe(args);
        let out = run(self.command().args(args), &what, PCAP_LIMIT)?;
        if !out.status.success() {
            bail!("{what} failed ({}): {}", out.status, out.stderr.trim());
        }
        Ok(out)
    }

    /// `pcap init ARGS`; the new capture's id.
    pub fn init(&self, args: &[&str]) -> Result<u64> {
        let mut full = vec!["init"];
        full.extend_from_slice(args);
        let out = self.pcap(&full)?;
        let first = out.stdout.lines().next().unwrap_or("").trim().to_owned();
        first
            .parse()
            .with_context(|| format!("pcap init printed {:?}, not an id", out.stdout))
    }

    /// The capture as `pcap --json list` shows it.
    pub fn capture(&self, id: u64) -> Result<Value> {
        let out = self.pcap(&["--json", "list"])?;
        let v: Value = serde_json::from_str(&out.stdout).context("parse pcap --json list")?;
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["id"].as_u64() == Some(id)))
            .cloned()
            .ok_or_else(|| anyhow!("capture {id} is not listed"))
    }

    /// One counter of a capture (`received`, `dropped_kernel`, `spooled_packets`, ...).
    pub fn counter(&self, id: u64, name: &str) -> Result<u64> {
        let c = self.capture(id)?;
        c["counters"][name]
            .as_u64()
            .ok_or_else(|| anyhow!("no counter {name} in {c}"))
    }

    /// Waits until capture `id` is in `state`.
    pub fn wait_state(&self, id: u64, state: &str) -> Result<()> {
        guard::wait_for(
            Duration::from_secs(15),
            &format!("capture {id} to be {state}"),
            || Ok(self.capture(id)?["state"].as_str() == Some(state)),
        )
    }

    /// The spool directory of capture `id`.
    pub fn spool_dir(&self, id: u64) -> PathBuf {
        self.data.join("captures").join(id.to_string())
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn shutdown(mut self) -> Result<()> {
        let status = self.proc.stop(Signal::SIGTERM, Duration::from_secs(30))?;
        if !status.success() {
            bail!("pcapd exited with {status}; log:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut s = String::from("pcap");
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}
