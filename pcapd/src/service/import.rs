//! Import: the header becomes an [`ImportSpec`], the record batches are handed to the
//! registry as they arrive (a few at a time: a slow disk slows the client down rather than
//! filling memory), and the new capture is the answer.

use pcap_core::api::v1 as api;
use pcap_core::domain::ImportSpec;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::{domain, PcapdService};
use crate::registry::ImportPart;
use crate::Error;

/// Batches waiting for the spool writer.
const QUEUED_BATCHES: usize = 4;

#[tracing::instrument(skip_all, fields(caller))]
pub async fn import(
    s: &PcapdService,
    req: Request<Streaming<api::ImportMessage>>,
) -> Result<Response<api::InitResponse>, Status> {
    use api::import_message::Kind;
    let caller = s.caller(&req).await?;
    tracing::Span::current().record("caller", caller.name.as_str());
    let permit = s.stream_permit()?;
    let mut stream = req.into_inner();
    let header = match stream.message().await?.and_then(|m| m.kind) {
        Some(Kind::Header(h)) => h,
        _ => {
            return Err(Status::from(Error::Invalid(
                "an Import stream begins with an ImportHeader (file name, aliases, link type)"
                    .into(),
            )))
        }
    };
    let spec: ImportSpec = domain(header)?;
    let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
    let forward = tokio::spawn(async move {
        let _permit = permit;
        loop {
            let part = match stream.message().await {
                Ok(Some(api::ImportMessage {
                    kind: Some(Kind::Records(b)),
                })) => Ok(ImportPart::Records {
                    records: b.records,
                    count: b.count,
                    nanoseconds: b.nanoseconds,
                }),
                Ok(Some(api::ImportMessage {
                    kind: Some(Kind::End(end)),
                })) => Ok(ImportPart::End {
                    packets: end.packets,
                }),
                Ok(Some(api::ImportMessage {
                    kind: Some(Kind::Header(_)),
                })) => Err(Error::Invalid(
                    "an Import stream has one ImportHeader, first; a second was sent".into(),
                )),
                Ok(Some(api::ImportMessage { kind: None })) => continue,
                // Ended without an ImportEnd: the registry refuses it.
                Ok(None) => return,
                Err(status) => Err(Error::Invalid(format!(
                    "the import stream broke off: {}; nothing was kept",
                    status.message()
                ))),
            };
            let last = !matches!(part, Ok(ImportPart::Records { .. }));
            if tx.send(part).await.is_err() || last {
                return;
            }
        }
    });
    let imported = s.registry.import(spec, &caller, rx).await;
    forward.abort();
    let info = imported?;
    Ok(Response::new(api::InitResponse {
        capture: Some((&info).into()),
        created: true,
    }))
}
