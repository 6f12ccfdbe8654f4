//! Podman for the tests: its Docker-compatible API service started on the default socket when
//! nothing listens there, and stopped at the end if this test started it.

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, Started};

/// The default socket of Podman's API service, which pcapd asks.
pub const SOCKET: &str = "/run/podman/podman.sock";

/// Run options every test container needs here: Podman sets RLIMIT_NOFILE and RLIMIT_NPROC
/// in containers to values above this machine's hard limits by default, which runc may not
/// raise without CAP_SYS_RESOURCE ("error setting rlimit type 7: operation not permitted").
pub const RUN_OPTIONS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// `podman system service` answering on [`SOCKET`]; stopped when dropped if started here.
pub struct PodmanService {
    started: Option<Started>,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    /// Uses the service listening on [`SOCKET`], or starts one there.
    pub fn ensure() -> PodmanService {
        let dir = tempfile::tempdir().unwrap();
        if UnixStream::connect(SOCKET).is_ok() {
            return PodmanService {
                started: None,
                _dir: dir,
            };
        }
        std::fs::create_dir_all(Path::new(SOCKET).parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(SOCKET);
        let log = dir.path().join("podman.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{SOCKET}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start podman: apt-get install podman");
        let mut started = Started {
            name: "podman system service",
            child,
            log,
        };
        eventually(Duration::from_secs(30), "podman's API socket", || {
            if started.exited() {
                panic!("podman system service exited:\n{}", started.log_tail());
            }
            UnixStream::connect(SOCKET)
                .map(drop)
                .map_err(|e| format!("{SOCKET}: {e}"))
        });
        PodmanService {
            started: Some(started),
            _dir: dir,
        }
    }
}
