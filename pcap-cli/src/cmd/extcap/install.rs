//! `pcap extcap install` and `uninstall`: a launcher (or the package's link) where this
//! Wireshark looks for extcaps, as `tshark -G folders` says.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};

use super::InstallArgs;
use crate::cmd::Context;
use crate::target::Endpoint;

/// The launcher's default file name in the extcap folder.
pub(super) const DEFAULT_NAME: &str = "pcapd";

/// Where the Debian package installs `pcap` (and links its extcap entry to).
const PACKAGED_PCAP: &str = "/usr/bin/pcap";

/// The line that marks a launcher as written by `pcap extcap install`.
const MARK: &str = "# Wireshark extcap of pcapd, written by `pcap extcap install`";

/// Where this Wireshark looks for extcaps, as `tshark -G folders` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Folders {
    personal: Option<PathBuf>,
    global: Option<PathBuf>,
}

impl Folders {
    fn ask() -> Result<Folders> {
        let out = Command::new("tshark")
            .args(["-G", "folders"])
            .output()
            .map_err(|e| {
                anyhow!(
                    "cannot run `tshark -G folders` to learn where Wireshark looks for \
                     extcaps: {e}; install tshark (apt install tshark)"
                )
            })?;
        if !out.status.success() {
            bail!(
                "`tshark -G folders` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let folders = Folders::parse(&String::from_utf8_lossy(&out.stdout));
        if folders.personal.is_none() && folders.global.is_none() {
            bail!(
                "`tshark -G folders` named no extcap folder: is this Wireshark built with extcap?"
            );
        }
        Ok(folders)
    }

    /// Reads "Extcap path:" (older versions: the global folder only), "Personal Extcap
    /// path:" and "Global Extcap path:" lines.
    fn parse(text: &str) -> Folders {
        let mut f = Folders::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.trim().to_ascii_lowercase().as_str() {
                "personal extcap path" => f.personal = Some(value.into()),
                "global extcap path" | "extcap path" => f.global = Some(value.into()),
                _ => {}
            }
        }
        f
    }

    /// The folder `system` asks for, or why there is none.
    fn choose(&self, system: bool) -> Result<&Path> {
        match (system, &self.personal, &self.global) {
            (true, _, Some(g)) => Ok(g),
            (true, _, None) => bail!("this Wireshark names no global extcap folder"),
            (false, Some(p), _) => Ok(p),
            (false, None, g) => bail!(
                "this Wireshark reads extcaps only from its global folder{}, not from a \
                 personal one: install there with `sudo pcap extcap install --system`",
                g.as_ref()
                    .map(|g| format!(" ({})", g.display()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The launcher: runs this `pcap` as `pcap extcap`, on the daemon this user reaches.
fn launcher(pcap: &Path, socket: &Path, config_home: Option<&Path>) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let mut s = format!("#!/bin/sh\n{MARK}; remove it with `pcap extcap uninstall`.\n");
    let _ = writeln!(s, "PCAP_SOCKET={}\nexport PCAP_SOCKET", quote(socket));
    if let Some(c) = config_home {
        let _ = writeln!(s, "XDG_CONFIG_HOME={}\nexport XDG_CONFIG_HOME", quote(c));
    }
    let _ = writeln!(s, "exec {} extcap \"$@\"", quote(pcap));
    s
}

pub(super) fn install(args: &InstallArgs, ctx: &Context) -> Result<()> {
    let folders = Folders::ask()?;
    let dir = folders.choose(args.system)?;
    let path = dir.join(&args.name);
    match Existing::at(&path)? {
        Existing::Nothing | Existing::Launcher => {}
        Existing::Link(to) if is_pcap(&to) => bail!(
            "{} is already a link to {}{}: Wireshark runs `pcap extcap` through it, so there \
             is nothing to install (give --name NAME for a launcher of another pcap beside it)",
            path.display(),
            to.display(),
            package_note(&path)
        ),
        Existing::Link(to) => bail!(
            "{} is a link to {}, not a launcher written by pcap: remove it, or give another \
             --name",
            path.display(),
            to.display()
        ),
        Existing::Other => bail!(
            "{} exists and was not written by pcap: remove it, or give another --name",
            path.display()
        ),
    }
    let pcap = std::env::current_exe().context("cannot find the path of this pcap")?;
    let socket = match ctx.targets.resolve_remote(None)? {
        Endpoint::Unix(s) => s,
        Endpoint::Remote(_) => unreachable!("the local daemon is a socket"),
    };
    // A personal launcher keeps this user's remotes file; a global one leaves each user's.
    let config_home = match args.system {
        true => None,
        false => std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
    };
    let text = launcher(&pcap, &socket, config_home.as_deref());
    let denied = |e: std::io::Error| {
        let hint = match (e.kind(), args.system) {
            (std::io::ErrorKind::PermissionDenied, true) => {
                ": the global folder needs root (sudo pcap extcap install --system)"
            }
            _ => "",
        };
        anyhow!("cannot write {}: {e}{hint}", path.display())
    };
    std::fs::create_dir_all(dir).map_err(denied)?;
    let tmp = dir.join(format!(".{}.tmp", args.name));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(denied(e));
    }
    eprintln!(
        "installed {}: restart Wireshark, and pcapd's captures are in its interface list \
         as pcapd-ALIAS (`tshark -D` lists them)",
        path.display()
    );
    Ok(())
}

pub(super) fn uninstall(args: &InstallArgs) -> Result<()> {
    let folders = Folders::ask()?;
    let dir = match (args.system, &folders.personal, &folders.global) {
        (false, None, Some(g)) => {
            bail!(
                "this Wireshark has no personal extcap folder, so nothing was installed there; \
                 give --system to remove the launcher from {}",
                g.display()
            )
        }
        _ => folders.choose(args.system)?,
    };
    let path = dir.join(&args.name);
    match Existing::at(&path)? {
        Existing::Launcher => {}
        Existing::Link(to) => {
            let note = package_note(&path);
            bail!(
                "{} is a link to {}{note}, not a launcher written by `pcap extcap install`: \
                 left as it is{}",
                path.display(),
                to.display(),
                match note.is_empty() {
                    false => "; it goes when the package is removed (apt remove pcapd)",
                    true => "",
                }
            )
        }
        Existing::Other => bail!(
            "{} was not written by `pcap extcap install`: left as it is",
            path.display()
        ),
        Existing::Nothing => bail!("{} is not installed: nothing to remove", path.display()),
    }
    std::fs::remove_file(&path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ": the global folder needs root (sudo)",
            _ => "",
        };
        anyhow!("cannot remove {}: {e}{hint}", path.display())
    })?;
    eprintln!("removed {}", path.display());
    Ok(())
}

/// What is at a launcher's path before `install` or `uninstall` changes it.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    /// A launcher that `pcap extcap install` wrote: its to replace or remove.
    Launcher,
    /// A symbolic link (not followed), such as the Debian package's link to /usr/bin/pcap.
    Link(PathBuf),
    /// Any other file: left alone.
    Other,
}

impl Existing {
    fn at(path: &Path) -> Result<Existing> {
        use std::io::Read as _;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
            Err(e) => bail!("cannot look at {}: {e}", path.display()),
        };
        if meta.file_type().is_symlink() {
            let to = std::fs::read_link(path)
                .map_err(|e| anyhow!("cannot read the link {}: {e}", path.display()))?;
            return Ok(Existing::Link(to));
        }
        if !meta.is_file() {
            return Ok(Existing::Other);
        }
        // The mark is on the launcher's second line; a program there can be big.
        let mut head = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_end(&mut head))
            .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(match String::from_utf8_lossy(&head).contains(MARK) {
            true => Existing::Launcher,
            false => Existing::Other,
        })
    }
}

