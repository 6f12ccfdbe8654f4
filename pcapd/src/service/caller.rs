//! Who is calling: the peer's uid from SO_PEERCRED on the UNIX socket, or the name in the
//! client certificate on the TLS listener. Looking the user and their groups up reads the
//! user database, so it runs on the blocking pool.

use tonic::transport::server::UdsConnectInfo;
use tonic::Request;

use super::PcapdService;
use crate::listen::tls::RemotePeer;
use crate::registry::Caller;

impl PcapdService {
    /// The caller of `req`, from the connection it came on, with whether it is an admin
    /// under the configuration in force.
    pub(super) async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, tonic::Status> {
        let config = self.registry.settings();
        if let Some(peer) = req.extensions().get::<RemotePeer>() {
            return Ok(Caller::remote(&peer.name, &config));
        }
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        let Some(cred) = cred else {
            // Every connection is one of the two; an unknown peer may only read.
            return Ok(Caller {
                name: "unknown".into(),
                who: crate::registry::access::Who::Unknown,
                admin: false,
            });
        };
        let (uid, gid) = (cred.uid(), cred.gid());
        tokio::task::spawn_blocking(move || Caller::local(uid, Some(gid), &config))
            .await
            .map_err(|e| {
                tonic::Status::from(crate::Error::Internal(format!(
                    "looking up the caller failed: {e}"
                )))
            })
    }
}
