//! Where a command goes. Every selector or target string a user types passes through
//! [`Targets::resolve`], which is where `REMOTE:` prefixes will be recognised once the
//! remotes file exists; today everything names something on the local daemon.

use std::path::PathBuf;

use anyhow::Result;
use pcap_core::connect::{self, Client};

/// A daemon to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The local pcapd's UNIX socket.
    Unix(PathBuf),
}

/// Resolves what users type into endpoints, and connects to them.
#[derive(Debug, Clone)]
pub struct Targets {
    local_socket: PathBuf,
}

impl Targets {
    /// Targets whose local daemon listens on `local_socket`.
    pub fn new(local_socket: PathBuf) -> Self {
        Targets { local_socket }
    }

    /// Splits `[REMOTE:]NAME` into the daemon to call and the name meant there (an id, an
    /// alias or an interface). No remotes are known yet, so this is the local daemon and
    /// the string unchanged, colons included: a prefix that is not a known remote is part
    /// of the name. Commands without a name pass `""`.
    pub fn resolve<'a>(&self, target: &'a str) -> (Endpoint, &'a str) {
        (Endpoint::Unix(self.local_socket.clone()), target)
    }

    /// Connects to `endpoint`; failures explain themselves (not running, permission denied).
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Client> {
        match endpoint {
            Endpoint::Unix(path) => Ok(connect::connect_unix(path).await?),
        }
    }

    /// Resolves `target` and connects to its daemon, returning the client and the name.
    pub async fn client_for<'a>(&self, target: &'a str) -> Result<(Client, &'a str)> {
        let (endpoint, name) = self.resolve(target);
        Ok((self.connect(&endpoint).await?, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_local_for_now() {
        let t = Targets::new("/run/pcapd/pcapd.sock".into());
        let local = Endpoint::Unix("/run/pcapd/pcapd.sock".into());
        assert_eq!(t.resolve("web"), (local.clone(), "web"));
        assert_eq!(t.resolve("eth0:1"), (local.clone(), "eth0:1"));
        assert_eq!(t.resolve(""), (local, ""));
    }
}
