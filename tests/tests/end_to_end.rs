//! fwctl against the kernel, end to end: network namespaces joined by veth, the real fwctl
//! binary under `ip netns exec`, real TCP and UDP traffic. Each test builds its own lab and
//! tears it down on drop (fwctl down, then the namespaces), also when it fails.
//! Run one at a time (`--test-threads=1`): they share the host's bpffs.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use netlab::Probe;
use tests::{
    listed_counters, udp_exchange, FwNs, Lab, RouterLab, CLIENT_V4, CLIENT_V6, HOST_IF, HOST_V4,
    HOST_V6,
};

const SHORT: Duration = Duration::from_millis(700);

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("IP address"), port)
}

fn listing(lab: &Lab, family: &str) -> String {
    let mut args = vec!["-L", "-n", "-v", "-x", "--line-numbers"];
    if family == "6" {
        args.insert(0, "-6");
    }
    lab.host.fwctl_ok(&args)
}

#[test]
fn tcp_and_udp_are_accepted_and_dropped_with_exact_counters() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
        "-A INPUT -p udp --dport 5353 -j ACCEPT",
        "-A INPUT -p tcp --dport 8080 -j DROP",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    // Listeners on both ports: a failed connection is the firewall's doing.
    lab.host.tcp_echo(addr(HOST_V4, 22)).unwrap();
    lab.host.tcp_echo(addr(HOST_V4, 8080)).unwrap();

    assert_eq!(
        lab.client.tcp_connect(addr(HOST_V4, 22), SHORT).unwrap(),
        Probe::Echoed
    );
    assert_eq!(
        lab.client.tcp_connect(addr(HOST_V4, 8080), SHORT).unwrap(),
        Probe::TimedOut
    );

    // UDP: exactly counted. 7 datagrams of 100 bytes: 7 x (20 + 8 + 100) bytes at IP level.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5353, 7, 100), 7);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5354, 5, 100), 0);

    let list = listing(&lab, "4");
    assert_eq!(
        listed_counters(&list, "INPUT", 2).unwrap(),
        (7, 7 * 128),
        "{list}"
    );
    // The policy counted the five datagrams to 5354 and nothing else (ARP is not IP).
    assert_eq!(
        listed_counters(&list, "INPUT", 0).unwrap(),
        (5, 5 * 128),
        "{list}"
    );
    // At least the SYN, the ACK and the data segment of the SSH connection.
    let (ssh_packets, _) = listed_counters(&list, "INPUT", 1).unwrap();
    assert!(ssh_packets >= 3, "{list}");
    // Every SYN to 8080 died at the explicit DROP rule: one, plus retransmits.
    let (dropped_syns, dropped_bytes) = listed_counters(&list, "INPUT", 3).unwrap();
    assert!(
        dropped_syns >= 1 && dropped_bytes == dropped_syns * 60,
        "{list}"
    );
    assert_eq!(lab.host.nft_packets("INPUT"), 0, "judged at XDP");
    // -Z on one rule leaves the others.
    lab.host.fwctl_ok(&["-Z", "INPUT", "2"]);
    let list = listing(&lab, "4");
    assert_eq!(
        listed_counters(&list, "INPUT", 2).unwrap(),
        (0, 0),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "INPUT", 0).unwrap(),
        (5, 5 * 128),
        "{list}"
    );
}

#[test]
fn ipv6_has_its_own_ruleset() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-6 -P INPUT DROP",
        "-6 -A INPUT -p icmpv6 -j ACCEPT",
        "-6 -A INPUT -p udp --dport 5353 -j ACCEPT",
        "-P INPUT DROP",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V6, HOST_V6, 5353, 4, 50), 4);
    assert_eq!(udp_exchange(&lab, CLIENT_V6, HOST_V6, 5354, 3, 50), 0);
    let list = listing(&lab, "6");
    // IPv6 length counts the 40-byte header: 40 + 8 + 50.
    assert_eq!(
        listed_counters(&list, "INPUT", 2).unwrap(),
        (4, 4 * 98),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "INPUT", 0).unwrap(),
        (3, 3 * 98),
        "{list}"
    );
    // IPv4 is dropped by its own policy, and the IPv6 counters did not see it.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5353, 2, 10), 0);
    let list4 = listing(&lab, "4");
    assert_eq!(
        listed_counters(&list4, "INPUT", 0).unwrap(),
        (2, 2 * 38),
        "{list4}"
    );
}

#[test]
fn native_attachment_outlives_fwctl_and_down_removes_everything() {
    let lab = Lab::new().unwrap();
    lab.host
        .apply(&["-P INPUT DROP", "-A INPUT -p udp --dport 7000 -j ACCEPT"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(
        lab.xdp_mode().unwrap().as_deref(),
        Some("xdp"),
        "native mode"
    );

    // No fwctl process is left; the pinned link keeps the program attached.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 3, 10), 3);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 3, 10), 0);
    let status = lab.host.fwctl_ok(&["status"]);
    assert!(
        status.contains("xdp native") && status.contains("attached"),
        "{status}"
    );
    let pin_dir = status
        .lines()
        .find_map(|l| l.split("pinned in ").nth(1))
        .expect("pin directory in status")
        .to_string();
    assert!(Path::new(&pin_dir).join("fw_ingress").exists());

    lab.host.fwctl_ok(&["down"]);
    assert_eq!(lab.xdp_mode().unwrap(), None, "detached");
    assert!(!Path::new(&pin_dir).exists(), "{pin_dir} removed");
    // With fwctl gone the host is open again.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 2, 10), 2);
    let status = lab.host.fwctl_ok(&["status"]);
    assert!(status.contains("not installed"), "{status}");
}

#[test]
fn generic_mode_and_detach() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&["-A INPUT -p udp --dport 7002 -j DROP"]);
    lab.host.fwctl_ok(&["attach", HOST_IF, "--mode", "generic"]);
    assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some("xdpgeneric"));
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7002, 2, 10), 0);
    let again = lab.host.fwctl(&["attach", HOST_IF]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already attached"));
    lab.host.fwctl_ok(&["detach", HOST_IF]);
    assert_eq!(lab.xdp_mode().unwrap(), None);
    // Without XDP the netfilter table judges: the rule still drops, and counts.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7002, 2, 10), 0);
    let list = lab
        .host
        .fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(listed_counters(&list, "INPUT", 1).unwrap().0, 4, "{list}");
}

