//! Raw netfilter netlink, for what rustables does not do: a socket with the buffer sizes
//! and receive timeout a caller needs, and the walking and writing of netlink messages and
//! attributes. Batches (nftables writes) and netlink-log (LOG events) both use it.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Context, Result};

const NETLINK_NETFILTER: i32 = 12;

fn set<T>(fd: &OwnedFd, option: libc::c_int, value: &T) {
    // SAFETY: setsockopt with a value we own, of its own size. A failure leaves the
    // default, which the caller's next call then reports in its own terms.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        );
    }
}

/// `send_buffer`/`receive_buffer` in bytes, set with the FORCE options (above the system's
/// maximum, as nft does; they need CAP_NET_ADMIN, which writing nftables needs anyway).
pub fn open(send_buffer: usize, receive_buffer: usize, timeout: Duration) -> Result<OwnedFd> {
    open_protocol(NETLINK_NETFILTER, send_buffer, receive_buffer, timeout)
        .context("opening a netfilter netlink socket")
}

/// As [`open`], for another netlink protocol (`NETLINK_ROUTE` for link events).
pub fn open_protocol(
    protocol: libc::c_int,
    send_buffer: usize,
    receive_buffer: usize,
    timeout: Duration,
) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_NETLINK)");
    }
    // SAFETY: raw is a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = |n: usize| n.min(i32::MAX as usize) as libc::c_int;
    set(&fd, libc::SO_SNDBUFFORCE, &size(send_buffer));
    set(&fd, libc::SO_RCVBUFFORCE, &size(receive_buffer));
    let timeout = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set(&fd, libc::SO_RCVTIMEO, &timeout);
    Ok(fd)
}

/// The socket [`with_socket`] keeps between exchanges.
static KEPT: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Runs `f` with the process's netfilter socket (made with a send buffer of `send_buffer`
/// bytes, set to it if kept from before). One socket for every dump and batch: closing a
/// netfilter socket while a batch's removals are pending waits for an RCU grace period (the
/// kernel flushes pending destruction at NETLINK_URELEASE), 10-20 ms here, once per socket
/// closed; kept, it is closed once, at exit, when the destruction is usually done. After an
/// error more answers may be queued, so the socket goes and the next call opens another;
/// a call made while another holds it (none does) gets a socket of its own.
pub fn with_socket<T>(send_buffer: usize, f: impl FnOnce(&OwnedFd) -> Result<T>) -> Result<T> {
    let Ok(mut kept) = KEPT.try_lock() else {
        return f(&open(send_buffer, 4 << 20, Duration::from_secs(60))?);
    };
    let fd = match kept.take() {
        Some(fd) => {
            set(
                &fd,
                libc::SO_SNDBUFFORCE,
                &(send_buffer.min(i32::MAX as usize) as libc::c_int),
            );
            fd
        }
        None => open(send_buffer, 4 << 20, Duration::from_secs(60))?,
    };
    let result = f(&fd);
    if result.is_ok() {
        *kept = Some(fd);
    }
    result
}

/// Makes room for `bytes` of answers on `fd` beyond the default (never less than it).
pub fn receive_room(fd: &OwnedFd, bytes: usize) {
    if bytes > 0 {
        set(
            fd,
            libc::SO_RCVBUFFORCE,
            &((bytes + (4 << 20)).min(i32::MAX as usize) as libc::c_int),
        );
    }
}

/// The socket [`with_socket`] kept, taken from it for good (see [`super::release`]).
pub(super) fn take_kept() -> Option<OwnedFd> {
    KEPT.lock().ok().and_then(|mut kept| kept.take())
}

/// Attribute type bits without the nested/byte-order flags.
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// One netlink message in a buffer: where it starts, its length, type and sequence number.
pub struct Header {
    pub at: usize,
    pub len: usize,
    pub kind: u16,
    pub seq: u32,
}

/// The messages in `buf`, in order; a truncated tail is left out.
pub fn messages(buf: &[u8]) -> Vec<Header> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        out.push(Header {
            at,
            len,
            kind: u16::from_ne_bytes([buf[at + 4], buf[at + 5]]),
            seq: u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]),
        });
        at += len.next_multiple_of(4);
    }
    out
}

