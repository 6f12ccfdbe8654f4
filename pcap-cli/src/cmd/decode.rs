//! `pcap decode`: the roundtrips (HTTP requests with their responses, DNS queries with their
//! answers) of a capture, through the daemon's Decode stream, or of a pcap/pcapng file with
//! no daemon at all; printed as JSON lines or a table as they come.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use pcap_core::api::v1::{self as api, decode_message::Kind};
use pcap_core::domain::DecodeSpec;
use pcap_decode::{DecodeConfig, Decoder, Packet, ProtoRule, Roundtrip};

use super::notices::Notices;
use super::Context;
use crate::bpf::{Filter, FilterError};
use crate::capfile::{CaptureFile, Next};
use crate::output::Flow;
use crate::roundtrips::RoundtripWriter;
use crate::rpc::status_error;
use crate::values::{self, Usage};

/// Arguments of `pcap decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`)
    #[arg(
        value_name = "[REMOTE:]ID|ALIAS",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    capture: Option<String>,
    /// Decode a pcap or pcapng file instead of a capture (`-`: standard input); no daemon
    /// is needed
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// After what is spooled, go on with new packets until the capture stops
    #[arg(long, conflicts_with = "file")]
    live: bool,
    /// Only packets from T on (RFC 3339, unix seconds, or how long ago: 30s, 5m, 2h; not
    /// before 1970)
    #[arg(long, value_name = "T", value_parser = values::since, conflicts_with = "file")]
    since: Option<i64>,
    /// Only packets before T (RFC 3339, unix seconds, or how long ago: 30s, 5m, 2h; not
    /// before 1970)
    #[arg(long, value_name = "T", value_parser = values::until, conflicts_with = "file")]
    until: Option<i64>,
    /// Only packets matching this BPF filter
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    /// Decode only this protocol (http, dns, http2, grpc), on these server ports if given
    /// (`http:80,8080`); repeat for several. Without it, every protocol is recognised by
    /// its content on any port
    #[arg(long = "proto", value_name = "PROTO[:PORTS]")]
    protos: Vec<ProtoRule>,
}

/// Runs `pcap decode`.
pub async fn run(args: DecodeArgs, ctx: &Context) -> Result<()> {
    pcap_core::limits::check_decode_rules("--proto", args.protos.len()).map_err(Usage::from)?;
    match (&args.file, &args.capture) {
        (Some(path), _) => {
            let filter = args.filter.as_deref().map(str::trim).unwrap_or_default();
            decode_file(path, filter, args.protos, ctx.json)
        }
        (None, Some(capture)) => decode_capture(capture, &args, ctx).await,
        (None, None) => {
            Err(Usage("give a capture ([REMOTE:]ID|ALIAS) or --file FILE".into()).into())
        }
    }
}

// === From a capture ===

/// Streams a capture's roundtrips from the daemon that holds it.
async fn decode_capture(capture: &str, args: &DecodeArgs, ctx: &Context) -> Result<()> {
    let (endpoint, name) = ctx.targets.resolve(capture)?;
    let spec = DecodeSpec {
        selector: super::manage::selector(false, name)?,
        live: args.live,
        since_unix_ns: args.since,
        until_unix_ns: args.until,
        filter: args.filter.clone().unwrap_or_default().trim().to_owned(),
        protocols: args.protos.clone(),
    };
    let request = api::DecodeRequest::from(&spec);
    DecodeSpec::try_from(request.clone()).map_err(Usage::from)?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let mut stream = client
        .decode(request)
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    let header = match stream
        .message()
        .await
        .map_err(status_error(&endpoint))?
        .and_then(|m| m.kind)
    {
        Some(Kind::Header(h)) => h,
        Some(_) => {
            bail!("pcapd sent roundtrips before the stream header; this pcap cannot read it")
        }
        None => bail!("pcapd ended the stream before sending its header"),
    };
    let mut notices = Notices::new(&spec.selector, header.capture_id);
    let mut out = RoundtripWriter::stdout(ctx.json);
    if out.start()? == Flow::ReaderGone || out.flush()? == Flow::ReaderGone {
        return Ok(());
    }
    let mut batch = Vec::new();
    while let Some(message) = stream.message().await.map_err(status_error(&endpoint))? {
        match message.kind {
            Some(Kind::Roundtrips(b)) => {
                batch.clear();
                for rt in b.roundtrips {
                    batch.push(Roundtrip::try_from(rt).context(
                        "pcapd sent a roundtrip this pcap cannot read (compare `pcap version`)",
                    )?);
                }
                if out.write(&batch)? == Flow::ReaderGone || out.flush()? == Flow::ReaderGone {
                    return Ok(());
                }
            }
            Some(Kind::Notice(n)) => notices.tell(n),
            // A repeated header or a kind newer than this pcap: nothing to show.
            Some(Kind::Header(_)) | None => {}
        }
    }
    out.flush()?;
    Ok(())
}

