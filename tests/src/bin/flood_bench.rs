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

/// Frames per run for the netfilter receivers: a slow receiver slows the sender too (they
/// share the CPUs), so the count keeps each run to a few seconds.
fn netfilter_frames(receiver: Receiver, extra: usize) -> u32 {
    match (receiver, extra) {
        (Receiver::NftablesSet, _) | (_, 0..=10) => 2_000_000,
        (_, 11..=1_000) => 200_000,
        _ => 20_000,
    }
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
    /// nftables at netdev ingress, the allow rules as one lookup in a concatenated set of
    /// (source . port): what an nftables expert would write.
    NftablesSet,
}

impl Receiver {
    const ALL: [Receiver; 4] = [
        Receiver::IptablesRaw,
        Receiver::IptablesFilter,
        Receiver::Nftables,
        Receiver::NftablesSet,
    ];

    fn name(self) -> &'static str {
        match self {
            Receiver::IptablesRaw => "iptables raw PREROUTING",
            Receiver::IptablesFilter => "iptables filter INPUT (conntrack)",
            Receiver::Nftables => "nftables input",
            Receiver::NftablesSet => "nftables netdev ingress",
        }
    }

    fn ruleset(self) -> &'static str {
        match self {
            Receiver::NftablesSet => "1000 allow pairs in one set, then drop",
            _ => "how-to ruleset + 1000 allow rules, then drop",
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
                    let _ = writeln!(
                        f,
                        "-A {chain} -s {a}/32 -p tcp -m tcp --dport {p} -j ACCEPT"
                    );
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
                    let _ = writeln!(f, "  ip saddr {a} tcp dport {p} accept");
                }
                f.push_str("  counter drop\n }\n}\n");
                report::run_with_input(host.command("nft").args(["-f", "-"]), Some(&f))
            }
            Receiver::NftablesSet => {
                let elements: Vec<String> = (0..extra)
                    .map(|i| {
                        let (a, p) = extra_rule(i);
                        format!("{a} . {p}")
                    })
                    .collect();
                let f = format!(
                    "table netdev fwbench {{\n set allow {{\n  type ipv4_addr . inet_service\n  elements = {{ {} }}\n }}\n chain ingress {{\n  type filter hook ingress device \"{HOST_IF}\" priority 0; policy accept;\n  ip saddr . tcp dport @allow accept\n  counter drop\n }}\n}}\n",
                    elements.join(", ")
                );
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
            Receiver::Nftables | Receiver::NftablesSet => {
                let (family, chain) = match self {
                    Receiver::Nftables => ("inet", "input"),
                    _ => ("netdev", "ingress"),
                };
                let out = netlab::output(
                    host.command("nft")
                        .args(["list", "chain", family, "fwbench", chain]),
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
            Receiver::NftablesSet => netlab::run(
                host.command("nft")
                    .args(["delete", "table", "netdev", "fwbench"]),
            ),
        }
    }
}

fn rate(drops: u64, secs: f64) -> f64 {
    drops as f64 / secs / 1e6
}

/// A flood: the generator program and the frame it sends.
struct Flood {
    what: &'static str,
    program: &'static str,
    frame: Vec<u8>,
}

/// Attaches the bench object's XDP program `name` to the host's veth; it stays attached
/// as long as the object returned lives.
fn attach_bench(host: &Netns, name: &'static str) -> Result<aya::Ebpf> {
    let host_if = ifindex(host, HOST_IF)?;
    // Attached from inside the host's namespace, where the ifindex means HOST_IF.
    host.run(move || -> Result<aya::Ebpf> {
        let mut ebpf = EbpfLoader::new().load(fwctl::BENCH_PROGRAMS)?;
        let prog: &mut Xdp = ebpf.program_mut(name).context(name)?.try_into()?;
        prog.load()?;
        prog.attach_to_if_index(host_if, XdpMode::Driver)?;
        Ok(ebpf)
    })?
}

/// The bare XDP_DROP's rate (Mpps) on `flood`, attached by this process for the run.
fn bare_rate(gen: &Netns, host: &Netns, flood: &Flood) -> Result<f64> {
    let _attached = attach_bench(host, "bench_drop")?;
    let before = xdp_drops(host)?;
    let secs = generator::flood(gen, GEN_IF, flood.program, flood.frame.clone(), FRAMES)?;
    Ok(rate(xdp_drops(host)? - before, secs))
}

