//! Set-up for the tests that ask real container engines: privileges, bounded waits, running
//! commands, a tiny busybox image made without pulling, and the engines themselves, started
//! when they are not running and stopped afterwards only if the test started them.

#![allow(dead_code)]

pub mod containerd;
pub mod docker;
pub mod podman;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Whether this test can run: asking engines and starting them needs root. Without it the
/// test says so and skips, unless `PCAPD_REQUIRE_PRIVILEGED=1`, where it fails.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip("needs root to start and ask container engines");
    false
}

/// Says why the test does nothing, or panics with it when `PCAPD_REQUIRE_PRIVILEGED=1`
/// forbids skipping.
pub fn skip(why: &str) {
    if std::env::var("PCAPD_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{why}, and PCAPD_REQUIRE_PRIVILEGED=1 forbids skipping this test");
    }
    println!("skipping: {why}");
}

/// The tests of this file start and stop shared daemons (dockerd, containerd): one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `check` every 50 ms until it returns Ok; panics with its last answer after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(()) => return,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion; its trimmed stdout, or Err with its stderr.
pub fn try_run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: cannot run: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command that must succeed; its trimmed stdout.
pub fn run(cmd: &mut Command) -> String {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A container name no other test run uses.
pub fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("pcapd-test-{what}-{}-{nanos:x}", std::process::id())
}

/// A tar of a root file system holding only Debian's static busybox and its applet links
/// (`docker import` and `podman import` make an image of it; nothing is pulled).
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: apt-get install busybox-static"
    );
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "httpd", "nc", "wget", "ls", "cat", "ip", "ifconfig",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// A daemon this test started: stopped with SIGTERM by its pid (SIGKILL after 20 s) when
/// dropped, and its log kept for failure messages.
pub struct Started {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Started {
    /// The end of the daemon's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Whether the daemon has exited (e.g. because another one already runs).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} (pid {pid}) did not stop on SIGTERM; killing it",
            self.name
        );
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The median and 99th percentile of some durations.
pub fn p50_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