#[test]
fn rules_change_under_traffic_without_reattaching() {
    let lab = Lab::new().unwrap();
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    // Each ruleset with a rule is judged at XDP: netfilter counts none of the datagrams.
    // An empty one leaves XDP idle: the datagrams pass unmarked and netfilter counts them
    // (and whatever else arrives meanwhile).
    let through = |idle: bool| {
        let before = lab.host.nft_packets("INPUT");
        let got = udp_exchange(&lab, CLIENT_V4, HOST_V4, 7003, 2, 10);
        let counted = lab.host.nft_packets("INPUT") - before;
        if idle {
            assert!(counted >= 2, "idle XDP: netfilter counted {counted}");
        } else {
            assert_eq!(counted, 0, "judged at XDP");
        }
        got
    };
    assert_eq!(through(true), 2);
    lab.host.apply(&["-I INPUT -p udp --dport 7003 -j DROP"]);
    assert_eq!(through(false), 0);
    lab.host.apply(&["-D INPUT 1"]);
    assert_eq!(through(true), 2);
    lab.host
        .apply(&["-A INPUT -s 10.201.0.0/24 -i fwhost+ -j DROP"]);
    assert_eq!(through(false), 0);
    lab.host.apply(&["-F"]);
    assert_eq!(through(true), 2);
}

#[test]
fn each_namespace_has_its_own_firewall() {
    let a = FwNs::new("fwt-a").unwrap();
    let b = FwNs::new("fwt-b").unwrap();
    a.apply(&["-A INPUT -p tcp --dport 1 -j ACCEPT"]);
    b.apply(&["-P INPUT DROP"]);
    assert_eq!(
        a.fwctl_ok(&["-S", "INPUT"]),
        "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 1 -j ACCEPT\n"
    );
    assert_eq!(b.fwctl_ok(&["-S", "INPUT"]), "-P INPUT DROP\n");
}

