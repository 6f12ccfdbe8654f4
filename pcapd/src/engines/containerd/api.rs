//! Client stubs for the read-only containerd calls pcapd makes, generated from the trimmed
//! containerd protos in `proto/containerd/` and committed (`tests/containerd_codegen.rs`
//! keeps them in step), so building needs no protoc. The module tree mirrors the proto
//! packages, which the generated code's relative paths rely on.

#[allow(clippy::all, missing_docs, dead_code)]
pub(crate) mod containerd {
    pub mod services {
        pub mod containers {
            pub mod v1 {
                include!("api/containerd.services.containers.v1.rs");
            }
        }
        pub mod tasks {
            pub mod v1 {
                include!("api/containerd.services.tasks.v1.rs");
            }
        }
    }
    pub mod v1 {
        pub mod types {
            include!("api/containerd.v1.types.rs");
        }
    }
}
