//! containerd through its gRPC API on a UNIX socket: the Containers service lists a
//! namespace's containers, the Tasks service says which run and with which pid. Every request
//! carries the namespace in the `containerd-namespace` header, as containerd requires.

mod api;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint as GrpcEndpoint, Uri};

use super::matching::{select, Match};
use super::report::{connect, within, EngineError};
use super::{Container, Endpoint, Sockets};
use api::containerd::services::containers::v1::{
    containers_client::ContainersClient, ListContainersRequest,
};
use api::containerd::services::tasks::v1::{tasks_client::TasksClient, ListTasksRequest};
use api::containerd::v1::types::{Process, Status};

/// The container `query` names in any of the namespaces asked on this socket.
pub(super) async fn find(
    endpoint: &Endpoint,
    sockets: &Sockets,
    query: &str,
) -> Result<Match<Container>, EngineError> {
    Ok(select(query, &list(endpoint, sockets).await?))
}

/// Every container in the namespaces asked on this socket, with the pids of those that run.
pub(super) async fn list(
    endpoint: &Endpoint,
    sockets: &Sockets,
) -> Result<Vec<Container>, EngineError> {
    let channel = channel(&endpoint.socket, sockets.timeout).await?;
    let mut out = Vec::new();
    for namespace in &sockets.containerd_namespaces {
        out.extend(in_namespace(&channel, namespace, sockets.timeout).await?);
    }
    Ok(out)
}

/// The containers of one namespace, each with its task's state.
async fn in_namespace(
    channel: &Channel,
    namespace: &str,
    timeout: Duration,
) -> Result<Vec<Container>, EngineError> {
    let mut containers = ContainersClient::new(channel.clone());
    let listed = within(
        timeout,
        "Containers.List",
        status_text(containers.list(request(namespace, ListContainersRequest::default())?)),
    )
    .await?
    .into_inner()
    .containers;
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    let mut tasks = TasksClient::new(channel.clone());
    let tasks = within(
        timeout,
        "Tasks.List",
        status_text(tasks.list(request(namespace, ListTasksRequest::default())?)),
    )
    .await?
    .into_inner()
    .tasks;
    Ok(listed
        .into_iter()
        .map(|c| {
            let task = tasks.iter().find(|t| task_of(t) == c.id);
            from_task(namespace, c.id, task)
        })
        .collect())
}

/// The container a task (an init process) belongs to.
fn task_of(p: &Process) -> &str {
    if p.container_id.is_empty() {
        &p.id
    } else {
        &p.container_id
    }
}

/// A container of `namespace` whose task, if it has one, is `task`.
fn from_task(namespace: &str, id: String, task: Option<&Process>) -> Container {
    let running = task.is_some_and(|t| {
        matches!(
            t.status(),
            Status::Running | Status::Paused | Status::Pausing
        ) && t.pid > 0
    });
    Container {
        runtime: super::Runtime::Containerd,
        name: id.clone(),
        id,
        namespace: Some(namespace.to_owned()),
        pid: task.filter(|_| running).map(|t| t.pid),
        running,
    }
}

/// A request to the namespace `namespace`.
fn request<T>(namespace: &str, message: T) -> Result<tonic::Request<T>, EngineError> {
    let value = MetadataValue::try_from(namespace).map_err(|_| {
        EngineError::new(format!(
            "namespace \"{namespace}\" cannot be sent in a gRPC header (printable ASCII only)"
        ))
    })?;
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("containerd-namespace", value);
    Ok(req)
}

/// A gRPC failure as `Code: message`, without tonic's metadata dump.
async fn status_text<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, String> {
    call.await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// An HTTP/2 channel to the containerd socket at `path`. The first connection is made here,
/// so that a missing or refused socket is told as such.
async fn channel(path: &Path, timeout: Duration) -> Result<Channel, EngineError> {
    let first = Arc::new(Mutex::new(Some(connect(path, timeout).await?)));
    let owned = path.to_owned();
    // The URI is required by tonic but unused: the connector decides where to go.
    let endpoint = GrpcEndpoint::try_from("http://[::]:50051")
        .expect("static URI")
        .connect_timeout(timeout)
        .timeout(timeout);
    let connecting = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
        let first = first.clone();
        let path = owned.clone();
        async move {
            let reused = first.lock().expect("connector lock").take();
            let stream = match reused {
                Some(s) => s,
                None => UnixStream::connect(&path).await?,
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    }));
    within(timeout, "HTTP/2 connection", connecting).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, pid: u32, status: Status) -> Process {
        Process {
            id: id.into(),
            pid,
            status: status as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_running_or_paused_task_gives_its_pid() {
        for s in [Status::Running, Status::Paused] {
            let t = task("web", 4321, s);
            let c = from_task("default", "web".into(), Some(&t));
            assert_eq!((c.pid, c.running), (Some(4321), true), "{s:?}");
            assert_eq!(c.namespace.as_deref(), Some("default"));
            assert_eq!(c.name, "web");
        }
    }

    #[test]
    fn a_stopped_task_or_none_gives_no_pid() {
        let t = task("web", 4321, Status::Stopped);
        for c in [
            from_task("default", "web".into(), Some(&t)),
            from_task("default", "web".into(), None),
        ] {
            assert_eq!((c.pid, c.running), (None, false));
        }
    }

    #[test]
    fn the_namespace_travels_in_the_containerd_header() {
        let req = request("k8s.io", ()).unwrap();
        assert_eq!(
            req.metadata().get("containerd-namespace").unwrap(),
            "k8s.io"
        );
        assert!(request("bad\nname", ()).is_err());
    }
}
