//! The Debian package as an operator meets it: `dpkg -i` on a host whose firewall is in
//! force, the files, the man page, the completions, then `dpkg --purge`. The package is
//! `FWCTL_DEB` if set, else built here with `cargo xtask deb`. It installs into the real
//! /usr and /etc, so the test purges it at the end, and first if a failed run left it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::Duration,
};

use netlab::Probe;
use tests::{FwNs, Lab, HOST_IF, HOST_V4};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The package of this workspace (`FWCTL_DEB` if set), or with `next` its second build:
/// version 0.1.1 and the BPF ABI one higher (`FWCTL_DEB_NEXT` if set), as an upgrade
/// brings. Built with `cargo xtask deb` once per run, and kept in target/tmp/: both builds
/// share the target directory (the second compiles only the crates FWCTL_ABI_BUMP
/// changes), and cargo-deb clears target/debian/ of every build's packages but its own.
fn package(next: bool) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    let var = if next { "FWCTL_DEB_NEXT" } else { "FWCTL_DEB" };
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    BUILT[usize::from(next)]
        .get_or_init(|| {
            let root = workspace_root();
            let mut cmd = Command::new("cargo");
            cmd.current_dir(&root).args(["xtask", "deb"]);
            let (dir, version) = if next {
                cmd.args(["--version", NEXT_VERSION, "--abi-bump", "1"]);
                ("target/debian-abi-bump-1", NEXT_VERSION)
            } else {
                ("target/debian", env!("CARGO_PKG_VERSION"))
            };
            let status = cmd.status().expect("running cargo xtask deb");
            assert!(status.success(), "cargo xtask deb failed: {status}");
            let name = format!("fwctl_{version}_amd64.deb");
            let kept = root.join("target/tmp").join(&name);
            std::fs::create_dir_all(root.join("target/tmp")).expect("target/tmp");
            std::fs::copy(root.join(dir).join(&name), &kept).expect("keeping the package");
            kept
        })
        .clone()
}

const NEXT_VERSION: &str = "0.1.1";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    String::from_utf8_lossy(&run("dpkg-query", &["-W", "-f=${Status}", "fwctl"]).stdout)
        .contains("install ok installed")
}

/// The firewall as the kernel holds it: rules, and the program id (a reload changes it).
fn in_force(ns: &FwNs) -> (String, String) {
    let status: serde_json::Value =
        serde_json::from_str(&ns.fwctl_ok(&["status", "-o", "json"])).expect("status JSON");
    (ns.fwctl_ok(&["-S"]), status["program_id"].to_string())
}

