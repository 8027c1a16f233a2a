//! `cargo xtask bench`: the benchmarks, in release builds, as root: the classifier's
//! per-packet cost against the rule count (BPF_PROG_TEST_RUN), the flood drop rate on a
//! veth pair against a bare XDP_DROP, the update cost (rules and a 1,000,000-entry set),
//! and a TCP service's transaction rate under a spoofed SYN flood. Each prints its tables;
//! the reports (Markdown) and their charts (SVG) go to target/bench/.

use std::{process::Command, time::Instant};

use anyhow::{bail, Result};

use crate::{build, cmd::run, setup};

pub fn bench() -> Result<()> {
    let start = Instant::now();
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
        "--bin",
        "attack_bench",
    ]))?;
    let bin = root.join("target/release");
    let fwctl = bin.join("fwctl");
    let steps: [(&str, &str); 4] = [
        (
            "classifier_bench",
            "classifier cost vs rule count (BPF_PROG_TEST_RUN)",
        ),
        (
            "flood_bench",
            "flood drop rate on a veth pair: fwctl, iptables, nftables (a few minutes)",
        ),
        (
            "update_bench",
            "update cost: restore, -I/-D/-R/-A into 10,000 rules, a small change, set add/del vs iptables and ipset; 1,000,000 set entries vs ipset restore",
        ),
        (
            "attack_bench",
            "a TCP service under a spoofed SYN flood: fwctl, iptables, no firewall (about 4 minutes)",
        ),
    ];
    for (i, (program, what)) in steps.iter().enumerate() {
        let step = Instant::now();
        eprintln!("[bench] {}/{} {what}", i + 1, steps.len());
        run(Command::new(bin.join(program)).env("FWCTL", &fwctl))?;
        eprintln!(
            "[bench] {}/{} done in {:.0}s",
            i + 1,
            steps.len(),
            step.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "[bench] reports and charts (*.md, *.svg) in {}; {:.0}s in all",
        root.join("target/bench").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
