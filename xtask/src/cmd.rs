//! Running child commands with their command line in every error.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `cmd` with inherited stdio and fails, naming the command, unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
