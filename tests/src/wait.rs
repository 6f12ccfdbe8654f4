//! Waiting for a condition with a bound, instead of sleeping and hoping.

use std::time::{Duration, Instant};

/// How long tests wait for the daemon to catch up with traffic by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(15);

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`eventually`], for conditions that can say what they last saw: polls `check`
/// until it returns `Ok`; on timeout, panics with the last `Err` explanation.
pub fn eventually_ok(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(()) => return,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
