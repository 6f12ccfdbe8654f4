//! The daemon's own contract: configuration checked before anything binds, SIGHUP reloads
//! it, stop conditions end captures by themselves, and listening needs a running capture.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use pcapd_e2e::*;

#[test]
fn a_bad_config_file_is_refused_with_status_64() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("sokcet = \"/tmp/x.sock\"\n", "unknown field"),
        ("default_max_size = \"lots\"\n", "default_max_size"),
        (
            "free_space_floor_percent = 200.0\n",
            "free_space_floor_percent",
        ),
    ];
    for (toml, expected) in cases {
        let config = dir.path().join("pcapd.toml");
        std::fs::write(&config, toml).unwrap();
        let out = pcapd_once(dir.path(), &[OsStr::new("--config"), config.as_os_str()]);
        assert_eq!(out.status.code(), Some(64), "{toml:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{toml:?} should mention {expected}: {}",
            out.stderr
        );
        assert!(
            !dir.path().join("s.sock").exists(),
            "nothing was bound for {toml:?}"
        );
    }
    let missing = run_bounded(
        Command::new(pcapd_bin()).args(["--config", "/nonexistent/pcapd.toml"]),
        "pcapd with a missing config",
        Duration::from_secs(10),
    );
    assert_eq!(missing.status.code(), Some(64), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("/nonexistent/pcapd.toml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn remote_access_without_usable_tls_files_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    pcapd_tls(&[
        "init",
        "--out",
        tls.to_str().unwrap(),
        "--host",
        "localhost",
    ]);
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let f = |name: &str| tls.join(name).display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let not_pem = not_pem.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--tls-cert".into(),
                f("server.pem"),
                "--tls-key".into(),
                f("server-key.pem"),
            ],
            "--client-ca",
        ),
        (
            vec![
                "--tls-cert".into(),
                missing.clone(),
                "--tls-key".into(),
                f("server-key.pem"),
                "--client-ca".into(),
                f("ca.pem"),
            ],
            "missing.pem",
        ),
        (
            vec![
                "--tls-cert".into(),
                not_pem.clone(),
                "--tls-key".into(),
                f("server-key.pem"),
                "--client-ca".into(),
                f("ca.pem"),
            ],
            "not.pem",
        ),
        (
            vec![
                "--tls-cert".into(),
                f("server.pem"),
                "--tls-key".into(),
                f("ca-key.pem"),
                "--client-ca".into(),
                f("ca.pem"),
            ],
            "do not go together",
        ),
    ];
    for (args, expected) in cases {
        let socket = dir.path().join("s.sock");
        let mut argv = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
        argv.extend(args.iter().cloned());
        let out = pcapd_once(dir.path(), &argv);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{args:?} should mention {expected}: {}",
            out.stderr
        );
        assert!(!socket.exists(), "nothing was bound for {args:?}");
    }
}

#[test]
fn sighup_reloads_the_config_and_keeps_the_old_one_when_the_new_is_bad() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::builder().config("max_captures = 1\n").start();
    let config = d.dir().join("pcapd.toml");
    d.init(&["lo", "udp port 23801"]);
    let err = d.fails(&["init", "lo", "udp port 23802"]);
    assert!(
        err.contains("max_captures"),
        "the limit is enforced and named: {err}"
    );

    std::fs::write(&config, "max_captures = 3\nno_such_key = 1\n").unwrap();
    d.signal(Signal::SIGHUP);
    eventually(DEFAULT_WAIT, "the bad config is reported", || {
        d.log().contains("configuration not reloaded")
    });
    assert!(d.is_running(), "a bad config on reload does not stop pcapd");
    let err = d.fails(&["init", "lo", "udp port 23802"]);
    assert!(
        err.contains("max_captures"),
        "the old limit still holds: {err}"
    );

    std::fs::write(&config, "max_captures = 3\n").unwrap();
    d.signal(Signal::SIGHUP);
    eventually(DEFAULT_WAIT, "the new limit applies", || {
        d.pcap(&["init", "lo", "udp port 23802"]).status.success()
    });
    assert_eq!(d.list().len(), 2);
}

#[test]
fn stop_conditions_finish_a_capture_by_themselves() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let counted = d.init_started(&["lo", "udp port 23803", "--count", "50"]);
    send_udp(23803, 200, 32);
    d.wait_state(counted, "FINISHED");
    let c = d.capture(counted);
    assert_eq!(c["counters"]["spooled_packets"], 50, "{c}");
    assert!(
        c["reason"].as_str().unwrap().contains("50"),
        "reason says why: {c}"
    );
    assert_eq!(d.replay(&[&counted.to_string()]).packets.len(), 50);

    let timed = d.init_started(&["lo", "udp port 23804", "--duration", "1"]);
    d.wait_state(timed, "FINISHED");
    let c = d.capture(timed);
    assert!(c["reason"].as_str().unwrap().contains("duration"), "{c}");

    // A finished capture starts again, here with a new stop condition for the new run.
    d.ok(&["start", &counted.to_string(), "--count", "10"]);
    assert_eq!(d.state(counted), "ACTIVE");
    let err = d.fails(&["start", &counted.to_string(), "--duration", "5m"]);
    assert!(
        err.contains("running"),
        "a running capture keeps its conditions: {err}"
    );
    send_udp(23803, 50, 32);
    d.wait_state(counted, "FINISHED");
    let c = d.capture(counted);
    assert_eq!(c["counters"]["spooled_packets"], 60, "{c}");
    assert!(c["reason"].as_str().unwrap().contains("10"), "{c}");
}

