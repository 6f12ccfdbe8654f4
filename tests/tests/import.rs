//! `pcap import`: pcap and pcapng files (both magics, both byte orders, several interfaces of
//! one link type, standard input, a remote over mutual TLS) become FINISHED captures that
//! replay the same packets with their nanosecond times, decode, and cannot be started; files
//! mixing link types, damaged files and files larger than the retention limit are refused
//! with the reason (and the byte offset), leaving no capture and no spool behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/decode")
        .join(name)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Each packet of a file as tshark reads it: time (ns digits), length on the wire,
/// captured length and an MD5 of its bytes.
fn packets_of(path: &Path) -> Vec<String> {
    tshark_file(
        path,
        &[
            "-o",
            "frame.generate_md5_hash:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.md5_hash",
        ],
    )
}

/// `pcap import ARGS`, returning the new capture's id.
fn import(d: &Daemon, args: &[&str]) -> u64 {
    let mut full = vec!["import"];
    full.extend_from_slice(args);
    let out = d.ok(&full);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pcap import should print the id, printed {out:?}"))
}

/// `pcap replay SEL --nano` written to a file.
fn replay_to(d: &Daemon, sel: &str, name: &str) -> PathBuf {
    let out = d.client().ok_bytes(&["replay", sel, "--nano"]);
    let path = d.dir().join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// No capture listed and no spool directory left.
fn nothing_left(d: &Daemon) {
    assert!(d.list().is_empty(), "no capture is left: {:?}", d.list());
    let dirs: Vec<_> = match std::fs::read_dir(d.data_dir().join("captures")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(dirs.is_empty(), "no spool directory is left: {dirs:?}");
}

/// A little-endian nanosecond pcap of `n` Ethernet frames of `len` bytes, 1.000000007 s
/// apart, starting at 1795000000.123456789.
fn big_pcap(path: &Path, n: u32, len: usize) {
    let mut f = Vec::new();
    f.extend(0xa1b2_3c4du32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend(262_144u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for i in 0..n {
        let ns = 1_795_000_000_123_456_789u64 + u64::from(i) * 1_000_000_007;
        f.extend(((ns / 1_000_000_000) as u32).to_le_bytes());
        f.extend(((ns % 1_000_000_000) as u32).to_le_bytes());
        f.extend((len as u32).to_le_bytes());
        f.extend((len as u32 + 4).to_le_bytes());
        let mut data = vec![0u8; len];
        data[..6].copy_from_slice(&[0xff; 6]);
        data[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        data[14..18].copy_from_slice(&i.to_be_bytes());
        f.extend(data);
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn imported_files_replay_the_same_packets_with_nanoseconds() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let dir = d.dir().to_owned();

    // Microseconds little-endian, and nanoseconds big-endian moved by 7 ns so that the
    // digits below the microsecond are not all zero.
    let nano = dir.join("nano_be.pcap");
    let edited = Command::new("editcap")
        .args(["-t", "0.000000007"])
        .arg(fixture("http_dns_nano_be.pcap"))
        .arg(&nano)
        .status()
        .unwrap();
    assert!(edited.success());
    for (file, alias) in [(fixture("http_dns.pcap"), "micro"), (nano.clone(), "nano")] {
        let id = import(&d, &[path_str(&file), "--alias", alias]);
        let c = d.capture(id);
        assert_eq!(c["state"], "FINISHED", "{c}");
        assert_eq!(
            c["reason"],
            format!("imported from {}", file.display()),
            "{c}"
        );
        assert_eq!(c["imported_from"], file.display().to_string(), "{c}");
        assert!(c["owner"].as_str().unwrap().contains("uid"), "{c}");
        assert_eq!(c["counters"]["spooled_packets"], 16, "{c}");
        let out = replay_to(&d, alias, &format!("{alias}.out.pcap"));
        let (want, got) = (packets_of(&file), packets_of(&out));
        assert_eq!(want.len(), 16);
        assert_eq!(got, want, "{alias}: the replay holds the file's packets");
    }
    assert!(
        packets_of(&replay_to(&d, "nano", "nano2.pcap"))[0].starts_with("1795000000.000100007"),
        "nanoseconds are kept"
    );

    // Decodable like any other capture; never started.
    let decoded = d.ok(&["decode", "micro"]);
    assert!(decoded.contains("GET /a"), "{decoded}");
    let err = d.fails(&["start", "micro"]);
    assert!(
        err.contains("imported from") && err.contains("cannot be started"),
        "{err}"
    );
    d.ok(&["start", "--all"]);
    assert_eq!(d.state(d.list()[0]["id"].as_u64().unwrap()), "FINISHED");
    // An alias of an imported capture is not for init to share.
    let err = d.fails(&["init", "lo", "--alias", "micro"]);
    assert!(
        err.contains("already used by") && err.contains("imported from"),
        "{err}"
    );
    // Nor for another import; the refused one leaves nothing.
    let err = d.fails(&["import", path_str(&nano), "--alias", "micro"]);
    assert!(err.contains("alias \"micro\" is already used"), "{err}");
    assert_eq!(d.list().len(), 2);
    d.ok(&["delete", "micro"]);
    d.ok(&["delete", "nano"]);
    nothing_left(&d);
}

#[test]
fn pcapng_with_two_interfaces_of_one_link_type_and_standard_input() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let two = d.dir().join("two.pcapng");
    // Two Ethernet interfaces: one in microseconds, one in nanoseconds.
    let merged = Command::new("mergecap")
        .args(["-I", "none", "-F", "pcapng", "-w"])
        .arg(&two)
        .arg(fixture("http_dns.pcap"))
        .arg(fixture("http_dns_nano_be.pcap"))
        .status()
        .unwrap();
    assert!(merged.success());
    let interfaces = Command::new("capinfos")
        .arg("-I")
        .arg(&two)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&interfaces.stdout).contains("Number of interfaces in file: 2"),
        "{}",
        String::from_utf8_lossy(&interfaces.stdout)
    );
    let id = import(&d, &[path_str(&two), "--alias", "two"]);
    assert_eq!(d.counter(id, "spooled_packets"), 32);
    assert_eq!(
        packets_of(&replay_to(&d, "two", "two.out.pcap")),
        packets_of(&two)
    );

    let mut cmd = d.client().command(&["import", "-", "--alias", "piped"]);
    cmd.stdin(File::open(fixture("http_dns_nano_be.pcap")).unwrap());
    let out = run_bounded(&mut cmd, "pcap import -", Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let id: u64 = out.stdout_str().trim().parse().unwrap();
    assert_eq!(d.capture(id)["reason"], "imported from standard input");
    // Kept as they are across a restart of the daemon.
    assert!(d.restart().success());
    assert_eq!(d.state(id), "FINISHED");
    assert_eq!(d.list().len(), 2);
    assert_eq!(
        packets_of(&replay_to(&d, "piped", "piped.out.pcap")),
        packets_of(&fixture("http_dns_nano_be.pcap"))
    );
}

#[test]
fn mixed_link_types_and_damaged_files_are_refused_leaving_nothing() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    // HTTP on EN10MB, DNS on RAW.
    let err = d.fails(&["import", path_str(&fixture("http_dns.pcapng"))]);
    assert!(
        err.contains("mixes link types EN10MB (1) and RAW (101)"),
        "{err}"
    );
    nothing_left(&d);

    let err = d.fails(&[
        "import",
        path_str(&fixture("truncated.pcap")),
        "--alias",
        "t",
    ]);
    assert!(
        err.contains("byte offset 1460") && err.contains("cut short"),
        "{err}"
    );
    nothing_left(&d);
    let err = d.fails(&["import", path_str(&fixture("corrupt.pcap"))]);
    assert!(
        err.contains("byte offset 364") && err.contains("length field is damaged"),
        "{err}"
    );
    nothing_left(&d);
    let err = d.fails(&["import", path_str(&fixture("make.py"))]);
    assert!(err.contains("neither a pcap nor a pcapng"), "{err}");

    // Damage after whole batches reached the spool: what was written goes too.
    let big = d.dir().join("big.pcap");
    big_pcap(&big, 2000, 1000);
    let mut bytes = std::fs::read(&big).unwrap();
    bytes.truncate(bytes.len() - 500);
    let cut = d.dir().join("cut.pcap");
    std::fs::write(&cut, &bytes).unwrap();
    let err = d.fails(&["import", path_str(&cut)]);
    let offset = 24 + 1999 * 1016;
    assert!(
        err.contains(&format!("byte offset {offset}")) && err.contains("1999 good packets"),
        "{err}"
    );
    nothing_left(&d);
    assert!(
        d.log().contains("import refused"),
        "the daemon says it refused the import"
    );

    // The whole file is taken.
    let id = import(&d, &[path_str(&big)]);
    assert_eq!(d.counter(id, "spooled_packets"), 2000);
}

#[test]
fn an_import_larger_than_the_retention_limit_is_refused() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder()
        .config("default_max_size = \"1M\"\n")
        .start();
    let big = d.dir().join("big.pcap");
    big_pcap(&big, 1500, 1000);
    let err = d.fails(&["import", path_str(&big), "--alias", "big"]);
    assert!(
        err.contains("does not fit the spool") && err.contains("limit of 1048576 bytes"),
        "{err}"
    );
    nothing_left(&d);

    // Within the limit, over several segments (1M / 8 each).
    let fits = d.dir().join("fits.pcap");
    big_pcap(&fits, 700, 1000);
    let id = import(&d, &[path_str(&fits), "--alias", "fits"]);
    let c = d.capture(id);
    assert!(
        c["counters"]["spool_segments"].as_u64().unwrap() >= 5,
        "{c}"
    );
    assert_eq!(
        packets_of(&replay_to(&d, "fits", "fits.out.pcap")),
        packets_of(&fits)
    );
}

#[test]
fn a_file_is_imported_into_a_remote_over_mutual_tls() {
    if !require_root() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let d = certs.daemon(port);
    certs.add_client_remote(&d, "lab", &format!("https://localhost:{port}"), "alice");
    let file = fixture("http_dns_nano_be.pcap");
    let id = import(&d, &[&format!("lab:{}", file.display()), "--alias", "far"]);
    let c = d.capture(id);
    assert!(c["owner"].as_str().unwrap().contains("alice"), "{c}");
    assert_eq!(c["state"], "FINISHED", "{c}");
    assert_eq!(
        packets_of(&replay_to(&d, "lab:far", "far.out.pcap")),
        packets_of(&file)
    );
    let err = d.fails(&[
        "import",
        &format!("lab:{}", fixture("truncated.pcap").display()),
    ]);
    assert!(err.contains("byte offset 1460"), "{err}");
    assert_eq!(d.list().len(), 1);
}
