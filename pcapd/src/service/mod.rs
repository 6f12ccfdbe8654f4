//! The gRPC adapter: each call converts its request to domain types, asks the registry,
//! and converts the answer back. No capture logic here; errors become gRPC codes only
//! through `impl From<Error> for Status`.

mod caller;
mod import;
mod info;
mod manage;
mod stream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pcap_core::api::v1 as api;
use tonic::{Request, Response, Status};

use crate::registry::Registry;

/// Implements `pcap.v1.Pcapd` over the registry.
#[derive(Clone)]
pub struct PcapdService {
    registry: Arc<Registry>,
    /// Replay and Listen streams being served.
    streams: Arc<AtomicUsize>,
}

/// Counts a stream being served until dropped.
pub struct StreamPermit(Arc<AtomicUsize>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PcapdService {
    /// A service answering from `registry`, serving at most `max_streams` (from the
    /// configuration in force) streams at once.
    pub fn new(registry: Arc<Registry>) -> Self {
        PcapdService {
            registry,
            streams: Arc::default(),
        }
    }

    /// A permit for one more stream, or UNAVAILABLE when the limit is reached.
    fn stream_permit(&self) -> Result<StreamPermit, Status> {
        let max = self.registry.settings().max_streams;
        let taken = self
            .streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(StreamPermit(self.streams.clone())),
            Err(_) => Err(Status::from(crate::Error::Unavailable(format!(
                "pcapd is serving {max} streams already (max_streams): try again when one ends"
            )))),
        }
    }

    /// Runs blocking work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || f(&registry))
            .await
            .map_err(|e| crate::Error::Internal(format!("request handler failed: {e}")))?
            .map_err(Status::from)
    }
}

/// Converts a request message into its domain type; a refusal is INVALID_ARGUMENT.
fn domain<M, T>(msg: M) -> Result<T, Status>
where
    T: TryFrom<M, Error = pcap_core::Error>,
{
    T::try_from(msg).map_err(|e| Status::from(crate::Error::from(e)))
}

#[tonic::async_trait]
impl api::pcapd_server::Pcapd for PcapdService {
    async fn init(
        &self,
        req: Request<api::InitRequest>,
    ) -> Result<Response<api::InitResponse>, Status> {
        manage::init(self, req).await
    }

    async fn start(
        &self,
        req: Request<api::SelectRequest>,
    ) -> Result<Response<api::CapturesResponse>, Status> {
        manage::start(self, req).await
    }

    async fn stop(
        &self,
        req: Request<api::SelectRequest>,
    ) -> Result<Response<api::CapturesResponse>, Status> {
        manage::stop(self, req).await
    }

    async fn delete(
        &self,
        req: Request<api::SelectRequest>,
    ) -> Result<Response<api::CapturesResponse>, Status> {
        manage::delete(self, req).await
    }

    async fn list(
        &self,
        req: Request<api::ListRequest>,
    ) -> Result<Response<api::ListResponse>, Status> {
        manage::list(self, req).await
    }

    type ReplayStream = stream::MessageStream;

    async fn replay(
        &self,
        req: Request<api::ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        stream::replay(self, req).await
    }

    type ListenStream = stream::MessageStream;

    async fn listen(
        &self,
        req: Request<api::ListenRequest>,
    ) -> Result<Response<Self::ListenStream>, Status> {
        stream::listen(self, req).await
    }

    type DecodeStream = stream::DecodeStream;

    async fn decode(
        &self,
        req: Request<api::DecodeRequest>,
    ) -> Result<Response<Self::DecodeStream>, Status> {
        stream::decode(self, req).await
    }

    async fn import(
        &self,
        req: Request<tonic::Streaming<api::ImportMessage>>,
    ) -> Result<Response<api::InitResponse>, Status> {
        import::import(self, req).await
    }

    async fn interfaces(
        &self,
        req: Request<api::InterfacesRequest>,
    ) -> Result<Response<api::InterfacesResponse>, Status> {
        info::interfaces(self, req).await
    }

    async fn namespaces(
        &self,
        req: Request<api::NamespacesRequest>,
    ) -> Result<Response<api::NamespacesResponse>, Status> {
        info::namespaces(self, req).await
    }

    async fn version(
        &self,
        req: Request<api::VersionRequest>,
    ) -> Result<Response<api::VersionResponse>, Status> {
        info::version(req).await
    }
}