/// The same commands in iptables (nf_tables backend, the oracle) and in fwctl, in twin
/// namespaces: the listings must be the same text.
#[test]
fn listings_match_iptables() {
    let fw = FwNs::new("fwt-fw").unwrap();
    let ipt = netlab::Netns::new("fwt-ipt").unwrap();
    let commands = [
        "-P INPUT DROP",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
        "-I INPUT 2 -p tcp --dport 587 -j ACCEPT",
        "-A INPUT -s 10.1.2.3/24 -d 10.9.9.9 -p udp --sport 53 --dport 1000:2000 -j DROP",
        "-A INPUT -i tun+ -p icmp -j ACCEPT",
        "-A INPUT -p tcp --sport 1024: -j DROP",
        "-A INPUT -p 47 -j DROP",
        "-A INPUT -s 192.168.0.0/255.255.0.0 -j DROP",
        "-N MAIL",
        "-N zfirst",
        "-A INPUT ! -i eth0 ! -s 10.0.0.0/8 ! -d 10.1.1.1 ! -p udp -j ACCEPT",
        "-A INPUT -p tcp ! --dport 22 ! --sport 1:1023 -j DROP",
        "-A INPUT -p tcp -m multiport --dports 25,587,110:143 -j MAIL",
        "-A INPUT -p udp -m multiport ! --sports 53,123 -j DROP",
        "-A INPUT -p tcp -m multiport --ports 80,443 -j ACCEPT",
        "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
        "-A INPUT -p icmp --icmp-type 3/4 -j ACCEPT",
        "-A INPUT -p icmp ! --icmp-type 0 -j DROP",
        "-A INPUT -p icmp --icmp-type any -j ACCEPT",
        "-A INPUT -p tcp --syn -j DROP",
        "-A INPUT -p tcp ! --syn -j ACCEPT",
        "-A INPUT -p tcp --dport 25 --tcp-flags SYN,ACK SYN -j DROP",
        "-A INPUT -p tcp --tcp-flags ALL NONE -j DROP",
        "-A INPUT -m comment --comment hello -j ACCEPT",
        "-A INPUT -p tcp --dport 22 -m comment --comment ssh -j ACCEPT",
        "-A MAIL -s 1.2.3.4 -j RETURN",
        "-A MAIL -j ACCEPT",
        "-A zfirst -j DROP",
        "-A INPUT -s 1.1.1.1,2.2.2.0/24 -j DROP",
        "-P FORWARD DROP",
        "-A FORWARD -i eth1 ! -o eth0 -p tcp --dport 443 -j ACCEPT",
        "-A FORWARD -o tun+ -j MAIL",
        "-A OUTPUT -o lo -j ACCEPT",
        "-A INPUT -p udp --dport 9 -j REJECT",
        "-A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset",
        "-A INPUT -p tcp --dport 22 -j LOG --log-prefix ssh:",
        "-A INPUT -j LOG",
        "-A INPUT -j LOG --log-level 6 --log-prefix x",
        "-A INPUT -j LOG --log-level debug",
        "-A FORWARD -j REJECT --reject-with icmp-admin-prohibited",
        "-A MAIL -p icmp -j REJECT --reject-with icmp-proto-unreachable",
        "-t nat -A POSTROUTING -s 10.8.0.0/24 -o eth0 -j MASQUERADE",
        "-t nat -A POSTROUTING -p udp -j SNAT --to-source 1.2.3.4",
        "-t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
        "-t nat -N FWD",
        "-t nat -A PREROUTING -j FWD",
        "-t nat -A FWD -d 10.0.0.9 -p tcp --dport 81 -j DNAT --to-destination 10.0.0.3",
        "-t nat -A OUTPUT -p tcp --dport 25 -j DNAT --to-destination 10.0.0.4:2525",
        "-t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080",
        "-t nat -A PREROUTING -p tcp --dport 81 -j REDIRECT",
        "-t nat -A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 5300-5310",
        "-t nat -A POSTROUTING -p tcp -o eth1 -j MASQUERADE --to-ports 1024-2000",
        "-t nat -A POSTROUTING -p udp -j SNAT --to-source 1.2.3.5:1024-2000",
        "-t nat -A PREROUTING -p tcp --dport 82 -j DNAT --to-destination 10.0.0.2:80-90",
        "-t nat -A POSTROUTING -o eth2 -j MASQUERADE --random-fully",
        "-t nat -A POSTROUTING -p tcp -o eth3 -j MASQUERADE --to-ports 2000-3000 --random",
        "-t nat -A POSTROUTING -o eth4 -j SNAT --to-source 1.2.3.6 --persistent --random-fully --random",
        "-t nat -A PREROUTING -p tcp --dport 83 -j DNAT --to-destination 10.0.0.5 --random --persistent",
        "-t nat -A PREROUTING -p tcp --dport 84 -j REDIRECT --to-ports 8084 --random",
    ];
    let v6 = [
        "-P INPUT DROP",
        "-A INPUT -s 2001:db8::/32 -p tcp --dport 80 -j DROP",
        "-A INPUT -d fd00::1 -p icmpv6 -j ACCEPT",
        "-A INPUT -p icmpv6 --icmpv6-type echo-request -j ACCEPT",
        "-A INPUT -p ipv6-icmp --icmpv6-type 1/3 -j ACCEPT",
        "-A INPUT -p icmpv6 ! --icmpv6-type 135 -j DROP",
        "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination [2001:db8::2]:8080",
        "-t nat -A PREROUTING -p tcp --dport 81 -j REDIRECT --to-ports 8081",
        "-t nat -A POSTROUTING -p tcp -j SNAT --to-source [2001:db8::1]:1000-2000",
        "-t nat -A POSTROUTING -o eth0 -j MASQUERADE",
        "-t nat -A POSTROUTING -o eth1 -j MASQUERADE --random-fully",
        "-A INPUT -p udp --dport 9 -j REJECT",
        "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited",
        "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset",
    ];
    let run_ipt = |tool: &str, args: &[&str]| {
        let out = ipt.command(tool).args(args).output().expect("iptables");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for c in commands {
        let args: Vec<&str> = c.split_whitespace().collect();
        run_ipt("iptables", &args);
        fw.fwctl_ok(&args);
    }
    for c in v6 {
        let args: Vec<&str> = c.split_whitespace().collect();
        run_ipt("ip6tables", &args);
        fw.fwctl_ok(&[&["-6"], args.as_slice()].concat());
    }
    for list in [
        vec!["-L", "-n", "-v", "--line-numbers"],
        vec!["-L", "-n"],
        vec!["-L", "INPUT", "-n", "-v", "-x"],
        vec!["-L", "-v"],
        vec!["-L"],
        vec!["-S"],
        vec!["-S", "INPUT"],
        vec!["-t", "nat", "-L", "-n", "-v", "--line-numbers"],
        vec!["-t", "nat", "-L"],
        vec!["-t", "nat", "-S"],
    ] {
        assert_eq!(
            fw.fwctl_ok(&list),
            run_ipt("iptables", &list),
            "fwctl {list:?}"
        );
        let list6 = [&["-6"], list.as_slice()].concat();
        assert_eq!(
            fw.fwctl_ok(&list6),
            run_ipt("ip6tables", &list),
            "fwctl {list6:?}"
        );
    }
    for list in [
        vec!["-S", "MAIL"],
        vec!["-L", "MAIL", "-v", "-n"],
        vec!["-L", "INPUT", "2", "-n"],
        vec!["-L", "INPUT", "3", "-n", "-v", "--line-numbers"],
        vec!["-L", "INPUT", "99", "-n"],
        vec!["-S", "INPUT", "2"],
        vec!["-S", "FORWARD", "1"],
    ] {
        assert_eq!(
            fw.fwctl_ok(&list),
            run_ipt("iptables", &list),
            "fwctl {list:?}"
        );
    }
}

#[test]
fn errors_are_one_line_with_iptables_exit_codes() {
    let ns = FwNs::new("fwt-err").unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "-A", "INPUT", "-p", "tcp", "--dport", "99999", "-j", "ACCEPT",
            ],
            2,
            "invalid port/service `99999' specified",
        ),
        (&["-D", "INPUT", "3"], 1, "Index of deletion too big"),
        (
            &["-C", "INPUT", "-p", "tcp", "-j", "DROP"],
            1,
            "Bad rule (does a matching rule exist in that chain?)",
        ),
        (
            &["-t", "nat", "-P", "PREROUTING", "DROP"],
            1,
            "the nat table is not intended for filtering",
        ),
        (&["detach", "nosuchif0"], 1, "nosuchif0 is not attached"),
        (&["attach", "nosuchif0"], 1, "no interface named nosuchif0"),
    ];
    for (args, status, message) in cases {
        let out = ns.fwctl(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*status), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("fwctl: ") && stderr.contains(message),
            "{args:?}: {stderr}"
        );
    }
    // Nothing was applied by the failures.
    assert_eq!(ns.fwctl_ok(&["-S", "INPUT"]), "-P INPUT ACCEPT\n");

    // Not root: one line, before anything is touched.
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tests::fwctl_bin())
        .args(["-L"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&as_nobody.stderr);
    assert_eq!(as_nobody.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");

    // Root without the capabilities BPF needs: one line, and nothing installed.
    let no_caps = ns
        .command("setpriv")
        .args([
            "--bounding-set=-bpf,-sys_admin,-perfmon,-net_admin",
            "--inh-caps=-all",
        ])
        .arg(tests::fwctl_bin())
        .args(["-A", "INPUT", "-j", "DROP"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&no_caps.stderr);
    assert!(!no_caps.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("fwctl: "), "{stderr}");
    assert_eq!(ns.fwctl_ok(&["-S", "INPUT"]), "-P INPUT ACCEPT\n");
}

#[test]
fn aya_log_lines_reach_fwctl_log() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&["-A INPUT -p udp --dport 7004 -j DROP"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let mut log = lab
        .host
        .fwctl_command()
        .args(["log", "--verdicts", "--duration", "3"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fwctl log");
    // Read what it writes as it comes; send until it reports a drop (it switches verdict
    // logging on a moment after it starts, and says nothing when it has).
    let stderr = log.stderr.take().expect("piped stderr");
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let text = text.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut text = text.lock().expect("log text");
                text.push_str(&line);
                text.push('\n');
            }
        })
    };
    let reported = || {
        text.lock()
            .expect("log text")
            .contains("DROP by rule 1: IPv4 proto 17 dport 7004")
    };
    tests::wait_for(
        Duration::from_millis(2500),
        || {
            udp_exchange(&lab, CLIENT_V4, HOST_V4, 7004, 1, 10);
            reported()
        },
        || format!("no drop reported:\n{}", text.lock().expect("log text")),
    );
    log.wait().expect("fwctl log");
    reader.join().expect("stderr reader");
}

