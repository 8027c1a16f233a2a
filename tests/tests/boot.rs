//! `fwctl boot --config-dir DIR` and `fwctl watch` against the kernel, as the systemd units
//! run them (systemd is not PID 1 here): a bad or missing configuration, with and without a
//! last good ruleset; interfaces that appear after boot; `kill -9` of boot and of the
//! watcher at each step. In every case a probe to a closed port (something listens there)
//! must go unanswered, and SSH must answer. Namespaces are named `fwb-…`; the last good
//! copies go to a folder of each test's own (FWCTL_STATE_DIR). Run one at a time
//! (`--test-threads=1`): they share the host's bpffs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use netlab::{Link, Netns, Probe};
use tests::{xdp_mode, FwNs, Lab, HOST_IF, HOST_V4};

const SSH: u16 = 22;
/// A port the configuration opens and the fail-safe does not: answered only when the
/// configuration (or the last good copy of it) is in force.
const OPEN: u16 = 8081;
/// A port no ruleset here opens.
const CLOSED: u16 = 8080;
const SHORT: Duration = Duration::from_millis(700);
/// What the issue promises for a new interface.
const ATTACH_WITHIN: Duration = Duration::from_secs(1);

const GOOD_V4: &str = "*filter\n:INPUT DROP [0:0]\n\
    -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
    -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n\
    -A INPUT -p tcp -m tcp --dport 8081 -j ACCEPT\n\
    -A INPUT -m set --match-set blocked src -j DROP\nCOMMIT\n";
const SETS: &str = "create blocked hash:net family inet hashsize 1024 maxelem 65536\n\
    add blocked 192.0.2.0/24\n";
/// What the issue found: one bad line.
const BAD_V4: &str =
    "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fwb-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temporary folder");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("writing a config file");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client and a host joined by veth, listeners on the host's SSH, open and closed ports,
/// a configuration folder and a folder for the last good copy.
struct BootLab {
    lab: Lab,
    config: TempDir,
    state: PathBuf,
}

impl BootLab {
    fn new(state: &Path) -> BootLab {
        let lab = Lab::named("fwb").unwrap();
        for port in [SSH, OPEN, CLOSED] {
            lab.host.tcp_echo(any(port)).unwrap();
        }
        BootLab {
            lab,
            config: TempDir::new("config"),
            state: state.to_path_buf(),
        }
    }

    fn fwctl_with(&self, fault: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = self.lab.host.fwctl_command();
        cmd.env("FWCTL_STATE_DIR", &self.state).args(args);
        if let Some(fault) = fault {
            cmd.env("FWCTL_FAULT", fault);
        }
        cmd.output().expect("running fwctl")
    }

    fn boot_with(&self, fault: Option<&str>) -> Output {
        let dir = self.config.0.to_str().expect("utf-8 path");
        self.fwctl_with(fault, &["boot", "--config-dir", dir])
    }

    fn boot(&self) -> Output {
        self.boot_with(None)
    }

