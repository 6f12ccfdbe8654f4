//! Interfaces as libpcap sees them, and the checks `init` makes: the interface exists, its
//! link type, and the filter compiles for it (so a bad filter is refused with libpcap's
//! own message before anything runs).

use pcap::{Capture, Device, Linktype};
use pcap_core::api::v1 as api;
use pcap_core::domain::Target;

use crate::{Error, Result};

/// libpcap's pseudo-device for all interfaces.
pub const ANY: &str = "any";
/// DLT_LINUX_SLL2: what all-interface captures are recorded as when libpcap offers it.
pub const LINUX_SLL2: i32 = 276;

/// Every interface, as the API describes them.
pub fn interfaces() -> Result<Vec<api::Interface>> {
    let devices =
        Device::list().map_err(|e| Error::Unavailable(format!("listing interfaces: {e}")))?;
    Ok(devices
        .into_iter()
        .filter(|d| d.name != ANY)
        .map(|d| api::Interface {
            addresses: d.addresses.iter().map(format_address).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            description: d.desc.unwrap_or_default(),
            name: d.name,
        })
        .collect())
}

/// Every address of this host's interfaces.
pub fn host_addresses() -> Vec<std::net::IpAddr> {
    Device::list()
        .map(|ds| {
            ds.iter()
                .flat_map(|d| d.addresses.iter().map(|a| a.addr))
                .collect()
        })
        .unwrap_or_default()
}

fn format_address(a: &pcap::Address) -> String {
    let prefix = match a.netmask {
        Some(std::net::IpAddr::V4(m)) => u32::from(m).count_ones(),
        Some(std::net::IpAddr::V6(m)) => u128::from(m).count_ones(),
        None => return a.addr.to_string(),
    };
    format!("{}/{prefix}", a.addr)
}

/// The libpcap device name of a target.
pub fn device_name(target: &Target) -> &str {
    target.single_interface().unwrap_or(ANY)
}

/// Every interface of pcapd's own namespace, or of the namespace `netns` names.
pub fn interfaces_in(netns: Option<&pcap_core::domain::Netns>) -> Result<Vec<api::Interface>> {
    match netns {
        None => interfaces(),
        Some(ns) => crate::netns::run_in(ns, namespace_interfaces).map(|(list, _)| list),
    }
}

/// Every interface of the network namespace the calling thread is in, from the kernel
/// (netlink): libpcap's list also reads sysfs, which shows the host's interfaces whatever
/// namespace the thread is in.
pub fn namespace_interfaces() -> Result<Vec<api::Interface>> {
    use nix::net::if_::InterfaceFlags as F;
    let all = nix::ifaddrs::getifaddrs()
        .map_err(|e| Error::Unavailable(format!("listing interfaces: {}", e.desc())))?;
    let mut out: Vec<api::Interface> = Vec::new();
    for i in all {
        let pos = match out.iter().position(|o| o.name == i.interface_name) {
            Some(p) => p,
            None => {
                out.push(api::Interface {
                    name: i.interface_name.clone(),
                    up: i.flags.contains(F::IFF_UP),
                    running: i.flags.contains(F::IFF_RUNNING),
                    loopback: i.flags.contains(F::IFF_LOOPBACK),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let ip = i.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        });
        let mask = i.netmask.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| u32::from(v4.ip()).count_ones())
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| u128::from(v6.ip()).count_ones())
                })
        });
        if let Some(ip) = ip {
            out[pos].addresses.push(match mask {
                Some(m) => format!("{ip}/{m}"),
                None => ip.to_string(),
            });
        }
    }
    Ok(out)
}

/// Checks that the target's interfaces exist (in the namespace the thread is in, for a
/// target in another namespace).
pub fn check_exists(target: &Target) -> Result<()> {
    if target.all_interfaces() {
        return Ok(());
    }
    let (known, whose) = match &target.netns {
        None => (interfaces()?, String::new()),
        Some(ns) => (namespace_interfaces()?, format!(" in {ns}")),
    };
    let names: Vec<String> = known.into_iter().map(|i| i.name).collect();
    let Some(name) = target.interfaces.iter().find(|n| !names.contains(n)) else {
        return Ok(());
    };
    Err(Error::Invalid(format!(
        "unknown interface {name:?}{whose}; its interfaces: {} (see `pcap ifaces`), or leave \
         it empty to capture on all",
        names.join(", ")
    )))
}

