//! Two network namespaces of this run joined by a veth pair: `tx` sends, `rx` captures.
//! Nothing else is attached to them, so no packet leaves them. IPv6 is off in both (no
//! router solicitations or DAD on the wire); the generated packets go to an address on the
//! receiving side's subnet that nobody holds, and forwarding is off there, so the
//! receiving kernel drops them without a reply: the only packets on the veth are the ones
//! sent. `lo` is up in the receiving namespace for the listen and memory figures.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::guard::{self, run_ok};
use crate::packets::Endpoints;

const IP_LIMIT: Duration = Duration::from_secs(15);

/// The two namespaces and the veth pair; dropping it deletes both namespaces (and so the
/// pair).
#[derive(Debug)]
pub struct Lab {
    pub tx_ns: String,
    pub rx_ns: String,
    pub tx_if: String,
    pub rx_if: String,
    subnet: u8,
    created: Vec<String>,
}

// === impl Lab ===

impl Lab {
    /// Makes `pcapb-<pid>-tx` and `pcapb-<pid>-rx` with 10.201.N.1/24 and 10.201.N.2/24.
    pub fn create() -> Result<Lab> {
        let pid = std::process::id();
        let mut lab = Lab {
            tx_ns: format!("pcapb-{pid}-tx"),
            rx_ns: format!("pcapb-{pid}-rx"),
            tx_if: format!("pbt{pid}"),
            rx_if: format!("pbr{pid}"),
            subnet: (pid % 250) as u8 + 1,
            created: Vec::new(),
        };
        for ns in [lab.tx_ns.clone(), lab.rx_ns.clone()] {
            guard::register_netns(&ns);
            ip(&["netns", "add", &ns])?;
            lab.created.push(ns.clone());
            for key in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv4.ip_forward=0",
            ] {
                in_ns(&ns, &["sysctl", "-qw", key])?;
            }
        }
        let (tx, rx) = (lab.tx_ns.clone(), lab.rx_ns.clone());
        ip(&[
            "-n",
            &tx,
            "link",
            "add",
            &lab.tx_if,
            "address",
            &mac_str(&lab.tx_mac()),
            "type",
            "veth",
            "peer",
            "name",
            &lab.rx_if,
            "address",
            &mac_str(&lab.rx_mac()),
            "netns",
            &rx,
        ])?;
        let tx_addr = format!("{}/24", lab.tx_addr());
        let rx_addr = format!("{}/24", lab.rx_addr());
        ip(&["-n", &tx, "addr", "add", &tx_addr, "dev", &lab.tx_if])?;
        ip(&["-n", &rx, "addr", "add", &rx_addr, "dev", &lab.rx_if])?;
        ip(&["-n", &tx, "link", "set", &lab.tx_if, "up"])?;
        ip(&["-n", &rx, "link", "set", &lab.rx_if, "up"])?;
        ip(&["-n", &rx, "link", "set", "lo", "up"])?;
        let (tx_if, rx_if) = (lab.tx_if.clone(), lab.rx_if.clone());
        guard::wait_for(Duration::from_secs(10), "the veth pair to be up", || {
            Ok(operstate(&tx, &tx_if)? == "up" && operstate(&rx, &rx_if)? == "up")
        })?;
        Ok(lab)
    }

    /// Sender and receiver of the generated packets.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            src_mac: self.tx_mac(),
            dst_mac: self.rx_mac(),
            src_ip: self.tx_addr(),
            dst_ip: Ipv4Addr::new(10, 201, self.subnet, 3),
        }
    }

    /// A command run inside namespace `ns` (`ip netns exec NS PROGRAM`).
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    fn tx_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.subnet, 1)
    }

    fn rx_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.subnet, 2)
    }

    fn tx_mac(&self) -> [u8; 6] {
        [0x02, 0x00, 0xc9, self.subnet, 0x00, 0x01]
    }

    fn rx_mac(&self) -> [u8; 6] {
        [0x02, 0x00, 0xc9, self.subnet, 0x00, 0x02]
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            // Deleting a namespace deletes the veth end in it, and so the pair.
            match Command::new("ip").args(["netns", "del", &ns]).status() {
                Ok(s) if s.success() => guard::forget_netns(&ns),
                _ => eprintln!("pcapd-bench: could not delete network namespace {ns}"),
            }
        }
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn operstate(ns: &str, ifname: &str) -> Result<String> {
    let out = run_ok(
        Lab::command(ns, "cat").arg(format!("/sys/class/net/{ifname}/operstate")),
        "read operstate",
        IP_LIMIT,
    )?;
    Ok(out.stdout.trim().to_owned())
}

fn ip(args: &[&str]) -> Result<()> {
    run_ok(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
        IP_LIMIT,
    )
    .map(drop)
}

fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    let what = format!("ip netns exec {ns} {}", args.join(" "));
    run_ok(Lab::command(ns, args[0]).args(&args[1..]), &what, IP_LIMIT).map(drop)
}
