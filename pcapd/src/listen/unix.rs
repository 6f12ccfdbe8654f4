//! The local UNIX socket: created mode 0660 with group `pcap` (or the configured group),
//! so that group membership is what grants access. A stale socket left by a crash is
//! replaced; a live one (another pcapd) is an error.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{chown, Group};
use std::os::unix::net::UnixListener;

use crate::{Error, Result};

/// Group that is given the socket when none is configured and it exists.
pub const DEFAULT_GROUP: &str = "pcap";

/// The API socket handed over by systemd socket activation (`pcapd.socket`), if pcapd was
/// started that way: systemd made it, with its path, mode and group, and removes it.
pub fn inherited() -> Result<Option<UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    fds.take_unix_listener(0).map_err(|e| {
        Error::Config(format!(
            "the socket passed by systemd (LISTEN_FDS) is not a listening UNIX socket: {e}; \
             pcapd.socket must have ListenStream=/run/pcapd/pcapd.sock"
        ))
    })
}

/// Binds the API socket at `path`, owned by `group`.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener> {
    let gid = match group {
        Some(name) => Some(
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "socket group {name:?} does not exist: create it with `groupadd {name}` \
                         or choose another with --socket-group"
                    ))
                })?
                .gid,
        ),
        None => Group::from_name(DEFAULT_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "{} exists and is not a socket: remove it or choose another --socket",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Config(format!(
                "another pcapd is already serving {}: stop it first, or choose another --socket",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io(path, e))?;
    if let Some(gid) = gid {
        chown(path, None, Some(gid)).map_err(|e| Error::io(path, e.into()))?;
    }
    Ok(listener)
}
