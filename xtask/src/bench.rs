//! `cargo xtask bench`: the benchmarks, in release builds, as root: the classifier's
//! per-packet cost against the rule count (BPF_PROG_TEST_RUN), and the flood drop rate on a
//! veth pair against a bare XDP_DROP. Reports go to target/bench/.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{build, cmd::run, setup};

pub fn bench() -> Result<()> {
    setup::ensure()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmarks load XDP programs: run as root");
    }
    let root = build::workspace_root();
    eprintln!("[bench] building fwctl and the benchmarks (release)");
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "firewall-userspace",
        "-p",
        "tests",
        "--bin",
        "fwctl",
        "--bin",
        "classifier_bench",
        "--bin",
        "flood_bench",
        "--bin",
        "update_bench",
    ]))?;
    let bin = root.join("target/release");
    eprintln!("[bench] 1/3 classifier cost vs rule count (BPF_PROG_TEST_RUN)");
    run(&mut Command::new(bin.join("classifier_bench")))?;
    eprintln!(
        "[bench] 2/3 flood drop rate on a veth pair: fwctl, iptables, nftables (a few minutes)"
    );
    run(Command::new(bin.join("flood_bench")).env("FWCTL", bin.join("fwctl")))?;
    eprintln!("[bench] 3/3 update cost: fwctl restore vs iptables-restore");
    run(Command::new(bin.join("update_bench")).env("FWCTL", bin.join("fwctl")))?;
    eprintln!("[bench] reports in {}", root.join("target/bench").display());
    Ok(())
}
