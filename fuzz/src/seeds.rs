//! The seed corpus of each target, written to `corpus/<target>/` by the ignored test
//! `write_seed_corpus`, and read back from there.

use std::path::Path;

use pcap_core::api::v1 as api;
use pcap_core::savefile::{encode_record, FileHeader, RecordHeader, Resolution};
use prost::Message;

/// The seed inputs of `target`, named.
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |v: Vec<Vec<u8>>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .enumerate()
            .map(|(i, b)| (format!("seed-{i:02}"), b))
            .collect()
    };
    match target {
        "parse_inputs" => named(texts(&[
            "web",
            "12",
            "99999999999999999999999",
            "",
            "has space",
            "dns-1.x_y",
            &"a".repeat(65),
            "1.5g",
            "10 MB",
            "2GiB",
            "0",
            "-5",
            "12X",
            "1e999",
            "90",
            "1h30m",
            "5 parsecs",
            "2026-11-22T14:05:00.25Z",
            "2026-13-40T00:00:00Z",
            "1795000000.5",
            "30s",
            "https://lab.example:8443/",
            "https://[::1]:2020",
            "https://[fe80::1]",
            "unix:///run/pcapd/pcapd.sock",
            "http://lab:2020",
            "https://me@lab",
            "ftp://lab",
            "00000000000000000042.pcap.part",
            "00000000000000000007.pcap",
        ])),
        "savefile_records" => named(savefile_seeds()),
        "segment_scan" => named(segment_seeds()),
        "convert_requests" => named(request_seeds()),
        "config_toml" => named(texts(&[
            "socket = \"/run/pcapd/pcapd.sock\"\nsocket_group = \"pcap\"\n\
             data_dir = \"/var/lib/pcapd\"\ndefault_max_size = \"1G\"\n\
             free_space_floor_percent = 5.0\nmax_captures = 1024\n",
            "sokcet = \"/a\"\n",
            "max_captures = 0\n",
            "free_space_floor_percent = 120.0\n",
            "free_space_floor_percent = nan\n",
            "default_max_size = \"lots\"\n",
            "listen = \"0.0.0.0:2020\"\n",
            "listen = \"[::1]\"\n",
            "max_streams = 1\nmax_filter_len = 32\nmax_request_bytes = 4096\n",
            "max_captures = \"many\"\n",
            "max_local_connections = 0\n",
        ])),
        "uds_frames" => named(frame_seeds()),
        "http1" => named(crate::http1::seeds()),
        "decode_packets" => named(crate::decode::seeds()),
        "dns" => named(crate::dns::seeds()),
        "http2" => named(crate::http2_tls::http2_seeds()),
        "tls_hello" => named(crate::http2_tls::tls_seeds()),
        other => panic!("no seeds for unknown target {other}"),
    }
}

