//! Captures inside a Docker container, by its name: packets of its own loopback, the
//! capture following the container across a stop and start (a new namespace), and not
//! holding the old namespace alive. dockerd is started when it is not running.

#[path = "../../pcapd/tests/support/mod.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;
use support::docker::{busybox_image, Containers, Dockerd, IMAGE};

/// Long enough for the capture thread's retry steps (1 s, 2 s, 4 s, 8 s ...).
const RESUME_LIMIT: Duration = Duration::from_secs(45);

/// `ping -c N 127.0.0.1` inside the container: N requests and N replies on its `lo`.
fn ping_inside(name: &str, n: u32) {
    support::run(Command::new("docker").args([
        "exec",
        name,
        "busybox",
        "ping",
        "-c",
        &n.to_string(),
        "-i",
        "0.2",
        "127.0.0.1",
    ]));
}

/// The network namespace inode of a container's main process.
fn netns_inode(containers: &Containers, name: &str) -> u64 {
    let pid = containers.inspect(name, "{{.State.Pid}}");
    std::fs::metadata(format!("/proc/{}/ns/net", pid.trim()))
        .unwrap()
        .ino()
}

/// A container on Docker's bridge (an `eth0` with an address), and that address.
fn bridged(containers: &mut Containers, what: &str) -> (String, std::net::Ipv4Addr) {
    let image = busybox_image("docker", IMAGE);
    let name = support::unique_name(what);
    containers.run_on(&name, "bridge", &[], &image);
    let addr = containers
        .inspect(&name, "{{.NetworkSettings.IPAddress}}")
        .trim()
        .parse()
        .expect("the container's address");
    (name, addr)
}

/// `n` UDP datagrams (sequence numbers 0..n) from the host to `addr`:`port`.
fn send_to_container(addr: std::net::Ipv4Addr, port: u16, n: u64) {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for seq in 0..n {
        sock.send_to(&payload(seq, 64), (addr, port)).unwrap();
    }
}

/// Whether any thread of process `pid` is in the namespace with `inode`.
fn holds(pid: u32, inode: u64) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .any(|t| std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() == inode))
}

#[test]
fn a_container_by_name_is_captured_and_followed_across_a_restart() {
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _dockerd = Dockerd::ensure();
    let image = busybox_image("docker", IMAGE);
    let mut containers = Containers::new("docker");
    let name = support::unique_name("pcapd-cap");
    containers.run(&name, &[], &image);
    let first_ns = netns_inode(&containers, &name);

    let d = Daemon::start();
    let id = d.init_started(&["lo", "icmp", "--container", &name, "--alias", "cw"]);
    let c = d.capture(id);
    assert_eq!(
        c["target"],
        format!("container {name} (docker): lo"),
        "the engine found is recorded: {c}"
    );
    // A live reader, told of every change of state on its stderr.
    let live_file = d.dir().join("live.pcap");
    let mut live = d.spawn_to_file(&["replay", "cw", "--live"], &live_file);
    ping_inside(&name, 5);
    d.wait_spooled(id, 10);

    // Stopped: RETRYING, naming it, and its namespace is let go.
    containers.stop(&name);
    eventually(Duration::from_secs(10), "RETRYING once stopped", || {
        d.state(id) == "RETRYING"
    });
    let c = d.capture(id);
    assert_eq!(
        c["reason"].as_str().unwrap(),
        format!("container {name} (docker) is not running"),
        "{c}"
    );
    eventually(Duration::from_secs(5), "the old namespace let go", || {
        !holds(d.pid(), first_ns)
    });
    let told = format!("pcap: cw is RETRYING: container {name} (docker) is not running");
    eventually(Duration::from_secs(5), "the live reader told", || {
        live.stderr().contains(&told)
    });

    // Running again, in a new namespace: the capture resumes there by itself.
    support::run(Command::new("docker").args(["start", &name]));
    eventually(RESUME_LIMIT, "ACTIVE again", || d.state(id) == "ACTIVE");
    ping_inside(&name, 5);
    d.wait_spooled(id, 20);
    let replay = d.replay(&[id.to_string()]);
    assert_eq!(
        replay.packets.len(),
        20,
        "packets before and after the restart"
    );
    eventually(Duration::from_secs(5), "the live reader told again", || {
        live.stderr().contains("pcap: cw is ACTIVE again")
    });
    // The reader went on across the restart: every packet, old namespace and new.
    eventually(
        Duration::from_secs(5),
        "the live reader has every packet",
        || {
            std::fs::read(&live_file)
                .ok()
                .and_then(|b| PcapFile::parse_prefix(&b))
                .is_some_and(|f| f.packets.len() == 20)
        },
    );
    assert!(live.try_status().is_none(), "{}", live.stderr());

    // Removed: RETRYING, and not found is said.
    containers.remove(&name);
    eventually(Duration::from_secs(10), "RETRYING once removed", || {
        d.state(id) == "RETRYING"
    });
}

