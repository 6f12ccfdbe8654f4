//! `pcap extcap`: Wireshark's extcap protocol (interfaces, link types, options), a capture
//! written as pcapng into a fifo that ends cleanly when the reader goes or on SIGTERM, and
//! real Wireshark: after `pcap extcap install --system`, `tshark -D` lists the test
//! daemon's captures and `tshark -i pcapd-ALIAS -a packets:N` captures what was sent.
//! Captures of a remote reached over mutual TLS are interfaces too.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcapd_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The `{key=value}` fields of one extcap line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{{{key}="))? + key.len() + 2;
    let end = start + line[start..].find('}')?;
    Some(&line[start..end])
}

/// `pcap extcap ARGS`, asserted to succeed: its lines.
fn extcap(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut full = vec!["extcap", "--extcap-version=4.0"];
    full.extend(args);
    d.ok(&full).lines().map(str::to_owned).collect()
}

/// The Enhanced Packet Blocks in a little-endian pcapng prefix (a block cut short ends it).
fn packet_blocks(bytes: &[u8]) -> usize {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (mut at, mut n) = (0, 0);
    while at + 12 <= bytes.len() {
        let len = word(at + 4) as usize;
        if len < 12 || at + len > bytes.len() {
            break;
        }
        n += usize::from(word(at) == 6);
        at += len;
    }
    n
}

/// Copies what is written into `fifo` to `out` until the writer closes it, or, with
/// `close_after`, until that many packets came: the reading end is then closed, as
/// Wireshark does when a capture is stopped.
fn read_fifo(fifo: PathBuf, out: PathBuf, close_after: Option<usize>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut r = File::open(&fifo).expect("open the fifo for reading");
        let mut w = File::create(&out).expect("create the copy of the fifo");
        let (mut all, mut buf) = (Vec::new(), [0u8; 65536]);
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    w.write_all(&buf[..n]).expect("write the copy");
                    all.extend_from_slice(&buf[..n]);
                    if close_after.is_some_and(|c| packet_blocks(&all) >= c) {
                        return;
                    }
                }
            }
        }
    })
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

#[test]
fn the_protocol_lists_captures_link_types_and_options() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let port = free_port();
    let web = d.init(&["lo", &format!("udp port {port}"), "--alias", "ext-web"]);
    let bare = d.init(&["lo", "tcp port 9"]);

    let lines = extcap(&d, &["--extcap-interfaces"]);
    assert!(lines[0].starts_with("extcap {version="), "{lines:?}");
    let interfaces: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            assert!(l.starts_with("interface {value="), "{l}");
            (
                field(l, "value").unwrap().to_owned(),
                field(l, "display").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        interfaces,
        [
            (
                "pcapd-ext-web".to_owned(),
                format!("pcapd: ext-web (lo, udp port {port})")
            ),
            (
                format!("pcapd-{bare}"),
                format!("pcapd: {bare} (lo, tcp port 9)")
            ),
        ]
    );

    // The link type is the capture's, as `pcap list` says it.
    let listed = d.capture(web);
    let link_type = listed["link_type"].as_u64().unwrap();
    let dlts = extcap(
        &d,
        &["--extcap-interface", "pcapd-ext-web", "--extcap-dlts"],
    );
    assert_eq!(dlts.len(), 1, "{dlts:?}");
    assert_eq!(field(&dlts[0], "number"), Some(&*link_type.to_string()));
    assert!(dlts[0].starts_with("dlt "), "{dlts:?}");

    let config = extcap(
        &d,
        &["--extcap-interface", "pcapd-ext-web", "--extcap-config"],
    );
    let calls: Vec<&str> = config.iter().filter_map(|l| field(l, "call")).collect();
    assert_eq!(calls, ["--spooled", "--since", "--filter"]);
    for l in &config {
        assert!(l.starts_with("arg {number="), "{l}");
        assert!(
            field(l, "display").is_some() && field(l, "type").is_some(),
            "{l}"
        );
    }

    // An interface that is no capture is refused with the ones there are.
    let e = d.fails(&[
        "extcap",
        "--extcap-interface",
        "pcapd-nope",
        "--extcap-dlts",
    ]);
    assert!(e.contains("pcapd-ext-web"), "{e}");

    // A daemon that cannot be reached lists nothing, and that is no error for Wireshark.
    let gone = Pcap::at(d.dir().join("no-such.sock"));
    let out = gone.ok(&["extcap", "--extcap-interfaces"]);
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn a_capture_goes_into_the_fifo_and_ends_on_sigterm_or_when_the_reader_goes() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let port = free_port();
    let id = d.init_started(&["lo", &format!("udp port {port}"), "--alias", "fifo"]);
    // Spooled before the capture: only with --spooled do these come first.
    send_udp_seq(port, 0..5, 48);
    d.wait_spooled(id, 5);

    for (spooled, end_by_signal) in [(false, true), (true, false)] {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let copy = dir.path().join("copy.pcapng");
        mkfifo(&fifo);
        let mut args = vec![
            "extcap",
            "--extcap-version=4.0",
            "--capture",
            "--extcap-interface",
            "pcapd-fifo",
            "--fifo",
            fifo.to_str().unwrap(),
            "--extcap-capture-filter",
            "udp",
        ];
        if spooled {
            args.push("--spooled");
        }
        let mut running = d.client().spawn_to_file(&args, &dir.path().join("stdout"));
        let before = if spooled { 5 } else { 0 };
        // Ended by the reader: it closes the fifo as soon as it has the packets.
        let close_after = (!end_by_signal).then_some(before + 10);
        let reader = read_fifo(fifo.clone(), copy.clone(), close_after);
        // The section and interface are written once the stream is open.
        eventually(LIMIT, "the pcapng header in the fifo", || {
            std::fs::metadata(&copy).is_ok_and(|m| m.len() > 0)
        });
        send_udp_seq(port, 100..110, 48);
        eventually(LIMIT, "the packets in the fifo", || {
            packet_blocks(&std::fs::read(&copy).unwrap()) >= before + 10
        });
        if end_by_signal {
            kill(Pid::from_raw(running.pid() as i32), Signal::SIGTERM).unwrap();
        }
        // Closed by the reader, the capture ends without another packet to write.
        let status = running.wait(LIMIT);
        assert!(
            status.success(),
            "pcap extcap --capture ended with {status}: {}",
            running.stderr()
        );
        reader.join().unwrap();

        let bytes = std::fs::read(&copy).unwrap();
        let n = packet_blocks(&bytes);
        let ports = tshark_file(&copy, &["-T", "fields", "-e", "udp.dstport"]);
        assert!(n >= before + 10, "{n} packets in the fifo");
        assert!(ports.iter().all(|p| p == &port.to_string()), "{ports:?}");
        if !spooled {
            assert_eq!(n, 10, "live only: none of the spooled packets");
        }
    }
}

