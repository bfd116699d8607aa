//! The generated wire types (see proto/), included from one place so the rest
//! of the crate names them `crate::proto::...`.
//!
//! prost refers to a type of another package by a relative path that follows
//! the package names (`dapr.proto.runtime.v1` reaches `dapr.proto.common.v1`
//! as `super::super::common::v1`), so each package sits in modules shaped like
//! its name below this one, which stands for `dapr.proto`. The runtime package,
//! the one the crate uses everywhere, is re-exported here; the common package
//! is `crate::proto::common`.

#![allow(missing_docs, clippy::all)]

pub mod runtime {
    pub mod v1 {
        tonic::include_proto!("dapr.proto.runtime.v1");
    }
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("dapr.proto.common.v1");
    }
    pub use v1::*;
}

pub use runtime::v1::*;

/// The encoded descriptor set of our protos (with their imports), for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dapr_descriptor");
