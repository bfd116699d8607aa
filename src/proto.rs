//! The generated wire types of `dapr.proto.runtime.v1` (see proto/), included
//! from one place so the rest of the crate names them `crate::proto::...`.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("dapr.proto.runtime.v1");

/// The encoded descriptor set of our protos (with their imports), for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dapr_descriptor");
