//! The remotes file: named pcapd daemons elsewhere, so that `lab:web` means capture `web`
//! on the daemon called `lab`. It lives in the user's configuration directory
//! (`$XDG_CONFIG_HOME/pcap/remotes.toml`, by default `~/.config/pcap/remotes.toml`), is
//! written only by `pcap remote add|remove`, and is kept private (mode 0600): it says which
//! key files reach which hosts.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use pcap_core::connect::{EndpointUrl, TlsFiles};
use serde::{Deserialize, Serialize};

/// File name of the remotes file inside the configuration directory.
const FILE_NAME: &str = "remotes.toml";

/// Said at the top of the file, since people will open it.
const HEADER: &str =
    "# Remote pcapd daemons, used as `NAME:` in pcap commands (`pcap list lab:`).\n\
                      # Written by `pcap remote add` and `pcap remote remove`.\n\n";

/// A daemon reachable under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    pub url: EndpointUrl,
    /// The CA, client certificate and key (absolute paths); always present for `https`.
    pub tls: Option<TlsFiles>,
}

/// The remotes file's path: `remotes.toml` in pcap's XDG configuration directory.
pub fn default_path() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "pcap").ok_or_else(|| {
        anyhow!("cannot find your configuration directory: set $HOME or $XDG_CONFIG_HOME")
    })?;
    Ok(dirs.config_dir().join(FILE_NAME))
}

/// Checks a remote's name: 1-64 letters, digits, '.', '_' or '-'.
pub fn check_name(name: &str) -> Result<()> {
    if is_name(name) {
        return Ok(());
    }
    bail!("invalid remote name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'")
}

/// Whether `name` could name a remote.
pub fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The remotes file, read into memory and validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remotes {
    by_name: BTreeMap<String, Remote>,
}

impl Remotes {
    /// Reads the file at `path`; a missing file holds no remotes.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Remotes::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&text)
            .with_context(|| format!("{} is not a valid remotes file", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let file: FileForm = toml::from_str(text)?;
        let mut by_name = BTreeMap::new();
        for (name, entry) in file.remote {
            let remote = entry
                .into_remote(&name)
                .with_context(|| format!("remote {name:?}"))?;
            by_name.insert(name, remote);
        }
        Ok(Remotes { by_name })
    }

    /// The remote called `name`.
    pub fn get(&self, name: &str) -> Option<&Remote> {
        self.by_name.get(name)
    }

    /// Every remote, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Remote> {
        self.by_name.values()
    }

    /// Whether there are no remotes.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Adds `remote`; one of the same name is replaced only if `force`.
    pub fn insert(&mut self, remote: Remote, force: bool) -> Result<()> {
        if let Some(old) = self.by_name.get(&remote.name) {
            if !force {
                bail!(
                    "remote {} already exists ({}): use --force to replace it",
                    old.name,
                    old.url
                );
            }
        }
        self.by_name.insert(remote.name.clone(), remote);
        Ok(())
    }

    /// Removes the remote called `name`, which must exist.
    pub fn remove(&mut self, name: &str) -> Result<Remote> {
        self.by_name
            .remove(name)
            .ok_or_else(|| anyhow!("{}", self.unknown(name)))
    }

    /// The message for a name that is not a remote, listing the known ones.
    pub fn unknown(&self, name: &str) -> String {
        if self.is_empty() {
            return format!(
                "unknown remote {name:?}: no remotes are defined; add one with \
                 `pcap remote add {name} https://HOST[:PORT] --ca FILE --cert FILE --key FILE`"
            );
        }
        let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        format!(
            "unknown remote {name:?}: the known remotes are {} (see `pcap remote list`)",
            known.join(", ")
        )
    }

    /// Writes the remotes to `path` with mode 0600, creating its directory with mode 0700.
    /// The file is replaced in one step, so that a reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = FileForm {
            remote: self
                .by_name
                .iter()
                .map(|(name, r)| (name.clone(), Entry::from(r)))
                .collect(),
        };
        let text = format!("{HEADER}{}", toml::to_string(&file)?);
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let written = write_private(&tmp, text.as_bytes()).and_then(|()| fs::rename(&tmp, path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Creates (or truncates) `path` with mode 0600 and writes `bytes` to disk.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

// === the file's form ===

/// The file as TOML: one `[remote.NAME]` table per remote.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(default)]
    remote: BTreeMap<String, Entry>,
}

/// One remote as TOML.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<PathBuf>,
}

