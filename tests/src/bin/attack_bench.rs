//! A service under attack: a TCP request/response service in a protected namespace, a
//! client in an outside namespace doing one-byte transactions on one connection (netperf
//! TCP_RR style), first alone, then while a spoofed SYN flood (a random source address in
//! every frame, BPF_PROG_TEST_RUN live frames) hits a closed port of the same address at
//! the generator's full rate. The protected namespace runs fwctl with the classic ruleset,
//! the same ruleset through iptables-restore, or no firewall; its receive work runs in
//! softirq (the kernel's choice) or in a NAPI thread on the service's CPU. Run by
//! `cargo xtask bench`.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use netlab::{Link, Netns};
use tests::{
    generator::{self, ifindex, Generator},
    packets::Packet,
    report::{
        self,
        svg::{BarSeries, Bars},
        Table,
    },
    FwNs, CLASSIC_RULESET,
};

/// The veths' names carry the pid: the receive thread of the protected one is found by
/// its name (`napi/<ifname>-<id>`) among the machine's threads.
fn out_if() -> String {
    format!("fbo{}", std::process::id())
}

fn svc_if() -> String {
    format!("fbs{}", std::process::id())
}

const OUT_V4: &str = "10.211.0.1";
const SVC_V4: &str = "10.211.0.2";
const SERVICE_PORT: u16 = 8000;
/// Nothing listens there; the classic ruleset does not open it.
const CLOSED_PORT: u16 = 8080;
const SERVICE_RULE: &str = "-A INPUT -p tcp --dport 8000 -j ACCEPT";
/// Length of each transaction-rate measurement.
const MEASURE: Duration = Duration::from_secs(5);
/// Measurements per row: single runs of a flood on this machine disagree widely.
const RUNS: usize = 3;
/// The flood runs this long before the measurement starts, so it sees the steady state.
const WARMUP: Duration = Duration::from_millis(500);
/// Two vCPUs: the generator on one, the service and the client on the other, so the
/// generator's own work never takes the service's CPU; where the receive work runs is
/// what `Receive` chooses.
const GEN_CPU: usize = 1;
const SERVICE_CPU: usize = 0;
/// Frames in the generator's first run; later runs are sized to last RUN_SECS.
const FIRST_RUN: u32 = 1 << 20;
const RUN_SECS: f64 = 1.0;

#[derive(Clone, Copy)]
enum Firewall {
    Fwctl,
    Iptables,
    Nothing,
}

impl Firewall {
    fn name(self) -> &'static str {
        match self {
            Firewall::Fwctl => "fwctl (XDP + nftables)",
            Firewall::Iptables => "iptables (iptables-restore, nf_tables)",
            Firewall::Nothing => "no firewall",
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Firewall::Fwctl => "fwctl",
            Firewall::Iptables => "iptables",
            Firewall::Nothing => "none",
        }
    }
}

/// An outside namespace (client and attacker) and the protected one, joined by a veth pair.
struct Lab {
    out: Netns,
    svc: FwNs,
}

impl Lab {
    fn new() -> Result<Lab> {
        let out = Netns::new("fwb-out")?;
        let svc = FwNs::new("fwb-svc")?;
        netlab::veth(
            Link {
                ns: &out,
                ifname: &out_if(),
                addrs: &[&format!("{OUT_V4}/24")],
            },
            Link {
                ns: &svc,
                ifname: &svc_if(),
                addrs: &[&format!("{SVC_V4}/24")],
            },
        )?;
        let out_mac = tests::mac(&out, &out_if())?;
        let svc_mac = tests::mac(&svc, &svc_if())?;
        // No neighbour resolution in flight while the flood fills the link.
        out.ip(&[
            "neigh",
            "replace",
            SVC_V4,
            "lladdr",
            &svc_mac,
            "dev",
            &out_if(),
            "nud",
            "permanent",
        ])?;
        svc.ip(&[
            "neigh",
            "replace",
            OUT_V4,
            "lladdr",
            &out_mac,
            "dev",
            &svc_if(),
            "nud",
            "permanent",
        ])?;
        // A server has a default route: what it answers to spoofed sources (RSTs when no
        // firewall drops the SYNs) leaves as it would on a real link.
        svc.ip(&["route", "add", "default", "via", OUT_V4])?;
        // Without an XDP program of its own, a veth takes the peer's XDP_TX frames only in
        // NAPI mode, which GRO turns on; the same for every firewall, fwctl's included.
        netlab::run(svc.command("ethtool").args(["-K", &svc_if(), "gro", "on"]))?;
        // A veth hands TSO-capable skbs to the peer's backlog, past the receive ring the
        // flood fills, unless XDP runs there: without TSO the client's segments queue in
        // the same ring as the flood whatever the firewall, as on a NIC.
        netlab::run(out.command("ethtool").args(["-K", &out_if(), "tso", "off"]))?;
        Ok(Lab { out, svc })
    }

