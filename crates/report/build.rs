//! Compiles `proto/report.proto` with a pure-Rust protobuf compiler, so building
//! the workspace never needs a system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with `env!`: a build script compiled for one checkout
    // is reused by cargo for another that shares the target directory.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let proto_dir = PathBuf::from(manifest_dir).join("../../proto");
    let proto_file = proto_dir.join("report.proto");
    println!("cargo:rerun-if-changed={}", proto_file.display());

    let descriptors = protox::compile([&proto_file], [&proto_dir])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
