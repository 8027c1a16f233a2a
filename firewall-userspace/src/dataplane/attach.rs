//! Attaching the pinned programs to an interface with pinned BPF links, so the attachments
//! outlive fwctl: `fw_ingress` at XDP, `fw_mark` at tcx ingress. aya 0.14 cannot turn its
//! XDP link into a pinnable `FdLink`, so the two syscalls are made here, for both hooks
//! alike; drop this module for aya's `FdLink::pin` once aya allows it.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_XDP: u32 = 37;
const BPF_TCX_INGRESS: u32 = 46;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// tcx: with no relative program, insert in front of the interface's other tcx programs,
/// so one of theirs that ends the chain cannot keep the verdict from reaching skb->mark.
const BPF_F_BEFORE: u32 = 1 << 3;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum XdpMode {
    /// In the driver, before the kernel allocates an skb (the fast path).
    Native,
    /// In the kernel's generic hook, for drivers without XDP support.
    Generic,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

/// Where on an interface a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp(XdpMode),
    TcxIngress,
}

impl Hook {
    /// bpf_attr.link_create's attach_type and flags.
    fn attach_type(self) -> (u32, u32) {
        match self {
            Hook::Xdp(mode) => (BPF_XDP, mode.flags()),
            Hook::TcxIngress => (BPF_TCX_INGRESS, BPF_F_BEFORE),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hook::Xdp(_) => "XDP",
            Hook::TcxIngress => "tcx ingress",
        }
    }
}

/// The pin of the XDP link on `ifindex`.
pub fn link_path(pin_dir: &Path, ifindex: u32) -> PathBuf {
    pin_dir.join(format!("link_{ifindex}"))
}

/// The pin of the tcx link on `ifindex`.
pub fn tc_link_path(pin_dir: &Path, ifindex: u32) -> PathBuf {
    pin_dir.join(format!("tclink_{ifindex}"))
}

/// The raw bpf(2) call, for what aya 0.14 lacks (these links, batch map writes in
/// sets/xdp.rs). `attr` is a 128-byte `union bpf_attr`, zero past the command's fields;
/// u32 pairs are packed low word first.
pub(crate) fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a zeroed 128-byte bpf_attr the kernel reads (size passed) and, for
    // batch calls, writes `count` of; the buffers it points to outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Attaches `prog` to `ifindex` at `hook` and pins the link at `path`.
pub fn attach_pinned(prog: BorrowedFd, ifindex: u32, hook: Hook, path: &Path) -> Result<()> {
    // bpf_attr.link_create: prog_fd u32, target_ifindex u32, attach_type u32, flags u32,
    // then (tcx) relative_fd u32 and expected_revision u64, left 0: no relative program,
    // any revision.
    let (attach_type, flags) = hook.attach_type();
    let create = || {
        let mut attr = [0u64; 16];
        attr[0] = (prog.as_raw_fd() as u32 as u64) | ((ifindex as u64) << 32);
        attr[1] = (attach_type as u64) | ((flags as u64) << 32);
        bpf(BPF_LINK_CREATE, &mut attr)
    };
    // tcx refuses a program already on the hook (EEXIST). A link whose last pin was just
    // removed (a killed run's, taken down before linking again) is released by the kernel
    // a moment later, from a work queue: wait for that, briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut created = create();
    while matches!(hook, Hook::TcxIngress)
        && matches!(&created, Err(e) if e.raw_os_error() == Some(libc::EEXIST))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
        created = create();
    }
    let fd = match (created, hook) {
        (Ok(fd), _) => fd,
        (Err(e), Hook::Xdp(mode))
            if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            bail!(
                "the driver does not support {} XDP here ({e}); try --mode generic",
                mode.name()
            )
        }
        (Err(e), Hook::Xdp(_)) if e.raw_os_error() == Some(libc::EBUSY) => {
            match xdp_program_on(ifindex) {
                Ok(Some(id)) => bail!("{}", busy(&ifindex.to_string(), id)),
                _ => bail!("another XDP program is already attached to this interface ({e})"),
            }
        }
        (Err(e), Hook::TcxIngress) if e.raw_os_error() == Some(libc::EINVAL) => {
            bail!("the kernel refused a tcx link (tcx needs Linux 6.6 or later): {e}")
        }
        (Err(e), hook) => return Err(e).context(format!("BPF_LINK_CREATE ({})", hook.name())),
    };
    // SAFETY: the kernel just returned this fd to us.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Dropping `link` closes our fd; the pin keeps the link, hence the attachment.
    pin_link(&link, path)
}

