//! The page `--out` writes: how the figures were made, on what, and the table.

use std::fmt::Write as _;

use crate::capture::BUFFER_KIB;
use crate::daemon::Bins;
use crate::packets::Generated;
use crate::report::{run_line, Run};
use crate::Cli;

/// `path` relative to the current directory (the checkout) when it is under it.
fn relative(path: &std::path::Path) -> &std::path::Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}

/// The whole Markdown page.
pub fn render(cli: &Cli, bins: &Bins, generated: Generated, table: &str, runs: &[Run]) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = String::from("# Benchmarks\n\n");
    let _ = write!(
        s,
        "Made by `bash bench/run.sh {args}` (the program is `bench/`, `pcapd-bench`); the \
         figures are medians of {runs} runs, and each ratio is taken within a run, against \
         the peer measured in that same run, before the median. They describe this machine \
         and the code at the commit below; run the command again after changing pcapd.\n\n\
         ## Machine\n\n{machine}\n\
         Binaries: `{pcapd}` and `{pcap}`.\n\n\
         ## Figures\n\n{table}\n",
        args = args.join(" "),
        runs = runs.len(),
        machine = crate::machine::describe(),
        pcapd = relative(&bins.pcapd).display(),
        pcap = relative(&bins.pcap).display(),
    );
    let _ = write!(
        s,
        "## How they are made\n\n\
         Two network namespaces of the run, `tx` and `rx`, are joined by a veth pair; IPv6 is \
         off in both and nothing else is attached, so no packet leaves them.\n\n\
         - **Traffic**: a pcap file of {packets} Ethernet/IPv4 frames ({mb:.0} MB), 64, 512 \
           and 1500 bytes in turn, each size as UDP and as TCP, with correct checksums, from \
           the `tx` end's MAC and address to the `rx` end's MAC and an unassigned address on \
           its subnet (forwarding is off in `rx`, so its kernel drops them without replying). \
           `tcpreplay --topspeed -i VETH FILE` sends it from `tx`; \"sent\" is tcpreplay's \
           count of successful packets and the send time is tcpreplay's.\n\
         - **tcpdump**: `tcpdump -i VETH -B {buffer} -w FILE` in `rx` (`-B` in KiB: the \
           32 MiB ring pcapd asks for; otherwise tcpdump's defaults: snaplen 262144, \
           promiscuous, no filter). Its CPU (utime+stime of /proc/PID/stat) and VmHWM are read \
           once its file has not grown for 2 s (longer than its 1 s libpcap timeout, after which the last ring block reaches it), just before SIGINT; drops are its \"dropped by \
           kernel\" line.\n\
         - **pcapd**: a fresh `pcapd --socket DIR/pcapd.sock --data-dir DIR/data` in `rx`, \
           `pcap init VETH` (no filter), `pcap start`, send, wait until `spooled_packets` \
           equals the count sent (or stops growing for 2 s), `pcap stop`. CPU is the daemon's \
           (all threads) from before `pcap start` to after `pcap stop`; drops are \
           `counters.dropped_kernel` of `pcap --json list`.\n\
         - **captured**: the records of tcpdump's file and of every pcapd spool segment, read \
           back with libpcap, counting those from the sender's MAC; records from anywhere else in \
           these runs: {extra}. packets/s is bounded by how fast tcpreplay sends here.\n\
         - **replay**: `pcap replay ID | cat > /dev/null` (the daemon hands the CLI the \
           segment files), the same with `PCAP_NO_HANDOFF=1` (records streamed over gRPC), \
           `cat SEGMENTS | cat > /dev/null` and \
           `tcpdump -r FILE -w - | cat > /dev/null` (FILE is tcpdump's capture of the same \
           packets), as `bash -c` pipelines with pipefail, after an untimed `cat` of all files; \
           MB/s is 10^6 bytes of the input files per second of wall clock.\n\
         - **listen latency**: a capture of `udp port 47001` on `lo` in `rx`, `pcap listen ID` \
           read by the benchmark through a pipe (savefile parsed record by record), and \
           {pps} UDP datagrams a second for {secs} s sent to 127.0.0.1 from inside `rx`, each \
           with its CLOCK_REALTIME send time; latency is the time the record's bytes were read \
           from the pipe minus the send time.\n\
         - **memory**: a fresh pcapd, {captures} captures defined with `pcap init lo 'udp port \
           N'`, VmRSS after 1 s idle. Then the first is started, {stall_pps} datagrams of 1000 \
           bytes a second go through it, and a `pcap listen` whose stdout is a pipe nobody \
           reads is connected for {stall} s; VmRSS is sampled every 100 ms. \"before\" is just \
           before the reader connects, \"after\" is 2 s after it is killed.\n\n",
        packets = generated.packets,
        extra = runs
            .iter()
            .map(|r| r.tcpdump.other + r.pcapd.other)
            .sum::<u64>(),
        mb = generated.file_bytes as f64 / 1e6,
        buffer = BUFFER_KIB,
        pps = cli.latency_pps,
        secs = cli.latency_secs,
        captures = cli.captures,
        stall_pps = cli.stall_pps,
        stall = cli.stall_secs,
    );
    s.push_str("## Each run\n\n```\n");
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(s, "{}", run_line(i + 1, r));
    }
    s.push_str("```\n");
    s
}