/// Whether a link leads to a `pcap` binary (which, run under the link's name with
/// Wireshark's arguments, is `pcap extcap`).
fn is_pcap(to: &Path) -> bool {
    to.file_name().is_some_and(|n| n == "pcap")
}

/// Says where a link that leads to /usr/bin/pcap comes from.
fn package_note(link: &Path) -> &'static str {
    let packaged = std::fs::canonicalize(link)
        .is_ok_and(|p| std::fs::canonicalize(PACKAGED_PCAP).is_ok_and(|q| p == q));
    match packaged {
        true => " (as the pcapd package installs it)",
        false => "",
    }
}

/// `--name`: a file name, nothing that leads out of the folder.
pub(super) fn file_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match ok {
        true => Ok(s.to_owned()),
        false => Err(format!(
            "{s:?} is not a file name for the launcher: letters, digits, '-', '_' and '.', \
             at most 64, not starting with '.'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_old_and_new_wiresharks() {
        let old =
            "Temp:\t/tmp\nExtcap path:         \t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n";
        let f = Folders::parse(old);
        assert_eq!(f.personal, None);
        assert_eq!(
            f.global.as_deref(),
            Some(Path::new("/usr/lib/x86_64-linux-gnu/wireshark/extcap"))
        );
        let e = f.choose(false).unwrap_err().to_string();
        assert!(e.contains("--system"), "{e}");
        let new = "Personal Extcap path:\t/home/u/.local/lib/wireshark/extcap\n\
                   Global Extcap path:\t/usr/lib/wireshark/extcap\n";
        let f = Folders::parse(new);
        assert_eq!(
            f.choose(false).unwrap(),
            Path::new("/home/u/.local/lib/wireshark/extcap")
        );
        assert_eq!(
            f.choose(true).unwrap(),
            Path::new("/usr/lib/wireshark/extcap")
        );
    }

    #[test]
    fn launcher_quotes_paths() {
        let s = launcher(Path::new("/opt/it's/pcap"), Path::new("/run/p.sock"), None);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARK));
        assert!(s.contains("PCAP_SOCKET='/run/p.sock'"));
        assert!(s.contains(r#"exec '/opt/it'\''s/pcap' extcap "$@""#), "{s}");
    }

    #[test]
    fn links_and_foreign_files_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| Existing::at(&dir.path().join(name)).unwrap();
        assert_eq!(at("absent"), Existing::Nothing);
        std::fs::write(
            dir.path().join("ours"),
            launcher(Path::new("/usr/bin/pcap"), Path::new("/run/s"), None),
        )
        .unwrap();
        assert_eq!(at("ours"), Existing::Launcher);
        std::fs::write(dir.path().join("other"), b"\x7fELF\x02\x01\x01\0\xff\xfe").unwrap();
        assert_eq!(at("other"), Existing::Other);
        // A link is judged by itself, not by the launcher or program it leads to.
        let link = dir.path().join("pcapd");
        std::os::unix::fs::symlink("no-such-dir/pcap", &link).unwrap();
        assert_eq!(at("pcapd"), Existing::Link("no-such-dir/pcap".into()));
        std::os::unix::fs::symlink(dir.path().join("ours"), dir.path().join("to-ours")).unwrap();
        assert!(matches!(at("to-ours"), Existing::Link(_)));
        assert!(is_pcap(Path::new("/usr/bin/pcap")));
        assert!(!is_pcap(Path::new("/usr/bin/pcapd")));
        assert!(package_note(&link).is_empty(), "leads nowhere here");
    }

    #[test]
    fn names_stay_in_the_folder() {
        assert!(file_name("pcapd-test-12").is_ok());
        assert!(file_name("../x").is_err());
        assert!(file_name(".hidden").is_err());
        assert!(file_name("").is_err());
    }
}
