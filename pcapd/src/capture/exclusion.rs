//! Self-exclusion: no capture on this host sees the packets of connections to pcapd's own
//! remote listener (handshake included), whatever its filter, so that a remote `listen`
//! never feeds on itself. Only TCP to or from the listener's own address and port is left
//! out; TCP to the same port on other addresses is still captured.

use std::net::{IpAddr, SocketAddr};

/// The BPF expression matching the listener's own traffic, or `None` without a listener.
/// A wildcard address stands for every address of this host, and all of 127.0.0.0/8.
pub fn own_traffic(listen: Option<SocketAddr>, host_addresses: &[IpAddr]) -> Option<String> {
    let listen = listen?;
    let port = listen.port();
    let mut hosts: Vec<String> = Vec::new();
    if listen.ip().is_unspecified() {
        let v6_too = listen.is_ipv6();
        hosts.push("net 127.0.0.0/8".into());
        for ip in host_addresses {
            if ip.is_loopback() && ip.is_ipv4() || (ip.is_ipv6() && !v6_too) {
                continue;
            }
            hosts.push(format!("host {ip}"));
        }
    } else {
        hosts.push(format!("host {}", listen.ip()));
    }
    let sides: Vec<String> = hosts
        .iter()
        .flat_map(|h| {
            [
                format!("(dst {h} and dst port {port})"),
                format!("(src {h} and src port {port})"),
            ]
        })
        .collect();
    Some(format!("tcp and ({})", sides.join(" or ")))
}

/// The filter compiled into the kernel: the user's filter without the listener's traffic.
pub fn applied_filter(user: &str, own: Option<&str>) -> String {
    match (user.trim(), own) {
        (u, None) => u.to_owned(),
        ("", Some(own)) => format!("not ({own})"),
        (u, Some(own)) => format!("({u}) and not ({own})"),
    }
}

/// The filter compiled into the kernel for a capture on some interfaces of libpcap's `any`
/// device (recorded as LINUX_SLL2): only packets of those interface indexes, then `filter`.
/// Without indexes (one interface, or all) it is `filter` as it is.
pub fn on_interfaces(indexes: &[u32], filter: &str) -> String {
    if indexes.is_empty() {
        return filter.to_owned();
    }
    let only: Vec<String> = indexes.iter().map(|i| format!("ifindex {i}")).collect();
    match filter.trim() {
        "" => only.join(" or "),
        f => format!("({}) and ({f})", only.join(" or ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap::{Capture, Linktype};

    /// An Ethernet + IPv4 + TCP (or UDP) packet with the given endpoints.
    fn packet(tcp: bool, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 14];
        p[12] = 0x08; // IPv4
        let l4 = if tcp { 20 } else { 8 };
        let mut ip = vec![
            0x45,
            0,
            0,
            (20 + l4) as u8,
            0,
            0,
            0x40,
            0,
            64,
            if tcp { 6 } else { 17 },
            0,
            0,
        ];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        p.extend_from_slice(&ip);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.resize(14 + 20 + l4, 0);
        if tcp {
            p[14 + 20 + 12] = 0x50; // data offset 5
        }
        p
    }

    fn passes(filter: &str, pkt: &[u8]) -> bool {
        let dead = Capture::dead(Linktype::ETHERNET).unwrap();
        dead.compile(filter, true).unwrap().filter(pkt)
    }

    #[test]
    fn the_listeners_connections_are_left_out_and_nothing_else() {
        let own = own_traffic(Some("127.0.0.1:2020".parse().unwrap()), &[]).unwrap();
        let f = applied_filter("tcp", Some(&own));
        let lo = [127, 0, 0, 1];
        assert!(
            !passes(&f, &packet(true, lo, 40000, lo, 2020)),
            "client to listener"
        );
        assert!(
            !passes(&f, &packet(true, lo, 2020, lo, 40000)),
            "listener to client"
        );
        assert!(
            passes(&f, &packet(true, lo, 40000, [127, 0, 0, 2], 2020)),
            "same port, other address"
        );
        assert!(
            passes(&f, &packet(true, [127, 0, 0, 2], 2020, lo, 40000)),
            "reply from the other address"
        );
        assert!(passes(&f, &packet(true, lo, 40000, lo, 2021)), "other port");
        assert!(
            !passes(&f, &packet(false, lo, 40000, lo, 2020)),
            "the user's filter still applies (udp)"
        );
        assert!(
            passes(
                &applied_filter("", Some(&own)),
                &packet(false, lo, 1, lo, 2020)
            ),
            "udp to 2020 is not the listener"
        );
    }

    #[test]
    fn a_wildcard_listener_covers_every_host_address() {
        let addrs: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let own = own_traffic(Some("0.0.0.0:2020".parse().unwrap()), &addrs).unwrap();
        let f = applied_filter("", Some(&own));
        assert!(!passes(
            &f,
            &packet(true, [198, 51, 100, 7], 5555, [192, 0, 2, 2], 2020)
        ));
        assert!(!passes(
            &f,
            &packet(true, [127, 0, 0, 1], 5555, [127, 0, 0, 9], 2020)
        ));
        assert!(
            passes(
                &f,
                &packet(true, [192, 0, 2, 2], 5555, [198, 51, 100, 7], 2020)
            ),
            "outgoing to another host's 2020"
        );
    }

    #[test]
    fn no_listener_leaves_the_filter_alone() {
        assert_eq!(own_traffic(None, &[]), None);
        assert_eq!(applied_filter("udp port 53", None), "udp port 53");
        assert_eq!(applied_filter("", None), "");
    }

    #[test]
    fn interface_indexes_come_first_and_keep_the_exclusion() {
        assert_eq!(on_interfaces(&[], "udp port 53"), "udp port 53");
        assert_eq!(on_interfaces(&[2, 7], ""), "ifindex 2 or ifindex 7");
        let own = own_traffic(Some("127.0.0.1:4999".parse().unwrap()), &[]).unwrap();
        let applied = applied_filter("udp port 53", Some(&own));
        let f = on_interfaces(&[2, 7], &applied);
        assert_eq!(f, format!("(ifindex 2 or ifindex 7) and ({applied})"));
        // It compiles for LINUX_SLL2, and picks packets by the index SLL2 records carry.
        let dead = Capture::dead(Linktype(276)).unwrap();
        let prog = dead.compile(&f, true).unwrap();
        let sll2 = |ifindex: u32| {
            // Protocol, reserved, interface index, ARPHRD_ETHER, packet type, address.
            let mut p = vec![0u8; 20];
            p[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
            p[4..8].copy_from_slice(&ifindex.to_be_bytes());
            p[8..10].copy_from_slice(&1u16.to_be_bytes());
            p[11] = 6;
            p.extend_from_slice(&packet(false, [10, 0, 0, 1], 999, [10, 0, 0, 2], 53)[14..]);
            p
        };
        assert!(prog.filter(&sll2(2)));
        assert!(prog.filter(&sll2(7)));
        assert!(!prog.filter(&sll2(3)));
    }
}
