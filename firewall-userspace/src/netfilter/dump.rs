//! Reading the table's rules back (for their counters) over raw netlink: rustables decodes
//! every expression of every rule and gives up on a register it does not name, such as the
//! 32-bit registers set lookups on concatenations load into.

use std::{io, os::fd::AsRawFd, time::Duration};

use anyhow::{bail, Result};

use super::netlink::{attributes, messages, NLA_TYPE_MASK};

const NFT_MSG_GETRULE: u16 = 7;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFPROTO_INET: u8 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

/// What fwctl reads of a rule.
pub struct DumpedRule {
    pub chain: String,
    pub userdata: Vec<u8>,
    /// Packets and bytes of its counter expression, if it has one.
    pub counter: Option<(u64, u64)>,
}

fn text(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn be64(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn counter(expressions: &[u8]) -> Option<(u64, u64)> {
    attributes(expressions).into_iter().find_map(|(_, elem)| {
        let attrs = attributes(elem);
        let name = attrs
            .iter()
            .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_EXPR_NAME)
            .map(|(_, v)| text(v))?;
        if name != "counter" {
            return None;
        }
        let (_, data) = attrs
            .iter()
            .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_EXPR_DATA)?;
        let mut c = (0, 0);
        for (k, v) in attributes(data) {
            match k & NLA_TYPE_MASK {
                NFTA_COUNTER_PACKETS => c.0 = be64(v),
                NFTA_COUNTER_BYTES => c.1 = be64(v),
                _ => {}
            }
        }
        Some(c)
    })
}

/// Every rule of the inet table `table`.
pub fn rules(table: &str) -> Result<Vec<DumpedRule>> {
    let mut name = table.as_bytes().to_vec();
    name.push(0);
    let attr = super::netlink::nla(NFTA_RULE_TABLE, &name);
    let mut req = ((16 + 4 + attr.len()) as u32).to_ne_bytes().to_vec();
    req.extend((NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE).to_ne_bytes());
    req.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend(1u32.to_ne_bytes());
    req.extend(0u32.to_ne_bytes());
    req.extend([NFPROTO_INET, 0, 0, 0]);
    req.extend(attr);
    let fd = super::netlink::open(1 << 16, 4 << 20, Duration::from_secs(10))?;
    // SAFETY: send from our buffer.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        // SAFETY: recv into our buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error().into());
        }
        if n == 0 {
            bail!("netlink closed during the rule dump");
        }
        let data = &buf[..n as usize];
        for h in messages(data) {
            match h.kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let at = h.at + 16;
                    let code = data
                        .get(at..at + 4)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, i32::from_ne_bytes);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code).into());
                    }
                }
                _ if h.len > 20 => {
                    let mut rule = DumpedRule {
                        chain: String::new(),
                        userdata: Vec::new(),
                        counter: None,
                    };
                    for (k, v) in attributes(&data[h.at + 20..h.at + h.len]) {
                        match k & NLA_TYPE_MASK {
                            NFTA_RULE_CHAIN => rule.chain = text(v),
                            NFTA_RULE_USERDATA => rule.userdata = v.to_vec(),
                            NFTA_RULE_EXPRESSIONS => rule.counter = counter(v),
                            _ => {}
                        }
                    }
                    out.push(rule);
                }
                _ => {}
            }
        }
    }
}