/// Opens the device to learn its link type and compiles `filter` for it. An interface that
/// cannot be opened now (down) is checked against a dead handle of its sysfs link type.
/// Several interfaces are captured on `any` as LINUX_SLL2, which they need.
pub fn probe(target: &Target, filter: &str, snaplen: u32) -> Result<u32> {
    let name = device_name(target);
    let opened =
        Capture::from_device(name).and_then(|c| c.snaplen(snaplen as i32).timeout(10).open());
    let link = match opened {
        Ok(mut cap) => {
            if target.single_interface().is_none() {
                let _ = cap.set_datalink(Linktype(LINUX_SLL2));
            }
            let link = cap.get_datalink();
            if target.interfaces.len() > 1 && link.0 != LINUX_SLL2 {
                return Err(Error::Invalid(format!(
                    "a capture on several interfaces is recorded as LINUX_SLL2 ({LINUX_SLL2}), \
                     which this libpcap does not offer (it gave link type {}): capture on one \
                     interface, or on all",
                    link.0
                )));
            }
            compile_check(&cap, filter)?;
            link
        }
        Err(e) => {
            tracing::debug!(device = name, error = %e, "probing with a dead handle");
            let link = match target.interfaces.len() {
                0 | 1 => Linktype(sysfs_link_type(name)),
                _ => Linktype(LINUX_SLL2),
            };
            let dead = Capture::dead(link).map_err(|e| Error::Invalid(e.to_string()))?;
            compile_check(&dead, filter)?;
            link
        }
    };
    Ok(link.0 as u32)
}

/// Compiles `filter` for a capture of `link_type`, for replay filtering.
pub fn compile_offline(link_type: u32, filter: &str) -> Result<pcap::BpfProgram> {
    // Spools carry LINKTYPE_ values (an imported RAW file: 101); libpcap compiles for DLT_.
    let dlt = pcap_core::savefile::dlt_of(link_type);
    let dead = Capture::dead(Linktype(dlt as i32)).map_err(|e| Error::Invalid(e.to_string()))?;
    dead.compile(filter, true)
        .map_err(|e| bad_filter(filter, e))
}

fn compile_check<T: pcap::Activated + ?Sized>(cap: &Capture<T>, filter: &str) -> Result<()> {
    cap.compile(filter, true)
        .map(drop)
        .map_err(|e| bad_filter(filter, e))
}

fn bad_filter(filter: &str, e: pcap::Error) -> Error {
    // The filter is echoed (shortened): a long one would not fit in the reply's headers.
    let shown: String = filter.chars().take(200).collect();
    let more = if shown.len() < filter.len() {
        "..."
    } else {
        ""
    };
    Error::Invalid(format!("invalid filter \"{shown}{more}\": {e}"))
}

/// ARPHRD type from sysfs mapped to a DLT: Ethernet unless it says otherwise.
fn sysfs_link_type(name: &str) -> i32 {
    let t = std::fs::read_to_string(format!("/sys/class/net/{name}/type")).unwrap_or_default();
    match t.trim() {
        "65534" => 12, // ARPHRD_NONE (tun): DLT_RAW
        _ => 1,        // DLT_EN10MB, also what libpcap gives for loopback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP segment from 10.0.0.1:40000 to 10.0.0.2:`dport`, without a link header.
    fn raw_tcp(dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[32] = 0x50;
        p
    }

    #[test]
    fn filters_compile_for_a_raw_spool_by_its_linktype() {
        // LINKTYPE_RAW (101), as an imported file carries it: libpcap knows it as DLT_RAW.
        let prog = compile_offline(101, "tcp port 80").unwrap();
        assert!(prog.filter(&raw_tcp(80)));
        assert!(!prog.filter(&raw_tcp(81)));
    }
}
