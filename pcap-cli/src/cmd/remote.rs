//! `pcap remote add|list|remove`: the names that `NAME:` prefixes refer to.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use pcap_core::connect::{EndpointUrl, TlsFiles};
use serde::Serialize;

use super::Context;
use crate::output::{print_json, print_stdout};
use crate::remotes::{check_name, Remote, Remotes};
use crate::table::{Align, Table};

/// The subcommands of `pcap remote`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Name a remote pcapd: https://HOST[:PORT] (port 2020 by default) with the CA of its
    /// server certificate and this client's certificate and key, or unix:///path/to/sock
    #[command(
        override_usage = "pcap remote add [OPTIONS] <NAME> <URL> [--ca FILE --cert FILE --key FILE]"
    )]
    Add(AddArgs),
    /// Show the remotes
    List,
    /// Forget a remote (its certificate files are left alone)
    Remove(RemoveArgs),
}

/// Arguments of `pcap remote add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name to use before a colon: `pcap list NAME:` (letters, digits, '.', '_', '-')
    name: String,
    /// https://HOST[:PORT] or unix:///path/to/pcapd.sock
    url: String,
    /// PEM file of the CA that signed the server's certificate
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// PEM file of this client's certificate, signed by the CA the server trusts
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// PEM file of the private key of --cert
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Replace a remote of the same name
    #[arg(long)]
    force: bool,
}

/// Arguments of `pcap remote remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The remote to forget
    name: String,
}

/// A remote as scripts see it in `--json` output.
#[derive(Debug, Serialize)]
struct RemoteJson<'a> {
    name: &'a str,
    url: String,
    ca: Option<&'a Path>,
    cert: Option<&'a Path>,
    key: Option<&'a Path>,
}

impl<'a> From<&'a Remote> for RemoteJson<'a> {
    fn from(r: &'a Remote) -> Self {
        let tls = r.tls.as_ref();
        RemoteJson {
            name: &r.name,
            url: r.url.to_string(),
            ca: tls.map(|t| t.ca.as_path()),
            cert: tls.map(|t| t.cert.as_path()),
            key: tls.map(|t| t.key.as_path()),
        }
    }
}

/// Runs `pcap remote ...`.
pub fn run(command: RemoteCommand, ctx: &Context) -> Result<()> {
    match command {
        RemoteCommand::Add(args) => add(args, ctx),
        RemoteCommand::List => list(ctx),
        RemoteCommand::Remove(args) => remove(&args.name, ctx),
    }
}

fn add(args: AddArgs, ctx: &Context) -> Result<()> {
    let force = args.force;
    let remote = remote_from(args)?;
    let path = ctx.targets.remotes_path()?;
    let mut remotes = Remotes::load(&path)?;
    remotes.insert(remote.clone(), force)?;
    remotes.save(&path)?;
    eprintln!(
        "remote {} is {}; try `pcap version {}:`",
        remote.name, remote.url, remote.name
    );
    Ok(())
}

fn list(ctx: &Context) -> Result<()> {
    let remotes = ctx.targets.remotes()?;
    if ctx.json {
        return print_json(&remotes.iter().map(RemoteJson::from).collect::<Vec<_>>());
    }
    print_stdout(&render(remotes))?;
    if remotes.is_empty() {
        eprintln!(
            "no remotes; add one with `pcap remote add NAME https://HOST[:PORT] --ca FILE \
             --cert FILE --key FILE`"
        );
    }
    Ok(())
}

fn remove(name: &str, ctx: &Context) -> Result<()> {
    let path = ctx.targets.remotes_path()?;
    let mut remotes = Remotes::load(&path)?;
    let gone = remotes.remove(name)?;
    remotes.save(&path)?;
    eprintln!("remote {} ({}) removed", gone.name, gone.url);
    Ok(())
}

