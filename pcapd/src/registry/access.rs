//! Who may do what. Every caller who reaches the API may list and read captures (any of
//! them could capture the same traffic); starting, stopping and deleting a capture is for
//! its owner and for admins: uid 0, members of `admin_group`, and the client certificates
//! named in `admin_clients`.

use pcap_core::domain::CaptureInfo;

use crate::config::Config;
use crate::Error;

/// The identity of a caller, resolved once per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// As recorded for the captures it creates and shown in `list`: `uid 1000 (alice)`,
    /// `cert lab-client`.
    pub name: String,
    pub who: Who,
    /// Whether it may act on every capture.
    pub admin: bool,
}

/// Where a caller's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A local process, by the uid of the UNIX connection's peer.
    Uid(u32),
    /// A remote client, by the name in its certificate.
    Cert(String),
    /// pcapd itself (resuming captures at start-up).
    Daemon,
    /// A connection that identified itself neither way; it may only read.
    Unknown,
}

impl Caller {
    /// pcapd acting on its own.
    pub fn daemon() -> Caller {
        Caller {
            name: "pcapd".into(),
            who: Who::Daemon,
            admin: true,
        }
    }

    /// A local caller with peer uid `uid` and primary gid `gid`; looks up the user and
    /// their groups (blocking).
    pub fn local(uid: u32, gid: Option<u32>, config: &Config) -> Caller {
        use nix::unistd::{getgrouplist, Gid, Uid, User};
        let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
        let name = match &user {
            Some(u) => format!("uid {uid} ({})", u.name),
            None => format!("uid {uid}"),
        };
        let admin = uid == 0
            || config.admin_group.as_ref().is_some_and(|(_, admins)| {
                gid == Some(*admins)
                    || user.as_ref().is_some_and(|u| {
                        u.gid.as_raw() == *admins
                            || std::ffi::CString::new(u.name.as_str())
                                .ok()
                                .and_then(|n| getgrouplist(&n, u.gid).ok())
                                .is_some_and(|groups| groups.contains(&Gid::from_raw(*admins)))
                    })
            });
        Caller {
            name,
            who: Who::Uid(uid),
            admin,
        }
    }

    /// A remote caller whose certificate names it `name`.
    pub fn remote(name: &str, config: &Config) -> Caller {
        Caller {
            name: format!("cert {name}"),
            who: Who::Cert(name.to_owned()),
            admin: config.admin_clients.iter().any(|a| a == name),
        }
    }

    /// Whether this caller created a capture whose owner is recorded as `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        match &self.who {
            Who::Uid(uid) => {
                let me = format!("uid {uid}");
                owner == me || owner.starts_with(&format!("{me} ("))
            }
            Who::Cert(name) => owner.strip_prefix("cert ") == Some(name.as_str()),
            Who::Daemon | Who::Unknown => false,
        }
    }

    /// Whether this caller may start, stop or delete the capture.
    pub fn may_manage(&self, info: &CaptureInfo) -> bool {
        self.admin || self.owns(&info.owner)
    }
}

/// The refusal for `caller` trying to `verb` the captures in `refused` (label, owner).
pub fn denied(verb: &str, refused: &[(String, String)], config: &Config) -> Error {
    let mut admins = vec!["uid 0".to_owned()];
    if let Some((group, _)) = &config.admin_group {
        admins.push(format!("members of group {group} (admin_group)"));
    }
    if !config.admin_clients.is_empty() {
        admins.push(format!(
            "client certificates named in admin_clients ({})",
            config.admin_clients.join(", ")
        ));
    }
    let whose: Vec<String> = refused
        .iter()
        .map(|(label, owner)| format!("{label} belongs to {owner}"))
        .collect();
    let them = if refused.len() == 1 { "it" } else { "them" };
    Error::PermissionDenied(format!(
        "{}: only its owner or an admin may {verb} {them} (admins: {})",
        whose.join("; "),
        admins.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(who: Who, name: &str) -> Caller {
        Caller {
            name: name.into(),
            who,
            admin: false,
        }
    }

    #[test]
    fn owners_are_matched_by_uid_or_certificate_name() {
        let alice = caller(Who::Uid(1000), "uid 1000 (alice)");
        assert!(alice.owns("uid 1000 (alice)"));
        assert!(alice.owns("uid 1000"), "a user without a passwd entry then");
        assert!(!alice.owns("uid 10000 (bob)"));
        assert!(!alice.owns("uid 100"));
        assert!(!alice.owns("cert uid 1000"));
        let lab = caller(Who::Cert("lab".into()), "cert lab");
        assert!(lab.owns("cert lab"));
        assert!(!lab.owns("cert lab2"));
        assert!(!lab.owns("uid 0 (root)"));
        assert!(!Caller::daemon().owns("pcapd"));
    }

    #[test]
    fn a_refusal_names_capture_owner_and_who_may_act() {
        let config = Config {
            admin_group: Some(("pcap-admin".into(), 990)),
            admin_clients: vec!["ops".into()],
            ..crate::config::tests::plain()
        };
        let e = denied(
            "stop",
            &[("capture 3 (web)".into(), "uid 1001 (alice)".into())],
            &config,
        )
        .to_string();
        assert_eq!(
            e,
            "capture 3 (web) belongs to uid 1001 (alice): only its owner or an admin may stop \
             it (admins: uid 0, members of group pcap-admin (admin_group), client certificates \
             named in admin_clients (ops))"
        );
    }
}