#[test]
fn an_unknown_container_is_refused_naming_the_engines_asked() {
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _dockerd = Dockerd::ensure();
    let d = Daemon::start();
    let out = d.pcap(&["init", "lo", "--container", "pcapd-no-such-container"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("pcapd-no-such-container") && out.stderr.contains("docker"),
        "{}",
        out.stderr
    );
    let out = d.pcap(&["init", "lo", "--container", "x", "--runtime", "lxc"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("docker, podman or containerd"),
        "{}",
        out.stderr
    );
    assert!(d.list().is_empty(), "nothing was created");
}

#[test]
fn a_containers_eth0_is_captured_from_inside() {
    const PORT: u16 = 24301;
    const N: u64 = 100;
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _dockerd = Dockerd::ensure();
    let mut containers = Containers::new("docker");
    let (name, addr) = bridged(&mut containers, "pcapd-eth0");

    let d = Daemon::start();
    // eth0 is the container's: the host has none of that name here, or another one.
    let id = d.init_started(&["eth0", &format!("udp port {PORT}"), "--container", &name]);
    send_to_container(addr, PORT, N);
    d.wait_spooled(id, N);
    let got = d.replay(&[id.to_string()]);
    assert_eq!(got.seqs_to(PORT), (0..N).collect::<Vec<_>>());
    assert_eq!(
        got.link_type, 1,
        "Ethernet, as eth0 inside the container is"
    );
}

#[test]
fn a_containers_eth0_and_lo_at_once_each_packet_naming_its_interface() {
    const PORT: u16 = 24311;
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _dockerd = Dockerd::ensure();
    let mut containers = Containers::new("docker");
    let (name, addr) = bridged(&mut containers, "pcapd-both");

    let d = Daemon::start();
    let filter = format!("udp port {PORT} or (icmp and src host 127.0.0.1)");
    let id = d.init_started(&["eth0,lo", &filter, "--container", &name]);
    // UDP from the host arrives on eth0; a ping inside the container to itself on lo.
    send_to_container(addr, PORT, 10);
    ping_inside(&name, 3);
    d.wait_spooled(id, 16);
    let names = interface_names(&d.capture(id));
    let got = d.replay(&[id.to_string()]);
    assert_eq!(got.link_type, LINUX_SLL2);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for p in &got.packets {
        let index = p.sll2_ifindex();
        let iface = names
            .get(&index)
            .unwrap_or_else(|| panic!("index {index} not in {names:?}"));
        *seen.entry(iface.clone()).or_default() += 1;
    }
    assert_eq!(
        seen.get("eth0"),
        Some(&10),
        "the host's datagrams on eth0: {seen:?}"
    );
    assert_eq!(
        seen.get("lo"),
        Some(&6),
        "3 pings and 3 replies on lo: {seen:?}"
    );
}

#[test]
fn a_containerd_task_is_captured_by_its_name() {
    use std::os::unix::fs::PermissionsExt;
    use support::containerd::{ctr, import_image, Containerd, Tasks};
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _dockerd = Dockerd::ensure();
    let image = busybox_image("docker", IMAGE);
    let containerd = Containerd::ensure();
    // containerd makes its state directory 0711; one left by `ctr` alone can be 0600,
    // which pcapd (without CAP_DAC_OVERRIDE) cannot pass through to the socket.
    let state = containerd.socket.parent().unwrap();
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o711)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    support::run(
        Command::new("docker")
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&image),
    );
    let reference = import_image(&containerd.socket, "default", &archive, IMAGE);
    let mut tasks = Tasks::new(&containerd.socket, "default");
    let id = support::unique_name("ctr-cap");
    tasks.run(&reference, &id);

    let d = Daemon::start();
    let cap = d.init_started(&["lo", "icmp", "--container", &id, "--runtime", "containerd"]);
    support::run(
        ctr(&containerd.socket, "default")
            .args(["tasks", "exec", "--exec-id", "ping", &id])
            .args(["busybox", "ping", "-c", "3", "-i", "0.2", "127.0.0.1"]),
    );
    d.wait_spooled(cap, 6);
    tasks.kill(&id);
    eventually(
        Duration::from_secs(10),
        "RETRYING once the task is gone",
        || d.state(cap) == "RETRYING",
    );
    let c = d.capture(cap);
    assert_eq!(
        c["reason"].as_str().unwrap(),
        format!("container {id} (containerd) is not running"),
        "{c}"
    );
}

#[test]
fn a_podman_container_is_captured_by_its_name() {
    use support::podman::{PodmanService, RUN_OPTIONS};
    const PORT: u16 = 24321;
    const N: u64 = 50;
    if !require_root() {
        return;
    }
    let _one_at_a_time = support::serial();
    let _service = PodmanService::ensure();
    let image = busybox_image("podman", IMAGE);
    let mut containers = Containers::new("podman");
    let name = support::unique_name("pcapd-podman");
    containers.run_on(&name, "bridge", RUN_OPTIONS, &image);
    let addr: std::net::Ipv4Addr = containers
        .inspect(&name, "{{.NetworkSettings.IPAddress}}")
        .trim()
        .parse()
        .expect("the container's address on Podman's bridge");

    let d = Daemon::start();
    let filter = format!("udp port {PORT}");
    let id = d.init_started(&["eth0", &filter, "--container", &name, "--runtime", "podman"]);
    assert_eq!(
        d.capture(id)["target"],
        format!("container {name} (podman): eth0")
    );
    // Podman's containers have no CAP_NET_RAW (no ping inside): datagrams from the host.
    send_to_container(addr, PORT, N);
    d.wait_spooled(id, N);
    let got = d.replay(&[id.to_string()]);
    assert_eq!(got.seqs_to(PORT), (0..N).collect::<Vec<_>>());

    containers.stop(&name);
    eventually(Duration::from_secs(10), "RETRYING once stopped", || {
        d.state(id) == "RETRYING"
    });
    assert_eq!(
        d.capture(id)["reason"].as_str().unwrap(),
        format!("container {name} (podman) is not running")
    );
}
