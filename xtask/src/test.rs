//! `cargo xtask test`: unit tests (in parallel), then the kernel tests (one at a time, as
//! root: they share the host's bpffs and create network namespaces; among them a
//! fixed-seed random differential run against iptables). The parser fuzz targets run
//! apart, with `cargo xtask fuzz --parsers` (see fuzz.rs for why not here yet).

use std::{process::Command, time::Instant};

use anyhow::{bail, Result};

use crate::{build, cmd::run, setup};

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
    eprintln!("[test] all passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
