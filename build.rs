//! Compiles proto/ with protox (a protobuf compiler in pure Rust), so a plain
//! `cargo build` needs no system `protoc`. Besides the Rust code it writes the
//! encoded descriptor set, which gRPC reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// The root file: it imports the rest of proto/ (the common package), and
/// `include_imports` puts those files in the set, so they are generated too.
const PROTO: &str = "proto/dapr/proto/runtime/v1/dapr.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_file(PROTO)?
        .file_descriptor_set();

    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("dapr_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(fds)?;
    Ok(())
}