// === From a file ===

/// Link types the decoder reads (see [`pcap_decode::Packet::link_type`]).
pub(super) const LINK_TYPES: [(u32, &str); 8] = [
    (0, "NULL"),
    (1, "EN10MB"),
    (12, "RAW"),
    (14, "RAW"),
    (101, "RAW"),
    (108, "LOOP"),
    (113, "LINUX_SLL"),
    (276, "LINUX_SLL2"),
];

fn decodable(link_type: u32) -> bool {
    LINK_TYPES.iter().any(|(lt, _)| *lt == link_type)
}

/// Decodes a pcap or pcapng file (`-`: standard input) with no daemon.
fn decode_file(path: &Path, filter: &str, protos: Vec<ProtoRule>, json: bool) -> Result<()> {
    let stdin = path == Path::new("-");
    let (name, input): (String, Box<dyn Read + Send>) = if stdin {
        ("standard input".to_owned(), Box::new(io::stdin()))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        (path.display().to_string(), Box::new(file))
    };
    let mut file = CaptureFile::open(&name, input)?;
    let mut decoder = Decoder::new(DecodeConfig {
        rules: protos,
        ..DecodeConfig::default()
    });
    let mut filters = Filters::new(filter);
    let mut out = RoundtripWriter::stdout(json);
    let mut batch = Vec::new();
    let mut flow = Flow::Continue;
    let mut decoded = 0u64;
    let mut refused = BTreeSet::new();

    let read = file.read(
        |link_type| {
            if !decodable(link_type) && refused.insert(link_type) {
                eprintln!(
                    "pcap: {name}: {}: its packets are skipped",
                    unknown(link_type)
                );
            }
            Ok(())
        },
        |p| {
            if !decodable(p.link_type) || !filters.pass(p.link_type, p.data)? {
                return Ok(Next::More);
            }
            decoded += 1;
            let packet = Packet {
                link_type: p.link_type,
                ts_ns: p.ts_ns,
                data: p.data,
                orig_len: p.orig_len,
                seq: p.number,
            };
            decoder.push(&packet, &mut batch);
            if !batch.is_empty() {
                flow = out.write(&batch)?;
                batch.clear();
                // A pipe is read as it is written: show its roundtrips as they come.
                if stdin && flow == Flow::Continue {
                    flow = out.flush()?;
                }
            }
            Ok(match flow {
                Flow::Continue => Next::More,
                Flow::ReaderGone => Next::Stop,
            })
        },
    );
    if flow == Flow::ReaderGone {
        return Ok(());
    }
    // What is still open is reported, also when the file is damaged: it ends there.
    decoder.finish(&mut batch);
    if out.write(&batch)? == Flow::ReaderGone || out.flush()? == Flow::ReaderGone {
        return Ok(());
    }
    read?;
    let stats = decoder.stats();
    if stats.flows_evicted > 0 {
        eprintln!(
            "pcap: {} flows were dropped to stay within the decoder's memory bound (a \
             roundtrip still open on one says so in its notes)",
            stats.flows_evicted
        );
    }
    if decoded == 0 && !refused.is_empty() {
        let seen: Vec<String> = refused.iter().map(u32::to_string).collect();
        bail!(
            "{name} holds no packet pcap decode can read: its link type ({}) is none of {}",
            seen.join(", "),
            known_link_types()
        );
    }
    Ok(())
}

