//! containerd for the tests: Debian's containerd started on the default socket when none
//! listens there (its root and state under a temp dir, its CRI plugin off), the busybox image
//! imported with `ctr`, and tasks removed when the test ends.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, run, try_run, Started};

/// The default containerd socket, which pcapd asks first.
pub const SOCKET: &str = "/run/containerd/containerd.sock";

/// A containerd that answers on [`SOCKET`]; stopped when dropped if this test started it.
pub struct Containerd {
    pub socket: PathBuf,
    started: Option<Started>,
    _dir: tempfile::TempDir,
}

impl Containerd {
    /// Uses the containerd on the default socket, or starts one there.
    pub fn ensure() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let socket = PathBuf::from(SOCKET);
        if answers(&socket) {
            return Containerd {
                socket,
                started: None,
                _dir: dir,
            };
        }
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{SOCKET}\"\n",
                root = dir.path().join("root").display(),
                state = dir.path().join("state").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("containerd.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start containerd: apt-get install containerd");
        let mut started = Started {
            name: "containerd",
            child,
            log,
        };
        eventually(Duration::from_secs(30), "containerd to answer", || {
            if answers(&socket) {
                return Ok(());
            }
            if started.exited() {
                panic!("containerd exited at start:\n{}", started.log_tail());
            }
            Err(format!("`ctr version` on {SOCKET} fails"))
        });
        let started = (!started.exited()).then_some(started);
        Containerd {
            socket,
            started,
            _dir: dir,
        }
    }

    /// Whether this test started containerd.
    pub fn started_here(&self) -> bool {
        self.started.is_some()
    }
}

fn answers(socket: &Path) -> bool {
    socket.exists() && try_run(ctr(socket, "default").arg("version")).is_ok()
}

/// `ctr --address SOCKET --namespace NAMESPACE`.
pub fn ctr(socket: &Path, namespace: &str) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(socket)
        .args(["--namespace", namespace]);
    cmd
}

/// Imports an image archive (`docker save` output) into `namespace`; the reference it got.
pub fn import_image(socket: &Path, namespace: &str, archive: &Path, reference: &str) -> String {
    run(ctr(socket, namespace)
        .args(["images", "import"])
        .arg(archive));
    let listed = run(ctr(socket, namespace).args(["images", "ls", "-q"]));
    listed
        .lines()
        .find(|r| r.ends_with(reference))
        .unwrap_or_else(|| panic!("imported {reference}, but ctr lists only: {listed}"))
        .to_owned()
}

/// Tasks made with `ctr run -d`, killed and deleted with their containers when the test ends.
pub struct Tasks {
    socket: PathBuf,
    namespace: String,
    ids: Vec<String>,
}

impl Tasks {
    /// Tasks in `namespace` of the containerd at `socket`.
    pub fn new(socket: &Path, namespace: &str) -> Self {
        Tasks {
            socket: socket.to_owned(),
            namespace: namespace.to_owned(),
            ids: Vec::new(),
        }
    }

    /// `ctr run -d IMAGE ID sleep 600`: a container with its own network namespace.
    pub fn run(&mut self, image: &str, id: &str) {
        self.ids.push(id.to_owned());
        run(ctr(&self.socket, &self.namespace).args(["run", "-d", image, id, "sleep", "600"]));
    }

    /// The pid of a task's init process, as ctr reports it.
    pub fn pid(&self, id: &str) -> u32 {
        let listed = run(ctr(&self.socket, &self.namespace).args(["tasks", "ls"]));
        listed
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f[1].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("ctr tasks ls has no {id}: {listed}"))
    }

    /// Kills a task (the container stays, without a task).
    pub fn kill(&self, id: &str) {
        run(ctr(&self.socket, &self.namespace).args(["tasks", "kill", "-s", "KILL", id]));
        eventually(Duration::from_secs(10), "the task to stop", || {
            let listed = run(ctr(&self.socket, &self.namespace).args(["tasks", "ls"]));
            match listed
                .lines()
                .any(|l| l.starts_with(id) && l.contains("RUNNING"))
            {
                true => Err(listed),
                false => Ok(()),
            }
        });
        run(ctr(&self.socket, &self.namespace).args(["tasks", "delete", id]));
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for id in &self.ids {
            let c = |args: &[&str]| try_run(ctr(&self.socket, &self.namespace).args(args));
            let _ = c(&["tasks", "delete", "--force", id]);
            if let Err(e) = c(&["containers", "delete", id]) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}