/// `extra` rules `-s 11.x.y.z/32 -p tcp --dport P -j ACCEPT`, none matching the floods.
fn allow_rules(extra: usize) -> String {
    let mut file = String::from("*filter\n");
    for i in 0..extra {
        let a = 0x0b00_0000u32 + i as u32;
        let _ = writeln!(
            file,
            "-A INPUT -s {}/32 -p tcp -m tcp --dport {} -j ACCEPT",
            std::net::Ipv4Addr::from(a),
            10_000 + i % 50_000
        );
    }
    file.push_str("COMMIT\n");
    file
}

/// Runs per row: fwctl (or the peer) and the bare XDP_DROP alternate, bare first and last;
/// each run is compared with the bare runs just before and after it, so load from
/// elsewhere on the machine, which drifts by up to a quarter within a row here, shows in
/// both sides of each ratio.
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A receiver attached to the host's veth in place of the bare XDP_DROP: set up once,
/// timed `ROUNDS` times between bare runs.
trait XdpReceiver {
    fn install(&self, host: &FwNs) -> Result<()>;
    /// Sends the flood; returns the receiver's own drop count and the seconds taken.
    fn flood(&self, gen: &Netns, host: &FwNs, flood: &Flood) -> Result<(u64, f64)>;
    fn remove(&self, host: &FwNs) -> Result<()>;
}

/// fwctl with `base` commands and the allow rules, attached to the host's veth. Its drops
/// are the counter of `drops` (table, chain, rule number or 0 for the policy), which must
/// hold what was sent: the row must time the rule it names.
struct Fwctl<'a> {
    base: &'a [&'a str],
    drops: (&'a str, &'a str, usize),
}

/// The INPUT policy, where the floods of most rows end.
const INPUT_POLICY: (&str, &str, usize) = ("filter", "INPUT", 0);

/// fwctl build `bin` with `base` commands and the allow rules, attached to the host's veth.
fn install_fwctl(host: &FwNs, bin: &std::path::Path, base: &[&str]) -> Result<()> {
    for line in base {
        fwctl_with(host, bin, &line.split_whitespace().collect::<Vec<_>>())?;
    }
    let rules = TempFile::new("fwb-rules", &allow_rules(EXTRA))?;
    fwctl_with(host, bin, &["restore", "--noflush", rules.path_str()?])?;
    fwctl_with(host, bin, &["attach", HOST_IF])?;
    Ok(())
}

impl XdpReceiver for Fwctl<'_> {
    fn install(&self, host: &FwNs) -> Result<()> {
        install_fwctl(host, &tests::fwctl_bin(), self.base)
    }

    fn flood(&self, gen: &Netns, host: &FwNs, flood: &Flood) -> Result<(u64, f64)> {
        let (table, chain, n) = self.drops;
        host.fwctl_ok(&["-t", table, "-Z"]);
        let secs = generator::flood(gen, GEN_IF, flood.program, flood.frame.clone(), FRAMES)?;
        let list = host.fwctl_ok(&["-t", table, "-L", chain, "-n", "-v", "-x", "--line-numbers"]);
        let (drops, _) = listed_counters(&list, chain, n)?;
        anyhow::ensure!(
            drops >= FRAMES as u64 * 99 / 100,
            "{}: {table} {chain} {n} dropped {drops} of {FRAMES} frames",
            flood.what
        );
        Ok((drops, secs))
    }

    fn remove(&self, host: &FwNs) -> Result<()> {
        host.fwctl_ok(&["down"]);
        Ok(())
    }
}

/// xdp-filter (xdp-tools), default deny, the allow rules' sources as its allow entries
/// (it matches addresses or ports, not pairs). Its drops are the veth's XDP drops.
struct XdpFilter;

impl XdpReceiver for XdpFilter {
    fn install(&self, host: &FwNs) -> Result<()> {
        // xdp-filter pins its maps in bpffs, which `ip netns exec` does not mount: one
        // shell with a bpffs of its own loads it and fills it; the program stays attached.
        let mut script = format!(
            "set -e; mount -t bpf bpf /sys/fs/bpf; xdp-filter load --mode native --policy deny {HOST_IF}\n"
        );
        for i in 0..EXTRA {
            let a = std::net::Ipv4Addr::from(0x0b00_0000u32 + i as u32);
            let _ = writeln!(script, "xdp-filter ip {a} --mode src");
        }
        netlab::run(host.command("sh").args(["-c", &script]))
    }

