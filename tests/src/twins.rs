//! Twin hosts for differential tests against iptables: two namespaces with the same
//! addresses, one judged by iptables/ip6tables (nf_tables backend, `iptables-restore`), the
//! other by fwctl (`fwctl restore`, XDP attached), fed the same frames from one client
//! namespace. The client sends crafted frames through AF_PACKET and has no IP stack of its
//! own (IPv6 disabled, no addresses), so nothing but the frames reaches the hosts: no
//! neighbour discovery, MLD or router solicitations to exclude. OUTPUT is left out of
//! comparisons: it holds the hosts' own answers (RSTs, ICMP errors), which XDP never sees.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    time::{Duration, Instant},
};

use netlab::{Link, Netns};

use crate::{
    packets::{Packet, L4},
    FwNs,
};

/// The MACs `Packet::bytes` writes: destination (the hosts) and source (the client).
pub const HOST_MAC: &str = "02:00:00:00:00:02";
pub const CLIENT_MAC: &str = "02:00:00:00:00:01";

/// The twins' addresses (both twins have all four).
pub const HOST4: &str = "10.231.0.2";
pub const HOST4_B: &str = "10.231.1.2";
pub const HOST6: &str = "fd00:231::2";
pub const HOST6_B: &str = "fd00:231:1::2";
/// Sources of frames: on the twins' subnet, and beyond it (routed back over the veth).
pub const SOURCES4: [&str; 4] = ["10.231.0.1", "10.231.0.5", "10.231.0.66", "192.0.2.9"];
pub const SOURCES6: [&str; 3] = ["fd00:231::1", "fd00:231::5", "2001:db8:5::9"];
/// The port the twins answer from, so frames can be replies (conntrack ESTABLISHED) and
/// ICMP errors about them (RELATED).
pub const REPLY_PORT: u16 = 5353;

/// How long the kernel gets to deliver and count a batch of frames.
const DEADLINE: Duration = Duration::from_secs(3);

/// The client, the iptables twin, the fwctl twin (XDP attached to its interface).
pub struct Twins {
    pub client: Netns,
    pub ipt: Netns,
    pub fw: FwNs,
    /// Both twins' interface, as rulesets name it: `{tag}h0`.
    pub host_if: String,
    to_ipt: Wire,
    to_fw: Wire,
    /// Each twin's (IPv4, IPv6) sockets bound to `REPLY_PORT`.
    answers: [(UdpSocket, UdpSocket); 2],
    /// The twins' TCP sockets connecting to the client in this case (`connect`).
    connections: RefCell<Vec<OwnedFd>>,
    files: (PathBuf, PathBuf),
}

/// Frames counted so far, to wait for a batch to be delivered.
pub struct Marks {
    ipt: (u64, u64),
    xdp: u64,
}

