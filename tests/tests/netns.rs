//! Captures inside another network namespace: named by `ip netns` name, by the path of its
//! namespace file, by inode, and by a process in it; what happens when the namespace or
//! the process goes away; and what is refused.

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pcapd_e2e::*;

/// Long enough for a retry step of the capture thread (1 s, 2 s, 4 s ...).
const RESUME_LIMIT: Duration = Duration::from_secs(45);

/// Captures `N` packets sent into the namespace, on the far end's interface, with the
/// namespace given as `how`, and checks exactly those were spooled.
fn captures_inside(veth: &VethPair, d: &Daemon, port: u16, how: &[&str]) -> u64 {
    const N: u64 = 200;
    let filter = format!("udp port {port}");
    let mut args = vec![veth.peer(), filter.as_str()];
    args.extend_from_slice(how);
    let id = d.init_started(&args);
    veth.send_udp_seq(port, 0..N, 64);
    d.wait_spooled(id, N);
    let got = d.replay(&[id.to_string()]);
    assert_eq!(got.seqs_to(port), (0..N).collect::<Vec<_>>(), "{how:?}");
    id
}

#[test]
fn a_namespace_by_name_path_and_inode() {
    if !require_root() {
        return;
    }
    let veth = VethPair::create(2);
    let d = Daemon::start();
    // The far end does not exist in the daemon's own namespace: only inside.
    let err = d.fails(&["init", veth.peer(), "udp"]);
    assert!(err.contains("unknown interface"), "{err}");

    // Its interfaces, as seen from inside, by name and by a process in it.
    let ifaces: serde_json::Value =
        serde_json::from_str(&d.ok(&["--json", "ifaces", "--netns", veth.netns()])).unwrap();
    let peer = ifaces
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == veth.peer())
        .unwrap_or_else(|| panic!("{} listed inside: {ifaces}", veth.peer()));
    assert_eq!(peer["up"], true, "{peer}");
    assert!(
        peer["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(&format!("{}/24", veth.peer_addr()))),
        "{peer}"
    );
    assert!(
        !ifaces
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == veth.host()),
        "the host's end is not inside: {ifaces}"
    );
    let proc = InNetns::start(veth.netns());
    let by_pid = d.ok(&["ifaces", "--pid", &proc.pid().to_string()]);
    assert!(by_pid.contains(veth.peer()), "{by_pid}");

    // `pcap netns` lists it with its name, the process in it and its interfaces.
    let all: serde_json::Value = serde_json::from_str(&d.ok(&["--json", "netns"])).unwrap();
    let ours = all
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == veth.netns())
        })
        .unwrap_or_else(|| panic!("{} listed: {all}", veth.netns()));
    let ino = std::fs::metadata(format!("/run/netns/{}", veth.netns()))
        .unwrap()
        .ino();
    assert_eq!(ours["inode"], ino, "{ours}");
    assert_eq!(ours["own"], false, "{ours}");
    assert!(
        ours["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == proc.pid() && p["command"] == "sleep"),
        "{ours}"
    );
    assert!(
        ours["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == veth.peer()),
        "{ours}"
    );
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["own"] == true)
            .count(),
        1,
        "pcapd's own namespace once"
    );
    let table = d.ok(&["netns"]);
    assert!(
        table.contains(veth.netns()) && table.contains("(pcapd's own)"),
        "{table}"
    );
    drop(proc);

    let path = format!("/run/netns/{}", veth.netns());
    let inode = std::fs::metadata(&path).unwrap().ino().to_string();
    let id = captures_inside(&veth, &d, 24201, &["--netns", veth.netns()]);
    let c = d.capture(id);
    assert_eq!(c["state"], "ACTIVE", "{c}");
    captures_inside(&veth, &d, 24202, &["--netns", &path]);
    captures_inside(&veth, &d, 24203, &["--netns", &inode]);
    let list = d.ok(&["list"]);
    assert!(
        list.contains(&format!("netns {}: {}", veth.netns(), veth.peer())),
        "list names the namespace: {list}"
    );
}

#[test]
fn a_named_namespace_made_again_is_followed() {
    const PORT: u16 = 24211;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(3);
    let d = Daemon::start();
    let id = captures_inside(&veth, &d, PORT, &["--netns", veth.netns()]);

    veth.delete_netns();
    eventually(
        Duration::from_secs(10),
        "RETRYING once the netns is gone",
        || d.state(id) == "RETRYING",
    );
    let c = d.capture(id);
    assert!(
        c["reason"].as_str().unwrap().contains(veth.netns()),
        "the reason names the namespace: {c}"
    );

    veth.recreate_netns();
    eventually(RESUME_LIMIT, "ACTIVE in the new namespace", || {
        d.state(id) == "ACTIVE"
    });
    veth.send_udp_seq(PORT, 1000..1100, 64);
    d.wait_spooled(id, 300);
    let seqs = d.replay(&[id.to_string()]).seqs_to(PORT);
    assert_eq!(seqs.len(), 300, "packets before and after are both kept");
    assert_eq!(&seqs[200..], (1000..1100).collect::<Vec<_>>());
}

