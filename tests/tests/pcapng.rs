//! Wireshark-native output: nanosecond timestamps from capture to file, pcapng with named
//! interfaces, filters, comments and statistics (read back by `capinfos` and `tshark`),
//! and several captures, local and on a second pcapd reached over mutual TLS, merged into
//! one stream in time order. Segments spooled in microseconds by older versions still
//! replay.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use pcapd_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

/// `capinfos FILE` (everything it says), asserting it reads the file without complaint.
fn capinfos(path: &Path) -> String {
    let mut cmd = Command::new("capinfos");
    cmd.arg(path);
    let out = run_bounded(&mut cmd, "capinfos", LIMIT);
    assert!(
        out.status.success(),
        "capinfos {}: {}",
        path.display(),
        out.stderr
    );
    out.stdout_str()
}

/// `tshark -r FILE -T fields -e F...`: each packet's fields.
fn fields(path: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-T", "fields", "-E", "occurrence=f"];
    for n in names {
        args.extend(["-e", n]);
    }
    tshark_file(path, &args)
        .into_iter()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// `frame.time_epoch` as tshark prints it (seconds, a dot, nine digits) in nanoseconds.
fn epoch_ns(s: &str) -> i64 {
    let (sec, frac) = s
        .split_once('.')
        .unwrap_or_else(|| panic!("no fraction in {s:?}"));
    assert_eq!(frac.len(), 9, "nine digits of fraction in {s:?}");
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
}

/// A block's options: code and value.
type Options = Vec<(u16, Vec<u8>)>;

/// The statistics blocks of a little-endian pcapng file: interface number, and the
/// options of each.
fn statistics_blocks(bytes: &[u8]) -> Vec<(u32, Options)> {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let (kind, len) = (word(at), word(at + 4) as usize);
        assert!(
            len >= 12 && at + len <= bytes.len(),
            "block at {at} of {len}"
        );
        if kind == 5 {
            let mut options = Vec::new();
            let mut o = at + 20;
            while o + 4 <= at + len - 4 {
                let code = u16::from_le_bytes([bytes[o], bytes[o + 1]]);
                let olen = u16::from_le_bytes([bytes[o + 2], bytes[o + 3]]) as usize;
                if code == 0 {
                    break;
                }
                options.push((code, bytes[o + 4..o + 4 + olen].to_vec()));
                o += 4 + olen.div_ceil(4) * 4;
            }
            out.push((word(at + 8), options));
        }
        at += len;
    }
    out
}

