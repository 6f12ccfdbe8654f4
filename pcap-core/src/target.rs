//! Where a capture listens: interfaces, in pcapd's own network namespace or in another one
//! (a name, a namespace file, an inode, a process's, a container's).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::{Error, Result};

/// Where a capture listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "TargetRepr")]
pub struct Target {
    /// Interface names, distinct; empty captures on all interfaces.
    pub interfaces: Vec<String>,
    /// The network namespace; `None` is the daemon's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Netns>,
}

/// A target as stored: records written before captures had several interfaces hold
/// `interface` (one name or null) instead of `interfaces`.
#[derive(Deserialize)]
struct TargetRepr {
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    netns: Option<Netns>,
}

impl From<TargetRepr> for Target {
    fn from(r: TargetRepr) -> Target {
        let interfaces = match (r.interfaces.is_empty(), r.interface) {
            (true, Some(one)) => vec![one],
            _ => r.interfaces,
        };
        Target {
            interfaces,
            netns: r.netns,
        }
    }
}

/// A network namespace other than the daemon's, as a user names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Netns {
    /// A name from `ip netns`: /run/netns/NAME. Followed by name when it is made again.
    Name(String),
    /// The path of a namespace file (/proc/PID/ns/net, /run/docker/netns/ID, ...).
    Path(String),
    /// The inode number of a namespace, as `pcap netns` shows it.
    Inode(u64),
    /// The namespace of a process.
    Pid(u32),
    /// The namespace of a container, found through its engine (`docker`, `podman`,
    /// `containerd`; `None`: the first that knows it) and followed when it runs again.
    Container {
        name: String,
        runtime: Option<String>,
    },
}

impl Netns {
    /// Parses what `--netns` was given: all digits is an inode, a path starts with `/`,
    /// anything else is an `ip netns` name.
    pub fn parse(s: &str) -> Result<Netns> {
        if s.is_empty() {
            return Err(Error::BadRequest(
                "--netns needs a value: an `ip netns` name, a namespace file's path or an inode"
                    .into(),
            ));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Netns::Inode).map_err(|_| {
                Error::BadRequest(format!("--netns {s}: the inode number is out of range"))
            });
        }
        if s.len() > limits::MAX_PATH_LEN {
            return Err(Error::BadRequest(format!(
                "--netns is {} bytes long; at most {} are accepted",
                s.len(),
                limits::MAX_PATH_LEN
            )));
        }
        if s.starts_with('/') {
            if s.contains('\0') {
                return Err(Error::BadRequest(
                    "--netns: a path cannot hold a NUL byte".into(),
                ));
            }
            return Ok(Netns::Path(s.to_owned()));
        }
        if s.contains('/') || s == "." || s == ".." || s.chars().any(|c| c.is_control()) {
            return Err(Error::BadRequest(format!(
                "--netns {s:?} is not an `ip netns` name (no '/'); give a path starting with '/' \
                 for a namespace file"
            )));
        }
        Ok(Netns::Name(s.to_owned()))
    }

    /// Checks a container target: a name, id or id prefix, and an engine if given.
    pub fn container(name: &str, runtime: &str) -> Result<Netns> {
        if name.is_empty() {
            return Err(Error::BadRequest(
                "--runtime needs --container: name the container".into(),
            ));
        }
        if name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(Error::BadRequest(format!(
                "--container {name:?} is not a container name or id: use up to 255 \
                 characters without '/'"
            )));
        }
        let runtime = match runtime {
            "" => None,
            r @ ("docker" | "podman" | "containerd") => Some(r.to_owned()),
            other => {
                return Err(Error::BadRequest(format!(
                    "--runtime {other:?} is not a container engine pcapd knows: use docker, \
                     podman or containerd"
                )))
            }
        };
        Ok(Netns::Container {
            name: name.to_owned(),
            runtime,
        })
    }

    /// Checks a pid target.
    pub fn pid(pid: u32) -> Result<Netns> {
        if pid == 0 || pid > limits::MAX_PID {
            return Err(Error::BadRequest(format!(
                "--pid {pid} is out of range: use 1 to {}",
                limits::MAX_PID
            )));
        }
        Ok(Netns::Pid(pid))
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Name(n) => write!(f, "netns {n}"),
            Netns::Path(p) => write!(f, "netns {p}"),
            Netns::Inode(i) => write!(f, "netns {i}"),
            Netns::Pid(p) => write!(f, "pid {p}"),
            Netns::Container {
                name,
                runtime: Some(r),
            } => write!(f, "container {name} ({r})"),
            Netns::Container {
                name,
                runtime: None,
            } => write!(f, "container {name}"),
        }
    }
}

impl Target {
    /// The target a user names: empty or `any` for all interfaces, otherwise one or more
    /// interface names separated by commas (`eth0,eth1`).
    pub fn named(names: &str) -> Result<Self> {
        let names: Vec<String> = names.split(',').map(|n| n.trim().to_owned()).collect();
        Target::with_interfaces(names)
    }

    /// The target of these interfaces: none, or only `""` or `any`, for all of them. Each
    /// name must be one Linux would accept (see [`limits::check_interface`]), named once,
    /// and at most [`MAX_INTERFACES`](limits::MAX_INTERFACES) of them.
    pub fn with_interfaces(names: Vec<String>) -> Result<Self> {
        if names.is_empty() || (names.len() == 1 && (names[0].is_empty() || names[0] == "any")) {
            return Ok(Target::default());
        }
        if names.len() > limits::MAX_INTERFACES {
            return Err(Error::Invalid(format!(
                "{} interfaces given: a capture takes at most {}, or none for all",
                names.len(),
                limits::MAX_INTERFACES
            )));
        }
        for (i, name) in names.iter().enumerate() {
            if name == "any" {
                return Err(Error::Invalid(
                    "`any` means all interfaces: give it alone, or list interfaces without it"
                        .into(),
                ));
            }
            if name.is_empty() && names.len() > 1 {
                return Err(Error::Invalid(format!(
                    "empty interface name in the list {:?}: separate names with single commas",
                    names.join(",")
                )));
            }
            limits::check_interface(name)?;
            if names[..i].contains(name) {
                return Err(Error::Invalid(format!(
                    "interface {name:?} is named twice: give each interface once"
                )));
            }
        }
        Ok(Target {
            interfaces: names,
            netns: None,
        })
    }

    /// The interface when exactly one is named.
    pub fn single_interface(&self) -> Option<&str> {
        match self.interfaces.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Whether the capture is on every interface (of its namespace).
    pub fn all_interfaces(&self) -> bool {
        self.interfaces.is_empty()
    }
}

impl fmt::Display for Target {
    /// `eth0`, `eth0,eth1`, `any`; in a namespace `netns blue: eth0,eth1`, `pid 1234: all`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.interfaces.join(",");
        let all = if self.netns.is_some() { "all" } else { "any" };
        let shown = if names.is_empty() { all } else { &names };
        match &self.netns {
            None => f.write_str(shown),
            Some(ns) => write!(f, "{ns}: {shown}"),
        }
    }
}
