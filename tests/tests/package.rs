//! The Debian package: `bash scripts/package.sh` builds it, `dpkg-deb --contents` lists every
//! file it must hold and lintian finds no error in it. Installed with apt (as root), its
//! files are in place, group pcap exists, the installed pcapd serves the installed pcap with
//! the shipped config, and the extcap link in Wireshark's folder speaks the extcap protocol
//! (`tshark -D` lists the daemon's capture through it). Removed, its files go and the spool
//! directory stays; purged, the config goes too.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcapd_e2e::*;

/// A cold release build of pcapd and pcap (and cargo-deb, the first time) on two busy cores.
const BUILD_LIMIT: Duration = Duration::from_secs(60 * 60);
const APT_LIMIT: Duration = Duration::from_secs(10 * 60);
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Where pcapd keeps its spools unless configured otherwise; the package leaves it alone.
const SPOOL_DIR: &str = "/var/lib/pcapd";
const CONFFILE: &str = "/etc/pcapd/pcapd.toml";

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn multiarch() -> String {
    let out = run_bounded(
        Command::new("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH"),
        "dpkg-architecture",
        RUN_LIMIT,
    );
    assert!(out.status.success(), "dpkg-architecture: {}", out.stderr);
    out.stdout_str().trim().to_owned()
}

/// Every file the package installs, by absolute path.
fn package_files(triplet: &str) -> Vec<String> {
    let mut files: Vec<String> = [
        "/usr/bin/pcapd",
        "/usr/bin/pcap",
        "/usr/lib/systemd/system/pcapd.service",
        "/usr/lib/systemd/system/pcapd.socket",
        "/usr/lib/sysusers.d/pcapd.conf",
        "/usr/lib/tmpfiles.d/pcapd.conf",
        CONFFILE,
        "/usr/share/man/man1/pcap.1.gz",
        "/usr/share/man/man1/pcap-replay.1.gz",
        "/usr/share/man/man1/pcap-extcap.1.gz",
        "/usr/share/man/man8/pcapd.8.gz",
        "/usr/share/bash-completion/completions/pcap",
        "/usr/share/zsh/vendor-completions/_pcap",
        "/usr/share/fish/vendor_completions.d/pcap.fish",
        "/usr/share/doc/pcapd/README.md",
        "/usr/share/doc/pcapd/copyright",
        "/usr/share/doc/pcapd/changelog.Debian.gz",
    ]
    .map(str::to_owned)
    .into();
    files.push(extcap_link(triplet));
    files
}

fn extcap_link(triplet: &str) -> String {
    format!("/usr/lib/{triplet}/wireshark/extcap/pcapd")
}

/// Whether cargo set `name` for this test package (see the harness's build of the binaries):
/// build scripts that watch some of them would rebuild everything above them.
fn package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
        || name.starts_with("CARGO_CFG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// Runs scripts/package.sh; returns the path of the .deb it printed.
fn build_package() -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.arg("scripts/package.sh").current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(package_variable) {
            cmd.env_remove(&name);
        }
    }
    let out = run_bounded(&mut cmd, "bash scripts/package.sh", BUILD_LIMIT);
    assert!(
        out.status.success(),
        "bash scripts/package.sh failed ({}):\n{}",
        out.status,
        out.stderr
    );
    let stdout = out.stdout_str();
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.extension() == Some(OsStr::new("deb")) && deb.is_file(),
        "package.sh should print the path of the .deb last; it printed:\n{stdout}"
    );
    deb
}

/// `dpkg-deb --contents`: each path (without the leading `.`) and, for links, the target.
fn contents(deb: &Path) -> BTreeMap<String, Option<String>> {
    let out = run_bounded(
        Command::new("dpkg-deb").arg("--contents").arg(deb),
        "dpkg-deb --contents",
        RUN_LIMIT,
    );
    assert!(out.status.success(), "dpkg-deb --contents: {}", out.stderr);
    out.stdout_str()
        .lines()
        .filter_map(|l| {
            // drwxr-xr-x root/root 0 2026-12-02 03:00 ./usr/bin/
            let path = l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
            let path = path.strip_prefix('.')?.to_owned();
            Some(match path.split_once(" -> ") {
                Some((p, to)) => (p.to_owned(), Some(to.to_owned())),
                None => (path.trim_end_matches('/').to_owned(), None),
            })
        })
        .collect()
}

fn run(program: &str, args: &[&str]) -> Output {
    run_bounded(Command::new(program).args(args), program, RUN_LIMIT)
}

