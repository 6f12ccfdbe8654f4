//! An interface a test can make disappear: a veth pair whose far end lives in a network
//! namespace of the test's own. The near end, in the daemon's namespace, is what a capture
//! is started on; the test deletes and re-creates it, or takes it down and up again.
//! Traffic goes from the near end's address to the far end's, inside 10.200.0.0/16, so it
//! never leaves the host. Dropping the pair removes the link and the namespace.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::cli::run_bounded;
use crate::traffic::payload;
use crate::wait::{eventually, DEFAULT_WAIT};

/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(10);
/// Packets sent between short pauses.
const BURST: u64 = 100;

/// A veth pair `pcv<pid><tag>` (here) / `pcp<pid><tag>` (in namespace `pcapt-<pid>-<tag>`),
/// with 10.200.N.1/24 here and 10.200.N.2/24 there.
#[derive(Debug)]
pub struct VethPair {
    host: String,
    peer: String,
    netns: String,
    subnet: u8,
}

// === impl VethPair ===

impl VethPair {
    /// Makes the namespace and the pair, addressed and up. `tag` (0-9) tells apart the
    /// pairs of tests running at the same time in one process.
    pub fn create(tag: u8) -> VethPair {
        assert!(tag < 10, "veth tag {tag} is not a single digit");
        let pid = std::process::id();
        let pair = VethPair {
            host: format!("pcv{pid}{tag}"),
            peer: format!("pcp{pid}{tag}"),
            netns: format!("pcapt-{pid}-{tag}"),
            subnet: ((pid % 50) * 5 + u32::from(tag % 5) + 1) as u8,
        };
        // Left over from an earlier run that was killed before it could clean up.
        let _ = quiet(&["link", "del", &pair.host]);
        let _ = quiet(&["netns", "del", &pair.netns]);
        ip(&["netns", "add", &pair.netns]);
        pair.add_link();
        pair
    }

    /// The interface to capture on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The far end, inside the namespace.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The namespace's `ip netns` name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Makes the namespace and the pair again after [`VethPair::delete_netns`], once the
    /// old pair is gone (the kernel removes it when nothing holds the old namespace).
    pub fn recreate_netns(&self) {
        let gone = format!("/sys/class/net/{}", self.host);
        eventually(
            DEFAULT_WAIT,
            "the old pair to go with its namespace",
            || {
                let _ = quiet(&["link", "del", &self.host]);
                !std::path::Path::new(&gone).exists()
            },
        );
        let _ = quiet(&["netns", "del", &self.netns]);
        ip(&["netns", "add", &self.netns]);
        self.add_link();
    }

    /// `ip netns del`: the name goes; the namespace, and the pair with it, when nothing
    /// holds it any more.
    pub fn delete_netns(&self) {
        ip(&["netns", "del", &self.netns]);
    }

    /// The near end's address.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.subnet, 1)
    }

    /// The far end's address.
    pub fn peer_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.subnet, 2)
    }

    /// Creates the pair (again), moves the far end into the namespace, addresses both ends
    /// and brings them up; waits until the near end is operationally up.
    pub fn add_link(&self) {
        let (host, peer, ns) = (&self.host, &self.peer, &self.netns);
        ip(&[
            "link",
            "add",
            host,
            "address",
            &self.mac(1),
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "address",
            &self.mac(2),
        ]);
        ip(&["link", "set", peer, "netns", ns]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.host_addr()),
            "dev",
            host,
        ]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", self.peer_addr()),
            "dev",
            peer,
        ]);
        ip(&["-n", ns, "link", "set", peer, "up"]);
        self.set_up(true);
    }

    /// Deletes the pair (`ip link del`); the namespace stays.
    pub fn delete_link(&self) {
        ip(&["link", "del", &self.host]);
    }

    /// `ip link set HOST up|down`. Up waits for the link to be operational and sets the far
    /// end's neighbour entry, so that the first packets are not held back by ARP.
    pub fn set_up(&self, up: bool) {
        let host = &self.host;
        ip(&["link", "set", host, if up { "up" } else { "down" }]);
        if !up {
            return;
        }
        let operstate = format!("/sys/class/net/{host}/operstate");
        eventually(DEFAULT_WAIT, &format!("{host} to be up"), || {
            std::fs::read_to_string(&operstate).is_ok_and(|s| s.trim() == "up")
        });
        ip(&[
            "neigh",
            "replace",
            &self.peer_addr().to_string(),
            "lladdr",
            &self.mac(2),
            "dev",
            host,
            "nud",
            "permanent",
        ]);
    }

    /// Sends one UDP datagram per sequence number (see [`crate::payload`]) from the near
    /// end to the far end's `port`, in bursts with short pauses.
    pub fn send_udp_seq(&self, port: u16, seqs: Range<u64>, payload_len: usize) {
        let sock = UdpSocket::bind(SocketAddrV4::new(self.host_addr(), 0))
            .unwrap_or_else(|e| panic!("bind UDP sender on {}: {e}", self.host_addr()));
        let dst = SocketAddrV4::new(self.peer_addr(), port);
        for seq in seqs {
            sock.send_to(&payload(seq, payload_len), dst)
                .unwrap_or_else(|e| panic!("send UDP to {dst}: {e}"));
            if seq % BURST == BURST - 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// A locally administered MAC address for end `end` (1 here, 2 there).
    fn mac(&self, end: u8) -> String {
        format!("02:00:c8:{:02x}:00:{end:02x}", self.subnet)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting either end deletes both; the link may already be gone.
        let _ = quiet(&["link", "del", &self.host]);
        if let Err(e) = quiet(&["netns", "del", &self.netns]) {
            eprintln!("could not remove network namespace {}: {e}", self.netns);
        }
    }
}

/// Runs `ip ARGS`; panics with its message if it fails.
fn ip(args: &[&str]) {
    if let Err(e) = quiet(args) {
        panic!("{e}");
    }
}

/// Runs `ip ARGS`; its message as the error if it fails.
fn quiet(args: &[&str]) -> Result<(), String> {
    let what = format!("ip {}", args.join(" "));
    let out = run_bounded(Command::new("ip").args(args), &what, IP_LIMIT);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            out.stderr.trim()
        ))
    }
}
