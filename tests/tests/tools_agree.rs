//! Claims that fwctl does as iptables or ipset does, checked against the tools themselves
//! (both installed by `cargo xtask setup`) rather than against text written down once:
//! listing and saving of the rate matches, the layout of `set list` and `set save`, and
//! what becomes of a fragmented datagram.

use tests::{twins::run_in, FwNs, Lab, CLIENT_V4, HOST_IF, HOST_V4};

/// Rules with the rate matches whose `-L` and `-S` text fwctl writes as iptables does.
const RATE_RULES: &[&str] = &[
    "-p tcp -m hashlimit --hashlimit-above 100/min --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name x2 --hashlimit-htable-max 100 --hashlimit-htable-expire 5000 -j DROP",
    "-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 9 --hashlimit-mode srcip --hashlimit-name x3 -j ACCEPT",
    "-m limit --limit 10/sec -j ACCEPT",
    "-m limit --limit 10/sec --limit-burst 7 -j ACCEPT",
    "-m limit --limit 3/hour -j ACCEPT",
    "-p tcp -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr -j ACCEPT",
    "-p tcp -m connlimit --connlimit-above 0 --connlimit-mask 24 -j REJECT",
    "-p tcp --syn -m connlimit --connlimit-above 2 -j DROP",
];

#[test]
fn rate_matches_list_and_save_as_iptables_does() {
    let ns = FwNs::new("fwq-rate").unwrap();
    for rule in RATE_RULES {
        let args: Vec<&str> = ["-A", "INPUT"]
            .into_iter()
            .chain(rule.split_whitespace())
            .collect();
        run_in(&ns, "iptables", &args);
        ns.fwctl_ok(&args);
    }
    for listing in [
        &["-S", "INPUT"][..],
        &["-L", "INPUT", "-n"],
        &["-L", "INPUT", "-n", "-v", "-x"],
    ] {
        let theirs = run_in(&ns, "iptables", listing);
        let ours = ns.fwctl_ok(listing);
        assert_eq!(
            ours, theirs,
            "{listing:?}:\n--- iptables\n{theirs}--- fwctl\n{ours}"
        );
    }
}

/// `ipset save`'s create line without the options fwctl does not keep (`bucketsize`,
/// `initval`: hash table internals of the kernel's set, which fwctl does not have), member
/// timeouts made coarse (the two tools read the clock a moment apart) and members sorted
/// (ipset writes them in its hash table's order, which says nothing about the set).
fn comparable(text: &str) -> String {
    let mut out = String::new();
    let mut members: Vec<String> = Vec::new();
    let mut in_members = false;
    for line in text.lines().chain([""]) {
        let member = line.starts_with("add ") || (in_members && !line.is_empty());
        in_members = (in_members || line == "Members:") && !line.is_empty();
        if !member {
            members.sort();
            for m in members.drain(..) {
                out.push_str(&m);
                out.push('\n');
            }
        }
        let mut words = line.split_whitespace().peekable();
        let mut kept = Vec::new();
        while let Some(w) = words.next() {
            match w {
                "bucketsize" | "initval" => {
                    words.next();
                }
                "timeout" if !line.starts_with("create ") && !line.starts_with("Header:") => {
                    let left: u32 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    kept.push(format!("timeout {}", if left == 0 { "0" } else { "LEFT" }));
                }
                w => kept.push(w.to_string()),
            }
        }
        if member {
            members.push(kept.join(" "));
        } else {
            out.push_str(&kept.join(" "));
            out.push('\n');
        }
    }
    out
}

#[test]
fn sets_list_and_save_as_ipset_does() {
    let ns = FwNs::new("fwq-ipset").unwrap();
    let commands: &[&[&str]] = &[
        &["create", "bl", "hash:net", "timeout", "300"],
        &["add", "bl", "10.0.0.0/24", "timeout", "300"],
        &["add", "bl", "192.168.1.1", "timeout", "0"],
        &["create", "six", "hash:ip", "family", "inet6"],
        &["add", "six", "2001:db8::1"],
        &["create", "svc", "hash:ip,port"],
        &["add", "svc", "10.0.0.1,tcp:22"],
        &["add", "svc", "10.0.0.2,udp:53"],
    ];
    for c in commands {
        run_in(&ns, "ipset", c);
        let mut args = vec!["set"];
        args.extend(*c);
        ns.fwctl_ok(&args);
    }
    let theirs = comparable(&run_in(&ns, "ipset", &["save"]));
    let ours = comparable(&ns.fwctl_ok(&["set", "save"]));
    assert_eq!(ours, theirs, "save:\n--- ipset\n{theirs}--- fwctl\n{ours}");
    for set in ["bl", "six", "svc"] {
        // Memory and references are the kernel's own bookkeeping, not the set's contents.
        let listed = |text: String| {
            comparable(
                &text
                    .lines()
                    .filter(|l| !l.starts_with("Size in memory:") && !l.starts_with("References:"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        };
        let theirs = listed(run_in(&ns, "ipset", &["list", set]));
        let ours = listed(ns.fwctl_ok(&["set", "list", set]));
        assert_eq!(
            ours, theirs,
            "list {set}:\n--- ipset\n{theirs}--- fwctl\n{ours}"
        );
    }
}

/// Fragmented UDP to an accepted port, with a stateless ruleset: iptables judges the
/// reassembled datagram in INPUT, since IPv4 reassembles before LOCAL_IN, and delivers it.
/// fwctl must do the same, with netfilter alone and with XDP attached (XDP leaves every
/// fragment to netfilter for that reason: had it judged each one, the others, without
/// ports, would fall to the DROP policy and the datagram would never reassemble).
#[test]
fn fragmented_udp_arrives_as_with_iptables() {
    const RULES: [&str; 2] = ["-P INPUT DROP", "-A INPUT -p udp --dport 7010 -j ACCEPT"];
    let exchange = |lab: &Lab| tests::udp_exchange(lab, CLIENT_V4, HOST_V4, 7010, 3, 3000);
    let with_iptables = {
        let lab = Lab::named("fwq-fragi").unwrap();
        for rule in RULES {
            let args: Vec<&str> = rule.split_whitespace().collect();
            run_in(&lab.host, "iptables", &args);
        }
        // The ruleset also refuses what it should: a datagram to another port.
        assert_eq!(
            tests::udp_exchange(&lab, CLIENT_V4, HOST_V4, 7011, 1, 3000),
            0,
            "iptables let a datagram to a closed port in"
        );
        exchange(&lab)
    };
    assert_eq!(
        with_iptables, 3,
        "iptables delivers the fragmented datagrams"
    );
    let lab = Lab::named("fwq-frag").unwrap();
    lab.host.apply(&RULES);
    assert_eq!(exchange(&lab), with_iptables, "fwctl, netfilter alone");
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(
        tests::udp_exchange(&lab, CLIENT_V4, HOST_V4, 7010, 3, 300),
        3,
        "unfragmented, XDP attached"
    );
    assert_eq!(exchange(&lab), with_iptables, "fwctl with XDP attached");
}
