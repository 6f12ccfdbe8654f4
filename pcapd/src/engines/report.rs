//! What a lookup tells the person at the CLI when it finds nothing: which engines were asked,
//! which could not be, and why; or, for an ambiguous id prefix, which containers it matches.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use super::{Container, Endpoint, Runtime, Sockets};
use crate::Error;

/// Why an engine could not be asked: the reason, without the socket (the report adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineError {
    /// What went wrong, e.g. "no such socket" or "GET /containers/json: ...".
    pub reason: String,
    /// Nothing could connect to the socket (rather than: the engine answered badly).
    pub unreachable: bool,
}

impl EngineError {
    /// An engine that answered, but not as it should.
    pub fn new(reason: impl Into<String>) -> Self {
        EngineError {
            reason: reason.into(),
            unreachable: false,
        }
    }

    /// A failed connection to the socket, in words a user can act on.
    pub fn connect(e: &io::Error) -> Self {
        let reason = match e.kind() {
            io::ErrorKind::NotFound => "no such socket".to_owned(),
            io::ErrorKind::ConnectionRefused => "nothing listens on it".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
        EngineError {
            reason,
            unreachable: true,
        }
    }

    /// A call that got no answer in time.
    pub fn timed_out(what: &str, timeout: Duration) -> Self {
        EngineError::new(format!("{what}: no answer within {}", humanize(timeout)))
    }
}

/// Runs one engine call with the lookup's bound; failures and timeouts become [`EngineError`].
pub(crate) async fn within<T, E: Display>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EngineError::new(format!("{what}: {e}"))),
        Err(_) => Err(EngineError::timed_out(what, timeout)),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The record of one lookup: what was asked and what could not be.
#[derive(Debug)]
pub(crate) struct Inquiry {
    query: String,
    runtime: Option<Runtime>,
    asked: Vec<String>,
    unreachable: Vec<(Endpoint, EngineError)>,
}

impl Inquiry {
    /// A lookup of `query`, limited to `runtime` if given.
    pub fn new(query: &str, runtime: Option<Runtime>) -> Self {
        Inquiry {
            query: query.to_owned(),
            runtime,
            asked: Vec::new(),
            unreachable: Vec::new(),
        }
    }

    /// `endpoint` answered and does not know the container.
    pub fn asked(&mut self, endpoint: &Endpoint, sockets: &Sockets) {
        let place = endpoint.socket.display();
        self.asked.push(match endpoint.runtime {
            Runtime::Containerd => format!(
                "containerd ({place}, namespaces {})",
                sockets.containerd_namespaces.join(", ")
            ),
            r => format!("{r} ({place})"),
        });
    }

    /// `endpoint` could not be asked.
    pub fn unreachable(&mut self, endpoint: &Endpoint, e: EngineError) {
        self.unreachable.push((endpoint.clone(), e));
    }

    /// `docker (/var/run/docker.sock: no such socket), ...`; without the engine's name when
    /// the lookup was limited to one engine.
    fn unreachable_list(&self) -> String {
        let listed: Vec<String> = self
            .unreachable
            .iter()
            .map(|(ep, e)| match self.runtime {
                Some(_) => format!("{}: {}", ep.socket.display(), e.reason),
                None => format!("{} ({}: {})", ep.runtime, ep.socket.display(), e.reason),
            })
            .collect();
        listed.join(", ")
    }

    /// The error for a lookup that found nothing: NotFound if some engine answered,
    /// Unavailable if none could be asked.
    pub fn into_error(self) -> Error {
        let q = &self.query;
        if self.asked.is_empty() {
            let unreachable = self.unreachable.iter().any(|(_, e)| e.unreachable);
            let (which, hint) = match self.runtime {
                Some(r) => (format!("could not ask {r}"), start_hint(r)),
                None => (
                    "could not ask any container engine".to_owned(),
                    "start the engine that runs it, or check its socket".to_owned(),
                ),
            };
            let hint = if unreachable {
                format!("; {hint}")
            } else {
                String::new()
            };
            return Error::Unavailable(format!(
                "cannot look up container \"{q}\": {which}: {}{hint}",
                self.unreachable_list()
            ));
        }
        let mut msg = format!(
            "no container \"{q}\" (by name, id or start of an id): asked {}",
            self.asked.join(", ")
        );
        if !self.unreachable.is_empty() {
            msg.push_str(&format!("; could not ask {}", self.unreachable_list()));
        }
        msg.push_str("; `pcap netns` lists the containers pcapd sees");
        Error::NotFound(msg)
    }
}

