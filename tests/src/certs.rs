//! Certificates for remote access, made by `pcapd tls` in a temporary directory, and the
//! `pcap remote add` that points a daemon's `pcap` at them.

use std::path::{Path, PathBuf};

use crate::daemon::{pcapd_tls, Daemon, DaemonBuilder};

/// A CA with a server certificate and client certificates (`tls/`), and a second CA with
/// a client `mallory` that the first CA never signed (`other/`).
#[derive(Debug)]
pub struct Certs {
    _dir: tempfile::TempDir,
    /// ca.pem, server.pem, server-key.pem, NAME.pem and NAME-key.pem of each client.
    pub tls: PathBuf,
    /// Another CA and its client `mallory`.
    pub other: PathBuf,
}

impl Certs {
    /// A server certificate for `localhost` only (so that connecting to 127.0.0.1 is a name
    /// mismatch) and a client `alice`.
    pub fn make() -> Certs {
        Certs::make_for(&["localhost"], &["alice"])
    }

    /// A server certificate for `hosts` (names or addresses) and one client certificate for
    /// each of `clients`.
    pub fn make_for(hosts: &[&str], clients: &[&str]) -> Certs {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = dir.path().join("tls");
        let other = dir.path().join("other");
        let mut init = vec!["init", "--out", path_str(&tls)];
        for h in hosts {
            init.extend(["--host", h]);
        }
        pcapd_tls(&init);
        for c in clients {
            pcapd_tls(&["client", "--out", path_str(&tls), "--name", c]);
        }
        pcapd_tls(&["init", "--out", path_str(&other), "--host", "localhost"]);
        pcapd_tls(&["client", "--out", path_str(&other), "--name", "mallory"]);
        Certs {
            _dir: dir,
            tls,
            other,
        }
    }

    /// A daemon serving mutual TLS on 127.0.0.1:`port` with these certificates.
    pub fn daemon(&self, port: u16) -> Daemon {
        self.builder(port).start()
    }

    /// The options of [`Certs::daemon`], to add more before it starts.
    pub fn builder(&self, port: u16) -> DaemonBuilder {
        Daemon::builder()
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(self.tls.join("server.pem"))
            .arg("--tls-key")
            .arg(self.tls.join("server-key.pem"))
            .arg("--client-ca")
            .arg(self.tls.join("ca.pem"))
    }

    /// The config file lines of a remote listener on `listen` (`ADDR:PORT`) with these
    /// certificates.
    pub fn listen_toml(&self, listen: &str) -> String {
        format!(
            "listen = {listen:?}\ntls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\n",
            path_str(&self.tls.join("server.pem")),
            path_str(&self.tls.join("server-key.pem")),
            path_str(&self.tls.join("ca.pem")),
        )
    }

    /// `pcap remote add NAME URL` trusting the CA of `ca_dir`, as client `client` of
    /// `cert_dir`.
    pub fn add_remote(
        &self,
        d: &Daemon,
        name: &str,
        url: &str,
        ca_dir: &Path,
        cert_dir: &Path,
        client: &str,
    ) {
        d.ok(&[
            "remote",
            "add",
            name,
            url,
            "--ca",
            path_str(&ca_dir.join("ca.pem")),
            "--cert",
            path_str(&cert_dir.join(format!("{client}.pem"))),
            "--key",
            path_str(&cert_dir.join(format!("{client}-key.pem"))),
        ]);
    }

    /// `pcap remote add NAME URL` as `client`, everything from the main CA.
    pub fn add_client_remote(&self, d: &Daemon, name: &str, url: &str, client: &str) {
        self.add_remote(d, name, url, &self.tls, &self.tls, client);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}
