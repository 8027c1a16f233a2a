//! Per-packet cost of the XDP classifier against the number of rules, and the cost of
//! compiling and installing each ruleset. Run by `cargo xtask bench` (as root); prints a
//! table and writes it to target/bench/classifier.md, with the chart classifier.svg.

use std::time::Instant;

use anyhow::Result;
use fwctl::rules::{
    edit::Editor, Chain, Cidr, Family, Neg, PortRange, RuleSpec, Ruleset, Target, Verdict,
};
use tests::{
    packets::Packet,
    program::Harness,
    report::{self, svg::Lines, Table},
};

/// The how-to's ruleset: policy DROP, loopback, SSH and the mail ports.
fn classic(e: &mut Editor) -> Result<()> {
    e.policy(Family::V4, Chain::Input, Verdict::Drop)?;
    let lo = RuleSpec {
        in_iface: Some(Neg::plain("lo".to_string())),
        ..RuleSpec::any(Target::Accept)
    };
    e.append(Family::V4, "INPUT", vec![lo])?;
    for port in [22u16, 587, 110, 143, 993, 995] {
        e.append(Family::V4, "INPUT", vec![tcp_port(port, Target::Accept)])?;
    }
    Ok(())
}

fn tcp_port(port: u16, target: Target) -> RuleSpec {
    RuleSpec {
        proto: Some(Neg::plain(6)),
        dport: Some(Neg::plain(PortRange {
            min: port,
            max: port,
        })),
        ..RuleSpec::any(target)
    }
}

/// `n` extra rules in front of the classic ones' fall-through: a block list of distinct
/// /32 sources, each on its own port, so no two rules share a bitmap.
fn with_extra(n: usize) -> Result<Ruleset> {
    let mut e = Editor::new(Ruleset::default());
    classic(&mut e)?;
    for i in 0..n {
        let addr = std::net::Ipv4Addr::from(0x0b00_0000u32 + i as u32);
        let spec = RuleSpec {
            src: Some(Neg::plain(Cidr {
                addr: addr.into(),
                prefix: 32,
            })),
            ..tcp_port(10_000 + (i % 50_000) as u16, Target::Drop)
        };
        e.append(Family::V4, "INPUT", vec![spec])?;
    }
    Ok(e.ruleset)
}

/// A client namespace behind the attached interface's veth peer, so that a real TCP
/// connection's segments arrive on that interface as the kernel would deliver them (a
/// loopback or local source arriving there is a martian, which XDP leaves alone).
const SERVER: &str = "10.77.0.1";
const CLIENT: &str = "10.77.0.2";

fn client_behind_nic(h: &Harness) -> Result<netlab::Netns> {
    let ns = h.netns();
    let client = netlab::Netns::new("fwt-client")?;
    let peer = format!("{NIC}p");
    ns.ip(&["link", "set", &peer, "netns", client.name()])?;
    client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", &peer])?;
    client.ip(&["link", "set", &peer, "up"])?;
    ns.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", NIC])?;
    Ok(client)
}