impl Entry {
    fn into_remote(self, name: &str) -> Result<Remote> {
        check_name(name)?;
        let url = EndpointUrl::parse(&self.url)?;
        let tls = match (&url, self.ca, self.cert, self.key) {
            (EndpointUrl::Https { .. }, Some(ca), Some(cert), Some(key)) => {
                Some(TlsFiles { ca, cert, key })
            }
            (EndpointUrl::Https { .. }, ..) => {
                bail!("an https remote needs ca, cert and key files")
            }
            (EndpointUrl::Unix(_), None, None, None) => None,
            (EndpointUrl::Unix(_), ..) => bail!("a unix:// remote takes no ca, cert or key"),
        };
        Ok(Remote {
            name: name.to_owned(),
            url,
            tls,
        })
    }
}

impl From<&Remote> for Entry {
    fn from(r: &Remote) -> Self {
        let tls = r.tls.as_ref();
        Entry {
            url: r.url.to_string(),
            ca: tls.map(|t| t.ca.clone()),
            cert: tls.map(|t| t.cert.clone()),
            key: tls.map(|t| t.key.clone()),
        }
    }
}

/// A remote `lab` at https://lab.example with TLS files under /pki, for tests.
#[cfg(test)]
pub(crate) fn sample_lab() -> Remote {
    Remote {
        name: "lab".into(),
        url: EndpointUrl::parse("https://lab.example").unwrap(),
        tls: Some(TlsFiles {
            ca: "/pki/ca.pem".into(),
            cert: "/pki/me.pem".into(),
            key: "/pki/me.key".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn lab() -> Remote {
        sample_lab()
    }

    fn local() -> Remote {
        Remote {
            name: "box-2.local".into(),
            url: EndpointUrl::parse("unix:///run/other/pcapd.sock").unwrap(),
            tls: None,
        }
    }

    #[test]
    fn names() {
        for ok in ["lab", "a", "lab-2.east_1", &"x".repeat(64)] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in ["", "a:b", "a b", "lab/1", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_in_a_private_file() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("config/pcap").join(FILE_NAME);
        assert_eq!(Remotes::load(&path).unwrap(), Remotes::default());
        let mut remotes = Remotes::default();
        remotes.insert(lab(), false).unwrap();
        remotes.insert(local(), false).unwrap();
        remotes.save(&path).unwrap();
        assert_eq!(Remotes::load(&path).unwrap(), remotes);

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Remote pcapd daemons"), "{text}");
        assert!(
            text.contains("[remote.lab]\nurl = \"https://lab.example:2020\"\n"),
            "{text}"
        );
        assert!(text.contains("[remote.\"box-2.local\"]"), "{text}");

        // A file made readable by others is made private again on the next write.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        remotes.remove("lab").unwrap();
        remotes.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let back = Remotes::load(&path).unwrap();
        assert!(back.get("lab").is_none());
        assert_eq!(back.get("box-2.local"), Some(&local()));
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn existing_names_need_force() {
        let mut remotes = Remotes::default();
        remotes.insert(lab(), false).unwrap();
        let mut other = local();
        other.name = "lab".into();
        let e = remotes
            .insert(other.clone(), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "remote lab already exists (https://lab.example:2020): use --force to replace it"
        );
        remotes.insert(other.clone(), true).unwrap();
        assert_eq!(remotes.get("lab"), Some(&other));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let mut remotes = Remotes::default();
        assert!(remotes.unknown("lab").contains("no remotes are defined"));
        remotes.insert(lab(), false).unwrap();
        remotes.insert(local(), false).unwrap();
        let e = remotes.remove("prod").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown remote \"prod\": the known remotes are box-2.local, lab \
             (see `pcap remote list`)"
        );
    }

    #[test]
    fn bad_files_are_refused() {
        for bad in [
            "[remote.lab]\nurl = \"http://lab:2020\"\n",
            "[remote.lab]\nurl = \"https://lab\"\nca = \"/ca.pem\"\n",
            "[remote.lab]\nurl = \"unix:///s\"\ncert = \"/c.pem\"\n",
            "[remote.\"a:b\"]\nurl = \"unix:///s\"\n",
            "[remote.lab]\nurl = \"unix:///s\"\ncolour = \"red\"\n",
            "[remotes.lab]\nurl = \"unix:///s\"\n",
        ] {
            assert!(Remotes::parse(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, "[remote.lab]\nurl = \"ftp://x\"\n").unwrap();
        let e = format!("{:#}", Remotes::load(&path).unwrap_err());
        assert!(e.contains("is not a valid remotes file"), "{e}");
        assert!(e.contains("remote \"lab\""), "{e}");
    }
}
