//! `pcap completions SHELL` and `pcap man`: shell completion scripts and the manual page,
//! both made from the command-line definition itself so that they never fall behind it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;
use clap_complete::Shell;

use crate::output::print_stdout;

/// Arguments of `pcap completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Arguments of `pcap man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write pcap.1 and a page per command (pcap-replay.1, ...) into DIR instead of
    /// printing pcap.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "pcap", &mut script);
    print_stdout(&String::from_utf8_lossy(&script))
}

/// Prints the manual page in roff, or writes every page into `args.dir`.
pub fn man(args: ManArgs, cli: clap::Command) -> Result<()> {
    match args.dir {
        Some(dir) => write_pages(cli, &dir),
        None => print_stdout(&render(cli)?),
    }
}

/// The page of `pcap` itself, in roff.
fn render(cli: clap::Command) -> Result<String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cli)
        .render(&mut page)
        .context("cannot render the manual page")?;
    String::from_utf8(page).context("the manual page is not UTF-8")
}

/// Writes `pcap.1` and one page per visible command into `dir`, which is created.
fn write_pages(cli: clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cli, dir)
        .with_context(|| format!("cannot write manual pages into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("pcap")
            .version("1.2.3")
            .about("Capture packets")
            .subcommand(clap::Command::new("list").about("Show every capture"))
    }

    #[test]
    fn the_page_names_the_program_and_its_commands() {
        let page = render(cli()).unwrap();
        assert!(page.contains(".TH pcap 1"), "{page}");
        assert!(page.contains("Show every capture"), "{page}");
    }

    #[test]
    fn every_command_gets_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        write_pages(cli(), &out).unwrap();
        assert!(out.join("pcap.1").is_file());
        assert!(out.join("pcap-list.1").is_file());
    }
}
