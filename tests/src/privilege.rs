//! Capturing needs root here. Without it a test says so and skips, unless the run demands
//! privileged tests (`PCAPD_REQUIRE_PRIVILEGED=1`, set in CI), where skipping would hide
//! that nothing was tested.

/// Whether this test can capture; prints why not and returns false when it cannot.
/// Panics instead when `PCAPD_REQUIRE_PRIVILEGED=1`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("PCAPD_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!(
            "this test needs root to capture, and PCAPD_REQUIRE_PRIVILEGED=1 forbids skipping it: \
             run the tests as root (sudo -E cargo test) or unset PCAPD_REQUIRE_PRIVILEGED"
        );
    }
    println!("skipping: needs root to capture");
    false
}
