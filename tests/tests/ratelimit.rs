//! Rate limits on real packets, in namespaces: a client floods datagrams at the host, whose
//! service may receive only what the bucket allows, with the rule judged at XDP and, with
//! XDP detached, by fwctl's nftables table. The rates are per hour, so the bucket does not
//! refill while a test runs and the expected counts are exact.

use tests::{udp_between, udp_exchange, FwNs, Lab, CLIENT_V4, HOST_IF, HOST_V4};

const PORT: u16 = 7911;

fn limit_rules() -> Vec<String> {
    vec![
        "-P INPUT DROP".into(),
        format!("-A INPUT -p udp --dport {PORT} -m limit --limit 1/hour --limit-burst 4 -j ACCEPT"),
    ]
}

fn apply(host: &FwNs, rules: &[String]) {
    let lines: Vec<&str> = rules.iter().map(String::as_str).collect();
    host.apply(&lines);
}

#[test]
fn limit_lets_its_burst_through_at_xdp_and_in_netfilter() {
    let lab = Lab::named("rl-lim").expect("lab");
    apply(&lab.host, &limit_rules());
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, PORT, 20, 32), 4);
    assert_eq!(lab.host.packets("INPUT", 1), 4);
    assert_eq!(lab.host.packets("INPUT", 0), 16);
    assert_eq!(lab.host.nft_packets("INPUT"), 0, "judged at XDP");

    // The netfilter path: a fresh ruleset (new rule, new bucket), XDP detached.
    lab.host.fwctl_ok(&["detach", HOST_IF]);
    lab.host.fwctl_ok(&["-F", "INPUT"]);
    apply(&lab.host, &limit_rules());
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, PORT, 20, 32), 4);
    assert_eq!(lab.host.packets("INPUT", 1), 4);
    assert_eq!(lab.host.nft_packets("INPUT"), 20, "judged by netfilter");
}

fn hashlimit_rules() -> Vec<String> {
    vec![
        "-P INPUT DROP".into(),
        format!(
            "-A INPUT -p udp --dport {PORT} -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name svc -j ACCEPT"
        ),
    ]
}

/// Each source has its own bucket, on both paths.
#[test]
fn hashlimit_gives_each_source_its_burst() {
    let lab = Lab::named("rl-hash").expect("lab");
    let second = "10.201.0.9";
    lab.client
        .ip(&["addr", "add", &format!("{second}/24"), "dev", "fwclient0"])
        .expect("second client address");
    lab.host
        .ip(&[
            "neigh",
            "replace",
            second,
            "lladdr",
            &tests::mac(&lab.client, "fwclient0").unwrap(),
            "dev",
            HOST_IF,
            "nud",
            "permanent",
        ])
        .expect("neighbour");
    for attached in [true, false] {
        lab.host.fwctl_ok(&["-F", "INPUT"]);
        apply(&lab.host, &hashlimit_rules());
        if attached {
            lab.host.fwctl_ok(&["attach", HOST_IF]);
        } else {
            lab.host.fwctl_ok(&["detach", HOST_IF]);
        }
        let first = udp_between(&lab.client, &lab.host, CLIENT_V4, HOST_V4, PORT, 10, 32);
        let other = udp_between(&lab.client, &lab.host, second, HOST_V4, PORT, 10, 32);
        assert_eq!((first, other), (3, 3), "attached: {attached}");
        assert_eq!(lab.host.packets("INPUT", 1), 6, "attached: {attached}");
        let judged_by_netfilter = if attached { 0 } else { 20 };
        assert_eq!(
            lab.host.nft_packets("INPUT"),
            judged_by_netfilter,
            "attached: {attached}"
        );
    }
}

/// Refill: under a steady flood, a `-m limit` rule accepts its burst plus the rate times the
/// flood's duration, within a token bucket's tolerance (here 10 % and 2 packets for the
/// edges of the measurement), on both paths.
#[test]
fn limit_refills_at_its_rate() {
    const RATE: f64 = 200.0;
    const BURST: f64 = 10.0;
    let lab = Lab::named("rl-rate").expect("lab");
    for attached in [false, true] {
        lab.host.fwctl_ok(&["-F", "INPUT"]);
        lab.host.apply(&[
            "-P INPUT DROP",
            &format!(
                "-A INPUT -p udp --dport {PORT} -m limit --limit {RATE}/sec --limit-burst {BURST} -j ACCEPT"
            ),
        ]);
        if attached {
            lab.host.fwctl_ok(&["attach", HOST_IF]);
        }
        let receiver = lab
            .host
            .udp_socket(format!("{HOST_V4}:{PORT}").parse().unwrap())
            .expect("bind");
        receiver
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        // Read while the flood runs: the socket's buffer holds only a few hundred.
        let reader = std::thread::spawn(move || {
            let mut got = 0u64;
            let mut buf = [0u8; 64];
            while receiver.recv_from(&mut buf).is_ok() {
                got += 1;
            }
            got
        });
        let sender = lab
            .client
            .udp_socket(format!("{CLIENT_V4}:0").parse().unwrap())
            .expect("bind");
        let to: std::net::SocketAddr = format!("{HOST_V4}:{PORT}").parse().unwrap();
        let counted_before = lab.host.nft_packets("INPUT");
        let start = std::time::Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(1500) {
            // About 10 times the rate: the bucket, not the sender, decides.
            for _ in 0..4 {
                sender.send_to(&[0x5a; 16], to).expect("send");
                sent += 1;
            }
            std::thread::sleep(std::time::Duration::from_micros(1500));
        }
        let seconds = start.elapsed().as_secs_f64();
        let got = reader.join().expect("reader");
        let expected = BURST + RATE * seconds;
        eprintln!(
            "attached {attached}: {got} of {sent} in {seconds:.2}s, bucket allows {expected:.0}"
        );
        assert!(
            (got as f64) <= expected * 1.1 + 2.0 && (got as f64) >= expected * 0.9 - 2.0,
            "attached {attached}: {got} of {sent} datagrams in {seconds:.2}s, expected {expected:.0}"
        );
        assert_eq!(lab.host.packets("INPUT", 1), got, "attached {attached}");
        let by_netfilter = lab.host.nft_packets("INPUT") - counted_before;
        assert_eq!(
            by_netfilter,
            if attached { 0 } else { sent },
            "attached {attached}"
        );
    }
}
