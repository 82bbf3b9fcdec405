//! Compiles `zdn/v1/*.proto` with protox (a pure-Rust protobuf compiler), so building needs no
//! system `protoc`, and writes the encoded descriptor set that server reflection serves.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "zdn/v1/common.proto",
    "zdn/v1/sighting.proto",
    "zdn/v1/indicator.proto",
    "zdn/v1/fleet.proto",
    "zdn/v1/analyst.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["."])?;
    fs::write(out.join("zdn_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
