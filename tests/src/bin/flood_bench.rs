//! Flood drop rate on a veth pair: a generator namespace sends 64-byte TCP SYNs to a closed
//! port of the host namespace as fast as BPF_PROG_TEST_RUN live frames (an XDP_TX program
//! on the sending veth) can, and the host drops them at XDP: with a bare XDP_DROP program,
//! then with fwctl and the how-to's ruleset plus N extra rules. Run by `cargo xtask bench`.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use aya::{
    programs::{Xdp, XdpMode},
    EbpfLoader,
};
use netlab::{Link, Netns};
use tests::{
    generator::{self, ifindex},
    listed_counters,
    packets::Packet,
    report::{
        self,
        svg::{BarSeries, Bars},
        Table, TempFile,
    },
    FwNs,
};

const GEN_IF: &str = "fwbgen0";
const HOST_IF: &str = "fwbhost0";
/// Frames per generator run; about five seconds at the rates seen here.
const FRAMES: u32 = 30_000_000;

/// Frames per run for the netfilter receivers, by extra rules: a slow receiver slows the
/// sender too (they share the CPUs), so the count keeps each run to a few seconds.
fn netfilter_frames(extra: usize) -> u32 {
    match extra {
        0..=10 => 2_000_000,
        11..=1_000 => 200_000,
        _ => 20_000,
    }
}

/// Sends `frames` copies of `frame` out of the generator's veth; returns the seconds taken.
fn flood(gen: &Netns, frame: Vec<u8>, frames: u32) -> Result<f64> {
    generator::flood(gen, GEN_IF, "bench_tx", frame, frames)
}

/// XDP drops the host's veth reports (ethtool -S), summed over its queues.
fn xdp_drops(host: &Netns) -> Result<u64> {
    Ok(generator::nic_stats(host, HOST_IF)?
        .iter()
        .filter(|(name, _)| name.contains("xdp_drops"))
        .map(|(_, n)| n)
        .sum())
}

/// The netfilter receivers fwctl is compared with, on the same rules.
#[derive(Clone, Copy)]
enum Receiver {
    /// iptables (nf_tables backend) in the raw table: before conntrack.
    IptablesRaw,
    /// iptables' filter INPUT, after conntrack, with the stateful rule first.
    IptablesFilter,
    /// nftables, the same rules in a table of its own at filter priority.
    Nftables,
}

impl Receiver {
    const ALL: [Receiver; 3] = [
        Receiver::IptablesRaw,
        Receiver::IptablesFilter,
        Receiver::Nftables,
    ];

