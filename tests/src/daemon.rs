//! A real `pcapd` on a socket and data directory of its own: start, stop, crash and
//! restart it, read its log, and run `pcap` against it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::bins::pcapd_bin;
use crate::cli::{run_bounded, wait_until, Output, Pcap, Running};

/// How long the daemon may take to accept connections, or to exit after SIGTERM.
const START_LIMIT: Duration = Duration::from_secs(15);
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// Options for a daemon before it starts.
#[derive(Debug, Default)]
pub struct DaemonBuilder {
    args: Vec<OsString>,
    config: Option<String>,
    socket_group: Option<String>,
    tmpfs_data: Option<u64>,
    socket_activated: bool,
}

/// A running `pcapd` in a temporary directory: `pcapd.sock`, `data/`, `pcapd.log`.
/// Dropping it kills the daemon; if the test is failing, its log is printed first.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    args: Vec<OsString>,
    /// Started as systemd's socket activation starts it, with the socket already open.
    socket_activated: bool,
    socket: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pcap: Pcap,
    /// Whether `data` is a tmpfs this harness mounted (and unmounts on drop).
    tmpfs: bool,
    dir: TempDir,
}

// === impl DaemonBuilder ===

impl DaemonBuilder {
    /// Adds a command-line argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Starts pcapd as systemd's socket activation does: the socket is made by someone
    /// else and passed as file descriptor 3 with LISTEN_FDS/LISTEN_PID.
    pub fn socket_activated(mut self) -> Self {
        self.socket_activated = true;
        self
    }

    /// Writes `toml` to `pcapd.toml` in the daemon's directory and passes `--config`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// The group the socket is given to (default: the group of gid 0, so that tests do not
    /// depend on a `pcap` group existing).
    pub fn socket_group(mut self, group: &str) -> Self {
        self.socket_group = Some(group.to_owned());
        self
    }

    /// Puts the data directory on a tmpfs of `bytes`, to fill the disk on purpose.
    pub fn tmpfs_data(mut self, bytes: u64) -> Self {
        self.tmpfs_data = Some(bytes);
        self
    }

    /// Starts the daemon and waits until its socket accepts connections.
    pub fn start(self) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("pcapd-e2e.")
            .tempdir()
            .expect("temp dir");
        // Other users must reach the socket for the permission tests.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let socket = dir.path().join("pcapd.sock");
        let data = dir.path().join("data");
        let log = dir.path().join("pcapd.log");
        let group = self.socket_group.unwrap_or_else(root_group);

        let mut args: Vec<OsString> = vec![
            "--socket".into(),
            socket.clone().into(),
            "--data-dir".into(),
            data.clone().into(),
            "--socket-group".into(),
            group.into(),
        ];
        if let Some(toml) = &self.config {
            let path = dir.path().join("pcapd.toml");
            fs::write(&path, toml).expect("write config");
            args.push("--config".into());
            args.push(path.into());
        }
        args.extend(self.args);

        if let Some(bytes) = self.tmpfs_data {
            fs::create_dir_all(&data).expect("data dir");
            let out = run_bounded(
                Command::new("mount")
                    .args([
                        "-t",
                        "tmpfs",
                        "-o",
                        &format!("size={bytes},mode=0750"),
                        "tmpfs",
                    ])
                    .arg(&data),
                "mount a tmpfs",
                Duration::from_secs(10),
            );
            assert!(out.status.success(), "mount tmpfs: {}", out.stderr);
        }
        let pcap = Pcap::at(&socket);
        let mut d = Daemon {
            child: None,
            args,
            socket_activated: self.socket_activated,
            socket,
            data,
            log,
            pcap,
            tmpfs: self.tmpfs_data.is_some(),
            dir,
        };
        d.spawn();
        d
    }
}

/// Runs `pcapd --socket DIR/s.sock --data-dir DIR/data ARGS` to completion: for start-ups
/// that must be refused (one that serves instead fails the test after 10 s).
pub fn pcapd_once<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    run_bounded(
        Command::new(pcapd_bin())
            .arg("--socket")
            .arg(dir.join("s.sock"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args),
        "pcapd",
        Duration::from_secs(10),
    )
}

/// Runs `pcapd tls ARGS` (the certificate helper) and asserts it succeeded.
pub fn pcapd_tls(args: &[&str]) {
    let out = run_bounded(
        Command::new(pcapd_bin()).arg("tls").args(args),
        "pcapd tls",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "pcapd tls {args:?}: {}", out.stderr);
}