/// The value of a 64-bit option as pcapng stores it (a counter, or a time whose high
/// 32 bits come first).
fn option_u64(options: &[(u16, Vec<u8>)], code: u16, time: bool) -> Option<u64> {
    let (_, v) = options.iter().find(|(c, _)| *c == code)?;
    let word = |i: usize| u64::from(u32::from_le_bytes(v[i..i + 4].try_into().unwrap()));
    Some(match time {
        true => word(0) << 32 | word(4),
        false => u64::from_le_bytes(v[..8].try_into().unwrap()),
    })
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn file(d: &Daemon, name: &str) -> PathBuf {
    d.dir().join(name)
}

#[test]
fn pcapng_names_interfaces_keeps_nanoseconds_and_says_the_counters() {
    const PORT: u16 = 24511;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(1);
    let d = Daemon::start();
    let filter = format!("udp port {PORT}");
    let web = d.init_started(&["lo", &filter, "--alias", "web"]);
    let both = format!("lo,{}", veth.host());
    let multi = d.init_started(&[both.as_str(), &filter, "--alias", "multi"]);
    send_udp_seq(PORT, 0..50, 64);
    d.wait_spooled(web, 50);
    d.wait_spooled(multi, 50);
    for id in [web, multi] {
        d.ok(&["stop", &id.to_string()]);
        d.wait_state(id, "PAUSED");
    }

    // One interface: named as the capture names it, with its filter and nanoseconds.
    let ng = file(&d, "web.pcapng");
    d.ok(&["replay", "web", "--format", "pcapng", "-w", path_str(&ng)]);
    let info = capinfos(&ng);
    for line in [
        "File type:           Wireshark/... - pcapng",
        "Number of packets:   50",
        "Number of interfaces in file: 1",
        "Name = lo",
        &format!("Filter string = {filter}"),
        "Time precision = nanoseconds (9)",
        "Number of stat entries = 1",
        "Capture application: pcapd ",
        "capture 1 (web)",
    ] {
        assert!(info.contains(line), "capinfos says {line:?}:\n{info}");
    }
    let got = fields(
        &ng,
        &["frame.interface_name", "frame.time_epoch", "udp.payload"],
    );
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|f| f[0] == "lo"), "{got:?}");
    let ng_times: Vec<i64> = got.iter().map(|f| epoch_ns(&f[1])).collect();
    assert!(
        ng_times.iter().any(|t| t % 1000 != 0),
        "nanoseconds below the microsecond are kept: {ng_times:?}"
    );

    // The same packets as the pcap output, whose times are those cut to microseconds;
    // --nano keeps them whole, in the a1b23c4d savefile.
    let pcap = file(&d, "web.pcap");
    d.ok(&["replay", "web", "-w", path_str(&pcap)]);
    let classic = read_pcap(&pcap);
    assert_eq!(
        &std::fs::read(&pcap).unwrap()[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1]
    );
    let us: Vec<i64> = classic.packets.iter().map(|p| p.ts_us).collect();
    let cut: Vec<i64> = ng_times.iter().map(|t| t / 1000).collect();
    assert_eq!(us, cut);
    let pcap_payloads = fields(&pcap, &["udp.payload"]);
    let ng_payloads: Vec<Vec<String>> = got.iter().map(|f| vec![f[2].clone()]).collect();
    assert_eq!(pcap_payloads, ng_payloads);
    let nano = file(&d, "web-nano.pcap");
    d.ok(&["replay", "web", "--nano", "-w", path_str(&nano)]);
    assert_eq!(
        &std::fs::read(&nano).unwrap()[..4],
        &[0x4d, 0x3c, 0xb2, 0xa1]
    );
    let nano_times: Vec<i64> = fields(&nano, &["frame.time_epoch"])
        .iter()
        .map(|f| epoch_ns(&f[0]))
        .collect();
    assert_eq!(nano_times, ng_times);

    // The statistics block carries the capture's counters and the times of its packets.
    let stats = statistics_blocks(&std::fs::read(&ng).unwrap());
    assert_eq!(stats.len(), 1, "{stats:?}");
    let (iface, options) = &stats[0];
    assert_eq!(*iface, 0);
    let c = d.capture(web);
    let received = c["counters"]["received"].as_u64().unwrap();
    let dropped = c["counters"]["dropped_kernel"].as_u64().unwrap()
        + c["counters"]["dropped_interface"].as_u64().unwrap();
    assert_eq!(option_u64(options, 4, false), Some(received), "isb_ifrecv");
    assert_eq!(option_u64(options, 5, false), Some(dropped), "isb_ifdrop");
    assert_eq!(
        option_u64(options, 2, true),
        Some(ng_times[0] as u64),
        "isb_starttime"
    );
    assert_eq!(
        option_u64(options, 3, true),
        Some(*ng_times.last().unwrap() as u64),
        "isb_endtime"
    );

    // Several interfaces (SLL2): a block for each, named from the capture's index map;
    // each packet on the interface it was seen on, with its direction.
    let ng = file(&d, "multi.pcapng");
    d.ok(&["replay", "multi", "--format", "pcapng", "-w", path_str(&ng)]);
    let info = capinfos(&ng);
    assert!(
        info.contains("Number of interfaces in file: 2")
            && info.contains("Name = lo")
            && info.contains(&format!("Name = {}", veth.host())),
        "{info}"
    );
    let got = fields(
        &ng,
        &["frame.interface_name", "frame.packet_flags_direction"],
    );
    assert_eq!(got.len(), 50);
    assert!(
        got.iter().all(|f| f[0] == "lo" && f[1] == "0x00000001"),
        "on lo, inbound: {got:?}"
    );
    let stats = statistics_blocks(&std::fs::read(&ng).unwrap());
    assert_eq!(stats.len(), 2, "one per interface: {stats:?}");
    assert!(
        option_u64(&stats[0].1, 4, false).is_some() && option_u64(&stats[1].1, 4, false).is_none(),
        "the capture's counters are told once: {stats:?}"
    );
}