    fn name(self) -> &'static str {
        match self {
            Receiver::IptablesRaw => "iptables raw PREROUTING",
            Receiver::IptablesFilter => "iptables filter INPUT (conntrack)",
            Receiver::Nftables => "nftables input",
        }
    }

    /// The classic ruleset's ports and `extra` non-matching /32 rules, then a final DROP
    /// counted for the flood (the raw table has no policy counter to read).
    fn install(self, host: &Netns, classic: &[&str], extra: usize) -> Result<()> {
        let ports: Vec<&str> = classic
            .iter()
            .filter_map(|l| l.split("--dport ").nth(1))
            .map(|p| p.split_whitespace().next().unwrap_or(p))
            .collect();
        let extra_rule = |i: usize| {
            (
                std::net::Ipv4Addr::from(0x0b00_0000u32 + i as u32),
                10_000 + i % 50_000,
            )
        };
        match self {
            Receiver::IptablesRaw | Receiver::IptablesFilter => {
                let raw = matches!(self, Receiver::IptablesRaw);
                let chain = if raw { "PREROUTING" } else { "INPUT" };
                let mut f = format!("*{}\n", if raw { "raw" } else { "filter" });
                if !raw {
                    let _ = writeln!(
                        f,
                        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
                    );
                    let _ = writeln!(f, "-A INPUT -i lo -j ACCEPT");
                }
                for p in &ports {
                    let _ = writeln!(f, "-A {chain} -p tcp -m tcp --dport {p} -j ACCEPT");
                }
                for i in 0..extra {
                    let (a, p) = extra_rule(i);
                    let _ = writeln!(f, "-A {chain} -s {a}/32 -p tcp -m tcp --dport {p} -j DROP");
                }
                let _ = writeln!(f, "-A {chain} -j DROP\nCOMMIT");
                report::run_with_input(&mut host.command("iptables-restore"), Some(&f))
            }
            Receiver::Nftables => {
                let mut f = String::from(
                    "table inet fwbench {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ct state established,related accept\n  iifname \"lo\" accept\n",
                );
                for p in &ports {
                    let _ = writeln!(f, "  tcp dport {p} accept");
                }
                for i in 0..extra {
                    let (a, p) = extra_rule(i);
                    let _ = writeln!(f, "  ip saddr {a} tcp dport {p} drop");
                }
                f.push_str("  counter drop\n }\n}\n");
                report::run_with_input(host.command("nft").args(["-f", "-"]), Some(&f))
            }
        }
    }

    fn drops(self, host: &Netns) -> Result<u64> {
        let out = match self {
            Receiver::IptablesRaw => netlab::output(host.command("iptables").args([
                "-t",
                "raw",
                "-L",
                "PREROUTING",
                "-v",
                "-x",
                "-n",
            ]))?,
            Receiver::IptablesFilter => netlab::output(
                host.command("iptables")
                    .args(["-L", "INPUT", "-v", "-x", "-n"]),
            )?,
            Receiver::Nftables => {
                let out = netlab::output(
                    host.command("nft")
                        .args(["list", "chain", "inet", "fwbench", "input"]),
                )?;
                return out
                    .lines()
                    .find(|l| l.contains("counter packets") && l.contains("drop"))
                    .and_then(|l| l.split("packets ").nth(1))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .context("nft drop counter");
            }
        };
        // The last rule is the DROP that counts the flood.
        out.lines()
            .rev()
            .find(|l| l.contains("DROP"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .context("iptables drop counter")
    }

    fn remove(self, host: &Netns) -> Result<()> {
        match self {
            Receiver::IptablesRaw => {
                netlab::run(host.command("iptables").args(["-t", "raw", "-F"]))
            }
            Receiver::IptablesFilter => netlab::run(host.command("iptables").args(["-F"])),
            Receiver::Nftables => netlab::run(
                host.command("nft")
                    .args(["delete", "table", "inet", "fwbench"]),
            ),
        }
    }
}

fn rate(drops: u64, secs: f64) -> f64 {
    drops as f64 / secs / 1e6
}

fn main() -> Result<()> {
    let gen = Netns::new("fwb-gen")?;
    let host = FwNs::new("fwb-host")?;
    netlab::veth(
        Link {
            ns: &gen,
            ifname: GEN_IF,
            addrs: &["10.210.0.1/24"],
        },
        Link {
            ns: &host,
            ifname: HOST_IF,
            addrs: &["10.210.0.2/24"],
        },
    )?;
    let frame = Packet::tcp("10.210.0.1", "10.210.0.2", 40000, 8080).bytes();
    let mut table = Table::new(&[
        "receiver",
        "drops",
        "seconds",
        "Mpps dropped",
        "% of bare XDP_DROP",
    ]);

    // Bare XDP_DROP, attached by this process for the run.
    let host_if = ifindex(&host, HOST_IF)?;
    let bare = {
        // Attached from inside the host's namespace, where the ifindex means HOST_IF; the
        // attachment lasts as long as the object returned.
        let _attached = host.run(move || -> Result<aya::Ebpf> {
            let mut ebpf = EbpfLoader::new().load(fwctl::BENCH_PROGRAMS)?;
            let prog: &mut Xdp = ebpf
                .program_mut("bench_drop")
                .context("bench_drop")?
                .try_into()?;
            prog.load()?;
            prog.attach_to_if_index(host_if, XdpMode::Driver)?;
            Ok(ebpf)
        })??;
        let before = xdp_drops(&host)?;
        let secs = flood(&gen, frame.clone(), FRAMES)?;
        let drops = xdp_drops(&host)? - before;
        (drops, secs)
    };
    let (bare_drops, bare_secs) = bare;
    let bare = rate(bare_drops, bare_secs);
    table.row(vec![
        "bare XDP_DROP".into(),
        bare_drops.to_string(),
        format!("{bare_secs:.2}"),
        format!("{bare:.2}"),
        "100".into(),
    ]);

    let classic = tests::CLASSIC_RULESET;
    host.apply(classic);
    host.fwctl_ok(&["attach", HOST_IF]);
    let mut added = 0usize;
    for extra in [0usize, 10, 1_000, 10_000] {
        // Extra rules: distinct /32 sources on their own ports, none matching the flood.
        let mut file = String::from("*filter\n");
        for i in added..extra {
            let a = 0x0b00_0000u32 + i as u32;
            let _ = writeln!(
                file,
                "-A INPUT -s {}/32 -p tcp -m tcp --dport {} -j DROP",
                std::net::Ipv4Addr::from(a),
                10_000 + i % 50_000
            );
        }
        file.push_str("COMMIT\n");
        if extra > added {
            let rules = TempFile::new("fwb-rules", &file)?;
            host.fwctl_ok(&["restore", "--noflush", rules.path_str()?]);
            added = extra;
        }
        host.fwctl_ok(&["-Z"]);
        let secs = flood(&gen, frame.clone(), FRAMES)?;
        let list = host.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x"]);
        let (drops, _) = listed_counters(&list, "INPUT", 0)?;
        let r = rate(drops, secs);
        table.row(vec![
            format!("fwctl, classic ruleset + {extra} rules"),
            drops.to_string(),
            format!("{secs:.2}"),
            format!("{r:.2}"),
            format!("{:.0}", 100.0 * r / bare),
        ]);
    }
    host.fwctl_ok(&["down"]);
    // Without an XDP program of its own, a veth takes the peer's XDP_TX frames only in
    // NAPI mode, which GRO turns on.
    netlab::run(host.command("ethtool").args(["-K", HOST_IF, "gro", "on"]))?;
    // The stack (unlike XDP) drops frames for another MAC before netfilter sees them.
    let mut frame = frame;
    frame[..6].copy_from_slice(&generator::mac_bytes(&host, HOST_IF)?);
    for receiver in Receiver::ALL {
        for extra in [0usize, 10, 1_000, 10_000] {
            receiver.install(&host, classic, extra)?;
            let before = receiver.drops(&host)?;
            let secs = flood(&gen, frame.clone(), netfilter_frames(extra))?;
            // Let the backlog drain into the counters.
            std::thread::sleep(Duration::from_millis(300));
            let drops = receiver.drops(&host)? - before;
            let r = rate(drops, secs);
            table.row(vec![
                format!("{}, classic ruleset + {extra} rules", receiver.name()),
                drops.to_string(),
                format!("{secs:.2}"),
                format!("{r:.3}"),
                format!("{:.1}", 100.0 * r / bare),
            ]);
            receiver.remove(&host)?;
        }
    }
    report::write_markdown(
        "flood",
        "Flood drop rate on a veth pair",
        &format!("64-byte TCP SYNs to a closed port from BPF_PROG_TEST_RUN live frames (XDP_TX on the sender), {FRAMES} frames per run for XDP receivers, fewer for netfilter ones; sender and receiver share the CPUs; drops counted at the receiver."),
        &[("", &table)],
    )?;
    let chart = Bars {
        title: "Flood drop rate by receiver (64-byte SYNs, veth)".into(),
        unit: "Mpps dropped".into(),
        categories: table.rows().iter().map(|r| r[0].clone()).collect(),
        series: vec![BarSeries {
            name: "Mpps".into(),
            values: table.rows().iter().map(|r| report::number(&r[3])).collect(),
        }],
    };
    report::write_svg("flood", &chart.svg())?;
    Ok(())
}
