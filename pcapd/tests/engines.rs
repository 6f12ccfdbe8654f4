//! `pcapd::engines` against real engines: dockerd, containerd and Podman's API service,
//! started here when they are not running (and then stopped again), with containers of a
//! busybox image made on the spot. Needs root; skips without it unless
//! `PCAPD_REQUIRE_PRIVILEGED=1`.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pcapd::engines::{self, Container, Runtime, Sockets};
use pcapd::Error;
use support::containerd::{import_image, Containerd, Tasks};
use support::docker::{busybox_image, Containers, Dockerd, IMAGE};
use support::podman::{PodmanService, RUN_OPTIONS};
use support::{have, p50_p99, require_root, run, serial, skip, unique_name};

/// The inode of a process's network namespace.
fn netns(pid: u32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/net: {e}"))
        .ino()
}

/// Asserts that `pid` is a live process in a network namespace of its own, so a pid the
/// engine reported is one a capture could enter.
fn assert_own_netns(pid: u32) {
    assert_ne!(
        netns(pid),
        netns(std::process::id()),
        "pid {pid} is in the host's network namespace"
    );
}

/// Runs a lookup to its end (the tests are plain threads that also run engine CLIs).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

fn find(query: &str, runtime: Option<Runtime>) -> Container {
    block_on(engines::find(query, runtime))
        .unwrap_or_else(|e| panic!("find({query:?}, {runtime:?}): {e}"))
}

#[test]
fn docker_containers_are_found_by_name_id_and_prefix() {
    if !require_root() {
        return;
    }
    let _one_at_a_time = serial();
    let _dockerd = Dockerd::ensure();
    let image = busybox_image("docker", IMAGE);
    let mut containers = Containers::new("docker");
    let name = unique_name("docker");
    let id = containers.run(&name, &[], &image);
    let pid: u32 = containers.inspect(&name, "{{.State.Pid}}").parse().unwrap();

    let by_name = find(&name, Some(Runtime::Docker));
    let expected = Container {
        runtime: Runtime::Docker,
        id: id.clone(),
        name: name.clone(),
        namespace: None,
        pid: Some(pid),
        running: true,
    };
    assert_eq!(by_name, expected);
    assert_own_netns(pid);
    for query in [id.as_str(), &id[..12], &id[..5], &format!("/{name}")] {
        assert_eq!(find(query, Some(Runtime::Docker)), expected, "{query}");
    }
    // Without --runtime, Docker is asked first.
    assert_eq!(find(&name, None), expected);

    // Listed once, as Docker's, though dockerd's containerd knows it too (namespace moby).
    let listed = block_on(engines::list());
    let ours: Vec<_> = listed.iter().filter(|c| c.id == id).collect();
    assert_eq!(ours, [&expected], "{listed:#?}");

    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        block_on(engines::find(&name, None)).unwrap();
        samples.push(t.elapsed());
    }
    let (p50, p99) = p50_p99(samples);
    println!("find of a docker container by name: p50 {p50:?}, p99 {p99:?} over 50 calls");

    containers.stop(&name);
    let stopped = find(&name, Some(Runtime::Docker));
    assert_eq!(
        (stopped.id.as_str(), stopped.running, stopped.pid),
        (id.as_str(), false, None)
    );

    containers.remove(&name);
    let e = block_on(engines::find(&name, None)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NotFound(_)), "{msg}");
    assert!(
        msg.starts_with(&format!("no container \"{name}\"")),
        "{msg}"
    );
    assert!(msg.contains("asked docker (/var/run/docker.sock)"), "{msg}");
    // Every other engine is named, as asked or as out of reach.
    for socket in [
        "/run/podman/podman.sock",
        "/run/containerd/containerd.sock",
        "/var/run/docker/containerd/containerd.sock",
    ] {
        assert!(msg.contains(socket), "{msg}");
    }
    let e = block_on(engines::find(&name, Some(Runtime::Docker))).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(!e.to_string().contains("podman"), "{e}");
}

