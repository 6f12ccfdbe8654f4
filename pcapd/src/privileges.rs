//! After its sockets are bound, pcapd keeps only what capturing needs: CAP_NET_RAW and
//! CAP_NET_ADMIN, and for captures in other network namespaces CAP_SYS_ADMIN (setns) and
//! CAP_SYS_PTRACE (opening another user's /proc/PID/ns/net). Started as root, it also becomes the `pcapd` user when one exists (the
//! data directory is handed to it first). Capabilities belong to threads, so this runs on
//! the main thread before any other thread exists; every thread started later inherits it.

use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

use crate::{Error, Result};

/// The user pcapd becomes when it exists.
pub const SERVICE_USER: &str = "pcapd";
/// What a capture needs: AF_PACKET sockets, promiscuous mode and ring set-up, and
/// entering the network namespace of a process or name.
const KEEP: [Capability; 4] = [
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_SYS_PTRACE,
];

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Not started as root: nothing to drop.
    NotRoot,
    /// Still root, with only the two capabilities.
    Root,
    /// Became this user, with only the two capabilities.
    User(String),
}

/// Drops everything but [`KEEP`], becoming `pcapd` if it exists.
pub fn drop_privileges(data_dir: &Path) -> Result<Dropped> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(Dropped::NotRoot);
    }
    let keep: CapsHashSet = KEEP.into_iter().collect();
    // Narrowing the bounding set needs CAP_SETPCAP; under systemd it is narrowed already.
    for cap in caps::all().difference(&keep) {
        let _ = caps::drop(None, CapSet::Bounding, *cap);
    }
    let user = User::from_name(SERVICE_USER).ok().flatten();
    if let Some(u) = &user {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        chown_tree(data_dir, u.uid, u.gid)?;
        caps::securebits::set_keepcaps(true).map_err(fail)?;
        nix::unistd::setgroups(&[]).map_err(|e| fail(format!("setgroups: {e}")))?;
        nix::unistd::setgid(u.gid).map_err(|e| fail(format!("setgid: {e}")))?;
        nix::unistd::setuid(u.uid).map_err(|e| fail(format!("setuid: {e}")))?;
        caps::securebits::set_keepcaps(false).map_err(fail)?;
    }
    caps::set(None, CapSet::Effective, &keep).map_err(fail)?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail)?;
    caps::clear(None, CapSet::Inheritable).map_err(fail)?;
    let _ = caps::clear(None, CapSet::Ambient);
    Ok(match user {
        Some(u) => Dropped::User(u.name),
        None => Dropped::Root,
    })
}

fn fail(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("dropping privileges: {e}"))
}

/// Hands a directory tree to `uid:gid` (symbolic links themselves, not their targets).
fn chown_tree(dir: &Path, uid: Uid, gid: Gid) -> Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid.as_raw()), Some(gid.as_raw()))
        .map_err(|e| Error::io(dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        chown_tree(&entry.path(), uid, gid)?;
    }
    Ok(())
}
