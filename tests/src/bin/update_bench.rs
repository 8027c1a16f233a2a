//! Update cost: `fwctl restore` against `iptables-restore` for 1,000 and 10,000 rules; one
//! `-I`, `-D`, `-R` and `-A` into the 10,000 rules; one `-A`, `-I` and `-D` on a 2-rule
//! ruleset; one `set add` and `set del` on a hash:ip set a rule uses (against `ipset`); and loading
//! 100,000 and 1,000,000 set entries (`fwctl set restore` against `ipset restore`); a fail2ban-like run
//! (1,000 bans, each a set add and an `-I INPUT 1` / `-D` pair) under a steady UDP stream
//! whose DROP rule must count every packet sent. fwctl is attached to
//! a veth, as on a host, so its XDP side is written as it would be there. Wall time of the
//! command, as an operator would see it: each side's commands enter the namespace by setns
//! before exec (`Netns::direct`), as a host's commands need nothing of the kind, rather
//! than through `ip netns exec`, whose ~1.5 ms a command would otherwise carry. Single
//! changes are the median of 5. Run by
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

/// Entries in the sets loaded by both `fwctl set restore` and `ipset restore`.
const SET_ENTRIES: [u32; 2] = [100_000, 1_000_000];

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

/// Bans in the fail2ban-like run (`UPDATE_BANS` overrides).
const BANS: usize = 1_000;

/// One side of the fail2ban-like run: its host, the commands of each round (program and
/// arguments, `{}` for the address) and the program that lists INPUT.
struct Banner<'a> {
    host: &'a Netns,
    steps: [(&'a str, &'a str); 3],
    lister: &'a str,
}

/// A fail2ban-like run on a host with a set of bans, a rule dropping them and a rule
/// dropping UDP to port 9: `bans` bans (one set add each) and as many
/// `-I INPUT 1 -s ADDR -j DROP` / `-D` pairs (addresses no packet comes from), while the
/// peer sends a steady UDP stream to port 9. Returns the mean wall time per command and
/// (stream packets the port-9 rule counted, packets sent): equal when no packet was lost
/// or judged by anything but a whole ruleset.
fn fail2ban_run(side: &Banner, peer: &Netns, dst: &str, bans: usize) -> Result<(f64, u64, u64)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sender = peer.udp_socket("0.0.0.0:0".parse()?)?;
    let target: std::net::SocketAddr = format!("{dst}:9").parse()?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stream = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            // Paced (~50,000 a second at most), so that the veth never drops one.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    if sender.send_to(b"stream", target).is_ok() {
                        sent += 1;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            sent
        })
    };
    let addr = |i: usize| format!("10.{}.{}.{}", 100 + i / 65_536, i / 256 % 256, i % 256);
    let start = std::time::Instant::now();
    for i in 0..bans {
        for (program, line) in side.steps {
            run(side
                .host
                .direct(program)
                .args(line.replace("{}", &addr(i)).split_whitespace()))?;
        }
    }
    let per_command = start.elapsed().as_secs_f64() / (3 * bans) as f64;
    stop.store(true, Ordering::Relaxed);
    let sent = stream
        .join()
        .map_err(|_| anyhow::anyhow!("the UDP stream's thread panicked"))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let listing = netlab::output(
        side.host
            .direct(side.lister)
            .args(["-L", "INPUT", "-n", "-v", "-x"]),
    )?;
    let counted = listing
        .lines()
        .find(|l| l.contains("dpt:9") && l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no port-9 rule in:\n{listing}"))?;
    Ok((per_command, counted, sent))
}

