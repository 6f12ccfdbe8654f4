//! What `pcap` does for people around the captures: its version, shell completions, the
//! manual page (and the set-up script that installs both), JSON from every listing command,
//! and the progress line of `replay -w FILE`, shown on a terminal and nowhere else.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

/// `pcap` with no daemon behind it: for what needs none.
fn offline() -> Pcap {
    Pcap::at("/nonexistent/pcapd.sock")
}

fn bash(script: &str) -> Output {
    run_bounded(Command::new("bash").args(["-c", script]), "bash", LIMIT)
}

#[test]
fn version_completions_and_manual_pages() {
    let pcap = offline();
    assert_eq!(
        pcap.ok(&["--version"]),
        format!("pcap {}\n", env!("CARGO_PKG_VERSION"))
    );

    // bash completes commands and their options from the generated script.
    let script = pcap.ok(&["completions", "bash"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &script).unwrap();
    let complete = |words: &str| {
        let out = bash(&format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _pcap pcap; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.path().display()
        ));
        assert!(out.status.success(), "bash completion: {}", out.stderr);
        out.stdout_str()
    };
    let commands = complete("pcap re");
    assert!(
        commands.lines().any(|w| w == "replay") && commands.lines().any(|w| w == "remote"),
        "completions of `pcap re`: {commands}"
    );
    let options = complete("pcap replay --l");
    assert!(
        options.lines().any(|w| w == "--live"),
        "completions of `pcap replay --l`: {options}"
    );
    assert!(pcap
        .ok(&["completions", "zsh"])
        .starts_with("#compdef pcap"));
    assert!(pcap
        .ok(&["completions", "fish"])
        .contains("complete -c pcap"));
    assert!(pcap.fails(&["completions", "tcsh"]).contains("tcsh"));

    // The page renders with man, and names the commands.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("pcap.1");
    std::fs::write(&page, pcap.ok(&["man"])).unwrap();
    let shown = man(&["-l".as_ref(), page.as_os_str()]);
    for word in ["SYNOPSIS", "--socket", "replay", "pcap-replay(1)"] {
        assert!(shown.contains(word), "man pcap shows {word:?}:\n{shown}");
    }

    // The set-up script installs the pages and the completions where man and bash find
    // them (under PREFIX here, /usr/local by default).
    let prefix = dir.path().join("usr-local");
    let install = run_bounded(
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-docs.sh"))
            .arg(pcap_bin())
            .env("PREFIX", &prefix),
        "scripts/install-docs.sh",
        LIMIT,
    );
    assert!(install.status.success(), "{}", install.stderr);
    assert_eq!(
        std::fs::read_to_string(prefix.join("share/bash-completion/completions/pcap")).unwrap(),
        script
    );
    let man_dir = prefix.join("share/man");
    let replay = man(&["-M".as_ref(), man_dir.as_os_str(), "pcap-replay".as_ref()]);
    assert!(
        replay.contains("--live") && replay.contains("--since"),
        "man pcap-replay:\n{replay}"
    );
    assert!(man(&["-M".as_ref(), man_dir.as_os_str(), "pcap".as_ref()]).contains("SYNOPSIS"));
}

/// `man ARGS` as plain text.
fn man(args: &[&std::ffi::OsStr]) -> String {
    let out = run_bounded(
        Command::new("man")
            .args(args)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
        "man",
        LIMIT,
    );
    assert!(
        out.status.success(),
        "man {args:?} (Debian: apt-get install man-db): {}",
        out.stderr
    );
    out.stdout_str()
}

#[test]
fn listing_commands_speak_json() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.init(&["lo", "udp port 24501", "--alias", "js"]);
    let parse = |args: &[&str]| -> serde_json::Value {
        let out = d.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("pcap {args:?}: {e}:\n{out}"))
    };
    assert_eq!(parse(&["--json", "list"])[0]["aliases"][0], "js");
    let ifaces = parse(&["ifaces", "--json"]);
    assert!(
        ifaces
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo" && i["loopback"] == true),
        "{ifaces}"
    );
    let v = parse(&["--json", "version"]);
    assert_eq!(v["client"]["name"], "pcap");
    assert_eq!(v["daemon"]["name"], "pcapd");
    assert_eq!(parse(&["--json", "remote", "list"]), serde_json::json!([]));
    let sock = format!("unix://{}", d.socket().display());
    d.ok(&["remote", "add", "here", &sock]);
    assert_eq!(
        parse(&["--json", "remote", "list"])[0]["url"],
        serde_json::json!(sock)
    );
    // The same in tables for people, aligned under their headers.
    let table = d.ok(&["list"]);
    let header = table.lines().next().unwrap();
    let row = table.lines().nth(1).unwrap();
    let state_at = header.find("STATE").unwrap();
    assert_eq!(
        &row[state_at..state_at + "PENDING".len()],
        "PENDING",
        "{table}"
    );
    let spool_end = header.find("SPOOL").unwrap() + "SPOOL".len();
    assert_eq!(row.len(), spool_end, "sizes end under SPOOL:\n{table}");
    assert!(row.ends_with("0 B"), "{table}");
}

#[test]
fn replay_to_a_file_shows_progress_only_on_a_terminal() {
    const PORT: u16 = 24502;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp(PORT, 500, 100);
    d.wait_spooled(id, 500);
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let spooled = d.counter(id, "spooled_packets");

    // Under script(1), stderr is a terminal.
    let file = d.dir().join("tty.pcap");
    let command = format!("{} replay {id} -w {}", pcap_bin().display(), file.display());
    let out = run_bounded(
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("PCAP_SOCKET", d.socket()),
        "pcap replay -w under script",
        LIMIT,
    );
    let shown = out.stdout_str();
    assert!(out.status.success(), "{shown}{}", out.stderr);
    let last = shown
        .rsplit('\r')
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.starts_with("pcap: wrote ")
            && last.contains(&format!(", {spooled} packets to {} in ", file.display()))
            && last.trim_end().ends_with("/s)"),
        "a final progress line on the terminal: {shown:?}"
    );
    assert_eq!(read_pcap(&file).packets.len() as u64, spooled);

    // Without a terminal, nothing but the file.
    let quiet = d.dir().join("quiet.pcap");
    let out = d
        .client()
        .ok_bytes(&["replay", &id.to_string(), "-w", quiet.to_str().unwrap()]);
    assert_eq!(out.stderr, "", "no progress without a terminal");
    assert_eq!(
        std::fs::read(&quiet).unwrap(),
        std::fs::read(&file).unwrap()
    );
}
