//! Update cost: `fwctl restore` against `iptables-restore` for 1,000 and 10,000 rules; one
//! `-I`, `-D`, `-R` and `-A` into the 10,000 rules; one `-A` on a 2-rule ruleset; one
//! `set add` and `set del` on a hash:ip set a rule uses (against `ipset`); and loading
//! 1,000,000 set entries (`fwctl set restore` against `ipset restore`). fwctl is attached to
//! a veth, as on a host, so its XDP side is written as it would be there. Wall time of the
//! command, as an operator would see it; single changes are the median of 5. Run by
//! `cargo xtask bench`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use netlab::Netns;
use std::process::Command;

use tests::{
    fwctl_bin,
    report::{
        self,
        svg::{BarSeries, Bars},
        timed, Table, TempFile,
    },
    FwNs,
};

/// Entries in the set loaded by both `fwctl set restore` and `ipset restore`.
const SET_ENTRIES: u32 = 1_000_000;

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

/// ipset's save format: one hash:net set of `n` distinct /24 prefixes (11.0.0.0/24
/// upwards), sized so neither the hash nor maxelem has to grow or refuses entries.
fn set_file(n: u32) -> String {
    let mut f = format!(
        "create fwbench hash:net family inet hashsize {} maxelem {}\n",
        n.next_power_of_two(),
        2 * n
    );
    for i in 0..n {
        let a = std::net::Ipv4Addr::from(0x0b00_0000u32 + (i << 8));
        let _ = writeln!(f, "add fwbench {a}/24");
    }
    f
}

fn ms(secs: f64) -> String {
    if secs < 0.1 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} ms", secs * 1e3)
    }
}

/// Runs per single change: the median is what a row reports.
const RUNS: usize = 5;

