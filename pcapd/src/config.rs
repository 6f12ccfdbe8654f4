//! Daemon configuration: the TOML file, overridden by command-line flags, validated before
//! anything binds. Unknown keys are an error so that a typo never goes unnoticed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use serde::Deserialize;

use pcap_core::domain::Retention;

use crate::spool::retention::RetentionPolicy;
use crate::{Error, Result};

/// Where the config file is read from when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/pcapd/pcapd.toml";

/// Command-line flags of `pcapd`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pcapd",
    version,
    about = "Packet capture daemon: captures, spools and serves pcap over gRPC"
)]
pub struct Flags {
    /// Config file (TOML). Default /etc/pcapd/pcapd.toml, used only if it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UNIX socket to serve the API on.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Group given access to the socket (default `pcap` when that group exists).
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Directory of the registry database and the spool.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve the API over mutual TLS on this address (e.g. 0.0.0.0:2020; port 2020 if
    /// left out).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Server certificate (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must be signed by.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR:PORT/metrics (off unless
    /// given; e.g. 127.0.0.1:9477).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of `pcapd` that do something else than run the daemon.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Certificates for remote access over mutual TLS.
    #[command(subcommand)]
    Tls(TlsCommand),
}

/// `pcapd tls ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TlsCommand {
    /// Make a CA and a server certificate/key for the given host names and addresses.
    Init {
        /// Directory to write ca.pem, ca-key.pem, server.pem, server-key.pem into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Host name or IP address clients use to reach this pcapd (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
    /// Issue a client certificate/key signed by the CA in DIR.
    Client {
        /// Directory holding the CA made by `pcapd tls init`; NAME.pem and NAME-key.pem go there.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Name of the client, recorded as the owner of the captures it creates.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

/// The config file's contents; every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint, `ADDR:PORT`.
    pub metrics: Option<String>,
    /// Spool bytes kept per capture unless it says otherwise, e.g. "1G".
    pub default_max_size: Option<String>,
    /// Kernel ring buffer of each running capture, e.g. "32M" (tcpdump's -B); unset, rings
    /// follow their captures' traffic within `capture_memory`.
    pub capture_buffer: Option<String>,
    /// Kernel ring memory the running captures share above 1 MiB each, e.g. "96M".
    pub capture_memory: Option<String>,
    /// Running captures on one interface with a kernel socket of their own; the next ones
    /// share one.
    pub shared_ring_after: Option<usize>,
    /// Percentage of the data filesystem that is always left free.
    pub free_space_floor_percent: Option<f64>,
    /// Most captures the registry holds.
    pub max_captures: Option<usize>,
    /// Most Replay and Listen streams served at once.
    pub max_streams: Option<usize>,
    /// Most connections to the UNIX socket open at once.
    pub max_local_connections: Option<usize>,
    /// Longest BPF filter accepted, in bytes.
    pub max_filter_len: Option<usize>,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: Option<usize>,
    /// Group whose members may start, stop and delete every capture (default `pcap-admin`
    /// when that group exists).
    pub admin_group: Option<String>,
    /// Client certificate names that may start, stop and delete every capture.
    pub admin_clients: Option<Vec<String>>,
}

/// The configuration in force, after merging file and flags and validating.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub socket: PathBuf,
    /// `None`: the `pcap` group if it exists, else root's.
    pub socket_group: Option<String>,
    pub data_dir: PathBuf,
    pub default_max_bytes: u64,
    /// Bytes of kernel ring buffer per running capture, when fixed (`capture_buffer`).
    pub capture_buffer_bytes: Option<u32>,
    /// Bytes of kernel ring the running captures share above their floor (`capture_memory`).
    pub capture_memory_bytes: u64,
    /// Running captures on one interface with a kernel socket of their own before the
    /// next ones share one (`shared_ring_after`; 0: all share).
    pub shared_ring_after: usize,
    pub free_space_floor_percent: f64,
    pub max_captures: usize,
    pub max_streams: usize,
    /// Most connections to the UNIX socket open at once; more are refused.
    pub max_local_connections: usize,
    pub max_filter_len: usize,
    pub max_request_bytes: usize,
    /// The remote listener, when remote access is on.
    pub remote: Option<RemoteListen>,
    /// Where Prometheus metrics are served over plain HTTP, when they are.
    pub metrics: Option<SocketAddr>,
    /// The group of admins and its gid, when there is one.
    pub admin_group: Option<(String, u32)>,
    /// Certificate names of admin clients.
    pub admin_clients: Vec<String>,
}

/// Where and with what certificates the API is served over mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteListen {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

const CAPTURE_BUFFER_MIN: u64 = 1 << 20;
const CAPTURE_BUFFER_MAX: u64 = 1 << 30;
const CAPTURE_MEMORY_MAX: u64 = 1 << 40;

/// Default TCP port of the remote listener.
pub const DEFAULT_PORT: u16 = 2020;

impl Config {
    /// Reads the config file (if any) and applies the flags over it.
    pub fn load(flags: &Flags) -> Result<Config> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => FileConfig::default(),
        };
        Config::merge(file, flags)
    }

    fn merge(file: FileConfig, flags: &Flags) -> Result<Config> {
        let remote = remote_listen(
            flags.listen.clone().or(file.listen),
            flags.tls_cert.clone().or(file.tls_cert),
            flags.tls_key.clone().or(file.tls_key),
            flags.client_ca.clone().or(file.client_ca),
        )?;
        let metrics = flags
            .metrics
            .clone()
            .or(file.metrics)
            .map(|m| parse_metrics(&m))
            .transpose()?;
        let default_max_bytes = match &file.default_max_size {
            Some(s) => pcap_core::parse::size(s)
                .map_err(|e| Error::Config(format!("default_max_size: {e}")))?,
            None => 1 << 30,
        };
        let capture_buffer_bytes = match &file.capture_buffer {
            Some(s) => {
                let n = pcap_core::parse::size(s)
                    .map_err(|e| Error::Config(format!("capture_buffer: {e}")))?;
                if !(CAPTURE_BUFFER_MIN..=CAPTURE_BUFFER_MAX).contains(&n) {
                    return Err(Error::Config(format!(
                        "capture_buffer = {s:?} is out of range: use 1M to 1G, or leave it \
                         out so that rings follow their captures' traffic within capture_memory"
                    )));
                }
                Some(n as u32)
            }
            None => None,
        };
        let capture_memory_bytes = match &file.capture_memory {
            Some(s) if s.trim() == "0" => 0,
            Some(s) => {
                let n = pcap_core::parse::size(s)
                    .map_err(|e| Error::Config(format!("capture_memory: {e}")))?;
                if n > CAPTURE_MEMORY_MAX {
                    return Err(Error::Config(format!(
                        "capture_memory = {s:?} is out of range: use 0 (every ring stays at \
                         1M) to 1T (default 96M)"
                    )));
                }
                n
            }
            None => crate::capture::ring::DEFAULT_MEMORY,
        };
        let floor = file.free_space_floor_percent.unwrap_or(5.0);
        if !(0.0..=90.0).contains(&floor) {
            return Err(Error::Config(format!(
                "free_space_floor_percent = {floor} is out of range: use 0 to 90"
            )));
        }
        let limit = |name: &str, v: Option<usize>, default: usize, min: usize| match v {
            Some(n) if n < min => Err(Error::Config(format!(
                "{name} = {n} is too small: use at least {min}"
            ))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let max_captures = limit("max_captures", file.max_captures, 1024, 1)?;
        let max_streams = limit("max_streams", file.max_streams, 256, 1)?;
        let max_local_connections =
            limit("max_local_connections", file.max_local_connections, 256, 1)?;
        let max_filter_len = limit("max_filter_len", file.max_filter_len, 8192, 16)?;
        let max_request_bytes = limit("max_request_bytes", file.max_request_bytes, 1 << 20, 4096)?;
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/pcapd"));
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(Error::Config(format!(
                "data directory {} exists and is not a directory: give --data-dir a directory \
                 (it is created if missing)",
                data_dir.display()
            )));
        }
        let admin_group = admin_group(file.admin_group)?;
        let admin_clients = file.admin_clients.unwrap_or_default();
        if let Some(bad) = admin_clients.iter().find(|n| n.is_empty() || n.len() > 255) {
            return Err(Error::Config(format!(
                "admin_clients: {bad:?} is not a certificate name: give the names of client \
                 certificates, as `pcapd tls client --name NAME` made them"
            )));
        }
        Ok(Config {
            socket: flags
                .socket
                .clone()
                .or(file.socket)
                .unwrap_or_else(|| PathBuf::from(pcap_core::DEFAULT_SOCKET)),
            socket_group: flags.socket_group.clone().or(file.socket_group),
            data_dir,
            default_max_bytes,
            capture_buffer_bytes,
            capture_memory_bytes,
            shared_ring_after: file
                .shared_ring_after
                .unwrap_or(crate::capture::tap::SHARE_AFTER),
            free_space_floor_percent: floor,
            max_captures,
            max_streams,
            max_local_connections,
            max_filter_len,
            max_request_bytes,
            remote,
            metrics,
            admin_group,
            admin_clients,
        })
    }

    /// The filter a capture with the user's `filter` really runs with: without pcapd's
    /// own remote connections. Looks up the host's addresses (blocking).
    pub fn applied_filter(&self, filter: &str) -> String {
        use crate::capture::{device, exclusion};
        let own = self
            .remote
            .as_ref()
            .and_then(|r| exclusion::own_traffic(Some(r.addr), &device::host_addresses()));
        exclusion::applied_filter(filter, own.as_deref())
    }

    /// The retention of a capture that asked for `r`, with the daemon's defaults.
    pub fn retention_for(&self, r: &Retention) -> RetentionPolicy {
        RetentionPolicy {
            max_bytes: r.max_bytes.unwrap_or(self.default_max_bytes),
            // Ages are bounded where requests enter; saturate rather than trust that here.
            max_age_ns: r.max_age_secs.map(|s| {
                i64::try_from(s)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000_000)
            }),
            floor_percent: self.free_space_floor_percent,
        }
    }

    /// The settings of `new` that differ from these and only take effect at a restart
    /// (the sockets bound and the files opened before privileges were dropped).
    pub fn needs_restart(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.socket != new.socket {
            changed.push("socket");
        }
        if self.socket_group != new.socket_group {
            changed.push("socket_group");
        }
        if self.data_dir != new.data_dir {
            changed.push("data_dir");
        }
        if self.metrics != new.metrics {
            changed.push("metrics");
        }
        if self.max_request_bytes != new.max_request_bytes {
            changed.push("max_request_bytes");
        }
        if self.max_local_connections != new.max_local_connections {
            changed.push("max_local_connections");
        }
        changed
    }
}

