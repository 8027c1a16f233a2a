//! `fwctl watch`: attaches XDP to interfaces that appear after boot (a NIC whose driver
//! loads late, a renamed interface, a VLAN or bond the network service creates, OpenVPN's
//! `tun0`) when fwctl.conf's `attach` lines name them or a prefix of theirs (`attach eth+`).
//!
//! Why a watcher on rtnetlink rather than a udev rule: udev runs its RUN+= programs only in
//! the host's network namespace, with a short timeout and no ordering against fwctl's own
//! runs, and an interface moved into another namespace (`ip link set X netns N`, a
//! container's veth) raises no udev event there; a udev rule also cannot see a rename's
//! result reliably. A process subscribed to RTNLGRP_LINK sees every link event of its own
//! namespace as it happens, works the same under `ip netns exec`, and systemd restarts it
//! (`packaging/fwctl-watch.service`). It holds no state of its own: each event, and its
//! start, compare the interfaces present with the state file and do what is missing, so a
//! watcher killed at any point, restarted, does the rest. Until an interface is attached,
//! the netfilter table judges its packets, so a late or slow attach never opens anything.

use std::{
    fs::{File, OpenOptions},
    os::fd::{AsRawFd, OwnedFd},
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::{
    dataplane::attach::{self, XdpMode},
    firewall::Firewall,
    netfilter::netlink,
};

const NETLINK_ROUTE: libc::c_int = 0;
/// The legacy group bit of RTNLGRP_LINK: new, changed and removed links.
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
/// A safety net, not the mechanism: a missed event (a full socket buffer) is made good
/// at the latest after this long, and a `fwctl down` noticed.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Runs until fwctl is taken down in this namespace (or an error: systemd restarts it).
pub fn run() -> Result<()> {
    let ns = crate::dataplane::namespace::Namespace::current()?;
    if !ns.state_dir.join("state.json").exists() {
        println!("fwctl is not installed in this network namespace: nothing to watch");
        return Ok(());
    }
    let _lock = lock(&ns.state_dir)?;
    // Subscribed before the first look, so that nothing appears unseen in between.
    let sock = subscribe()?;
    loop {
        {
            // Checked before locking too: the lock would make the state directory again.
            let gone = !ns.state_dir.join("state.json").exists();
            let mut fw = match gone {
                true => None,
                false => Some(Firewall::lock()?).filter(|fw| fw.state_exists()),
            };
            let Some(fw) = fw.as_mut() else {
                println!("fwctl was taken down in this network namespace: watcher done");
                return Ok(());
            };
            for result in reconcile(fw) {
                match result {
                    Ok(line) => println!("{line}"),
                    Err(line) => eprintln!("fwctl watch: {line}"),
                }
            }
        }
        wait_for_links(&sock)?;
    }
}

/// Whether a watcher runs for this namespace (it holds the watch lock).
pub fn running(state_dir: &Path) -> bool {
    let Ok(file) = File::open(state_dir.join("watch.lock")) else {
        return false;
    };
    // SAFETY: flock on an fd we own; a lock we get goes with the file, at once.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// One watcher per namespace: a second one would race the first for every interface.
fn lock(state_dir: &Path) -> Result<File> {
    let path = state_dir.join("watch.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "another fwctl watch runs in this network namespace (it holds {})",
            path.display()
        );
    }
    Ok(file)
}

fn subscribe() -> Result<OwnedFd> {
    let sock = netlink::open_protocol(NETLINK_ROUTE, 1 << 16, 1 << 20, IDLE_CHECK)
        .context("opening an rtnetlink socket")?;
    // SAFETY: a zeroed sockaddr_nl with its family and groups set, of its own size.
    let rc = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("subscribing to link events");
    }
    Ok(sock)
}

/// Returns when a link appeared, changed or went (or after IDLE_CHECK), with every queued
/// event read: one look at the interfaces then answers all of them.
fn wait_for_links(sock: &OwnedFd) -> Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut flags = 0;
    loop {
        // SAFETY: recv into a buffer we own, of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                // Timed out, or nothing more queued: look now.
                Some(libc::EAGAIN) => Ok(()),
                Some(libc::EINTR) => continue,
                // Events were lost: looking at everything makes up for them.
                Some(libc::ENOBUFS) => Ok(()),
                _ => Err(e).context("reading link events"),
            };
        }
        let len = usize::try_from(n).unwrap_or(0);
        let links = netlink::messages(&buf[..len])
            .iter()
            .any(|m| m.kind == RTM_NEWLINK || m.kind == RTM_DELLINK);
        if links || flags != 0 {
            // Drain what else is queued without waiting.
            flags = libc::MSG_DONTWAIT;
        }
    }
}

/// Brings the attachments in line with the interfaces present: forgets those that are
/// gone (or renamed), links again those recorded but not linked (a killed run), and
/// attaches those an `attach` line matches. One result per thing done or failed.
pub fn reconcile(fw: &mut Firewall) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    let present = crate::firewall::interface_names();
    let stale: Vec<(u32, String)> = fw
        .state
        .interfaces
        .iter()
        .filter(|a| !present.iter().any(|(i, n)| *i == a.ifindex && *n == a.name))
        .map(|a| (a.ifindex, a.name.clone()))
        .collect();
    for (ifindex, name) in &stale {
        out.push(
            fw.forget(*ifindex)
                .map(|()| format!("{name}: gone (ifindex {ifindex}); forgotten"))
                .map_err(|e| format!("{name}: forgetting it: {e:#}")),
        );
    }
    let unlinked: Vec<(u32, String)> = fw
        .state
        .interfaces
        .iter()
        .filter(|a| !attach::link_path(&fw.ns.pin_dir, a.ifindex).exists())
        .map(|a| (a.ifindex, a.name.clone()))
        .collect();
    for (ifindex, name) in unlinked {
        out.push(
            fw.relink(ifindex)
                .map(|()| format!("{name}: linked again"))
                .map_err(|e| format!("{name}: linking again: {e:#}")),
        );
    }
    let mut attached_any = false;
    for (ifindex, name) in present {
        if fw.state.interfaces.iter().any(|a| a.ifindex == ifindex) {
            continue;
        }
        let Some(line) = fw.state.watch.iter().find(|l| l.matches(&name)).cloned() else {
            continue;
        };
        // A pattern also matches devices XDP cannot parse (a tun): netfilter judges those.
        if !crate::firewall::xdp_can_judge(&name).unwrap_or(false) {
            continue;
        }
        attached_any = true;
        let result = match fw.attach(&name, line.mode) {
            Ok(()) => Ok(format!("attached to {name} ({})", line.mode.name())),
            // A pattern matches interfaces of any kind, some without native XDP: generic
            // XDP is slower, but better than leaving it to netfilter alone.
            Err(e) if line.mode == XdpMode::Native => fw
                .attach(&name, XdpMode::Generic)
                .map(|()| format!("attached to {name} (generic: native failed: {e:#})")),
            Err(e) => Err(e),
        };
        out.push(result.map_err(|e| format!("{name}: {e:#}")));
    }
    // Attaching recompiles for the interfaces present; forgetting alone must too, so
    // `-i` no longer names the gone interface's index.
    if !stale.is_empty() && !attached_any {
        if let Err(e) = fw.recommit() {
            out.push(Err(format!(
                "recompiling without the gone interfaces: {e:#}"
            )));
        }
    }
    out
}
