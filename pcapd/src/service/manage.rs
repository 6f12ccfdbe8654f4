//! Init, Start, Stop, Delete, List.

use pcap_core::api::v1 as api;
use pcap_core::domain::{CaptureInfo, CaptureSpec, Selector, StopConditions};
use tonic::{Request, Response, Status};

use super::{domain, PcapdService};

fn captures(infos: Vec<CaptureInfo>) -> Response<api::CapturesResponse> {
    Response::new(api::CapturesResponse {
        captures: infos.iter().map(api::Capture::from).collect(),
    })
}

#[tracing::instrument(skip_all, fields(caller))]
pub async fn init(
    s: &PcapdService,
    req: Request<api::InitRequest>,
) -> Result<Response<api::InitResponse>, Status> {
    let caller = s.caller(&req).await?;
    tracing::Span::current().record("caller", caller.name.as_str());
    let spec: CaptureSpec = domain(req.into_inner())?;
    let (info, created) = s.registry.init(spec, &caller).await?;
    Ok(Response::new(api::InitResponse {
        capture: Some((&info).into()),
        created,
    }))
}

pub async fn start(
    s: &PcapdService,
    req: Request<api::SelectRequest>,
) -> Result<Response<api::CapturesResponse>, Status> {
    let caller = s.caller(&req).await?;
    let req = req.into_inner();
    let stop = req.stop.map(domain::<_, StopConditions>).transpose()?;
    let sel: Selector = domain(req.selector)?;
    Ok(captures(s.registry.start(&sel, &caller, stop).await?))
}

pub async fn stop(
    s: &PcapdService,
    req: Request<api::SelectRequest>,
) -> Result<Response<api::CapturesResponse>, Status> {
    let caller = s.caller(&req).await?;
    let sel: Selector = domain(req.into_inner().selector)?;
    Ok(captures(s.registry.stop(&sel, &caller).await?))
}

pub async fn delete(
    s: &PcapdService,
    req: Request<api::SelectRequest>,
) -> Result<Response<api::CapturesResponse>, Status> {
    let caller = s.caller(&req).await?;
    let sel: Selector = domain(req.into_inner().selector)?;
    Ok(captures(s.registry.delete(&sel, &caller).await?))
}

pub async fn list(
    s: &PcapdService,
    _req: Request<api::ListRequest>,
) -> Result<Response<api::ListResponse>, Status> {
    let infos = s.registry.list();
    Ok(Response::new(api::ListResponse {
        captures: infos.iter().map(api::Capture::from).collect(),
    }))
}