    fn install(&self, firewall: Firewall) -> Result<()> {
        match firewall {
            Firewall::Fwctl => {
                self.svc.apply(CLASSIC_RULESET);
                self.svc.apply(&[SERVICE_RULE]);
                self.svc.fwctl_ok(&["attach", &svc_if()]);
            }
            Firewall::Iptables => {
                let mut file = String::from("*filter\n");
                for line in CLASSIC_RULESET.iter().chain([&SERVICE_RULE]) {
                    if let Some(policy) = line.strip_prefix("-P ") {
                        file.push_str(&format!(":{policy} [0:0]\n"));
                    } else {
                        file.push_str(&format!("{line}\n"));
                    }
                }
                file.push_str("COMMIT\n");
                report::run_with_input(&mut self.svc.command("iptables-restore"), Some(&file))?;
            }
            Firewall::Nothing => {}
        }
        Ok(())
    }

    /// Moves the protected veth's receive processing (NAPI) into a kernel thread of its own
    /// and pins that to `cpu`.
    fn receive_on(&self, cpu: usize) -> Result<()> {
        let ifname = svc_if();
        netlab::run(
            self.svc
                .command("sh")
                .args(["-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")]),
        )?;
        let prefix = format!("napi/{ifname}-");
        let mut pinned = 0;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.starts_with(&prefix) {
                pin_task(pid, cpu)?;
                pinned += 1;
            }
        }
        anyhow::ensure!(
            pinned > 0,
            "no {prefix}* kernel thread after turning on threaded NAPI"
        );
        Ok(())
    }

    /// The protected namespace's count of what it did with the flood: packets the policy
    /// dropped (fwctl, iptables) or RSTs sent (no firewall).
    fn flood_handled(&self, firewall: Firewall) -> Result<u64> {
        match firewall {
            Firewall::Fwctl => {
                let list = self.svc.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x"]);
                Ok(tests::listed_counters(&list, "INPUT", 0)?.0)
            }
            Firewall::Iptables => {
                let list = netlab::output(
                    self.svc
                        .command("iptables")
                        .args(["-L", "INPUT", "-n", "-v", "-x"]),
                )?;
                Ok(tests::listed_counters(&list, "INPUT", 0)?.0)
            }
            Firewall::Nothing => self.svc.snmp("Tcp", "OutRsts"),
        }
    }
}

/// Prints on stderr what changed in the veths' counters between two reads: where the
/// flood's frames went (received, dropped at XDP, lost on a full ring).
fn print_nic_changes(label: &str, before: &[(String, u64)], after: &[(String, u64)]) {
    let changed: Vec<String> = after
        .iter()
        .filter_map(|(name, v)| {
            let old = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, o)| *o);
            (*v != old).then(|| format!("{name} +{}", v.saturating_sub(old)))
        })
        .collect();
    eprintln!("{label}: {}", changed.join(", "));
}

/// Softirq time of each CPU so far, in clock ticks (/proc/stat): which CPU did the receive
/// work, the generator's or the service's.
fn softirq_ticks() -> Vec<u64> {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        // cpuN user nice system idle iowait irq softirq ...
        .map(|l| {
            l.split_whitespace()
                .nth(7)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Pins the calling thread to one CPU.
fn pin(cpu: usize) -> Result<()> {
    pin_task(0, cpu)
}

/// Pins thread `tid` (0: the calling thread) to one CPU.
fn pin_task(tid: i32, cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for
    // cpu < CPU_SETSIZE, and sched_setaffinity only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sched_setaffinity({tid}, CPU {cpu})"));
        }
    }
    Ok(())
}

/// A thread that enters `ns`, pins itself to `cpu` and runs `f`.
fn spawn_in<T: Send + 'static>(
    ns: &Netns,
    cpu: usize,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> JoinHandle<Result<T>> {
    let path = format!("/run/netns/{}", ns.name());
    thread::spawn(move || {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        // SAFETY: setns on a file we hold open; it moves only this thread.
        if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setns");
        }
        pin(cpu)?;
        f()
    })
}