/// Pins a link (another pin of the same link, if it has one already).
pub(crate) fn pin_link(link: &OwnedFd, path: &Path) -> Result<()> {
    // bpf_attr obj_pin: pathname u64, bpf_fd u32, file_flags u32.
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = [0u64; 16];
    attr[0] = c_path.as_ptr() as u64;
    attr[1] = link.as_raw_fd() as u32 as u64;
    bpf(BPF_OBJ_PIN, &mut attr)
        .with_context(|| format!("pinning the link at {}", path.display()))?;
    Ok(())
}

/// Which program a pinned link runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Xdp,
    Tcx,
}

/// The pinned links of a pin directory, by file name.
pub fn pinned_links(pin_dir: &Path) -> Result<Vec<(String, LinkKind)>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(pin_dir).with_context(|| format!("reading {}", pin_dir.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("link_") {
            out.push((name, LinkKind::Xdp));
        } else if name.starts_with("tclink_") {
            out.push((name, LinkKind::Tcx));
        }
    }
    Ok(out)
}

/// Points the pinned link at `path` to another program (BPF_LINK_UPDATE: one atomic swap
/// on its hook, no moment without a program), and pins the link at `also` as well first,
/// if given, so that it survives the removal of its first pin.
pub fn relink(path: &Path, prog: BorrowedFd, also: Option<&Path>) -> Result<()> {
    // bpf_attr obj_get: pathname u64, bpf_fd u32, file_flags u32.
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = [0u64; 16];
    attr[0] = c_path.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)
        .with_context(|| format!("opening the link pinned at {}", path.display()))?;
    // SAFETY: the kernel just returned this fd to us.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if let Some(also) = also {
        pin_link(&link, also)?;
    }
    // bpf_attr link_update: link_fd u32, new_prog_fd u32, flags u32, old_prog_fd u32.
    let mut attr = [0u64; 16];
    attr[0] = (link.as_raw_fd() as u32 as u64) | ((prog.as_raw_fd() as u32 as u64) << 32);
    bpf(BPF_LINK_UPDATE, &mut attr)
        .with_context(|| format!("moving the link at {} to the new program", path.display()))?;
    Ok(())
}

/// Detaches by removing the link's pin, the last reference to it.
pub fn detach_pinned(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The id of the XDP program attached to `ifindex` (by anyone, through a link or netlink),
/// as rtnetlink reports it (IFLA_XDP_PROG_ID); None when there is none.
pub fn xdp_program_on(ifindex: u32) -> Result<Option<u32>> {
    use crate::netfilter::netlink;
    const NETLINK_ROUTE: libc::c_int = 0;
    const RTM_GETLINK: u16 = 18;
    const RTM_NEWLINK: u16 = 16;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_PROG_ID: u16 = 4;
    let sock = netlink::open_protocol(
        NETLINK_ROUTE,
        1 << 16,
        1 << 16,
        std::time::Duration::from_secs(5),
    )
    .context("opening an rtnetlink socket")?;
    // nlmsghdr, then ifinfomsg: family, pad, type, index, flags, change.
    let mut req = 32u32.to_ne_bytes().to_vec();
    req.extend(RTM_GETLINK.to_ne_bytes());
    req.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend(1u32.to_ne_bytes());
    req.extend(0u32.to_ne_bytes());
    req.extend([libc::AF_UNSPEC as u8, 0, 0, 0]);
    req.extend((ifindex as i32).to_ne_bytes());
    req.extend([0u8; 8]);
    netlink::exchange(&sock, &req, 1 << 16, |h, buf| {
        if let Some(code) = netlink::error_code(buf, h) {
            return Some(
                Err(std::io::Error::from_raw_os_error(-code))
                    .context(format!("rtnetlink: interface {ifindex}")),
            );
        }
        if h.kind != RTM_NEWLINK || h.len < 32 {
            return None;
        }
        let attrs = netlink::attributes(&buf[h.at + 32..h.at + h.len]);
        let id = attrs
            .iter()
            .find(|(kind, _)| kind & netlink::NLA_TYPE_MASK == IFLA_XDP)
            .and_then(|(_, xdp)| {
                netlink::attributes(xdp)
                    .into_iter()
                    .find(|(kind, _)| kind & netlink::NLA_TYPE_MASK == IFLA_XDP_PROG_ID)
            })
            .and_then(|(_, v)| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
            .filter(|&id| id != 0);
        Some(Ok(id))
    })
}

/// What to tell an operator whose interface already runs another XDP program: which one,
/// and how to make room. The kernel allows one XDP program per interface.
pub fn busy(iface: &str, id: u32) -> String {
    let name = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(String::from))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "(no name)".into());
    format!(
        "{iface} already runs another XDP program, {name} (id {id}), and an interface takes one: \
         remove it first (`ip link set dev {iface} xdp off` if it was attached through netlink, \
         or stop the tool that holds its link; `bpftool net show dev {iface}` shows it), then \
         fwctl attach {iface} again. Meanwhile fwctl's nftables table judges {iface}'s packets \
         with the same rules"
    )
}
