//! Sets (`fwctl set`) and `-m set --match-set` rules on real packets, in namespaces each
//! test creates and removes: at XDP (the host's veth, attached) and on the netfilter path
//! (loopback, which XDP never sees); negation, destination and address/port sets, swap,
//! timeouts, restore in ipset's format, and what is refused.

use std::time::Duration;

use tests::{
    listed_counters, udp_between, udp_exchange, FwNs, Lab, CLIENT_V4, CLIENT_V6, HOST_IF, HOST_V4,
    HOST_V6,
};

/// Datagrams from the client that reach the host's port.
fn from_client(lab: &Lab, port: u16) -> usize {
    udp_exchange(lab, CLIENT_V4, HOST_V4, port, 5, 50)
}

/// Datagrams from `src` to 127.0.0.1 over loopback, which only netfilter judges.
fn on_lo(ns: &FwNs, src: &str, port: u16) -> usize {
    udp_between(ns, ns, src, "127.0.0.1", port, 5, 50)
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("fwctl-sets-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Packets netfilter counted on rules that look a set up and drop (both generations).
fn netfilter_set_drops(ns: &FwNs) -> u64 {
    ns.nft_counters("INPUT")
        .iter()
        .filter(|(rule, _)| rule.contains("@set") && rule.contains(" drop "))
        .map(|(_, n)| n)
        .sum()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_blocklist_drops_listed_sources_at_xdp_and_on_loopback() {
    let lab = Lab::named("fws-bl").unwrap();
    let host = &lab.host;
    host.fwctl_ok(&["set", "create", "bl", "hash:net"]);
    host.fwctl_ok(&["set", "add", "bl", "10.99.0.0/16"]);
    host.apply(&["-A INPUT -m set --match-set bl src -j DROP"]);
    host.fwctl_ok(&["attach", HOST_IF]);
    host.ip(&["link", "set", "lo", "up"]).unwrap();

    assert_eq!(from_client(&lab, 7100), 5, "the client is not listed");
    host.fwctl_ok(&["set", "add", "bl", "10.201.0.0/24"]);
    assert_eq!(from_client(&lab, 7100), 0, "the client's network is listed");
    assert_eq!(host.packets("INPUT", 1), 5);
    assert_eq!(
        netfilter_set_drops(host),
        0,
        "dropped at XDP, unseen by netfilter"
    );
    // A member inside another: deleting it leaves the outer one in force.
    host.fwctl_ok(&["set", "add", "bl", "10.201.0.1"]);
    host.fwctl_ok(&["set", "del", "bl", "10.201.0.1"]);
    assert_eq!(from_client(&lab, 7100), 0);
    host.fwctl_ok(&["set", "del", "bl", "10.201.0.0/24"]);
    assert_eq!(from_client(&lab, 7100), 5, "delisted");
    assert_eq!(host.packets("INPUT", 1), 10);

    // Loopback: netfilter's lookup in the nftables set.
    host.fwctl_ok(&["set", "add", "bl", "127.0.0.2"]);
    assert_eq!(on_lo(host, "127.0.0.2", 7101), 0);
    assert_eq!(on_lo(host, "127.0.0.1", 7101), 5);
    assert_eq!(host.packets("INPUT", 1), 15);
    assert_eq!(netfilter_set_drops(host), 5, "loopback: netfilter's lookup");

    // IPv6: its own trie, its own family of sets.
    host.fwctl_ok(&["set", "create", "bl6", "hash:net", "family", "inet6"]);
    host.apply(&["-6 -A INPUT -m set --match-set bl6 src -j DROP"]);
    let v6 = |port| udp_exchange(&lab, CLIENT_V6, HOST_V6, port, 5, 50);
    assert_eq!(v6(7102), 5);
    host.fwctl_ok(&["set", "add", "bl6", "fd00:201::/64"]);
    assert_eq!(v6(7102), 0);
    let out = host.fwctl(&[
        "-6",
        "-A",
        "INPUT",
        "-m",
        "set",
        "--match-set",
        "bl",
        "src",
        "-j",
        "DROP",
    ]);
    assert!(
        stderr(&out).contains("The protocol family of set bl is inet"),
        "{}",
        stderr(&out)
    );

    let listed = host.fwctl_ok(&["-L", "INPUT", "-n"]);
    assert!(listed.contains("match-set bl src"), "{listed}");
    let rules = host.fwctl_ok(&["-S", "INPUT"]);
    assert!(
        rules.contains("-A INPUT -m set --match-set bl src -j DROP"),
        "{rules}"
    );
    let terse = host.fwctl_ok(&["set", "list", "bl", "-t"]);
    assert!(terse.contains("References: 1"), "{terse}");
    assert!(terse.contains("Number of entries: 2"), "{terse}");
}

#[test]
fn negation_destination_and_address_port_sets() {
    let lab = Lab::named("fws-neg").unwrap();
    let host = &lab.host;
    host.fwctl_ok(&["set", "create", "allow", "hash:ip"]);
    host.fwctl_ok(&["set", "add", "allow", CLIENT_V4]);
    host.fwctl_ok(&["set", "create", "dsts", "hash:ip"]);
    host.fwctl_ok(&["set", "create", "svc", "hash:ip,port"]);
    host.fwctl_ok(&["set", "add", "svc", &format!("{HOST_V4},udp:7202")]);
    host.apply(&[
        "-A INPUT -m set ! --match-set allow src -j DROP",
        "-A INPUT -m set --match-set dsts dst -j DROP",
        "-A INPUT -m set --match-set svc dst,dst -j DROP",
    ]);
    host.fwctl_ok(&["attach", HOST_IF]);

    assert_eq!(from_client(&lab, 7201), 5, "allowed, not a listed service");
    assert_eq!(
        from_client(&lab, 7202),
        0,
        "the address and port are listed"
    );
    host.fwctl_ok(&["set", "add", "svc", &format!("{HOST_V4},7201")]);
    assert_eq!(from_client(&lab, 7201), 5, "tcp:7201 is not udp:7201");
    host.fwctl_ok(&["set", "add", "dsts", HOST_V4]);
    assert_eq!(from_client(&lab, 7201), 0, "the destination is listed");
    host.fwctl_ok(&["set", "flush", "dsts"]);
    assert_eq!(from_client(&lab, 7201), 5, "flushed");
    host.fwctl_ok(&["set", "del", "allow", CLIENT_V4]);
    assert_eq!(from_client(&lab, 7201), 0, "no longer allowed");
    let list = host.fwctl_ok(&["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    assert_eq!(listed_counters(&list, "INPUT", 1).unwrap().0, 5, "{list}");
    assert_eq!(listed_counters(&list, "INPUT", 3).unwrap().0, 5, "{list}");
    assert!(list.contains("! match-set allow src"), "{list}");
    assert!(list.contains("match-set svc dst,dst"), "{list}");
    assert_eq!(host.nft_packets("INPUT"), 0, "all judged at XDP");
}

#[test]
fn swap_takes_effect_and_members_expire() {
    let lab = Lab::named("fws-swap").unwrap();
    let host = &lab.host;
    host.fwctl_ok(&["set", "create", "live", "hash:net"]);
    host.fwctl_ok(&["set", "create", "next", "hash:net"]);
    host.fwctl_ok(&["set", "add", "next", "10.201.0.0/24"]);
    host.apply(&["-A INPUT -m set --match-set live src -j DROP"]);
    host.fwctl_ok(&["attach", HOST_IF]);

    assert_eq!(from_client(&lab, 7300), 5);
    host.fwctl_ok(&["set", "swap", "live", "next"]);
    assert_eq!(
        from_client(&lab, 7300),
        0,
        "the blocking members are live now"
    );
    let live = host.fwctl_ok(&["set", "list", "live"]);
    assert!(live.contains("10.201.0.0/24"), "{live}");
    host.fwctl_ok(&["set", "swap", "live", "next"]);
    assert_eq!(from_client(&lab, 7300), 5, "swapped back");

    host.fwctl_ok(&["set", "create", "brief", "hash:ip", "timeout", "600"]);
    host.apply(&["-I INPUT -m set --match-set brief src -j DROP"]);
    host.fwctl_ok(&["set", "add", "brief", CLIENT_V4, "timeout", "2"]);
    assert_eq!(from_client(&lab, 7301), 0, "listed for 2 s");
    let listed = host.fwctl_ok(&["set", "list", "brief"]);
    assert!(
        listed.contains(&format!("{CLIENT_V4} timeout ")),
        "{listed}"
    );
    tests::wait_for(
        Duration::from_secs(5),
        || from_client(&lab, 7301) == 5,
        || "the member never expired".into(),
    );
    let listed = host.fwctl_ok(&["set", "list", "brief", "-t"]);
    assert!(listed.contains("Number of entries: 0"), "{listed}");
    assert_eq!(host.nft_packets("INPUT"), 0, "all judged at XDP");
}

#[test]
fn restore_reads_ipset_save_and_a_bad_line_changes_nothing() {
    let lab = Lab::named("fws-rst").unwrap();
    let host = &lab.host;
    let good = temp_file(
        "good",
        "create bl hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x14cf4c02\n\
         add bl 10.201.0.0/24\n\
         add bl 192.168.1.1\n\
         create six hash:ip family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x7a798b70\n\
         add six 2001:db8::1\n",
    );
    host.fwctl_ok(&["set", "restore", good.to_str().unwrap()]);
    host.apply(&["-A INPUT -m set --match-set bl src -j DROP"]);
    host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(from_client(&lab, 7400), 0, "restored members are in force");
    let saved = host.fwctl_ok(&["set", "save"]);
    assert_eq!(
        saved,
        "create bl hash:net family inet hashsize 1024 maxelem 65536\n\
         add bl 10.201.0.0/24\n\
         add bl 192.168.1.1\n\
         create six hash:ip family inet6 hashsize 1024 maxelem 65536\n\
         add six 2001:db8::1\n"
    );

    // Line 3 is bad: neither the new set nor the replacement of bl's members happens.
    let bad = temp_file(
        "bad",
        "create bl hash:net\nadd bl 10.99.0.0/16\nadd bl bogus\ncreate other hash:ip\n",
    );
    let out = host.fwctl(&["set", "restore", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3:"), "{}", stderr(&out));
    assert_eq!(host.fwctl_ok(&["set", "save"]), saved);
    assert_eq!(from_client(&lab, 7400), 0);

    // A restore that creates a set anew replaces it, atomically for packets; `set create`
    // of an existing set is refused, as ipset refuses it.
    let out = host.fwctl(&["set", "create", "bl", "hash:net"]);
    assert!(stderr(&out).contains("set with the same name already exists"));
    let next = temp_file(
        "next",
        "create bl hash:net maxelem 100000\nadd bl 10.99.0.0/16\n",
    );
    host.fwctl_ok(&["set", "restore", next.to_str().unwrap()]);
    assert_eq!(
        from_client(&lab, 7400),
        5,
        "the client's network was replaced"
    );
    let header = host.fwctl_ok(&["set", "list", "bl", "-t"]);
    assert!(header.contains("maxelem 100000"), "{header}");

    let out = host.fwctl(&["set", "destroy", "bl"]);
    assert!(
        stderr(&out).contains("Set cannot be destroyed: it is in use by a kernel component"),
        "{}",
        stderr(&out)
    );
    let out = host.fwctl(&[
        "-A",
        "INPUT",
        "-m",
        "set",
        "--match-set",
        "nosuch",
        "src",
        "-j",
        "DROP",
    ]);
    assert!(
        stderr(&out).contains("Set nosuch doesn't exist."),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(2), "iptables' exit status");
    let out = host.fwctl(&["set", "test", "bl", "10.99.1.1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = host.fwctl(&["set", "test", "bl", CLIENT_V4]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is NOT in set bl."),
        "{}",
        stderr(&out)
    );
    host.fwctl_ok(&["set", "destroy", "six"]);
    assert_eq!(host.fwctl_ok(&["set", "list", "-n"]), "bl\n");
    for f in [good, bad, next] {
        let _ = std::fs::remove_file(f);
    }
}

/// `fwctl boot` restores DIR/sets before the rules that name them, and again (a restart)
/// without complaint.
#[test]
fn boot_restores_sets_before_rules() {
    let lab = Lab::named("fws-boot").unwrap();
    let dir = std::env::temp_dir().join(format!("fws-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sets"),
        "create bl hash:net family inet hashsize 1024 maxelem 65536\nadd bl 10.201.0.0/24\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules.v4"),
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set bl src -j DROP\nCOMMIT\n",
    )
    .unwrap();
    std::fs::write(dir.join("fwctl.conf"), format!("attach {HOST_IF}\n")).unwrap();
    for _ in 0..2 {
        let out = lab
            .host
            .fwctl_ok(&["boot", "--config-dir", dir.to_str().unwrap()]);
        assert!(out.contains("sets"), "{out}");
        assert_eq!(from_client(&lab, 7500), 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The SSH lockout guard knows what the sets hold: an allow-list with the caller's address
/// keeps the session, a block-list with it is refused, naming the rule.
#[test]
fn the_lockout_guard_reads_sets() {
    let lab = Lab::named("fws-ssh").unwrap();
    let host = &lab.host;
    host.fwctl_ok(&["attach", HOST_IF]);
    host.fwctl_ok(&["set", "create", "admins", "hash:ip"]);
    host.fwctl_ok(&["set", "add", "admins", CLIENT_V4]);
    host.fwctl_ok(&["set", "create", "bl", "hash:net"]);
    host.fwctl_ok(&["set", "add", "bl", "10.201.0.0/24"]);
    let session = format!("{CLIENT_V4} 50022 {HOST_V4} 22");
    let as_ssh = |args: &[&str]| {
        host.fwctl_command()
            .args(args)
            .env("SSH_CONNECTION", &session)
            .output()
            .expect("fwctl")
    };
    host.apply(&["-A INPUT -m set --match-set admins src -j ACCEPT"]);
    let out = as_ssh(&["-P", "INPUT", "DROP"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_ssh(&[
        "-I",
        "INPUT",
        "-m",
        "set",
        "--match-set",
        "bl",
        "src",
        "-j",
        "DROP",
    ]);
    assert!(
        stderr(&out).contains("rule 1 of INPUT (-A INPUT -m set --match-set bl src -j DROP)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        from_client(&lab, 7600),
        5,
        "the allow-list still lets the client in"
    );
}

/// A restore killed after loading the new members, before rules switch to them: packets
/// still meet the old members, and the next set command removes what was loaded.
#[test]
fn a_restore_killed_half_way_changes_nothing() {
    let lab = Lab::named("fws-kill").unwrap();
    let host = &lab.host;
    host.fwctl_ok(&["set", "create", "bl", "hash:net"]);
    host.fwctl_ok(&["set", "add", "bl", "10.201.0.0/24"]);
    host.apply(&["-A INPUT -m set --match-set bl src -j DROP"]);
    host.fwctl_ok(&["attach", HOST_IF]);
    let saved = host.fwctl_ok(&["set", "save"]);
    let next = temp_file("killed", "create bl hash:net\nadd bl 10.99.0.0/16\n");
    host.fwctl_killed_at("sets-loaded", &["set", "restore", next.to_str().unwrap()]);
    assert_eq!(from_client(&lab, 7700), 0, "the old members are in force");
    assert_eq!(host.fwctl_ok(&["set", "save"]), saved);
    let table = netlab::output(host.command("nft").args(["list", "table", "ip", "fwctl"])).unwrap();
    assert!(table.contains("10.99.0.0/16"), "loaded beside: {table}");
    // The next change cleans up: the half-loaded netfilter set is emptied.
    host.fwctl_ok(&["set", "add", "bl", "10.98.0.0/16"]);
    let table = netlab::output(host.command("nft").args(["list", "table", "ip", "fwctl"])).unwrap();
    assert!(!table.contains("10.99.0.0/16"), "{table}");
    assert_eq!(from_client(&lab, 7700), 0);
    assert_eq!(host.nft_packets("INPUT"), 0, "all judged at XDP");
    let _ = std::fs::remove_file(next);
}