#[test]
fn install_check_and_purge_never_touch_the_firewall_in_force() {
    let deb = package(false);
    assert!(deb.exists(), "no package at {}", deb.display());
    if installed() {
        ok("dpkg", &["--purge", "fwctl"]);
    }

    let ns = FwNs::new("fwdpkg").expect("namespace");
    ns.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
        "-N fwdchain",
    ]);
    ns.fwctl_ok(&["set", "create", "fwdset", "hash:ip"]);
    let before = in_force(&ns);

    let out = run("dpkg", &["-i", deb.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "dpkg -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        in_force(&ns),
        before,
        "installing changed the firewall in force"
    );
    for wants in [
        "/etc/systemd/system/multi-user.target.wants/fwctl.service",
        "/etc/systemd/system/multi-user.target.wants/fwctl-watch.service",
        "/etc/systemd/system/multi-user.target.wants/fwctl-exporter.service",
    ] {
        assert!(!Path::new(wants).exists(), "installing enabled {wants}");
    }

    // The files, and the units pointing at the packaged binary.
    for unit in ["fwctl", "fwctl-watch", "fwctl-exporter"] {
        let path = format!("/usr/lib/systemd/system/{unit}.service");
        let text = std::fs::read_to_string(&path).expect(&path);
        assert!(
            text.lines()
                .any(|l| l.starts_with("ExecStart=/usr/sbin/fwctl ")),
            "{path}: {text}"
        );
    }
    for file in [
        "/usr/share/doc/fwctl/copyright",
        "/usr/share/doc/fwctl/licenses/GPL-2.0.txt",
        "/usr/share/doc/fwctl/licenses/GPL-3.0.txt",
        "/usr/share/zsh/vendor-completions/_fwctl",
        "/usr/share/fish/vendor_completions.d/fwctl.fish",
    ] {
        assert!(Path::new(file).is_file(), "{file} missing");
    }
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "fwctl"]);
    assert!(
        conffiles.contains("/etc/fwctl/fwctl.conf"),
        "fwctl.conf is not a conffile: {conffiles}"
    );
    let version = ok("/usr/sbin/fwctl", &["--version"]);
    assert!(
        version.starts_with(&format!("fwctl {} (BPF ABI ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );

    // The man page: found by man, with the iptables syntax and the how-to's examples.
    assert_eq!(
        ok("man", &["-w", "fwctl"]).trim(),
        "/usr/share/man/man8/fwctl.8.gz"
    );
    let page = Command::new("man")
        .args(["8", "fwctl"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man 8 fwctl");
    let page = String::from_utf8_lossy(&page.stdout);
    for section in ["IPTABLES SYNTAX", "COMMANDS", "EXAMPLES", "FILES"] {
        assert!(page.contains(section), "no {section} in the man page");
    }
    assert!(page.contains("fwctl -A INPUT -p tcp --dport 22 -j ACCEPT"));

    // Bash: the completion is registered, completes subcommands, interfaces and, as root in
    // the namespace, fwctl's own chain and set names.
    let script = r#"
        PATH=/usr/sbin:$PATH
        source /usr/share/bash-completion/completions/fwctl
        complete -p fwctl
        complete_at() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _fwctl_iptables fwctl "${@: -1}" "${@: -2:1}"; echo "${COMPREPLY[*]}"; }
        complete_at fwctl att
        complete_at fwctl attach l
        complete_at fwctl -A fwd
        complete_at fwctl -A INPUT -m set --match-set fwd
    "#;
    let out = ns
        .command("bash")
        .args(["-c", script])
        .output()
        .expect("bash");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines.len(),
        5,
        "{lines:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lines[0].contains("-F _fwctl_iptables"), "{}", lines[0]);
    assert_eq!(lines[1], "attach");
    assert_eq!(lines[2], "lo");
    assert_eq!(lines[3], "fwdchain");
    assert_eq!(lines[4], "fwdset");

    // zsh and fish, from the files the package installed: the same names after the same
    // options. fish answers `complete -C` itself; zsh's wrapper is called as compsys would
    // call it, with `compadd` printing what it is given.
    let shell = |shell: &str, script: &str| -> Vec<String> {
        let out = ns
            .command(shell)
            .args(["-c", script])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap_or_else(|e| panic!("{shell}: {e}"));
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    let fish = shell(
        "fish",
        r#"source /usr/share/fish/vendor_completions.d/fwctl.fish
        complete -C "fwctl -A "; echo ==; complete -C "fwctl attach "; echo ==
        complete -C "fwctl -A INPUT -m set --match-set "; echo ==; complete -C "fwctl att""#,
    );
    let groups: Vec<&[String]> = fish.split(|l| l == "==").collect();
    assert_eq!(groups.len(), 4, "{fish:?}");
    assert!(
        groups[0].contains(&"fwdchain".to_string()) && groups[0].contains(&"INPUT".to_string()),
        "{fish:?}"
    );
    assert!(groups[1].contains(&"lo".to_string()), "{fish:?}");
    assert_eq!(groups[2], ["fwdset"], "{fish:?}");
    assert!(
        groups[3].iter().any(|l| l.starts_with("attach")),
        "{fish:?}"
    );
    let zsh = shell(
        "zsh",
        r#"compdef() { print "compdef $*" }
        source /usr/share/zsh/vendor-completions/_fwctl
        compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
        words=(fwctl -A ''); CURRENT=3; _fwctl_iptables; print -- '=='
        words=(fwctl attach ''); CURRENT=3; _fwctl_iptables; print -- '=='
        words=(fwctl set add ''); CURRENT=4; _fwctl_iptables"#,
    );
    let groups: Vec<&[String]> = zsh.split(|l| l == "==").collect();
    assert_eq!(groups.len(), 3, "{zsh:?}");
    assert_eq!(groups[0][0], "compdef _fwctl_iptables fwctl", "{zsh:?}");
    assert!(groups[0].contains(&"fwdchain".to_string()), "{zsh:?}");
    assert!(groups[1].contains(&"lo".to_string()), "{zsh:?}");
    assert_eq!(groups[2], ["fwdset"], "{zsh:?}");

    // Purge: the package's files go, the firewall stays and the operator is told.
    let out = run("dpkg", &["--purge", "fwctl"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("still in force"), "purge said: {said}");
    for gone in [
        "/usr/sbin/fwctl",
        "/etc/fwctl/fwctl.conf",
        "/usr/lib/systemd/system/fwctl.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} survived the purge");
    }
    assert_eq!(
        in_force(&ns),
        before,
        "purging changed the firewall in force"
    );
}

const OPEN: u16 = 8081;
const CLOSED: u16 = 8080;

/// Probes the open and the closed port from the client until stopped; returns how many
/// probes ran and every one that went wrong (the open port unanswered, the closed one
/// answered).
fn probe_until(lab: &Lab, stop: &AtomicBool) -> (usize, Vec<String>) {
    let addr = |port| SocketAddr::new(HOST_V4.parse().expect("address"), port);
    let (mut runs, mut wrong) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let open = lab
            .client
            .tcp_connect(addr(OPEN), Duration::from_millis(500));
        let closed = lab
            .client
            .tcp_connect(addr(CLOSED), Duration::from_millis(200));
        runs += 1;
        if !matches!(open, Ok(Probe::Echoed)) {
            wrong.push(format!("probe {runs}: open port {open:?}"));
        }
        if matches!(closed, Ok(Probe::Echoed)) {
            wrong.push(format!("probe {runs}: closed port answered"));
        }
    }
    (runs, wrong)
}

/// /usr/sbin/fwctl (the installed package's) in the lab's host namespace.
fn packaged(lab: &Lab, args: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = lab.host.command(SBIN_FWCTL);
    if let Some(f) = fault {
        cmd.env("FWCTL_FAULT", f);
    }
    cmd.args(args).output().expect("running /usr/sbin/fwctl")
}

fn packaged_ok(lab: &Lab, args: &[&str]) -> String {
    let out = packaged(lab, args, None);
    assert!(
        out.status.success(),
        "fwctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SBIN_FWCTL: &str = "/usr/sbin/fwctl";

/// Version N's firewall in force under a steady probe; version N+1 (another BPF ABI)
/// installed over it; its first command moves the firewall to the new ABI, killed with
/// `fault` first if given (then the next command finishes the move).
fn upgrade_under_traffic(fault: Option<&str>) {
    let (old, new) = (package(false), package(true));
    let abi = firewall_common::ABI_VERSION;
    ok("dpkg", &["-i", old.to_str().expect("utf-8 path")]);
    assert!(ok(SBIN_FWCTL, &["--version"]).contains(&format!("(BPF ABI {abi})")));

    let lab = Lab::named("fwdup").expect("lab");
    for port in [OPEN, CLOSED] {
        lab.host
            .tcp_echo(SocketAddr::new(HOST_V4.parse().expect("address"), port))
            .expect("listener");
    }
    for rule in [
        "-P INPUT DROP",
        "-A INPUT -m set --match-set fwdbl src -j DROP",
        "-A INPUT -p tcp --dport 8081 -j ACCEPT",
    ] {
        if rule.contains("fwdbl") {
            packaged_ok(&lab, &["set", "create", "fwdbl", "hash:ip"]);
            packaged_ok(&lab, &["set", "add", "fwdbl", "192.0.2.7"]);
        }
        packaged_ok(&lab, &rule.split_whitespace().collect::<Vec<_>>());
    }
    packaged_ok(&lab, &["attach", HOST_IF]);
    let rules = packaged_ok(&lab, &["-S"]);
    let sets = packaged_ok(&lab, &["set", "save"]);
    let cookie: u64 =
        serde_json::from_str::<serde_json::Value>(&packaged_ok(&lab, &["status", "-o", "json"]))
            .expect("status JSON")["netns_cookie"]
            .as_u64()
            .expect("a cookie");
    let pins = |abi: u32| Path::new(&format!("/sys/fs/bpf/fwctl/v{abi}/ns-{cookie}")).exists();
    assert!(pins(abi));

    let stop = AtomicBool::new(false);
    /// Stops the prober however the scope ends (a failed assertion too), so the scope's
    /// join never waits forever.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (runs, wrong, said) = std::thread::scope(|s| {
        let prober = s.spawn(|| probe_until(&lab, &stop));
        let _stop = Stop(&stop);
        std::thread::sleep(Duration::from_millis(500));
        ok("dpkg", &["-i", new.to_str().expect("utf-8 path")]);
        std::thread::sleep(Duration::from_millis(500));
        let mut said = String::new();
        if let Some(f) = fault {
            let out = packaged(&lab, &["-S"], Some(f));
            assert!(!out.status.success(), "{f}: the fault did not fire");
            // Killed after the move (in the commit that follows it), the run said it moved.
            said.push_str(&String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(500));
        }
        let out = packaged(&lab, &["-S"], None);
        said.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{said}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), rules);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let (runs, wrong) = prober.join().expect("prober");
        (runs, wrong, said)
    });
    assert!(wrong.is_empty(), "{fault:?}: {wrong:?}");
    assert!(runs >= 5, "only {runs} probes");
    assert!(
        said.contains(&format!("from BPF ABI {abi} to {}", abi + 1))
            && said.contains("XDP's share of the rule counters restarts at 0"),
        "{said}"
    );

    // The new version's instance, in place of the old one, with everything carried over.
    assert!(ok(SBIN_FWCTL, &["--version"]).contains(&format!("(BPF ABI {})", abi + 1)));
    assert_eq!(
        ok("dpkg-query", &["-W", "-f=${Version}", "fwctl"]),
        NEXT_VERSION
    );
    assert!(!pins(abi) && pins(abi + 1));
    assert_eq!(packaged_ok(&lab, &["set", "save"]), sets);
    assert!(packaged_ok(&lab, &["status"]).contains("attached"));
    assert_eq!(
        tests::xdp_mode(&lab.host, HOST_IF)
            .expect("ip link")
            .as_deref(),
        Some("xdp")
    );
    // XDP judges with the new instance: netfilter counts none of these.
    let nft_before = lab.host.nft_packets("INPUT");
    let addr = SocketAddr::new(HOST_V4.parse().expect("address"), OPEN);
    assert_eq!(
        lab.client
            .tcp_connect(addr, Duration::from_secs(1))
            .expect("probe"),
        Probe::Echoed
    );
    assert_eq!(lab.host.nft_packets("INPUT"), nft_before);
    let listed = packaged_ok(&lab, &["-L", "INPUT", "-n", "-v", "-x", "--line-numbers"]);
    let (packets, _) = tests::listed_counters(&listed, "INPUT", 2).expect("rule 2's counters");
    assert!(packets > 0, "{listed}");
    // Down with the new version takes everything away.
    packaged_ok(&lab, &["down"]);
    assert!(!pins(abi + 1));
    ok("dpkg", &["--purge", "fwctl"]);
}

#[test]
fn upgrade_to_another_abi_under_traffic_never_opens() {
    if installed() {
        ok("dpkg", &["--purge", "fwctl"]);
    }
    // Each step of the move: the new instance built, the links moved, and the commit that
    // then puts the ruleset through the new version (killed with its batch staged).
    for fault in [
        None,
        Some("upgrade-built"),
        Some("upgrade-relinked"),
        Some("staged"),
    ] {
        upgrade_under_traffic(fault);
    }
}
