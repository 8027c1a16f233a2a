//! The netfilter side, end to end in namespaces each test creates and removes: NAT across
//! client, router and server, the nftables table as a safety net behind XDP (interfaces
//! without XDP, XDP detached, an interrupted change), and nothing left behind.

use std::time::Duration;

use netlab::Probe;
use tests::{
    packets::Packet, udp_between, udp_exchange, FwNs, Lab, RouterLab, Tun, CLIENT_V4, CLIENT_V6,
    HOST_IF, HOST_V4, HOST_V6,
};

/// MASQUERADE, SNAT and a DNAT port forward on a router whose server has no route back to
/// the clients: without source NAT nothing arrives; with it the server sees the router's
/// (or the SNAT) address as the peer of a real TCP connection. IPv4 and IPv6.
#[test]
fn nat_masquerade_snat_dnat() {
    let lab = RouterLab::isolated("fnat", 211).unwrap();
    let r = &lab.router;
    // SNAT targets beside the router's own addresses; the IPv6 one deprecated so that
    // MASQUERADE's source address selection keeps to the first.
    r.ip(&["addr", "add", "10.211.2.100/24", "dev", "fnatr1"])
        .unwrap();
    r.ip(&[
        "addr",
        "add",
        "fd00:211:2::100/64",
        "dev",
        "fnatr1",
        "nodad",
        "preferred_lft",
        "0",
    ])
    .unwrap();
    for (v6, server, router_out, snat_to, router_in) in [
        (
            false,
            "10.211.2.2",
            "10.211.2.1",
            "10.211.2.100",
            "10.211.1.1",
        ),
        (
            true,
            "[fd00:211:2::2]",
            "fd00:211:2::1",
            "fd00:211:2::100",
            "[fd00:211:1::1]",
        ),
    ] {
        let fam: &[&str] = if v6 { &["-6"] } else { &[] };
        let nat = |args: &[&str]| {
            let mut all = fam.to_vec();
            all.extend(["-t", "nat"]);
            all.extend(args);
            r.fwctl_ok(&all);
        };
        let peer_ip = |peer: Option<std::net::SocketAddr>| peer.map(|p| p.ip().to_string());

        let (probe, peer) = lab
            .tcp_through(&format!("{server}:7700"), &format!("{server}:7700"))
            .unwrap();
        assert_eq!((probe, peer), (Probe::TimedOut, None), "v6={v6}: no NAT");

        nat(&["-A", "POSTROUTING", "-o", "fnatr1", "-j", "MASQUERADE"]);
        let (probe, peer) = lab
            .tcp_through(&format!("{server}:7701"), &format!("{server}:7701"))
            .unwrap();
        assert_eq!(probe, Probe::Echoed, "v6={v6}: MASQUERADE");
        assert_eq!(peer_ip(peer).as_deref(), Some(router_out), "v6={v6}");

        nat(&[
            "-R",
            "POSTROUTING",
            "1",
            "-o",
            "fnatr1",
            "-j",
            "SNAT",
            "--to-source",
            snat_to,
        ]);
        let (probe, peer) = lab
            .tcp_through(&format!("{server}:7702"), &format!("{server}:7702"))
            .unwrap();
        assert_eq!(probe, Probe::Echoed, "v6={v6}: SNAT");
        assert_eq!(peer_ip(peer).as_deref(), Some(snat_to), "v6={v6}");

        // A port forward: the router's own address, port 8080, to the server's 7703.
        let to = format!("{server}:7703");
        nat(&[
            "-A",
            "PREROUTING",
            "-i",
            "fnatr0",
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ]);
        let (probe, peer) = lab
            .tcp_through(&format!("{server}:7703"), &format!("{router_in}:8080"))
            .unwrap();
        assert_eq!(probe, Probe::Echoed, "v6={v6}: DNAT");
        assert_eq!(peer_ip(peer).as_deref(), Some(snat_to), "v6={v6}");

        // Counted by netfilter, listed as iptables lists them.
        let mut list = fam.to_vec();
        list.extend(["-t", "nat", "-L", "-n", "-v", "-x"]);
        let text = r.fwctl_ok(&list);
        let dnat = text
            .lines()
            .find(|l| l.contains("DNAT"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            dnat.trim_start().starts_with("1 "),
            "one connection DNATed: {text}"
        );
        let saved = r.fwctl_ok(&[&["save"], fam].concat());
        assert!(saved.contains("*nat\n"), "{saved}");
        assert!(
            saved.contains(&format!("-j DNAT --to-destination {to}")),
            "{saved}"
        );
    }
}

/// REDIRECT to a port of the router itself, and source NAT to a port range: what iptables
/// does with `-j REDIRECT --to-ports` and `-j MASQUERADE --to-ports`, with XDP attached.
#[test]
fn redirect_and_nat_port_ranges() {
    let lab = RouterLab::isolated("frd", 213).unwrap();
    let r = &lab.router;
    r.apply(&[
        "-t nat -A PREROUTING -i frdr0 -p tcp --dport 7720 -j REDIRECT --to-ports 7721",
        "-t nat -A POSTROUTING -o frdr1 -p tcp -j MASQUERADE --to-ports 40000-40009",
    ]);
    r.fwctl_ok(&["attach", "frdr0"]);
    r.tcp_echo("10.213.1.1:7721".parse().unwrap()).unwrap();
    // To the server's address, port 7720: the router answers itself, on 7721.
    let probe = lab
        .client
        .tcp_connect(
            "10.213.2.2:7720".parse().unwrap(),
            Duration::from_millis(1000),
        )
        .unwrap();
    assert_eq!(
        probe,
        Probe::Echoed,
        "redirected to the router's own listener"
    );
    for port in 7722..7725 {
        let (probe, peer) = lab
            .tcp_through(&format!("10.213.2.2:{port}"), &format!("10.213.2.2:{port}"))
            .unwrap();
        assert_eq!(probe, Probe::Echoed);
        let peer = peer.unwrap();
        assert_eq!(peer.ip().to_string(), "10.213.2.1");
        assert!((40000..=40009).contains(&peer.port()), "source port {peer}");
    }
}

/// NAT on a router judged at XDP with INPUT closed: XDP sees a port-forwarded packet, and a
/// reply to a masqueraded connection, as packets for the router itself, while iptables
/// judges them in FORWARD after NAT. They must get through as they do with iptables. (Under
/// source NAT, XDP leaves INPUT as a whole to netfilter: the router's own port is judged by
/// netfilter's policy here, not at XDP.)
#[test]
fn nat_through_xdp_with_input_closed() {
    let lab = RouterLab::isolated("fnx", 212).unwrap();
    let r = &lab.router;
    r.apply(&[
        "-P INPUT DROP",
        "-t nat -A POSTROUTING -o fnxr1 -j MASQUERADE",
        "-t nat -A PREROUTING -i fnxr0 -p tcp --dport 8080 -j DNAT --to-destination 10.212.2.2:7711",
    ]);
    r.fwctl_ok(&["attach", "fnxr0"]);
    r.fwctl_ok(&["attach", "fnxr1"]);
    let (probe, peer) = lab
        .tcp_through("10.212.2.2:7710", "10.212.2.2:7710")
        .unwrap();
    assert_eq!(probe, Probe::Echoed, "masqueraded connection");
    assert_eq!(
        peer.map(|p| p.ip().to_string()).as_deref(),
        Some("10.212.2.1")
    );
    let (probe, peer) = lab
        .tcp_through("10.212.2.2:7711", "10.212.1.1:8080")
        .unwrap();
    assert_eq!(probe, Probe::Echoed, "port forward");
    assert!(peer.is_some());
    // The router's own closed port: INPUT's policy, as iptables would decide (in netfilter).
    let own = lab
        .client
        .tcp_connect("10.212.1.1:22".parse().unwrap(), Duration::from_millis(500))
        .unwrap();
    assert_eq!(own, Probe::TimedOut);
}

/// Packets XDP did not judge go to the generation in force after every change: a switch
/// puts new default rules in front of the old ones (deleting rules would cost the next
/// change an RCU grace period) and deletes the old ones once there are 16 per chain. Over
/// 20 changes that open and close a port in turn, unmarked traffic follows
/// each (the lab attaches no XDP), and no base chain ever holds more than 16 old defaults besides the 2 in force.
#[test]
fn unmarked_packets_follow_every_switch() {
    let lab = Lab::named("fwq-sw").unwrap();
    lab.host
        .apply(&["-P INPUT DROP", "-A INPUT -p udp --dport 7910 -j ACCEPT"]);
    // Not attached: every packet reaches netfilter unmarked.
    let defaults = || {
        let input = netlab::output(
            lab.host
                .command("nft")
                .args(["list", "chain", "ip", "fwctl", "input"]),
        )
        .expect("nft list chain");
        input.matches("fwctl default ").count()
    };
    let mut most = 0;
    for round in 0..20 {
        let open = round % 2 == 1;
        if open {
            lab.host.fwctl_ok(&[
                "-A", "INPUT", "-p", "udp", "--dport", "7911", "-j", "ACCEPT",
            ]);
        } else if round > 0 {
            lab.host.fwctl_ok(&["-D", "INPUT", "2"]);
        }
        let delivered = udp_exchange(&lab, CLIENT_V4, HOST_V4, 7911, 1, 10);
        assert_eq!(
            delivered,
            usize::from(open),
            "round {round}: port open {open}"
        );
        assert_eq!(
            udp_exchange(&lab, CLIENT_V4, HOST_V4, 7910, 1, 10),
            1,
            "round {round}"
        );
        most = most.max(defaults());
    }
    assert!(most > 2, "old defaults are kept ({most})");
    assert!(most <= 18, "old defaults are deleted ({most} at most)");
}

/// The same traffic gets the same per-rule verdicts and counts with XDP attached and with
/// it detached (netfilter alone): the two paths are one ruleset.
#[test]
fn same_verdicts_with_and_without_xdp() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-N SVC",
        "-A SVC -p udp --dport 7901 -j RETURN",
        "-A SVC -p udp -j ACCEPT",
        "-A INPUT -p udp --dport 7900 -j ACCEPT",
        "-A INPUT ! -s 10.201.0.0/24 -j DROP",
        "-A INPUT -p udp -m multiport --dports 7901:7903 -j SVC",
        "-A INPUT -p udp --dport 7904 -j DROP",
        "-P INPUT DROP",
        "-6 -A INPUT -p udp --dport 7900 -j ACCEPT",
        "-6 -P INPUT DROP",
    ]);
    // The traffic, what fwctl lists of it, and what netfilter counted in IPv4's INPUT
    // meanwhile (nothing where XDP judged).
    let run = || {
        lab.host.fwctl_ok(&["-Z"]);
        lab.host.fwctl_ok(&["-6", "-Z"]);
        let before = lab.host.nft_packets("INPUT");
        let delivered: Vec<usize> = (7900..=7905)
            .map(|port| udp_exchange(&lab, CLIENT_V4, HOST_V4, port, 2, 30))
            .chain([udp_exchange(&lab, CLIENT_V6, HOST_V6, 7900, 2, 30)])
            .collect();
        let judged_by_netfilter = lab.host.nft_packets("INPUT") - before;
        let v4 = lab.host.fwctl_ok(&["-L", "-n", "-v", "-x"]);
        // IPv6's policy also meets the link's own ICMPv6 chatter, which comes when it
        // likes: compare the rule.
        let v6 = lab
            .host
            .fwctl_ok(&["-6", "-L", "INPUT", "1", "-n", "-v", "-x"]);
        ((delivered, v4, v6), judged_by_netfilter)
    };
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let (with_xdp, netfilter_with_xdp) = run();
    lab.host.fwctl_ok(&["detach", HOST_IF]);
    let (without, netfilter_without) = run();
    assert_eq!(with_xdp.0, vec![2, 0, 2, 2, 0, 0, 2], "delivered per port");
    assert_eq!(with_xdp, without);
    assert_eq!(netfilter_with_xdp, 0, "judged at XDP");
    assert!(
        netfilter_without >= 12,
        "judged by netfilter: {netfilter_without}"
    );
}