/// The table of `pcap remote list`.
fn render(remotes: &Remotes) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("URL", Align::Left),
        ("CA", Align::Left),
        ("CERT", Align::Left),
    ]);
    for r in remotes.iter() {
        let (ca, cert) = match &r.tls {
            Some(t) => (t.ca.display().to_string(), t.cert.display().to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        table.row(vec![r.name.clone(), r.url.to_string(), ca, cert]);
    }
    table.render()
}

/// Checks what `remote add` was given: the name, the URL, and for https the three files,
/// which must be readable PEM that fit together. Paths are kept absolute.
fn remote_from(args: AddArgs) -> Result<Remote> {
    check_name(&args.name)?;
    let url = EndpointUrl::parse(&args.url)?;
    let tls = match &url {
        EndpointUrl::Unix(_) => {
            if args.ca.is_some() || args.cert.is_some() || args.key.is_some() {
                bail!(
                    "--ca, --cert and --key are for https remotes: a unix:// remote is \
                     reached through the socket's file permissions"
                );
            }
            None
        }
        EndpointUrl::Https { .. } => Some(tls_files(args.ca, args.cert, args.key)?),
    };
    Ok(Remote {
        name: args.name,
        url,
        tls,
    })
}

fn tls_files(ca: Option<PathBuf>, cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<TlsFiles> {
    match (&cert, &key) {
        (Some(_), None) => {
            bail!("--cert and --key go together: give the certificate's key with --key FILE")
        }
        (None, Some(_)) => {
            bail!("--cert and --key go together: give the key's certificate with --cert FILE")
        }
        _ => {}
    }
    let (Some(ca), Some(cert), Some(key)) = (ca, cert, key) else {
        bail!(
            "an https remote needs --ca FILE (the CA that signed the server's certificate), \
             --cert FILE and --key FILE: a client certificate is mandatory, pcapd has no \
             plaintext or anonymous mode and accepts only clients whose certificate is \
             signed by the CA it trusts (make one on the server with \
             `pcapd tls client --out DIR --name NAME`)"
        );
    };
    let files = TlsFiles {
        ca: readable("--ca", &ca)?,
        cert: readable("--cert", &cert)?,
        key: readable("--key", &key)?,
    };
    files.client_config()?;
    Ok(files)
}

/// `path` made absolute, once it is known to be a file this user can read.
fn readable(flag: &str, path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("{flag} {}: cannot make the path absolute", path.display()))?;
    let file = File::open(&abs).with_context(|| format!("cannot read {flag} {}", abs.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {flag} {}", abs.display()))?;
    if !meta.is_file() {
        bail!("{flag} {} is not a file", abs.display());
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(subcommand)]
        remote: RemoteCommand,
    }

    fn add_args(argv: &[&str]) -> AddArgs {
        match Wrap::try_parse_from(["remote", "add"].into_iter().chain(argv.iter().copied()))
            .unwrap()
            .remote
        {
            RemoteCommand::Add(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn err(argv: &[&str]) -> String {
        format!("{:#}", remote_from(add_args(argv)).unwrap_err())
    }

    #[test]
    fn unix_remotes_need_no_files() {
        let r = remote_from(add_args(&["box", "unix:///run/x/pcapd.sock"])).unwrap();
        assert_eq!(r.url, EndpointUrl::Unix("/run/x/pcapd.sock".into()));
        assert_eq!(r.tls, None);
        let e = err(&["box", "unix:///s", "--ca", "/etc/hostname"]);
        assert!(e.contains("are for https remotes"), "{e}");
    }

    #[test]
    fn https_remotes_need_all_three_files() {
        let e = err(&["lab", "https://lab.example"]);
        assert!(e.contains("a client certificate is mandatory"), "{e}");
        let e = err(&["lab", "https://lab.example", "--ca", "/ca.pem"]);
        assert!(e.contains("a client certificate is mandatory"), "{e}");
        let e = err(&[
            "lab",
            "https://lab.example",
            "--cert",
            "/c.pem",
            "--ca",
            "/ca.pem",
        ]);
        assert!(e.starts_with("--cert and --key go together"), "{e}");
        let e = err(&["lab", "https://lab.example", "--key", "/k.pem"]);
        assert!(e.starts_with("--cert and --key go together"), "{e}");
    }

    #[test]
    fn files_must_exist_and_hold_pem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let m = missing.to_str().unwrap();
        let e = err(&[
            "lab",
            "https://lab.example",
            "--ca",
            m,
            "--cert",
            m,
            "--key",
            m,
        ]);
        assert!(e.starts_with(&format!("cannot read --ca {m}")), "{e}");
        std::fs::write(&missing, "junk").unwrap();
        let e = err(&[
            "lab",
            "https://lab.example",
            "--ca",
            m,
            "--cert",
            m,
            "--key",
            m,
        ]);
        assert!(e.contains(&format!("from {m}")), "{e}");
        let d = dir.path().to_str().unwrap();
        let e = err(&[
            "lab",
            "https://lab.example",
            "--ca",
            d,
            "--cert",
            m,
            "--key",
            m,
        ]);
        assert!(e.ends_with("is not a file"), "{e}");
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert!(err(&["a:b", "unix:///s"]).starts_with("invalid remote name \"a:b\""));
        let e = err(&["lab", "http://lab.example"]);
        assert!(e.contains("no plaintext listener"), "{e}");
    }

    #[test]
    fn the_table() {
        let mut remotes = Remotes::default();
        remotes
            .insert(
                remote_from(add_args(&["box", "unix:///s.sock"])).unwrap(),
                false,
            )
            .unwrap();
        remotes
            .insert(
                Remote {
                    name: "lab".into(),
                    url: EndpointUrl::parse("https://[::1]").unwrap(),
                    tls: Some(TlsFiles {
                        ca: "/p/ca.pem".into(),
                        cert: "/p/me.pem".into(),
                        key: "/p/me.key".into(),
                    }),
                },
                false,
            )
            .unwrap();
        assert_eq!(
            render(&remotes),
            "NAME  URL                 CA         CERT\n\
             box   unix:///s.sock      -          -\n\
             lab   https://[::1]:2020  /p/ca.pem  /p/me.pem\n"
        );
    }
}