fn texts(t: &[&str]) -> Vec<Vec<u8>> {
    t.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// A savefile header and `n` records of 64 bytes, one second apart (nanoseconds, as
/// pcapd spools them).
fn pcap_file(snaplen: u32, n: u8) -> Vec<u8> {
    let mut b = FileHeader {
        link_type: 1,
        snaplen,
        resolution: Resolution::Nano,
    }
    .encode()
    .to_vec();
    for i in 0..n {
        encode_record(
            &mut b,
            Resolution::Nano,
            1_795_000_000_000_000_000 + i64::from(i) * 1_000_000_000,
            64,
            &[i; 64],
        );
    }
    b
}

fn record_header(caplen: u32, origlen: u32) -> Vec<u8> {
    let mut b = Vec::new();
    RecordHeader {
        ts_sec: 1,
        ts_frac: 2,
        caplen,
        origlen,
    }
    .encode_into(&mut b);
    b
}

fn savefile_seeds() -> Vec<Vec<u8>> {
    let with_max = |max: u32, rest: &[u8]| [&max.to_le_bytes()[..], rest].concat();
    let mut partial = pcap_file(262_144, 2);
    partial.extend_from_slice(&[1, 2, 3]);
    let corrupt = [record_header(70_000, 70_000), vec![0; 100]].concat();
    let longer = [record_header(100, 60), vec![0; 100]].concat();
    vec![
        with_max(262_144, &pcap_file(262_144, 3)[24..]),
        with_max(262_144, &partial),
        with_max(65_536, &corrupt),
        with_max(262_144, &longer),
        with_max(0, &[]),
    ]
}

fn segment_seeds() -> Vec<Vec<u8>> {
    let whole = pcap_file(262_144, 3);
    let torn = [&whole[..], &[5u8; 30]].concat();
    let mut corrupt_mid = pcap_file(65_535, 2);
    corrupt_mid.extend(record_header(u32::MAX, u32::MAX));
    corrupt_mid.extend(pcap_file(65_535, 1).split_off(24));
    // Longer than the file's snaplen, which readers tolerate up to libpcap's default.
    let over_snaplen = [&pcap_file(16, 0)[..], &record_header(100, 100), &[7u8; 100]].concat();
    let mut bad_magic = whole.clone();
    bad_magic[0] ^= 0xff;
    vec![
        whole,
        torn,
        corrupt_mid,
        over_snaplen,
        bad_magic,
        pcap_file(262_144, 0),
        vec![0xd4, 0xc3, 0xb2],
    ]
}

fn request_seeds() -> Vec<Vec<u8>> {
    let tagged = |tag: u8, m: &dyn Fn(&mut Vec<u8>)| {
        let mut b = vec![tag];
        m(&mut b);
        b
    };
    let sel = |kind: api::selector::Kind| Some(api::Selector { kind: Some(kind) });
    let init = api::InitRequest {
        target: Some(api::Target {
            interfaces: vec!["lo".into()],
            ..Default::default()
        }),
        filter: " udp port 53 ".into(),
        aliases: vec!["dns".into(), "dns-2".into()],
        snaplen: 1500,
        no_promisc: true,
        stop: Some(api::StopConditions {
            duration_secs: 5,
            packet_count: 0,
        }),
        retention: Some(api::Retention {
            max_bytes: 1 << 20,
            max_age_secs: 60,
        }),
        ..Default::default()
    };
    let bad_init = api::InitRequest {
        aliases: vec!["42".into()],
        snaplen: 4,
        ..Default::default()
    };
    let replay = api::ReplayRequest {
        selector: sel(api::selector::Kind::Alias("web".into())),
        live: true,
        since_unix_ns: Some(10),
        until_unix_ns: Some(5),
        filter: "tcp".into(),
        raw_records: true,
        microseconds: true,
        segment_handoff: true,
    };
    let listen = api::ListenRequest {
        selector: sel(api::selector::Kind::Id(7)),
        count: 3,
        raw_records: false,
    };
    let all = api::SelectRequest {
        selector: sel(api::selector::Kind::All(true)),
        stop: None,
    };
    let alias = api::SelectRequest {
        selector: sel(api::selector::Kind::Alias("007".into())),
        stop: Some(api::StopConditions {
            duration_secs: 0,
            packet_count: 5,
        }),
    };
    let capture = api::Capture {
        id: 3,
        aliases: vec!["web".into()],
        target: Some(api::Target::default()),
        filter: "udp".into(),
        state: api::State::Failed.into(),
        reason: "disk full".into(),
        counters: Some(api::Counters {
            received: 9,
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        tagged(0, &|b| init.encode(b).expect("encode")),
        tagged(0, &|b| bad_init.encode(b).expect("encode")),
        tagged(1, &|b| replay.encode(b).expect("encode")),
        tagged(2, &|b| listen.encode(b).expect("encode")),
        tagged(3, &|b| all.encode(b).expect("encode")),
        tagged(3, &|b| alias.encode(b).expect("encode")),
        tagged(4, &|b| capture.encode(b).expect("encode")),
    ]
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    b.extend([kind, flags]);
    b.extend(stream.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// A literal header field without indexing, new name, no Huffman coding.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

fn frame_seeds() -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // :method POST, :scheme http (static table), then literals.
    let block = [
        &[0x83, 0x86][..],
        &literal(":path", "/pcap.v1.Pcapd/List"),
        &literal(":authority", "/run/pcapd/pcapd.sock"),
        &literal("te", "trailers"),
    ]
    .concat();
    let settings = frame(0x4, 0, 0, &[]);
    let simple = [PREFACE, &settings, &frame(0x1, 0x4 | 0x1, 1, &block)].concat();
    let (a, b) = block.split_at(block.len() / 2);
    let padded = [&[3u8][..], &[0, 0, 0, 1, 16], a, &[0, 0, 0]].concat();
    let split = [
        PREFACE,
        &settings,
        &frame(0x1, 0x8 | 0x20, 3, &padded),
        &frame(0x9, 0x4, 3, b),
        &frame(0x0, 0x1, 3, &[0, 0, 0, 0, 0]),
    ]
    .concat();
    let size_update = [
        PREFACE,
        &frame(0x1, 0x4, 5, &[&[0x3f, 0xe1, 0x1f][..], &block].concat()),
    ]
    .concat();
    let huge = [PREFACE, &[0xff, 0xff, 0xff, 0x1, 0x4, 0, 0, 0, 1][..]].concat();
    // Header blocks at pcapd's limit of 16 KiB (forwarded) and one byte over it, split
    // across HEADERS and CONTINUATION (refused).
    let block_of = |size: usize| {
        let head = [&[0x83, 0x86][..], &literal(":path", "/pcap.v1.Pcapd/List")].concat();
        // A literal without indexing, new name "x", its value's length in 3 bytes.
        let value = size - head.len() - 6;
        let mut b = head;
        b.extend([0x00, 1, b'x', 0x7f]);
        b.extend([
            0x80 | ((value - 127) & 0x7f) as u8,
            ((value - 127) >> 7) as u8,
        ]);
        b.extend(std::iter::repeat_n(b'v', value));
        assert_eq!(b.len(), size);
        b
    };
    // HEADERS (flags as given) and a CONTINUATION that ends the block, split at `at`.
    let split_block = |block: Vec<u8>, at: usize, flags: u8, stream: u32| {
        let (a, b) = block.split_at(at);
        [
            PREFACE,
            &settings,
            &frame(0x1, flags, stream, a),
            &frame(0x9, 0x4, stream, b),
        ]
        .concat()
    };
    let at_limit = split_block(block_of(16 << 10), 10_000, 0, 7);
    let over_limit = split_block(block_of((16 << 10) + 1), 16_384, 0x1, 9);
    vec![
        simple,
        split,
        size_update,
        huge,
        at_limit,
        over_limit,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        PREFACE[..20].to_vec(),
    ]
}

/// Every file in `dir`, sorted by name (none if it does not exist).
pub fn read_dir(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).expect("read a corpus file"))
        .collect()
}

/// Writes named seeds into `dir`.
pub fn write(dir: &Path, seeds: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}
