//! Running the real `pcap` binary against a socket: to completion with a time limit, or in
//! the background for commands that stream (`replay --live`, `listen`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::pcap_bin;

/// How long a `pcap` command may take before a test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// How to run `pcap` for one daemon: its socket, a private config directory, and
/// optionally a program to run it under (`setpriv ...` to become another user).
#[derive(Debug, Clone)]
pub struct Pcap {
    socket: PathBuf,
    config_home: PathBuf,
    wrapper: Vec<OsString>,
}

/// What a finished `pcap` command left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Stdout as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A `pcap` command running in the background; killed when dropped.
pub struct Running {
    child: Child,
    stderr: File,
    what: String,
}

// === impl Pcap ===

impl Pcap {
    /// Runs `pcap` against the socket at `socket` (which need not exist), through
    /// `PCAP_SOCKET`, with a config directory that holds no remotes.
    pub fn at(socket: impl Into<PathBuf>) -> Pcap {
        let socket = socket.into();
        let config_home = socket.parent().unwrap_or(Path::new("/")).join("config");
        Pcap {
            socket,
            config_home,
            wrapper: Vec::new(),
        }
    }

    /// The same, run under `wrapper` (for example `["setpriv", "--reuid=nobody", ...]`).
    pub fn wrapped<S: AsRef<OsStr>>(&self, wrapper: &[S]) -> Pcap {
        let mut p = self.clone();
        p.wrapper = wrapper.iter().map(|s| s.as_ref().to_owned()).collect();
        p
    }

    /// The socket this runner points `pcap` at.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A `pcap ARGS` command with the environment set; stdin is closed.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(pcap_bin());
                c
            }
            None => Command::new(pcap_bin()),
        };
        cmd.args(args)
            .env("PCAP_SOCKET", &self.socket)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `pcap ARGS` to completion (at most a minute) and collects its output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run_bounded(&mut self.command(args), &describe(args), RUN_LIMIT)
    }

    /// Runs `pcap ARGS`, asserts it succeeded, and returns its stdout as text.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        self.ok_bytes(args).stdout_str()
    }

    /// Runs `pcap ARGS`, asserts it succeeded, and returns the whole output.
    pub fn ok_bytes<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} failed ({}); stderr:\n{}",
            describe(args),
            out.status,
            out.stderr
        );
        out
    }

    /// Runs `pcap ARGS`, asserts it failed the way a handled error does (a non-zero exit
    /// code, a message on stderr, no panic), and returns stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let what = describe(args);
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{what} succeeded but should have failed; stdout:\n{}",
            out.stdout_str()
        );
        assert!(
            out.status.code().is_some(),
            "{what} was killed ({}): {}",
            out.status,
            out.stderr
        );
        assert!(
            out.status.code() != Some(101) && !out.stderr.contains("panicked at"),
            "{what} panicked instead of reporting an error:\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.trim().is_empty(),
            "{what} failed ({}) without a message",
            out.status
        );
        out.stderr
    }

    /// Starts `pcap ARGS` in the background with its stdout written to `stdout_file`.
    pub fn spawn_to_file<S: AsRef<OsStr>>(&self, args: &[S], stdout_file: &Path) -> Running {
        let out = File::create(stdout_file)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", stdout_file.display()));
        self.spawn(args, Stdio::from(out))
    }

    /// Starts `pcap ARGS` in the background with its stdout on a pipe (see
    /// [`Running::stdout`]).
    pub fn spawn_piped<S: AsRef<OsStr>>(&self, args: &[S]) -> Running {
        self.spawn(args, Stdio::piped())
    }

    fn spawn<S: AsRef<OsStr>>(&self, args: &[S], stdout: Stdio) -> Running {
        let what = describe(args);
        let stderr = tempfile::tempfile().expect("temporary file for stderr");
        let child = self
            .command(args)
            .stdout(stdout)
            .stderr(Stdio::from(stderr.try_clone().expect("clone stderr file")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Running {
            child,
            stderr,
            what,
        }
    }
}

// === impl Running ===

impl Running {
    /// The pipe of a command started with [`Pcap::spawn_piped`]; dropping it closes the
    /// reading end, as `head` does.
    pub fn stdout(&mut self) -> ChildStdout {
        self.child
            .stdout
            .take()
            .expect("stdout was piped and not taken yet")
    }

    /// The exit status if the command has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for pcap")
    }

    /// Waits for the command to end by itself; panics (with its stderr) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match wait_until(&mut self.child, Instant::now() + timeout) {
            Some(s) => s,
            None => {
                let stderr = self.stderr();
                panic!(
                    "{} did not end within {timeout:?}; stderr so far:\n{stderr}",
                    self.what
                )
            }
        }
    }

    /// What the command wrote to stderr so far.
    ///
    /// Read with positional reads: the command writes through the same open file, so
    /// moving the shared offset would make it overwrite what it wrote before.
    pub fn stderr(&mut self) -> String {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.stderr.read_at(&mut buf, bytes.len() as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Running({}, pid {})", self.what, self.child.id())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs any command to completion, collecting stdout and stderr; kills it and panics
/// naming `what` if it takes longer than `limit`.
pub fn run_bounded(cmd: &mut Command, what: &str, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let Some(status) = wait_until(&mut child, Instant::now() + limit) else {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = err_reader.join().unwrap_or_default();
        panic!("{what} did not finish within {limit:?}; stderr:\n{stderr}");
    };
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Polls a child until it exits or the deadline passes.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `pcap a b c` for messages.
fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut s = String::from("pcap");
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}
