//! `pcap import`: a pcap or pcapng file (or standard input) becomes a capture of the local
//! daemon or of a remote one. The file is read here, as `pcap decode --file` reads it
//! ([`CaptureFile`], a fixed buffer whatever the file's size), and streamed to pcapd as
//! batches of nanosecond savefile records; pcapd spools them and registers the capture once
//! the last one is in. Damage found in the file ends the stream without its closing
//! message, which pcapd takes as a refusal: it removes what it wrote.

use std::cell::Cell;
use std::fs::File;
use std::io::{IsTerminal as _, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use pcap_core::api::v1 as api;
use pcap_core::domain::{Alias, ImportSpec};
use pcap_core::savefile::{encode_record, Resolution};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Context;
use crate::capfile::{CaptureFile, Next};
use crate::output::{print_json, print_stdout};
use crate::rpc::status_error;
use crate::view::{aliases_cell, CaptureJson};

/// Record bytes gathered before a batch is sent: well under pcapd's default
/// max_request_bytes (1 MiB), whatever the record that ends the batch.
const BATCH_BYTES: usize = 256 << 10;
/// Batches on their way to pcapd.
const QUEUED: usize = 4;

/// Arguments of `pcap import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The pcap or pcapng file to import, `-` for standard input, after `REMOTE:` to import
    /// it into a remote daemon (`lab:trace.pcapng`; the file is read here)
    #[arg(value_name = "[REMOTE:]FILE|-")]
    file: String,
    /// Name for the new capture (repeatable)
    #[arg(long = "alias", value_name = "NAME", value_parser = super::init::parse_alias)]
    aliases: Vec<Alias>,
}

/// Why reading the file stopped early.
enum Stopped {
    /// The file could not be read to its end: damage, mixed link types.
    File(anyhow::Error),
    /// pcapd stopped taking batches: its answer says why.
    Refused,
}

/// Runs `pcap import`.
pub async fn run(args: ImportArgs, ctx: &Context) -> Result<()> {
    let (endpoint, file) = ctx.targets.resolve(&args.file)?;
    let stdin = file == "-";
    let (name, input): (String, Box<dyn Read + Send>) = if stdin {
        if std::io::stdin().is_terminal() {
            bail!("standard input is a terminal: pipe a pcap or pcapng file into `pcap import -`");
        }
        ("standard input".to_owned(), Box::new(std::io::stdin()))
    } else {
        let f = File::open(Path::new(file)).with_context(|| format!("cannot open {file}"))?;
        (file.to_owned(), Box::new(f))
    };
    // The header first: what is no capture file at all is told before connecting.
    let capture_file = CaptureFile::open(&name, input)?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let (tx, rx) = mpsc::channel(QUEUED);
    let aliases = args.aliases.clone();
    let reader_name = name.clone();
    let reader =
        tokio::task::spawn_blocking(move || send_file(capture_file, &reader_name, aliases, &tx));
    let answer = client.import(ReceiverStream::new(rx)).await;
    let read = reader
        .await
        .map_err(|e| anyhow!("reading {name} failed: {e}"))?;
    let packets = match read {
        Ok(n) => n,
        Err(Stopped::File(e)) => return Err(e.context("nothing was imported")),
        // pcapd's answer says why.
        Err(Stopped::Refused) => 0,
    };
    let response = answer.map_err(status_error(&endpoint))?.into_inner();
    let capture = response
        .capture
        .ok_or_else(|| anyhow!("pcapd answered import without the capture"))?;
    let capture = super::capture(capture)?;
    let aliases = aliases_cell(&capture.aliases);
    eprintln!(
        "imported {packets} packets from {name} as capture {}{}",
        capture.id,
        if aliases.is_empty() || aliases == "-" {
            String::new()
        } else {
            format!(" ({aliases})")
        }
    );
    if ctx.json {
        print_json(&CaptureJson::from(&capture))
    } else {
        print_stdout(&format!("{}\n", capture.id))
    }
}

/// Reads the file and sends it: the header once the link type is known, record batches,
/// and the closing message with the number of packets, which is returned.
fn send_file(
    mut file: CaptureFile,
    name: &str,
    aliases: Vec<Alias>,
    tx: &mpsc::Sender<api::ImportMessage>,
) -> Result<u64, Stopped> {
    use api::import_message::Kind;
    let send = |kind: Kind| {
        tx.blocking_send(api::ImportMessage { kind: Some(kind) })
            .map_err(|_| Stopped::Refused)
    };
    let link_type: Cell<Option<u32>> = Cell::new(None);
    let refused = Cell::new(false);
    let mut batch = Vec::with_capacity(BATCH_BYTES + (64 << 10));
    let mut count = 0u32;
    let mut packets = 0u64;
    let read = file.read(
        |lt| match link_type.get() {
            None => {
                link_type.set(Some(lt));
                let spec = ImportSpec {
                    file_name: name.to_owned(),
                    aliases: aliases.clone(),
                    link_type: lt,
                    // The file's own snaplen may be smaller than its records (pcapng
                    // interfaces each have theirs): pcap's largest is taken instead.
                    snaplen: 0,
                };
                if send(Kind::Header((&spec).into())).is_err() {
                    refused.set(true);
                    bail!("pcapd stopped the import");
                }
                Ok(())
            }
            Some(first) if first == lt => Ok(()),
            Some(first) => bail!(
                "{name} mixes link types {} and {}: a capture holds packets of one link type; \
                 write each interface's packets to a file of its own (tshark -r FILE -Y \
                 'frame.interface_id == N' -w PART.pcapng) and import those",
                link_name(first),
                link_name(lt)
            ),
        },
        |p| {
            if p.data.len() > pcap_core::limits::MAX_SNAPLEN as usize {
                bail!(
                    "{name}: packet {} holds {} captured bytes; pcapd keeps at most {} of a \
                     packet (cut the file with `editcap -s {}`)",
                    p.number,
                    p.data.len(),
                    pcap_core::limits::MAX_SNAPLEN,
                    pcap_core::limits::MAX_SNAPLEN
                );
            }
            let orig_len = p.orig_len.max(p.data.len() as u32);
            encode_record(&mut batch, Resolution::Nano, p.ts_ns, orig_len, p.data);
            count += 1;
            packets += 1;
            if batch.len() >= BATCH_BYTES {
                let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_BYTES));
                let msg = Kind::Records(api::RecordBatch {
                    count,
                    records: records.into(),
                    last_sequence: packets,
                    nanoseconds: true,
                });
                count = 0;
                if send(msg).is_err() {
                    refused.set(true);
                    bail!("pcapd stopped the import");
                }
            }
            Ok(Next::More)
        },
    );
    if refused.get() {
        return Err(Stopped::Refused);
    }
    read.map_err(Stopped::File)?;
    if link_type.get().is_none() {
        return Err(Stopped::File(anyhow!(
            "{name} describes no interface: it holds no packets and no link type to import"
        )));
    }
    if count > 0 {
        send(Kind::Records(api::RecordBatch {
            count,
            records: batch.into(),
            last_sequence: packets,
            nanoseconds: true,
        }))?;
    }
    send(Kind::End(api::ImportEnd { packets }))?;
    Ok(packets)
}

/// A link type by its libpcap name where pcap knows it: `EN10MB (1)`.
fn link_name(link_type: u32) -> String {
    match super::decode::LINK_TYPES
        .iter()
        .find(|(lt, _)| *lt == link_type)
    {
        Some((_, name)) => format!("{name} ({link_type})"),
        None => format!("link type {link_type}"),
    }
}
