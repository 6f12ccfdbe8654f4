//! Where `replay` and `listen` write their pcap savefile (or pcapng): standard output or
//! `-w FILE`.
//! Readers such as `wireshark -k -i -` show packets as they come only if every batch is
//! flushed; a reader that goes away (broken pipe) ends the command quietly.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use pcap_core::savefile::FileHeader;

/// Buffer between the stream and the output; large so that one batch is one write.
const BUFFER: usize = 1 << 20;

/// Size asked for the pipe on standard output (the most an unprivileged process may ask).
const PIPE_BYTES: i32 = 1 << 20;

/// Where the savefile goes, chosen before any call is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// The file named by `-w` (`-` is standard output, as in tcpdump), or standard output,
    /// which must not be a terminal: binary data there is of no use and garbles it.
    pub fn choose(write: Option<&Path>) -> Result<Self> {
        match write {
            Some(p) if p != Path::new("-") => Ok(Destination::File(p.to_owned())),
            _ if io::stdout().is_terminal() => bail!(
                "refusing to write binary pcap data to a terminal: pipe it into a reader \
                 (pcap replay web | tcpdump -r -) or write a file with -w FILE"
            ),
            _ => Ok(Destination::Stdout),
        }
    }

    /// Opens the destination for a pcap savefile; a file is created or truncated.
    pub fn open(&self) -> Result<PcapWriter> {
        let (out, name) = self.open_buffered()?;
        Ok(PcapWriter { out, name })
    }

    /// Opens the destination as a large buffer in front of it, with its name for messages.
    pub fn open_buffered(&self) -> Result<(BufWriter<Box<dyn Write>>, String)> {
        let (out, name): (Box<dyn Write>, String) = match self {
            // Standard output's own handle is line buffered, which would scan all the binary
            // data for newlines and split writes at them; write to its descriptor directly.
            Destination::Stdout => {
                let fd = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("cannot use standard output")?;
                // A pipe holds 64 KiB by default: the reader is woken for every 64 KiB.
                // Best effort; fails harmlessly when standard output is not a pipe.
                let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
                (Box::new(File::from(fd)), "standard output".into())
            }
            Destination::File(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                (Box::new(file), path.display().to_string())
            }
        };
        Ok((BufWriter::with_capacity(BUFFER, out), name))
    }
}

/// Whether the reader is still there after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The reader closed the pipe: stop, successfully.
    ReaderGone,
}

/// Writes one pcap savefile: a file header, then records, flushed batch by batch.
pub struct PcapWriter {
    out: BufWriter<Box<dyn Write>>,
    name: String,
}

impl PcapWriter {
    /// Writes the file header; call once, first.
    pub fn header(&mut self, header: FileHeader) -> Result<Flow> {
        let written = self
            .out
            .write_all(&header.encode())
            .and_then(|()| self.out.flush());
        self.check(written)
    }

    /// Writes savefile records as they came (see [`pcap_core::api::v1::RecordBatch`]) and flushes them.
    pub fn records(&mut self, records: &[u8]) -> Result<Flow> {
        // Straight to the destination, not through the buffer (which the records are
        // written out of at once anyway): one copy less of every batch.
        let written = self
            .out
            .flush()
            .and_then(|()| self.out.get_mut().write_all(records));
        self.check(written)
    }

    /// Flushes what is left; the file is complete afterwards.
    pub fn finish(mut self) -> Result<Flow> {
        let flushed = self.out.flush();
        self.check(flushed)
    }

    fn check(&self, r: io::Result<()>) -> Result<Flow> {
        match r {
            Ok(()) => Ok(Flow::Continue),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::ReaderGone),
            Err(e) => Err(e).with_context(|| format!("cannot write to {}", self.name)),
        }
    }
}

/// Prints text on standard output; a reader that went away (`pcap list | head -1`) is not
/// an error.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// Prints a value as pretty JSON followed by a newline.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    text.push('\n');
    print_stdout(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile;

    #[test]
    fn a_named_file_is_chosen_and_dash_means_stdout() {
        let d = Destination::choose(Some(Path::new("/tmp/x.pcap"))).unwrap();
        assert_eq!(d, Destination::File("/tmp/x.pcap".into()));
        // Under a test harness stdout is usually captured, not a terminal.
        if !io::stdout().is_terminal() {
            assert_eq!(
                Destination::choose(Some(Path::new("-"))).unwrap(),
                Destination::Stdout
            );
        }
    }

    #[test]
    fn writes_a_readable_savefile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pcap");
        let mut w = Destination::File(path.clone()).open().unwrap();
        w.header(FileHeader {
            link_type: 276,
            snaplen: 262_144,
            resolution: savefile::Resolution::Micro,
        })
        .unwrap();
        let mut record = Vec::new();
        let us = savefile::Resolution::Micro;
        savefile::encode_record(&mut record, us, 1_795_000_000_000_001_000, 60, &[1, 2, 3]);
        assert_eq!(w.records(&record).unwrap(), Flow::Continue);
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = FileHeader::decode(&bytes).unwrap();
        assert_eq!((header.link_type, header.snaplen), (276, 262_144));
        let mut records = savefile::Records::new(&bytes[savefile::FILE_HEADER_LEN..], 262_144);
        let (h, data) = records.next().unwrap();
        assert_eq!(
            (h.ts_sec, h.ts_frac, h.caplen, h.origlen),
            (1_795_000_000, 1, 3, 60)
        );
        assert_eq!(data, &[1, 2, 3]);
        assert!(records.next().is_none());
    }
}
