//! Docker for the tests: dockerd started when it is not answering, the busybox image, and
//! containers removed when the test ends. Also used for Podman's CLI, which takes the same
//! commands.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{busybox_rootfs_tar, eventually, run, try_run, Started};

/// The image the tests run: static busybox and nothing else.
pub const IMAGE: &str = "pcapd-test-busybox:1";

/// A dockerd that answers; stopped when dropped if this test started it.
pub struct Dockerd {
    started: Option<Started>,
    _dir: tempfile::TempDir,
}

impl Dockerd {
    /// Uses the running dockerd, or starts one (default settings: this machine runs it so)
    /// and waits until `docker info` answers.
    pub fn ensure() -> Dockerd {
        let dir = tempfile::tempdir().unwrap();
        if answers() {
            return Dockerd {
                started: None,
                _dir: dir,
            };
        }
        let log = dir.path().join("dockerd.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("dockerd")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start dockerd: apt-get install docker.io");
        let mut started = Started {
            name: "dockerd",
            child,
            log,
        };
        eventually(Duration::from_secs(60), "dockerd to answer", || {
            if answers() {
                return Ok(());
            }
            if started.exited() {
                panic!("dockerd exited at start:\n{}", started.log_tail());
            }
            Err("`docker info` fails".to_owned())
        });
        // Another dockerd may have come up first; then ours exited and is not ours to stop.
        let started = (!started.exited()).then_some(started);
        Dockerd { started, _dir: dir }
    }

    /// Whether this test started dockerd.
    pub fn started_here(&self) -> bool {
        self.started.is_some()
    }
}

fn answers() -> bool {
    try_run(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"])).is_ok()
}

/// The busybox image under `reference` for the engine CLI `program` (docker or podman),
/// imported from a directory unless the engine has it already.
pub fn busybox_image(program: &str, reference: &str) -> String {
    if try_run(Command::new(program).args(["image", "inspect", reference])).is_err() {
        let dir = tempfile::tempdir().unwrap();
        let tar = busybox_rootfs_tar(dir.path());
        run(Command::new(program).arg("import").arg(&tar).arg(reference));
    }
    reference.to_owned()
}

/// Containers of one engine CLI, removed (`rm -f`) when the test ends, however it ends.
pub struct Containers {
    program: &'static str,
    names: Vec<String>,
}

impl Containers {
    /// Containers made with `program` (docker or podman).
    pub fn new(program: &'static str) -> Self {
        Containers {
            program,
            names: Vec::new(),
        }
    }

    /// `run -d --name NAME --network none [extra] IMAGE sleep 600`; the container's full id.
    pub fn run(&mut self, name: &str, extra: &[&str], image: &str) -> String {
        self.run_on(name, "none", extra, image)
    }

    /// As [`Containers::run`], on the engine's network `network` (`bridge`: an `eth0` with
    /// an address on the engine's own bridge).
    pub fn run_on(&mut self, name: &str, network: &str, extra: &[&str], image: &str) -> String {
        self.names.push(name.to_owned());
        run(Command::new(self.program)
            .args(["run", "-d", "--name", name, "--network", network])
            .args(extra)
            .args([image, "sleep", "600"]))
    }

    /// The engine's own word on a container: `inspect -f FORMAT NAME`.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        run(Command::new(self.program).args(["inspect", "-f", format, name]))
    }

    /// Stops a container at once (sleep as pid 1 ignores SIGTERM).
    pub fn stop(&self, name: &str) {
        run(Command::new(self.program).args(["stop", "-t", "0", name]));
    }

    /// Removes a container now.
    pub fn remove(&mut self, name: &str) {
        run(&mut self.rm(name));
        self.names.retain(|n| n != name);
    }

    /// `rm -f NAME`, killing at once (Podman would otherwise wait 10 s for SIGTERM).
    fn rm(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.program);
        cmd.args(["rm", "-f"]);
        if self.program == "podman" {
            cmd.args(["-t", "0"]);
        }
        cmd.arg(name);
        cmd
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = try_run(&mut self.rm(name)) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}
