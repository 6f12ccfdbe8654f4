//! Containers as the engines that run them see them: Docker and Podman through their Engine
//! API sockets, containerd through its gRPC socket. Only read-only calls are made (list and
//! inspect containers, get tasks), each bounded by a timeout, so a hung engine delays a
//! lookup by seconds at most and can never be changed by pcapd.

mod containerd;
mod docker;
#[cfg(test)]
mod fake_api;
mod matching;
mod report;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use matching::Match;
use report::{EngineError, Inquiry};

/// A container engine pcapd can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Docker Engine, through its API socket.
    Docker,
    /// Podman, through its Docker-compatible API socket (`podman system service`).
    Podman,
    /// containerd, through its gRPC socket (its own, or the one dockerd runs).
    Containerd,
}

impl Runtime {
    /// Every runtime, in the order a lookup without `--runtime` asks them.
    pub const ALL: [Runtime; 3] = [Runtime::Docker, Runtime::Podman, Runtime::Containerd];

    /// The name used on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown container runtime \"{s}\": use docker, podman or containerd"
                ))
            })
    }
}

/// A container as an engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The engine that runs it.
    pub runtime: Runtime,
    /// Its full id.
    pub id: String,
    /// Its name, without Docker's leading '/' (containerd has none: the id is the name).
    pub name: String,
    /// The containerd namespace it lives in (moby, default, k8s.io); None for docker/podman.
    pub namespace: Option<String>,
    /// Its init process on the host, when running.
    pub pid: Option<u32>,
    /// Whether it runs (a paused container runs: its namespaces are there).
    pub running: bool,
}

impl fmt::Display for Container {
    /// `web (docker)`, or `web (containerd, namespace default)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} ({}, namespace {ns})", self.name, self.runtime),
            None => write!(f, "{} ({})", self.name, self.runtime),
        }
    }
}

/// Where the engines listen and how long pcapd waits for each call. The defaults are the
/// engines' own defaults; tests and other set-ups pass their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sockets {
    /// Docker Engine API socket.
    pub docker: PathBuf,
    /// Podman's Docker-compatible API socket.
    pub podman: PathBuf,
    /// containerd sockets, asked in this order: a standalone containerd, then dockerd's own.
    pub containerd: Vec<PathBuf>,
    /// containerd namespaces asked on each containerd socket, in this order.
    pub containerd_namespaces: Vec<String>,
    /// Bound on each connection and API call.
    pub timeout: Duration,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            docker: "/var/run/docker.sock".into(),
            podman: "/run/podman/podman.sock".into(),
            containerd: vec![
                "/run/containerd/containerd.sock".into(),
                "/var/run/docker/containerd/containerd.sock".into(),
            ],
            containerd_namespaces: ["moby", "default", "k8s.io"].map(String::from).to_vec(),
            timeout: Duration::from_secs(3),
        }
    }
}

/// One socket of one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The engine listening there.
    pub runtime: Runtime,
    /// Its API socket.
    pub socket: PathBuf,
}

impl Sockets {
    /// The sockets to ask, in order, for `runtime` or for every engine.
    fn endpoints(&self, runtime: Option<Runtime>) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for r in Runtime::ALL {
            if runtime.is_some_and(|wanted| wanted != r) {
                continue;
            }
            let sockets = match r {
                Runtime::Docker => vec![self.docker.clone()],
                Runtime::Podman => vec![self.podman.clone()],
                Runtime::Containerd => self.containerd.clone(),
            };
            out.extend(
                sockets
                    .into_iter()
                    .map(|socket| Endpoint { runtime: r, socket }),
            );
        }
        out
    }
}

/// Finds a container by name, id or unique id prefix (like `docker inspect` does), asking the
/// engine `runtime` names or else each engine in order docker, podman, containerd (its sockets
/// and namespaces); the first that knows it wins.
pub async fn find(name: &str, runtime: Option<Runtime>) -> Result<Container> {
    find_with(&Sockets::default(), name, runtime).await
}

