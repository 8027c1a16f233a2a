//! The conntrack destination filter against the kernel: XDP skips conntrack lookups only
//! where no entry can match, so a flow made before the filter existed (found by its dump)
//! and one made after (marked by the netfilter program `fw_ct_seen`, also through NAT) are
//! still ESTABLISHED at XDP, while packets of no flow are still NEW.
//! Run one at a time (`--test-threads=1`): they share the host's bpffs.

use std::{net::SocketAddr, net::UdpSocket, time::Duration};

use tests::{FwNs, Lab, CLIENT_V4, CLIENT_V6, HOST_IF, HOST_V4, HOST_V6};

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("IP address"), port)
}

fn filter_line(host: &FwNs) -> String {
    let status = host.fwctl_ok(&["status"]);
    status
        .lines()
        .find(|l| l.starts_with("conntrack filter at XDP:"))
        .unwrap_or_else(|| panic!("no filter line in status: {status}"))
        .to_string()
}

/// Sends one datagram from `from` to `to` and says whether `to` got it within a moment.
fn arrives(from: &UdpSocket, to: &UdpSocket, dest: SocketAddr) -> bool {
    from.send_to(b"flow", dest).expect("send");
    to.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    to.recv_from(&mut buf).is_ok()
}

const RULES: [&str; 3] = [
    "-P INPUT DROP",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p udp --dport 7000 -j ACCEPT",
];

#[test]
fn flows_older_and_younger_than_the_filter_stay_established_at_xdp() {
    let lab = Lab::new().unwrap();
    lab.host.fwctl_ok(&["ct-filter", "off"]);
    lab.host.apply(&RULES);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert!(
        filter_line(&lab.host).contains("not in use"),
        "{}",
        filter_line(&lab.host)
    );

    // A flow the host opens while the filter is off: only the dump can know it.
    let peer = lab.client.udp_socket(addr(CLIENT_V4, 5353)).unwrap();
    let old = lab.host.udp_socket(addr(HOST_V4, 40001)).unwrap();
    assert!(arrives(&old, &peer, addr(CLIENT_V4, 5353)));

    lab.host.fwctl_ok(&["ct-filter", "on"]);
    let line = filter_line(&lab.host);
    assert!(line.contains(": in use"), "{line}");

    let nft_before = lab.host.nft_packets("INPUT");
    let established = lab.host.packets("INPUT", 1);
    assert!(
        arrives(&peer, &old, addr(HOST_V4, 40001)),
        "older flow's reply dropped"
    );

    // A flow made after: marked by the netfilter program before conntrack confirmed it.
    let young = lab.host.udp_socket(addr(HOST_V4, 40002)).unwrap();
    assert!(arrives(&young, &peer, addr(CLIENT_V4, 5353)));
    assert!(
        arrives(&peer, &young, addr(HOST_V4, 40002)),
        "younger flow's reply dropped"
    );
    assert_eq!(lab.host.packets("INPUT", 1), established + 2);
    // XDP decided both (netfilter counts what XDP defers to it).
    assert_eq!(lab.host.nft_packets("INPUT"), nft_before);

    // No flow: NEW, dropped by the policy at XDP.
    let policy = lab.host.packets("INPUT", 0);
    let stranger = lab.host.udp_socket(addr(HOST_V4, 40003)).unwrap();
    assert!(!arrives(&peer, &stranger, addr(HOST_V4, 40003)));
    assert_eq!(lab.host.packets("INPUT", 0), policy + 1);

    // Turned off: the links go and XDP looks every packet up again; the setting stays
    // through later changes.
    lab.host.fwctl_ok(&["ct-filter", "off"]);
    lab.host
        .fwctl_ok(&["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]);
    let line = filter_line(&lab.host);
    assert!(
        line.contains("not in use") && line.contains("0 of 4 hooks"),
        "{line}"
    );
    assert!(arrives(&young, &peer, addr(CLIENT_V4, 5353)));
    assert!(arrives(&peer, &young, addr(HOST_V4, 40002)));
}

#[test]
fn a_flow_through_dnat_is_found_by_its_original_destination() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&RULES);
    // INPUT sees the datagram after DNAT, with its new port.
    lab.host.fwctl_ok(&[
        "-A", "INPUT", "-p", "udp", "--dport", "7001", "-j", "ACCEPT",
    ]);
    // The client's datagrams to port 7000 are redirected to the socket on 7001: the
    // program sees the packet after DNAT, yet must mark the entry's original destination
    // (7000), which is what the client's later datagrams are looked up by at XDP.
    lab.host.fwctl_ok(&[
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "udp",
        "--dport",
        "7000",
        "-j",
        "DNAT",
        "--to-destination",
        &format!("{HOST_V4}:7001"),
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert!(filter_line(&lab.host).contains(": in use"));

    let server = lab.host.udp_socket(addr(HOST_V4, 7001)).unwrap();
    let client = lab.client.udp_socket(addr(CLIENT_V4, 5454)).unwrap();
    assert!(arrives(&client, &server, addr(HOST_V4, 7000)));
    // The answer leaves from 7001 and is un-NATed to 7000 on the way out; conntrack has
    // now seen both directions.
    server
        .send_to(b"back", addr(CLIENT_V4, 5454))
        .expect("send");
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let (_, from) = client.recv_from(&mut buf).expect("the answer");
    assert_eq!(from, addr(HOST_V4, 7000));
    // So the client's next datagram to 7000 is ESTABLISHED.
    let established = lab.host.packets("INPUT", 1);
    assert!(arrives(&client, &server, addr(HOST_V4, 7000)));
    assert_eq!(lab.host.packets("INPUT", 1), established + 1);
}

#[test]
fn an_ipv6_flow_is_marked_and_found() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-6 -P INPUT DROP",
        "-6 -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-6 -A INPUT -p icmpv6 -j ACCEPT",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert!(filter_line(&lab.host).contains(": in use"));
    let peer = lab.client.udp_socket(addr(CLIENT_V6, 5353)).unwrap();
    let flow = lab.host.udp_socket(addr(HOST_V6, 40005)).unwrap();
    assert!(arrives(&flow, &peer, addr(CLIENT_V6, 5353)));
    let list = lab
        .host
        .fwctl_ok(&["-6", "-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    let established = tests::listed_counters(&list, "INPUT", 1).unwrap().0;
    assert!(
        arrives(&peer, &flow, addr(HOST_V6, 40005)),
        "the IPv6 reply was dropped"
    );
    let list = lab
        .host
        .fwctl_ok(&["-6", "-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(
        tests::listed_counters(&list, "INPUT", 1).unwrap().0,
        established + 1,
        "{list}"
    );
    let stranger = lab.host.udp_socket(addr(HOST_V6, 40006)).unwrap();
    assert!(!arrives(&peer, &stranger, addr(HOST_V6, 40006)));
}