/// Name of the group with gid 0 (`root` on Linux).
fn root_group() -> String {
    nix::unistd::Group::from_gid(0.into())
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| "root".to_owned())
}

// === impl Daemon ===

impl Daemon {
    /// A daemon with default options.
    pub fn start() -> Daemon {
        Daemon::builder().start()
    }

    /// Options for a daemon.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        writeln!(log, "=== pcapd {:?}", self.args).expect("write log");
        let mut command = if self.socket_activated {
            let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/socket_activate.py");
            let mut c = Command::new("python3");
            c.arg(launcher).arg(&self.socket).arg(pcapd_bin());
            c
        } else {
            Command::new(pcapd_bin())
        };
        let child = command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", pcapd_bin().display()));
        self.child = Some(child);
        self.wait_for_socket();
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("daemon child");
            if let Some(status) = child.try_wait().expect("wait for pcapd") {
                self.child = None;
                panic!(
                    "pcapd exited during start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "pcapd did not accept connections on {} within {START_LIMIT:?}; log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("pcapd is not running");
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, Signal::SIGTERM).expect("send SIGTERM to pcapd");
        match wait_until(&mut child, Instant::now() + STOP_LIMIT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pcapd did not exit within {STOP_LIMIT:?} of SIGTERM; log:\n{}",
                    self.log()
                )
            }
        }
    }

    /// Sends `signal` to the running daemon.
    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("pcapd is not running");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal pcapd");
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pcapd is not running").id()
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("pcapd was stopped by the test");
        matches!(child.try_wait(), Ok(None))
    }

    /// Kills the daemon with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("pcapd is not running");
        child.kill().expect("kill pcapd");
        child.wait().expect("reap pcapd");
    }

    /// Starts the daemon again on the same socket and data directory (after `stop`/`kill`).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "pcapd is still running");
        self.spawn();
    }

    /// `stop` then `start_again`; returns how the first daemon exited.
    pub fn restart(&mut self) -> ExitStatus {
        let status = self.stop();
        self.start_again();
        status
    }

    /// The daemon's stdout and stderr so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the log stands now: pass it to [`Daemon::log_since`] to read only what comes
    /// after.
    pub fn log_mark(&self) -> usize {
        fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// What the daemon logged after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        let bytes = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    /// The config file (`pcapd.toml` in the daemon's directory) that [`DaemonBuilder::config`]
    /// writes and `--config` names.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("pcapd.toml")
    }

    /// Replaces the config file with `toml`, sends SIGHUP, and waits until the daemon logs
    /// a line about its configuration; returns what it logged since the signal.
    pub fn reload_config(&self, toml: &str) -> String {
        assert!(
            self.args.iter().any(|a| a == "--config"),
            "this daemon was started without a config file: give it one with DaemonBuilder::config"
        );
        fs::write(self.config_file(), toml).expect("write config");
        let mark = self.log_mark();
        self.signal(Signal::SIGHUP);
        let mut logged = String::new();
        crate::wait::eventually(START_LIMIT, "pcapd to log the outcome of SIGHUP", || {
            logged = self.log_since(mark);
            logged.lines().any(|l| {
                let l = l.to_lowercase();
                l.contains("config") || l.contains("reload")
            })
        });
        logged
    }

    /// The temporary directory holding socket, data and log; tests may put files there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The `pcap` runner for this daemon.
    pub fn client(&self) -> &Pcap {
        &self.pcap
    }

    /// Runs `pcap ARGS` against this daemon.
    pub fn pcap<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.pcap.run(args)
    }

    /// Runs `pcap ARGS`, asserts success, returns stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        self.pcap.ok(args)
    }

    /// Runs `pcap ARGS`, asserts a handled failure, returns stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        self.pcap.fails(args)
    }

    /// Starts `pcap ARGS` in the background writing stdout to `file`.
    pub fn spawn_to_file<S: AsRef<OsStr>>(&self, args: &[S], file: &Path) -> Running {
        self.pcap.spawn_to_file(args, file)
    }

    /// Starts `pcap ARGS` in the background with stdout on a pipe.
    pub fn spawn_piped<S: AsRef<OsStr>>(&self, args: &[S]) -> Running {
        self.pcap.spawn_piped(args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg(&self.data).status();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- pcapd log ({}) ---\n{}--- end of pcapd log ---",
                self.log.display(),
                self.log()
            );
        }
    }
}