#[test]
fn a_packet_after_a_gap_says_how_many_were_skipped() {
    const PORT: u16 = 24512;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}"), "--alias", "busy"]);
    // A reader that reads nothing while far more than its queue is captured.
    let mut listen = d.spawn_piped(&["listen", "busy", "--format", "pcapng"]);
    let pipe = listen.stdout();
    // About 14 MB a round, more than the reader's queue in pcapd (8 MiB) and the pipe,
    // the buffers and the queues of pcap together.
    eventually(
        LIMIT,
        "far more than a reader's queue to be captured",
        || {
            send_udp(PORT, 10_000, 1400);
            d.counter(id, "spooled_packets") >= 40_000
        },
    );
    d.ok(&["stop", "busy"]);
    let tshark = thread::spawn(move || {
        tshark_stdin(
            pipe,
            &["-T", "fields", "-e", "frame.comment"],
            "pcap listen --format pcapng",
        )
    });
    let comments = tshark.join().expect("tshark thread");
    assert!(listen.wait(LIMIT).success(), "{}", listen.stderr());
    let told: Vec<&String> = comments
        .iter()
        .filter(|c| c.contains("packets skipped: this reader fell behind"))
        .collect();
    assert!(
        !told.is_empty(),
        "a comment tells the gap ({} packets read)",
        comments.len()
    );
    assert!(
        listen.stderr().contains("packets skipped"),
        "stderr tells it too"
    );

    // A reader that goes away (as `head` does) ends a replay quietly, successfully.
    for args in [
        &["replay", "busy", "--format", "pcapng"][..],
        &["replay", "busy", "busy"],
    ] {
        let mut replay = d.spawn_piped(args);
        let mut pipe = replay.stdout();
        let mut start = [0u8; 4096];
        std::io::Read::read_exact(&mut pipe, &mut start).unwrap();
        assert_eq!(
            &start[..4],
            &0x0a0d_0d0au32.to_le_bytes(),
            "a section header first"
        );
        drop(pipe);
        let status = replay.wait(LIMIT);
        let stderr = replay.stderr();
        assert!(
            status.success() && stderr.is_empty(),
            "{args:?}: {status} {stderr}"
        );
    }
}

