//! Real Unix users and groups for the tests of who may do what: made with `groupadd` and
//! `useradd` under unique names, removed again when their guard drops (a failing test
//! included), and a `pcap` runner that runs as the user through `setpriv`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cli::{run_bounded, Output, Pcap};

/// Prefix of every user and group the tests make, so that leftovers are easy to recognise.
const PREFIX: &str = "pe2e";

/// How long `useradd` and friends may keep failing on a locked /etc/passwd.
const LOCK_WAIT: Duration = Duration::from_secs(20);

/// `useradd`, `groupadd` and their `del` counterparts lock /etc/passwd and /etc/group, and
/// fail rather than wait when another one holds the lock: tests of one process take turns.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A group made for one test; deleted on drop.
#[derive(Debug)]
pub struct UnixGroup {
    name: String,
    gid: u32,
}

/// A user made for one test (no home directory, no login shell); deleted on drop.
#[derive(Debug)]
pub struct UnixUser {
    name: String,
    uid: u32,
    gid: u32,
}

// === impl UnixGroup ===

impl UnixGroup {
    /// Makes a group named `pe2e<pid><n><role>` (`role`: a few letters saying what it is for).
    pub fn create(role: &str) -> UnixGroup {
        let name = unique_name(role);
        account_command("groupadd", &[name.as_str()]);
        let gid = nix::unistd::Group::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("groupadd {name} succeeded but the group is not there"))
            .gid
            .as_raw();
        UnixGroup { name, gid }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl Drop for UnixGroup {
    fn drop(&mut self) {
        remove_account("groupdel", &self.name);
    }
}

// === impl UnixUser ===

impl UnixUser {
    /// Makes a user named `pe2e<pid><n><role>`, a member of `groups` besides its primary
    /// group (the system's default group for new users).
    pub fn create(role: &str, groups: &[&UnixGroup]) -> UnixUser {
        let name = unique_name(role);
        let mut args = vec![
            "--no-create-home",
            "--no-user-group",
            "--shell",
            "/usr/sbin/nologin",
        ];
        let list = groups
            .iter()
            .map(|g| g.name())
            .collect::<Vec<_>>()
            .join(",");
        if !list.is_empty() {
            args.extend(["--groups", list.as_str()]);
        }
        args.push(&name);
        account_command("useradd", &args);
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("useradd {name} succeeded but the user is not there"));
        UnixUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// How pcapd names this user as a caller: `uid 1001 (alice)`.
    pub fn caller(&self) -> String {
        format!("uid {} ({})", self.uid, self.name)
    }

    /// `runner` (a daemon's `pcap`), run as this user with its supplementary groups.
    pub fn pcap(&self, runner: &Pcap) -> Pcap {
        runner.wrapped(&[
            "setpriv".to_owned(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".to_owned(),
            "--".to_owned(),
        ])
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        remove_account("userdel", &self.name);
    }
}

/// `pe2e<pid><n><role>`: unique on this host while this process runs, at most 32 bytes.
fn unique_name(role: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{PREFIX}{}x{n}{role}", std::process::id());
    assert!(
        name.len() <= 32 && role.chars().all(|c| c.is_ascii_lowercase()),
        "{name:?}: give a role of a few lowercase letters"
    );
    name
}

/// Runs `program ARGS` (useradd, groupadd), retrying while /etc/passwd is locked by someone
/// else; panics with its message if it fails otherwise.
fn account_command(program: &str, args: &[&str]) {
    let out = locked_retry(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        out.stderr
    );
}

/// Removes a user or group, reporting (not panicking: this runs in drop) if it cannot.
fn remove_account(program: &str, name: &str) {
    let out = locked_retry(program, &[name]);
    if !out.status.success() {
        eprintln!(
            "{program} {name} failed ({}): {}; remove it by hand",
            out.status, out.stderr
        );
    }
}

fn locked_retry(program: &str, args: &[&str]) -> Output {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let out = run_bounded(
            Command::new(program).args(args),
            program,
            Duration::from_secs(30),
        );
        // Exit code 10 (useradd/userdel) or a message about the lock: someone else, such as
        // another test process, holds /etc/passwd or /etc/group for a moment.
        let locked = out.status.code() == Some(10) || out.stderr.contains("lock");
        if out.status.success() || !locked || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
