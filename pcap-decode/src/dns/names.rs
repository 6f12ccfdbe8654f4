//! Names of DNS numbers as dig and Wireshark print them: record types, classes, response
//! codes and header flags; the RFC 3597 form (`TYPE65534`, `CLASS42`, `RCODE11`) for the rest.

/// Record and query types by number (IANA "Resource Record (RR) TYPEs").
const TYPES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (33, "SRV"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (99, "SPF"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (32768, "TA"),
    (32769, "DLV"),
];

/// The record type's mnemonic, or `TYPE<n>`.
pub(crate) fn type_name(t: u16) -> String {
    match TYPES.binary_search_by_key(&t, |&(n, _)| n) {
        Ok(i) => TYPES[i].1.to_owned(),
        Err(_) => format!("TYPE{t}"),
    }
}

/// The class's mnemonic, or `CLASS<n>`.
pub(crate) fn class_name(c: u16) -> String {
    match c {
        1 => "IN".to_owned(),
        3 => "CH".to_owned(),
        4 => "HS".to_owned(),
        254 => "NONE".to_owned(),
        255 => "ANY".to_owned(),
        _ => format!("CLASS{c}"),
    }
}

/// The response code's mnemonic (RFC 6895 section 2.3), or `RCODE<n>`; `rcode` includes
/// the extended bits of an OPT record.
pub(crate) fn rcode_name(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return format!("RCODE{rcode}"),
    };
    name.to_owned()
}

/// The header flags set in `bits` (the header's second word), in header order.
pub(crate) fn flag_names(bits: u16) -> Vec<String> {
    const FLAGS: [(u16, &str); 7] = [
        (0x8000, "qr"),
        (0x0400, "aa"),
        (0x0200, "tc"),
        (0x0100, "rd"),
        (0x0080, "ra"),
        (0x0020, "ad"),
        (0x0010, "cd"),
    ];
    FLAGS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_sorted_for_the_binary_search() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(type_name(1), "A");
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(257), "CAA");
        assert_eq!(type_name(65534), "TYPE65534");
        assert_eq!(type_name(0), "TYPE0");
    }

    #[test]
    fn classes_rcodes_and_flags_by_name() {
        assert_eq!(class_name(1), "IN");
        assert_eq!(class_name(42), "CLASS42");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(rcode_name(11), "RCODE11");
        assert_eq!(flag_names(0x8180), ["qr", "rd", "ra"]);
        assert_eq!(flag_names(0x0130), ["rd", "ad", "cd"]);
        assert!(flag_names(0).is_empty());
    }
}
