//! `cargo xtask run`: the firewall on a lab of two network namespaces (a client and the
//! firewalled host), with the classic how-to's ruleset, real connections, the listing with
//! counters and the program's own log lines. With `--iface`, fwctl on a real interface of
//! this host instead, until Ctrl-C.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use netlab::{Link, Netns, Probe};

use crate::{build, setup};

const CLIENT: &str = "10.199.0.1";
const HOST: &str = "10.199.0.2";
const HOST_IF: &str = "fwlab-host0";
/// The how-to's open ports: SSH, then submission, POP3, IMAP, IMAPS, POP3S.
const OPEN_PORTS: [u16; 6] = [22, 587, 110, 143, 993, 995];
/// A port with a listener that the ruleset does not open.
const CLOSED_PORT: u16 = 8080;

pub struct Options {
    pub duration: Option<u64>,
    pub iface: Option<String>,
    pub mode: String,
}

pub fn run(opts: Options) -> Result<()> {
    setup::ensure()?;
    let fwctl = build::fwctl()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    match &opts.iface {
        Some(iface) => on_interface(&fwctl, iface, &opts, &stop),
        None => lab(&fwctl, &opts, &stop),
    }
}

fn fwctl_in(ns: Option<&Netns>, fwctl: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = match ns {
        Some(ns) => ns.command(fwctl.to_str().context("non-UTF-8 path")?),
        None => Command::new(fwctl),
    };
    let prompt = if ns.is_some() { "host#" } else { "#" };
    println!("{prompt} fwctl {}", args.join(" "));
    let out = netlab::output(cmd.args(args))?;
    print!("{out}");
    Ok(out)
}

/// `fwctl log --verdicts` in the background: its lines go to our stderr.
fn spawn_log(ns: Option<&Netns>, fwctl: &Path, duration: Option<u64>) -> Result<Child> {
    let mut cmd = match ns {
        Some(ns) => ns.command(fwctl.to_str().context("non-UTF-8 path")?),
        None => Command::new(fwctl),
    };
    cmd.args(["log", "--verdicts"]);
    if let Some(d) = duration {
        cmd.args(["--duration", &d.to_string()]);
    }
    cmd.stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting fwctl log")
}

fn wait(stop: &AtomicBool, until: Option<Instant>, mut every_second: impl FnMut()) {
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) && until.is_none_or(|u| Instant::now() < u) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(5) {
            every_second();
            last = Instant::now();
        }
    }
}

fn lab(fwctl: &Path, opts: &Options, stop: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    println!("== lab: a client and a firewalled host, joined by a veth pair");
    let client = Netns::new("fwlab-client")?;
    let host = Netns::new("fwlab-host")?;
    // Whatever happens next, the host's firewall goes down before its namespace does.
    let _down = Down { fwctl, ns: &host };
    netlab::veth(
        Link {
            ns: &client,
            ifname: "fwlab-client0",
            addrs: &[&format!("{CLIENT}/24")],
        },
        Link {
            ns: &host,
            ifname: HOST_IF,
            addrs: &[&format!("{HOST}/24")],
        },
    )?;
    println!(
        "   client {} ({CLIENT})  <->  host {} ({HOST}, {HOST_IF})",
        client.name(),
        host.name()
    );
    for port in OPEN_PORTS.iter().chain([&CLOSED_PORT]) {
        host.tcp_echo(SocketAddr::new(HOST.parse()?, *port))?;
    }
    println!("   the host listens on TCP {OPEN_PORTS:?} and {CLOSED_PORT}\n");

    println!("== the how-to's ruleset: policy DROP, SSH open, then the mail ports");
    fwctl_in(Some(&host), fwctl, &["-P", "INPUT", "DROP"])?;
    fwctl_in(
        Some(&host),
        fwctl,
        &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
    )?;
    fwctl_in(
        Some(&host),
        fwctl,
        &["-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    )?;
    for (i, port) in OPEN_PORTS[1..].iter().enumerate() {
        let pos = (i + 2).to_string();
        let port = port.to_string();
        fwctl_in(
            Some(&host),
            fwctl,
            &[
                "-I", "INPUT", &pos, "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
            ],
        )?;
    }
    fwctl_in(
        Some(&host),
        fwctl,
        &["attach", HOST_IF, "--mode", &opts.mode],
    )?;
    println!(
        "   (ip link shows: {})\n",
        host.ip(&["link", "show", HOST_IF])?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
    );

    println!("== the program's log (aya-log), one line per judged packet:");
    let remaining = opts
        .duration
        .map(|d| d.saturating_sub(started.elapsed().as_secs()).max(3));
    let mut log = spawn_log(Some(&host), fwctl, remaining)?;
    std::thread::sleep(Duration::from_millis(500));

    println!("\n== traffic from the client");
    let probe = |port: u16| -> Result<()> {
        let addr = SocketAddr::new(HOST.parse()?, port);
        let result = client.tcp_connect(addr, Duration::from_millis(800))?;
        let what = match result {
            Probe::Echoed => "connected, echo came back: ACCEPTED",
            Probe::Refused => "refused by the host's stack: passed the firewall",
            Probe::TimedOut => "no answer: DROPPED at XDP",
        };
        println!("   client -> {HOST}:{port:<5} {what}");
        Ok(())
    };
    probe(22)?;
    probe(993)?;
    probe(CLOSED_PORT)?;
    std::thread::sleep(Duration::from_millis(300));

    println!("\n== counters, read from the per-CPU maps");
    fwctl_in(Some(&host), fwctl, &["-L", "-n", "-v", "--line-numbers"])?;
    println!();
    fwctl_in(Some(&host), fwctl, &["status"])?;

    match opts.duration {
        Some(d) => {
            println!("\n== running for {d}s in all (Ctrl-C to stop sooner); a probe every 5s")
        }
        None => println!("\n== running until Ctrl-C; a probe to 22 and {CLOSED_PORT} every 5s"),
    }
    let until = opts.duration.map(|d| started + Duration::from_secs(d));
    wait(stop, until, || {
        let _ = probe(22);
        let _ = probe(CLOSED_PORT);
    });
    let _ = log.kill();
    let _ = log.wait();
    println!("\n== removing the lab");
    Ok(())
}

/// Takes the firewall down in a namespace when dropped.
struct Down<'a> {
    fwctl: &'a Path,
    ns: &'a Netns,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = fwctl_in(Some(self.ns), self.fwctl, &["down"]);
    }
}

fn on_interface(fwctl: &Path, iface: &str, opts: &Options, stop: &AtomicBool) -> Result<()> {
    println!("== fwctl on {iface} with this namespace's ruleset (Ctrl-C detaches)");
    fwctl_in(None, fwctl, &["-L", "-n", "-v", "--line-numbers"])?;
    fwctl_in(None, fwctl, &["attach", iface, "--mode", &opts.mode])?;
    let detach = Detach { fwctl, iface };
    let mut log = spawn_log(None, fwctl, opts.duration)?;
    let until = opts
        .duration
        .map(|d| Instant::now() + Duration::from_secs(d));
    wait(stop, until, || {});
    let _ = log.kill();
    let _ = log.wait();
    drop(detach);
    fwctl_in(None, fwctl, &["-L", "-n", "-v", "--line-numbers"])?;
    Ok(())
}

struct Detach<'a> {
    fwctl: &'a Path,
    iface: &'a str,
}

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        let _ = fwctl_in(None, self.fwctl, &["detach", self.iface]);
    }
}
