//! Update cost: `fwctl restore` against `iptables-restore` for 1,000 and 10,000 rules, one
//! insert into a 10,000-rule ruleset, and loading 1,000,000 set entries (`fwctl set
//! restore` against `ipset restore`), each in a fresh namespace of its own. Wall time of
//! the command, as an operator would see it. Run by `cargo xtask bench`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use netlab::Netns;
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
    format!("{:.0} ms", secs * 1e3)
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
        let fw = FwNs::new("fwb-upd")?;
        let t_fw = timed(fw.command(fwctl).arg("restore"), Some(&file))?;
        let ipt = Netns::new("fwb-ipt")?;
        let t_ipt = timed(&mut ipt.command("iptables-restore"), Some(&file))?;
        table.row(vec![format!("restore {n} rules"), ms(t_fw), ms(t_ipt)]);
        if n == 10_000 {
            let insert = [
                "-I", "INPUT", "2", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
            ];
            let t_fw = timed(fw.command(fwctl).args(insert), None)?;
            let t_ipt = timed(ipt.command("iptables").args(insert), None)?;
            table.row(vec![
                format!("one insert into {n} rules"),
                ms(t_fw),
                ms(t_ipt),
            ]);
        }
    }

    // Sets live in the namespace (ipset's are per network namespace): a fresh one each.
    let set = TempFile::new("fwb-set", &set_file(SET_ENTRIES))?;
    let fw = FwNs::new("fwb-set")?;
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
    let ips = Netns::new("fwb-ipset")?;
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
