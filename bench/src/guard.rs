//! Leaving nothing behind. Every process the benchmark starts leads a process group of its
//! own and is killed by that id when its guard drops; namespaces and temporary directories
//! have guards too. Ctrl-C and SIGTERM set a flag that every wait checks, so the run
//! unwinds through the guards; if it has not within a grace period (or on a second
//! signal), the signal thread kills, deletes and removes what is still registered itself.
//! The same checks end the run when the `--timeout` budget is spent.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

/// How long the run may take to unwind after a signal before the signal thread cleans up.
const GRACE: Duration = Duration::from_secs(20);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static DEADLINE: OnceLock<Instant> = OnceLock::new();
static LIVE: Mutex<Live> = Mutex::new(Live {
    groups: Vec::new(),
    netns: Vec::new(),
    dirs: Vec::new(),
});

/// What is alive right now, for the last-resort cleanup.
struct Live {
    groups: Vec<i32>,
    netns: Vec<String>,
    dirs: Vec<PathBuf>,
}

/// Sets the run's time budget and starts the signal thread. Call first, before any other
/// thread exists, so that every thread inherits the blocked signals.
pub fn install(budget: Duration) -> Result<()> {
    let _ = DEADLINE.set(Instant::now() + budget);
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().context("block signals")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            eprintln!("pcapd-bench: {sig}, cleaning up");
            INTERRUPTED.store(true, Ordering::SeqCst);
            thread::spawn(|| {
                thread::sleep(GRACE);
                last_resort();
            });
            if set.wait().is_ok() {
                last_resort();
            }
        })
        .context("start the signal thread")?;
    Ok(())
}

/// Fails if the run was interrupted or its time budget is spent; every wait calls it.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    if DEADLINE.get().is_some_and(|d| Instant::now() >= *d) {
        bail!("the run took longer than --timeout; stopped");
    }
    Ok(())
}

/// Sleeps `d`, waking early with an error if the run is interrupted.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Polls `cond` every 20 ms until it holds; an error naming `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, cond: impl FnMut() -> Result<bool>) -> Result<()> {
    wait_every(Duration::from_millis(20), limit, what, cond)
}

/// [`wait_for`], checking every `period`.
fn wait_every(
    period: Duration,
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let end = Instant::now() + limit;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        sleep(period)?;
    }
}

fn last_resort() -> ! {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for &g in &live.groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
    for ns in &live.netns {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    for d in &live.dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    std::process::exit(130);
}

/// Registers a namespace for the last-resort cleanup.
pub fn register_netns(name: &str) {
    lock().netns.push(name.to_owned());
}

/// The namespace was deleted.
pub fn forget_netns(name: &str) {
    lock().netns.retain(|n| n != name);
}

/// Registers a temporary directory for the last-resort cleanup.
pub fn register_dir(dir: PathBuf) {
    lock().dirs.push(dir);
}

fn lock() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process this run started, in a process group of its own; killed (the whole group)
/// when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    what: String,
    status: Option<ExitStatus>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

// === impl Proc ===

impl Proc {
    /// Starts `cmd` (stdin closed) as the leader of a new process group.
    pub fn spawn(cmd: &mut Command, what: &str) -> Result<Proc> {
        check()?;
        cmd.stdin(Stdio::null()).process_group(0);
        #[allow(unsafe_code)]
        // SAFETY: the hook runs in the child between fork and exec and only calls
        // pthread_sigmask, which is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            // The child must not inherit the signals this program blocks for its signal
            // thread: tcpdump and pcapd are stopped with SIGINT and SIGTERM.
            cmd.pre_exec(|| SigSet::all().thread_unblock().map_err(std::io::Error::from));
        }
        let child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
        lock().groups.push(child.id() as i32);
        Ok(Proc {
            child,
            what: what.to_owned(),
            status: None,
        })
    }

    /// The process id (and process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait().context("wait for a child")?;
        }
        Ok(self.status)
    }

    /// Waits for the process to exit by itself, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus> {
        let what = format!("{} to exit", self.what);
        // Checked every millisecond: timed pipelines (a filtered replay) take a few ms, and
        // looking costs one waitid.
        let period = Duration::from_millis(1);
        wait_every(period, limit, &what, || Ok(self.try_wait()?.is_some()))?;
        Ok(self.status.expect("exited"))
    }

    /// Sends `sig` to the process (not its group).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        if self.status.is_none() {
            kill(Pid::from_raw(self.child.id() as i32), sig)
                .with_context(|| format!("signal {}", self.what))?;
        }
        Ok(())
    }

    /// Sends `sig` and waits up to `limit` for the exit.
    pub fn stop(&mut self, sig: Signal, limit: Duration) -> Result<ExitStatus> {
        self.signal(sig)?;
        self.wait(limit)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // The whole group: a shell pipeline's members too.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        if self.status.is_none() {
            let _ = self.child.wait();
        }
        lock().groups.retain(|&g| g != pgid);
    }
}

/// Runs `cmd` to completion (at most `limit`), collecting stdout and stderr.
pub fn run(cmd: &mut Command, what: &str, limit: Duration) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(cmd, what)?;
    let mut out = p.child.stdout.take().expect("piped stdout");
    let mut err = p.child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = p.wait(limit)?;
    drop(p); // the group: nothing may keep the pipes open
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    Ok(Output {
        status,
        stdout: text(out_reader.join().unwrap_or_default()),
        stderr: text(err_reader.join().unwrap_or_default()),
    })
}

/// Like [`run`], failing with the command's stderr unless it exits 0.
pub fn run_ok(cmd: &mut Command, what: &str, limit: Duration) -> Result<Output> {
    let out = run(cmd, what, limit)?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, out.stderr.trim());
    }
    Ok(out)
}