/// "link type 147 (USER0) is not one pcap decode reads".
fn unknown(link_type: u32) -> String {
    let name = i32::try_from(link_type)
        .ok()
        .and_then(crate::bpf::link_type_name)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    format!("link type {link_type}{name} is not one pcap decode reads")
}

fn known_link_types() -> String {
    let mut names: Vec<&str> = LINK_TYPES.iter().map(|(_, n)| *n).collect();
    names.dedup();
    names.join(", ")
}

/// `--filter` of a file, compiled by libpcap once per link type the file holds.
struct Filters {
    text: String,
    compiled: Vec<(u32, Filter)>,
}

impl Filters {
    fn new(text: &str) -> Self {
        Filters {
            text: text.to_owned(),
            compiled: Vec::new(),
        }
    }

    /// Whether a packet of `link_type` passes the filter (every packet does without one).
    fn pass(&mut self, link_type: u32, data: &[u8]) -> Result<bool> {
        if self.text.is_empty() {
            return Ok(true);
        }
        if let Some((_, program)) = self.compiled.iter().find(|(lt, _)| *lt == link_type) {
            return Ok(program.matches(data));
        }
        let program = compile(&self.text, link_type)?;
        let pass = program.matches(data);
        self.compiled.push((link_type, program));
        Ok(pass)
    }
}

/// Compiles `filter` for packets of `link_type`, as tcpdump would for such a file.
fn compile(filter: &str, link_type: u32) -> Result<Filter> {
    // Files carry LINKTYPE_ values; libpcap compiles for DLT_ values.
    let dlt = pcap_core::savefile::dlt_of(link_type);
    let lt = i32::try_from(dlt).unwrap_or(i32::MAX);
    Filter::compile(filter, lt).map_err(|e| match e {
        FilterError::Invalid(e) => {
            let shown: String = filter.chars().take(200).collect();
            Usage(format!("invalid filter \"{shown}\": {e}")).into()
        }
        FilterError::Unavailable(e) => anyhow::anyhow!("cannot apply --filter: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_per_link_type_and_select() {
        let mut f = Filters::new("udp");
        // An Ethernet frame carrying IPv4/UDP, and the same on LINUX_SLL2 would differ.
        let mut frame = vec![0u8; 12];
        frame.extend([0x08, 0x00]);
        frame.extend([
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ]);
        frame.extend([0, 53, 0, 53, 0, 8, 0, 0]);
        assert!(f.pass(1, &frame).unwrap());
        frame[23] = 6; // TCP
        assert!(!f.pass(1, &frame).unwrap());
        assert_eq!(f.compiled.len(), 1);
        assert!(Filters::new("").pass(1, &frame).unwrap());
        // The same IPv4 packet on LINKTYPE_RAW (101), as pcapng files carry it.
        assert!(!f.pass(101, &frame[14..]).unwrap());
        frame[23] = 17;
        assert!(f.pass(101, &frame[14..]).unwrap());
        let e = Filters::new("port nonsense")
            .pass(1, &frame)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid filter \"port nonsense\""), "{e}");
    }

    #[test]
    fn unknown_link_types_are_named() {
        let text = unknown(105);
        assert!(text.starts_with("link type 105 (IEEE802_11)"), "{text}");
        assert!(decodable(276) && !decodable(147));
        assert_eq!(
            known_link_types(),
            "NULL, EN10MB, RAW, LOOP, LINUX_SLL, LINUX_SLL2"
        );
    }
}