/// A process in the namespace, ended on drop.
struct InNetns(Child);

impl InNetns {
    fn start(netns: &str) -> InNetns {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec sleep");
        // `ip netns exec` becomes sleep (exec), so the pid is the process in the namespace.
        let me = InNetns(child);
        let link = format!("/proc/{}/ns/net", me.pid());
        let want = std::fs::metadata(format!("/run/netns/{netns}"))
            .unwrap()
            .ino();
        eventually(
            Duration::from_secs(10),
            "the process to be in the netns",
            || std::fs::metadata(&link).is_ok_and(|m| m.ino() == want),
        );
        me
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        self.end();
    }
}

#[test]
fn a_process_target_finishes_when_the_process_exits() {
    const PORT: u16 = 24221;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(4);
    let d = Daemon::start();
    let mut proc = InNetns::start(veth.netns());
    let pid = proc.pid().to_string();
    let id = captures_inside(&veth, &d, PORT, &["--pid", &pid]);
    let listed = d.ok(&["list"]);
    assert!(listed.contains(&format!("pid {pid}")), "{listed}");

    proc.end();
    eventually(
        Duration::from_secs(10),
        "FINISHED once the process exited",
        || d.state(id) == "FINISHED",
    );
    let c = d.capture(id);
    assert_eq!(
        c["reason"].as_str().unwrap(),
        format!("process {pid} exited"),
        "{c}"
    );
    // Started again, it does not take another process for the one that ended.
    let again = d.pcap(&["start", &id.to_string()]);
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(d.state(id), "FINISHED");
}

#[test]
fn what_is_not_a_usable_namespace_is_refused_with_the_reason() {
    if !require_root() {
        return;
    }
    let veth = VethPair::create(5);
    let d = Daemon::start();
    let cases: [(&[&str], &str); 5] = [
        (&["lo", "--netns", "pcapd-no-such-netns"], "known names"),
        (&["lo", "--netns", "/etc/hostname"], "not a namespace file"),
        (&["lo", "--pid", "4194304"], "no process has pid 4194304"),
        (
            &["lo", "--netns", "999999999999"],
            "no network namespace has inode",
        ),
        (
            &["eth-nowhere", "--netns", veth.netns()],
            "unknown interface",
        ),
    ];
    for (args, want) in cases {
        let out = d.pcap(&[&["init"][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    let err = d.fails(&["init", "lo", "--netns", "a/b"]);
    assert!(err.contains("not an `ip netns` name"), "{err}");
    assert!(d.list().is_empty(), "nothing was created");
}

#[test]
fn a_restarted_daemon_does_not_resume_in_a_namespace_whose_process_is_gone() {
    const PORT: u16 = 24231;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(6);
    let mut d = Daemon::start();
    let mut proc = InNetns::start(veth.netns());
    let pid = proc.pid().to_string();
    let id = captures_inside(&veth, &d, PORT, &["--pid", &pid]);
    assert!(d.stop().success(), "pcapd exits cleanly");
    proc.end();
    d.start_again();
    eventually(
        Duration::from_secs(10),
        "FINISHED after the restart",
        || d.state(id) == "FINISHED",
    );
    let c = d.capture(id);
    assert_eq!(
        c["reason"].as_str().unwrap(),
        format!("process {pid} exited"),
        "{c}"
    );
    assert_eq!(
        d.replay(&[id.to_string()]).seqs_to(PORT).len(),
        200,
        "the spool is kept"
    );
}

#[test]
fn an_inode_target_is_never_followed_into_a_new_namespace_given_the_same_inode() {
    const PORT: u16 = 24241;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(7);
    let path = format!("/run/netns/{}", veth.netns());
    let inode = std::fs::metadata(&path).unwrap().ino();
    let mut d = Daemon::start();
    let id = captures_inside(&veth, &d, PORT, &["--netns", &inode.to_string()]);
    // The same namespace (same cookie) after a restart: resumed.
    assert!(d.restart().success(), "pcapd exits cleanly");
    eventually(Duration::from_secs(10), "ACTIVE after the restart", || {
        d.state(id) == "ACTIVE"
    });
    assert!(d.stop().success(), "pcapd exits cleanly");

    // The namespace goes and a new one is made under the same name: Linux hands out the
    // freed inode number again (usually the very same one).
    veth.delete_netns();
    veth.recreate_netns();
    let again = std::fs::metadata(&path).unwrap().ino();
    d.start_again();
    eventually(
        Duration::from_secs(10),
        "FINISHED after the restart",
        || d.state(id) == "FINISHED",
    );
    let c = d.capture(id);
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("inode {inode}")),
        "the new namespace (inode {again}) was not taken for the old one: {c}"
    );
    veth.send_udp_seq(PORT, 200..300, 64);
    assert_eq!(
        d.replay(&[id.to_string()]).seqs_to(PORT),
        (0..200).collect::<Vec<_>>(),
        "nothing of the new namespace, and the spool kept"
    );
}
