//! Every value out of range is refused where it enters, with the limit in the message:
//! by `pcap` before it connects (exit status 2, the daemon never asked), and by pcapd
//! itself when a client skips the CLI (INVALID_ARGUMENT), with no panic, the daemon serving
//! and an ACTIVE capture still capturing. The limits are those of `pcap_core::limits`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;
use serde_json::Value;

const A65: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HUGE: &str = "10000000000000000000";
const TEN_YEARS: &str = "use 1 s to 315360000 s (10 years)";
const PACKETS: &str = "use 1 to 1000000000000 packets";
const SNAPLEN: &str = "use 16 to 262144 bytes";
const FILTER: &str = "at most 65536 bytes";
const ID_ZERO: &str = "ids start at 1";

/// Command lines `pcap` must refuse on its own, and a piece of what it must say.
#[rustfmt::skip]
const CLI_CASES: &[(&[&str], &str)] = &[
    (&["init", "lo", "udp port 40999", "--duration", HUGE], TEN_YEARS),
    (&["init", "lo", "udp", "--duration", "11y"], TEN_YEARS),
    (&["init", "lo", "udp", "--max-age", "300y"], TEN_YEARS),
    (&["init", "lo", "udp", "--count", "1000000000001"], PACKETS),
    (&["init", "lo", "udp", "--max-size", "2P"], "use 1 to 1125899906842624 bytes (1 PiB)"),
    (&["init", "lo", "udp", "--snaplen", "15"], SNAPLEN),
    (&["init", "lo", "udp", "--snaplen", "262145"], SNAPLEN),
    (&["init", "a234567890123456", "udp"], "give 1 to 15 bytes"),
    (&["init", "../../etc", "udp"], "give 1 to 15 bytes without '/'"),
    (&["init", "lo", "udp", "--alias", A65], "use 1 to 64 letters"),
    (&["start", "0"], ID_ZERO),
    (&["stop", "0"], ID_ZERO),
    (&["delete", "0"], ID_ZERO),
    (&["replay", "0"], ID_ZERO),
    (&["listen", "0"], ID_ZERO),
    (&["start", "web", "--duration", HUGE], TEN_YEARS),
    (&["start", "web", "--count", "1000000000001"], PACKETS),
    (&["listen", "web", "--count", "1000000000001"], PACKETS),
    (&["replay", "web", "--since", "100y"], "before 1970"),
    (&["replay", "web", "--until", "100y"], "before 1970"),
    (&["replay", "web", "--since", "2026-11-22T14:05:00Z", "--until", "2026-11-22T14:00:00Z"],
        "--since is later than --until"),
];

/// Requests sent straight to the API by `tests/python/bounds_check.py` (by case name), and
/// a piece of the INVALID_ARGUMENT message each must get.
#[rustfmt::skip]
const API_CASES: &[(&str, &str)] = &[
    ("init duration 1e19", "--duration 10000000000000000000 s is out of range: use 1 s to 315360000 s (10 years)"),
    ("init count 1e12+1", PACKETS),
    ("init max_bytes 1 PiB+1", "use 1 to 1125899906842624 bytes (1 PiB)"),
    ("init max_age 300 years", "--max-age 9467280000 s is out of range: use 1 s to 315360000 s"),
    ("init snaplen 15", SNAPLEN),
    ("init snaplen 262145", SNAPLEN),
    ("init interface of 16 bytes", "give 1 to 15 bytes"),
    ("init interface ../../etc", "it contains '/'"),
    ("init interface with a space", "it contains whitespace"),
    ("init alias of 65 chars", "use 1 to 64 letters"),
    ("init 33 aliases", "a capture has at most 32"),
    ("init filter of 65537 bytes", FILTER),
    ("init of 1.1 MB", "more than the 1048576 bytes pcapd accepts (max_request_bytes"),
    ("start id 0", ID_ZERO),
    ("stop id 0", ID_ZERO),
    ("delete id 0", ID_ZERO),
    ("start duration 1e19", TEN_YEARS),
    ("start count 1e12+1", PACKETS),
    ("replay id 0", ID_ZERO),
    ("replay since -1", "--since -1 ns is before 1970"),
    ("replay until before 1970", "--until"),
    ("replay since after until", "--since is later than --until"),
    ("replay filter of 65537 bytes", FILTER),
    ("listen count 1e12+1", PACKETS),
];

