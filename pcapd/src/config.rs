//! Daemon configuration: the TOML file, overridden by command-line flags, validated before
//! anything binds. Unknown keys are an error so that a typo never goes unnoticed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

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
    /// Serve the API over mutual TLS on this address (e.g. 0.0.0.0:2020).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Server certificate (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must be signed by.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
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
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// Spool bytes kept per capture unless it says otherwise, e.g. "1G".
    pub default_max_size: Option<String>,
    /// Percentage of the data filesystem that is always left free.
    pub free_space_floor_percent: Option<f64>,
    /// Most captures the registry holds.
    pub max_captures: Option<usize>,
}

/// The configuration in force, after merging file and flags and validating.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub socket: PathBuf,
    /// `None`: the `pcap` group if it exists, else root's.
    pub socket_group: Option<String>,
    pub data_dir: PathBuf,
    pub default_max_bytes: u64,
    pub free_space_floor_percent: f64,
    pub max_captures: usize,
}

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
        let listen = flags.listen.or(file.listen);
        let tls = flags.tls_cert.is_some() || flags.tls_key.is_some() || flags.client_ca.is_some();
        if listen.is_some() || tls || file.tls_cert.is_some() {
            return Err(Error::Config(
                "remote access over TLS (--listen, --tls-cert, --tls-key, --client-ca) is not \
                 available in this version yet; use the local UNIX socket"
                    .into(),
            ));
        }
        let default_max_bytes = match &file.default_max_size {
            Some(s) => pcap_core::parse::size(s)
                .map_err(|e| Error::Config(format!("default_max_size: {e}")))?,
            None => 1 << 30,
        };
        let floor = file.free_space_floor_percent.unwrap_or(5.0);
        if !(0.0..=90.0).contains(&floor) {
            return Err(Error::Config(format!(
                "free_space_floor_percent = {floor} is out of range: use 0 to 90"
            )));
        }
        let max_captures = file.max_captures.unwrap_or(1024);
        if max_captures == 0 {
            return Err(Error::Config("max_captures must be at least 1".into()));
        }
        Ok(Config {
            socket: flags
                .socket
                .clone()
                .or(file.socket)
                .unwrap_or_else(|| PathBuf::from(pcap_core::DEFAULT_SOCKET)),
            socket_group: flags.socket_group.clone().or(file.socket_group),
            data_dir: flags
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/pcapd")),
            default_max_bytes,
            free_space_floor_percent: floor,
            max_captures,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_keys_and_bad_values_are_refused() {
        let err = toml::from_str::<FileConfig>("sokcet = \"/a\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let file: FileConfig = toml::from_str("free_space_floor_percent = 120.0").unwrap();
        assert!(Config::merge(file, &flags(&[])).is_err());
        let file: FileConfig = toml::from_str("default_max_size = \"lots\"").unwrap();
        assert!(Config::merge(file, &flags(&[])).is_err());
    }
}