    fn flood(&self, gen: &Netns, host: &FwNs, flood: &Flood) -> Result<(u64, f64)> {
        let before = xdp_drops(host)?;
        let secs = generator::flood(gen, GEN_IF, flood.program, flood.frame.clone(), FRAMES)?;
        let drops = xdp_drops(host)? - before;
        // 95 %, not fwctl's 99: at xdp-filter's slower drop rate the veth's ring overflows
        // now and then (1.6 % of a spoofed run was seen lost there), and those frames
        // never reach it. Its rate is still what it dropped over the run's time.
        anyhow::ensure!(
            drops >= FRAMES as u64 * 95 / 100,
            "xdp-filter dropped {drops} of {FRAMES} frames"
        );
        Ok((drops, secs))
    }

    fn remove(&self, host: &FwNs) -> Result<()> {
        netlab::run(
            host.command("ip")
                .args(["link", "set", "dev", HOST_IF, "xdp", "off"]),
        )
    }
}

/// A receiver's runs against the bare XDP_DROP runs around them.
struct Bracketed {
    /// The receiver's median rate (Mpps).
    rate: f64,
    /// Every bare run, in order (one more than the receiver's).
    bare: Vec<f64>,
    /// The median over the receiver's runs of its rate over the mean of the two bare
    /// runs around it.
    share: f64,
}

/// The receiver's and the bare XDP_DROP's rates (Mpps) on `flood`, alternating.
fn bracketed(
    gen: &Netns,
    host: &FwNs,
    receiver: &dyn XdpReceiver,
    flood: &Flood,
) -> Result<Bracketed> {
    let mut bare = vec![bare_rate(gen, host, flood)?];
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        receiver.install(host)?;
        let (drops, secs) = receiver.flood(gen, host, flood)?;
        receiver.remove(host)?;
        rates.push(rate(drops, secs));
        bare.push(bare_rate(gen, host, flood)?);
    }
    let shares = rates
        .iter()
        .enumerate()
        .map(|(i, r)| r / ((bare[i] + bare[i + 1]) / 2.0))
        .collect();
    Ok(Bracketed {
        rate: median(rates),
        bare,
        share: median(shares),
    })
}

/// Segments per established-flow run: the host's TCP takes them at stack speed.
const ESTABLISHED_FRAMES: u32 = 3_000_000;

/// What receives the established flow's segments in one of its rows.
enum Established {
    /// No firewall, no conntrack (not even iptables' empty chains).
    Nothing,
    /// A bare XDP_PASS program on the veth, no firewall: what XDP itself costs here.
    BarePass,
    /// iptables' filter INPUT with the how-to's ruleset and the allow rules.
    Iptables,
    /// fwctl (this binary, or an older build's), the same rules, attached to the veth.
    Fwctl {
        bin: std::path::PathBuf,
        label: String,
    },
}

impl Established {
    fn name(&self) -> String {
        match self {
            Established::Nothing => "no firewall (no conntrack)".into(),
            Established::BarePass => "bare XDP_PASS program, no firewall (no conntrack)".into(),
            Established::Iptables => {
                "iptables filter INPUT (conntrack), how-to ruleset + 1000 allow rules".into()
            }
            Established::Fwctl { label, .. } => {
                format!("{label}, how-to stateful ruleset + 1000 allow rules (ESTABLISHED at XDP)")
            }
        }
    }
}

/// `bin` (a fwctl build) with `args` in the host's namespace; its output, or an error.
fn fwctl_with(host: &FwNs, bin: &std::path::Path, args: &[&str]) -> Result<String> {
    let bin = bin.to_str().context("non-UTF-8 fwctl path")?;
    netlab::output(host.command(bin).args(args))
}

