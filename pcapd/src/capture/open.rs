//! Opening a capture handle on a device, and telling a passing outage (interface gone or
//! down, retried) from a lasting failure.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;

use pcap::{Active, Capture, Linktype, Precision};
use pcap_core::savefile::{Resolution, MAGIC_NSEC, MAGIC_USEC};

use super::CaptureParams;

/// What opening a capture's device takes: owned, so that a ring can be opened on another
/// thread while the capture thread goes on reading the current one.
#[derive(Debug, Clone)]
pub struct Opening {
    pub id: pcap_core::domain::CaptureId,
    pub device: String,
    pub snaplen: u32,
    pub promisc: bool,
    pub all_interfaces: bool,
    pub link_type: u32,
    /// Bytes of kernel ring.
    pub ring_bytes: u32,
    /// Whether live readers are served (the short read timeout).
    pub quick: bool,
}

impl Opening {
    pub fn of(p: &CaptureParams, ring_bytes: u32, quick: bool) -> Opening {
        Opening {
            id: p.id,
            device: p.device.clone(),
            snaplen: p.snaplen,
            promisc: p.promisc,
            all_interfaces: p.all_interfaces,
            link_type: p.link_type,
            ring_bytes,
            quick,
        }
    }
}

/// libpcap read timeout while someone reads the capture live: the kernel hands over a
/// partly filled block after this long, which bounds how late a packet reaches them.
const QUICK_TIMEOUT_MS: i32 = 1;
/// The read timeout while nobody does: a capture of a trickle of packets then wakes 20
/// times a second instead of 1000 (a hundred such captures cost pcapd 0.7 of a core
/// with the quick timeout), and its ring still holds several blocks' worth of it. Packets
/// reach the spool file within this plus the flush interval.
const QUIET_TIMEOUT_MS: i32 = 50;

/// Opens and configures the device with `filter` in the kernel; errors are libpcap's words.
/// Timestamps are asked for in nanoseconds; the resolution returned is the one libpcap
/// actually gives on this device.
pub fn open(
    p: &Opening,
    filter: &str,
) -> std::result::Result<(Capture<Active>, Resolution), String> {
    let cap = open_with(p, filter, Precision::Nano)?;
    match precision_of(&cap) {
        Some(res) => Ok((cap, res)),
        None => {
            // Never guess: a nanosecond count read as microseconds is off a thousandfold.
            tracing::warn!(capture.id = p.id, device = %p.device,
                "cannot tell the timestamp precision libpcap gives; capturing in microseconds");
            drop(cap);
            Ok((open_with(p, filter, Precision::Micro)?, Resolution::Micro))
        }
    }
}

fn open_with(
    p: &Opening,
    filter: &str,
    precision: Precision,
) -> std::result::Result<Capture<Active>, String> {
    let mut cap = Capture::from_device(p.device.as_str())
        .map_err(|e| e.to_string())?
        .precision(precision)
        .snaplen(p.snaplen as i32)
        .promisc(p.promisc)
        .timeout(match p.quick {
            true => QUICK_TIMEOUT_MS,
            false => QUIET_TIMEOUT_MS,
        })
        .buffer_size(p.ring_bytes as i32)
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(|e| e.to_string())?;
    if p.all_interfaces {
        let _ = cap.set_datalink(Linktype(p.link_type as i32));
    }
    if cap.get_datalink().0 as u32 != p.link_type {
        return Err(format!(
            "interface {} now has link type {} instead of {}",
            p.device,
            cap.get_datalink().0,
            p.link_type
        ));
    }
    cap.filter(filter, true)
        .map_err(|e| format!("filter {filter:?}: {e}"))?;
    Ok(cap)
}

/// The timestamp resolution libpcap gives on `cap`. libpcap ignores a precision the
/// device cannot give (pcap_set_tstamp_precision fails, and the crate does not say so),
/// and there is no call to ask it afterwards; but a savefile it opens for the handle
/// carries the magic of the handle's precision. So one is written to memory and read.
fn precision_of(cap: &Capture<Active>) -> Option<Resolution> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create("pcapd-precision", MFdFlags::MFD_CLOEXEC).ok()?;
    let dump = cap
        .savefile(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()?;
    // Closing the dumper writes its header out.
    drop(dump);
    let mut file = std::fs::File::from(fd);
    file.rewind().ok()?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).ok()?;
    match u32::from_ne_bytes(magic) {
        MAGIC_NSEC => Some(Resolution::Nano),
        MAGIC_USEC => Some(Resolution::Micro),
        _ => None,
    }
}

/// Whether an error means the interface is gone or down for now.
pub fn retryable(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "no such device",
        "went down",
        "not up",
        "network is down",
        "enodev",
        "enxio",
        "no such device or address",
        "disappeared",
        "is gone",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// The indexes several interfaces `names` have now, in the namespace the thread is in,
/// and every index -> name of interest: those of `names`, or all the namespace's when
/// `names` is empty. One of several interfaces missing is gone for now (retried); a single
/// interface is opened by name, and libpcap says when it is missing.
pub fn interface_indexes(
    names: &[String],
) -> std::result::Result<(Vec<u32>, BTreeMap<u32, String>), String> {
    let mut indexes = Vec::with_capacity(names.len());
    let mut known = BTreeMap::new();
    for name in names {
        let index = match nix::net::if_::if_nametoindex(name.as_str()) {
            Ok(i) => i,
            Err(_) if names.len() == 1 => continue,
            Err(_) => return Err(format!("interface {name} is gone")),
        };
        indexes.push(index);
        known.insert(index, name.clone());
    }
    if names.is_empty() {
        if let Ok(all) = nix::net::if_::if_nameindex() {
            for i in &all {
                known.insert(i.index(), i.name().to_string_lossy().into_owned());
            }
        }
    }
    Ok((indexes, known))
}

/// Whether the interface `name` is administratively up (`any` always is). In another
/// network namespace sysfs still shows the host's interfaces, so there the thread asks
/// the kernel (netlink, through getifaddrs) from inside the namespace.
pub fn interface_up(name: &str, in_netns: bool) -> bool {
    if name == crate::capture::device::ANY {
        return true;
    }
    if in_netns {
        return nix::ifaddrs::getifaddrs()
            .map(|mut all| {
                all.any(|i| {
                    i.interface_name == name
                        && i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
                })
            })
            .unwrap_or(true);
    }
    match std::fs::read_to_string(format!("/sys/class/net/{name}/flags")) {
        Ok(flags) => u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .map(|f| f & 0x1 != 0)
            .unwrap_or(true),
        // Gone: the read loop reports it.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `lo` as the engine does, asking for `precision`; `None` without the privilege
    /// to capture (the end-to-end tests hold that case to account).
    fn lo(precision: Precision) -> Option<Capture<Active>> {
        let opened =
            Capture::from_device("lo").and_then(|c| c.precision(precision).timeout(1).open());
        match opened {
            Ok(c) => Some(c),
            Err(e) if std::env::var_os("PCAPD_REQUIRE_PRIVILEGED").is_none() => {
                eprintln!("skipped: cannot capture on lo ({e})");
                None
            }
            Err(e) => panic!("cannot capture on lo: {e}"),
        }
    }

    #[test]
    fn the_precision_libpcap_gives_is_read_back() {
        let Some(nano) = lo(Precision::Nano) else {
            return;
        };
        // Linux's TPACKET_V3 ring has nanosecond times: libpcap gives them when asked.
        assert_eq!(precision_of(&nano), Some(Resolution::Nano));
        let micro = lo(Precision::Micro).expect("opened once already");
        assert_eq!(precision_of(&micro), Some(Resolution::Micro));
    }
}
