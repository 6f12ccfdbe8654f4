//! Types and client/server stubs generated from `proto/pcap/v1/pcap.proto`.
//! The generated file is committed; `tests/codegen.rs` keeps it in step with the proto.

/// Package `pcap.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!("api/pcap.v1.rs");
}
