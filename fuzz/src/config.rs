//! The daemon's config file (`/etc/pcapd/pcapd.toml`): parsed with unknown keys refused,
//! then merged and validated as at start-up and on SIGHUP.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::path::PathBuf;

use clap::Parser;
use pcapd::config::{Config, FileConfig, Flags};

thread_local! {
    /// One directory per thread for the config file, kept for the life of the process.
    static FILE: RefCell<Option<(tempfile::TempDir, PathBuf)>> = const { RefCell::new(None) };
}

/// Parses the input as a config file; when it parses, loads it through `--config` and
/// checks that what validation lets through is in range.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<FileConfig>(text) else {
        return;
    };
    // Loading opens the TLS files the config names; a fuzzer must not open arbitrary paths
    // (a FIFO would block it), and remote_listen's checks are covered without them.
    if file.tls_cert.is_some() || file.tls_key.is_some() || file.client_ca.is_some() {
        return;
    }
    let path = FILE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (_, path) = cell.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("pcapd.toml");
            (dir, path)
        });
        path.clone()
    });
    std::fs::write(&path, data).expect("write the config");
    let flags = Flags::try_parse_from([
        OsStr::new("pcapd"),
        OsStr::new("--config"),
        path.as_os_str(),
    ])
    .expect("--config FILE parses");
    let Ok(config) = Config::load(&flags) else {
        return;
    };
    assert!(config.max_captures >= 1);
    assert!(config.max_local_connections >= 1);
    assert!((0.0..=90.0).contains(&config.free_space_floor_percent));
    assert!(config.default_max_bytes >= 1);
    assert!(config.remote.is_none(), "remote access without TLS files");
}
