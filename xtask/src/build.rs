//! Building fwctl (which builds the XDP program through aya-build) and finding the binary.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use crate::cmd::run;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the fwctl binary (debug profile) and returns its path.
pub fn fwctl() -> Result<PathBuf> {
    eprintln!("[build] cargo build -p firewall-userspace (compiles the XDP program too)");
    run(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "-p",
        "firewall-userspace",
    ]))?;
    Ok(workspace_root().join("target/debug/fwctl"))
}
