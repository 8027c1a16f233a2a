//! What a production host meets beyond the rules: namespaces deleted without `fwctl down`,
//! fwctl's mark bits seen by other tables, another program's XDP on an interface.
//! Namespaces are named `fwd…`. Run one at a time (`--test-threads=1`): they share bpffs.

use std::{io::Write, path::Path, process::Stdio};

use netlab::Netns;
use tests::{fwctl_bin, udp_exchange, FwNs, Lab, CLIENT_V4, HOST_IF, HOST_V4};

fn cookie(ns: &Netns) -> u64 {
    let out = ns
        .command(fwctl_bin().to_str().expect("utf-8 path"))
        .args(["status", "-o", "json"])
        .output()
        .expect("fwctl status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    status["netns_cookie"].as_u64().expect("a cookie")
}

fn pinned(cookie: u64) -> bool {
    let abi = firewall_common::ABI_VERSION;
    Path::new(&format!("/sys/fs/bpf/fwctl/v{abi}/ns-{cookie}")).exists()
        || Path::new(&format!("/run/fwctl/ns-{cookie}")).exists()
}

/// Removes, when dropped (also when the test fails), the last good copies fwctl kept for
/// namespaces the test deletes without `fwctl down`: by design they outlive their
/// namespace (names survive a reboot), so nothing else would.
struct LastGoodCopies(Vec<String>);

impl Drop for LastGoodCopies {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::fs::remove_dir_all(Path::new("/var/lib/fwctl/netns").join(name));
        }
    }
}

fn fwctl_in(ns: &Netns, args: &[&str]) {
    let out = ns
        .command(fwctl_bin().to_str().expect("utf-8 path"))
        .args(args)
        .output()
        .expect("fwctl");
    assert!(
        out.status.success(),
        "fwctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pins_of_deleted_namespaces_go_and_live_ones_stay() {
    // Dead: deleted without `fwctl down`.
    let dead = Netns::new("fwdgc").expect("namespace");
    let mut copies = LastGoodCopies(vec![dead.name().to_string()]);
    fwctl_in(
        &dead,
        &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    );
    let dead_cookie = cookie(&dead);
    // Alive through a process only: its name (the bind mount) is gone.
    let held = Netns::new("fwdgc").expect("namespace");
    copies.0.push(held.name().to_string());
    fwctl_in(&held, &["-A", "INPUT", "-j", "DROP"]);
    let held_cookie = cookie(&held);
    let mut holder = held
        .command("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep in the namespace");
    // Alive through its bind mount only (`ip netns add`), with nothing running in it.
    let live = FwNs::new("fwdgc").expect("namespace");
    live.apply(&["-A INPUT -p udp --dport 53 -j ACCEPT"]);
    let live_rules = live.fwctl_ok(&["-S"]);
    assert!(pinned(dead_cookie) && pinned(held_cookie));

    drop(dead);
    drop(held);
    let out = live.fwctl(&["status"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("that no longer exist"), "{said}");
    assert!(said.contains(&dead_cookie.to_string()), "{said}");
    assert!(!said.contains(&held_cookie.to_string()), "{said}");
    assert!(!pinned(dead_cookie), "the deleted namespace's pins stayed");
    assert!(pinned(held_cookie), "a live namespace's pins were removed");
    assert_eq!(live.fwctl_ok(&["-S"]), live_rules);

    // Its last process gone, the held namespace is dead too.
    holder.kill().expect("kill sleep");
    holder.wait().expect("wait sleep");
    let out = live.fwctl(&["status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&held_cookie.to_string()));
    assert!(!pinned(held_cookie));
    assert_eq!(live.fwctl_ok(&["-S"]), live_rules);
}

/// Packets of each counted rule of `chain` in table `inet fwdmark`, in order.
fn late_counts(ns: &Netns, chain: &str) -> Vec<u64> {
    let text = netlab::output(
        ns.command("nft")
            .args(["list", "chain", "inet", "fwdmark", chain]),
    )
    .expect("nft list chain");
    text.lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a packet count")
        })
        .collect()
}

#[test]
fn a_later_hook_sees_the_mark_the_packet_arrived_with() {
    let lab = Lab::named("fwdmark").expect("lab");
    lab.host.apply(&["-A INPUT -p udp -j ACCEPT"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    // Another table: an earlier hook marks port 7001 (keeping other bits), a later one
    // counts what the packets carry when they reach it.
    let table = "table inet fwdmark {
        chain early { type filter hook prerouting priority -150; udp dport 7001 meta mark set meta mark | 0x5; }
        chain late {
            type filter hook input priority 10;
            udp dport 7000 meta mark 0x0 counter
            udp dport 7000 counter
            udp dport 7001 meta mark 0x5 counter
            udp dport 7001 counter
        }
    }";
    let mut nft = lab
        .host
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft -f -");
    nft.stdin
        .take()
        .expect("stdin")
        .write_all(table.as_bytes())
        .expect("writing the table");
    assert!(nft.wait().expect("nft").success());

    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 5, 64), 5);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 5, 64), 5);
    // XDP accepted them all (netfilter's own rules counted none: the mark said so).
    assert_eq!(lab.host.packets("INPUT", 1), 10);
    assert_eq!(lab.host.nft_packets("INPUT"), 0);
    assert_eq!(late_counts(&lab.host, "late"), vec![5, 5, 5, 5]);
    lab.host
        .command("nft")
        .args(["delete", "table", "inet", "fwdmark"])
        .status()
        .expect("nft delete table");
}