/// Prefix of the benchmark's network namespaces (`FWBENCH_NS` overrides it, so that runs
/// beside other work can be told apart).
fn ns_prefix(what: &str) -> String {
    let base = std::env::var("FWBENCH_NS").unwrap_or_else(|_| "fwb".to_string());
    format!("{base}-{what}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median wall time of `RUNS` runs of `cmd(run)`; `after(run)` (untimed) puts back what
/// the change altered where a row must measure the same change each time.
fn median_of(
    mut cmd: impl FnMut(usize) -> Command,
    mut after: impl FnMut(usize) -> Result<()>,
) -> Result<f64> {
    let mut times = Vec::new();
    for run in 0..RUNS {
        times.push(timed(&mut cmd(run), None)?);
        after(run)?;
    }
    Ok(median(times))
}

/// An fwctl namespace attached to one end of a veth whose other end is in `peer`.
fn attached(what: &str) -> Result<(FwNs, Netns)> {
    let fw = FwNs::new(&ns_prefix(what))?;
    let peer = Netns::new(&ns_prefix("peer"))?;
    netlab::veth(
        netlab::Link {
            ns: &fw,
            ifname: "fwb0",
            addrs: &["10.250.0.1/24"],
        },
        netlab::Link {
            ns: &peer,
            ifname: "fwb1",
            addrs: &["10.250.0.2/24"],
        },
    )?;
    let out = fw.fwctl(&["attach", "fwb0"]);
    anyhow::ensure!(
        out.status.success(),
        "fwctl attach fwb0: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((fw, peer))
}

/// Splits `line` into arguments with `{}` replaced by `n`.
fn args(line: &str, n: usize) -> Vec<String> {
    line.split_whitespace()
        .map(|a| a.replace("{}", &n.to_string()))
        .collect()
}

/// Runs `cmd` untimed, failing with its standard error.
fn run(cmd: &mut Command) -> Result<()> {
    tests::report::run_with_input(cmd, None)
}

fn main() -> Result<()> {
    let fwctl = fwctl_bin();
    let fwctl = fwctl.to_str().context("fwctl path")?;
    let mut table = Table::new(&[
        "change",
        "fwctl (XDP maps + nftables table)",
        "iptables (nf_tables) / ipset",
    ]);
    for n in [1_000usize, 10_000] {
        let file = rules_file(n);
        let (fw, _peer) = attached("upd")?;
        let t_fw = timed(fw.command(fwctl).arg("restore"), Some(&file))?;
        let ipt = Netns::new(&ns_prefix("ipt"))?;
        let t_ipt = timed(&mut ipt.command("iptables-restore"), Some(&file))?;
        table.row(vec![format!("restore {n} rules"), ms(t_fw), ms(t_ipt)]);
        if n == 10_000 {
            // Each run changes a rule near the top, so every later rule moves in iptables'
            // numbering: the case that costs most if rules are renumbered.
            for (name, line) in [
                (
                    "-I INPUT 3",
                    "-I INPUT 3 -s 12.0.0.{} -p tcp --dport 80 -j DROP",
                ),
                ("-D INPUT 3", "-D INPUT 3"),
                (
                    "-R INPUT 5",
                    "-R INPUT 5 -s 12.1.0.{} -p tcp --dport 81 -j DROP",
                ),
                (
                    "-A INPUT",
                    "-A INPUT -s 12.2.0.{} -p tcp --dport 82 -j DROP",
                ),
            ] {
                let t_fw = median_of(
                    |i| {
                        let mut c = fw.command(fwctl);
                        c.args(args(line, i));
                        c
                    },
                    |_| Ok(()),
                )?;
                let t_ipt = median_of(
                    |i| {
                        let mut c = ipt.command("iptables");
                        c.args(args(line, i));
                        c
                    },
                    |_| Ok(()),
                )?;
                table.row(vec![
                    format!("one {name} into {n} rules (median of {RUNS})"),
                    ms(t_fw),
                    ms(t_ipt),
                ]);
            }
        }
    }

    // A small ruleset with a set a rule uses: the per-command floor.
    let (fw, _peer) = attached("small")?;
    let ipt = Netns::new(&ns_prefix("ipt-small"))?;
    for line in [
        "set create bl hash:ip",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m set --match-set bl src -j DROP",
    ] {
        run(fw.command(fwctl).args(args(line, 0)))?;
    }
    run(ipt.command("ipset").args(["create", "bl", "hash:ip"]))?;
    for line in [
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m set --match-set bl src -j DROP",
    ] {
        run(ipt.command("iptables").args(args(line, 0)))?;
    }
    // Each added rule goes again before the next run: every run changes a 2-rule ruleset.
    let add = "-A INPUT -p tcp --dport 8{} -j ACCEPT";
    let t_fw = median_of(
        |i| {
            let mut c = fw.command(fwctl);
            c.args(args(add, i));
            c
        },
        |_| run(fw.command(fwctl).args(["-D", "INPUT", "3"])),
    )?;
    let t_ipt = median_of(
        |i| {
            let mut c = ipt.command("iptables");
            c.args(args(add, i));
            c
        },
        |_| run(ipt.command("iptables").args(["-D", "INPUT", "3"])),
    )?;
    table.row(vec![
        format!("one -A on a 2-rule ruleset (median of {RUNS})"),
        ms(t_fw),
        ms(t_ipt),
    ]);
    for (name, fw_line, ipset_line) in [
        ("set add", "set add bl 10.7.0.{}", "add bl 10.7.0.{}"),
        ("set del", "set del bl 10.7.0.{}", "del bl 10.7.0.{}"),
    ] {
        let t_fw = median_of(
            |i| {
                let mut c = fw.command(fwctl);
                c.args(args(fw_line, i));
                c
            },
            |_| Ok(()),
        )?;
        let t_ipset = median_of(
            |i| {
                let mut c = ipt.command("ipset");
                c.args(args(ipset_line, i));
                c
            },
            |_| Ok(()),
        )?;
        table.row(vec![
            format!("one {name} (hash:ip used by a rule; median of {RUNS})"),
            ms(t_fw),
            ms(t_ipset),
        ]);
    }
    drop(fw);
    drop(ipt);

    // Sets live in the namespace (ipset's are per network namespace): a fresh one each.
    let set = TempFile::new("fwb-set", &set_file(SET_ENTRIES))?;
    let fw = FwNs::new(&ns_prefix("set"))?;
    // Until `fwctl set` exists the row says so instead of failing the whole benchmark.
    let t_fw = match timed(
        fw.command(fwctl).args(["set", "restore", set.path_str()?]),
        None,
    ) {
        Ok(t) => ms(t),
        Err(e) => {
            eprintln!("fwctl set restore: {e:#}");
            "not available".to_string()
        }
    };
    drop(fw);
    let ips = Netns::new(&ns_prefix("ipset"))?;
    let t_ipset = timed(
        ips.command("ipset")
            .args(["restore", "-file", set.path_str()?]),
        None,
    )?;
    let listed = netlab::output(ips.command("ipset").args(["list", "-terse", "fwbench"]))?;
    let loaded = listed
        .lines()
        .find_map(|l| l.strip_prefix("Number of entries:"))
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    anyhow::ensure!(
        loaded == SET_ENTRIES.to_string(),
        "ipset holds {loaded:?} entries after the restore, not {SET_ENTRIES}:\n{listed}"
    );
    table.row(vec![
        format!("load {SET_ENTRIES} set entries (hash:net /24s): set restore vs ipset restore"),
        t_fw,
        ms(t_ipset),
    ]);

    report::write_markdown(
        "update",
        "Update cost",
        "Wall time of each command, a fresh namespace per ruleset or set.",
        &[("", &table)],
    )?;
    let column = |i: usize| -> Vec<Option<f64>> {
        table.rows().iter().map(|r| report::number(&r[i])).collect()
    };
    let chart = Bars {
        title: "Update cost (wall time of the command)".into(),
        unit: "ms".into(),
        categories: table
            .rows()
            .iter()
            .map(|r| r[0].split(": ").next().unwrap_or_default().to_string())
            .collect(),
        series: vec![
            BarSeries {
                name: "fwctl".into(),
                values: column(1),
            },
            BarSeries {
                name: "iptables-restore / iptables / ipset restore".into(),
                values: column(2),
            },
        ],
    };
    report::write_svg("update", &chart.svg())?;
    Ok(())
}
