//! Network namespaces other than the daemon's: finding one from what a user named, entering
//! it on a capture thread, and telling whether it is still the same one.
//!
//! Only namespace files are opened: a path is first opened with `O_PATH` (which reads
//! nothing and never blocks, whatever the file is) and checked with `fstatfs` to be on
//! nsfs; anything else is refused before it is opened for real. Inode numbers of
//! namespaces are reused once a namespace is gone, so an inode alone never identifies one:
//! a namespace is known by its inode together with the process that anchors it (pid and
//! start time), or by the name or path it was found under, which is followed when the
//! namespace is made again.

mod cookie;
mod list;
mod proc;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use pcap_core::domain::Netns;

use crate::{Error, Result};
pub use cookie::current as current_cookie;
pub use list::namespaces;
pub use proc::Process;

/// Where `ip netns` keeps its names.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A namespace found and opened.
#[derive(Debug)]
pub struct Opened {
    /// Holds the namespace while the capture runs in it.
    pub file: OwnedFd,
    pub inode: u64,
    /// What keeps it and says whether it is still the same namespace.
    pub anchor: Anchor,
}

/// What a namespace's identity is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// A file (an `ip netns` name or a path): it is the same namespace while the file still
    /// shows the same inode; a new namespace under that file is followed.
    File(PathBuf),
    /// A process: the same namespace while that process (pid and start time) lives.
    Process(Process),
    /// A container's main process; when it ends the container is looked for again, in
    /// the namespace it gets when it runs again.
    Container {
        process: Process,
        /// `web (docker)`, for messages.
        label: String,
        runtime: String,
    },
}

/// Why a namespace cannot be used now.
#[derive(Debug)]
pub enum Unusable {
    /// It may come back (a name or path removed, to be made again): retry.
    Gone(String),
    /// It is over for good (its process ended).
    Ended(String),
}

/// Finds and opens the namespace `ns` names. `was` is the process that anchored it when
/// the capture was defined: a pid whose process changed since is not taken for it.
pub fn open_target(ns: &Netns, was: Option<&Process>) -> std::result::Result<Opened, Unusable> {
    match ns {
        Netns::Name(name) => {
            let path = Path::new(NETNS_RUN_DIR).join(name);
            if !path.exists() {
                return Err(Unusable::Gone(format!(
                    "netns {name} does not exist (now); known names: {}",
                    known_names()
                )));
            }
            open_file(&path)
                .map(|(file, inode)| Opened {
                    file,
                    inode,
                    anchor: Anchor::File(path),
                })
                .map_err(|e| Unusable::Gone(e.to_string()))
        }
        Netns::Path(p) => {
            if let Some(pid) = proc::pid_of_ns_path(p) {
                return open_process(pid, was);
            }
            let path = PathBuf::from(p);
            if !path.exists() {
                return Err(Unusable::Gone(format!("netns {p} does not exist (now)")));
            }
            open_file(&path)
                .map(|(file, inode)| Opened {
                    file,
                    inode,
                    anchor: Anchor::File(path),
                })
                .map_err(|e| Unusable::Gone(e.to_string()))
        }
        Netns::Pid(pid) => open_process(*pid, was),
        Netns::Container { name, runtime } => open_container(name, runtime.as_deref()),
        Netns::Inode(inode) => {
            // An inode is looked for while something holds it; its holder anchors it.
            if let Some(p) = was {
                if p.is_alive() && p.netns_inode() == Some(*inode) {
                    return open_process(p.pid, Some(p));
                }
            }
            match proc::holder_of(*inode) {
                Some(Holder::Process(p)) => open_process(p.pid, Some(&p)),
                Some(Holder::File(path)) => open_file(&path)
                    .map(|(file, inode)| Opened {
                        file,
                        inode,
                        anchor: Anchor::File(path),
                    })
                    .map_err(|e| Unusable::Ended(e.to_string())),
                None => Err(Unusable::Ended(format!(
                    "no network namespace has inode {inode} (now): `pcap netns` lists them"
                ))),
            }
        }
    }
}

