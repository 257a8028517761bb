//! Generated protobuf and tonic code for every seed package (see `proto/` and build.rs).
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

include!(concat!(env!("OUT_DIR"), "/hearth_protos.rs"));

/// The encoded descriptor set of every .proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hearth_descriptor.bin"));
