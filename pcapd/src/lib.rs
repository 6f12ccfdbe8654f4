//! pcapd: a privileged daemon that keeps a registry of packet captures, spools them to
//! disk with bounded retention, and serves them over one gRPC API.

pub mod capture;
pub mod config;
pub mod decode;
pub mod engines;
pub mod error;
pub mod listen;
pub mod metrics;
pub mod netns;
pub mod privileges;
pub mod readout;
pub mod registry;
pub mod reload;
pub mod segment_index;
pub mod server;
pub mod service;
pub mod spool;
pub mod store;
pub mod tls;

pub use error::{Error, Result};
