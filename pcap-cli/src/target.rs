//! Where a command goes. Every selector or target string a user types passes through
//! [`Targets::resolve`]: `lab:web` is capture `web` on the remote called `lab` (from the
//! remotes file), while a prefix that is not a known remote is part of the name (`eth0:1`).

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context as _, Result};
use pcap_core::connect::{self, Client};

use crate::remotes::{self, Remote, Remotes};

/// A daemon to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The local pcapd's UNIX socket (`--socket`, `$PCAP_SOCKET`).
    Unix(PathBuf),
    /// A daemon from the remotes file.
    Remote(Remote),
}

impl Endpoint {
    /// What to put before a capture in a command line shown to the user: `lab:` or nothing.
    pub fn prefix(&self) -> String {
        match self {
            Endpoint::Unix(_) => String::new(),
            Endpoint::Remote(r) => format!("{}:", r.name),
        }
    }
}

/// Resolves what users type into endpoints, and connects to them.
#[derive(Debug, Clone)]
pub struct Targets {
    local_socket: PathBuf,
    /// The remotes file, `None` for the default place.
    remotes_path: Option<PathBuf>,
    /// The remotes, read once when first needed; the error is kept as text to be told.
    remotes: OnceLock<Result<Remotes, String>>,
}

impl Targets {
    /// Targets whose local daemon listens on `local_socket`, with remotes from the default
    /// remotes file.
    pub fn new(local_socket: PathBuf) -> Self {
        Targets {
            local_socket,
            remotes_path: None,
            remotes: OnceLock::new(),
        }
    }

    /// Targets with the given remotes instead of those of the remotes file.
    #[cfg(test)]
    pub fn with_remotes(local_socket: PathBuf, remotes: Remotes) -> Self {
        let t = Targets::new(local_socket);
        let _ = t.remotes.set(Ok(remotes));
        t
    }

    /// Where the remotes file is.
    pub fn remotes_path(&self) -> Result<PathBuf> {
        match &self.remotes_path {
            Some(p) => Ok(p.clone()),
            None => remotes::default_path(),
        }
    }

    /// The remotes, read on first use.
    pub fn remotes(&self) -> Result<&Remotes> {
        let loaded = self.remotes.get_or_init(|| {
            self.remotes_path()
                .and_then(|p| Remotes::load(&p))
                .map_err(|e| format!("{e:#}"))
        });
        loaded.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// Splits `[REMOTE:]NAME` into the daemon to call and the name meant there (an id, an
    /// alias or an interface). A prefix that is not a known remote is part of the name, so
    /// `eth0:1` stays as it is; but `NAME:` with nothing after must be a known remote.
    /// Commands without a name pass `""`.
    pub fn resolve<'a>(&self, target: &'a str) -> Result<(Endpoint, &'a str)> {
        let local = Endpoint::Unix(self.local_socket.clone());
        let Some((prefix, rest)) = target.split_once(':') else {
            return Ok((local, target));
        };
        // Only a possible remote name needs the remotes file.
        if !remotes::is_name(prefix) {
            return Ok((local, target));
        }
        let remotes = self.remotes()?;
        match remotes.get(prefix) {
            Some(remote) => Ok((Endpoint::Remote(remote.clone()), rest)),
            None if rest.is_empty() => bail!("{}", remotes.unknown(prefix)),
            None => Ok((local, target)),
        }
    }

    /// The daemon for the optional `[REMOTE:]` of `list`, `ifaces` and `version`: the local
    /// one if none is given. `lab` is taken as `lab:`.
    pub fn resolve_remote(&self, remote: Option<&str>) -> Result<Endpoint> {
        let Some(given) = remote else {
            return Ok(Endpoint::Unix(self.local_socket.clone()));
        };
        let name = given.strip_suffix(':').unwrap_or(given);
        if name.contains(':') {
            bail!(
                "{given:?} is not a remote: this command takes only a remote's name and a \
                 colon, such as `lab:`"
            );
        }
        let remotes = self.remotes()?;
        match remotes.get(name) {
            Some(r) => Ok(Endpoint::Remote(r.clone())),
            None => bail!("{}", remotes.unknown(name)),
        }
    }

    /// Connects to `endpoint`; failures explain themselves (not running, permission denied,
    /// unreachable, certificates).
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Client> {
        match endpoint {
            Endpoint::Unix(path) => Ok(connect::connect_unix(path).await?),
            Endpoint::Remote(r) => connect::connect_to(&r.url, r.tls.as_ref())
                .await
                .with_context(|| format!("remote {}", r.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Remote {
        crate::remotes::sample_lab()
    }

    fn targets() -> Targets {
        let mut remotes = Remotes::default();
        remotes.insert(lab(), false).unwrap();
        Targets::with_remotes("/run/pcapd/pcapd.sock".into(), remotes)
    }

    fn local() -> Endpoint {
        Endpoint::Unix("/run/pcapd/pcapd.sock".into())
    }

    #[test]
    fn known_remotes_are_taken_off_the_front() {
        let t = targets();
        let lab = Endpoint::Remote(lab());
        assert_eq!(t.resolve("lab:web").unwrap(), (lab.clone(), "web"));
        assert_eq!(t.resolve("lab:eth0").unwrap(), (lab.clone(), "eth0"));
        assert_eq!(t.resolve("lab:eth0:1").unwrap(), (lab.clone(), "eth0:1"));
        assert_eq!(t.resolve("lab:").unwrap(), (lab.clone(), ""));
        assert_eq!(lab.prefix(), "lab:");
        assert_eq!(local().prefix(), "");
    }

    #[test]
    fn other_prefixes_are_part_of_the_name() {
        let t = targets();
        assert_eq!(t.resolve("web").unwrap(), (local(), "web"));
        assert_eq!(t.resolve("eth0:1").unwrap(), (local(), "eth0:1"));
        assert_eq!(t.resolve("").unwrap(), (local(), ""));
        assert_eq!(t.resolve("a b:c").unwrap(), (local(), "a b:c"));
    }

    #[test]
    fn a_bare_unknown_prefix_is_an_unknown_remote() {
        let e = targets().resolve("prod:").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown remote \"prod\": the known remotes are lab (see `pcap remote list`)"
        );
    }

    #[test]
    fn remote_only_arguments() {
        let t = targets();
        assert_eq!(t.resolve_remote(None).unwrap(), local());
        assert_eq!(
            t.resolve_remote(Some("lab:")).unwrap(),
            Endpoint::Remote(lab())
        );
        assert_eq!(
            t.resolve_remote(Some("lab")).unwrap(),
            Endpoint::Remote(lab())
        );
        let e = t.resolve_remote(Some("prod:")).unwrap_err().to_string();
        assert!(
            e.starts_with("unknown remote \"prod\": the known remotes are lab"),
            "{e}"
        );
        let e = t.resolve_remote(Some("lab:web")).unwrap_err().to_string();
        assert!(e.contains("takes only a remote"), "{e}");
    }

    #[test]
    fn remotes_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remotes.toml");
        let mut remotes = Remotes::default();
        remotes.insert(lab(), false).unwrap();
        remotes.save(&path).unwrap();
        let t = Targets {
            remotes_path: Some(path),
            ..Targets::new("/s".into())
        };
        assert_eq!(t.resolve("lab:web").unwrap().0, Endpoint::Remote(lab()));
    }
}
