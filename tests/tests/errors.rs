//! Every error a user can run into names what was wrong and how to fix it, on stderr, with
//! a non-zero exit status.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pcapd_e2e::*;

#[test]
fn a_bad_filter_is_explained_by_libpcap() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let err = d.fails(&["init", "lo", "udp prot 23501"]);
    assert!(err.contains("syntax error"), "libpcap's own message: {err}");
    assert!(
        err.to_lowercase().contains("filter"),
        "says it is the filter: {err}"
    );
    assert!(d.list().is_empty(), "nothing was created: {:?}", d.list());

    let id = d.init(&["lo", "udp port 23501"]);
    let err = d.fails(&["replay", &id.to_string(), "--filter", "tcp prot 1"]);
    assert!(
        err.contains("syntax error"),
        "replay --filter is checked too: {err}"
    );
}

#[test]
fn an_unknown_interface_is_named_with_the_known_ones() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let err = d.fails(&["init", "nosuch0", "udp port 23502"]);
    assert!(has_word(&err, "nosuch0"), "names the interface: {err}");
    assert!(has_word(&err, "lo"), "lists the known interfaces: {err}");
    assert!(d.list().is_empty(), "nothing was created: {:?}", d.list());
}

#[test]
fn an_unknown_capture_is_named() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    for args in [
        &["start", "4242"][..],
        &["stop", "ghost"],
        &["delete", "4242"],
        &["replay", "ghost"],
        &["listen", "ghost"],
    ] {
        let err = d.fails(args);
        assert_unknown_capture(&err, args[1]);
    }
}

#[test]
fn a_daemon_that_is_not_running_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let err = Pcap::at(&sock).fails(&["list"]);
    assert!(err.contains("not running"), "says so: {err}");
    assert!(
        err.contains(sock.to_str().unwrap()),
        "names the socket: {err}"
    );
    assert!(err.contains("pcapd"), "says how to start it: {err}");

    // --socket wins over PCAP_SOCKET.
    let other = dir.path().join("other.sock");
    let err = Pcap::at(&sock).fails(&["--socket", other.to_str().unwrap(), "list"]);
    assert!(
        err.contains(other.to_str().unwrap()),
        "names the socket given: {err}"
    );
}

#[test]
fn permission_denied_names_the_group_that_grants_access() {
    if !require_root() {
        return;
    }
    if !on_path("setpriv") {
        println!("skipping: setpriv (util-linux) is needed to run pcap as another user");
        return;
    }
    // A group `nobody` is not in, other than `pcap`, so the message cannot be a default.
    let Some(group) = ["adm", "daemon", "sys"]
        .into_iter()
        .find_map(|g| nix::unistd::Group::from_name(g).ok().flatten())
    else {
        println!("skipping: no adm, daemon or sys group to give the socket to");
        return;
    };
    let d = Daemon::builder().socket_group(&group.name).start();
    let stranger = d.client().wrapped(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
    ]);
    let err = stranger.fails(&["list"]);
    assert!(
        err.to_lowercase().contains("permission denied"),
        "says so: {err}"
    );
    assert!(
        has_word(&err, &group.name),
        "names group {}: {err}",
        group.name
    );

    let member_groups = format!("--groups={}", group.gid);
    let member = d.client().wrapped(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        &member_groups,
    ]);
    let listed = member.ok(&["--json", "list"]);
    assert_eq!(listed.trim(), "[]", "a member of {} is let in", group.name);
}

#[test]
fn binary_output_is_refused_on_a_terminal() {
    if !require_root() {
        return;
    }
    if !on_path("script") {
        println!("skipping: script (util-linux) is needed to give pcap a terminal");
        return;
    }
    let d = Daemon::start();
    let id = d.init(&["lo", "udp port 23503"]);
    for sub in ["replay", "listen"] {
        let cmd = format!("'{}' {sub} {id}", pcap_bin().display());
        let mut script = Command::new("script");
        script
            .args(["-qec", &cmd, "/dev/null"])
            .env("PCAP_SOCKET", d.socket())
            .stdin(Stdio::null());
        let out = run_bounded(
            &mut script,
            &format!("pcap {sub} on a terminal"),
            Duration::from_secs(30),
        );
        let text = out.stdout_str().to_lowercase();
        assert!(
            !out.status.success(),
            "pcap {sub} wrote binary to a terminal: {text}"
        );
        assert!(text.contains("terminal"), "pcap {sub} says why: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(prog).is_file()))
}