/// (type with its flags, payload) of each attribute in `buf`.
pub fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((u16::from_ne_bytes([buf[2], buf[3]]), &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// One attribute, padded to 4 bytes.
pub fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// A NUL-terminated string attribute.
pub fn nla_text(kind: u16, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    nla(kind, &bytes)
}

/// One netlink message of the netfilter family: header (`seq`, no port id), nfgenmsg
/// (`family`, version 0, `res_id` big-endian), then `attrs` (already padded, as [`nla`]
/// makes them).
pub fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut msg = (len as u32).to_ne_bytes().to_vec();
    msg.extend(kind.to_ne_bytes());
    msg.extend(flags.to_ne_bytes());
    msg.extend(seq.to_ne_bytes());
    msg.extend(0u32.to_ne_bytes());
    msg.push(family);
    msg.push(0);
    msg.extend(res_id.to_be_bytes());
    msg.extend(attrs);
    msg.resize(msg.len().next_multiple_of(4), 0);
    msg
}

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

/// The error code of an NLMSG_ERROR message (0: an acknowledgement); None for any other.
pub fn error_code(buf: &[u8], h: &Header) -> Option<i32> {
    if h.kind != NLMSG_ERROR || h.len < 20 {
        return None;
    }
    let b = &buf[h.at + 16..h.at + 20];
    Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Sends `request` on `fd`, then reads the replies (datagrams of up to `reply_size` bytes),
/// handing each message and the datagram it is in to `each`, until `each` has an answer.
pub fn exchange<T>(
    fd: &OwnedFd,
    request: &[u8],
    reply_size: usize,
    mut each: impl FnMut(&Header, &[u8]) -> Option<Result<T>>,
) -> Result<T> {
    // SAFETY: send from our buffer.
    if unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("sending a {}-byte netlink request", request.len()));
    }
    let mut buf = RECEIVE.take();
    buf.clear();
    buf.reserve(reply_size);
    let answer = loop {
        // SAFETY: recv writes at most `capacity` bytes into our buffer's spare room; the
        // bytes it wrote (`n`) are then initialized and become the vector's contents.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), reply_size, 0) };
        if n < 0 {
            break Err(io::Error::last_os_error()).context("waiting for netlink's answer");
        }
        if n == 0 {
            break Err(anyhow::anyhow!("netlink closed before answering"));
        }
        // SAFETY: see above: `n <= reply_size <= capacity` bytes were written.
        unsafe { buf.set_len(n as usize) };
        if let Some(answer) = messages(&buf).iter().find_map(|h| each(h, &buf)) {
            break answer;
        }
    };
    RECEIVE.set(buf);
    answer
}

