//! fail2ban drives fwctl through packaging/fail2ban/fwctl.conf, as on a server: a private
//! fail2ban-server, daemonised under `ip netns exec` in the host namespace of a lab (so it
//! has no ancestor in the operator's mount namespace), with a jail reading a log the test
//! appends failed SSH logins to. Namespaces are named `fwdf2b-…`; the server's files live
//! in a folder of the test's own. Run one at a time (`--test-threads=1`).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use tests::{fwctl_bin, udp_between, udp_exchange, Lab, CLIENT_V4, HOST_IF, HOST_V4};

const JAIL: &str = "fwdssh";
const SET: &str = "f2b-fwdssh";
/// A second address of the client, never banned.
const BYSTANDER: &str = "10.201.0.3";
const RULE: &str = "-A INPUT -m set --match-set f2b-fwdssh src -j DROP";

/// A copy of /etc/fail2ban with the server's files, the jail and fwctl's action in it;
/// the server is stopped (which stops the jail) and the folder removed on drop.
struct Fail2ban<'a> {
    dir: PathBuf,
    lab: &'a Lab,
}

impl<'a> Fail2ban<'a> {
    fn start(lab: &'a Lab) -> Fail2ban<'a> {
        let dir = std::env::temp_dir().join(format!("fwdf2b-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let copied = std::process::Command::new("cp")
            .args(["-a", "/etc/fail2ban"])
            .arg(&dir)
            .status()
            .expect("cp -a /etc/fail2ban");
        assert!(copied.success());
        let f2b = Fail2ban { dir, lab };
        // Debian's jail.d enables the system's sshd jail (journal backend): not ours.
        std::fs::remove_dir_all(f2b.dir.join("jail.d")).expect("removing jail.d");
        std::fs::create_dir(f2b.dir.join("jail.d")).expect("jail.d");
        let action = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/fail2ban/fwctl.conf");
        std::fs::copy(&action, f2b.dir.join("action.d/fwctl.conf")).expect("the action file");
        let d = f2b.dir.display();
        f2b.write(
            "fail2ban.local",
            &format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {d}/fail2ban.log\n\
                 socket = {d}/fail2ban.sock\npidfile = {d}/fail2ban.pid\ndbfile = :memory:\n"
            ),
        );
        f2b.write("auth.log", "");
        f2b.write(
            "jail.local",
            &format!(
                "[DEFAULT]\nbackend = polling\n\n[{JAIL}]\nenabled = true\nfilter = sshd\n\
                 logpath = {d}/auth.log\nmaxretry = 3\nfindtime = 600\nbantime = 600\n\
                 action = fwctl[fwctl=\"{}\"]\n",
                fwctl_bin().display()
            ),
        );
        let out = f2b.client(&["start"]);
        assert!(
            out.status.success(),
            "fail2ban-client start: {}",
            text(&out)
        );
        f2b
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).expect("writing a fail2ban file");
    }

    /// fail2ban-client on this server, run in the host namespace.
    fn client(&self, args: &[&str]) -> Output {
        self.lab
            .host
            .command("fail2ban-client")
            .arg("-c")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("fail2ban-client")
    }

    /// Failed SSH logins from `addr`, as sshd logs them through syslog, now.
    fn fail_logins(&self, addr: &str, n: usize) {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("auth.log"))
            .expect("auth.log");
        for i in 0..n {
            let now = chrono_like_now();
            writeln!(
                log,
                "{now} fwdhost sshd[{}]: Failed password for root from {addr} port {} ssh2",
                4000 + i,
                50000 + i
            )
            .expect("appending to auth.log");
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fail2ban.log")).unwrap_or_default()
    }
}

impl Drop for Fail2ban<'_> {
    fn drop(&mut self) {
        let _ = self.client(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// syslog's timestamp (`Dec  2 17:30:01`), in local time as sshd writes it.
fn chrono_like_now() -> String {
    let out = std::process::Command::new("date")
        .arg("+%b %e %H:%M:%S")
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits up to 20 s (fail2ban polls the log every second) for `done`.
fn wait_for(what: &str, f2b: &Fail2ban, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not happen; fail2ban's log:\n{}",
            f2b.server_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn in_set(lab: &Lab, addr: &str) -> bool {
    lab.host.fwctl(&["set", "test", SET, addr]).status.success()
}

#[test]
fn fail2ban_bans_into_a_set_dropped_at_xdp() {
    let lab = Lab::named("fwdf2b").expect("lab");
    lab.client
        .ip(&[
            "addr",
            "add",
            &format!("{BYSTANDER}/24"),
            "dev",
            "fwclient0",
        ])
        .expect("a second client address");
    lab.host
        .ip(&[
            "neigh",
            "replace",
            BYSTANDER,
            "lladdr",
            &tests::mac(&lab.client, "fwclient0").expect("mac"),
            "dev",
            HOST_IF,
            "nud",
            "permanent",
        ])
        .expect("a static neighbour");
    lab.host.apply(&["-A INPUT -p udp -j ACCEPT"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);

    let f2b = Fail2ban::start(&lab);
    // actionstart: the set and the rule, in front of the chain.
    wait_for("the jail's start", &f2b, || {
        lab.host.fwctl_ok(&["-S", "INPUT"]).contains(RULE)
    });
    let rules = lab.host.fwctl_ok(&["-S", "INPUT"]);
    assert_eq!(rules.lines().nth(1), Some(RULE), "{rules}");

    // Two failures are not enough; the third bans.
    f2b.fail_logins(CLIENT_V4, 2);
    // Once the jail has counted both, it has decided on them.
    wait_for("the jail to count two failures", &f2b, || {
        text(&f2b.client(&["status", JAIL]))
            .lines()
            .any(|l| l.contains("Total failed:") && l.trim_end().ends_with('2'))
    });
    assert!(!in_set(&lab, CLIENT_V4), "banned before maxretry");
    f2b.fail_logins(CLIENT_V4, 1);
    wait_for("the ban", &f2b, || in_set(&lab, CLIENT_V4));
    // fail2ban's ban time became the member's timeout.
    let listed = lab.host.fwctl_ok(&["set", "list", SET]);
    assert!(
        listed.contains(&format!("{CLIENT_V4} timeout ")),
        "{listed}"
    );

    // The offender is dropped at XDP, counted by the rule; the bystander passes.
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 5, 64), 0);
    assert_eq!(
        udp_between(&lab.client, &lab.host, BYSTANDER, HOST_V4, 7000, 5, 64),
        5
    );
    assert_eq!(lab.host.packets("INPUT", 1), 5);
    assert_eq!(lab.host.packets("INPUT", 2), 5);
    assert_eq!(
        lab.host.nft_packets("INPUT"),
        0,
        "netfilter judged what XDP should have"
    );

    // Unbanned, it gets through.
    let out = f2b.client(&["unban", CLIENT_V4]);
    assert!(out.status.success(), "unban: {}", text(&out));
    wait_for("the unban", &f2b, || !in_set(&lab, CLIENT_V4));
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 7000, 5, 64), 5);
    assert_eq!(lab.host.packets("INPUT", 1), 5);

    // Stopping the jail takes the rule and the set away.
    let out = f2b.client(&["stop", JAIL]);
    assert!(out.status.success(), "stop {JAIL}: {}", text(&out));
    wait_for("the jail's stop", &f2b, || {
        !lab.host.fwctl_ok(&["-S", "INPUT"]).contains(SET)
    });
    let sets = lab.host.fwctl_ok(&["set", "list", "-n"]);
    assert!(!sets.lines().any(|l| l == SET), "{sets}");
    assert!(
        !f2b.server_log().contains("ERROR"),
        "fail2ban logged errors:\n{}",
        f2b.server_log()
    );
}