#[test]
fn containerd_tasks_are_found_with_their_pid() {
    if !require_root() {
        return;
    }
    let _one_at_a_time = serial();
    let _dockerd = Dockerd::ensure();
    let image = busybox_image("docker", IMAGE);
    let containerd = Containerd::ensure();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    run(Command::new("docker")
        .args(["save", "-o"])
        .arg(&archive)
        .arg(&image));
    let reference = import_image(&containerd.socket, "default", &archive, IMAGE);
    let mut tasks = Tasks::new(&containerd.socket, "default");
    let id = unique_name("ctr");
    tasks.run(&reference, &id);
    let pid = tasks.pid(&id);

    let expected = Container {
        runtime: Runtime::Containerd,
        id: id.clone(),
        name: id.clone(),
        namespace: Some("default".to_owned()),
        pid: Some(pid),
        running: true,
    };
    assert_eq!(find(&id, Some(Runtime::Containerd)), expected);
    assert_own_netns(pid);
    assert_eq!(
        find(&id[..id.len() - 2], Some(Runtime::Containerd)),
        expected
    );
    // Docker and Podman do not know it; containerd, asked last, does.
    assert_eq!(find(&id, None), expected);
    assert!(block_on(engines::list()).contains(&expected));

    tasks.kill(&id);
    let stopped = find(&id, Some(Runtime::Containerd));
    assert_eq!((stopped.running, stopped.pid), (false, None));

    // The containerd dockerd runs for itself knows Docker's containers in namespace moby.
    let mut containers = Containers::new("docker");
    let name = unique_name("moby");
    let docker_id = containers.run(&name, &[], &image);
    let docker_pid: u32 = containers.inspect(&name, "{{.State.Pid}}").parse().unwrap();
    let seen = find(&docker_id[..12], Some(Runtime::Containerd));
    assert_eq!(
        (
            seen.id.as_str(),
            seen.namespace.as_deref(),
            seen.pid,
            seen.running
        ),
        (docker_id.as_str(), Some("moby"), Some(docker_pid), true)
    );
    let dockers_own = Path::new("/var/run/docker/containerd/containerd.sock");
    if dockers_own.exists() {
        let sockets = Sockets {
            containerd: vec![dockers_own.to_owned()],
            containerd_namespaces: vec!["moby".to_owned()],
            ..Sockets::default()
        };
        let seen = block_on(engines::find_with(
            &sockets,
            &docker_id,
            Some(Runtime::Containerd),
        ))
        .unwrap();
        assert_eq!(seen.pid, Some(docker_pid));
    } else {
        println!(
            "dockerd uses {}: its own containerd socket not checked",
            containerd.socket.display()
        );
    }
    if containerd.started_here() {
        println!("containerd was started by this test");
    }
}

#[test]
fn podman_containers_are_found_through_its_docker_api() {
    if !require_root() {
        return;
    }
    if !have("podman") {
        skip("podman is not installed (apt-get install podman)");
        return;
    }
    let _one_at_a_time = serial();
    let _service = PodmanService::ensure();
    let image = busybox_image("podman", &format!("localhost/{IMAGE}"));
    let mut containers = Containers::new("podman");
    let name = unique_name("podman");
    let id = containers.run(&name, RUN_OPTIONS, &image);
    let pid: u32 = containers.inspect(&name, "{{.State.Pid}}").parse().unwrap();

    let expected = Container {
        runtime: Runtime::Podman,
        id: id.clone(),
        name: name.clone(),
        namespace: None,
        pid: Some(pid),
        running: true,
    };
    assert_eq!(find(&name, Some(Runtime::Podman)), expected);
    assert_own_netns(pid);
    for query in [id.as_str(), &id[..12]] {
        assert_eq!(find(query, Some(Runtime::Podman)), expected, "{query}");
    }
    // Docker, asked first, does not know it; Podman does.
    assert_eq!(find(&name, None), expected);

    containers.stop(&name);
    let stopped = find(&name, Some(Runtime::Podman));
    assert_eq!((stopped.running, stopped.pid), (false, None));

    containers.remove(&name);
    let e = block_on(engines::find(&name, Some(Runtime::Podman))).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(
        e.to_string()
            .contains("asked podman (/run/podman/podman.sock)"),
        "{e}"
    );
}