    fn status(&self) -> String {
        let out = self.fwctl_with(None, &["status"]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn probe(&self, port: u16) -> Probe {
        let to = SocketAddr::new(HOST_V4.parse().unwrap(), port);
        self.lab.client.tcp_connect(to, SHORT).unwrap()
    }

    /// The promise of this issue: the closed port unanswered, SSH answered.
    fn assert_closed_but_ssh(&self, when: &str) {
        assert_ne!(self.probe(CLOSED), Probe::Echoed, "{when}: the closed port");
        assert_eq!(self.probe(SSH), Probe::Echoed, "{when}: SSH");
    }

    /// `fwctl watch` in the host's namespace, killed (-9) on drop.
    fn watcher(&self, fault: Option<&str>) -> Watcher {
        let mut cmd = self.lab.host.fwctl_command();
        cmd.env("FWCTL_STATE_DIR", &self.state)
            .arg("watch")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(fault) = fault {
            cmd.env("FWCTL_FAULT", fault);
        }
        Watcher(cmd.spawn().expect("starting fwctl watch"))
    }
}

struct Watcher(Child);

impl Watcher {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Whether it ended by itself before `deadline` (a fault point aborts it).
    fn ended_within(&mut self, deadline: Duration) -> bool {
        wait_until(deadline, || matches!(self.0.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.kill();
    }
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::new("0.0.0.0".parse().unwrap(), port)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `done` until it holds or `deadline` has passed; whether it held.
fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    xdp_mode(ns, ifname).is_ok_and(|m| m.is_some())
}

/// No last good copy: a bad rules.v4 leaves the fail-safe in force, says so on stderr and in
/// `fwctl status`, and exits non-zero.
#[test]
fn bad_rules_without_last_good_leave_the_failsafe() {
    let state = TempDir::new("state");
    let b = BootLab::new(&state.0);
    b.config.write("rules.v4", BAD_V4);
    b.config.write("fwctl.conf", &format!("attach {HOST_IF}\n"));
    let out = b.boot();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("rules.v4: line 3: invalid port/service `99999' specified")
            && err.contains("there is no last good ruleset")
            && err.contains("the fail-safe is in force"),
        "{err}"
    );
    b.assert_closed_but_ssh("fail-safe");
    assert_ne!(b.probe(OPEN), Probe::Echoed, "the fail-safe opens only SSH");
    // fwctl.conf was fine: the fail-safe is judged at XDP on its interface.
    assert!(xdp_attached(&b.lab.host, HOST_IF));
    let status = b.status();
    assert!(status.contains("ruleset: the FAIL-SAFE"), "{status}");
    // The fail-safe is never recorded as good.
    assert!(!state.0.join("last-good").exists());
}

/// A last good copy exists (written by the last change on a previous "boot", here another
/// namespace sharing the folder): a bad rules.v4 brings it back, whole, sets included.
#[test]
fn bad_rules_with_last_good_bring_it_back() {
    let state = TempDir::new("state");
    {
        let before = BootLab::new(&state.0);
        before.config.write("rules.v4", GOOD_V4);
        before.config.write("sets", SETS);
        let out = before.boot();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(before.probe(OPEN), Probe::Echoed);
    }
    let b = BootLab::new(&state.0);
    b.config.write("rules.v4", BAD_V4);
    b.config.write("sets", SETS);
    b.config.write("fwctl.conf", &format!("attach {HOST_IF}\n"));
    let out = b.boot();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the last good ruleset"),
        "{}",
        stderr(&out)
    );
    b.assert_closed_but_ssh("last good");
    assert_eq!(
        b.probe(OPEN),
        Probe::Echoed,
        "the last good ruleset's own port"
    );
    assert!(xdp_attached(&b.lab.host, HOST_IF));
    let status = b.status();
    assert!(
        status.contains("ruleset: the LAST GOOD ruleset") && status.contains("99999"),
        "{status}"
    );
    // Until an operator changes the rules.
    let out = b.fwctl_with(
        None,
        &["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!b.status().contains("LAST GOOD"));
}

/// Bans and unbans (one member added or deleted) are appended to the last good copy's
/// journal instead of rewriting it; a later rule change carries the journal along; a line
/// a crash cut short is not a change; boot from the copy replays the rest after `sets`.
#[test]
fn set_changes_in_place_reach_the_last_good_copy() {
    let state = TempDir::new("state");
    let copy = state.0.join("last-good");
    {
        let before = BootLab::new(&state.0);
        before.config.write("rules.v4", GOOD_V4);
        before.config.write("sets", SETS);
        let out = before.boot();
        assert!(out.status.success(), "{}", stderr(&out));
        let sets_before = std::fs::read_to_string(copy.join("sets")).expect("the copy's sets");
        let ok = |args: &[&str]| {
            let out = before.fwctl_with(None, args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        };
        ok(&["set", "add", "blocked", "198.51.100.7"]);
        ok(&["set", "add", "blocked", "203.0.113.0/24"]);
        ok(&["set", "del", "blocked", "192.0.2.0/24"]);
        // The copy's sets file is as boot wrote it; the changes are in the journal.
        assert_eq!(
            std::fs::read_to_string(copy.join("sets")).expect("the copy's sets"),
            sets_before
        );
        let journal = std::fs::read_to_string(copy.join("sets.journal")).expect("journal");
        assert_eq!(journal.lines().count(), 3, "{journal}");
        ok(&["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]);
        ok(&["set", "add", "blocked", "198.51.100.8"]);
        let journal = std::fs::read_to_string(copy.join("sets.journal")).expect("journal");
        assert_eq!(
            journal.lines().count(),
            4,
            "carried by the rule change: {journal}"
        );
        // What a crash in the middle of an append leaves.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(copy.join("sets.journal"))
            .expect("journal");
        std::io::Write::write_all(&mut file, b"add -exist blocked 198.51.").expect("append");
    }
    let b = BootLab::new(&state.0);
    b.config.write("rules.v4", BAD_V4);
    let out = b.boot();
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("the last good ruleset"), "{said}");
    let out = b.fwctl_with(None, &["set", "save"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut members: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("add blocked ").map(str::to_string))
        .collect();
    members.sort();
    assert_eq!(
        members,
        ["198.51.100.7", "198.51.100.8", "203.0.113.0/24"],
        "{said}"
    );
    let rules = b.fwctl_with(None, &["-S", "INPUT"]);
    assert!(String::from_utf8_lossy(&rules.stdout).contains("--dport 9 -j DROP"));
}

/// Nothing at all in the configuration folder and no last good copy: the fail-safe, as
/// fwctl.conf chooses it when there is one.
#[test]
fn no_configuration_at_all() {
    let state = TempDir::new("state");
    let b = BootLab::new(&state.0);
    let out = b.boot();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no configuration"),
        "{}",
        stderr(&out)
    );
    b.assert_closed_but_ssh("no configuration");
    // Another SSH port, chosen in fwctl.conf: 22 is closed then.
    b.config
        .write("fwctl.conf", &format!("failsafe drop ssh {OPEN}\n"));
    let out = b.boot();
    assert!(!out.status.success());
    assert_eq!(b.probe(OPEN), Probe::Echoed);
    assert_ne!(b.probe(SSH), Probe::Echoed);
    assert_ne!(b.probe(CLOSED), Probe::Echoed);
}

/// An interface created after boot: judged by netfilter while no watcher runs, attached at
/// XDP within a second of appearing while one does, or when one starts; a `kill -9` of
/// the watcher, or one killed half-way through an attach, never leaves the closed port
/// answered, and the next watcher finishes the job.
#[test]
fn interfaces_created_after_boot_are_attached() {
    let state = TempDir::new("state");
    let b = BootLab::new(&state.0);
    b.config.write("rules.v4", GOOD_V4);
    b.config.write("sets", SETS);
    b.config.write("fwctl.conf", "attach fwblate+\n");
    let out = b.boot();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fwblate+: no such interface yet"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let far = Netns::new("fwb-far").unwrap();
    // A veth pair from `far` into the host, its host end named fwblate{i}; the host's
    // address on it, for probes.
    let late = |i: u8| {
        let host_addr = format!("10.231.{i}.2");
        netlab::veth(
            Link {
                ns: &far,
                ifname: &format!("fwbfar{i}"),
                addrs: &[&format!("10.231.{i}.1/24")],
            },
            Link {
                ns: &b.lab.host,
                ifname: &format!("fwblate{i}"),
                addrs: &[&format!("{host_addr}/24")],
            },
        )
        .unwrap();
        (format!("fwblate{i}"), host_addr)
    };
    let probe = |host_addr: &str, port: u16| {
        let to = SocketAddr::new(host_addr.parse().unwrap(), port);
        far.tcp_connect(to, SHORT).unwrap()
    };

    // No watcher yet: netfilter judges the new interface's packets.
    let (name, host_addr) = late(1);
    let before = b.lab.host.nft_packets("INPUT");
    assert_ne!(probe(&host_addr, CLOSED), Probe::Echoed);
    assert_eq!(probe(&host_addr, OPEN), Probe::Echoed);
    assert!(b.lab.host.nft_packets("INPUT") > before, "netfilter judged");
    assert!(!xdp_attached(&b.lab.host, &name));

    // A watcher attaches what is there when it starts, and what appears while it runs.
    let mut watcher = b.watcher(None);
    assert!(wait_until(ATTACH_WITHIN * 3, || xdp_attached(
        &b.lab.host,
        &name
    )));
    let (name2, host_addr2) = late(2);
    assert!(
        wait_until(ATTACH_WITHIN, || xdp_attached(&b.lab.host, &name2)),
        "{name2} attached within a second"
    );
    let before = b.lab.host.nft_packets("INPUT");
    assert_ne!(probe(&host_addr2, CLOSED), Probe::Echoed);
    assert_eq!(
        b.lab.host.nft_packets("INPUT"),
        before,
        "XDP judged: netfilter counted nothing"
    );
    assert!(b.status().contains("fwctl watch running"));

    // kill -9: the next interface waits, judged by netfilter, for the next watcher.
    watcher.kill();
    let (name3, host_addr3) = late(3);
    assert_ne!(probe(&host_addr3, CLOSED), Probe::Echoed);
    assert!(!xdp_attached(&b.lab.host, &name3));
    assert!(b.status().contains("fwctl watch NOT RUNNING"));
    let mut watcher = b.watcher(None);
    assert!(wait_until(ATTACH_WITHIN * 3, || xdp_attached(
        &b.lab.host,
        &name3
    )));
    watcher.kill();

    // Killed at each step of an attach: closed all along, finished by the next watcher.
    for (i, fault) in [(4, "staged"), (5, "flipped"), (6, "attach-tc")] {
        let mut dying = b.watcher(Some(fault));
        // Let it subscribe before the interface appears.
        assert!(wait_until(ATTACH_WITHIN, || b
            .status()
            .contains("fwctl watch running")));
        let (name, host_addr) = late(i);
        assert!(dying.ended_within(ATTACH_WITHIN * 3), "{fault}: aborted");
        assert_ne!(
            probe(&host_addr, CLOSED),
            Probe::Echoed,
            "{fault}: watcher killed"
        );
        assert_eq!(probe(&host_addr, OPEN), Probe::Echoed, "{fault}");
        let mut watcher = b.watcher(None);
        assert!(
            wait_until(ATTACH_WITHIN * 3, || xdp_attached(&b.lab.host, &name)),
            "{fault}: attached by the next watcher"
        );
        assert_ne!(
            probe(&host_addr, CLOSED),
            Probe::Echoed,
            "{fault}: attached"
        );
        watcher.kill();
    }
    let status = b.status();
    for i in 1..=6 {
        assert!(
            status.contains(&format!("fwblate{i} ")) && !status.contains("LINK MISSING"),
            "{status}"
        );
    }
}

/// `attach tun+`: a tun device created later (as OpenVPN creates tun0) is judged by netfilter,
/// never by an XDP program that cannot parse its frames.
#[test]
fn attach_tun_pattern() {
    let state = TempDir::new("state");
    let b = BootLab::new(&state.0);
    b.config.write("rules.v4", GOOD_V4);
    b.config.write("sets", SETS);
    b.config.write("fwctl.conf", "attach tun+\n");
    let out = b.boot();
    assert!(out.status.success(), "{}", stderr(&out));
    let _watcher = b.watcher(None);
    assert!(wait_until(ATTACH_WITHIN, || b
        .status()
        .contains("fwctl watch running")));
    b.lab
        .host
        .ip(&["tuntap", "add", "dev", "tun0", "mode", "tun"])
        .unwrap();
    // A tun device hands XDP bare IP packets, which the program would misread: the
    // watcher leaves it to netfilter's table (which judges every interface), and an
    // operator's `attach tun0` is refused with the reason.
    assert!(
        !wait_until(ATTACH_WITHIN, || xdp_attached(&b.lab.host, "tun0")),
        "tun0 must not get fwctl's XDP program"
    );
    let status = b.status();
    assert!(
        !status.contains("tun0 ") && status.contains("watching for: tun+"),
        "{status}"
    );
    let refused = b.lab.host.fwctl(&["attach", "tun0"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no Ethernet header"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `kill -9` of boot after each of its steps, on a fresh host with the veth up (at a real
/// boot no interface is up yet): the closed port stays closed and SSH answers at every
/// point, and the next boot puts the configuration in force.
///
/// Killed in boot's very first change (the fail-safe's `staged@1`/`flipped@1`), netfilter
/// already judges with the staged fail-safe (a first staging points the hooks at the only
/// generation there is); the filter hooks' own policy is DROP for the moment before that.
#[test]
fn boot_killed_at_each_step_never_opens() {
    // The fail-safe's commit is boot's first, the configuration's its second, the
    // attach's recompilation its third.
    let faults = [
        "staged@1",
        "flipped@1",
        "boot-failsafe",
        "boot-sets",
        "staged@2",
        "flipped@2",
        "boot-loaded",
        "staged@3",
        "flipped@3",
        "attach-tc",
    ];
    for fault in faults {
        let state = TempDir::new("state");
        let b = BootLab::new(&state.0);
        b.config.write("rules.v4", GOOD_V4);
        b.config.write("sets", SETS);
        b.config.write("fwctl.conf", &format!("attach {HOST_IF}\n"));
        let out = b.boot_with(Some(fault));
        assert!(
            stderr(&out).contains(&format!("FWCTL_FAULT={fault}")),
            "{fault}: {}",
            stderr(&out)
        );
        b.assert_closed_but_ssh(fault);
        let out = b.boot();
        assert!(out.status.success(), "{fault}: {}", stderr(&out));
        b.assert_closed_but_ssh(fault);
        assert_eq!(
            b.probe(OPEN),
            Probe::Echoed,
            "{fault}: configuration in force"
        );
        assert!(xdp_attached(&b.lab.host, HOST_IF), "{fault}");
        drop(b);
    }
}

/// The units: boot before the network, the watcher after boot, restarted if killed, and
/// no ExecStop in either (stopping must not open the host).
#[test]
fn units_order_boot_and_watcher() {
    let root = TempDir::new("root");
    let ns = FwNs::new("fwb-units").unwrap();
    ns.fwctl_ok(&["install-service", "--root", root.0.to_str().unwrap()]);
    let unit =
        |name: &str| std::fs::read_to_string(root.0.join("etc/systemd/system").join(name)).unwrap();
    let (boot, watch) = (unit("fwctl.service"), unit("fwctl-watch.service"));
    let bin = tests::fwctl_bin();
    assert!(
        boot.contains("Before=network-pre.target")
            && boot.contains("Wants=network-pre.target fwctl-watch.service")
            && boot.contains(&format!("ExecStart={} boot", bin.display())),
        "{boot}"
    );
    assert!(
        watch.contains("After=local-fs.target fwctl.service")
            && watch.contains("Restart=on-failure")
            && watch.contains(&format!("ExecStart={} watch", bin.display())),
        "{watch}"
    );
    assert!(![boot, watch]
        .iter()
        .any(|u| u.lines().any(|l| l.starts_with("ExecStop"))));
}