/// Where a namespace with a given inode was found.
pub enum Holder {
    Process(Process),
    File(PathBuf),
}

/// The tokio runtime's handle, for asking container engines from capture threads.
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Remembers the runtime container engines are asked through; called at start-up.
pub fn set_runtime(handle: tokio::runtime::Handle) {
    let _ = RUNTIME.set(handle);
}

/// The namespace of a running container, found anew through its engine.
fn open_container(name: &str, runtime: Option<&str>) -> std::result::Result<Opened, Unusable> {
    let engine = match runtime
        .map(str::parse::<crate::engines::Runtime>)
        .transpose()
    {
        Ok(e) => e,
        Err(e) => return Err(Unusable::Ended(e.to_string())),
    };
    let Some(rt) = RUNTIME.get() else {
        return Err(Unusable::Gone(
            "container engines cannot be asked yet".into(),
        ));
    };
    let c = rt
        .block_on(crate::engines::find(name, engine))
        .map_err(|e| Unusable::Gone(e.to_string()))?;
    let label = format!("container {name} ({})", c.runtime);
    let pid = match (c.running, c.pid) {
        (true, Some(pid)) => pid,
        _ => return Err(Unusable::Gone(format!("{label} is not running"))),
    };
    match open_process(pid, None) {
        Ok(opened) => match opened.anchor {
            Anchor::Process(process) => Ok(Opened {
                anchor: Anchor::Container {
                    process,
                    label,
                    runtime: c.runtime.to_string(),
                },
                ..opened
            }),
            _ => Ok(opened),
        },
        // Stopped between the engine's answer and now: it may run again.
        Err(_) => Err(Unusable::Gone(format!("{label} is not running"))),
    }
}

fn open_process(pid: u32, was: Option<&Process>) -> std::result::Result<Opened, Unusable> {
    let Some(now) = Process::get(pid) else {
        return Err(Unusable::Ended(match was {
            Some(_) => format!("process {pid} exited"),
            None => format!("no process has pid {pid}"),
        }));
    };
    if let Some(was) = was {
        if was.pid == pid && was.start_time != now.start_time {
            return Err(Unusable::Ended(format!(
                "process {pid} exited (the pid now belongs to another process)"
            )));
        }
    }
    let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    match open_file(&path) {
        Ok((file, inode)) => {
            // Opened after the check: make sure it is still the same process.
            if Process::get(pid).map(|p| p.start_time) != Some(now.start_time) {
                return Err(Unusable::Ended(format!("process {pid} exited")));
            }
            Ok(Opened {
                file,
                inode,
                anchor: Anchor::Process(now),
            })
        }
        Err(_) if Process::get(pid).is_none() => {
            Err(Unusable::Ended(format!("process {pid} exited")))
        }
        Err(e) => Err(Unusable::Ended(e.to_string())),
    }
}

impl Opened {
    /// Whether the namespace is still the one opened and still anchored; the check made
    /// every second while capturing.
    pub fn check(&self) -> std::result::Result<(), Unusable> {
        match &self.anchor {
            Anchor::Process(p) => {
                if p.is_alive() {
                    Ok(())
                } else {
                    Err(Unusable::Ended(format!("process {} exited", p.pid)))
                }
            }
            Anchor::Container { process, label, .. } => {
                if process.is_alive() {
                    Ok(())
                } else {
                    Err(Unusable::Gone(format!("{label} is not running")))
                }
            }
            Anchor::File(path) => match std::fs::metadata(path) {
                Ok(m) if std::os::unix::fs::MetadataExt::ino(&m) == self.inode => Ok(()),
                Ok(_) => Err(Unusable::Gone(format!(
                    "netns {} was made again; following it",
                    path.display()
                ))),
                Err(_) => Err(Unusable::Gone(format!(
                    "netns {} is gone",
                    display_name(path)
                ))),
            },
        }
    }
}

