//! What a production host meets beyond the rules: namespaces deleted without `fwctl down`,
//! fwctl's mark bits seen by other tables, another program's XDP on an interface.
//! Namespaces are named `fwd…`. Run one at a time (`--test-threads=1`): they share bpffs.

use std::{path::Path, process::Stdio};

use netlab::Netns;
use tests::{fwctl_bin, FwNs};

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
    fwctl_in(
        &dead,
        &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    );
    let dead_cookie = cookie(&dead);
    // Alive through a process only: its name (the bind mount) is gone.
    let held = Netns::new("fwdgc").expect("namespace");
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