/// The rule engine on real traffic: a user chain with multiport and RETURN, a negated
/// source, per-chain counters as `-L` shows them.
#[test]
fn user_chains_and_negation_on_real_traffic() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-P INPUT DROP",
        "-N SVC",
        "-A SVC -p udp -m multiport --dports 5000,5001 -j ACCEPT",
        "-A SVC -j RETURN",
        "-A INPUT ! -s 10.201.0.0/24 -j DROP",
        "-A INPUT -j SVC",
        "-A INPUT -p udp --dport 5003 -j ACCEPT",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5001, 3, 20), 3);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5002, 2, 20), 0);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5003, 4, 20), 4);
    let list = lab
        .host
        .fwctl_ok(&["-L", "-n", "-v", "-x", "--line-numbers"]);
    // Every datagram entered SVC (rule 2 of INPUT); 3 were accepted there, 6 returned.
    assert_eq!(
        listed_counters(&list, "INPUT", 1).unwrap(),
        (0, 0),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "INPUT", 2).unwrap(),
        (9, 9 * 48),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "SVC", 1).unwrap(),
        (3, 3 * 48),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "SVC", 2).unwrap(),
        (6, 6 * 48),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "INPUT", 3).unwrap(),
        (4, 4 * 48),
        "{list}"
    );
    assert_eq!(
        listed_counters(&list, "INPUT", 0).unwrap(),
        (2, 2 * 48),
        "{list}"
    );
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn fwctl_stdin(ns: &FwNs, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = ns
        .fwctl_command()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fwctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// iptables-save output loads into fwctl unchanged, and fwctl save writes it back the
/// same (the oracle is real iptables-save in a twin namespace); a bad line changes nothing.
#[test]
fn save_and_restore_match_iptables() {
    let fw = FwNs::new("fwt-sfw").unwrap();
    let ipt = netlab::Netns::new("fwt-sipt").unwrap();
    let run = |tool: &str, args: &[&str]| {
        let out = ipt.command(tool).args(args).output().expect("iptables");
        assert!(out.status.success(), "{tool} {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for c in [
        "-P INPUT DROP",
        "-N MAIL",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT ! -s 10.0.0.0/8 -p tcp -m multiport --dports 25,587 -j MAIL",
        "-A INPUT -p tcp --syn --dport 22 -m comment --comment \"ssh in\" -j ACCEPT",
        "-A INPUT -p icmp --icmp-type 3/4 -j ACCEPT",
        "-A MAIL -s 1.2.3.4 -j RETURN",
        "-A MAIL -j ACCEPT",
    ] {
        // The comment needs its quotes kept as one argument.
        let args: Vec<String> = if c.contains('"') {
            let (head, comment) = c.split_once('"').unwrap();
            let (comment, tail) = comment.split_once('"').unwrap();
            head.split_whitespace()
                .map(String::from)
                .chain([comment.to_string()])
                .chain(tail.split_whitespace().map(String::from))
                .collect()
        } else {
            c.split_whitespace().map(String::from).collect()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("iptables", &args);
    }
    run(
        "ip6tables",
        &[
            "-A",
            "INPUT",
            "-p",
            "icmpv6",
            "--icmpv6-type",
            "135",
            "-j",
            "ACCEPT",
        ],
    );
    let saved = run("iptables-save", &[]);
    let saved6 = run("ip6tables-save", &[]);

    let out = fwctl_stdin(&fw, &["restore"], &saved);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fwctl_stdin(&fw, &["restore", "-6"], &saved6);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        without_comments(&fw.fwctl_ok(&["save"])),
        without_comments(&saved)
    );
    assert_eq!(
        without_comments(&fw.fwctl_ok(&["save", "-6"])),
        without_comments(&saved6)
    );
    assert_eq!(fw.fwctl_ok(&["-S"]), run("iptables", &["-S"]));

    // Round trip through fwctl alone.
    let ours = fw.fwctl_ok(&["save"]);
    let out = fwctl_stdin(&fw, &["restore"], &ours);
    assert!(out.status.success());
    assert_eq!(
        without_comments(&fw.fwctl_ok(&["save"])),
        without_comments(&ours)
    );

    // A bad line at the end: nothing applied, the error names the line.
    let bad = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -p tcp --dport 70000 -j DROP\nCOMMIT\n";
    let out = fwctl_stdin(&fw, &["restore"], bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "fwctl: line 4: invalid port/service `70000' specified"
    );
    assert_eq!(
        without_comments(&fw.fwctl_ok(&["save"])),
        without_comments(&ours)
    );

    // --test changes nothing either.
    let other = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    assert!(fwctl_stdin(&fw, &["restore", "--test"], other)
        .status
        .success());
    assert_eq!(
        without_comments(&fw.fwctl_ok(&["save"])),
        without_comments(&ours)
    );
}

/// Counters survive `save -c` / `restore -c`.
#[test]
fn restore_with_counters() {
    let lab = Lab::new().unwrap();
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[7:700] -A INPUT -p udp -m udp --dport 7100 -j ACCEPT\nCOMMIT\n";
    let out = fwctl_stdin(&lab.host, &["restore", "-c"], text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7100, 2, 10), 2);
    let saved = lab.host.fwctl_ok(&["save", "-c"]);
    assert!(
        saved.contains("[9:776] -A INPUT -p udp -m udp --dport 7100 -j ACCEPT"),
        "{saved}"
    );
}

/// Two fwctl processes racing 50 appends each: the lock serialises them, no change is lost
/// and the kernel holds what the state says.
#[test]
fn concurrent_fwctl_runs_lose_nothing() {
    let ns = FwNs::new("fwt-race").unwrap();
    let racer = |base: u16| {
        let name = ns.name().to_string();
        let bin = tests::fwctl_bin();
        std::thread::spawn(move || {
            for i in 0..50 {
                let port = (base + i).to_string();
                let out = Command::new("ip")
                    .args(["netns", "exec", &name])
                    .arg(&bin)
                    .args(["-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "ACCEPT"])
                    .output()
                    .expect("fwctl");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
    };
    let (a, b) = (racer(1000), racer(2000));
    a.join().unwrap();
    b.join().unwrap();
    let rules = ns.fwctl_ok(&["-S", "INPUT"]);
    let mut ports: Vec<u16> = rules
        .lines()
        .filter_map(|l| l.split("--dport ").nth(1))
        .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    ports.sort();
    let want: Vec<u16> = (1000..1050).chain(2000..2050).collect();
    assert_eq!(ports, want);
    // Each side's rules kept their relative order.
    let order: Vec<u16> = rules
        .lines()
        .filter_map(|l| l.split("--dport ").nth(1))
        .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
        .filter(|p| *p < 2000)
        .collect();
    assert_eq!(order, (1000..1050).collect::<Vec<_>>());
}

#[test]
fn replace_a_rule() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-A INPUT -p udp --dport 7200 -j DROP",
        "-A INPUT -p udp --dport 7201 -j DROP",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7200, 1, 10), 0);
    lab.host
        .apply(&["-R INPUT 1 -p udp --dport 7200 -j ACCEPT"]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7200, 1, 10), 1);
    assert_eq!(
        lab.host.fwctl_ok(&["-S", "INPUT"]),
        "-P INPUT ACCEPT\n-A INPUT -p udp -m udp --dport 7200 -j ACCEPT\n-A INPUT -p udp -m udp --dport 7201 -j DROP\n"
    );
    let out = lab.host.fwctl(&["-R", "INPUT", "3", "-j", "DROP"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Index of replacement too big"));
}

/// A change that would drop the caller's SSH session is refused, naming the rule; a
/// ruleset that keeps it open goes in; FWCTL_FORCE overrides.
#[test]
fn ssh_lockout_guard() {
    let lab = Lab::new().unwrap();
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let session = format!("{CLIENT_V4} 50022 {HOST_V4} 22");
    let as_ssh = |args: &[&str], force: bool| {
        let mut cmd = lab.host.fwctl_command();
        cmd.args(args).env("SSH_CONNECTION", &session);
        if force {
            cmd.env("FWCTL_FORCE", "1");
        }
        cmd.output().expect("fwctl")
    };
    let out = as_ssh(&["-P", "INPUT", "DROP"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the INPUT policy DROP would drop your SSH session 10.201.0.1 port 50022 -> 10.201.0.2 port 22 on fwhost0"),
        "{stderr}"
    );
    assert_eq!(lab.host.fwctl_ok(&["-S", "INPUT"]), "-P INPUT ACCEPT\n");
    let out = as_ssh(&["-A", "INPUT", "-s", "10.201.0.0/24", "-j", "DROP"], false);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("rule 1 of INPUT (-A INPUT -s 10.201.0.0/24 -j DROP)"));
    assert!(as_ssh(
        &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
        false
    )
    .status
    .success());
    assert!(as_ssh(&["-P", "INPUT", "DROP"], false).status.success());
    // Forced: the operator asked for it.
    assert!(as_ssh(&["-D", "INPUT", "1"], true).status.success());
    assert_eq!(lab.host.fwctl_ok(&["-S", "INPUT"]), "-P INPUT DROP\n");
}

/// `apply --confirm`: unconfirmed, the previous ruleset comes back by itself (and the
/// traffic it allowed); confirmed, the new one stays.
#[test]
fn apply_rolls_back_unless_confirmed() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&["-A INPUT -p udp --dport 7301 -j DROP"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let before = lab.host.fwctl_ok(&["-S"]);
    let file = std::env::temp_dir().join(format!("fwt-apply-{}", std::process::id()));
    std::fs::write(
        &file,
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 7300 -j DROP\nCOMMIT\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let diff = lab.host.fwctl_ok(&["apply", path, "--dry-run", "--diff"]);
    assert_eq!(diff, format!("- -A INPUT -p udp -m udp --dport 7301 -j DROP\n+ -A INPUT -p udp -m udp --dport 7300 -j DROP\n{path}: checked and compiled; nothing applied\n"));
    assert_eq!(lab.host.fwctl_ok(&["-S"]), before);

    // Unconfirmed: `apply` waits, then reports the rollback.
    let out = lab.host.fwctl(&["apply", path, "--confirm", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("not confirmed within 2 s: the previous ruleset is back"));
    assert_eq!(lab.host.fwctl_ok(&["-S"]), before);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7300, 2, 10), 2);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7301, 2, 10), 0);

    // Confirmed from another process while `apply` counts down.
    let waiting = lab
        .host
        .fwctl_command()
        .args(["apply", path, "--confirm", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tests::wait_for(
        Duration::from_secs(2),
        || lab.host.fwctl_ok(&["-S"]) != before,
        || "apply --confirm never put the new rules in force".into(),
    );
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7300, 1, 10), 0);
    lab.host.fwctl_ok(&["confirm"]);
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Past the 3 s the confirmation had: that nothing happens cannot be waited for.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7300, 2, 10), 0);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7301, 2, 10), 2);
    let out = lab.host.fwctl(&["confirm"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to confirm"));
    std::fs::remove_file(&file).unwrap();
}

/// The path the systemd unit runs at boot, without systemd: rules restored from the
/// config directory and XDP attached where fwctl.conf says; the unit installs with the
/// binary's path in it.
#[test]
fn boot_restores_rules_and_attaches() {
    let lab = Lab::new().unwrap();
    let dir = std::env::temp_dir().join(format!("fwt-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rules.v4"),
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 7400 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules.v6"),
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 7401 -j DROP\nCOMMIT\n",
    )
    .unwrap();
    std::fs::write(dir.join("fwctl.conf"), format!("# lab\nattach {HOST_IF}\n")).unwrap();
    let out = lab
        .host
        .fwctl_ok(&["boot", "--config-dir", dir.to_str().unwrap()]);
    assert!(out.contains("attached to fwhost0 (native)"), "{out}");
    assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some("xdp"));
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7400, 2, 10), 2);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7402, 2, 10), 0);
    assert_eq!(udp_exchange(&lab, CLIENT_V6, HOST_V6, 7401, 2, 10), 0);
    // Booting again changes nothing; a broken file is refused whole.
    assert!(lab
        .host
        .fwctl_ok(&["boot", "--config-dir", dir.to_str().unwrap()])
        .contains("already attached"));
    std::fs::write(
        dir.join("rules.v4"),
        "*filter\n-A INPUT -j ACCEPT\n-A INPUT -p tcp --dport x -j DROP\nCOMMIT\n",
    )
    .unwrap();
    let bad = lab
        .host
        .fwctl(&["boot", "--config-dir", dir.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("rules.v4: line 3: invalid port/service `x' specified"));
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7402, 1, 10), 0);

    let root = dir.join("root");
    lab.host
        .fwctl_ok(&["install-service", "--root", root.to_str().unwrap()]);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/fwctl.service")).unwrap();
    let exec = format!("ExecStart={} boot", tests::fwctl_bin().display());
    assert!(
        unit.contains(&exec) && unit.contains("Before=network-pre.target"),
        "{unit}"
    );
    let exporter =
        std::fs::read_to_string(root.join("etc/systemd/system/fwctl-exporter.service")).unwrap();
    let exec = format!(
        "ExecStart={} exporter --listen 127.0.0.1:9469",
        tests::fwctl_bin().display()
    );
    assert!(exporter.contains(&exec), "{exporter}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-o json` carries what the text listings carry: the counters equal `-L -v -x`'s.
#[test]
fn json_output() {
    let lab = Lab::new().unwrap();
    lab.host.apply(&[
        "-N SVC",
        "-A SVC -p udp -j ACCEPT",
        "-A INPUT -j SVC",
        "-P INPUT DROP",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7500, 3, 10), 3);
    let listing: serde_json::Value =
        serde_json::from_str(&lab.host.fwctl_ok(&["-L", "-o", "json"])).unwrap();
    let text = lab
        .host
        .fwctl_ok(&["-L", "-n", "-v", "-x", "--line-numbers"]);
    let chain = |name: &str| {
        listing["chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let svc = chain("SVC");
    assert_eq!(svc["references"], 1);
    assert_eq!(svc["rules"][0]["rule"], "-p udp -j ACCEPT");
    let (p, b) = listed_counters(&text, "SVC", 1).unwrap();
    assert_eq!(
        (
            svc["rules"][0]["packets"].as_u64(),
            svc["rules"][0]["bytes"].as_u64()
        ),
        (Some(p), Some(b))
    );
    assert_eq!(p, 3);
    let input = chain("INPUT");
    assert_eq!(input["policy"], "DROP");
    assert_eq!(input["rules"][0]["target"], "SVC");
    let status: serde_json::Value =
        serde_json::from_str(&lab.host.fwctl_ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(status["interfaces"][0]["name"], HOST_IF);
    assert_eq!(status["interfaces"][0]["attached"], true);
    assert_eq!(status["rulesets"][0]["input_policy"], "DROP");
    assert!(
        status["decided_without_rule"]["malformed"].is_u64(),
        "{status}"
    );
    let text = lab.host.fwctl_ok(&["status", "-v"]);
    assert!(
        text.contains("decided without a rule") && text.contains("malformed"),
        "{text}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&lab.host.fwctl_ok(&["save", "-o", "json", "-c"])).unwrap();
    assert_eq!(saved["tables"][0]["chains"][3]["rules"][0]["packets"], 3);
}

/// On a router, forwarded packets are judged by FORWARD, not INPUT: the program asks the
/// kernel's FIB whether a packet will be forwarded.
#[test]
fn forward_chain_on_a_router() {
    let lab = RouterLab::new("fwr", 202).unwrap();
    lab.router.apply(&[
        "-P INPUT DROP",
        "-A FORWARD -p udp --dport 7600 -j DROP",
        "-A FORWARD -i fwrr0 -p udp --dport 7601 -j ACCEPT",
    ]);
    lab.router.fwctl_ok(&["attach", "fwrr0"]);
    // INPUT's DROP policy does not touch forwarded traffic; FORWARD's rules do.
    assert_eq!(lab.send(7601, 3).unwrap(), 3);
    assert_eq!(lab.send(7602, 2).unwrap(), 2);
    assert_eq!(lab.send(7600, 4).unwrap(), 0);
    let list = lab
        .router
        .fwctl_ok(&["-L", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(listed_counters(&list, "FORWARD", 1).unwrap().0, 4, "{list}");
    assert_eq!(listed_counters(&list, "FORWARD", 2).unwrap().0, 3, "{list}");
    assert_eq!(listed_counters(&list, "FORWARD", 0).unwrap().0, 2, "{list}");
    assert_eq!(lab.router.nft_packets("FORWARD"), 0, "judged at XDP");
    // Packets for the router itself still meet INPUT.
    let (input_policy, _) = listed_counters(&list, "INPUT", 0).unwrap();
    let rx = lab.router.udp_socket(addr("10.202.1.1", 7603)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let tx = lab.client.udp_socket(addr("10.202.1.2", 0)).unwrap();
    tx.send_to(&[0u8; 10], addr("10.202.1.1", 7603)).unwrap();
    assert!(rx.recv_from(&mut [0u8; 64]).is_err());
    let list = lab.router.fwctl_ok(&["-L", "-n", "-v", "-x"]);
    assert_eq!(
        listed_counters(&list, "INPUT", 0).unwrap().0,
        input_policy + 1,
        "{list}"
    );
    assert_eq!(lab.router.nft_packets("INPUT"), 0, "judged at XDP");
    // FORWARD's policy.
    lab.router.apply(&["-P FORWARD DROP"]);
    assert_eq!(lab.send(7602, 2).unwrap(), 0);
}

/// `-o` on a router: the output interface comes from the same FIB lookup.
#[test]
fn forward_with_output_interface() {
    let lab = RouterLab::new("fwo", 203).unwrap();
    let router = &lab.router;
    router.apply(&[
        "-A FORWARD -o fwor1 -p udp --dport 7700 -j DROP",
        "-A FORWARD ! -o fwor+ -j DROP",
        "-A FORWARD -i fwor0 -o fwor1 -j ACCEPT",
        "-P FORWARD DROP",
    ]);
    router.fwctl_ok(&["attach", "fwor0"]);
    assert_eq!(lab.send(7700, 2).unwrap(), 0);
    assert_eq!(lab.send(7701, 2).unwrap(), 2);
    let list = router.fwctl_ok(&["-L", "FORWARD", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(listed_counters(&list, "FORWARD", 1).unwrap().0, 2, "{list}");
    assert_eq!(listed_counters(&list, "FORWARD", 2).unwrap().0, 0, "{list}");
    assert_eq!(listed_counters(&list, "FORWARD", 3).unwrap().0, 2, "{list}");
    assert!(list.contains(" fwor0  fwor1 "), "{list}");
    assert_eq!(router.nft_packets("FORWARD"), 0, "judged at XDP");
    assert_eq!(
        router.fwctl_ok(&["-S", "FORWARD"]),
        "-P FORWARD DROP\n-A FORWARD -o fwor1 -p udp -m udp --dport 7700 -j DROP\n-A FORWARD ! -o fwor+ -j DROP\n-A FORWARD -i fwor0 -o fwor1 -j ACCEPT\n"
    );
    let out = router.fwctl(&["-A", "INPUT", "-o", "fwor1", "-j", "DROP"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Can't use -o with INPUT"));
}

/// An nftables table of the test's own in the host namespace, deleted on drop.
struct NftTable<'a> {
    ns: &'a FwNs,
    name: &'static str,
}

impl<'a> NftTable<'a> {
    fn new(ns: &'a FwNs, name: &'static str, rules: &[String]) -> NftTable<'a> {
        let table = NftTable { ns, name };
        table.nft(&["add", "table", "inet", name]);
        table.nft(&[
            "add",
            "chain",
            "inet",
            name,
            "in",
            "{ type filter hook input priority 0; }",
        ]);
        for rule in rules {
            let mut args = vec!["add", "rule", "inet", name, "in"];
            args.extend(rule.split_whitespace());
            table.nft(&args);
        }
        table
    }

    fn nft(&self, args: &[&str]) -> String {
        let out = self.ns.command("nft").args(args).output().expect("nft");
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets counted by the rule with `comment "NAME"`.
    fn packets(&self, comment: &str) -> u64 {
        let listing = self.nft(&["list", "chain", "inet", self.name, "in"]);
        let line = listing
            .lines()
            .find(|l| l.contains(&format!("comment \"{comment}\"")))
            .unwrap_or_else(|| panic!("no rule {comment} in:\n{listing}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "packets")
            .and_then(|i| words.get(i + 1)?.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {line}"))
    }
}

impl Drop for NftTable<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .command("nft")
            .args(["delete", "table", "inet", self.name])
            .output();
    }
}

/// Programs attached at tcx ingress of the host's interface.
fn tcx_programs(lab: &Lab) -> usize {
    tcx_programs_on(lab, HOST_IF)
}

fn tcx_programs_on(lab: &Lab, iface: &'static str) -> usize {
    use aya::programs::{tc::TcAttachType, SchedClassifier};
    let (_, programs) = lab
        .host
        .run(move || SchedClassifier::query_tcx(iface, TcAttachType::Ingress))
        .expect("thread in the namespace")
        .expect("querying tcx");
    programs.len()
}

/// Sends `n` ICMP echo requests from `from` to `dst` through a raw socket (no ping here),
/// with identifiers from `first_id` on.
fn icmp_echo(from: &netlab::Netns, dst: &str, first_id: u16, n: u16) {
    let dst: std::net::Ipv4Addr = dst.parse().expect("IPv4 address");
    from.run(move || {
        // SAFETY: plain socket calls on a descriptor this closure owns and closes.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(dst.octets()),
                },
                sin_zero: [0; 8],
            };
            for seq in 0..n {
                // Echo request: type 8, code 0, checksum, identifier, sequence. A new
                // identifier each time, so each is a NEW conntrack entry.
                let id = first_id + seq;
                let mut msg = [8u8, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
                let sum: u32 = msg
                    .chunks(2)
                    .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
                    .sum();
                let folded = !((sum & 0xffff) + (sum >> 16)) as u16;
                msg[2..4].copy_from_slice(&folded.to_be_bytes());
                let sent = libc::sendto(
                    fd,
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                assert_eq!(
                    sent,
                    msg.len() as isize,
                    "{}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    })
    .expect("thread in the namespace");
    std::thread::sleep(std::time::Duration::from_millis(200));
}

/// The contract with netfilter: a packet XDP accepted arrives with the "accepted" and
/// generation bits in skb->mark, a deferred one (conntrack rule on ICMP, whose state XDP
/// never knows) with the generation bit only; each counted once, by the path that decided it. In native and generic XDP, since the metadata
/// reaches the TC program by different paths. Detach and down leave no tcx link.
#[test]
fn verdicts_reach_netfilter_in_the_mark() {
    use firewall_common::{mark_accepted, mark_generation, mark_mask, DEFAULT_MARK_SHIFT};
    let lab = Lab::named("fwm").unwrap();
    lab.host.apply(&[
        "-A INPUT -p udp --dport 7100 -j ACCEPT",
        "-A INPUT -p icmp -m conntrack --ctstate NEW -j ACCEPT",
    ]);
    let shift = DEFAULT_MARK_SHIFT;
    for mode in ["native", "generic"] {
        lab.host.fwctl_ok(&["attach", HOST_IF, "--mode", mode]);
        let want_mode = if mode == "native" {
            "xdp"
        } else {
            "xdpgeneric"
        };
        assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some(want_mode));
        assert_eq!(tcx_programs(&lab), 1, "{mode}: fw_mark at tcx ingress");
        let status: serde_json::Value =
            serde_json::from_str(&lab.host.fwctl_ok(&["status", "-o", "json"])).unwrap();
        let generation = status["generation"].as_u64().expect("generation") as u32 % 2;
        let accepted = mark_accepted(shift) | mark_generation(shift, generation);
        let deferred = mark_generation(shift, generation);
        let mask = mark_mask(shift);
        let rule = |what: &str, mark: u32, name: &str| {
            format!("{what} meta mark & {mask:#010x} == {mark:#010x} counter comment \"{name}\"")
        };
        let nft = NftTable::new(
            &lab.host,
            "fwmtest",
            &[
                rule("udp dport 7100", accepted, "accepted"),
                rule("icmp type echo-request", deferred, "deferred"),
                "udp dport 7100 counter comment \"all udp\"".to_string(),
                "icmp type echo-request counter comment \"all icmp\"".to_string(),
            ],
        );
        lab.host.fwctl_ok(&["-Z"]);
        assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7100, 5, 20), 5);
        icmp_echo(
            &lab.client,
            HOST_V4,
            if mode == "native" { 0x100 } else { 0x200 },
            4,
        );
        assert_eq!(
            (
                nft.packets("accepted"),
                nft.packets("deferred"),
                nft.packets("all udp") + nft.packets("all icmp")
            ),
            (5, 4, 9),
            "{mode}: marks seen by netfilter\n{}",
            nft.nft(&["list", "table", "inet", "fwmtest"])
        );
        // Accepted: counted once, at XDP (netfilter accepts them unjudged). Deferred:
        // counted once, by netfilter, which judged them.
        let list = listing(&lab, "4");
        assert_eq!(listed_counters(&list, "INPUT", 1).unwrap().0, 5, "{list}");
        assert_eq!(listed_counters(&list, "INPUT", 2).unwrap().0, 4, "{list}");
        drop(nft);
        lab.host.fwctl_ok(&["detach", HOST_IF]);
        assert_eq!(tcx_programs(&lab), 0, "{mode}: detach removes the tcx link");
        assert_eq!(lab.xdp_mode().unwrap(), None);
    }
    // Loopback has no native XDP: the attach fails after the TC link was made, and takes
    // it away again.
    let failed = lab.host.fwctl(&["attach", "lo"]);
    assert!(!failed.status.success());
    assert_eq!(tcx_programs_on(&lab, "lo"), 0, "TC link undone");
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(tcx_programs(&lab), 1);
    lab.host.fwctl_ok(&["down"]);
    assert_eq!(tcx_programs(&lab), 0, "down removes the tcx link");
    assert_eq!(lab.xdp_mode().unwrap(), None);
}

/// The maps grow with the ruleset and shrink back: a ruleset too large for them moves the
/// interface to a new program instance, atomically, with the rules' counters; a change
/// killed after the links moved is undone by the next fwctl run (every link back on the
/// installed instance, whose ruleset the state records).
#[test]
fn maps_follow_the_ruleset_size() {
    let lab = Lab::attached(&["-P INPUT DROP", "-A INPUT -p udp --dport 7900 -j ACCEPT"]).unwrap();
    let memory = || {
        let status = lab.host.fwctl_ok(&["status", "-v"]);
        let mib = status
            .lines()
            .find_map(|l| l.strip_prefix("BPF map memory: "))
            .and_then(|l| l.strip_suffix(" MiB"))
            .and_then(|v| v.parse::<f64>().ok());
        mib.unwrap_or_else(|| panic!("no map memory in {status}"))
    };
    let scratch_left = || {
        lab.host
            .run(|| fwctl::dataplane::namespace::Namespace::current().map(|ns| ns.pin_dir))
            .unwrap()
            .map(|dir| fwctl::dataplane::install::scratch_dir(&dir).exists())
            .unwrap()
    };
    let xdp = |port| udp_exchange(&lab, CLIENT_V4, HOST_V4, port, 3, 10);
    // The XDP program on the interface, which must be the pinned one, and the tcx one.
    let programs = || {
        let link = lab.host.ip(&["-j", "-d", "link", "show", HOST_IF]).unwrap();
        let link: serde_json::Value = serde_json::from_str(&link).unwrap();
        let attached = link[0]["xdp"]["prog"]["id"].as_u64();
        let status: serde_json::Value =
            serde_json::from_str(&lab.host.fwctl_ok(&["status", "-o", "json"])).unwrap();
        assert_eq!(attached, status["program_id"].as_u64(), "{link}");
        let tc = lab
            .host
            .run(|| {
                use aya::programs::{tc::TcAttachType, SchedClassifier};
                SchedClassifier::query_tcx(HOST_IF, TcAttachType::Ingress)
                    .map(|(_, p)| p.iter().map(|p| p.id()).collect::<Vec<_>>())
            })
            .unwrap()
            .unwrap();
        (attached.unwrap(), tc)
    };
    assert_eq!((xdp(7900), xdp(7901)), (3, 0));
    // A set the new instance's tries must hold too: the client is in a blocklist.
    lab.host.fwctl_ok(&["set", "create", "bl", "hash:ip"]);
    lab.host.fwctl_ok(&["set", "add", "bl", CLIENT_V4]);
    lab.host.apply(&[
        "-A INPUT -p udp --dport 7902 -m set --match-set bl src -j DROP",
        "-A INPUT -p udp --dport 7902 -j ACCEPT",
    ]);
    assert_eq!(xdp(7902), 0);
    let small = memory();
    let (small_xdp, small_tc) = programs();

    // 3,000 more rules: more entries than the smallest maps hold.
    let mut text = String::from("*filter\n");
    for i in 0..3000u32 {
        let [_, _, a, b] = (0x0b00_0000 + i).to_be_bytes();
        let port = 10_000 + i;
        text += &format!("-A INPUT -s 11.0.{a}.{b}/32 -p tcp --dport {port} -j DROP\n");
    }
    text += "-A INPUT -p udp --dport 7901 -j ACCEPT\nCOMMIT\n";
    let out = fwctl_stdin(&lab.host, &["restore", "--noflush"], &text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let large = memory();
    assert!(large > small, "{small} MiB, then {large} MiB");
    assert_eq!(xdp(7902), 0, "the blocklist must hold in the new instance");
    assert!(!scratch_left());
    assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some("xdp"));
    // Both links moved to the new instance's programs.
    let (large_xdp, large_tc) = programs();
    assert_ne!(large_xdp, small_xdp);
    assert_eq!(large_tc.len(), 1);
    assert_ne!(large_tc, small_tc);
    // Judged by the new instance, the first rule's counter carried over.
    assert_eq!((xdp(7900), xdp(7901), xdp(7902)), (3, 3, 0));
    assert_eq!(lab.host.packets("INPUT", 1), 6);
    assert_eq!(lab.host.packets("INPUT", 2), 9, "the blocklist rule");
    assert_eq!(lab.host.packets("INPUT", 3004), 3);

    // Flushed: the maps stay large while the generation behind holds the large ruleset.
    lab.host.fwctl_ok(&["-F", "INPUT"]);
    assert_eq!(xdp(7900), 0);
    assert!(memory() >= large);

    // The next change moves to small maps; killed once every link is on them.
    let before = lab.host.fwctl_ok(&["-S"]);
    let accept = [
        "-A", "INPUT", "-p", "udp", "--dport", "7900", "-j", "ACCEPT",
    ];
    lab.host.fwctl_killed_at("relinked", &accept);
    assert!(scratch_left());
    // Meanwhile the new instance judges, with the whole new ruleset.
    assert_eq!(xdp(7900), 3);
    // The next run puts the links back on the instance the state describes, and says so.
    let out = lab.host.fwctl(&["-S"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("fwctl: warning: an interrupted change of map sizes left"),
        "{said}"
    );
    assert!(!scratch_left());
    assert_eq!(programs(), (large_xdp, large_tc));
    assert_eq!(xdp(7900), 0);

    lab.host.fwctl_ok(&accept);
    assert_eq!(xdp(7900), 3);
    assert_eq!(lab.host.packets("INPUT", 1), 3);
    assert_eq!(tcx_programs(&lab), 1);
    assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some("xdp"));
    let after = memory();
    assert!(after < large, "{large} MiB, then {after} MiB");
    assert!(!scratch_left());
}
