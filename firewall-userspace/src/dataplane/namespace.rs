//! Where this network namespace's pinned objects and state live.
//!
//! `ip netns exec` gives each command a private mount namespace with a fresh /sys and no
//! bpffs, and whatever fwctl mounted there would vanish (with its pins) when fwctl exits.
//! So fwctl does its file work in the operator's mount namespace, where one bpffs at
//! /sys/fs/bpf outlives every command, and names each network namespace by its cookie, a
//! 64-bit id the kernel never reuses (unlike inode numbers).

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

pub const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;
/// getsockopt option giving the network namespace cookie (Linux 5.14+).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The paths of one network namespace's firewall.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub cookie: u64,
    /// bpffs directory holding the maps, the program and the links.
    pub pin_dir: PathBuf,
    /// Directory of the state file, on tmpfs like the pins: both go at reboot.
    pub state_dir: PathBuf,
}

impl Namespace {
    /// The namespace this process's network operations happen in.
    pub fn current() -> Result<Namespace> {
        let cookie = netns_cookie()?;
        Ok(Namespace {
            cookie,
            pin_dir: Path::new(BPFFS)
                .join("fwctl")
                .join(format!("v{}", firewall_common::ABI_VERSION))
                .join(format!("ns-{cookie}")),
            state_dir: PathBuf::from(format!("/run/fwctl/ns-{cookie}")),
        })
    }
}

pub(crate) fn netns_cookie() -> Result<u64> {
    // SAFETY: plain socket syscall; the fd is closed by File's drop.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_UNIX)");
    }
    let sock = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len point to live locals of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("reading the network namespace cookie (needs Linux 5.14 or later)");
    }
    Ok(cookie)
}

/// Moves this process into the mount namespace whose bpffs holds fwctl's pins when fwctl
/// runs in another one (as under `ip netns exec`, in a daemon started there, or in a
/// systemd service with a private mount namespace), so that every fwctl run of a host
/// shares one bpffs and one /run. See [`home_mount_namespace`] for which one. Must run
/// before any thread is started: setns(CLONE_NEWNS) refuses multi-threaded callers. The
/// working directory is kept, so relative paths the operator typed still mean what they
/// meant.
pub fn enter_host_mount_namespace() -> Result<()> {
    let Some(home) = home_mount_namespace()? else {
        return Ok(());
    };
    let cwd = File::open(".").ok();
    let ns = File::open(&home).with_context(|| format!("opening {}", home.display()))?;
    // SAFETY: setns and fchdir on fds we own.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("entering the operator's mount namespace to reach its bpffs");
    }
    if let Some(cwd) = cwd {
        unsafe { libc::fchdir(cwd.as_raw_fd()) };
    }
    Ok(())
}

fn mount_ns_id(pid: &str) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn parent_pid(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(|p| p.trim().to_string())
}

/// Ancestors first (nearest first), then every other process: where to look for the mount
/// namespace that holds the pins. Each mount namespace once. Lazy: /proc is read only when
/// no ancestor's namespace has what is looked for (reading every process's costs ~1 ms).
fn candidate_processes(own: (u64, u64)) -> impl Iterator<Item = String> {
    let mut seen = std::collections::HashSet::from([own]);
    let ancestors =
        std::iter::successors(parent_pid("self"), |p| parent_pid(p)).take_while(|p| p != "0");
    let others = std::iter::once(())
        .flat_map(|()| std::fs::read_dir("/proc").into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()));
    ancestors
        .chain(others)
        .filter(move |pid| mount_ns_id(pid).is_some_and(|id| seen.insert(id)))
}

/// The mount namespace to work in, or None for our own:
/// 1. ours, if its /sys/fs/bpf already shows fwctl's pins (the operator's shell);
/// 2. else one whose bpffs holds this network namespace's pins (same ABI version), looked
///    for in the ancestors' namespaces first, then in every process's (through
///    /proc/PID/root, which walks that process's mounts): a daemon under `ip netns exec`
///    has no ancestor left in the operator's namespace, but some process of the host is;
/// 3. else one whose bpffs holds fwctl's pins for any namespace (this one's first run);
/// 4. else, with no pins anywhere yet, the nearest ancestor's that differs from ours (the
///    operator's shell around `ip netns exec`), else ours.
///
/// Processes we may not inspect (PID 1 in some sandboxes) are passed over.
fn home_mount_namespace() -> Result<Option<PathBuf>> {
    let own = mount_ns_id("self").context("reading /proc/self/ns/mnt")?;
    let fwctl_dir = Path::new(BPFFS).join("fwctl");
    if fwctl_dir.exists() {
        return Ok(None);
    }
    let exact = Namespace::current()?.pin_dir;
    let under = |pid: &str, path: &Path| {
        Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
    };
    for wanted in [&exact, &fwctl_dir] {
        if let Some(pid) = candidate_processes(own).find(|p| under(p, wanted).exists()) {
            return Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/mnt"))));
        }
    }
    let mut pid = parent_pid("self");
    while let Some(p) = pid.filter(|p| p != "0") {
        match mount_ns_id(&p) {
            Some(id) if id != own => return Ok(Some(PathBuf::from(format!("/proc/{p}/ns/mnt")))),
            Some(_) => pid = parent_pid(&p),
            // An ancestor we may not inspect: treat our own namespace as home.
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Present while the bpffs at /sys/fs/bpf is one fwctl mounted, so `down` can take back
/// what it put there and nothing else.
const MOUNTED_MARK: &str = "/run/fwctl/bpffs-mounted-by-fwctl";
/// What the kernel itself puts in every new bpffs (the bpf_preload iterators).
const KERNEL_ENTRIES: [&str; 2] = ["maps.debug", "progs.debug"];

/// Mounts bpffs at /sys/fs/bpf unless one is there already.
pub fn ensure_bpffs() -> Result<()> {
    if is_bpffs(Path::new(BPFFS))? {
        return Ok(());
    }
    std::fs::create_dir_all("/run/fwctl").context("creating /run/fwctl")?;
    std::fs::write(MOUNTED_MARK, b"").with_context(|| format!("writing {MOUNTED_MARK}"))?;
    let target = std::ffi::CString::new(BPFFS)?;
    let fstype = std::ffi::CString::new("bpf")?;
    let opts = std::ffi::CString::new("mode=0700")?;
    // SAFETY: all pointers are to NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mounting bpffs at {BPFFS}"));
    }
    if !is_bpffs(Path::new(BPFFS))? {
        bail!("{BPFFS} is still not a bpffs after mounting one");
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> Result<bool> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a live statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", path.display()));
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Unmounts the bpffs fwctl mounted once nothing but the kernel's own entries is left in it;
/// a bpffs someone else mounted is never touched.
pub fn release_bpffs_if_unused() -> Result<()> {
    if !Path::new(MOUNTED_MARK).exists() || !is_bpffs(Path::new(BPFFS))? {
        return Ok(());
    }
    let in_use = std::fs::read_dir(BPFFS)
        .with_context(|| format!("reading {BPFFS}"))?
        .filter_map(|e| e.ok())
        .any(|e| !KERNEL_ENTRIES.contains(&e.file_name().to_string_lossy().as_ref()));
    if in_use {
        return Ok(());
    }
    let target = std::ffi::CString::new(BPFFS)?;
    // SAFETY: target is NUL-terminated.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("unmounting {BPFFS}"));
    }
    let _ = std::fs::remove_file(MOUNTED_MARK);
    let _ = std::fs::remove_dir("/run/fwctl");
    Ok(())
}