fn join<T>(handle: JoinHandle<Result<T>>, what: &str) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow!("{what} thread panicked"))?
}

/// The service: answers every byte with a byte, on every connection, until `stop`.
fn serve(lab: &Lab, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<()>>> {
    let addr: SocketAddr = format!("{SVC_V4}:{SERVICE_PORT}").parse()?;
    let listener = lab.svc.run(move || TcpListener::bind(addr))??;
    listener.set_nonblocking(true)?;
    Ok(spawn_in(&lab.svc, SERVICE_CPU, move || {
        let mut conns = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let stop = stop.clone();
                    conns.push(thread::spawn(move || answer(stream, &stop)));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(e).context("accept"),
            }
        }
        for c in conns {
            let _ = c.join();
        }
        Ok(())
    }))
}

/// One connection of the service; threads inherit the accepting thread's CPU pin.
fn answer(mut stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    // Wakes up now and then to see `stop`.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut byte = [0u8; 1];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut byte) {
            Ok(0) => return,
            Ok(_) => {
                if stream.write_all(&byte).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// A client connection to the service, made from the outside namespace. Made before a
/// flood starts: a connect under a flood can time out, which is not what is measured.
fn connect(lab: &Lab) -> Result<TcpStream> {
    let addr: SocketAddr = format!("{SVC_V4}:{SERVICE_PORT}").parse()?;
    let s = lab
        .out
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?
        .context("connecting to the service")?;
    s.set_nodelay(true)?;
    // A late response is waited for; the deadline is checked meanwhile.
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

/// One-byte requests and responses on `s` for MEASURE: transactions per second.
fn transactions(lab: &Lab, mut s: TcpStream) -> Result<f64> {
    let client = spawn_in(&lab.out, SERVICE_CPU, move || -> Result<f64> {
        let start = Instant::now();
        let deadline = start + MEASURE;
        let mut done = 0u64;
        let mut byte = [0u8; 1];
        'run: while Instant::now() < deadline {
            s.write_all(b"r")?;
            loop {
                match s.read(&mut byte) {
                    Ok(1) => break,
                    Ok(_) => bail!("the service closed the connection"),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if Instant::now() >= deadline {
                            break 'run;
                        }
                    }
                    Err(e) => return Err(e).context("reading the response"),
                }
            }
            done += 1;
        }
        Ok(done as f64 / start.elapsed().as_secs_f64())
    });
    join(client, "client")
}

/// The flood's frame: a 54-byte SYN (no options, no payload) to the closed port, addressed
/// to the service's MAC, with correct IPv4 and TCP checksums (the generator keeps them
/// right as it changes the source): a receiver's stack must not discard it for its
/// checksum before the firewall or conntrack sees it.
fn syn_frame(lab: &Lab) -> Result<Vec<u8>> {
    let mut frame = Packet {
        payload: 0,
        ..Packet::tcp(OUT_V4, SVC_V4, 40000, CLOSED_PORT)
    }
    .bytes();
    frame[..6].copy_from_slice(&generator::mac_bytes(&lab.svc, &svc_if())?);
    frame[6..12].copy_from_slice(&generator::mac_bytes(&lab.out, &out_if())?);
    let tcp = 14 + 20;
    anyhow::ensure!(frame.len() == tcp + 20, "unexpected SYN frame layout");
    // Pseudo-header (source, destination, protocol, TCP length), then the segment.
    let mut sum: u32 = 6 + 20;
    for chunk in frame[26..34].chunks(2).chain(frame[tcp..].chunks(2)) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[tcp + 16..tcp + 18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    Ok(frame)
}

/// Where the protected veth's receive processing (NAPI: XDP, the stack, netfilter) runs.
#[derive(Clone, Copy)]
enum Receive {
    /// The kernel's default: in softirq on the CPU whose transmit scheduled it, mostly the
    /// generator's (/proc/stat shows the service's CPU in some runs); a slow receiver then
    /// slows the generator, as in the flood benchmark.
    GeneratorCpu,
    /// Threaded NAPI pinned to the service's CPU: the generator stands for the outside
    /// world with a CPU of its own, the protected host has one CPU for everything.
    ServiceCpu,
}

impl Receive {
    fn name(self) -> &'static str {
        match self {
            Receive::GeneratorCpu => "receive in softirq on the generator's CPU",
            Receive::ServiceCpu => "receive in a NAPI thread on the service's CPU",
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Receive::GeneratorCpu => "rx on generator CPU",
            Receive::ServiceCpu => "rx on service CPU",
        }
    }
}

/// Floods from the outside namespace until `stop`, as fast as the generator goes.
fn start_flood(lab: &Lab, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<()>>> {
    let ifindex = ifindex(&lab.out, &out_if())?;
    let frame = syn_frame(lab)?;
    Ok(spawn_in(&lab.out, GEN_CPU, move || {
        let mut gen = Generator::new("bench_tx_spoof", ifindex, frame)?;
        let mut frames = FIRST_RUN;
        while !stop.load(Ordering::Relaxed) {
            let secs = gen.send(frames)?;
            // Runs of about RUN_SECS: each run starts after a pause of tens of
            // milliseconds (setting up and tearing down the live frames) in which nothing
            // is sent, so short runs would leave the service gaps to recover in; long ones
            // would outlast the measurement.
            frames = (f64::from(frames) * RUN_SECS / secs.max(1e-3)).clamp(1e5, 1e8) as u32;
        }
        Ok(())
    }))
}

/// The change of one counter between two reads of `nic_stats`.
fn delta(before: &[(String, u64)], after: &[(String, u64)], name: &str) -> u64 {
    let get = |stats: &[(String, u64)]| stats.iter().find(|(n, _)| n == name).map_or(0, |s| s.1);
    get(after).saturating_sub(get(before))
}

struct Measured {
    quiet: f64,
    attacked: f64,
    offered_mpps: f64,
    handled: u64,
    frames: u64,
    /// Segments the client sent again while under attack: lost requests, not late ones.
    retransmitted: u64,
}

fn measure(receive: Receive, firewall: Firewall) -> Result<Measured> {
    let lab = Lab::new()?;
    lab.install(firewall)?;
    if let Receive::ServiceCpu = receive {
        lab.receive_on(SERVICE_CPU)?;
    }
    let stop_service = Arc::new(AtomicBool::new(false));
    let service = serve(&lab, stop_service.clone())?;
    let result = (|| -> Result<Measured> {
        let quiet = transactions(&lab, connect(&lab)?)?;
        let under_attack = connect(&lab)?;
        let before = lab.flood_handled(firewall)?;
        let nics_before = [
            generator::nic_stats(&lab.out, &out_if())?,
            generator::nic_stats(&lab.svc, &svc_if())?,
        ];
        let stop_flood = Arc::new(AtomicBool::new(false));
        let flood = start_flood(&lab, stop_flood.clone())?;
        thread::sleep(WARMUP);
        let out_before = generator::nic_stats(&lab.out, &out_if())?;
        let retrans_before = lab.out.snmp("Tcp", "RetransSegs")?;
        let softirq_before = softirq_ticks();
        let start = Instant::now();
        let attacked = transactions(&lab, under_attack);
        let out_after = generator::nic_stats(&lab.out, &out_if())?;
        let retransmitted = lab.out.snmp("Tcp", "RetransSegs")? - retrans_before;
        let softirq: Vec<u64> = softirq_ticks()
            .iter()
            .zip(&softirq_before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let secs = start.elapsed().as_secs_f64();
        stop_flood.store(true, Ordering::Relaxed);
        join(flood, "generator")?;
        let attacked = attacked?;
        // Let the backlog drain into the counters.
        thread::sleep(Duration::from_millis(300));
        let handled = lab.flood_handled(firewall)? - before;
        let label = format!("{}, {}", receive.name(), firewall.name());
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let busy: Vec<String> = softirq
            .iter()
            .enumerate()
            .map(|(cpu, t)| format!("CPU {cpu} {:.0} %", 100.0 * *t as f64 / hz / secs))
            .collect();
        eprintln!(
            "{label}: {:.0} % of no attack; softirq time {}",
            100.0 * attacked / quiet,
            busy.join(", ")
        );
        print_nic_changes(
            &format!("{label}: outside veth"),
            &nics_before[0],
            &generator::nic_stats(&lab.out, &out_if())?,
        );
        print_nic_changes(
            &format!("{label}: protected veth"),
            &nics_before[1],
            &generator::nic_stats(&lab.svc, &svc_if())?,
        );
        // What the generator's veth sent or failed to hand over because the receiving
        // ring was full: the offered load while the client measured.
        let offered = delta(&out_before, &out_after, "tx_queue_0_xdp_xmit")
            + delta(&out_before, &out_after, "tx_queue_0_xdp_xmit_errors");
        let frames = delta(
            &nics_before[0],
            &generator::nic_stats(&lab.out, &out_if())?,
            "tx_queue_0_xdp_xmit",
        ) + delta(
            &nics_before[0],
            &generator::nic_stats(&lab.out, &out_if())?,
            "tx_queue_0_xdp_xmit_errors",
        );
        Ok(Measured {
            quiet,
            attacked,
            offered_mpps: offered as f64 / secs / 1e6,
            handled,
            frames,
            retransmitted,
        })
    })();
    stop_service.store(true, Ordering::Relaxed);
    join(service, "service")?;
    result
}

/// The middle value (the upper one of two middles); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<()> {
    let mut table = Table::new(&[
        "receive path",
        "firewall",
        "no attack (transactions/s)",
        "under attack (transactions/s)",
        "% of no attack (each run)",
        "flood offered (Mpps)",
        "flood frames the protected side handled",
        "client retransmissions",
    ]);
    let mut chart = Bars {
        title: format!(
            "TCP request/response rate without and under a spoofed SYN flood (median of {RUNS})"
        ),
        unit: "transactions/s (one connection, 1-byte request and response)".into(),
        categories: Vec::new(),
        series: vec![
            BarSeries {
                name: "no attack".into(),
                values: Vec::new(),
            },
            BarSeries {
                name: "under SYN flood".into(),
                values: Vec::new(),
            },
        ],
    };
    for receive in [Receive::GeneratorCpu, Receive::ServiceCpu] {
        for firewall in [Firewall::Fwctl, Firewall::Iptables, Firewall::Nothing] {
            let runs = (0..RUNS)
                .map(|_| measure(receive, firewall))
                .collect::<Result<Vec<_>>>()?;
            let med = |f: &dyn Fn(&Measured) -> f64| median(runs.iter().map(f).collect());
            let pct = |m: &Measured| 100.0 * m.attacked / m.quiet;
            let each: Vec<String> = runs.iter().map(|m| format!("{:.1}", pct(m))).collect();
            let handled = match firewall {
                Firewall::Nothing => "RSTs sent",
                _ => "policy drops",
            };
            table.row(vec![
                receive.name().into(),
                firewall.name().into(),
                format!("{:.0}", med(&|m| m.quiet)),
                format!("{:.0}", med(&|m| m.attacked)),
                format!("{:.1} ({})", med(&pct), each.join(", ")),
                format!("{:.2}", med(&|m| m.offered_mpps)),
                format!(
                    "{:.0} % ({handled})",
                    med(&|m| 100.0 * m.handled as f64 / m.frames.max(1) as f64)
                ),
                runs.iter()
                    .map(|m| m.retransmitted)
                    .sum::<u64>()
                    .to_string(),
            ]);
            chart.categories.push(format!(
                "{}: {}",
                receive.short_name(),
                firewall.short_name()
            ));
            chart.series[0].values.push(Some(med(&|m| m.quiet)));
            chart.series[1].values.push(Some(med(&|m| m.attacked)));
        }
    }
    report::write_markdown(
        "attack",
        "A service under attack",
        &format!(
            "A TCP service in a protected namespace answers one-byte requests with one byte; a client in the outside namespace sends them one at a time on one connection (netperf TCP_RR style) for {} s without attack, then for {} s while BPF_PROG_TEST_RUN live frames (bench_tx_spoof, XDP_TX on the outside veth) flood a closed port of the same address with 54-byte SYNs from random sources in 32.0.0.0/3 (measured after {} ms of flood). The protected namespace runs the classic stateful ruleset plus `{SERVICE_RULE}` in fwctl (XDP attached natively) or through iptables-restore, or no firewall; a fresh pair of namespaces for each of {RUNS} runs per row; the row gives medians and the share kept in each run (the runs disagree: see BENCHMARKS.md). The generator is pinned to CPU {GEN_CPU}, the service and the client to CPU {SERVICE_CPU}; the protected veth's receive processing runs in softirq on the generator's CPU (the kernel's default here) or in a NAPI thread pinned to the service's CPU (sharing it with the service and the client as an ordinary thread). TSO is off on the outside veth, so the client's segments share the protected veth's 256-frame receive ring with the flood whatever the firewall (with TSO, a veth without XDP hands them to the backlog, past the ring). The flood offered is what the generator's veth handed over or found the ring full for (xdp_xmit + xdp_xmit_errors) per second while the client measured.",
            MEASURE.as_secs(),
            MEASURE.as_secs(),
            WARMUP.as_millis()
        ),
        &[("", &table)],
    )?;
    report::write_svg("attack", &chart.svg())?;
    Ok(())
}
