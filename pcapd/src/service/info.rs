//! Interfaces and Version.

use pcap_core::api::v1 as api;
use tonic::{Request, Response, Status};

use super::PcapdService;

pub async fn interfaces(
    s: &PcapdService,
    req: Request<api::InterfacesRequest>,
) -> Result<Response<api::InterfacesResponse>, Status> {
    let netns: Option<pcap_core::domain::Netns> = super::domain(req.into_inner())?;
    let interfaces = s
        .blocking(move |_| crate::capture::device::interfaces_in(netns.as_ref()))
        .await?;
    Ok(Response::new(api::InterfacesResponse { interfaces }))
}

pub async fn namespaces(
    s: &PcapdService,
    _req: Request<api::NamespacesRequest>,
) -> Result<Response<api::NamespacesResponse>, Status> {
    let containers = crate::engines::list().await;
    let namespaces = s
        .blocking(move |_| Ok(crate::netns::namespaces(&containers)))
        .await?;
    Ok(Response::new(api::NamespacesResponse { namespaces }))
}

pub async fn version(
    _req: Request<api::VersionRequest>,
) -> Result<Response<api::VersionResponse>, Status> {
    Ok(Response::new(api::VersionResponse {
        name: "pcapd".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}
