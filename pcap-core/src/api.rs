//! Types and client/server stubs generated from `proto/pcap/v1/pcap.proto`, and the
//! proto's encoded descriptors. Both are committed; `tests/codegen.rs` keeps them in step
//! with the proto.

/// Package `pcap.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!("api/pcap.v1.rs");
}

/// The encoded `FileDescriptorSet` of `proto/` (with source comments), for gRPC server
/// reflection: clients such as grpcurl discover the API from it without the proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("api/pcap_descriptor.bin");
