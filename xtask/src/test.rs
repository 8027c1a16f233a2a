//! `cargo xtask test`: unit tests (in parallel), then the kernel tests (one at a time, as
//! root: they share the host's bpffs and create network namespaces; among them a
//! fixed-seed random differential run against iptables), then each parser fuzz target for
//! a few seconds from its seeds (`cargo xtask fuzz --parsers` runs them longer).

use std::{process::Command, time::Instant};

use anyhow::{bail, Result};

use crate::{build, cmd::run, fuzz, setup};

/// Seconds per parser fuzz target in `cargo xtask test`: enough to replay the seeds (every
/// `found-*` input among them) and the corpus earlier runs grew, and to try some mutations,
/// while the whole step stays well under a minute.
const FUZZ_SECONDS: u64 = 10;

pub fn test(filter: Option<String>) -> Result<()> {
    let start = Instant::now();
    setup::ensure()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the kernel tests load XDP programs and create network namespaces: run as root");
    }
    let fwctl = build::fwctl()?;
    let root = build::workspace_root();

    eprintln!("[test] unit tests");
    let mut unit = Command::new("cargo");
    unit.current_dir(&root).args([
        "test",
        "--workspace",
        "--exclude",
        "firewall-ebpf",
        "--exclude",
        "tests",
    ]);
    if let Some(f) = &filter {
        unit.arg(f);
    }
    run(&mut unit)?;

    eprintln!("[test] kernel tests (BPF_PROG_TEST_RUN fixtures, end to end in namespaces)");
    let mut kernel = Command::new("cargo");
    kernel
        .current_dir(&root)
        .env("FWCTL", &fwctl)
        .args(["test", "-p", "tests"]);
    if let Some(f) = &filter {
        kernel.arg(f);
    }
    kernel.args(["--", "--test-threads=1"]);
    run(&mut kernel)?;
    if filter.is_none() {
        eprintln!("[test] parser fuzzing, {FUZZ_SECONDS}s per target");
        setup::ensure_cargo_fuzz()?;
        for target in fuzz::PARSER_TARGETS {
            fuzz::parser(target, FUZZ_SECONDS)?;
        }
    }
    eprintln!("[test] all passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
