//! Compiles `proto/` with protox (pure Rust, no system protoc) and generates tonic code.
//! Also writes the encoded descriptor set that gRPC reflection serves.
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "auth.proto",
    "auth/v1alpha1/auth.proto",
    "protocol/harmonytypes/v1/types.proto",
    "protocol/auth/v1/auth.proto",
    "accounts/v1/accounts_v1.proto",
    "tokens/v1/tokens_v1.proto",
    "test/v1/test_v1.proto",
    "tangle/client/types.proto",
    "tangle/client/auth.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // The commit, for the build-info metric; "unknown" outside a git checkout.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();
    fs::write(
        out.join("hearth_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .include_file("hearth_protos.rs")
        .compile_fds(fds)?;
    Ok(())
}