/// `blue` for /run/netns/blue, the path otherwise.
fn display_name(path: &Path) -> String {
    match path.strip_prefix(NETNS_RUN_DIR) {
        Ok(name) => name.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Opens a namespace file, refusing anything that is not one without reading it.
pub fn open_file(path: &Path) -> Result<(OwnedFd, u64)> {
    let refuse = |why: String| Error::Invalid(format!("netns {}: {why}", path.display()));
    let probe = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| refuse(format!("cannot open it: {}", e.desc())))?;
    let fs = nix::sys::statfs::fstatfs(&probe).map_err(|e| refuse(e.desc().to_string()))?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(refuse(
            "not a namespace file: give an `ip netns` name, a path such as /proc/PID/ns/net or \
             /run/docker/netns/ID, or an inode from `pcap netns`"
                .into(),
        ));
    }
    // The same nsfs object opened for real, through the descriptor that was checked.
    let real = PathBuf::from(format!("/proc/self/fd/{}", probe.as_raw_fd()));
    let file = open(&real, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| refuse(format!("cannot open it: {}", e.desc())))?;
    let st = nix::sys::stat::fstat(&file).map_err(|e| refuse(e.desc().to_string()))?;
    Ok((file, st.st_ino))
}

/// The names `ip netns` knows, for messages.
pub fn known_names() -> String {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "none (`ip netns list` is empty)".into()
    } else {
        names.join(", ")
    }
}

/// The daemon's own network namespace, opened once, to come back to.
fn host() -> Result<&'static OwnedFd> {
    static HOST: OnceLock<std::result::Result<OwnedFd, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        open(
            "/proc/self/ns/net",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open pcapd's own network namespace: {}", e.desc()))
    })
    .as_ref()
    .map_err(|e| Error::Unavailable(e.clone()))
}

/// This thread inside a namespace; back in the daemon's own when dropped.
pub struct Inside(());

/// Moves the calling thread into the namespace of `file`.
pub fn enter(file: &OwnedFd) -> Result<Inside> {
    host()?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        Error::Unavailable(format!(
            "cannot enter the network namespace: {} (pcapd needs CAP_SYS_ADMIN for this)",
            e.desc()
        ))
    })?;
    Ok(Inside(()))
}

impl Drop for Inside {
    fn drop(&mut self) {
        if let Ok(host) = host() {
            if let Err(e) = setns(host.as_fd(), CloneFlags::CLONE_NEWNET) {
                tracing::error!(error = %e, "cannot return to pcapd's own network namespace");
            }
        }
    }
}

/// Runs `f` on a short-lived thread inside the namespace `ns` names (for the checks of
/// `init` and for listing its interfaces), so that no other thread changes namespace.
/// Also returns the process that anchors the namespace, if one does, and for a container
/// the engine that runs it.
pub fn run_in<T: Send>(ns: &Netns, f: impl FnOnce() -> Result<T> + Send) -> Result<(T, Found)> {
    let opened = open_target(ns, None).map_err(|u| match u {
        Unusable::Gone(why) | Unusable::Ended(why) => Error::Invalid(why),
    })?;
    let found = match &opened.anchor {
        Anchor::Process(p) => Found {
            anchor: Some((*p).into()),
            ..Found::default()
        },
        Anchor::Container {
            process, runtime, ..
        } => Found {
            anchor: Some((*process).into()),
            runtime: Some(runtime.clone()),
            ..Found::default()
        },
        Anchor::File(_) => Found::default(),
    };
    let (out, cookie) = std::thread::scope(|s| {
        s.spawn(|| {
            let _inside = enter(&opened.file)?;
            Ok((f()?, cookie::current()))
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("a namespace check crashed".into())))
    })?;
    Ok((out, Found { cookie, ..found }))
}

/// What finding a namespace learnt besides the namespace itself.
#[derive(Debug, Default)]
pub struct Found {
    /// Its cookie (see [`cookie`]), as read from inside it.
    pub cookie: Option<u64>,
    /// The process that anchors it, if one does.
    pub anchor: Option<pcap_core::domain::ProcessRef>,
    /// The engine running the container it belongs to.
    pub runtime: Option<String>,
}