/// One row: `fwctl set restore` against `ipset restore` of a file of `entries` /24s, each
/// in a fresh namespace, fwctl already running there as on a host (its first change
/// loads the XDP program, ~1 s of verification that is no part of a set's load; a
/// listing does not); both must hold every entry after.
fn set_restore_row(table: &mut Table, fwctl: &str, entries: u32) -> Result<()> {
    let set = TempFile::new("fwb-set", &set_file(entries))?;
    let fw = FwNs::new(&ns_prefix("set"))?;
    run(fw.direct(fwctl).args(["-P", "INPUT", "ACCEPT"]))?;
    let t_fw = timed(
        fw.direct(fwctl).args(["set", "restore", set.path_str()?]),
        None,
    )?;
    let held = |listed: String, tool: &str| -> Result<()> {
        let loaded = listed
            .lines()
            .find_map(|l| l.strip_prefix("Number of entries:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        anyhow::ensure!(
            loaded == entries.to_string(),
            "{tool} holds {loaded:?} entries after the restore, not {entries}:\n{listed}"
        );
        Ok(())
    };
    held(
        netlab::output(fw.direct(fwctl).args(["set", "list", "-terse", "fwbench"]))?,
        "fwctl",
    )?;
    drop(fw);
    let ips = Netns::new(&ns_prefix("ipset"))?;
    let t_ipset = timed(
        ips.direct("ipset")
            .args(["restore", "-file", set.path_str()?]),
        None,
    )?;
    held(
        netlab::output(ips.direct("ipset").args(["list", "-terse", "fwbench"]))?,
        "ipset",
    )?;
    table.row(vec![
        format!(
            "load {entries} set entries (hash:net /24s; fwctl up): set restore vs ipset restore"
        ),
        ms(t_fw),
        ms(t_ipset),
    ]);
    Ok(())
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
        let t_fw = timed(fw.direct(fwctl).arg("restore"), Some(&file))?;
        let ipt = Netns::new(&ns_prefix("ipt"))?;
        let t_ipt = timed(&mut ipt.direct("iptables-restore"), Some(&file))?;
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
                        let mut c = fw.direct(fwctl);
                        c.args(args(line, i));
                        c
                    },
                    |_| Ok(()),
                )?;
                let t_ipt = median_of(
                    |i| {
                        let mut c = ipt.direct("iptables");
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
            // The operator's usual loop: edit rules.v4, restore it. Here the same file
            // twice (each once into each generation), timed the second time.
            let again = |cmd: &mut Command| -> Result<f64> {
                timed(cmd, Some(&file))?;
                timed(cmd, Some(&file))
            };
            let t_fw = again(fw.direct(fwctl).arg("restore"))?;
            let t_ipt = again(&mut ipt.direct("iptables-restore"))?;
            table.row(vec![
                format!("restore the {n} rules in force again"),
                ms(t_fw),
                ms(t_ipt),
            ]);
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
        run(fw.direct(fwctl).args(args(line, 0)))?;
    }
    run(ipt.direct("ipset").args(["create", "bl", "hash:ip"]))?;
    for line in [
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m set --match-set bl src -j DROP",
    ] {
        run(ipt.direct("iptables").args(args(line, 0)))?;
    }
    // Every run changes the same 2-rule ruleset: what a run changed is undone (untimed)
    // before the next; for -D the rule it deletes is put there first.
    for (name, before, line, undo) in [
        (
            "-A",
            None,
            "-A INPUT -p tcp --dport 8{} -j ACCEPT",
            "-D INPUT 3",
        ),
        (
            "-I INPUT 1",
            None,
            "-I INPUT 1 -s 10.9.{}.1 -j DROP",
            "-D INPUT 1",
        ),
        (
            "-D INPUT 3",
            Some("-A INPUT -p tcp --dport 80 -j ACCEPT"),
            "-D INPUT 3",
            "-A INPUT -p tcp --dport 80 -j ACCEPT",
        ),
    ] {
        let mut times = Vec::new();
        for (host, program) in [(&*fw, fwctl), (&ipt, "iptables")] {
            if let Some(before) = before {
                run(host.direct(program).args(args(before, 0)))?;
            }
            times.push(median_of(
                |i| {
                    let mut c = host.direct(program);
                    c.args(args(line, i));
                    c
                },
                |i| run(host.direct(program).args(args(undo, i))),
            )?);
            if before.is_some() {
                run(host.direct(program).args(["-D", "INPUT", "3"]))?;
            }
        }
        table.row(vec![
            format!("one {name} on a 2-rule ruleset (median of {RUNS})"),
            ms(times[0]),
            ms(times[1]),
        ]);
    }
    for (name, fw_line, ipset_line) in [
        ("set add", "set add bl 10.7.0.{}", "add bl 10.7.0.{}"),
        ("set del", "set del bl 10.7.0.{}", "del bl 10.7.0.{}"),
    ] {
        let t_fw = median_of(
            |i| {
                let mut c = fw.direct(fwctl);
                c.args(args(fw_line, i));
                c
            },
            |_| Ok(()),
        )?;
        let t_ipset = median_of(
            |i| {
                let mut c = ipt.direct("ipset");
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

    // fail2ban's pattern on a host under a steady stream, fwctl and iptables + ipset each
    // attached to a veth of their own.
    let bans = std::env::var("UPDATE_BANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(BANS);
    let setup = [
        "-A INPUT -m set --match-set f2b src -j DROP",
        "-A INPUT -p udp --dport 9 -j DROP",
    ];
    let (fw, fw_peer) = attached("f2b")?;
    run(fw.direct(fwctl).args(["set", "create", "f2b", "hash:ip"]))?;
    for line in setup {
        run(fw.direct(fwctl).args(args(line, 0)))?;
    }
    let fw_side = Banner {
        host: &fw,
        steps: [
            (fwctl, "set add f2b {}"),
            (fwctl, "-I INPUT 1 -s {} -j DROP"),
            (fwctl, "-D INPUT -s {} -j DROP"),
        ],
        lister: fwctl,
    };
    let (t_fw, fw_counted, fw_sent) = fail2ban_run(&fw_side, &fw_peer, "10.250.0.1", bans)?;
    drop(fw);
    drop(fw_peer);
    let ipt = Netns::new(&ns_prefix("ipt-f2b"))?;
    let ipt_peer = Netns::new(&ns_prefix("ipt-f2b-peer"))?;
    netlab::veth(
        netlab::Link {
            ns: &ipt,
            ifname: "fwb0",
            addrs: &["10.250.0.1/24"],
        },
        netlab::Link {
            ns: &ipt_peer,
            ifname: "fwb1",
            addrs: &["10.250.0.2/24"],
        },
    )?;
    run(ipt.direct("ipset").args(["create", "f2b", "hash:ip"]))?;
    for line in setup {
        run(ipt.direct("iptables").args(args(line, 0)))?;
    }
    let ipt_side = Banner {
        host: &ipt,
        steps: [
            ("ipset", "add f2b {}"),
            ("iptables", "-I INPUT 1 -s {} -j DROP"),
            ("iptables", "-D INPUT -s {} -j DROP"),
        ],
        lister: "iptables",
    };
    let (t_ipt, ipt_counted, ipt_sent) = fail2ban_run(&ipt_side, &ipt_peer, "10.250.0.1", bans)?;
    table.row(vec![
        format!("fail2ban-like run: {bans} set adds and {bans} -I/-D pairs under a UDP stream (mean per command)"),
        ms(t_fw),
        ms(t_ipt),
    ]);
    table.row(vec![
        "that run: stream packets the untouched DROP rule counted / sent".to_string(),
        format!("{fw_counted} / {fw_sent}"),
        format!("{ipt_counted} / {ipt_sent}"),
    ]);
    drop(ipt);
    drop(ipt_peer);

    // Sets live in the namespace (ipset's are per network namespace): a fresh one each.
    for entries in SET_ENTRIES {
        set_restore_row(&mut table, fwctl, entries)?;
    }

    report::write_markdown(
        "update",
        "Update cost",
        "Wall time of each command as a host runs it (the namespace entered by setns, not `ip netns exec`), a fresh namespace per ruleset or set.",
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