/// ns per run of an ACK of a real, established TCP connection from `client` (conntrack on
/// in the harness's namespace through an nftables rule that uses it), under the how-to
/// ruleset and 1,000 more rules: through the fast table, then the classifier alone. Fails
/// unless the program accepts it and the ESTABLISHED,RELATED rule counts it.
fn established_flow(
    h: &mut Harness,
    client: &netlab::Netns,
    nic: u32,
    clock: &Clock,
) -> Result<(Timed, Timed)> {
    let repeat = clock.repeat;
    let ns = h.netns();
    let _ = netlab::run(ns.command("nft").args(["delete", "table", "inet", "fwtct"]));
    for cmd in [
        "add table inet fwtct",
        "add chain inet fwtct fwin { type filter hook input priority 10 ; }",
        "add rule inet fwtct fwin ct state established counter accept",
    ] {
        netlab::run(ns.command("nft").args(cmd.split(' ')))?;
    }
    let listener = ns.run(|| std::net::TcpListener::bind((SERVER, 0)))??;
    let to = listener.local_addr()?;
    let client_end = client.run(move || std::net::TcpStream::connect(to))??;
    let (server, _) = listener.accept()?;
    let (cport, sport) = (client_end.local_addr()?.port(), server.local_addr()?.port());
    let mut ack = Packet::tcp(CLIENT, SERVER, cport, sport);
    ack.tcp_flags = 0x10;
    let ack = ack.bytes();
    let mut lines: Vec<String> = tests::CLASSIC_RULESET
        .iter()
        .map(|l| l.to_string())
        .collect();
    for i in 0..1_000u32 {
        let src = std::net::Ipv4Addr::from(0x0b00_0000u32 + i);
        lines.push(format!(
            "-A INPUT -s {src}/32 -p tcp --dport {} -j ACCEPT",
            10_000 + i
        ));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    h.apply(&lines)?;
    let judged = h.judge(&ack, nic)?;
    let counted = h.counter(fwctl::rules::Family::V4, 2)?.packets;
    anyhow::ensure!(
        judged.action == tests::program::XDP_PASS && counted == 1,
        "the established segment was not accepted by rule 2 at XDP: {judged:?}, rule 2 counted {counted}"
    );
    let fast = clock.time(|| h.time(&ack, nic, repeat))?;
    h.set_fast(false)?;
    let slow = clock.time(|| h.time(&ack, nic, repeat))?;
    h.set_fast(true)?;
    drop((listener, client_end, server));
    Ok((fast, slow))
}

/// The interface the benchmark's frames arrive on.
const NIC: &str = "fwtnic0";

/// Rounds per cell: each times the cell and the bare program once, alternately.
const ROUNDS: usize = 9;

/// Times cells against the bare XDP_DROP program run the same way in between: this VM's
/// TEST_RUN timings drift by more than the differences measured, so a cell is only
/// compared with the bare runs around it.
struct Clock {
    ebpf: aya::Ebpf,
    frame: Vec<u8>,
    ctx: Vec<u8>,
    repeat: u32,
    /// Every bare run so far, for the floor's own row.
    bares: std::cell::RefCell<Vec<f64>>,
}

/// A cell's median ns per run, and how far above the bare runs' median around it.
#[derive(Clone, Copy)]
struct Timed {
    ns: f64,
    over: f64,
}

impl std::fmt::Display for Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ({:+.1})", self.ns, self.over)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Clock {
    fn new(frame: &[u8], nic: u32, repeat: u32) -> Result<Clock> {
        let mut ebpf = aya::EbpfLoader::new().load(fwctl::BENCH_PROGRAMS)?;
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("bench_drop")
            .ok_or_else(|| anyhow::anyhow!("no bench_drop"))?
            .try_into()?;
        prog.load()?;
        let md: [u32; 6] = [0, frame.len() as u32, 0, nic, 0, 0];
        Ok(Clock {
            ebpf,
            frame: frame.to_vec(),
            ctx: md.iter().flat_map(|w| w.to_ne_bytes()).collect(),
            repeat,
            bares: Default::default(),
        })
    }

    /// One run of the bare program, ns per run.
    fn bare_once(&self) -> Result<f64> {
        let prog: &aya::programs::Xdp = self
            .ebpf
            .program("bench_drop")
            .ok_or_else(|| anyhow::anyhow!("no bench_drop"))?
            .try_into()?;
        let r = aya::programs::TestRun::test_run(
            prog,
            aya::programs::TestRunOptions {
                data_in: Some(&self.frame),
                ctx_in: Some(&self.ctx),
                repeat: self.repeat,
                ..Default::default()
            },
        )?;
        let ns = r.duration.as_nanos() as f64;
        self.bares.borrow_mut().push(ns);
        Ok(ns)
    }

    /// The bare program's median over every run so far (at least one).
    fn bare(&self) -> Result<f64> {
        if self.bares.borrow().is_empty() {
            self.bare_once()?;
        }
        Ok(median(self.bares.borrow().clone()))
    }

    /// `run` (ns per run of one TEST_RUN batch), bracketed by bare runs.
    fn time(&self, mut run: impl FnMut() -> Result<f64>) -> Result<Timed> {
        // A first run of each, not kept: the caches and branch predictors of the cell.
        run()?;
        self.bare_once()?;
        self.bares.borrow_mut().pop();
        let mut cells = Vec::with_capacity(ROUNDS);
        let mut bares = vec![self.bare_once()?];
        for _ in 0..ROUNDS {
            cells.push(run()?);
            bares.push(self.bare_once()?);
        }
        let ns = median(cells);
        Ok(Timed {
            ns,
            over: ns - median(bares),
        })
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() -> Result<()> {
    // The program as fwctl loads it: real conntrack lookups where the kernel has them.
    let mut h = Harness::load_with(fwctl::dataplane::install::CtLookup::Auto)?;
    // Frames arrive on an attached NIC, not on lo: the ruleset's first rule (`-i lo`)
    // must not be what the columns time.
    let nic = h.attach_dummy(NIC)?;
    let repeat = 1_000_000;
    let hit_first = Packet::tcp("10.0.0.1", "10.0.0.2", 40000, 22).bytes();
    let policy = Packet::tcp("10.0.0.1", "10.0.0.2", 40000, 8080).bytes();
    // Matches the last extra rule's port but not its source: every field lookup succeeds
    // and only the AND rules it out.
    let mut table = Table::new(&[
        "extra rules",
        "entries",
        "compile + install",
        "bitmap words",
        "map memory",
        "SSH (rule 2) ns/pkt",
        "policy (no match) ns/pkt",
        "last rule ns/pkt",
        "policy, classifier only ns/pkt",
    ]);
    // (entries, SSH, policy) for the chart.
    let mut points = Vec::new();
    // Floor: a program that only returns XDP_DROP, run the same way, around every cell.
    let clock = Clock::new(&policy, nic, repeat)?;
    // No rule at all: the policy ACCEPT leaves XDP idle (the packet passes unmarked and
    // netfilter counts the policy). Then the policy DROP alone: the fixed prologue (the
    // checks of what the kernel delivers, the fast table, a counter) every judged packet
    // pays.
    let mut baselines = Vec::new();
    for (label, rules) in [
        (
            "empty ruleset, policy ACCEPT (XDP idle: passed unmarked, netfilter counts)",
            &[][..],
        ),
        (
            "no rule, policy DROP (parse, delivery checks, fast table, policy counter)",
            &["-P INPUT DROP"][..],
        ),
    ] {
        h.apply(rules)?;
        let t = clock.time(|| h.time(&policy, nic, repeat))?;
        table.row(
            [label, "0", "-", "0"]
                .map(String::from)
                .into_iter()
                .chain([
                    mib(h.map_memory()?),
                    "-".to_string(),
                    t.to_string(),
                    "-".to_string(),
                    "-".to_string(),
                ])
                .collect(),
        );
        baselines.push(t);
    }
    let empty = baselines[0];
    // CLASSIFIER_QUICK=1: the baselines and two rule counts only, for trying a change.
    let quick = std::env::var_os("CLASSIFIER_QUICK").is_some();
    for n in [0usize, 10, 100, 1_000, 10_000, 100_000] {
        if quick && n != 0 && n != 10_000 {
            continue;
        }
        let t0 = Instant::now();
        let ruleset = with_extra(n)?;
        let built = t0.elapsed();
        let start = Instant::now();
        let image = fwctl::compile::compile(&ruleset, &h.interfaces)?;
        let words = image.pool.len();
        let compiled = start.elapsed();
        h.install(ruleset)?;
        let install = start.elapsed() - compiled;
        eprintln!(
            "n={n}: ruleset built in {built:?}, compiled in {compiled:?}, installed in {install:?}"
        );
        let hit = clock.time(|| h.time(&hit_first, nic, repeat))?;
        let miss = clock.time(|| h.time(&policy, nic, repeat))?;
        // The last rule: its source and its port (the classic ruleset's last when n = 0).
        let last = if n == 0 {
            Packet::tcp("10.0.0.1", "10.0.0.2", 40000, 995).bytes()
        } else {
            let src = std::net::Ipv4Addr::from(0x0b00_0000u32 + (n - 1) as u32).to_string();
            Packet::tcp(&src, "10.0.0.2", 40000, 10_000 + ((n - 1) % 50_000) as u16).bytes()
        };
        let last = clock.time(|| h.time(&last, nic, repeat))?;
        h.set_fast(false)?;
        let slow = clock.time(|| h.time(&policy, nic, repeat))?;
        h.set_fast(true)?;
        table.row(vec![
            n.to_string(),
            (n + 7).to_string(),
            format!("{:.1} ms", (compiled + install).as_secs_f64() * 1e3),
            words.to_string(),
            mib(h.map_memory()?),
            format!("{hit:.1}"),
            format!("{miss:.1}"),
            format!("{last:.1}"),
            format!("{slow:.1}"),
        ]);
        points.push(((n + 7) as f64, hit.ns, miss.ns));
    }
    if quick {
        return Ok(());
    }
    // A conntrack lookup (a miss: test runs cannot create entries, and the harness's
    // namespace has none), against the same ruleset without the state rule.
    let stateful = [
        "-P INPUT DROP",
        "-A INPUT -i lo -p udp -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
    ];
    h.apply(&stateful)?;
    let ct_miss = clock.time(|| h.time(&policy, nic, repeat))?;
    h.apply(&[stateful[0], stateful[1], stateful[3]])?;
    let no_ct = clock.time(|| h.time(&policy, nic, repeat))?;
    // An established connection, as the kernel's conntrack table knows it: a segment of it
    // is looked up for real and accepted by the ESTABLISHED,RELATED rule.
    let client = client_behind_nic(&h)?;
    let (established, established_slow) = established_flow(&mut h, &client, nic, &clock)?;
    // Then with the conntrack destination filter fwctl builds at every change: the SYN's
    // destination has no entry, so XDP skips the lookup; the established segment's has.
    h.apply(&stateful)?;
    h.ct_filter()?;
    let filtered = clock.time(|| h.time(&policy, nic, repeat))?;
    let (established_filtered, _) = established_flow(&mut h, &client, nic, &clock)?;
    let ct_rows = [
        (
            "classic stateful ruleset, SYN to a closed port: conntrack filter says no entry, NEW, policy at XDP",
            "4",
            None,
            Some(format!("{filtered:.1}")),
            None,
        ),
        (
            "classic stateful ruleset, SYN to a closed port, without the filter: conntrack miss, NEW, policy at XDP",
            "4",
            None,
            Some(format!("{ct_miss:.1} (without the state rule: {no_ct:.1})")),
            None,
        ),
        (
            "how-to ruleset + 1000 rules, a segment of an established TCP connection, with the filter: conntrack hit, ESTABLISHED, rule 2 at XDP",
            "-",
            Some(format!("{established_filtered:.1}")),
            None,
            None,
        ),
        (
            "how-to ruleset + 1000 rules, a segment of an established TCP connection, without the filter: conntrack hit, ESTABLISHED, rule 2 at XDP",
            "-",
            Some(format!("{established:.1}")),
            None,
            Some(format!("{established_slow:.1}")),
        ),
    ];
    for (label, entries, rule2, policy, classifier_only) in ct_rows {
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let mut row: Vec<String> = [label, entries, "-", "-", "-"].map(String::from).into();
        row.extend([
            cell(rule2),
            cell(policy),
            "-".to_string(),
            cell(classifier_only),
        ]);
        table.row(row);
    }
    let bare = clock.bare()?;
    table.row(
        [
            "bare XDP_DROP program (floor: median of every bare run; each cell's (+x) is against the bare runs around it)",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("{bare:.1}")])
        .collect(),
    );
    let verified = h.verified_instructions()?.unwrap_or(0);
    println!("verifier: {verified} instructions processed to load the program (limit 1,000,000)");
    report::write_markdown(
        "classifier",
        "XDP classifier cost vs rule count",
        &format!("BPF_PROG_TEST_RUN, 64-byte TCP SYN frames; each cell is the median of {ROUNDS} batches of {repeat} runs as the kernel timed them, alternating with batches of the bare XDP_DROP program, and (+x) its distance to the median of the bare batches around it. Map memory: the kernel's memlock figure of every map the program uses, on this machine's CPUs (the counters are per CPU), with the maps sized as fwctl sizes them for a ruleset installed from scratch. The verifier processed {verified} instructions to accept the program (limit 1,000,000)."),
        &[("", &table)],
    )?;
    let flat = |y: f64| points.iter().map(|p| (p.0, y)).collect::<Vec<_>>();
    let chart = Lines {
        title: "fwctl per-packet cost vs rule count (BPF_PROG_TEST_RUN)".into(),
        x_label: "classifier entries (log scale)".into(),
        y_label: "ns per packet".into(),
        log_x: true,
        series: vec![
            (
                "SSH (rule 2)".into(),
                points.iter().map(|p| (p.0, p.1)).collect(),
            ),
            (
                "policy (no match)".into(),
                points.iter().map(|p| (p.0, p.2)).collect(),
            ),
            ("empty ruleset".into(), flat(empty.ns)),
            ("bare XDP_DROP".into(), flat(bare)),
        ],
    };
    report::write_svg("classifier", &chart.svg())?;
    Ok(())
}
