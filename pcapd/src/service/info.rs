//! Interfaces and Version.

use pcap_core::api::v1 as api;
use tonic::{Request, Response, Status};

use super::PcapdService;

pub async fn interfaces(
    s: &PcapdService,
    _req: Request<api::InterfacesRequest>,
) -> Result<Response<api::InterfacesResponse>, Status> {
    let interfaces = s.blocking(|_| crate::capture::device::interfaces()).await?;
    Ok(Response::new(api::InterfacesResponse { interfaces }))
}

pub async fn version(
    _req: Request<api::VersionRequest>,
) -> Result<Response<api::VersionResponse>, Status> {
    Ok(Response::new(api::VersionResponse {
        name: "pcapd".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}