thread_local! {
    /// The receive buffer [`exchange`] uses, kept between calls: a fresh zeroed megabyte
    /// each time cost a page fault per 4 KiB and a memset (~0.2 ms per exchange, a dozen
    /// exchanges per change), where a reply fills a few kilobytes of it.
    static RECEIVE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Calls `each` with the attributes of every object a netfilter dump request returns
/// (nftables message `msg`, nftables family `family`, filtered by table `table`). Raw,
/// because rustables cannot read back sets, nor rules whose expressions use registers it
/// does not know.
fn dump(msg: u16, family: u8, table: &str, each: impl FnMut(Vec<(u16, &[u8])>)) -> Result<()> {
    dump_in(msg, family, Some(table), None, each)
}

/// As [`dump`], for the objects (`NFT_MSG_GETOBJ`) of table `table` of `family`.
pub fn dump_objects(
    msg: u16,
    family: u8,
    table: &str,
    each: impl FnMut(Vec<(u16, &[u8])>),
) -> Result<()> {
    dump(msg, family, table, each)
}

/// As [`dump`], for any family (`NFPROTO_UNSPEC`: all) and any table (None: all).
fn dump_in(
    msg: u16,
    family: u8,
    table: Option<&str>,
    chain: Option<&str>,
    mut each: impl FnMut(Vec<(u16, &[u8])>),
) -> Result<()> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    // NFTA_SET_TABLE, NFTA_RULE_TABLE and NFTA_OBJ_TABLE alike.
    const NFTA_TABLE: u16 = 1;
    // NFTA_RULE_CHAIN: a rule dump of one chain only.
    const NFTA_RULE_CHAIN: u16 = 2;
    let mut attrs = table.map(|t| nla_text(NFTA_TABLE, t)).unwrap_or_default();
    attrs.extend(
        chain
            .map(|c| nla_text(NFTA_RULE_CHAIN, c))
            .unwrap_or_default(),
    );
    let req = message(
        NFNL_SUBSYS_NFTABLES << 8 | msg,
        (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        1,
        family,
        0,
        &attrs,
    );
    with_socket(1 << 16, |fd| {
        exchange(fd, &req, 1 << 20, |h, buf| match error_code(buf, h) {
            _ if h.kind == NLMSG_DONE => Some(Ok(())),
            // No such table: nothing to list.
            Some(code) if code == -libc::ENOENT => Some(Ok(())),
            Some(0) => None,
            Some(code) => {
                Some(Err(io::Error::from_raw_os_error(-code)).context("a netfilter dump"))
            }
            None if h.len >= 20 => {
                each(attributes(&buf[h.at + 20..h.at + h.len]));
                None
            }
            None => None,
        })
    })
    .context("reading a netfilter dump")
}

/// Whether conntrack helpers may be attached to connections in this network namespace, so
/// that a connection may begin RELATED through an expectation: some nftables table holds a
/// ct helper or ct expectation object, or a rule with iptables' CT target (how iptables-nft
/// writes `-j CT --helper`). fwctl's own tables (`own`) have neither.
pub fn helpers_in_use(own: &str) -> Result<bool> {
    const NFT_MSG_GETRULE: u16 = 7;
    const NFT_MSG_GETOBJ: u16 = 19;
    const NFTA_OBJ_TYPE: u16 = 3;
    const NFT_OBJECT_CT_HELPER: u32 = 3;
    const NFT_OBJECT_CT_EXPECT: u32 = 9;
    const NFTA_RULE_EXPRESSIONS: u16 = 4;
    const NFTA_EXPR_NAME: u16 = 1;
    const NFTA_EXPR_DATA: u16 = 2;
    const NFTA_TARGET_NAME: u16 = 1;
    let tables = table_names()?;
    for (family, name) in tables {
        // fwctl's own tables are skipped: their counter objects are as many as their rules.
        if name == own && super::OWN_FAMILIES.contains(&family) {
            continue;
        }
        let mut helper_objects = false;
        dump_in(NFT_MSG_GETOBJ, family, Some(&name), None, |attrs| {
            helper_objects |= attrs.iter().any(|(k, v)| {
                k & NLA_TYPE_MASK == NFTA_OBJ_TYPE
                    && <[u8; 4]>::try_from(*v)
                        .map(u32::from_be_bytes)
                        .is_ok_and(|t| t == NFT_OBJECT_CT_HELPER || t == NFT_OBJECT_CT_EXPECT)
            })
        })
        .context("listing nftables objects")?;
        if helper_objects {
            return Ok(true);
        }
        let mut ct_target = false;
        dump_in(NFT_MSG_GETRULE, family, Some(&name), None, |attrs| {
            for (_, exprs) in attrs
                .iter()
                .filter(|(k, _)| k & NLA_TYPE_MASK == NFTA_RULE_EXPRESSIONS)
            {
                for (_, elem) in attributes(exprs) {
                    let parts = attributes(elem);
                    let is_target = parts
                        .iter()
                        .any(|(k, v)| k & NLA_TYPE_MASK == NFTA_EXPR_NAME && text(v) == "target");
                    ct_target |= is_target
                        && parts
                            .iter()
                            .filter(|(k, _)| k & NLA_TYPE_MASK == NFTA_EXPR_DATA)
                            .flat_map(|(_, d)| attributes(d))
                            .any(|(k, v)| k & NLA_TYPE_MASK == NFTA_TARGET_NAME && text(v) == "CT");
                }
            }
        })
        .with_context(|| format!("listing the rules of nftables table {name}"))?;
        if ct_target {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The text of a NUL-terminated string attribute.
pub fn text(value: &[u8]) -> String {
    let bytes = value.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(bytes).into_owned()
}

/// Names of the sets of table `table` of `family`.
pub fn set_names(family: u8, table: &str) -> Result<Vec<String>> {
    const NFT_MSG_GETSET: u16 = 10;
    const NFTA_SET_NAME: u16 = 2;
    let mut names = Vec::new();
    dump(NFT_MSG_GETSET, family, table, |attrs| {
        names.extend(
            attrs
                .iter()
                .filter(|(k, _)| k & NLA_TYPE_MASK == NFTA_SET_NAME)
                .map(|(_, v)| text(v)),
        )
    })
    .context("listing fwctl's nftables sets")?;
    Ok(names)
}

/// Every nftables table of the namespace: (family, name). The family travels in each
/// table message's nfgenmsg, after the netlink header.
pub fn table_names() -> Result<Vec<(u8, String)>> {
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    let mut tables = Vec::new();
    let req = message(
        NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE,
        (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        1,
        libc::NFPROTO_UNSPEC as u8,
        0,
        &[],
    );
    with_socket(1 << 16, |fd| {
        exchange(fd, &req, 1 << 20, |h, buf| match error_code(buf, h) {
            _ if h.kind == NLMSG_DONE => Some(Ok(())),
            Some(0) => None,
            Some(code) => {
                Some(Err(io::Error::from_raw_os_error(-code)).context("listing nftables tables"))
            }
            None if h.len >= 20 => {
                let family = buf[h.at + 16];
                let name = attributes(&buf[h.at + 20..h.at + h.len])
                    .iter()
                    .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_TABLE_NAME)
                    .map(|(_, v)| text(v));
                if let Some(name) = name {
                    tables.push((family, name));
                }
                None
            }
            None => None,
        })
    })?;
    Ok(tables)
}

/// Names of the chains of table `table` of `family`.
pub fn chain_names(family: u8, table: &str) -> Result<Vec<String>> {
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    let mut names = Vec::new();
    dump(NFT_MSG_GETCHAIN, family, table, |attrs| {
        // Checked here too, in case a kernel lists every table's chains.
        let ours = attrs
            .iter()
            .any(|(k, v)| k & NLA_TYPE_MASK == NFTA_CHAIN_TABLE && text(v) == table);
        if ours {
            names.extend(
                attrs
                    .iter()
                    .filter(|(k, _)| k & NLA_TYPE_MASK == NFTA_CHAIN_NAME)
                    .map(|(_, v)| text(v)),
            )
        }
    })
    .context("listing fwctl's nftables chains")?;
    Ok(names)
}

/// A rule's handle and comment (userdata).
pub struct RuleComment {
    pub handle: u64,
    pub userdata: Vec<u8>,
}

/// Every rule of chain `chain` of table `table` of `family`: its handle and comment.
pub fn rule_comments(family: u8, table: &str, chain: &str) -> Result<Vec<RuleComment>> {
    const NFT_MSG_GETRULE: u16 = 7;
    const NFTA_RULE_HANDLE: u16 = 3;
    const NFTA_RULE_USERDATA: u16 = 7;
    let be64 = |v: &[u8]| v.try_into().map(u64::from_be_bytes).unwrap_or(0);
    let mut out = Vec::new();
    dump_in(NFT_MSG_GETRULE, family, Some(table), Some(chain), |attrs| {
        let mut rule = RuleComment {
            handle: 0,
            userdata: Vec::new(),
        };
        for (kind, value) in attrs {
            match kind & NLA_TYPE_MASK {
                NFTA_RULE_HANDLE => rule.handle = be64(value),
                NFTA_RULE_USERDATA => rule.userdata = value.to_vec(),
                _ => {}
            }
        }
        out.push(rule);
    })
    .context("reading fwctl's nftables rules")?;
    Ok(out)
}