#[test]
fn attach_names_the_xdp_program_already_there() {
    let lab = Lab::named("fwdbusy").expect("lab");
    lab.host.apply(&["-A INPUT -p udp -j ACCEPT"]);
    // Another tool's XDP program on the interface, held by this test through its link.
    lab.host
        .enter_on_this_thread()
        .expect("entering the namespace");
    let mut other = aya::Ebpf::load(fwctl::BENCH_PROGRAMS).expect("loading bench-xdp");
    let prog: &mut aya::programs::Xdp = other
        .program_mut("bench_drop")
        .expect("bench_drop")
        .try_into()
        .expect("an XDP program");
    prog.load().expect("load");
    let id = prog.info().expect("program info").id();
    prog.attach(HOST_IF, aya::programs::xdp::XdpMode::Driver)
        .expect("attaching bench_drop");

    let out = lab.host.fwctl(&["attach", HOST_IF]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("bench_drop (id {id})")), "{said}");
    assert!(
        said.contains(&format!("ip link set dev {HOST_IF} xdp off")),
        "{said}"
    );
    assert!(!lab.host.fwctl_ok(&["status"]).contains(HOST_IF));

    // Once it is gone, fwctl attaches.
    drop(other);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(lab.xdp_mode().expect("ip link").as_deref(), Some("xdp"));
}

/// The program id of the namespace's firewall (a new instance has another).
fn program_id(ns: &FwNs) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&ns.fwctl_ok(&["status", "-o", "json"])).expect("status JSON");
    status["program_id"].as_u64().expect("a program id")
}

#[test]
fn another_builds_programs_give_way_to_this_builds_at_the_next_change() {
    let lab = Lab::named("fwdcode").expect("lab");
    lab.host
        .apply(&["-P INPUT DROP", "-A INPUT -p udp --dport 7000 -j ACCEPT"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 5, 64), 5);
    let before = program_id(&lab.host);
    // What an upgrade that keeps the ABI finds: the pins of an older build, whose mark is
    // another (or, before marks existed, none).
    let pin_dir = Path::new(&format!(
        "/sys/fs/bpf/fwctl/v{}/ns-{}",
        firewall_common::ABI_VERSION,
        cookie(&lab.host)
    ))
    .to_path_buf();
    let marks = || -> Vec<String> {
        std::fs::read_dir(&pin_dir)
            .expect("pin directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("code-"))
            .collect()
    };
    let mark = marks();
    assert_eq!(mark.len(), 1, "one build mark: {mark:?}");
    std::fs::remove_dir(pin_dir.join(&mark[0])).expect("removing the build mark");
    // Untouched by other commands: only a change moves the firewall.
    lab.host.fwctl_ok(&["-L", "-n"]);
    assert_eq!(program_id(&lab.host), before);

    let accept = [
        "-A", "INPUT", "-p", "udp", "--dport", "7001", "-j", "ACCEPT",
    ];
    // Killed once every link is on the new build's programs (the move's last step before
    // the pins change places): they judge with the whole new ruleset meanwhile, and the
    // next run puts the links back on the old build's instance, the one the state
    // describes, with the old ruleset; the change after that moves them again.
    lab.host.fwctl_killed_at("relinked", &accept);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 1, 64), 1);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7002, 1, 64), 0);
    let rules = lab.host.fwctl_ok(&["-S"]);
    assert!(!rules.contains("7001"), "{rules}");
    assert_eq!(
        program_id(&lab.host),
        before,
        "links back on the old build's"
    );
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 1, 64), 1);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 1, 64), 0);
    // What the new build's programs counted before the kill is not carried back (see
    // dataplane::resize::repair); what the old ones count again is.
    assert_eq!(lab.host.packets("INPUT", 1), 6);
    let policy = lab.host.packets("INPUT", 0);

    lab.host.fwctl_ok(&accept);
    assert_ne!(
        program_id(&lab.host),
        before,
        "still the old build's program"
    );
    assert_eq!(marks(), mark, "the new instance carries this build's mark");
    // Rules, counters and the attachment came along; both ports pass, another is dropped.
    assert_eq!(lab.host.packets("INPUT", 1), 6);
    assert_eq!(lab.host.packets("INPUT", 0), policy);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 3, 64), 3);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7001, 3, 64), 3);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7002, 3, 64), 0);
    assert_eq!(lab.host.packets("INPUT", 1), 9);
    assert_eq!(lab.host.packets("INPUT", 2), 3);
    assert_eq!(lab.host.packets("INPUT", 0), policy + 3);
    // The packets were judged at XDP, not by netfilter behind a detached program.
    assert_eq!(lab.host.nft_packets("INPUT"), 0);
}