impl Twins {
    /// Namespaces `{tag}-client-…`, `{tag}-ipt-…`, `{tag}-fw-…`; interfaces `{tag}i0` and
    /// `{tag}f0` (the client's ends) and `{tag}h0` (both twins').
    pub fn new(tag: &str) -> Twins {
        let client = Netns::new(&format!("{tag}-client")).expect("client namespace");
        let ipt = Netns::new(&format!("{tag}-ipt")).expect("iptables namespace");
        let fw = FwNs::new(&format!("{tag}-fw")).expect("fwctl namespace");
        let host_if = format!("{tag}h0");
        run_in(
            &client,
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        let (to_ipt, to_fw) = (format!("{tag}i0"), format!("{tag}f0"));
        for (ns, client_if) in [(&ipt, &to_ipt), (&*fw, &to_fw)] {
            netlab::veth(
                Link {
                    ns: &client,
                    ifname: client_if,
                    addrs: &[],
                },
                Link {
                    ns,
                    ifname: &host_if,
                    addrs: &[],
                },
            )
            .expect("veth pair");
            client
                .ip(&["link", "set", client_if, "address", CLIENT_MAC])
                .expect("client MAC");
            twin_host(ns, &host_if);
        }
        // What reaches INPUT in the iptables twin, whatever the ruleset does with it.
        for command in [
            "add table inet fwdcount",
            "add chain inet fwdcount in { type filter hook input priority -300; }",
            "add rule inet fwdcount in meta nfproto ipv4 counter",
            "add rule inet fwdcount in meta nfproto ipv6 counter",
        ] {
            run_in(&ipt, "nft", &[command]);
        }
        fw.fwctl_ok(&["attach", &host_if]);
        let answer = |ns: &Netns| {
            let v4 = ns
                .udp_socket(SocketAddr::new(HOST4.parse().unwrap(), REPLY_PORT))
                .expect("IPv4 answer socket");
            let v6 = ns
                .udp_socket(SocketAddr::new(HOST6.parse().unwrap(), REPLY_PORT))
                .expect("IPv6 answer socket");
            (v4, v6)
        };
        let answers = [answer(&ipt), answer(&fw)];
        let dir = std::env::temp_dir();
        let files = (
            dir.join(format!("{}-rules.v4", fw.name())),
            dir.join(format!("{}-rules.v6", fw.name())),
        );
        Twins {
            to_ipt: Wire::open(&client, &to_ipt),
            to_fw: Wire::open(&client, &to_fw),
            client,
            ipt,
            fw,
            host_if,
            answers,
            connections: RefCell::new(Vec::new()),
            files,
        }
    }

    /// Puts both families' rulesets (iptables-save text) in force in both twins, with
    /// every counter at zero.
    pub fn load(&self, v4: &str, v6: &str) {
        if let Err(e) = self.try_load(v4, v6) {
            panic!("{e}");
        }
    }

    /// As `load`, but fwctl refusing a ruleset iptables took is returned (its message),
    /// not a panic: fwctl has limits of its own (see `tests::random_differential`).
    pub fn try_load(&self, v4: &str, v6: &str) -> Result<(), String> {
        std::fs::write(&self.files.0, v4).expect("writing rules.v4");
        std::fs::write(&self.files.1, v6).expect("writing rules.v6");
        let (f4, f6) = (
            self.files.0.to_str().unwrap(),
            self.files.1.to_str().unwrap(),
        );
        run_in(&self.ipt, "iptables-restore", &[f4]);
        run_in(&self.ipt, "ip6tables-restore", &[f6]);
        run_in(&self.ipt, "iptables", &["-Z"]);
        run_in(&self.ipt, "ip6tables", &["-Z"]);
        for args in [&["restore", f4][..], &["restore", "-6", f6]] {
            let out = self.fw.fwctl(args);
            if !out.status.success() {
                return Err(format!(
                    "fwctl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        self.fw.fwctl_ok(&["-Z"]);
        self.fw.fwctl_ok(&["-6", "-Z"]);
        Ok(())
    }

    /// Forgets every connection both twins track, so a case does not meet an earlier
    /// case's flows (`conntrack -F` exits 0 on an empty table too).
    pub fn forget_connections(&self) {
        self.connections.borrow_mut().clear();
        for ns in [&self.ipt, &*self.fw] {
            for family in ["ipv4", "ipv6"] {
                let out = ns
                    .command("conntrack")
                    .args(["-F", "-f", family])
                    .output()
                    .expect("conntrack (installed by cargo xtask setup)");
                assert!(
                    out.status.success(),
                    "conntrack -F -f {family} in {}: {}",
                    ns.name(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Both twins send a datagram from `REPLY_PORT` to each (client address, port): the
    /// client's frames back to them are replies.
    pub fn ask(&self, flows: &[(&str, u16)]) {
        for (v4, v6) in &self.answers {
            for (client_ip, port) in flows {
                let to = SocketAddr::new(client_ip.parse().expect("client address"), *port);
                let sock = if client_ip.contains(':') { v6 } else { v4 };
                sock.send_to(b"question", to).expect("question");
            }
        }
    }

    /// Each twin opens a TCP connection to each (client address, client port, twin port)
    /// from the twin's address and port: a real connect, whose SYN goes out to the client.
    /// Returns, per twin (iptables, fwctl), each SYN's sequence number as the client saw
    /// it, so that the client's answers (`tcp_answer`) can be right for each twin.
    pub fn connect(&self, flows: &[(&str, u16, u16)]) -> [Vec<u32>; 2] {
        let mut isns = [Vec::new(), Vec::new()];
        for (twin, (ns, wire)) in [(&self.ipt, &self.to_ipt), (&*self.fw, &self.to_fw)]
            .into_iter()
            .enumerate()
        {
            let capture = Capture::open(&self.client, wire.ifindex);
            for &(client, port, local) in flows {
                let host = if client.contains(':') { HOST6 } else { HOST4 };
                let from = SocketAddr::new(host.parse().expect("host"), local);
                let to = SocketAddr::new(client.parse().expect("client"), port);
                let fd = ns
                    .run(move || connect_nonblocking(from, to))
                    .expect("entering a twin")
                    .unwrap_or_else(|e| panic!("connecting {from} -> {to}: {e}"));
                self.connections.borrow_mut().push(fd);
            }
            for &(client, port, local) in flows {
                let isn = capture.syn(client, port, local).unwrap_or_else(|| {
                    panic!("twin {twin} sent no SYN from port {local} to {client}:{port}")
                });
                isns[twin].push(isn);
            }
        }
        isns
    }

    /// What the twins have counted so far; `deliver` waits for more.
    pub fn marks(&self) -> Marks {
        Marks {
            ipt: (counted(&self.ipt, "ipv4"), counted(&self.ipt, "ipv6")),
            xdp: veth_stat(&self.fw, &self.host_if, "xdp_packets"),
        }
    }

    /// Sends every frame to both twins, then waits until the iptables twin's INPUT saw each
    /// one, fwctl's XDP program saw each one, and both twins' INPUT counters (policy and
    /// rules of the chain, which every packet traversing it moves) add up to at least what
    /// was sent. Panics, naming what is missing, after a deadline.
    pub fn deliver(&self, frames: &[Vec<u8>], context: &str) {
        let pairs: Vec<[&[u8]; 2]> = frames.iter().map(|f| [&f[..], &f[..]]).collect();
        self.deliver_pairs(&pairs, context)
    }

    /// As `deliver`, with a frame of its own for each twin (iptables, fwctl): answers to a
    /// twin's own TCP connection carry its sequence numbers.
    pub fn deliver_pairs(&self, frames: &[[&[u8]; 2]], context: &str) {
        let reaching_input = frames.iter().fold((0, 0), |(a, b), [f, _]| {
            if f[12..14] == [0x08, 0x00] {
                (a + 1, b)
            } else {
                (a, b + 1)
            }
        });
        self.deliver_expecting(frames, reaching_input, context)
    }

    /// As `deliver_pairs`, for frames of which only `reaching_input` (IPv4, IPv6) reach
    /// INPUT in the iptables twin: the kernel drops the others before netfilter, or they
    /// reach it on another device. The iptables twin is the judge of that number: a wrong
    /// one stops the test at the deadline, naming what INPUT saw.
    pub fn deliver_expecting(
        &self,
        frames: &[[&[u8]; 2]],
        reaching_input: (u64, u64),
        context: &str,
    ) {
        let before = self.marks();
        let (sent4, sent6) = reaching_input;
        for [to_ipt, to_fw] in frames {
            self.to_ipt.send(to_ipt);
            self.to_fw.send(to_fw);
        }
        let arrived = || {
            (
                counted(&self.ipt, "ipv4") - before.ipt.0,
                counted(&self.ipt, "ipv6") - before.ipt.1,
            )
        };
        wait_for(
            || arrived() == (sent4, sent6),
            || {
                format!(
                    "{context}: INPUT of the iptables twin saw (v4, v6) {:?} of {:?}",
                    arrived(),
                    (sent4, sent6)
                )
            },
        );
        let seen = || veth_stat(&self.fw, &self.host_if, "xdp_packets") - before.xdp;
        wait_for(
            || seen() == frames.len() as u64,
            || {
                format!(
                    "{context}: the XDP program saw {} of {} frames",
                    seen(),
                    frames.len()
                )
            },
        );
        // Counting follows delivery in the same softirq, but the listing is read from
        // another process: wait for the counts to catch up, not for a fixed time.
        for (family, sent) in [("4", sent4), ("6", sent6)] {
            let total = |listing: &str| chain_packets(listing, "INPUT");
            wait_for(
                || total(&self.listings(family).0) >= sent,
                || format!("{context}: iptables (IPv{family}) counted fewer than {sent} sent"),
            );
            // fwctl counting fewer is a finding, not a harness failure: stop waiting at the
            // deadline and let the comparison report it.
            let deadline = Instant::now() + DEADLINE;
            while total(&self.listings(family).1) < sent && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// `-L -v -x -n` of one family ("4" or "6") without OUTPUT: (iptables, fwctl).
    pub fn listings(&self, family: &str) -> (String, String) {
        self.table_listings("filter", family)
    }

    /// The same of one table (`-t TABLE`), without OUTPUT and POSTROUTING.
    pub fn table_listings(&self, table: &str, family: &str) -> (String, String) {
        let (tool, mut fw_args) = if family == "4" {
            ("iptables", vec![])
        } else {
            ("ip6tables", vec!["-6"])
        };
        let list = ["-t", table, "-L", "-v", "-x", "-n"];
        fw_args.extend(list);
        let theirs = without_output(&run_in(&self.ipt, tool, &list));
        let ours = without_output(&self.fw.fwctl_ok(&fw_args));
        (theirs, ours)
    }

    /// What fwctl's XDP program dropped on the twin's interface so far.
    pub fn xdp_drops(&self) -> u64 {
        veth_stat(&self.fw, &self.host_if, "xdp_drops")
    }
}

impl Drop for Twins {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.files.0);
        let _ = std::fs::remove_file(&self.files.1);
    }
}

/// Waits for `done` up to `DEADLINE`, else panics with `why()`.
pub fn wait_for(done: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    crate::wait_for(DEADLINE, done, why)
}

/// A ruleset given as iptables commands (`-P`, `-N`, `-A`) in iptables-save format, which
/// `iptables-restore` and `fwctl restore` read.
pub fn restore_text(commands: &[&str]) -> String {
    let policy = |chain: &str| {
        commands
            .iter()
            .find_map(|c| c.strip_prefix(&format!("-P {chain} ")))
            .unwrap_or("ACCEPT")
            .to_string()
    };
    let mut text = String::from("*filter\n");
    for chain in ["INPUT", "FORWARD", "OUTPUT"] {
        text.push_str(&format!(":{chain} {} [0:0]\n", policy(chain)));
    }
    for c in commands {
        if let Some(chain) = c.strip_prefix("-N ") {
            text.push_str(&format!(":{chain} - [0:0]\n"));
        }
    }
    for c in commands.iter().filter(|c| c.starts_with("-A ")) {
        text.push_str(c);
        text.push('\n');
    }
    text.push_str("COMMIT\n");
    text
}

/// The frame as it goes on the wire: ICMP identifier set, checksums right (conntrack calls
/// a packet with a bad checksum INVALID, so it matters to the states).
pub fn wire(packet: &Packet, icmp_id: u16) -> Vec<u8> {
    let mut frame = packet.bytes();
    assert!(packet.vlan.is_none(), "the twins take untagged frames");
    if matches!(packet.l4, L4::Icmp | L4::Icmpv6) {
        let l3 = l3_len(&frame);
        frame[14 + l3 + 4..14 + l3 + 6].copy_from_slice(&icmp_id.to_be_bytes());
    }
    checksummed(frame)
}

/// An ICMP error (destination unreachable, port) from `src` to `dst` about the UDP
/// datagram `dst` sent from `REPLY_PORT` to `src`:`port`: conntrack calls it RELATED to
/// that flow.
pub fn icmp_error(src: &str, dst: &str, port: u16) -> Vec<u8> {
    let v6 = src.contains(':');
    let (l4, icmp) = if v6 {
        (L4::Icmpv6, (1, 4))
    } else {
        (L4::Icmp, (3, 3))
    };
    let mut outer = Packet::new(src, dst, l4);
    outer.icmp = icmp;
    outer.payload = 0;
    let mut inner = Packet::udp(dst, src, REPLY_PORT, port);
    inner.payload = 8;
    let inner = checksummed(inner.bytes());
    let quoted = &inner[14..14 + l3_len(&inner) + 8];
    let mut frame = outer.bytes();
    // The 4 bytes after type, code and checksum are unused in these errors.
    let l3 = l3_len(&frame);
    frame[14 + l3 + 4..14 + l3 + 8].fill(0);
    frame.extend_from_slice(quoted);
    let ip_len = (frame.len() - 14) as u16;
    if v6 {
        frame[18..20].copy_from_slice(&(ip_len - 40).to_be_bytes());
    } else {
        frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
    }
    checksummed(frame)
}

/// The client's answer on a TCP connection a twin opened (`Twins::connect`): from
/// `client`:`port` to the twin's `local` port, with `flags`, the client's sequence number
/// `seq` and the twin's next one (`isn` + 1) acknowledged. Data segments carry 10 bytes.
pub fn tcp_answer(client: &str, port: u16, local: u16, flags: u8, seq: u32, isn: u32) -> Vec<u8> {
    let host = if client.contains(':') { HOST6 } else { HOST4 };
    let mut p = Packet::tcp(client, host, port, local);
    p.tcp_flags = flags;
    p.payload = if flags & 0x02 != 0 { 0 } else { 10 };
    let mut frame = p.bytes();
    let tcp = 14 + l3_len(&frame);
    frame[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
    frame[tcp + 8..tcp + 12].copy_from_slice(&isn.wrapping_add(1).to_be_bytes());
    // A window, so the twin's stack takes the segment as a peer's.
    frame[tcp + 14..tcp + 16].copy_from_slice(&8192u16.to_be_bytes());
    checksummed(frame)
}

/// A TCP socket in the calling thread's namespace, bound to `from`, connecting to `to`
/// without waiting (its SYN goes out; the answer comes from crafted frames).
fn connect_nonblocking(from: SocketAddr, to: SocketAddr) -> std::io::Result<OwnedFd> {
    let domain = if from.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket() has no preconditions; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // Closed at the end of a case with a reset, not a FIN: the port is free at once for
    // the next case's connection.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value is a linger that outlives the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    let (from, from_len) = sockaddr(from);
    let (to, to_len) = sockaddr(to);
    // SAFETY: the addresses are sockaddr_storage values of the lengths given.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&from as *const libc::sockaddr_storage).cast(),
            from_len,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&to as *const libc::sockaddr_storage).cast(),
            to_len,
        )
    };
    let err = std::io::Error::last_os_error();
    if r != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(err);
    }
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value to fill in.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Frames leaving a twin, as the client receives them on one interface.
struct Capture {
    fd: OwnedFd,
}

impl Capture {
    fn open(ns: &Netns, ifindex: libc::c_int) -> Capture {
        ns.run(move || {
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: socket() has no preconditions; the descriptor is owned from here on.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid value to fill in.
            let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            at.sll_family = libc::AF_PACKET as u16;
            at.sll_protocol = all;
            at.sll_ifindex = ifindex;
            // SAFETY: the address is a sockaddr_ll of the length given.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&at as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(
                r,
                0,
                "binding AF_PACKET: {}",
                std::io::Error::last_os_error()
            );
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            // SAFETY: the option value is a timeval that outlives the call.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            Capture { fd }
        })
        .expect("entering the client namespace")
    }

    /// The sequence number of the SYN from the twin's port `local` to `client`:`port`, if
    /// one arrives before a deadline.
    fn syn(&self, client: &str, port: u16, local: u16) -> Option<u32> {
        let client: std::net::IpAddr = client.parse().ok()?;
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: the buffer outlives the call; its length is its own.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else { continue };
            let f = &buf[..n];
            let (dst, tcp): (std::net::IpAddr, usize) = match f.get(12..14) {
                Some([0x08, 0x00]) if f.get(23) == Some(&6) => {
                    let ihl = usize::from(f[14] & 0xf) * 4;
                    (<[u8; 4]>::try_from(&f[30..34]).ok()?.into(), 14 + ihl)
                }
                Some([0x86, 0xdd]) if f.get(20) == Some(&6) => {
                    (<[u8; 16]>::try_from(&f[38..54]).ok()?.into(), 54)
                }
                _ => continue,
            };
            let Some(h) = f.get(tcp..tcp + 14) else {
                continue;
            };
            let (sport, dport) = (
                u16::from_be_bytes([h[0], h[1]]),
                u16::from_be_bytes([h[2], h[3]]),
            );
            if dst == client && sport == local && dport == port && h[13] & 0x12 == 0x02 {
                return Some(u32::from_be_bytes([h[4], h[5], h[6], h[7]]));
            }
        }
        None
    }
}

/// Length of the IP header of an untagged frame built by `Packet` (no IPv6 extensions).
fn l3_len(frame: &[u8]) -> usize {
    if frame[12..14] == [0x08, 0x00] {
        20
    } else {
        40
    }
}

/// The frame with its IPv4 header checksum and TCP/UDP/ICMP checksum computed.
pub fn checksummed(mut frame: Vec<u8>) -> Vec<u8> {
    let v4 = frame[12..14] == [0x08, 0x00];
    let l3 = 14 + l3_len(&frame);
    let (proto, pseudo) = if v4 {
        frame[24..26].fill(0);
        let sum = fold(sum16(&frame[14..34]));
        frame[24..26].copy_from_slice(&(!sum).to_be_bytes());
        (frame[23], frame[26..34].to_vec())
    } else {
        (frame[20], frame[22..54].to_vec())
    };
    let sum_at = match proto {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return frame,
    };
    frame[l3 + sum_at..l3 + sum_at + 2].fill(0);
    let len = frame.len() - l3;
    let mut sum = sum16(&frame[l3..]);
    if proto != 1 {
        sum += sum16(&pseudo) + u32::from(proto) + sum16(&(len as u32).to_be_bytes());
    }
    let mut folded = !fold(sum);
    if proto == 17 && folded == 0 {
        folded = 0xffff;
    }
    frame[l3 + sum_at..l3 + sum_at + 2].copy_from_slice(&folded.to_be_bytes());
    frame
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// An AF_PACKET socket on one of the client's interfaces: frames go out as written.
pub struct Wire {
    fd: libc::c_int,
    pub ifindex: libc::c_int,
}

impl Wire {
    pub fn open(ns: &Netns, ifname: &str) -> Wire {
        let name = std::ffi::CString::new(ifname).expect("interface name");
        ns.run(move || {
            // SAFETY: a NUL-terminated name; socket() has no preconditions.
            let (fd, ifindex) = unsafe {
                (
                    libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0),
                    libc::if_nametoindex(name.as_ptr()),
                )
            };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            assert!(ifindex > 0, "no {name:?}");
            Wire {
                fd,
                ifindex: ifindex as libc::c_int,
            }
        })
        .expect("entering the client namespace")
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value to fill in.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the frame and the address outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(
            sent,
            frame.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours.
        unsafe { libc::close(self.fd) };
    }
}

/// Runs `program` in `ns`; panics with its stderr unless it succeeds; returns stdout.
pub fn run_in(ns: &Netns, program: &str, args: &[&str]) -> String {
    let out = ns.command(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?} in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One twin host: its interface set up like the other's.
fn twin_host(ns: &Netns, ifname: &str) {
    for a in [
        format!("{HOST4}/24"),
        format!("{HOST4_B}/24"),
        format!("{HOST6}/64"),
        format!("{HOST6_B}/64"),
    ] {
        let mut args = vec!["addr", "add", &a, "dev", ifname];
        if a.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args).expect("twin address");
    }
    ns.ip(&["link", "set", ifname, "address", HOST_MAC])
        .expect("twin MAC");
    ns.ip(&["route", "add", "192.0.2.0/24", "dev", ifname])
        .expect("route");
    ns.ip(&["-6", "route", "add", "2001:db8:5::/64", "dev", ifname])
        .expect("route");
    // Static neighbours: the hosts' answers leave at once, with no solicitation.
    for peer in SOURCES4.iter().chain(SOURCES6.iter()) {
        ns.ip(&[
            "neigh",
            "replace",
            peer,
            "lladdr",
            CLIENT_MAC,
            "dev",
            ifname,
            "nud",
            "permanent",
        ])
        .expect("static neighbour");
    }
}

/// Sum of the packet counters of one chain's block in a `-L -v -x -n` listing: the
/// policy and every rule. Every packet that traverses INPUT adds at least one.
pub fn chain_packets(listing: &str, chain: &str) -> u64 {
    counters(listing)
        .get(chain)
        .map(|c| c.policy.unwrap_or(0) + c.rules.iter().sum::<u64>())
        .unwrap_or(0)
}

/// The packet counters of one chain in a `-L -v -x -n` listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainCounters {
    /// Built-in chains only.
    pub policy: Option<u64>,
    /// Rule by rule, in order.
    pub rules: Vec<u64>,
}

/// Every chain's packet counters in a `-L -v -x -n` listing, by chain name.
pub fn counters(listing: &str) -> BTreeMap<String, ChainCounters> {
    let mut chains = BTreeMap::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Chain ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        // INPUT (policy DROP 3 packets, 180 bytes) / U1 (2 references)
        let policy = (words.get(1) == Some(&"(policy"))
            .then(|| words.get(3).and_then(|w| w.parse().ok()))
            .flatten();
        let mut chain = ChainCounters {
            policy,
            rules: Vec::new(),
        };
        lines.next(); // column headings
        for rule in lines.by_ref().take_while(|l| !l.is_empty()) {
            let packets = rule.split_whitespace().next().and_then(|w| w.parse().ok());
            chain
                .rules
                .push(packets.unwrap_or_else(|| panic!("no packet count in {rule:?}")));
        }
        chains.insert(words[0].to_string(), chain);
    }
    chains
}

/// The listing without its OUTPUT and POSTROUTING chains, which count the host's own packets.
pub fn without_output(listing: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in listing.lines() {
        if line.starts_with("Chain ") {
            skip = line.starts_with("Chain OUTPUT ") || line.starts_with("Chain POSTROUTING ");
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Packets counted by the rule of `inet fwdcount` that matches `family` ("ipv4"/"ipv6").
fn counted(ns: &Netns, family: &str) -> u64 {
    let listing = run_in(ns, "nft", &["list", "chain", "inet", "fwdcount", "in"]);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("nfproto {family}")))
        .expect("count rule");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "packets").expect("packets");
    words[at + 1].parse().expect("a packet count")
}

/// A statistic of the veth driver (`ethtool -S`), summed over its receive queues:
/// `xdp_packets` (what the XDP program saw), `xdp_drops`, `drops` (ring full).
pub fn veth_stat(ns: &Netns, ifname: &str, stat: &str) -> u64 {
    run_in(ns, "ethtool", &["-S", ifname])
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(name, _)| {
            name.strip_prefix("rx_queue_")
                .and_then(|n| n.split_once('_'))
                .is_some_and(|(_, name)| name == stat)
        })
        .map(|(_, v)| v.parse::<u64>().expect("a number"))
        .sum()
}
