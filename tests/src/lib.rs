//! Shared pieces of fwctl's kernel tests: the fwctl binary under `ip netns exec`, a
//! namespace guard that takes fwctl down before the namespace goes, a two-namespace lab,
//! packet builders, a harness that runs the XDP program on crafted packets, and what the
//! benchmark binaries share (the generator, reports and charts).

pub mod generator;
pub mod packets;
pub mod program;
pub mod report;
pub mod twins;

use std::{
    ops::Deref,
    path::PathBuf,
    process::{Command, Output},
};

use anyhow::{bail, Result};
use netlab::{Link, Netns};

/// Polls `done` every 20 ms until it holds; panics with `why()` if it still does not after
/// `timeout`. For results that take a moment to appear: waiting for them, not for a fixed
/// time, is as fast as the machine and as patient as the deadline.
pub fn wait_for(
    timeout: std::time::Duration,
    mut done: impl FnMut() -> bool,
    why: impl FnOnce() -> String,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The fwctl binary: `FWCTL` if set (xtask sets it), else the one beside the test binary.
pub fn fwctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FWCTL") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> or target/<profile>/<bin> -> target/<profile>/fwctl
    let mut dir = exe.parent().expect("target directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    dir.join("fwctl")
}

/// A namespace with fwctl in it; dropping it runs `fwctl down` before the namespace is
/// deleted, so no pin, state file or attachment outlives a test, also a failing one.
pub struct FwNs {
    ns: Netns,
}

impl FwNs {
    pub fn new(prefix: &str) -> Result<FwNs> {
        Ok(FwNs {
            ns: Netns::new(prefix)?,
        })
    }

    /// A command that runs fwctl in the namespace, for a test that spawns it, gives it
    /// input or sets its environment.
    pub fn fwctl_command(&self) -> Command {
        self.ns.command(fwctl_bin().to_str().expect("utf-8 path"))
    }

    /// Runs fwctl in the namespace, returning its output whatever the exit status.
    pub fn fwctl(&self, args: &[&str]) -> Output {
        self.fwctl_command()
            .args(args)
            .output()
            .expect("running fwctl")
    }

    /// Runs fwctl killed at fault point `fault` (`FWCTL_FAULT`, as a crash or `kill -9`
    /// there would), and fails the test unless it was; returns its output.
    pub fn fwctl_killed_at(&self, fault: &str, args: &[&str]) -> Output {
        let out = self
            .fwctl_command()
            .env("FWCTL_FAULT", fault)
            .args(args)
            .output()
            .expect("running fwctl");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains(&format!("FWCTL_FAULT={fault}")),
            "fwctl {args:?}: the fault {fault} did not fire: {said}"
        );
        out
    }

    /// Runs fwctl and fails the test unless it succeeds; returns stdout.
    pub fn fwctl_ok(&self, args: &[&str]) -> String {
        let out = self.fwctl(args);
        assert!(
            out.status.success(),
            "fwctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets of rule `n` of IPv4 `chain` (0: its policy) as `fwctl -L -v -x` lists them;
    /// panics with the listing if it has no such line.
    pub fn packets(&self, chain: &str, n: usize) -> u64 {
        let list = self.fwctl_ok(&["-L", chain, "-n", "-v", "-x", "--line-numbers"]);
        listed_counters(&list, chain, n)
            .unwrap_or_else(|e| panic!("{e}: {list}"))
            .0
    }

    /// What netfilter counted in fwctl's nftables table, in the IPv4 chains of `chain`
    /// (both generations, `0v4-INPUT` and `1v4-INPUT`, whose rules count in one named
    /// counter each, listed once): (rule line, packets) of each counting rule. What XDP
    /// judged, netfilter never counts.
    pub fn nft_counters(&self, chain: &str) -> Vec<(String, u64)> {
        // `nft list chain` cannot name a chain that starts with a digit; the table can.
        let table = netlab::output(self.command("nft").args(["list", "table", "ip", "fwctl"]))
            .expect("nft list table ip fwctl");
        let objects = named_counters(&table);
        let heads = [
            format!("chain 0v4-{chain} {{"),
            format!("chain 1v4-{chain} {{"),
        ];
        let mut counters = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut inside = false;
        for line in table.lines().map(str::trim) {
            if heads.iter().any(|h| h == line) {
                inside = true;
            } else if line == "}" {
                inside = false;
            } else if let (true, Some(name)) = (inside, counter_name(line)) {
                if seen.insert(name.to_string()) {
                    let packets = objects.get(name).map(|c| c.0);
                    counters.push((line.to_string(), packets.expect("a named counter")));
                }
            }
        }
        counters
    }

    /// All packets netfilter counted in the IPv4 chains of `chain` (see `nft_counters`).
    pub fn nft_packets(&self, chain: &str) -> u64 {
        self.nft_counters(chain).iter().map(|(_, n)| n).sum()
    }

    /// Applies a ruleset given as fwctl command lines.
    pub fn apply(&self, lines: &[&str]) {
        for line in lines {
            let args: Vec<&str> = line.split_whitespace().collect();
            self.fwctl_ok(&args);
        }
    }
}

impl Deref for FwNs {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl Drop for FwNs {
    fn drop(&mut self) {
        let _ = self.fwctl(&["down"]);
    }
}

/// Two namespaces joined by a veth pair: a client, and a host that runs fwctl.
pub struct Lab {
    pub client: Netns,
    pub host: FwNs,
}

/// The classic how-to's stateful ruleset: policy DROP, loopback, established sessions, SSH
/// and the mail ports.
pub const CLASSIC_RULESET: &[&str] = &[
    "-P INPUT DROP",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p tcp --dport 22 -j ACCEPT",
    "-A INPUT -p tcp --dport 587 -j ACCEPT",
    "-A INPUT -p tcp --dport 110 -j ACCEPT",
    "-A INPUT -p tcp --dport 143 -j ACCEPT",
    "-A INPUT -p tcp --dport 993 -j ACCEPT",
    "-A INPUT -p tcp --dport 995 -j ACCEPT",
];

pub const CLIENT_V4: &str = "10.201.0.1";
pub const HOST_V4: &str = "10.201.0.2";
pub const CLIENT_V6: &str = "fd00:201::1";
pub const HOST_V6: &str = "fd00:201::2";
/// The host's end of the veth pair (the one fwctl attaches to).
pub const HOST_IF: &str = "fwhost0";

impl Lab {
    pub fn new() -> Result<Lab> {
        Lab::named("fwt")
    }

    /// A lab whose namespaces are named `{prefix}-client-…` and `{prefix}-host-…`.
    pub fn named(prefix: &str) -> Result<Lab> {
        let client = Netns::new(&format!("{prefix}-client"))?;
        let host = FwNs::new(&format!("{prefix}-host"))?;
        netlab::veth(
            Link {
                ns: &client,
                ifname: "fwclient0",
                addrs: &[&format!("{CLIENT_V4}/24"), &format!("{CLIENT_V6}/64")],
            },
            Link {
                ns: &host,
                ifname: HOST_IF,
                addrs: &[&format!("{HOST_V4}/24"), &format!("{HOST_V6}/64")],
            },
        )?;
        // Static neighbours: no ARP or neighbour discovery in flight when a test starts
        // counting, so the first datagram is never queued behind a resolution.
        let client_mac = mac(&client, "fwclient0")?;
        let host_mac = mac(&host, HOST_IF)?;
        for (ns, ifname, peer_mac, peers) in [
            (&client, "fwclient0", &host_mac, [HOST_V4, HOST_V6]),
            (&host.ns, HOST_IF, &client_mac, [CLIENT_V4, CLIENT_V6]),
        ] {
            for peer in peers {
                ns.ip(&[
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    peer_mac,
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        Ok(Lab { client, host })
    }

    /// A lab whose host has `rules` applied and XDP attached to its veth (native).
    pub fn attached(rules: &[&str]) -> Result<Lab> {
        let lab = Lab::new()?;
        lab.host.apply(rules);
        lab.host.fwctl_ok(&["attach", HOST_IF]);
        Ok(lab)
    }

    /// The XDP attachment on the host's interface as `ip link` reports it: "xdp" (native),
    /// "xdpgeneric", or None.
    pub fn xdp_mode(&self) -> Result<Option<String>> {
        xdp_mode(&self.host, HOST_IF)
    }
}

/// The XDP attachment on `ifname` in `ns` as `ip link` reports it: "xdp" (native),
/// "xdpgeneric", or None.
pub fn xdp_mode(ns: &Netns, ifname: &str) -> Result<Option<String>> {
    let out = ns.ip(&["-d", "link", "show", ifname])?;
    let first = out.lines().next().unwrap_or_default();
    for mode in ["xdpgeneric", "xdpdrv", "xdpoffload", "xdp"] {
        if first.split_whitespace().any(|w| w == mode) {
            return Ok(Some(mode.to_string()));
        }
    }
    Ok(None)
}

/// Three namespaces, client - router - server, with forwarding on in the router; fwctl
/// runs in the router. Subnets 10.20N.1.0/24 (client side) and 10.20N.2.0/24 (server side).
pub struct RouterLab {
    pub client: Netns,
    pub router: FwNs,
    pub server: Netns,
    net: u8,
}

impl RouterLab {
    /// `net` picks the subnets (and keeps two router labs apart); interfaces are named
    /// `{tag}c0` (client), `{tag}r0`/`{tag}r1` (router), `{tag}s0` (server).
    pub fn new(tag: &str, net: u8) -> Result<RouterLab> {
        Self::build(tag, net, true)
    }

    /// A lab whose server has no route back to the client's subnet: only what the router
    /// source-NATs can get an answer. IPv6 too (`fd00:{net}:1::/64`, `fd00:{net}:2::/64`).
    pub fn isolated(tag: &str, net: u8) -> Result<RouterLab> {
        Self::build(tag, net, false)
    }

    fn build(tag: &str, net: u8, server_routes_back: bool) -> Result<RouterLab> {
        let client = Netns::new(&format!("fwt-{tag}c"))?;
        let router = FwNs::new(&format!("fwt-{tag}r"))?;
        let server = Netns::new(&format!("fwt-{tag}s"))?;
        let a = |side: u8, host: u8| format!("10.{net}.{side}.{host}/24");
        let a6 = |side: u8, host: u8| format!("fd00:{net}:{side}::{host}/64");
        netlab::veth(
            Link {
                ns: &client,
                ifname: &format!("{tag}c0"),
                addrs: &[&a(1, 2), &a6(1, 2)],
            },
            Link {
                ns: &router,
                ifname: &format!("{tag}r0"),
                addrs: &[&a(1, 1), &a6(1, 1)],
            },
        )?;
        netlab::veth(
            Link {
                ns: &router,
                ifname: &format!("{tag}r1"),
                addrs: &[&a(2, 1), &a6(2, 1)],
            },
            Link {
                ns: &server,
                ifname: &format!("{tag}s0"),
                addrs: &[&a(2, 2), &a6(2, 2)],
            },
        )?;
        client.ip(&["route", "add", "default", "via", &format!("10.{net}.1.1")])?;
        client.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd00:{net}:1::1"),
        ])?;
        if server_routes_back {
            server.ip(&["route", "add", "default", "via", &format!("10.{net}.2.1")])?;
            server.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd00:{net}:2::1"),
            ])?;
        }
        netlab::run(router.command("sysctl").args([
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]))?;
        Ok(RouterLab {
            client,
            router,
            server,
            net,
        })
    }

    pub fn server_addr(&self) -> String {
        format!("10.{}.2.2", self.net)
    }

    /// Sends `n` datagrams from the client to the server's `port` through the router;
    /// returns how many arrived.
    pub fn send(&self, port: u16, n: usize) -> Result<usize> {
        use std::net::SocketAddr;
        let server: SocketAddr = format!("{}:{port}", self.server_addr()).parse()?;
        let rx = self.server.udp_socket(server)?;
        rx.set_read_timeout(Some(std::time::Duration::from_millis(300)))?;
        let from: SocketAddr = format!("10.{}.1.2:0", self.net).parse()?;
        let tx = self.client.udp_socket(from)?;
        for _ in 0..n {
            tx.send_to(&[0u8; 10], server)?;
        }
        let mut got = 0;
        while rx.recv_from(&mut [0u8; 64]).is_ok() {
            got += 1;
        }
        Ok(got)
    }
}

impl RouterLab {
    /// A TCP connection from the client to `connect_to`, served in the server's namespace
    /// at `listen`: whether the client got its echo, and the peer the server saw.
    pub fn tcp_through(
        &self,
        listen: &str,
        connect_to: &str,
    ) -> Result<(netlab::Probe, Option<std::net::SocketAddr>)> {
        let timeout = std::time::Duration::from_millis(1500);
        let server = self.server.tcp_accept_peer(listen.parse()?, timeout * 2)?;
        let probe = self.client.tcp_connect(connect_to.parse()?, timeout)?;
        let peer = server
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
        Ok((probe, peer))
    }
}

fn addr(ip: &str, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ip.parse().expect("IP address"), port)
}

/// Sends `n` datagrams of `len` bytes from the client and returns how many the host's
/// socket received.
pub fn udp_exchange(
    lab: &Lab,
    client_ip: &str,
    host_ip: &str,
    port: u16,
    n: usize,
    len: usize,
) -> usize {
    udp_between(&lab.client, &lab.host, client_ip, host_ip, port, n, len)
}

/// Sends `n` datagrams of `len` bytes from `from` (bound to `src`) to `dst`:`port` in `to`
/// and returns how many arrived.
pub fn udp_between(
    from: &Netns,
    to: &Netns,
    src: &str,
    dst: &str,
    port: u16,
    n: usize,
    len: usize,
) -> usize {
    // A port seen in use once in CI (an mDNS port, 5353, in a fresh namespace): bound
    // again a few times before it counts as a failure.
    let mut tries = 0;
    let receiver = loop {
        match to.udp_socket(addr(dst, port)) {
            Ok(sock) => break sock,
            Err(e) if tries < 20 => {
                tries += 1;
                eprintln!("bind receiver {dst}:{port}: {e}; again");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("bind receiver: {e:?}"),
        }
    };
    receiver
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .expect("read timeout");
    let sender = from.udp_socket(addr(src, 0)).expect("bind sender");
    let payload = vec![0x5a; len];
    for _ in 0..n {
        sender.send_to(&payload, addr(dst, port)).expect("send");
    }
    let mut got = 0;
    let mut buf = [0u8; 2048];
    while receiver.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}

/// A tun device in a namespace, up and addressed, with its file open: what is written to
/// it arrives in the namespace as if received on the device.
pub struct Tun {
    file: std::fs::File,
}

impl Tun {
    pub fn create(ns: &Netns, name: &str, addr: &str) -> Result<Tun> {
        ns.ip(&["tuntap", "add", "dev", name, "mode", "tun"])?;
        ns.ip(&["addr", "add", addr, "dev", name])?;
        ns.ip(&["link", "set", name, "up"])?;
        let name = name.to_string();
        let file = ns.run(move || open_tun(&name))??;
        Ok(Tun { file })
    }

    /// Injects an IP packet (the frame's Ethernet header is dropped: a tun carries IP).
    pub fn inject(&mut self, packet: &packets::Packet) -> Result<()> {
        use std::io::Write;
        let frame = packet.bytes();
        self.file.write_all(&frame[14..])?;
        Ok(())
    }
}

fn open_tun(name: &str) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // struct ifreq: the name, then the flags in the union.
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `req` is large enough for.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, req.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(file)
}

pub fn mac(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ns.ip(&["link", "show", ifname])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no MAC address for {ifname} in {out}"))
}

/// A counter line of `fwctl -L -v -x -n --line-numbers`: (packets, bytes) of rule `n`, or
/// of the policy for n = 0.
pub fn listed_counters(listing: &str, chain: &str, n: usize) -> Result<(u64, u64)> {
    let mut lines = listing
        .lines()
        .skip_while(|l| !l.starts_with(&format!("Chain {chain} ")));
    let Some(head) = lines.next() else {
        bail!("no chain {chain} in:\n{listing}");
    };
    if n == 0 {
        // Chain INPUT (policy DROP 3 packets, 180 bytes); user chains have no policy.
        let words: Vec<&str> = head.split_whitespace().collect();
        let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        return match (num(4), num(6)) {
            (Some(p), Some(b)) => Ok((p, b)),
            _ => bail!("no policy counters in {head:?}"),
        };
    }
    for line in lines.skip(1).take_while(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&n.to_string().as_str()) {
            return Ok((words[1].parse()?, words[2].parse()?));
        }
    }
    bail!("no rule {n} in chain {chain}:\n{listing}")
}

/// The counter a rule of `nft list` output counts in (`counter name "c17"`), if any.
pub fn counter_name(line: &str) -> Option<&str> {
    line.split("counter name \"").nth(1)?.split('"').next()
}

/// The named counters of an `nft list table` output: name -> (packets, bytes).
pub fn named_counters(table: &str) -> std::collections::HashMap<String, (u64, u64)> {
    let mut out = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in table.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("counter ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            current = Some(name.to_string());
        } else if let (Some(name), Some(rest)) = (&current, line.strip_prefix("packets ")) {
            let mut words = rest.split_whitespace();
            let packets = words.next().and_then(|n| n.parse().ok());
            let bytes = words.nth(1).and_then(|n| n.parse().ok());
            if let (Some(p), Some(b)) = (packets, bytes) {
                out.insert(name.clone(), (p, b));
            }
            current = None;
        }
    }
    out
}

/// `nft list table` output with each rule's `counter name "X"` written as the counts of
/// X (`counter packets P bytes B`), as a rule with a counter of its own lists them.
pub fn resolve_counters(table: &str) -> String {
    let objects = named_counters(table);
    table
        .lines()
        .map(|line| match counter_name(line) {
            Some(name) => {
                let (p, b) = objects.get(name).copied().unwrap_or_default();
                line.replace(
                    &format!("counter name \"{name}\""),
                    &format!("counter packets {p} bytes {b}"),
                )
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
