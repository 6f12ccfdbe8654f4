//! API messages as a client could send them, decoded from arbitrary protobuf bytes and
//! converted to domain types the way the daemon's handlers do.

use pcap_core::api::v1 as api;
use pcap_core::domain::{CaptureInfo, CaptureSpec, ListenSpec, ReplaySpec, Selector};
use prost::Message;

/// The first byte picks the message (Init, Replay, Listen, Start/Stop/Delete, or a
/// Capture as `list` receives it); the rest is decoded as that message. A conversion may
/// refuse it, never panic; what it accepts must come back unchanged through the API type.
pub fn convert_requests(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => round_trip::<api::InitRequest, CaptureSpec>(bytes, |s| s.into()),
        1 => round_trip::<api::ReplayRequest, ReplaySpec>(bytes, |s| s.into()),
        2 => round_trip::<api::ListenRequest, ListenSpec>(bytes, |s| s.into()),
        3 => {
            if let Ok(r) = api::SelectRequest::decode(bytes) {
                if let Ok(sel) = Selector::try_from(r.selector) {
                    let back = Selector::try_from(Some(api::Selector::from(&sel)));
                    assert_eq!(back.ok(), Some(sel));
                }
            }
        }
        _ => round_trip::<api::Capture, CaptureInfo>(bytes, |c| c.into()),
    }
}

/// Decodes `M`, converts it to `D`, and if that works converts back and again.
fn round_trip<M, D>(bytes: &[u8], back: fn(&D) -> M)
where
    M: Message + Default,
    D: TryFrom<M> + PartialEq + std::fmt::Debug,
    <D as TryFrom<M>>::Error: std::fmt::Display,
{
    let Ok(message) = M::decode(bytes) else {
        return;
    };
    let Ok(domain) = D::try_from(message) else {
        return;
    };
    match D::try_from(back(&domain)) {
        Ok(again) => assert_eq!(again, domain),
        Err(e) => panic!("{domain:?} was accepted, but not once converted back: {e}"),
    }
}
