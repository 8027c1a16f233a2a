//! Update cost: `fwctl restore` against `iptables-restore` for 1,000 and 10,000 rules, and
//! one insert into a 10,000-rule ruleset, each in a fresh namespace of its own. Wall time of
//! the command, as an operator would see it. Run by `cargo xtask bench`.

use std::{fmt::Write as _, process::Command, time::Instant};

use anyhow::{ensure, Context, Result};
use netlab::Netns;
use tests::{fwctl_bin, FwNs};

fn rules_file(n: usize) -> String {
    let mut f = String::from("*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n");
    for i in 0..n {
        let a = std::net::Ipv4Addr::from(0x0b00_0000u32 + i as u32);
        let _ = writeln!(
            f,
            "-A INPUT -s {a}/32 -p tcp -m tcp --dport {} -j DROP",
            10_000 + i % 50_000
        );
    }
    f.push_str("COMMIT\n");
    f
}

/// Runs `cmd` in `ns` with `file` on standard input; returns the seconds it took.
fn timed(ns: &Netns, program: &str, args: &[&str], file: &str) -> Result<f64> {
    use std::io::Write;
    let start = Instant::now();
    let mut child = ns
        .command(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(file.as_bytes())?;
    ensure!(child.wait()?.success(), "{program} {args:?} failed");
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let fwctl = fwctl_bin();
    let fwctl = fwctl.to_str().context("fwctl path")?;
    let mut table = String::from(
        "| change | fwctl (XDP maps + nftables table) | iptables-restore (nf_tables) |\n|---|---:|---:|\n",
    );
    for n in [1_000usize, 10_000] {
        let file = rules_file(n);
        let fw = FwNs::new("fwb-upd")?;
        let t_fw = timed(&fw, fwctl, &["restore"], &file)?;
        let ipt = Netns::new("fwb-ipt")?;
        let t_ipt = timed(&ipt, "iptables-restore", &[], &file)?;
        let row = format!(
            "| restore {n} rules | {:.0} ms | {:.0} ms |\n",
            t_fw * 1e3,
            t_ipt * 1e3
        );
        print!("{row}");
        table.push_str(&row);
        if n == 10_000 {
            let insert = [
                "-I", "INPUT", "2", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
            ];
            let start = Instant::now();
            ensure!(
                fw.command(fwctl).args(insert).status()?.success(),
                "fwctl insert"
            );
            let t_fw = start.elapsed().as_secs_f64();
            let start = Instant::now();
            ensure!(
                ipt.command("iptables").args(insert).status()?.success(),
                "iptables insert"
            );
            let t_ipt = start.elapsed().as_secs_f64();
            let row = format!(
                "| one insert into {n} rules | {:.0} ms | {:.0} ms |\n",
                t_fw * 1e3,
                t_ipt * 1e3
            );
            print!("{row}");
            table.push_str(&row);
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let cpu = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    std::fs::write(
        dir.join("update.md"),
        format!("# Update cost\n\nWall time of each command, {cpu} CPUs, a fresh namespace per ruleset.\n\n{table}"),
    )?;
    Ok(())
}
