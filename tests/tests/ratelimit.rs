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

    // The netfilter path: a fresh ruleset (new rule, new bucket), XDP detached.
    lab.host.fwctl_ok(&["detach", HOST_IF]);
    lab.host.fwctl_ok(&["-F", "INPUT"]);
    apply(&lab.host, &limit_rules());
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, PORT, 20, 32), 4);
    assert_eq!(lab.host.packets("INPUT", 1), 4);
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
    }
}