#[test]
fn captures_on_two_daemons_merge_in_time_order() {
    const PORTS: [u16; 3] = [24521, 24522, 24523];
    const N: u64 = 40;
    if !require_root() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let mut remote = certs.daemon(port);
    let d = Daemon::start();
    certs.add_client_remote(&d, "lab", &format!("https://localhost:{port}"), "alice");
    let a = d.init_started(&["lo", &format!("udp port {}", PORTS[0]), "--alias", "a"]);
    let b = d.init_started(&["lo", &format!("udp port {}", PORTS[1]), "--alias", "b"]);
    let out = d.ok(&[
        "init",
        "lab:lo",
        &format!("udp port {}", PORTS[2]),
        "--alias",
        "c",
    ]);
    let c: u64 = out.lines().next().unwrap().trim().parse().unwrap();
    d.ok(&["start", "lab:c"]);
    remote.wait_state(c, "ACTIVE");

    // One source that cannot be read stops it all before any output, naming it.
    let x = file(&d, "none.pcapng");
    let err = d.fails(&["replay", "a", "nosuch", "-w", path_str(&x)]);
    assert!(err.contains("nosuch"), "{err}");
    certs.add_client_remote(
        &d,
        "down",
        &format!("https://localhost:{}", free_port()),
        "alice",
    );
    let err = d.fails(&["replay", "a", "down:c", "-w", path_str(&x)]);
    assert!(
        err.contains("down:c") && err.contains("remote down"),
        "{err}"
    );
    assert!(!x.exists(), "nothing written");
    let err = d.fails(&["replay", "a", "b", "--format", "pcap"]);
    assert!(err.contains("--format pcapng"), "{err}");

    // Packets to the three captures, interleaved.
    for seq in 0..N {
        for p in PORTS {
            send_udp_seq(p, seq..seq + 1, 64);
        }
    }
    d.wait_spooled(a, N);
    d.wait_spooled(b, N);
    remote.wait_spooled(c, N);

    let merged = file(&d, "merged.pcapng");
    d.ok(&["replay", "a", "b", "lab:c", "-w", path_str(&merged)]);
    let info = capinfos(&merged);
    assert!(
        info.contains("Number of interfaces in file: 3")
            && info.contains("Strict time order:   True"),
        "{info}"
    );
    let got = fields(
        &merged,
        &[
            "frame.interface_name",
            "frame.time_epoch",
            "udp.dstport",
            "udp.payload",
        ],
    );
    assert_eq!(got.len() as u64, 3 * N);
    let names: BTreeSet<&str> = got.iter().map(|f| f[0].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["a/lo", "b/lo", "lab/c/lo"]));
    let times: Vec<i64> = got.iter().map(|f| epoch_ns(&f[1])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");

    // The same packets as the three replayed apart and merged by mergecap.
    let mut apart = Vec::new();
    for sel in ["a", "b", "lab:c"] {
        let f = file(&d, &format!("{}.pcapng", sel.replace(':', "-")));
        d.ok(&["replay", sel, "--format", "pcapng", "-w", path_str(&f)]);
        apart.push(f);
    }
    let by_mergecap = file(&d, "mergecap.pcapng");
    let mut cmd = Command::new("mergecap");
    cmd.arg("-a").arg("-w").arg(&by_mergecap).args(&apart);
    let out = run_bounded(&mut cmd, "mergecap", LIMIT);
    assert!(out.status.success(), "mergecap: {}", out.stderr);
    let key = |f: &Vec<String>| (epoch_ns(&f[0]), f[1].clone(), f[2].clone());
    let theirs: BTreeSet<_> = fields(
        &by_mergecap,
        &["frame.time_epoch", "udp.dstport", "udp.payload"],
    )
    .iter()
    .map(key)
    .collect();
    let ours: BTreeSet<_> = got.iter().map(|f| key(&f[1..].to_vec())).collect();
    assert_eq!(theirs.len() as u64, 3 * N);
    assert_eq!(ours, theirs);

    // Live: new packets of a local and a remote capture, merged within the window.
    let live = file(&d, "live.pcapng");
    let mut listen = d.spawn_to_file(&["listen", "a", "lab:c", "--count", "20"], &live);
    let mut seq = 1000;
    eventually(LIMIT, "the merged listener gets its 20 packets", || {
        send_udp_seq(PORTS[0], seq..seq + 2, 64);
        send_udp_seq(PORTS[2], seq..seq + 2, 64);
        seq += 2;
        listen.try_status().is_some()
    });
    assert!(listen.wait(LIMIT).success(), "{}", listen.stderr());
    let got = fields(&live, &["frame.interface_name", "udp.dstport"]);
    assert_eq!(got.len(), 20);
    let names: BTreeSet<&str> = got.iter().map(|f| f[0].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["a/lo", "lab/c/lo"]));
    let info = capinfos(&live);
    assert!(info.contains("Number of stat entries = 1"), "{info}");

    // The remote daemon dies mid-stream: said on stderr and on the next packet, and the
    // local capture goes on.
    let cut = file(&d, "cut.pcapng");
    let mut listen = d.spawn_to_file(&["listen", "a", "lab:c", "--count", "30"], &cut);
    eventually(LIMIT, "both captures to reach the listener", || {
        send_udp_seq(PORTS[0], seq..seq + 1, 64);
        send_udp_seq(PORTS[2], seq..seq + 1, 64);
        seq += 1;
        std::fs::metadata(&cut).is_ok_and(|m| m.len() > 2000)
    });
    remote.kill();
    eventually(
        LIMIT,
        "the listener to get its packets from a alone",
        || {
            send_udp_seq(PORTS[0], seq..seq + 2, 64);
            seq += 2;
            listen.try_status().is_some()
        },
    );
    assert!(listen.wait(LIMIT).success(), "{}", listen.stderr());
    let stderr = listen.stderr();
    assert!(
        stderr.contains("lab:c") && stderr.contains("the other captures go on"),
        "{stderr}"
    );
    let got = fields(&cut, &["frame.interface_name", "frame.comment"]);
    assert_eq!(got.len(), 30);
    let noted: Vec<&Vec<String>> = got
        .iter()
        .filter(|f| f[1].starts_with("lab:c ended: "))
        .collect();
    assert_eq!(noted.len(), 1, "one packet tells it: {got:?}");
    assert_eq!(
        noted[0][0], "a/lo",
        "on a packet of the capture that goes on"
    );
}