#[test]
fn listening_to_a_capture_that_is_not_running_says_how_to_start_it() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init(&["lo", "udp port 23805", "--alias", "quiet"]);
    let err = d.fails(&["listen", "quiet"]);
    assert!(err.contains("PENDING"), "names the state: {err}");
    assert!(
        err.contains("pcap start quiet"),
        "says how to start it: {err}"
    );
    d.ok(&["start", &id.to_string()]);
    d.ok(&["stop", "quiet"]);
    let err = d.fails(&["listen", "quiet"]);
    assert!(err.contains("PAUSED"), "{err}");
}

#[test]
fn configured_limits_are_enforced_with_a_message_naming_them() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder()
        .config("max_streams = 1\nmax_filter_len = 32\n")
        .start();
    let id = d.init_started(&["lo", "udp port 23806"]);
    let err = d.fails(&[
        "init",
        "lo",
        "udp port 23807 or udp port 23808 or udp port 23809",
    ]);
    assert!(err.contains("max_filter_len"), "{err}");
    let err = d.fails(&[
        "replay",
        &id.to_string(),
        "--filter",
        "udp and not udp port 1 and not udp port 2",
    ]);
    assert!(err.contains("max_filter_len"), "{err}");

    let out = d.dir().join("first.pcap");
    let mut first = d.spawn_to_file(&["listen", &id.to_string()], &out);
    eventually(
        DEFAULT_WAIT,
        "the first stream has begun (savefile header written)",
        || {
            std::fs::metadata(&out)
                .map(|m| m.len() >= 24)
                .unwrap_or(false)
        },
    );
    let second = d.pcap(&["listen", &id.to_string(), "-w", "/dev/null"]);
    assert!(!second.status.success(), "a second stream is refused");
    assert!(second.stderr.contains("max_streams"), "{}", second.stderr);
    assert!(
        first.try_status().is_none(),
        "the first stream is unaffected"
    );
    d.ok(&["stop", &id.to_string()]);
    assert!(first.wait(DEFAULT_WAIT).success());
    // Its permit is back: a new stream is served.
    d.ok(&["start", &id.to_string()]);
    let replay = d.pcap(&["replay", &id.to_string(), "-w", "/dev/null"]);
    assert!(replay.status.success(), "{}", replay.stderr);
}

#[test]
fn pcapd_keeps_only_the_capabilities_capturing_needs_and_private_files() {
    use std::os::unix::fs::PermissionsExt;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", "udp port 23810"]);
    send_udp(23810, 20, 32);
    d.wait_spooled(id, 20);
    // Every thread, capture threads included: CAP_NET_ADMIN (12), CAP_NET_RAW (13),
    // CAP_SYS_PTRACE (19) and CAP_SYS_ADMIN (21) only.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap();
    let mut n = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for set in ["CapEff", "CapPrm", "CapBnd"] {
            let line = status.lines().find(|l| l.starts_with(set)).unwrap();
            assert!(line.ends_with("0000000000283000"), "{line}");
        }
        n += 1;
    }
    assert!(n > 2, "looked at every thread ({n})");
    // Nothing in the data directory is readable by others.
    let mut stack = vec![d.data_dir().to_owned()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{} is mode {:o}", p.display(), mode);
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
        }
    }
    assert!(files >= 2, "the database and a segment were checked");
    let socket_mode = std::fs::metadata(d.socket()).unwrap().permissions().mode();
    assert_eq!(socket_mode & 0o777, 0o660);
}

#[test]
fn capture_buffer_sets_the_kernel_ring_of_each_capture() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder()
        .config("capture_buffer = \"4M\"\n")
        .start();
    let id = d.init_started(&["lo", "udp port 23807"]);
    // libpcap maps the ring into pcapd: a shared mapping of the packet socket.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.pid())).expect("maps");
    let rings: Vec<u64> = maps
        .lines()
        .filter(|l| l.ends_with(']') && l.contains(" rw-s ") && l.contains("socket:["))
        .map(|l| {
            let (from, to) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            u64::from_str_radix(to, 16).unwrap() - u64::from_str_radix(from, 16).unwrap()
        })
        .collect();
    assert_eq!(rings, vec![4 << 20], "one 4 MiB ring mapped:\n{maps}");
    send_udp(23807, 20, 64);
    d.wait_spooled(id, 20);
    assert_eq!(d.replay(&[&id.to_string()]).packets.len(), 20);
}

#[test]
fn a_socket_passed_by_systemd_is_served_and_left_in_place() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::builder().socket_activated().start();
    let version = d.ok(&["version"]);
    assert!(version.contains("pcapd"), "{version}");
    let id = d.init_started(&["lo", "udp port 23808"]);
    send_udp(23808, 15, 64);
    d.wait_spooled(id, 15);
    assert_eq!(d.replay(&[&id.to_string()]).packets.len(), 15);
    assert!(
        d.log().contains("serving the socket passed by systemd"),
        "{}",
        d.log()
    );
    let status = d.stop();
    assert!(status.success(), "SIGTERM ends pcapd with 0: {status}");
    // The socket belongs to systemd (pcapd.socket), which keeps it for the next start.
    assert!(
        d.socket().exists(),
        "pcapd removed a socket it did not make"
    );
}
