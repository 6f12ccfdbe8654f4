//! What users type on the command line or in the remotes file: selectors, aliases, sizes,
//! durations, points in time, daemon URLs, and the spool's segment file names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_core::connect::EndpointUrl;
use pcap_core::domain::{Alias, Selector};
use pcap_core::parse;
use pcap_core::segment::SegmentName;

/// A fixed "now" for relative times, so that a failing input fails again.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Runs every user-input parser of pcap-core over `data` (when it is UTF-8) and checks
/// what each promises of the values it accepts.
pub fn parse_inputs(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    match Selector::parse(s) {
        Ok(Selector::Id(_)) => assert!(s.bytes().all(|b| b.is_ascii_digit()), "{s:?}"),
        Ok(Selector::Alias(a)) => assert_eq!(a.as_str(), s),
        Ok(Selector::All) => panic!("Selector::parse({s:?}) gave --all"),
        Err(_) => {}
    }

    if let Ok(a) = Alias::new(s) {
        let len = a.as_str().len();
        assert!(
            (1..=64).contains(&len),
            "alias {s:?} of {len} bytes accepted"
        );
        assert!(
            !s.bytes().all(|b| b.is_ascii_digit()),
            "all-digit alias {s:?}"
        );
        assert_eq!(Alias::new(&a.to_string()).ok(), Some(a));
    }

    if let Ok(n) = parse::size(s) {
        assert!(n >= 1, "size {s:?} parsed as {n}");
    }
    if let Ok(d) = parse::duration(s) {
        assert!(!d.is_zero(), "duration {s:?} parsed as zero");
    }
    let _ = parse::time(s, now());

    if let Ok(url) = EndpointUrl::parse(s) {
        let shown = url.to_string();
        let again = EndpointUrl::parse(&shown)
            .unwrap_or_else(|e| panic!("{s:?} parsed, but its canonical form {shown:?} not: {e}"));
        if let EndpointUrl::Https { .. } = url {
            assert_eq!(again, url, "{s:?} -> {shown:?}");
        }
        let _ = url.authority();
    }

    if let Some(name) = SegmentName::parse(s) {
        assert_eq!(SegmentName::parse(&name.file_name()), Some(name), "{s:?}");
    }
}