/// The configuration in force, shared by everything that reads it and replaced as a
/// whole on reload: a reader gets one consistent configuration, never half of two.
#[derive(Debug)]
pub struct Current(std::sync::RwLock<Arc<Config>>);

impl Current {
    pub fn new(config: Config) -> Self {
        Current(std::sync::RwLock::new(Arc::new(config)))
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `config` in force.
    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}

/// Name of the admin group used when the config names none and it exists.
pub const DEFAULT_ADMIN_GROUP: &str = "pcap-admin";

/// The admin group: the one the config names, which must exist, or `pcap-admin` if it
/// exists.
fn admin_group(named: Option<String>) -> Result<Option<(String, u32)>> {
    use nix::unistd::Group;
    match named {
        Some(name) => match Group::from_name(&name) {
            Ok(Some(g)) => Ok(Some((name, g.gid.as_raw()))),
            Ok(None) => Err(Error::Config(format!(
                "admin_group = {name:?}: there is no such group; create it (`groupadd {name}`) \
                 or leave the key out"
            ))),
            Err(e) => Err(Error::Config(format!(
                "admin_group = {name:?}: cannot look the group up: {e}"
            ))),
        },
        None => Ok(Group::from_name(DEFAULT_ADMIN_GROUP)
            .ok()
            .flatten()
            .map(|g| (DEFAULT_ADMIN_GROUP.to_owned(), g.gid.as_raw()))),
    }
}

/// Remote access is off unless a listen address is given, and then needs all three TLS
/// files, each readable: there is no plaintext fallback.
fn remote_listen(
    listen: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<RemoteListen>> {
    let Some(listen) = listen else {
        if cert.is_some() || key.is_some() || client_ca.is_some() {
            return Err(Error::Config(
                "TLS files given without --listen: add --listen ADDR:PORT to serve remotely, \
                 or drop --tls-cert/--tls-key/--client-ca"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let addr = parse_listen(&listen)?;
    let mut missing = Vec::new();
    for (flag, v) in [
        ("--tls-cert", &cert),
        ("--tls-key", &key),
        ("--client-ca", &client_ca),
    ] {
        match v {
            None => missing.push(flag),
            Some(path) => {
                std::fs::File::open(path).map_err(|e| {
                    Error::Config(format!("{flag} {}: cannot read it: {e}", path.display()))
                })?;
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "--listen {listen} needs {}: remote access is mutual TLS only (make the files with \
             `pcapd tls init --out DIR --host NAME`)",
            missing.join(", ")
        )));
    }
    Ok(Some(RemoteListen {
        addr,
        cert: cert.expect("checked"),
        key: key.expect("checked"),
        client_ca: client_ca.expect("checked"),
    }))
}

/// `ADDR:PORT`, `[V6]:PORT`, or an address alone (port 2020).
fn parse_listen(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| {
            Error::Config(format!(
                "--listen {s:?} is not an address: use ADDR:PORT, e.g. 0.0.0.0:2020 or [::]:2020"
            ))
        })
}

/// `ADDR:PORT` or `[V6]:PORT` of the metrics endpoint; the port is required, there is no
/// customary one.
fn parse_metrics(s: &str) -> Result<SocketAddr> {
    s.parse::<SocketAddr>().map_err(|_| {
        Error::Config(format!(
            "--metrics {s:?} is not an address and port: use ADDR:PORT, e.g. 127.0.0.1:9477 \
             or [::1]:9477"
        ))
    })
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The configuration with no file and no flags.
    pub(crate) fn plain() -> Config {
        Config::merge(FileConfig::default(), &flags(&[])).unwrap()
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::parse_from(std::iter::once("pcapd").chain(args.iter().copied()))
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig =
            toml::from_str("socket = \"/a.sock\"\ndata_dir = \"/d\"\ndefault_max_size = \"2M\"")
                .unwrap();
        let c = Config::merge(file, &flags(&["--socket", "/b.sock"])).unwrap();
        assert_eq!(c.socket, PathBuf::from("/b.sock"));
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.default_max_bytes, 2 << 20);
    }

    #[test]
    fn capture_buffer_is_a_size_within_bounds() {
        let with = |v: &str| {
            let file: FileConfig = toml::from_str(&format!("capture_buffer = {v:?}")).unwrap();
            Config::merge(file, &flags(&[]))
        };
        assert_eq!(with("8M").unwrap().capture_buffer_bytes, Some(8 << 20));
        assert!(with("4K").unwrap_err().to_string().contains("out of range"));
        assert!(with("2G").unwrap_err().to_string().contains("out of range"));
        assert!(with("lots")
            .unwrap_err()
            .to_string()
            .contains("capture_buffer"));
        let default = Config::merge(FileConfig::default(), &flags(&[])).unwrap();
        assert_eq!(
            default.capture_buffer_bytes, None,
            "rings follow the traffic"
        );
    }

    #[test]
    fn shared_ring_after_is_a_count_of_captures_from_zero() {
        let with = |v: &str| {
            toml::from_str::<FileConfig>(&format!("shared_ring_after = {v}"))
                .map_err(|e| e.to_string())
                .and_then(|file| Config::merge(file, &flags(&[])).map_err(|e| e.to_string()))
        };
        assert_eq!(plain().shared_ring_after, crate::capture::tap::SHARE_AFTER);
        assert_eq!(with("0").unwrap().shared_ring_after, 0);
        assert_eq!(with("4").unwrap().shared_ring_after, 4);
        let e = with("-1").unwrap_err();
        assert!(e.contains("shared_ring_after"), "{e}");
    }

    #[test]
    fn capture_memory_is_a_size_within_bounds() {
        let with = |v: &str| {
            let file: FileConfig = toml::from_str(&format!("capture_memory = {v:?}")).unwrap();
            Config::merge(file, &flags(&[]))
        };
        assert_eq!(with("256M").unwrap().capture_memory_bytes, 256 << 20);
        assert_eq!(with("0").unwrap().capture_memory_bytes, 0);
        let e = with("2T").unwrap_err().to_string();
        assert!(
            e.contains("capture_memory") && e.contains("out of range"),
            "{e}"
        );
        assert!(with("much")
            .unwrap_err()
            .to_string()
            .contains("capture_memory"));
        assert_eq!(
            plain().capture_memory_bytes,
            crate::capture::ring::DEFAULT_MEMORY
        );
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let path = file.display().to_string();
        let err = Config::merge(FileConfig::default(), &flags(&["--data-dir", &path]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");
        let missing = dir.path().join("new").display().to_string();
        Config::merge(FileConfig::default(), &flags(&["--data-dir", &missing])).unwrap();
    }

    #[test]
    fn remote_access_needs_every_tls_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = |n: &str| {
            let p = dir.path().join(n);
            std::fs::write(&p, "x").unwrap();
            p.display().to_string()
        };
        let (cert, key, ca) = (f("c.pem"), f("k.pem"), f("ca.pem"));
        let ok = flags(&[
            "--listen",
            "127.0.0.1",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &ca,
        ]);
        let remote = Config::merge(FileConfig::default(), &ok)
            .unwrap()
            .remote
            .unwrap();
        assert_eq!(remote.addr, "127.0.0.1:2020".parse().unwrap());
        let v6 = flags(&[
            "--listen",
            "[::1]:3030",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &ca,
        ]);
        assert_eq!(
            Config::merge(FileConfig::default(), &v6)
                .unwrap()
                .remote
                .unwrap()
                .addr
                .port(),
            3030
        );

        let no_ca = flags(&[
            "--listen",
            "0.0.0.0:2020",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ]);
        let err = Config::merge(FileConfig::default(), &no_ca)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--client-ca"), "{err}");
        let unreadable = flags(&[
            "--listen",
            "0.0.0.0:2020",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            &key,
            "--client-ca",
            &ca,
        ]);
        let err = Config::merge(FileConfig::default(), &unreadable)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent.pem"), "{err}");
        let no_listen = flags(&["--tls-cert", &cert]);
        assert!(Config::merge(FileConfig::default(), &no_listen).is_err());
        let bad = flags(&[
            "--listen",
            "example:port",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &ca,
        ]);
        assert!(Config::merge(FileConfig::default(), &bad).is_err());
        assert!(Config::merge(FileConfig::default(), &flags(&[]))
            .unwrap()
            .remote
            .is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = toml::from_str::<FileConfig>("sokcet = \"/a\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let file: FileConfig = toml::from_str("free_space_floor_percent = 120.0").unwrap();
        assert!(Config::merge(file, &flags(&[])).is_err());
        let file: FileConfig = toml::from_str("default_max_size = \"lots\"").unwrap();
        assert!(Config::merge(file, &flags(&[])).is_err());
    }

    #[test]
    fn local_connections_are_capped_at_256_unless_set() {
        let default = Config::merge(FileConfig::default(), &flags(&[])).unwrap();
        assert_eq!(default.max_local_connections, 256);
        let file: FileConfig = toml::from_str("max_local_connections = 4").unwrap();
        let c = Config::merge(file, &flags(&[])).unwrap();
        assert_eq!(c.max_local_connections, 4);
        let file: FileConfig = toml::from_str("max_local_connections = 0").unwrap();
        let err = Config::merge(file, &flags(&[])).unwrap_err().to_string();
        assert!(
            err.contains("max_local_connections = 0 is too small: use at least 1"),
            "{err}"
        );
    }

    #[test]
    fn metrics_are_off_unless_asked_for_and_the_flag_wins() {
        assert_eq!(
            Config::merge(FileConfig::default(), &flags(&[]))
                .unwrap()
                .metrics,
            None
        );
        let file: FileConfig = toml::from_str("metrics = \"127.0.0.1:9100\"").unwrap();
        let c = Config::merge(file.clone(), &flags(&[])).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        let c = Config::merge(file, &flags(&["--metrics", "[::1]:9200"])).unwrap();
        assert_eq!(c.metrics, Some("[::1]:9200".parse().unwrap()));
        for bad in ["9100", "localhost:9100", "127.0.0.1", "127.0.0.1:99999"] {
            let err = Config::merge(FileConfig::default(), &flags(&["--metrics", bad]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--metrics") && err.contains("ADDR:PORT"),
                "{err}"
            );
        }
    }
}