/// What to do when `runtime`'s socket cannot be reached.
fn start_hint(runtime: Runtime) -> String {
    match runtime {
        Runtime::Docker => "is dockerd running?".to_owned(),
        Runtime::Podman => {
            "is `podman system service` running (systemctl start podman.socket)?".to_owned()
        }
        Runtime::Containerd => "is containerd running?".to_owned(),
    }
}

/// The error for an id prefix (or name) that matches several containers of one engine.
pub(crate) fn ambiguous(query: &str, containers: &[Container]) -> Error {
    let listed: Vec<String> = containers
        .iter()
        .map(|c| {
            if c.id == c.name {
                c.to_string()
            } else {
                format!("{} {c}", short_id(&c.id))
            }
        })
        .collect();
    Error::Invalid(format!(
        "\"{query}\" matches {} containers: {}; give more of the id, or the name",
        containers.len(),
        listed.join(", ")
    ))
}

/// The first 12 characters of an id, as `docker ps` shows it.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A connection to an engine's socket, or why there is none ("no such socket", "nothing
/// listens on it", "permission denied", or no answer in time).
pub(crate) async fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, EngineError> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(EngineError::connect(&e)),
        Err(_) => Err(EngineError::timed_out("connect", timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(runtime: Runtime, socket: &str) -> Endpoint {
        Endpoint {
            runtime,
            socket: socket.into(),
        }
    }

    fn missing() -> EngineError {
        EngineError::connect(&io::Error::from(io::ErrorKind::NotFound))
    }

    #[test]
    fn not_found_names_the_engines_asked_and_the_sockets_missing() {
        let s = Sockets::default();
        let mut i = Inquiry::new("web", None);
        i.asked(&ep(Runtime::Docker, "/var/run/docker.sock"), &s);
        i.unreachable(&ep(Runtime::Podman, "/run/podman/podman.sock"), missing());
        i.asked(
            &ep(
                Runtime::Containerd,
                "/var/run/docker/containerd/containerd.sock",
            ),
            &s,
        );
        let e = i.into_error();
        assert!(matches!(e, Error::NotFound(_)));
        assert_eq!(
            e.to_string(),
            "no container \"web\" (by name, id or start of an id): asked docker \
             (/var/run/docker.sock), containerd (/var/run/docker/containerd/containerd.sock, \
             namespaces moby, default, k8s.io); could not ask podman (/run/podman/podman.sock: \
             no such socket); `pcap netns` lists the containers pcapd sees"
        );
    }

    #[test]
    fn a_named_engine_out_of_reach_is_unavailable_and_says_how_to_start_it() {
        let mut i = Inquiry::new("web", Some(Runtime::Docker));
        i.unreachable(
            &ep(Runtime::Docker, "/var/run/docker.sock"),
            EngineError::connect(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        let e = i.into_error();
        assert!(matches!(e, Error::Unavailable(_)));
        assert_eq!(
            e.to_string(),
            "cannot look up container \"web\": could not ask docker: \
             /var/run/docker.sock: nothing listens on it; is dockerd running?"
        );
    }

    #[test]
    fn an_ambiguous_prefix_lists_what_it_matches() {
        let c = |id: &str, name: &str| Container {
            runtime: Runtime::Docker,
            id: id.into(),
            name: name.into(),
            namespace: None,
            pid: None,
            running: true,
        };
        let e = ambiguous(
            "ab",
            &[
                c("ab12345678901234567890", "web"),
                c("ab98765432109876", "db"),
            ],
        );
        assert!(matches!(e, Error::Invalid(_)));
        assert_eq!(
            e.to_string(),
            "\"ab\" matches 2 containers: ab1234567890 web (docker), ab9876543210 db (docker); \
             give more of the id, or the name"
        );
        let mut k = c("web", "web");
        k.runtime = Runtime::Containerd;
        k.namespace = Some("default".into());
        let e = ambiguous("web", &[k.clone(), k]);
        assert!(
            e.to_string()
                .contains("web (containerd, namespace default), web (containerd"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_slow_call_is_cut_off_and_says_after_how_long() {
        let slow = std::future::pending::<Result<(), String>>();
        let e = within(Duration::from_millis(20), "list containers", slow)
            .await
            .unwrap_err();
        assert_eq!(e.reason, "list containers: no answer within 20 ms");
        assert!(!e.unreachable);
    }
}
