//! `cargo xtask bench`: the benchmarks, in release builds, as root. So far the classifier's
//! per-packet cost against the rule count (BPF_PROG_TEST_RUN); the report goes to
//! target/bench/.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{build, cmd::run, setup};

pub fn bench() -> Result<()> {
    setup::ensure()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmarks load XDP programs: run as root");
    }
    eprintln!("[bench] classifier cost vs rule count (release build)");
    run(Command::new("cargo")
        .current_dir(build::workspace_root())
        .args([
            "run",
            "--release",
            "-p",
            "tests",
            "--bin",
            "classifier_bench",
        ]))?;
    eprintln!(
        "[bench] report: {}",
        build::workspace_root()
            .join("target/bench/classifier.md")
            .display()
    );
    Ok(())
}