/// The launcher installed for one test, removed at the end whatever happens.
struct Installed<'a> {
    client: &'a Pcap,
    name: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let out = self
            .client
            .run(&["extcap", "uninstall", "--system", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("pcap extcap uninstall {}: {}", self.name, out.stderr);
        }
    }
}

#[test]
fn wireshark_lists_the_captures_and_captures_from_one() {
    if !require_root() {
        return;
    }
    if Command::new("tshark").arg("-v").output().is_err() {
        assert!(
            std::env::var("PCAPD_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "tshark is needed for this test"
        );
        println!("skipping: tshark is not installed");
        return;
    }
    let d = Daemon::start();
    let port = free_port();
    let alias = format!("ws{}", std::process::id());
    d.init_started(&["lo", &format!("udp port {port}"), "--alias", &alias]);
    let name = format!("pcapd-test-{}", std::process::id());
    d.ok(&["extcap", "install", "--system", "--name", &name]);
    let _installed = Installed {
        client: d.client(),
        name: name.clone(),
    };

    let mut list = Command::new("tshark");
    list.arg("-D");
    let out = run_bounded(&mut list, "tshark -D", LIMIT);
    let value = format!("pcapd-{alias}");
    assert!(
        out.stdout_str().lines().any(|l| l.contains(&value)),
        "tshark -D does not list {value}:\n{}\n{}",
        out.stdout_str(),
        out.stderr
    );

    const N: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.pcapng");
    let mut tshark = Command::new("tshark")
        .args(["-i", &value, "-a", &format!("packets:{N}"), "-w"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tshark");
    // tshark says nothing when its extcap is ready: send until it has its packets.
    let deadline = Instant::now() + LIMIT;
    let mut seq = 0;
    let status = loop {
        if let Some(s) = tshark.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = tshark.kill();
            let _ = tshark.wait();
            panic!("tshark -i {value} did not capture {N} packets within {LIMIT:?}");
        }
        send_udp_seq(port, seq..seq + 1, 48);
        seq += 1;
        thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "tshark -i {value}: {status}");
    assert_eq!(capinfos_packets(&file), N as u64);
    let ports = tshark_file(&file, &["-T", "fields", "-e", "udp.dstport"]);
    assert_eq!(ports, vec![port.to_string(); N]);
}

#[test]
fn captures_of_remotes_are_interfaces_too_and_an_unreachable_one_lists_none() {
    if !require_root() {
        return;
    }
    const N: usize = 6;
    let certs = Certs::make();
    let remote_port = free_port();
    let _remote = certs.daemon(remote_port);
    let d = Daemon::start();
    certs.add_client_remote(
        &d,
        "lab",
        &format!("https://localhost:{remote_port}"),
        "alice",
    );
    let down = format!("https://localhost:{}", free_port());
    certs.add_client_remote(&d, "down", &down, "alice");
    let port = free_port();
    d.init(&["lo", "udp port 9", "--alias", "here"]);
    d.init(&["lab:lo", &format!("udp port {port}"), "--alias", "there"]);
    d.ok(&["start", "lab:there"]);

    let lines = extcap(&d, &["--extcap-interfaces"]);
    let values: Vec<&str> = lines[1..]
        .iter()
        .filter_map(|l| field(l, "value"))
        .collect();
    assert_eq!(values, ["pcapd-here", "pcapd-lab-there"], "{lines:?}");
    let shown = lines.iter().find_map(|l| {
        (field(l, "value") == Some("pcapd-lab-there")).then(|| field(l, "display").unwrap())
    });
    assert_eq!(
        shown,
        Some(&*format!("pcapd: lab:there (lo, udp port {port})"))
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let copy = dir.path().join("copy.pcapng");
    mkfifo(&fifo);
    let args = [
        "extcap",
        "--capture",
        "--extcap-interface",
        "pcapd-lab-there",
        "--fifo",
        fifo.to_str().unwrap(),
    ];
    let mut running = d.client().spawn_to_file(&args, &dir.path().join("stdout"));
    let reader = read_fifo(fifo.clone(), copy.clone(), Some(N));
    eventually(LIMIT, "the pcapng header in the fifo", || {
        std::fs::metadata(&copy).is_ok_and(|m| m.len() > 0)
    });
    send_udp_seq(port, 0..N as u64, 48);
    reader.join().unwrap();
    let status = running.wait(LIMIT);
    assert!(status.success(), "{status}: {}", running.stderr());
    let names = tshark_file(&copy, &["-T", "fields", "-e", "frame.interface_name"]);
    assert_eq!(names.len(), N);
    assert!(names.iter().all(|n| n == "lab/there/lo"), "{names:?}");
}