/// `fwctl mark-bits` moves XDP's verdict to other mark bits on both sides: the netfilter
/// table matches the new bits, and packets XDP accepted are still counted once.
#[test]
fn mark_bits_move_on_both_sides() {
    let lab = Lab::new().unwrap();
    lab.host
        .apply(&["-A INPUT -p udp --dport 7950 -j ACCEPT", "-P INPUT DROP"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    lab.host.fwctl_ok(&["mark-bits", "16"]);
    let out = lab
        .host
        .command("nft")
        .args(["list", "table", "ip", "fwctl"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        // Accepted at XDP for INPUT (not FORWARD), and fwctl's bits cleared as it accepts.
        table.contains(
            "meta mark & 0x00090000 == 0x00010000 meta mark set meta mark & 0xfff0ffff accept"
        ),
        "{table}"
    );
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7950, 4, 10), 4);
    assert_eq!(lab.host.packets("INPUT", 1), 4);
    let counted = lab.host.nft_packets("INPUT");
    assert_eq!(counted, 0, "netfilter took XDP's accept from the new bits");
    let bad = lab.host.fwctl(&["mark-bits", "30"]);
    assert_eq!(bad.status.code(), Some(1));
}

/// REJECT answers as iptables does, with XDP attached: a TCP reset for a port that has a
/// listener, an ICMP port unreachable that a connected UDP socket sees as ECONNREFUSED.
#[test]
fn reject_answers_the_sender() {
    let lab = Lab::attached(&[
        "-A INPUT -p tcp --dport 7970 -j REJECT --reject-with tcp-reset",
        "-A INPUT -p udp --dport 7971 -j REJECT",
        "-P INPUT DROP",
    ])
    .unwrap();
    lab.host
        .tcp_echo(format!("{HOST_V4}:7970").parse().unwrap())
        .unwrap();
    let tcp = lab
        .client
        .tcp_connect(
            format!("{HOST_V4}:7970").parse().unwrap(),
            Duration::from_millis(700),
        )
        .unwrap();
    assert_eq!(tcp, Probe::Refused, "a reset, although something listens");
    let _listener = lab
        .host
        .udp_socket(format!("{HOST_V4}:7971").parse().unwrap())
        .unwrap();
    let client = lab
        .client
        .udp_socket(format!("{CLIENT_V4}:0").parse().unwrap())
        .unwrap();
    client
        .connect(
            format!("{HOST_V4}:7971")
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        )
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    client.send(b"hello").unwrap();
    let err = client.recv(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(lab.host.packets("INPUT", 1), 1);
    assert_eq!(lab.host.packets("INPUT", 2), 1);
}

/// LOG with XDP attached: every matching packet is counted and goes on to the next rule;
/// `fwctl log` writes one event per packet up to its rate limit, then reports how many it
/// held back.
#[test]
fn log_events_reach_fwctl_log_up_to_the_limit() {
    let lab = Lab::attached(&[
        "-A INPUT -p udp --dport 7980 -j LOG --log-prefix in:",
        "-A INPUT -p udp --dport 7980 -j ACCEPT",
        "-P INPUT DROP",
    ])
    .unwrap();
    let follower = lab
        .host
        .fwctl_command()
        .args([
            "log",
            "--json",
            "--duration",
            "3",
            "--limit",
            "1",
            "--burst",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Listening once its netlink-log group is bound in the namespace.
    let group = format!("{:5}", fwctl::netfilter::exprs::LOG_GROUP);
    tests::wait_for(
        Duration::from_secs(10),
        || {
            netlab::output(
                lab.host
                    .command("cat")
                    .arg("/proc/net/netfilter/nfnetlink_log"),
            )
            .is_ok_and(|t| t.lines().any(|l| l.starts_with(&group)))
        },
        || "fwctl log never bound its netlink-log group".into(),
    );
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7980, 6, 10), 6);
    let out = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let events: Vec<_> = lines.iter().filter(|l| l.get("dpt").is_some()).collect();
    assert_eq!(events.len(), 2, "{text}");
    for e in &events {
        assert_eq!(e["prefix"], "in:");
        assert_eq!(e["src"], CLIENT_V4);
        assert_eq!(e["in"], HOST_IF);
        assert_eq!(e["proto"], "UDP");
    }
    let suppressed: u64 = lines.iter().filter_map(|l| l["suppressed"].as_u64()).sum();
    assert_eq!(suppressed, 4, "{text}");
    assert_eq!(lab.host.packets("INPUT", 1), 6);
    assert_eq!(lab.host.packets("INPUT", 2), 6);
}

/// A large ruleset goes into netfilter in one batch (past netlink's default socket buffer,
/// where a naive send fails with EMSGSIZE), and a bad rule at its end changes nothing.
#[test]
fn large_restores_are_one_batch_or_nothing() {
    let ns = FwNs::new("fwt-big").unwrap();
    let mut file = String::from("*filter\n:INPUT DROP [0:0]\n");
    for i in 0..5000u32 {
        let a = std::net::Ipv4Addr::from(0x0b00_0000 + i);
        file.push_str(&format!(
            "-A INPUT -s {a}/32 -p tcp -m tcp --dport {} -j DROP\n",
            10_000 + i
        ));
    }
    file.push_str("COMMIT\n");
    let path = std::env::temp_dir().join(format!("fwt-big-{}", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    ns.fwctl_ok(&["restore", path.to_str().unwrap()]);
    let nft = |args: &[&str]| nft_in(&ns, args);
    let rules = |t: &str| t.matches("comment \"fwctl rule ").count();
    let table = nft(&["list", "table", "ip", "fwctl"]);
    assert_eq!(rules(&table), 5000);
    // The same file with one bad line at the end: refused whole, the 5000 rules stay.
    let bad = file.replace(
        "COMMIT\n",
        "-A INPUT -p tcp --dport 99999 -j DROP\nCOMMIT\n",
    );
    std::fs::write(&path, &bad).unwrap();
    let out = ns.fwctl(&["restore", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 5003"));
    assert_eq!(nft(&["list", "table", "ip", "fwctl"]), table);
}

/// `fwctl top` names the source prefix of the packets XDP drops (sampled at XDP).
#[test]
fn top_shows_the_sources_of_drops() {
    let lab = Lab::attached(&["-P INPUT DROP"]).unwrap();
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7990, 800, 10), 0);
    let screen = lab.host.fwctl_ok(&["top", "--once", "-d", "0.2"]);
    assert!(
        screen.contains("TOP DROPPED SOURCES") && screen.contains("10.201.0.0/24 100%"),
        "{screen}"
    );
}

/// When the state says fwctl is installed but its pins are not where this run looks (a
/// run in a private mount namespace whose shell is gone sees an empty bpffs), fwctl stops
/// with an error instead of reading zeros or installing into a bpffs that vanishes.
#[test]
fn missing_pins_are_an_error_not_zeros() {
    let ns = FwNs::new("fwt-pins").unwrap();
    ns.apply(&["-A INPUT -p tcp --dport 22 -j ACCEPT"]);
    let status: serde_json::Value =
        serde_json::from_str(&ns.fwctl_ok(&["status", "-o", "json"])).unwrap();
    let pins = status["pin_dir"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(&pins).unwrap();
    let out = ns.fwctl(&["-L", "-n", "-v"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its pinned programs and maps are not in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!ns.fwctl(&["-A", "INPUT", "-j", "DROP"]).status.success());
    ns.fwctl_ok(&["down"]);
    ns.fwctl_ok(&["-A", "INPUT", "-j", "ACCEPT"]);
}

/// `-i tun+ -j ACCEPT` applied before any tun exists: a tun created afterwards (no XDP on
/// it, unknown to the compiled classifier) is judged by netfilter, and its traffic passes;
/// another new interface is held to the DROP policy.
#[test]
fn interfaces_created_after_the_rules_are_judged() {
    let ns = FwNs::new("fwt-tun").unwrap();
    ns.apply(&["-P INPUT DROP", "-A INPUT -i tun+ -j ACCEPT"]);
    let mut tun = Tun::create(&ns, "tun0", "10.78.0.1/24").unwrap();
    let mut other = Tun::create(&ns, "vpn0", "10.79.0.1/24").unwrap();
    let delivered = |tun: &mut Tun, src: &str, dst: &str, port: u16| {
        let rx = ns
            .udp_socket(format!("{dst}:{port}").parse().unwrap())
            .unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for _ in 0..3 {
            tun.inject(&Packet::udp(src, dst, 4000, port)).unwrap();
        }
        let mut got = 0;
        while rx.recv_from(&mut [0u8; 64]).is_ok() {
            got += 1;
        }
        got
    };
    assert_eq!(delivered(&mut tun, "10.78.0.2", "10.78.0.1", 9000), 3);
    assert_eq!(delivered(&mut other, "10.79.0.2", "10.79.0.1", 9001), 0);
    assert_eq!(ns.packets("INPUT", 1), 3);
    assert_eq!(ns.packets("INPUT", 0), 3);
}

/// A change killed after its netlink batch and before the XDP flip leaves the previous
/// ruleset in force on both paths: at XDP on the attached interface, and in netfilter for
/// traffic XDP never sees (lo). The next change then goes in whole.
#[test]
fn an_interrupted_change_leaves_the_previous_ruleset() {
    let lab = Lab::attached(&[
        "-A INPUT -p udp --dport 7800 -j ACCEPT",
        "-A INPUT -i lo -p udp --dport 7810 -j ACCEPT",
        "-P INPUT DROP",
    ])
    .unwrap();
    let before = lab.host.fwctl_ok(&["-S"]);
    lab.host.fwctl_killed_at(
        "staged",
        &[
            "-I", "INPUT", "-p", "udp", "--dport", "7801", "-j", "ACCEPT",
        ],
    );
    assert_eq!(lab.host.fwctl_ok(&["-S"]), before);
    let lo = |port| udp_between(&lab.host, &lab.host, "127.0.0.1", "127.0.0.1", port, 3, 10);
    let xdp = |port| udp_exchange(&lab, CLIENT_V4, HOST_V4, port, 3, 10);
    assert_eq!((xdp(7800), xdp(7801)), (3, 0), "XDP path");
    assert_eq!((lo(7810), lo(7801)), (3, 0), "netfilter path");

    lab.host.fwctl_ok(&[
        "-I", "INPUT", "-p", "udp", "--dport", "7801", "-j", "ACCEPT",
    ]);
    assert_eq!(xdp(7801), 3, "XDP path after the next change");
    assert_eq!(lo(7801), 3, "netfilter path after the next change");
}

/// A host upgraded from an fwctl that kept one `inet fwctl` table: the first change
/// replaces it by `ip fwctl` and `ip6 fwctl` in one batch, with fwctl's sets made there and
/// netfilter's counts carried over, and leaves no `inet fwctl` behind.
#[test]
fn the_inet_table_of_earlier_versions_is_replaced() {
    let ns = FwNs::new("fwt-legacy").unwrap();
    let nft = |args: &[&str]| nft_in(&ns, args);
    ns.fwctl_ok(&["set", "create", "bl", "hash:ip"]);
    ns.fwctl_ok(&["set", "add", "bl", "10.9.9.9"]);
    ns.apply(&[
        "-A INPUT -m set --match-set bl src -j DROP",
        "-A OUTPUT -p udp --dport 7990 -j ACCEPT",
    ]);
    assert_eq!(
        udp_between(&ns, &ns, "127.0.0.1", "127.0.0.1", 7990, 4, 10),
        4
    );
    let counts = |listing: &str| -> Vec<String> {
        listing
            .lines()
            .filter(|l| l.contains("udp dpt:7990"))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let before = counts(&ns.fwctl_ok(&["-L", "OUTPUT", "-v", "-x", "-n"]));
    assert_eq!(before.len(), 1);
    assert!(before[0].starts_with("4 "), "{before:?}");
    // What an earlier fwctl left: the counter objects in `inet fwctl`, and a hooked chain.
    let table = nft(&["list", "table", "ip", "fwctl"]);
    let mut legacy = String::from(
        "table inet fwctl {\n chain input { type filter hook input priority 0; policy accept; }\n",
    );
    let mut lines = table.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("counter ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            let counts = lines.next().unwrap_or_default();
            legacy.push_str(&format!(" counter {name} {{ {counts} }}\n"));
        }
    }
    legacy.push_str("}\n");
    nft(&["delete", "table", "ip", "fwctl"]);
    nft(&["delete", "table", "ip6", "fwctl"]);
    let path = std::env::temp_dir().join(format!("fwt-legacy-{}.nft", std::process::id()));
    std::fs::write(&path, &legacy).unwrap();
    nft(&["-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();

    ns.apply(&["-A OUTPUT -p udp --dport 7991 -j ACCEPT"]);
    let tables = nft(&["list", "tables"]);
    let mut tables: Vec<&str> = tables.lines().collect();
    tables.sort();
    assert_eq!(tables, ["table ip fwctl", "table ip6 fwctl"]);
    assert!(nft(&["list", "table", "ip", "fwctl"]).contains("10.9.9.9"));
    assert_eq!(
        counts(&ns.fwctl_ok(&["-L", "OUTPUT", "-v", "-x", "-n"])),
        before,
        "the counts came over"
    );
    assert_eq!(
        udp_between(&ns, &ns, "127.0.0.1", "127.0.0.1", 7991, 2, 10),
        2
    );
}

/// `fwctl down` removes the nftables table with everything in it; other tables stay.
#[test]
fn down_removes_the_table_and_only_it() {
    let ns = FwNs::new("fwt-down").unwrap();
    let nft = |args: &[&str]| nft_in(&ns, args);
    nft(&["add", "table", "inet", "operator"]);
    // The nat hooks (which turn conntrack on) exist only while NAT rules do.
    let nat_hooks = || {
        nft(&["list", "table", "ip", "fwctl"])
            .matches("chain nat-")
            .count()
    };
    ns.apply(&["-A INPUT -p tcp --dport 22 -j ACCEPT"]);
    assert_eq!(nat_hooks(), 0);
    ns.apply(&["-t nat -A POSTROUTING -j MASQUERADE"]);
    assert_eq!(nat_hooks(), 4);
    let tables = nft(&["list", "tables"]);
    assert!(tables.contains("table ip fwctl"), "{tables}");
    ns.fwctl_ok(&["down"]);
    assert_eq!(nft(&["list", "tables"]), "table inet operator\n");
}

/// The classic stateful ruleset with XDP on the host's interface: XDP reads the kernel's
/// conntrack table, so it judges what conntrack makes certain and leaves netfilter only
/// what it cannot know. Netfilter's own share shows in the active generation's chain, read
/// with `nft`: XDP-accepted packets are accepted by the base chain's mark rule before they
/// get there, and XDP-dropped ones never arrive.
#[test]
fn conntrack_state_is_judged_at_xdp() {
    let lab = Lab::named("fwk-ct").unwrap();
    lab.host.apply(&[
        "-P INPUT DROP",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert!(lab.xdp_mode().unwrap().is_some(), "XDP is not attached");
    // Netfilter's INPUT counters: (state rule, policy), as both generations list them.
    // (`nft list chain` cannot name a chain that starts with a digit; the table can.)
    let nft = || -> Vec<(u64, u64)> {
        let out = lab
            .host
            .command("nft")
            .args(["list", "table", "ip", "fwctl"])
            .output()
            .unwrap();
        assert!(out.status.success(), "nft list table ip fwctl");
        let text = tests::resolve_counters(&String::from_utf8_lossy(&out.stdout));
        let chains: Vec<(u64, u64)> = ["chain 0v4-INPUT {", "chain 1v4-INPUT {"]
            .iter()
            .filter_map(|head| {
                let body: Vec<&str> = text
                    .lines()
                    .skip_while(|l| l.trim() != *head)
                    .take_while(|l| l.trim() != "}")
                    .collect();
                let packets = |needle: &str| {
                    body.iter()
                        .find(|l| l.contains(needle))
                        .and_then(|l| l.split("packets ").nth(1))
                        .and_then(|w| w.split_whitespace().next())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or_else(|| panic!("no {needle:?} counter under {head}:\n{text}"))
                };
                (!body.is_empty()).then(|| (packets("ct state"), packets("fwctl policy")))
            })
            .collect();
        assert!(!chains.is_empty(), "no INPUT chain in:\n{text}");
        // Both generations' rules count in one named counter each: the same numbers.
        assert!(chains.windows(2).all(|w| w[0] == w[1]), "{text}");
        chains[..1].to_vec()
    };
    let total = |n: usize| lab.host.packets("INPUT", n);

    // (a) The host's own connection out: every answer is ESTABLISHED at XDP.
    let (nft0, state0) = (nft(), total(2));
    let server = lab
        .client
        .tcp_accept_peer(
            format!("{CLIENT_V4}:7900").parse().unwrap(),
            Duration::from_secs(3),
        )
        .unwrap();
    let probe = lab
        .host
        .tcp_connect(
            format!("{CLIENT_V4}:7900").parse().unwrap(),
            Duration::from_millis(1500),
        )
        .unwrap();
    assert!(server.join().unwrap().is_some());
    assert_eq!(probe, Probe::Echoed, "outbound connection");
    let state1 = total(2);
    assert!(
        state1 >= state0 + 2,
        "state rule counted {}",
        state1 - state0
    );
    assert_eq!(nft(), nft0, "netfilter judged answers XDP could");

    // (b) Unsolicited: a datagram and a SYN to closed ports are NEW, dropped at XDP.
    let policy0 = total(0);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7901, 3, 10), 0);
    let probe = lab
        .client
        .tcp_connect(
            format!("{HOST_V4}:7902").parse().unwrap(),
            Duration::from_millis(300),
        )
        .unwrap();
    assert_eq!(probe, Probe::TimedOut, "SYN to a closed port");
    assert!(
        total(0) > policy0 + 3,
        "policy counted {}",
        total(0) - policy0
    );
    assert_eq!(nft(), nft0, "netfilter saw packets XDP dropped");
    assert_eq!(total(2), state1, "nothing unsolicited is ESTABLISHED");

    // (c) An ICMP error about a live flow is RELATED: XDP leaves it to netfilter, which
    // lets it through, and the host's connected socket learns the port is closed.
    let sock = lab
        .host
        .udp_socket(format!("{HOST_V4}:0").parse().unwrap())
        .unwrap();
    sock.connect(format!("{CLIENT_V4}:7903")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send(b"anyone?").unwrap();
    let err = sock.recv(&mut [0u8; 64]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let nft1 = nft();
    let moved: u64 = nft1.iter().zip(&nft0).map(|(a, b)| a.0 - b.0).sum();
    assert_eq!(moved, 1, "netfilter's state rule took the ICMP error");
}

/// With a conntrack helper in the namespace (an FTP helper object in another nftables
/// table), a new connection may be RELATED through an expectation XDP's lookup cannot
/// see: a SYN that misses conntrack is then not "certainly NEW" and XDP hands it to
/// netfilter, which judges it (here: the policy drops it). Without the helper, XDP drops
/// it itself and netfilter counts nothing.
#[test]
fn conntrack_helpers_send_misses_to_netfilter() {
    let lab = Lab::attached(&[
        "-P INPUT DROP",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -p tcp --dport 21 -j ACCEPT",
    ])
    .unwrap();
    let closed = format!("{HOST_V4}:2121").parse().unwrap();
    let probe = || {
        lab.client
            .tcp_connect(closed, Duration::from_millis(300))
            .unwrap()
    };
    assert_eq!(probe(), Probe::TimedOut);
    assert_eq!(lab.host.nft_packets("INPUT"), 0, "XDP judged the SYNs");
    for cmd in [
        "add table inet fwtother",
        "add ct helper inet fwtother ftp-std { type \"ftp\" protocol tcp ; }",
    ] {
        netlab::run(lab.host.command("nft").args(shell_words(cmd))).unwrap();
    }
    // fwctl checks for helpers at every change.
    lab.host.fwctl_ok(&[
        "-A", "INPUT", "-p", "tcp", "--dport", "2200", "-j", "ACCEPT",
    ]);
    assert_eq!(probe(), Probe::TimedOut, "still closed");
    assert!(
        lab.host.nft_packets("INPUT") > 0,
        "with a helper about, netfilter judged the SYNs"
    );
    // Gone again: back to XDP.
    netlab::run(
        lab.host
            .command("nft")
            .args(["delete", "table", "inet", "fwtother"]),
    )
    .unwrap();
    lab.host.fwctl_ok(&["-D", "INPUT", "3"]);
    lab.host.fwctl_ok(&["-Z"]);
    let before = lab.host.nft_packets("INPUT");
    assert_eq!(probe(), Probe::TimedOut);
    assert_eq!(
        lab.host.nft_packets("INPUT"),
        before,
        "XDP judged the SYNs again"
    );
}

/// `cmd` split into words, double-quoted words kept whole (quotes included, as nft wants
/// them for strings).
fn shell_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in cmd.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            ' ' if !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A RETURN in INPUT applies INPUT's policy (iptables), counted on the rule and on the
/// policy. Netfilter once returned from the generation chain to the hooked chain, whose
/// own `accept` let the packet in past a DROP policy and counted no policy (found by the
/// random differential test). Counts survive a change of the ruleset.
#[test]
fn return_in_input_applies_the_policy_in_netfilter() {
    let lab = Lab::named("fwq-ret").unwrap();
    let host = &lab.host;
    host.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp --dport 7020 -j RETURN",
        "-A INPUT -p udp -j ACCEPT",
    ]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7020, 2, 10), 0);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7021, 1, 10), 1);
    assert_eq!((host.packets("INPUT", 1), host.packets("INPUT", 0)), (2, 2));
    host.apply(&["-A INPUT -p tcp -j ACCEPT"]);
    assert_eq!(
        (host.packets("INPUT", 1), host.packets("INPUT", 0)),
        (2, 2),
        "counts after a change"
    );
    host.apply(&["-P INPUT ACCEPT"]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7020, 1, 10), 1);
    assert_eq!((host.packets("INPUT", 1), host.packets("INPUT", 0)), (3, 3));
}

/// The chains of each generation of fwctl's nftables tables as `nft list table` shows
/// them, by name with the generation digit taken out of every name (chains, jumps, rate
/// sets), so that the two generations compare.
fn generations(ns: &FwNs) -> [std::collections::BTreeMap<String, Vec<String>>; 2] {
    let table: String = ["ip", "ip6"]
        .iter()
        .map(|family| {
            netlab::output(ns.command("nft").args(["list", "table", family, "fwctl"]))
                .expect("nft list table")
        })
        .collect();
    let neutral = |line: &str| {
        ["0v4-", "1v4-", "0v6-", "1v6-"]
            .iter()
            .fold(line.to_string(), |l, g| {
                l.replace(g, &format!("G{}", &g[1..]))
            })
    };
    let mut out = [
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    ];
    let mut current: Option<(usize, String)> = None;
    for line in table.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            current = match name.as_bytes().first() {
                Some(b'0') => Some((0, neutral(name))),
                Some(b'1') => Some((1, neutral(name))),
                _ => None,
            };
        } else if line == "}" {
            current = None;
        } else if let Some((g, name)) = &current {
            let body: &mut Vec<String> = out[*g].entry(name.clone()).or_default();
            body.push(neutral(line));
        }
    }
    out
}

/// Writes the ruleset in force whole into the other generation (FWCTL_NFT_REWRITE=1) and
/// requires it equal to the generation in force, which the last change wrote by difference.
fn difference_equals_whole(ns: &FwNs, what: &str) {
    let out = ns
        .fwctl_command()
        .env("FWCTL_NFT_REWRITE", "1")
        .args(["ct-filter", "on"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let [g0, g1] = generations(ns);
    assert!(g0.contains_key("Gv4-INPUT"), "{g0:?}");
    assert_eq!(g0, g1, "after {what}: written by difference vs whole");
}

/// Changes killed (SIGKILL) at moments spread over their run, written by difference: each
/// time `-S` shows the old ruleset or the new one, the next change goes in, and in the end
/// the generation in force equals a whole write of its ruleset.
#[test]
fn changes_killed_at_any_moment_leave_the_old_or_the_new_ruleset() {
    let ns = FwNs::new("fwt-kill").unwrap();
    let mut lines: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "-A INPUT -s 10.77.{}.{} -p tcp --dport {} -j DROP",
                i / 250,
                i % 250,
                3000 + i
            )
        })
        .collect();
    lines.push("-P INPUT DROP".to_string());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    ns.apply(&lines);
    // Kills spread from a change's start to half as long again as one takes here.
    let start = std::time::Instant::now();
    ns.fwctl_ok(&["-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
    ns.fwctl_ok(&["-D", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
    let span = start.elapsed().as_micros() as u64 * 3 / 4;
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
    let mut killed_at = Vec::new();
    let mut outcomes = (0, 0);
    for round in 0..24u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % span.max(1));
        killed_at.push(delay);
        let before = ns.fwctl_ok(&["-S"]);
        let port = (5000 + round).to_string();
        let args = [
            "-I", "INPUT", "2", "-p", "udp", "--dport", &port, "-j", "ACCEPT",
        ];
        let mut child = ns.fwctl_command().args(args).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let after = ns.fwctl_ok(&["-S"]);
        let inserted = format!("-A INPUT -p udp -m udp --dport {port} -j ACCEPT");
        let mut new: Vec<&str> = before.lines().collect();
        let at = new.iter().position(|x| x.starts_with("-A INPUT")).unwrap() + 1;
        new.insert(at, &inserted);
        let new = new.join("\n") + "\n";
        assert!(
            after == before || after == new,
            "round {round}, killed after {delay:?}: neither the old nor the new ruleset:\n{after}"
        );
        if after == before {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        // The next changes go in whatever the kill left.
        ns.fwctl_ok(&["-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
        ns.fwctl_ok(&["-D", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"]);
    }
    difference_equals_whole(&ns, &format!("changes killed after {killed_at:?}"));
    // Some kills came before the change was in force, some after.
    assert!(
        outcomes.0 > 0 && outcomes.1 > 0,
        "{outcomes:?} after {killed_at:?}"
    );
}

/// A change sends netfilter only the rules it changes (by handle, against a record of
/// what the generation holds: netfilter/incremental.rs). After each kind of change, the
/// generation written that way holds exactly what a whole write of the same ruleset holds
/// (FWCTL_NFT_REWRITE=1 writes the other generation whole), and the counts of rules the
/// change left alone carry over, while a new rule starts from zero even where it takes
/// the counter slot of a rule just deleted.
#[test]
fn a_change_written_by_difference_equals_a_whole_write() {
    let ns = FwNs::new("fwt-inc").unwrap();
    ns.apply(&[
        "-A INPUT -i lo -p udp --dport 7990 -j ACCEPT",
        "-A INPUT -i lo -p udp --dport 7991 -j ACCEPT",
        "-N SVC",
        "-A SVC -p tcp --dport 22 -j ACCEPT",
        "-A SVC -s 10.9.0.1,10.9.0.2 -p tcp --dport 80 -j ACCEPT",
        "-A SVC -j RETURN",
        "-A INPUT -j SVC",
        "-A INPUT -p tcp --dport 8080 -m hashlimit --hashlimit-above 5/sec --hashlimit-mode srcip --hashlimit-name web -j DROP",
        "-A INPUT -p udp --dport 53 -j RETURN",
        "-A INPUT -p tcp --dport 23 -m recent --set --name probe",
        "-P INPUT DROP",
    ]);
    let lo = |port, n| udp_between(&ns, &ns, "127.0.0.1", "127.0.0.1", port, n, 10);
    assert_eq!(lo(7990, 3), 3);
    assert_eq!(lo(7991, 2), 2);
    let check = |what: &str| difference_equals_whole(&ns, what);
    check("the first ruleset");
    for change in [
        "-I INPUT 3 -p tcp --dport 443 -j ACCEPT",
        "-D INPUT 2",
        "-A INPUT -i lo -p udp --dport 7992 -j ACCEPT",
        "-R SVC 1 -p tcp --dport 2222 -j ACCEPT",
        "-E SVC SERVICES",
        "-P INPUT ACCEPT",
        "-I SERVICES 1 -p tcp --dport 25 -j DROP",
        "-N EMPTY",
        "-X EMPTY",
        "-t nat -A POSTROUTING -s 10.9.0.0/24 -j MASQUERADE",
        "-F SERVICES",
        "-A INPUT -p tcp --dport 8081 -m hashlimit --hashlimit-above 9/sec --hashlimit-mode srcip --hashlimit-name web2 -j DROP",
        "-D INPUT -p tcp --dport 8080 -m hashlimit --hashlimit-above 5/sec --hashlimit-mode srcip --hashlimit-name web -j DROP",
    ] {
        let args: Vec<&str> = change.split_whitespace().collect();
        ns.fwctl_ok(&args);
        check(change);
    }
    // Rule 1 counted on through every change; the rule on 7992 took the slot of the one on
    // 7991 (deleted with its 2 packets) and starts from zero.
    let listing = ns.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(
        tests::listed_counters(&listing, "INPUT", 1).unwrap().0,
        3,
        "{listing}"
    );
    let last = listing.lines().filter(|l| l.contains("dpt:7992")).count();
    assert_eq!(last, 1, "{listing}");
    let line = listing.lines().find(|l| l.contains("dpt:7992")).unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{listing}");
    assert_eq!(lo(7992, 4), 4);
    let listing = ns.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    let line = listing.lines().find(|l| l.contains("dpt:7992")).unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("4"), "{listing}");
    assert_eq!(
        tests::listed_counters(&listing, "INPUT", 1).unwrap().0,
        3,
        "{listing}"
    );
    // Killed once the new rules are staged (and recorded), before anything is in force:
    // the state never vouched for that record, so the next change writes that generation
    // whole, and the ruleset in force stays the old one until then.
    let before = ns.fwctl_ok(&["-S"]);
    ns.fwctl_killed_at(
        "staged",
        &[
            "-I", "INPUT", "1", "-p", "tcp", "--dport", "99", "-j", "DROP",
        ],
    );
    assert_eq!(ns.fwctl_ok(&["-S"]), before);
    ns.fwctl_ok(&[
        "-I", "INPUT", "2", "-p", "tcp", "--dport", "98", "-j", "DROP",
    ]);
    check("a change after one killed while staging");
    assert_eq!(lo(7990, 1), 1);
    let listing = ns.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(
        tests::listed_counters(&listing, "INPUT", 1).unwrap().0,
        4,
        "{listing}"
    );
}

/// `nft ARGS` in `ns`: its output; the test fails if nft does.
fn nft_in(ns: &netlab::Netns, args: &[&str]) -> String {
    let out = ns.command("nft").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
