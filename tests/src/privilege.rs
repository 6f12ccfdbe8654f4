//! Capturing needs root here. Without it a test says so and skips, unless the run demands
//! privileged tests (`PCAPD_REQUIRE_PRIVILEGED=1`, set in CI), where skipping would hide
//! that nothing was tested. The same goes for the tools the tests cross-check with
//! (tcpdump): missing, a check is skipped with a message, or fails under that setting.

/// Whether this test can capture; prints why not and returns false when it cannot.
/// Panics instead when `PCAPD_REQUIRE_PRIVILEGED=1`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if skipping_forbidden() {
        panic!(
            "this test needs root to capture, and PCAPD_REQUIRE_PRIVILEGED=1 forbids skipping it: \
             run the tests as root (sudo -E cargo test) or unset PCAPD_REQUIRE_PRIVILEGED"
        );
    }
    println!("skipping: needs root to capture");
    false
}

/// Whether the run forbids skipping (`PCAPD_REQUIRE_PRIVILEGED=1`).
pub(crate) fn skipping_forbidden() -> bool {
    std::env::var("PCAPD_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}