fn apt_get(args: &[&str]) {
    let out = run_bounded(
        Command::new("apt-get")
            // Wait for another apt or dpkg (a test script installing its packages) to finish.
            .args(["-o", "DPkg::Lock::Timeout=300", "-y"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get",
        APT_LIMIT,
    );
    assert!(
        out.status.success(),
        "apt-get {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        out.stdout_str(),
        out.stderr
    );
}

/// Whether pcapd is installed, or removed with its config files left.
fn dpkg_knows_pcapd() -> bool {
    let out = run("dpkg-query", &["-W", "-f=${Status}", "pcapd"]);
    out.status.success() && !out.stdout_str().contains("not-installed")
}

fn account_exists(database: &str, name: &str) -> bool {
    run("getent", &[database, name]).status.success()
}

/// Undoes what installing the package did to this machine, even when an assertion failed:
/// purges the package, removes the spool marker (and the spool directory if it was made
/// here), and the group and user the package made if they were not there before.
struct Cleanup {
    marker: PathBuf,
    made_spool_dir: bool,
    made_group: bool,
    made_user: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if dpkg_knows_pcapd() {
            let out = run_bounded(
                Command::new("apt-get")
                    .args(["-o", "DPkg::Lock::Timeout=300", "-y", "purge", "pcapd"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                "apt-get purge",
                APT_LIMIT,
            );
            if !out.status.success() {
                eprintln!(
                    "apt-get purge pcapd failed: {}; purge it by hand",
                    out.stderr
                );
            }
        }
        let _ = fs::remove_file(&self.marker);
        if self.made_spool_dir {
            if let Err(e) = fs::remove_dir_all(SPOOL_DIR) {
                eprintln!("cannot remove {SPOOL_DIR}: {e}; remove it by hand");
            }
        }
        for (made, program, name) in [
            (self.made_user, "userdel", "pcapd"),
            (self.made_group, "groupdel", "pcap"),
        ] {
            if made {
                let out = run(program, &[name]);
                if !out.status.success() {
                    eprintln!("{program} {name} failed: {}; remove it by hand", out.stderr);
                }
            }
        }
    }
}

/// The installed pcapd, stopped with SIGTERM when dropped.
struct Pcapd(Child);

impl Drop for Pcapd {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

#[test]
fn package_builds_installs_and_removes_cleanly() {
    let triplet = multiarch();
    let files = package_files(&triplet);
    let deb = build_package();

    // Everything is in the package, the extcap entry a link to pcap, the config a conffile.
    let listed = contents(&deb);
    for f in &files {
        assert!(
            listed.contains_key(f),
            "{} lacks {f}; it has {listed:#?}",
            deb.display()
        );
    }
    let link = extcap_link(&triplet);
    let to = listed[&link].clone().expect("the extcap entry is a link");
    let resolved = Path::new(&link).parent().unwrap().join(&to);
    assert_eq!(
        fs::canonicalize(resolved.parent().unwrap()).ok(),
        fs::canonicalize("/usr/bin").ok(),
        "{link} -> {to} should lead to /usr/bin/pcap"
    );
    assert_eq!(resolved.file_name(), Some(OsStr::new("pcap")));
    let man1 = listed
        .keys()
        .filter(|p| p.starts_with("/usr/share/man/man1/pcap-") && p.ends_with(".1.gz"))
        .count();
    assert!(man1 >= 10, "a manual page per pcap command; found {man1}");
    let conffiles = run("dpkg-deb", &["--info", deb.to_str().unwrap(), "conffiles"]);
    assert_eq!(
        conffiles.stdout_str().trim(),
        CONFFILE,
        "{}",
        conffiles.stderr
    );

    let lintian = run_bounded(
        Command::new("lintian").arg(&deb),
        "lintian",
        Duration::from_secs(300),
    );
    let report = format!("{}{}", lintian.stdout_str(), lintian.stderr);
    println!("lintian {}:\n{report}", deb.display());
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));

    if !nix::unistd::geteuid().is_root() {
        if std::env::var("PCAPD_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
            panic!(
                "installing the package needs root, and PCAPD_REQUIRE_PRIVILEGED=1 forbids \
                 skipping it: run the tests as root or unset PCAPD_REQUIRE_PRIVILEGED"
            );
        }
        println!("skipping the install: needs root");
        return;
    }

    // A run that failed before its cleanup may have left the package installed.
    if dpkg_knows_pcapd() {
        apt_get(&["purge", "pcapd"]);
    }
    let marker = Path::new(SPOOL_DIR).join(format!("kept-by-remove-{}", std::process::id()));
    let cleanup = Cleanup {
        made_spool_dir: !Path::new(SPOOL_DIR).exists(),
        made_group: !account_exists("group", "pcap"),
        made_user: !account_exists("passwd", "pcapd"),
        marker,
    };

    apt_get(&["install", deb.to_str().unwrap()]);
    for f in &files {
        assert!(
            fs::symlink_metadata(f).is_ok(),
            "{f} is not there after installing"
        );
    }
    assert!(
        account_exists("group", "pcap"),
        "no group pcap after installing"
    );
    assert!(
        account_exists("passwd", "pcapd"),
        "no user pcapd after installing"
    );
    let version = run("/usr/bin/pcap", &["--version"]);
    assert!(
        version.status.success() && version.stdout_str().starts_with("pcap "),
        "/usr/bin/pcap --version: {}{}",
        version.stdout_str(),
        version.stderr
    );

    // The installed pcapd with the shipped config as it is, on a socket and data directory
    // of this test (it becomes user pcapd, so they must be reachable for it).
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("pcapd.sock");
    let data = dir.path().join("data");
    let daemon = Pcapd(
        Command::new("/usr/bin/pcapd")
            .args(["--config", CONFFILE, "--socket"])
            .arg(&socket)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/pcapd"),
    );
    let pcap = |args: &[&str]| {
        run_bounded(
            Command::new("/usr/bin/pcap")
                .arg("--socket")
                .arg(&socket)
                .args(args),
            "/usr/bin/pcap",
            RUN_LIMIT,
        )
    };
    eventually_ok(DEFAULT_WAIT, "the installed pcapd to answer", || {
        let out = pcap(&["list"]);
        match out.status.success() {
            true => Ok(()),
            false => Err(out.stderr),
        }
    });
    let init = pcap(&["init", "lo", "udp port 9", "--alias", "deb-test"]);
    assert!(init.status.success(), "pcap init: {}", init.stderr);
    let list = pcap(&["list"]);
    assert!(
        list.stdout_str().contains("deb-test"),
        "{}",
        list.stdout_str()
    );

    // Wireshark runs the extcap entry (a link to /usr/bin/pcap) with --extcap-* arguments.
    let interfaces = run_bounded(
        Command::new(&link)
            .args(["--extcap-interfaces", "--extcap-version=4.0"])
            .env("PCAP_SOCKET", &socket),
        &link,
        RUN_LIMIT,
    );
    let text = interfaces.stdout_str();
    assert!(interfaces.status.success(), "{link}: {}", interfaces.stderr);
    assert!(
        text.starts_with("extcap {version=") && text.contains("interface {value=pcapd-deb-test}"),
        "{link} --extcap-interfaces printed:\n{text}"
    );
    if run("tshark", &["--version"]).status.success() {
        // Wireshark itself finds it (extcaps inherit its environment).
        let d = run_bounded(
            Command::new("tshark").arg("-D").env("PCAP_SOCKET", &socket),
            "tshark -D",
            RUN_LIMIT,
        );
        assert!(
            d.stdout_str().contains("pcapd-deb-test"),
            "tshark -D does not list pcapd-deb-test:\n{}{}",
            d.stdout_str(),
            d.stderr
        );
        // `pcap extcap install` and `uninstall` leave the package's link alone.
        let install = run("/usr/bin/pcap", &["extcap", "install", "--system"]);
        assert!(
            !install.status.success(),
            "install over the package's link succeeded"
        );
        assert!(
            install.stderr.contains("already a link")
                && install.stderr.contains("as the pcapd package installs it"),
            "{}",
            install.stderr
        );
        let uninstall = run("/usr/bin/pcap", &["extcap", "uninstall", "--system"]);
        assert!(
            !uninstall.status.success(),
            "uninstall of the package's link succeeded"
        );
        assert!(
            uninstall.stderr.contains("left as it is")
                && uninstall.stderr.contains("apt remove pcapd"),
            "{}",
            uninstall.stderr
        );
        assert_eq!(fs::read_link(&link).ok(), Some(PathBuf::from(&to)));
    } else {
        println!("note: tshark is not installed, so Wireshark's own listing was not checked");
    }
    drop(daemon);

    // Removing the package takes its files and leaves the spools, the config (until
    // purge) and the group.
    fs::create_dir_all(SPOOL_DIR).unwrap();
    fs::write(&cleanup.marker, b"spooled packets").unwrap();
    apt_get(&["remove", "pcapd"]);
    for f in files.iter().filter(|f| *f != CONFFILE) {
        assert!(
            fs::symlink_metadata(f).is_err(),
            "{f} is still there after removing"
        );
    }
    assert!(
        cleanup.marker.is_file(),
        "removing the package removed the spool"
    );
    assert!(
        Path::new(CONFFILE).is_file(),
        "remove (not purge) keeps the config"
    );
    assert!(
        account_exists("group", "pcap"),
        "removing the package removed group pcap"
    );
    apt_get(&["purge", "pcapd"]);
    assert!(!Path::new(CONFFILE).exists(), "purge leaves {CONFFILE}");
    assert!(
        cleanup.marker.is_file(),
        "purging the package removed the spool"
    );
    drop(cleanup);
}
