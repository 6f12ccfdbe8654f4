//! Harness of the end-to-end tests: it builds and starts a real `pcapd` on a temporary
//! socket and data directory, drives the real `pcap` binary against it, makes real traffic
//! on loopback and reads what comes back with libpcap itself.
//!
//! A test reads like this:
//! ```no_run
//! use pcapd_e2e::*;
//! if !require_root() { return; }
//! let d = Daemon::start();
//! let id = d.init(&["lo", "udp port 23999"]);
//! d.ok(&["start", &id.to_string()]);
//! send_udp(23999, 10, 64);
//! d.wait_spooled(id, 10);
//! assert_eq!(d.replay(&[&id.to_string()]).packets.len(), 10);
//! ```

#![forbid(unsafe_code)]

mod bins;
mod captures;
mod certs;
mod cli;
mod daemon;
mod expect;
mod netns;
mod privilege;
mod python;
mod savefile;
mod scrape;
mod time;
mod traffic;
mod tshark;
mod users;
mod wait;

pub use bins::{pcap_bin, pcapd_bin};
pub use captures::{interface_names, list_json};
pub use certs::Certs;
pub use cli::{run_bounded, Output, Pcap, Running};
pub use daemon::{pcapd_once, pcapd_tls, Daemon, DaemonBuilder};
pub use expect::{assert_unknown_capture, has_word};
pub use netns::VethPair;
pub use privilege::require_root;
pub use python::{generate_python_client, python_venv};
pub use savefile::{
    read_pcap, tcpdump_count, udp_dst_ports, Packet, PcapFile, Tcp, Udp, LINUX_SLL2,
};
pub use scrape::{counter_total, http_accepting, Scrape, OPENMETRICS_ACCEPT};
pub use time::{rfc3339, unix_secs};
pub use traffic::{
    free_port, payload, payload_seq, send_tcp, send_udp, send_udp_seq, PAYLOAD_MAGIC,
};
pub use tshark::{capinfos_packets, tshark_count, tshark_file, tshark_stdin};
pub use users::{UnixGroup, UnixUser};
pub use wait::{eventually, eventually_ok, DEFAULT_WAIT};
