//! The netfilter side, end to end in namespaces each test creates and removes: NAT across
//! client, router and server, the nftables table as a safety net behind XDP (interfaces
//! without XDP, XDP detached, an interrupted change), and nothing left behind.

use netlab::Probe;
use tests::RouterLab;

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
