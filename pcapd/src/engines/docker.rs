//! Docker and Podman through the Docker Engine API on their UNIX sockets (Podman serves a
//! compatible API). Only `GET /containers/json` and `GET /containers/{id}/json` are used.

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::ListContainersOptions;
use bollard::{Docker, API_DEFAULT_VERSION};

use super::matching::{select, Match};
use super::report::{connect as connect_socket, within, EngineError};
use super::{Container, Endpoint, Sockets};

/// The container `query` names on this engine, with its pid when it runs.
pub(super) async fn find(
    endpoint: &Endpoint,
    sockets: &Sockets,
    query: &str,
) -> Result<Match<Container>, EngineError> {
    let docker = connect(endpoint, sockets).await?;
    let listed = summaries(&docker, endpoint, sockets).await?;
    match select(query, &listed) {
        Match::One(c) => match inspect(&docker, endpoint, sockets, &c.id).await? {
            Some(c) => Ok(Match::One(c)),
            // Removed between the list and the inspect.
            None => Ok(Match::None),
        },
        other => Ok(other),
    }
}

/// Every container of this engine, running or not, with the pids of those that run.
pub(super) async fn list(
    endpoint: &Endpoint,
    sockets: &Sockets,
) -> Result<Vec<Container>, EngineError> {
    let docker = connect(endpoint, sockets).await?;
    let mut out = Vec::new();
    for c in summaries(&docker, endpoint, sockets).await? {
        if let Some(c) = inspect(&docker, endpoint, sockets, &c.id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// A client for the engine at `endpoint`.
///
/// bollard 0.21 sends its requests without a version prefix (`/containers/json`), which
/// engines answer in the newest API version they speak; so no version is negotiated (that
/// `GET /version` costs 8 ms on Debian 12's dockerd, more than the rest of a lookup), and no
/// engine refuses the client as too new (Debian 12's dockerd speaks 1.41) or too old
/// (Docker 29 speaks 1.44 and later). A unit test pins the paths asked.
async fn connect(endpoint: &Endpoint, sockets: &Sockets) -> Result<Docker, EngineError> {
    let path = &endpoint.socket;
    // bollard connects lazily; a connection made here tells a missing, refused or forbidden
    // socket apart from an engine that answers badly.
    drop(connect_socket(path, sockets.timeout).await?);
    let utf8 = path
        .to_str()
        .ok_or_else(|| EngineError::new("the socket path is not UTF-8"))?;
    let timeout_secs = sockets.timeout.as_secs().max(1);
    Docker::connect_with_unix(utf8, timeout_secs, API_DEFAULT_VERSION)
        .map_err(|e| EngineError::new(e.to_string()))
}

/// Ids, names and states of every container (no pids: the list does not carry them).
async fn summaries(
    docker: &Docker,
    endpoint: &Endpoint,
    sockets: &Sockets,
) -> Result<Vec<Container>, EngineError> {
    let options = ListContainersOptions {
        all: true,
        ..Default::default()
    };
    let listed = within(
        sockets.timeout,
        "GET /containers/json",
        docker.list_containers(Some(options)),
    )
    .await?;
    Ok(listed
        .into_iter()
        .filter_map(|s| from_summary(endpoint, s))
        .collect())
}

/// The container with this full id, or None if the engine no longer has it.
async fn inspect(
    docker: &Docker,
    endpoint: &Endpoint,
    sockets: &Sockets,
    id: &str,
) -> Result<Option<Container>, EngineError> {
    let what = format!("GET /containers/{id}/json");
    match tokio::time::timeout(sockets.timeout, docker.inspect_container(id, None)).await {
        Ok(Ok(found)) => Ok(from_inspect(endpoint, found)),
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => Ok(None),
        Ok(Err(e)) => Err(EngineError::new(format!("{what}: {e}"))),
        Err(_) => Err(EngineError::timed_out(&what, sockets.timeout)),
    }
}

/// A container from the list's summary; pid unknown.
fn from_summary(endpoint: &Endpoint, s: ContainerSummary) -> Option<Container> {
    use bollard::models::ContainerSummaryStateEnum as State;
    let id = s.id?;
    let name = s
        .names
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_owned())
        // Docker also lists link aliases ("/web/db"); the container's own name has no '/'.
        .find(|n| !n.contains('/'))
        .unwrap_or_else(|| id.clone());
    Some(Container {
        runtime: endpoint.runtime,
        running: matches!(s.state, Some(State::RUNNING | State::PAUSED)),
        id,
        name,
        namespace: None,
        pid: None,
    })
}

/// A container from its inspection, with the pid of its init process when it runs.
fn from_inspect(endpoint: &Endpoint, c: ContainerInspectResponse) -> Option<Container> {
    let id = c.id?;
    let state = c.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let pid = state
        .pid
        .filter(|&p| running && p > 0)
        .and_then(|p| u32::try_from(p).ok());
    Some(Container {
        runtime: endpoint.runtime,
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| id.clone()),
        id,
        namespace: None,
        pid,
        running: running && pid.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Runtime;
    use bollard::models::{ContainerState, ContainerSummaryStateEnum};

    fn ep() -> Endpoint {
        Endpoint {
            runtime: Runtime::Podman,
            socket: "/run/podman/podman.sock".into(),
        }
    }

    #[test]
    fn names_lose_the_leading_slash_and_link_aliases_are_skipped() {
        let s = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/other/web".into(), "/web".into()]),
            state: Some(ContainerSummaryStateEnum::EXITED),
            ..Default::default()
        };
        let c = from_summary(&ep(), s).unwrap();
        assert_eq!(
            (c.name.as_str(), c.running, c.runtime),
            ("web", false, Runtime::Podman)
        );
    }

    #[test]
    fn a_stopped_container_has_no_pid() {
        let inspected = |running, pid| ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web".into()),
            state: Some(ContainerState {
                running: Some(running),
                pid: Some(pid),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = from_inspect(&ep(), inspected(true, 4321)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.pid, c.running),
            ("web", Some(4321), true)
        );
        let c = from_inspect(&ep(), inspected(false, 0)).unwrap();
        assert_eq!((c.pid, c.running), (None, false));
    }

    #[tokio::test]
    async fn a_lookup_lists_then_inspects_on_unversioned_paths() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let id = "4f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff";
        let inspect = format!("/containers/{id}/json");
        let answers = [
            (
                "/containers/json".to_owned(),
                (
                    200,
                    format!(r#"[{{"Id":"{id}","Names":["/web"],"State":"running"}}]"#),
                ),
            ),
            (
                inspect.clone(),
                (
                    200,
                    format!(
                        r#"{{"Id":"{id}","Name":"/web","State":{{"Running":true,"Pid":4321}}}}"#
                    ),
                ),
            ),
        ];
        let asked = crate::engines::fake_api::serve(&socket, answers.into_iter().collect());
        let sockets = Sockets {
            docker: socket,
            ..Sockets::default()
        };
        let found = crate::engines::find_with(&sockets, "4f1e", Some(Runtime::Docker)).await;
        assert_eq!(
            found.unwrap(),
            Container {
                runtime: Runtime::Docker,
                id: id.to_owned(),
                name: "web".to_owned(),
                namespace: None,
                pid: Some(4321),
                running: true,
            }
        );
        // No version prefix and no GET /version: see `connect`. If a bollard upgrade
        // changes this, engines older or newer than its API version refuse it.
        assert_eq!(
            *asked.lock().unwrap(),
            ["/containers/json", inspect.as_str()]
        );
    }

    #[tokio::test]
    async fn an_engine_error_is_reported_with_the_call_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let answers = [(
            "/containers/json".to_owned(),
            (500, r#"{"message":"database is locked"}"#.to_owned()),
        )];
        crate::engines::fake_api::serve(&socket, answers.into_iter().collect());
        let sockets = Sockets {
            docker: socket.clone(),
            ..Sockets::default()
        };
        let e = crate::engines::find_with(&sockets, "web", Some(Runtime::Docker))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot look up container \"web\": could not ask docker: "),
            "{e}"
        );
        // The engine answered: no hint to start it.
        assert!(!e.contains("is dockerd running"), "{e}");
        assert!(
            e.contains(&format!("{}: GET /containers/json:", socket.display())),
            "{e}"
        );
        assert!(e.contains("database is locked"), "{e}");
    }
}