/// Segments of a real, established TCP connection (pure ACKs from the generator's
/// namespace to the host's port 22, offered as fast as the generator goes): how many per
/// second the host's TCP receives (`Tcp InSegs`) with fwctl (the how-to's stateful ruleset
/// and 1,000 rules: each segment looked up at XDP, ESTABLISHED, accepted by rule 2), with
/// iptables and the same rules (conntrack, then its ESTABLISHED,RELATED rule), with a bare
/// XDP_PASS program and no firewall, and with nothing at all; with `FWCTL_BEFORE=PATH`, also
/// with that older fwctl build. Each in turn, `ROUNDS` times; the medians are reported.
/// The segments' sequence numbers are not the connection's: conntrack is made liberal
/// (`nf_conntrack_tcp_be_liberal`) so that it does not call them INVALID, for iptables'
/// rule to accept them as fwctl's XDP (which does not check windows) does. Fails unless
/// the ESTABLISHED,RELATED rule counted what TCP received.
fn established_rows(gen: &Netns, host: &FwNs, table: &mut Table) -> Result<()> {
    // Without an XDP program of its own, a veth takes the peer's XDP_TX frames only in
    // NAPI mode, which GRO turns on: on for every run (pure ACKs are not coalesced).
    netlab::run(host.command("ethtool").args(["-K", HOST_IF, "gro", "on"]))?;
    netlab::run(
        host.command("sysctl")
            .args(["-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1"]),
    )?;
    let server: std::net::SocketAddr = "10.210.0.2:22".parse()?;
    let listener = host.run(move || std::net::TcpListener::bind(server))??;
    let host_mac = generator::mac_bytes(host, HOST_IF)?;
    // A new connection under each receiver, so that its conntrack entry is that
    // receiver's; then its segments, as fast as the generator goes.
    let received = || -> Result<(u64, f64)> {
        let client = gen.run(move || std::net::TcpStream::connect(server))??;
        let (_accepted, _) = listener.accept()?;
        let mut ack = Packet::tcp("10.210.0.1", "10.210.0.2", client.local_addr()?.port(), 22);
        ack.tcp_flags = 0x10;
        let mut frame = ack.bytes();
        // The stack drops frames for another MAC before TCP sees them, and conntrack calls
        // a segment with a bad checksum INVALID.
        frame[..6].copy_from_slice(&host_mac);
        fill_tcp_checksum(&mut frame);
        let before = host.snmp("Tcp", "InSegs")?;
        let secs = generator::flood(gen, GEN_IF, "bench_tx", frame, ESTABLISHED_FRAMES)?;
        // Let the backlog drain into the counters.
        std::thread::sleep(Duration::from_millis(300));
        Ok((host.snmp("Tcp", "InSegs")? - before, secs))
    };
    let accepted_all = |accepted: u64, got: u64, who: &str| {
        anyhow::ensure!(
            accepted >= got * 99 / 100 && got > 0,
            "{who}: the ESTABLISHED,RELATED rule accepted {accepted} of the {got} segments TCP received"
        );
        Ok(())
    };
    let mut receivers = vec![
        Established::Nothing,
        Established::BarePass,
        Established::Iptables,
        Established::Fwctl {
            bin: tests::fwctl_bin(),
            label: "fwctl".into(),
        },
    ];
    if let Some(bin) = std::env::var_os("FWCTL_BEFORE").map(std::path::PathBuf::from) {
        let version = netlab::output(std::process::Command::new(&bin).arg("--version"))?;
        receivers.push(Established::Fwctl {
            bin,
            label: format!("FWCTL_BEFORE ({})", version.trim()),
        });
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); receivers.len()];
    for _ in 0..ROUNDS {
        for (receiver, rates) in receivers.iter().zip(rates.iter_mut()) {
            let (got, secs) = match receiver {
                Established::Nothing => {
                    // Not even iptables' empty chains, nor the conntrack hooks its rule
                    // brought.
                    netlab::run(host.command("nft").args(["flush", "ruleset"]))?;
                    received()?
                }
                Established::BarePass => {
                    netlab::run(host.command("nft").args(["flush", "ruleset"]))?;
                    let _attached = attach_bench(host, "bench_pass")?;
                    received()?
                }
                Established::Iptables => {
                    let iptables = Receiver::IptablesFilter;
                    iptables.install(host, tests::CLASSIC_RULESET, EXTRA)?;
                    let (got, secs) = received()?;
                    let list = netlab::output(host.command("iptables").args([
                        "-L",
                        "INPUT",
                        "-v",
                        "-x",
                        "-n",
                        "--line-numbers",
                    ]))?;
                    accepted_all(listed_counters(&list, "INPUT", 1)?.0, got, "iptables")?;
                    iptables.remove(host)?;
                    (got, secs)
                }
                Established::Fwctl { bin, label } => {
                    install_fwctl(host, bin, tests::CLASSIC_RULESET)?;
                    let (got, secs) = received()?;
                    let list = fwctl_with(
                        host,
                        bin,
                        &["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"],
                    )?;
                    accepted_all(listed_counters(&list, "INPUT", 2)?.0, got, label)?;
                    fwctl_with(host, bin, &["down"])?;
                    (got, secs)
                }
            };
            rates.push(rate(got, secs));
            eprintln!(
                "{}: {:.3} Mpps",
                receiver.name(),
                rates.last().unwrap_or(&0.0)
            );
        }
    }
    let none = median(rates[0].clone());
    for (receiver, rates) in receivers.iter().zip(rates) {
        let r = median(rates.clone());
        table.row(vec![
            receiver.name(),
            "ACKs of an established TCP connection, received by TCP".to_string(),
            format!("{r:.3}"),
            rates
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{:.2} of no firewall", r / none),
        ]);
        eprintln!("{:?}", table.rows().last());
    }
    netlab::run(
        host.command("sysctl")
            .args(["-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=0"]),
    )?;
    netlab::run(host.command("ethtool").args(["-K", HOST_IF, "gro", "off"]))?;
    Ok(())
}

