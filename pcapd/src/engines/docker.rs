//! Docker and Podman through the Docker Engine API on their UNIX sockets (Podman serves a
//! compatible API). Only `GET /version`, `GET /containers/json` and
//! `GET /containers/{id}/json` are used.

use super::matching::{select, Match};
use super::report::{connect as connect_socket, within, EngineError};
use super::{Container, Endpoint, Sockets};
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::ListContainersOptions;
use bollard::{Docker, API_DEFAULT_VERSION};

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

/// A client for the engine at `endpoint`, speaking the newest API version both sides know.
async fn connect(endpoint: &Endpoint, sockets: &Sockets) -> Result<Docker, EngineError> {
    let path = &endpoint.socket;
    // bollard connects lazily; a connection made here tells a missing, refused or forbidden
    // socket apart from an engine that answers badly.
    drop(connect_socket(path, sockets.timeout).await?);
    let utf8 = path
        .to_str()
        .ok_or_else(|| EngineError("the socket path is not UTF-8".to_owned()))?;
    let timeout_secs = sockets.timeout.as_secs().max(1);
    let docker = Docker::connect_with_unix(utf8, timeout_secs, API_DEFAULT_VERSION)
        .map_err(|e| EngineError(e.to_string()))?;
    // Engines refuse a client newer than themselves (Debian 12's dockerd speaks API 1.41,
    // bollard 1.53), and the newest ones refuse very old clients, so ask which to speak.
    within(sockets.timeout, "GET /version", docker.negotiate_version()).await
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
        Ok(Err(e)) => Err(EngineError(format!("{what}: {e}"))),
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
}