#[test]
fn segments_spooled_in_microseconds_still_replay() {
    const PORT: u16 = 24531;
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}"), "--alias", "old"]);
    send_udp_seq(PORT, 0..20, 64);
    d.wait_spooled(id, 20);
    d.ok(&["stop", "old"]);
    d.wait_state(id, "PAUSED");
    let before = fields(
        &{
            let f = file(&d, "before.pcap");
            d.ok(&["replay", "old", "--nano", "-w", path_str(&f)]);
            f
        },
        &["frame.time_epoch"],
    );
    d.stop();

    // What an older pcapd left: the same segments, in microseconds (a1b2c3d4).
    let dir = d.spool_dir(id);
    let mut old = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pcap") {
            to_microseconds(&path);
            old += 1;
        }
    }
    assert!(old > 0, "no segment in {}", dir.display());
    d.start_again();
    d.ok(&["start", "old"]);
    d.wait_state(id, "ACTIVE");
    send_udp_seq(PORT, 20..40, 64);
    d.wait_spooled(id, 40);
    d.ok(&["stop", "old"]);
    d.wait_state(id, "PAUSED");

    let nano = file(&d, "after.pcap");
    d.ok(&["replay", "old", "--nano", "-w", path_str(&nano)]);
    let times: Vec<i64> = fields(&nano, &["frame.time_epoch"])
        .iter()
        .map(|f| epoch_ns(&f[0]))
        .collect();
    assert_eq!(times.len(), 40);
    let was: Vec<i64> = before
        .iter()
        .map(|f| epoch_ns(&f[0]) / 1000 * 1000)
        .collect();
    assert_eq!(times[..20], was[..], "old segments read in microseconds");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times[20..].iter().any(|t| t % 1000 != 0),
        "new ones in nanoseconds: {times:?}"
    );
    let classic = read_pcap(&{
        let f = file(&d, "after-us.pcap");
        d.ok(&["replay", "old", "-w", path_str(&f)]);
        f
    });
    let us: Vec<i64> = classic.packets.iter().map(|p| p.ts_us).collect();
    assert_eq!(us, times.iter().map(|t| t / 1000).collect::<Vec<_>>());
    let ng = file(&d, "after.pcapng");
    d.ok(&["replay", "old", "--format", "pcapng", "-w", path_str(&ng)]);
    let ng_times: Vec<i64> = fields(&ng, &["frame.time_epoch"])
        .iter()
        .map(|f| epoch_ns(&f[0]))
        .collect();
    assert_eq!(ng_times, times);
}

/// Rewrites a nanosecond segment as a microsecond one, as pcapd wrote them before.
fn to_microseconds(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], &0xa1b2_3c4du32.to_le_bytes(), "{}", path.display());
    b[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    let mut at = 24;
    while at + 16 <= b.len() {
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let (frac, caplen) = (word(at + 4), word(at + 8) as usize);
        b[at + 4..at + 8].copy_from_slice(&(frac / 1000).to_le_bytes());
        at += 16 + caplen;
    }
    std::fs::write(path, b).unwrap();
}
