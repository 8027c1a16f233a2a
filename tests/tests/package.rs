//! The Debian package as an operator meets it: `dpkg -i` on a host whose firewall is in
//! force, the files, the man page, the completions, then `dpkg --purge`. The package is
//! `FWCTL_DEB` if set, else built here with `cargo xtask deb`. It installs into the real
//! /usr and /etc, so the test purges it at the end, and first if a failed run left it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use tests::FwNs;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

fn package() -> PathBuf {
    if let Some(p) = std::env::var_os("FWCTL_DEB") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let status = Command::new("cargo")
        .current_dir(&root)
        .args(["xtask", "deb"])
        .status()
        .expect("running cargo xtask deb");
    assert!(status.success(), "cargo xtask deb failed: {status}");
    root.join(format!(
        "target/debian/fwctl_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ))
}

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
    let deb = package();
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