#[test]
fn the_cli_refuses_out_of_range_values_before_connecting() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // No daemon listens here: a refusal that tried to connect would say "not running".
    let pcap = Pcap::at(dir.path().join("absent.sock"));
    let mut many_aliases = vec!["init".to_owned(), "lo".into(), "udp".into()];
    for i in 0..33 {
        many_aliases.extend(["--alias".to_owned(), format!("a{i}")]);
    }
    let long_filter = "x".repeat(65_537);
    let built: Vec<(Vec<String>, &str)> = vec![
        (
            many_aliases,
            "33 aliases given (--alias): a capture has at most 32",
        ),
        (
            vec!["init".into(), "lo".into(), long_filter.clone()],
            FILTER,
        ),
        (
            vec![
                "replay".into(),
                "web".into(),
                "--filter".into(),
                long_filter,
            ],
            FILTER,
        ),
    ];
    let cases = CLI_CASES
        .iter()
        .map(|(args, want)| (args.iter().map(|a| a.to_string()).collect(), *want))
        .chain(built);
    let mut problems = Vec::new();
    let mut tried = 0;
    for (args, want) in cases {
        tried += 1;
        let out = pcap.run(&args);
        let shown = shown(&args);
        if out.status.code() != Some(2) {
            problems.push(format!("{shown}: {}, expected exit status 2", out.status));
        }
        if !out.stderr.contains(want) {
            problems.push(format!("{shown}: stderr lacks {want:?}: {}", out.stderr));
        }
        if out.stderr.contains("not running") || out.stderr.contains("panicked") {
            problems.push(format!("{shown}: {}", out.stderr));
        }
    }
    assert!(tried >= 24, "only {tried} command lines tried");
    assert!(problems.is_empty(), "mishandled:\n{}", problems.join("\n"));
    // The same socket does make `pcap` try to connect when nothing is out of range.
    let err = pcap.fails(&["init", "lo", "udp", "--duration", "315360000"]);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn the_api_refuses_out_of_range_requests_and_the_daemon_keeps_capturing() {
    if !require_root() {
        return;
    }
    let python = python_venv();
    let mut d = Daemon::start();
    let port = free_port();
    let filter = format!("udp port {port}");
    let id = d.init_started(&["lo", &filter, "--alias", "steady"]);
    send_udp(port, 5, 64);
    d.wait_spooled(id, 5);

    let gen = d.dir().join("py");
    std::fs::create_dir_all(&gen).expect("directory for the Python client");
    generate_python_client(&python, &gen);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/bounds_check.py");
    let out = run_bounded(
        Command::new(&python)
            .arg(&script)
            .arg(d.socket())
            .arg("steady")
            .env("PYTHONPATH", &gen),
        "tests/python/bounds_check.py",
        Duration::from_secs(90),
    );
    let text = out.stdout_str();
    assert!(
        out.status.success(),
        "bounds_check.py failed: {}\n{text}",
        out.stderr
    );
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let mut problems = Vec::new();
    for (case, want) in API_CASES {
        let Some(a) = answers.iter().find(|a| a["case"] == *case) else {
            problems.push(format!("{case}: no answer in\n{text}"));
            continue;
        };
        let message = a["message"].as_str().unwrap_or("");
        if a["code"] != "INVALID_ARGUMENT" || !message.contains(want) {
            problems.push(format!(
                "{case}: {} {message:?}, expected INVALID_ARGUMENT with {want:?}",
                a["code"]
            ));
        }
        eprintln!("{case:<30} {} {message}", a["code"]);
    }
    assert_eq!(
        answers.len(),
        API_CASES.len(),
        "cases and answers differ:\n{text}"
    );
    assert!(problems.is_empty(), "mishandled:\n{}", problems.join("\n"));

    // Nothing panicked, the daemon answers, no refused init made a capture, and the
    // capture that was ACTIVE still captures.
    let log = d.log();
    assert!(!log.contains("panicked"), "pcapd panicked:\n{log}");
    assert!(d.is_running(), "pcapd died; log:\n{log}");
    d.ok(&["list"]);
    let ids: Vec<u64> = d.list().iter().filter_map(|c| c["id"].as_u64()).collect();
    assert_eq!(ids, vec![id], "a refused request created a capture");
    assert_eq!(d.state(id), "ACTIVE");
    send_udp(port, 5, 64);
    d.wait_spooled(id, 10);
}

/// A command line as it would be typed, long arguments shortened.
fn shown(args: &[String]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| match a.len() {
            n if n > 40 => format!("<{n} bytes>"),
            _ => a.clone(),
        })
        .collect();
    format!("pcap {}", words.join(" "))
}
