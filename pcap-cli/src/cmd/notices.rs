//! A stream's in-band notices (a slow reader's gap, the capture's state changes), told on
//! stderr for `replay`, `listen` and `decode`.

use pcap_core::api::v1::{self as api, notice};
use pcap_core::domain::{Selector, State};

/// Tells a stream's in-band notices on stderr, where they do not mix with the output:
/// "pcap: cw is RETRYING: container web (docker) is not running".
pub(crate) struct Notices {
    /// The capture as the user named it: its alias, or "capture 3".
    name: String,
    /// Whether a state other than ACTIVE was told, so that a return to ACTIVE is told too.
    told_inactive: bool,
}

impl Notices {
    /// Notices of capture `id`, named as `selector` names it.
    pub(crate) fn new(selector: &Selector, id: u64) -> Self {
        let name = match selector {
            Selector::Alias(alias) => alias.to_string(),
            Selector::Id(_) | Selector::All => format!("capture {id}"),
        };
        Notices {
            name,
            told_inactive: false,
        }
    }

    /// Prints the notice's line, if it has one.
    pub(crate) fn tell(&mut self, n: api::Notice) {
        self.tell_with("", n);
    }

    /// Prints the notice's line, if it has one, with `prefix` after "pcap: ".
    pub(crate) fn tell_with(&mut self, prefix: &str, n: api::Notice) {
        if let Some(line) = self.line(n) {
            match line.strip_prefix("pcap: ") {
                Some(rest) => eprintln!("pcap: {prefix}{rest}"),
                None => eprintln!("{line}"),
            }
        }
    }

    fn line(&mut self, n: api::Notice) -> Option<String> {
        match n.kind? {
            notice::Kind::Gap(gap) => Some(format!(
                "pcap: {} packets skipped: this reader fell behind",
                gap.dropped
            )),
            notice::Kind::State(change) => {
                let name = &self.name;
                let state = State::try_from(change.state).ok()?;
                if state == State::Active {
                    let was_inactive = std::mem::take(&mut self.told_inactive);
                    return was_inactive.then(|| format!("pcap: {name} is ACTIVE again"));
                }
                self.told_inactive = true;
                let reason = change.reason.trim();
                Some(match reason {
                    "" => format!("pcap: {name} is {state}"),
                    _ => format!("pcap: {name} is {state}: {reason}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::domain::Alias;

    fn state(s: api::State, reason: &str) -> api::Notice {
        let change = api::StateChange {
            state: s.into(),
            reason: reason.into(),
        };
        api::Notice {
            kind: Some(notice::Kind::State(change)),
        }
    }

    #[test]
    fn notices_name_the_capture_as_the_user_did() {
        let mut n = Notices::new(&Selector::Alias(Alias::new("cw").unwrap()), 3);
        let reason = "container web (docker) is not running";
        assert_eq!(
            n.line(state(api::State::Retrying, reason)).unwrap(),
            "pcap: cw is RETRYING: container web (docker) is not running"
        );
        assert_eq!(
            n.line(state(api::State::Active, "")).unwrap(),
            "pcap: cw is ACTIVE again"
        );
    }

    #[test]
    fn notices_read_well() {
        let mut n = Notices::new(&Selector::Id(3), 3);
        let gap = api::Notice {
            kind: Some(notice::Kind::Gap(api::Gap { dropped: 42 })),
        };
        assert_eq!(
            n.line(gap).unwrap(),
            "pcap: 42 packets skipped: this reader fell behind"
        );
        assert_eq!(n.line(state(api::State::Active, "")), None);
        assert_eq!(
            n.line(state(api::State::Retrying, "interface eth1 is down"))
                .unwrap(),
            "pcap: capture 3 is RETRYING: interface eth1 is down"
        );
        assert_eq!(
            n.line(state(api::State::Active, "")).unwrap(),
            "pcap: capture 3 is ACTIVE again"
        );
        assert_eq!(
            n.line(state(api::State::Finished, "")).unwrap(),
            "pcap: capture 3 is FINISHED"
        );
    }
}
