//! The binaries under test. Cargo does not hand one package's binaries to another package's
//! tests, so the first test of each test process builds `pcapd` and `pcap` itself, with the
//! profile and target directory of the running test binary. When they are fresh that build
//! is a no-op; when they are stale it makes sure the tests never run old code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the two binaries, built for this test run.
struct Binaries {
    pcapd: PathBuf,
    pcap: PathBuf,
}

/// Path of the `pcapd` binary, built if needed.
pub fn pcapd_bin() -> &'static Path {
    &binaries().pcapd
}

/// Path of the `pcap` binary, built if needed.
pub fn pcap_bin() -> &'static Path {
    &binaries().pcap
}

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Result<Binaries, String>> = OnceLock::new();
    match BINS.get_or_init(build) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Whether cargo sets `name` for the package being built or tested (rather than it being
/// the user's own setting, such as CARGO_HOME or CARGO_TARGET_DIR).
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

/// Runs `cargo build --workspace --all-targets` into the directory this test binary lives in.
fn build() -> Result<Binaries, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    // A test binary is <target-dir>/<profile>/deps/<name>-<hash>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    // Cargo gives this test process the variables of the package under test; build scripts
    // that watch some of them (ring's watches CARGO_PKG_NAME and others) would see them
    // change and rebuild, with everything above them, on every switch between this build
    // and a plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if package_variable(name) {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            // The same selection as scripts/test.sh, so that features unify the same way
            // and this is a no-op there; `-p pcapd -p pcap-cli` would rebuild shared crates
            // with other features, and the next workspace build would rebuild them again.
            "--workspace",
            "--all-targets",
            "--target-dir",
        ])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building pcapd and pcap for the end-to-end tests failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bins = Binaries {
        pcapd: profile_dir.join("pcapd"),
        pcap: profile_dir.join("pcap"),
    };
    for b in [&bins.pcapd, &bins.pcap] {
        if !b.is_file() {
            return Err(format!("cargo built, but {} is missing", b.display()));
        }
    }
    Ok(bins)
}

/// The workspace this crate belongs to.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
