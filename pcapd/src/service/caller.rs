//! Who is calling: the peer's uid from SO_PEERCRED on the UNIX socket, or the name in the
//! client certificate on the TLS listener. It is recorded as the owner of captures it
//! creates and logged with every state-changing call.

use tonic::transport::server::UdsConnectInfo;
use tonic::Request;

use crate::listen::tls::RemotePeer;

/// The identity of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: Option<u32>,
    pub name: String,
}

impl Caller {
    /// The caller of `req`, from the connection it came on.
    pub fn of<T>(req: &Request<T>) -> Caller {
        if let Some(peer) = req.extensions().get::<RemotePeer>() {
            return Caller {
                uid: None,
                name: format!("cert {}", peer.name),
            };
        }
        let uid = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred)
            .map(|c| c.uid());
        match uid {
            Some(uid) => {
                let user = nix::unistd::User::from_uid(uid.into()).ok().flatten();
                let name = match user {
                    Some(u) => format!("uid {uid} ({})", u.name),
                    None => format!("uid {uid}"),
                };
                Caller {
                    uid: Some(uid),
                    name,
                }
            }
            None => Caller {
                uid: None,
                name: "unknown".into(),
            },
        }
    }
}