/// [`find`], asking the engines at `sockets`.
pub async fn find_with(
    sockets: &Sockets,
    name: &str,
    runtime: Option<Runtime>,
) -> Result<Container> {
    let query = name.strip_prefix('/').unwrap_or(name);
    if query.is_empty() {
        return Err(Error::Invalid(
            "no container given: name a container by its name, id or the start of its id".into(),
        ));
    }
    let mut inquiry = Inquiry::new(query, runtime);
    for endpoint in sockets.endpoints(runtime) {
        let found = match endpoint.runtime {
            Runtime::Docker | Runtime::Podman => docker::find(&endpoint, sockets, query).await,
            Runtime::Containerd => containerd::find(&endpoint, sockets, query).await,
        };
        match found {
            Ok(Match::One(container)) => return Ok(container),
            Ok(Match::Several(containers)) => return Err(report::ambiguous(query, &containers)),
            Ok(Match::None) => inquiry.asked(&endpoint, sockets),
            Err(e) => inquiry.unreachable(&endpoint, e),
        }
    }
    Err(inquiry.into_error())
}

/// Every container of every reachable engine (for `pcap netns`); engines not reachable are
/// left out. A container seen through dockerd's containerd (namespace moby) that Docker
/// itself listed is listed once, as Docker's.
pub async fn list() -> Vec<Container> {
    list_with(&Sockets::default()).await
}

/// [`list`], asking the engines at `sockets`.
pub async fn list_with(sockets: &Sockets) -> Vec<Container> {
    let mut out: Vec<Container> = Vec::new();
    for endpoint in sockets.endpoints(None) {
        let listed = match endpoint.runtime {
            Runtime::Docker | Runtime::Podman => docker::list(&endpoint, sockets).await,
            Runtime::Containerd => containerd::list(&endpoint, sockets).await,
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(EngineError { reason, .. }) => {
                tracing::debug!(runtime = %endpoint.runtime, socket = %endpoint.socket.display(), %reason, "engine left out of the container list");
                continue;
            }
        };
        for c in listed {
            let seen = out.iter().any(|o| {
                o.id == c.id
                    && (o.runtime == c.runtime && o.namespace == c.namespace
                        || o.runtime == Runtime::Docker && c.namespace.as_deref() == Some("moby"))
            });
            if !seen {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_round_trip() {
        for r in Runtime::ALL {
            assert_eq!(r.to_string().parse::<Runtime>().unwrap(), r);
        }
        let e = "rkt".parse::<Runtime>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown container runtime \"rkt\": use docker, podman or containerd"
        );
    }

    #[test]
    fn endpoints_follow_the_engine_order() {
        let s = Sockets::default();
        let all: Vec<_> = s
            .endpoints(None)
            .into_iter()
            .map(|e| (e.runtime, e.socket.display().to_string()))
            .collect();
        assert_eq!(
            all,
            [
                (Runtime::Docker, "/var/run/docker.sock".to_owned()),
                (Runtime::Podman, "/run/podman/podman.sock".to_owned()),
                (
                    Runtime::Containerd,
                    "/run/containerd/containerd.sock".to_owned()
                ),
                (
                    Runtime::Containerd,
                    "/var/run/docker/containerd/containerd.sock".to_owned()
                ),
            ]
        );
        let only: Vec<_> = s
            .endpoints(Some(Runtime::Containerd))
            .into_iter()
            .map(|e| e.runtime)
            .collect();
        assert_eq!(only, [Runtime::Containerd, Runtime::Containerd]);
    }

    #[tokio::test]
    async fn an_empty_name_is_refused_before_any_engine_is_asked() {
        let e = find_with(&Sockets::default(), "/", None).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }

    #[tokio::test]
    async fn no_engine_reachable_is_unavailable_and_names_every_socket() {
        let dir = tempfile::tempdir().unwrap();
        // A socket file left behind by an engine that is gone: connecting is refused.
        let stale = dir.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let s = Sockets {
            docker: stale,
            podman: dir.path().join("podman.sock"),
            containerd: vec![dir.path().join("containerd.sock")],
            containerd_namespaces: vec!["default".into()],
            timeout: Duration::from_millis(500),
        };
        let e = find_with(&s, "web", None).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Unavailable(_)), "{msg}");
        let d = dir.path().display();
        assert_eq!(
            msg,
            format!(
                "cannot look up container \"web\": could not ask any container engine: \
                 docker ({d}/docker.sock: nothing listens on it), podman ({d}/podman.sock: no \
                 such socket), containerd ({d}/containerd.sock: no such socket); start the \
                 engine that runs it, or check its socket"
            )
        );
        assert!(list_with(&s).await.is_empty());
    }
}