/// Writes the TCP checksum of an untagged IPv4 frame without IP options (the test frames
/// leave it 0: XDP does not check it, conntrack and TCP do).
fn fill_tcp_checksum(frame: &mut [u8]) {
    const L4: usize = 14 + 20;
    frame[L4 + 16..L4 + 18].copy_from_slice(&[0, 0]);
    let segment = &frame[L4..];
    let mut sum: u32 = 6 + segment.len() as u32;
    let words = frame[14 + 12..14 + 20].chunks(2).chain(segment.chunks(2));
    for w in words {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[L4 + 16..L4 + 18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Non-matching rules beside the ruleset, as in issue 12's table.
const EXTRA: usize = 1_000;

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
    // To the host's own MAC: neither the stack nor fwctl's XDP judges a frame for another
    // (fwctl passes it on for the kernel to drop, as iptables never sees it).
    let host_mac = generator::mac_bytes(&host, HOST_IF)?;
    let to_host = |mut frame: Vec<u8>| {
        frame[..6].copy_from_slice(&host_mac);
        frame
    };
    let syn = to_host(Packet::tcp("10.210.0.1", "10.210.0.2", 40000, 8080).bytes());
    let udp = to_host(Packet::udp("10.210.0.1", "10.210.0.2", 40000, 8080).bytes());
    let fixed = Flood {
        what: "TCP SYNs from one source",
        program: "bench_tx",
        frame: syn.clone(),
    };
    let spoofed = Flood {
        what: "TCP SYNs from random spoofed sources",
        program: "bench_tx_spoof",
        frame: syn.clone(),
    };
    let spoofed_udp = Flood {
        what: "UDP from random spoofed sources",
        program: "bench_tx_spoof",
        frame: udp,
    };
    let stateless: &[&str] = &["-P INPUT DROP"];
    let stateful = tests::CLASSIC_RULESET;
    let mut table = Table::new(&[
        "receiver",
        "flood",
        "Mpps dropped (median)",
        "bare XDP_DROP runs around it (Mpps)",
        "share of bare (median of each run over the bare runs around it)",
    ]);
    // What people write to shed a flood before conntrack: judged at XDP too.
    let raw_drop: &[&str] = &["-t raw -A PREROUTING -p tcp --dport 8080 -j DROP"];
    let xdp_rows: [(String, &dyn XdpReceiver, &Flood); 7] = [
        (
            "xdp-filter 1.3.1, deny policy, 1000 allowed sources".into(),
            &XdpFilter,
            &fixed,
        ),
        (
            "fwctl, policy DROP + 1000 allow rules".into(),
            &Fwctl {
                base: stateless,
                drops: INPUT_POLICY,
            },
            &fixed,
        ),
        (
            "fwctl, policy DROP + 1000 allow rules".into(),
            &Fwctl {
                base: stateless,
                drops: INPUT_POLICY,
            },
            &spoofed,
        ),
        (
            "xdp-filter 1.3.1, deny policy, 1000 allowed sources".into(),
            &XdpFilter,
            &spoofed,
        ),
        (
            "fwctl, how-to stateful ruleset + 1000 allow rules".into(),
            &Fwctl {
                base: stateful,
                drops: INPUT_POLICY,
            },
            &spoofed,
        ),
        (
            "fwctl, how-to stateful ruleset + 1000 allow rules".into(),
            &Fwctl {
                base: stateful,
                drops: INPUT_POLICY,
            },
            &spoofed_udp,
        ),
        (
            "fwctl, -t raw -A PREROUTING -p tcp --dport 8080 -j DROP + 1000 allow rules".into(),
            &Fwctl {
                base: raw_drop,
                drops: ("raw", "PREROUTING", 1),
            },
            &spoofed,
        ),
    ];
    // FLOOD_ONLY=TEXT: only the XDP rows whose receiver or flood names TEXT, and no
    // netfilter peers (a quick look while working on one row).
    let only = std::env::var("FLOOD_ONLY").ok();
    for (name, receiver, flood) in xdp_rows {
        if let Some(text) = &only {
            if !name.contains(text.as_str()) && !flood.what.contains(text.as_str()) {
                continue;
            }
        }
        let b = bracketed(&gen, &host, receiver, flood)?;
        table.row(vec![
            name,
            flood.what.to_string(),
            format!("{:.2}", b.rate),
            b.bare
                .iter()
                .map(|b| format!("{b:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{:.2}", b.share),
        ]);
        eprintln!("{:?}", table.rows().last());
    }
    if only
        .as_deref()
        .is_none_or(|text| "established".contains(text))
    {
        established_rows(&gen, &host, &mut table)?;
    }
    if only.is_some() {
        println!("{}", table.markdown());
        return Ok(());
    }
    // The netfilter peers, on the fixed flood (their drop rates are far lower).
    let bare = bare_rate(&gen, &host, &fixed)?;
    // Without an XDP program of its own, a veth takes the peer's XDP_TX frames only in
    // NAPI mode, which GRO turns on.
    netlab::run(host.command("ethtool").args(["-K", HOST_IF, "gro", "on"]))?;
    let frame = syn;
    for receiver in Receiver::ALL {
        receiver.install(&host, stateful, EXTRA)?;
        let before = receiver.drops(&host)?;
        let secs = generator::flood(
            &gen,
            GEN_IF,
            "bench_tx",
            frame.clone(),
            netfilter_frames(receiver, EXTRA),
        )?;
        // Let the backlog drain into the counters.
        std::thread::sleep(Duration::from_millis(300));
        let drops = receiver.drops(&host)? - before;
        let r = rate(drops, secs);
        table.row(vec![
            format!("{}, {}", receiver.name(), receiver.ruleset()),
            fixed.what.to_string(),
            format!("{r:.3}"),
            format!("{bare:.2}"),
            format!("{:.3}", r / bare),
        ]);
        receiver.remove(&host)?;
    }
    report::write_markdown(
        "flood",
        "Flood drop rate on a veth pair",
        &format!("64-byte frames to a closed port from BPF_PROG_TEST_RUN live frames (XDP_TX on the sender, `bench_tx_spoof` for random source addresses and ports), {FRAMES} frames per XDP run, fewer for netfilter ones; sender and receiver share the CPUs; drops counted at the receiver (fwctl: its INPUT policy counter, which must hold 99 % of the frames sent). Each XDP row alternates its receiver with bare XDP_DROP runs of the same generator ({ROUNDS} runs of the receiver, bare before, between and after); its share is the median, over the receiver's runs, of each run's rate over the mean of the bare runs just before and after it."),
        &[("", &table)],
    )?;
    let chart = Bars {
        title: "Flood drop rate, share of a bare XDP_DROP".into(),
        unit: "share of bare XDP_DROP".into(),
        categories: table
            .rows()
            .iter()
            .map(|r| format!("{} ({})", r[0], r[1]))
            .collect(),
        series: vec![BarSeries {
            name: "share".into(),
            values: table.rows().iter().map(|r| report::number(&r[4])).collect(),
        }],
    };
    report::write_svg("flood", &chart.svg())?;
    Ok(())
}
