//! Sends a rustables batch as nft does: one sendmsg, whatever its size, with a socket buffer
//! raised to fit (rustables' own send fails with EMSGSIZE past the default ~200 KB, a few
//! hundred rules), and an acknowledgement asked for the last message only (one per message
//! overflows the receive buffer on large batches). Errors come back for failing messages
//! whether asked or not, so nothing goes unnoticed. Placeholders for expressions rustables
//! cannot write ([`super::exprs::RAW_MARK`]) are swapped for the real ones on the way.

use std::io;

use anyhow::{Context, Result};

use super::incremental::Place;
use super::netlink::{
    attributes, error_code, exchange, message, messages as headers, nla, Header, NLA_TYPE_MASK,
};

const NLM_F_ACK: u16 = 4;

/// The kernel refused a rule of a batch: its chain, and the counter slot its comment names
/// (`fwctl rule N`), so that the caller can say which of the operator's rules it was.
#[derive(Debug)]
pub struct RefusedRule {
    pub chain: String,
    pub slot: Option<u32>,
}

impl std::fmt::Display for RefusedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the kernel refused a rule of chain {}", self.chain)?;
        if let Some(slot) = self.slot {
            write!(f, " (fwctl rule {slot})")?;
        }
        Ok(())
    }
}

/// What a NEWRULE message (its payload after the nfgenmsg) says of its rule.
fn refused_rule(payload: &[u8]) -> Option<RefusedRule> {
    const NFTA_RULE_CHAIN: u16 = 2;
    const NFTA_RULE_USERDATA: u16 = 7;
    let attrs = attributes(payload);
    let chain = attrs
        .iter()
        .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_RULE_CHAIN)
        .map(|(_, v)| super::netlink::text(v))?;
    let slot = attrs
        .iter()
        .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_RULE_USERDATA)
        .and_then(|(_, v)| super::parse_comment(v))
        .and_then(|c| c.strip_prefix(super::COMMENT_RULE))
        .and_then(|n| n.split(' ').next()?.parse().ok());
    Some(RefusedRule { chain, slot })
}
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_LOG_PREFIX: u16 = 2;

/// The real expression a placeholder list element stands for, or None.
fn placeholder(elem: &[u8]) -> Option<Vec<u8>> {
    let mark = super::exprs::RAW_MARK.as_bytes();
    let (_, data) = attributes(elem)
        .into_iter()
        .find(|(k, _)| k & NLA_TYPE_MASK == NFTA_EXPR_DATA)?;
    let (_, prefix) = attributes(data)
        .into_iter()
        .find(|(k, p)| k & NLA_TYPE_MASK == NFTA_LOG_PREFIX && p.starts_with(mark))?;
    let hex = prefix[mark.len()..].split(|b| *b == 0).next()?;
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    hex.chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// The batch with every placeholder expression replaced, lengths fixed up.
fn substitute(buf: &[u8]) -> Vec<u8> {
    let mark = super::exprs::RAW_MARK.as_bytes();
    if !buf.windows(mark.len()).any(|w| w == mark) {
        return buf.to_vec();
    }
    let mut out = Vec::with_capacity(buf.len());
    for h in headers(buf) {
        let msg = &buf[h.at..h.at + h.len];
        // Header and nfgenmsg, then the attributes.
        if msg.len() < 20 || !msg.windows(mark.len()).any(|w| w == mark) {
            out.extend(msg);
            out.resize(out.len().next_multiple_of(4), 0);
            continue;
        }
        let mut body = msg[..20].to_vec();
        for (kind, payload) in attributes(&msg[20..]) {
            if kind & NLA_TYPE_MASK != NFTA_RULE_EXPRESSIONS {
                body.extend(nla(kind, payload));
                continue;
            }
            let list: Vec<u8> = attributes(payload)
                .into_iter()
                .flat_map(|(k, elem)| nla(k, &placeholder(elem).unwrap_or_else(|| elem.to_vec())))
                .collect();
            body.extend(nla(kind, &list));
        }
        let len = body.len() as u32;
        body[0..4].copy_from_slice(&len.to_ne_bytes());
        out.extend(body);
    }
    out
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLM_F_REQUEST: u16 = 1;

/// A batch of nftables messages written by hand, for what rustables cannot express (set
/// elements with interval ends and timeouts, concatenated keys, counter objects), with
/// rustables' messages taken in too; sent by [`send_raw`] or [`send_echoed`]. Messages are
/// numbered in order: what the kernel echoes back names a message by that number.
pub struct RawBatch {
    buf: Vec<u8>,
    seq: u32,
}

impl RawBatch {
    pub fn new() -> RawBatch {
        let mut b = RawBatch {
            buf: Vec::new(),
            seq: 0,
        };
        b.push(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
        b
    }

    fn push(&mut self, kind: u16, flags: u16, family: u8, res_id: u16, attrs: &[u8]) {
        let msg = message(kind, NLM_F_REQUEST | flags, self.seq, family, res_id, attrs);
        self.buf.extend(msg);
        self.seq += 1;
    }

    /// An nftables message (`NFT_MSG_*`) for an object of `family` (NFPROTO_*).
    pub fn add(&mut self, msg: u16, flags: u16, family: u8, attrs: &[u8]) {
        self.push(NFNL_SUBSYS_NFTABLES << 8 | msg, flags, family, 0, attrs);
    }

    /// Appends every message of `batch`.
    pub fn extend(&mut self, batch: rustables::Batch) {
        let buf = finalized(batch);
        for h in inner_messages(&buf) {
            self.copy(&buf[h.at..h.at + h.len], 0, 0, &[]);
        }
    }

    /// Appends a copy of message `msg` with `attrs` added, flags `set` set and `clear`
    /// cleared; returns its number.
    pub fn copy(&mut self, msg: &[u8], set: u16, clear: u16, attrs: &[u8]) -> u32 {
        let at = self.buf.len();
        self.buf.extend(msg);
        self.buf.extend(attrs);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        let len = (msg.len() + attrs.len()) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
        let flags = u16::from_ne_bytes([self.buf[at + 6], self.buf[at + 7]]);
        self.buf[at + 6..at + 8].copy_from_slice(&((flags | set) & !clear).to_ne_bytes());
        let seq = self.seq;
        self.buf[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
        self.seq += 1;
        seq
    }

    /// Appends a copy of rule message `msg` (NEWRULE) with flags `set` set, placed in its
    /// chain as `place` says; returns its number.
    pub fn copy_rule(&mut self, msg: &[u8], set: u16, place: Place) -> u32 {
        const NLM_F_APPEND: u16 = 0x800;
        const NFTA_RULE_POSITION: u16 = 6;
        // A position with NLM_F_APPEND (rustables sets it on every rule) is after that
        // rule; without it, before.
        let (position, clear) = match place {
            Place::After(handle) => (Some(handle), 0),
            Place::Before(handle) => (Some(handle), NLM_F_APPEND),
            Place::End => (None, 0),
        };
        let attrs = position
            .map(|p| nla(NFTA_RULE_POSITION, &p.to_be_bytes()))
            .unwrap_or_default();
        self.copy(msg, set, clear, &attrs)
    }

    /// Whether anything but the begin message is in.
    pub fn is_empty(&self) -> bool {
        self.seq <= 1
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.push(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
        self.buf
    }
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch::new()
    }
}

/// The messages of a finalized batch, without its begin and end.
pub fn inner_messages(buf: &[u8]) -> Vec<Header> {
    headers(buf)
        .into_iter()
        .filter(|h| h.kind != NFNL_MSG_BATCH_BEGIN && h.kind != NFNL_MSG_BATCH_END)
        .collect()
}

/// A rustables batch as it will leave: finalized, placeholders swapped.
pub fn finalized(batch: rustables::Batch) -> Vec<u8> {
    substitute(&batch.finalize())
}

/// Sends the batch and waits until the kernel has applied it (all of it) or refused it
/// (none of it).
pub fn send(batch: rustables::Batch) -> Result<()> {
    send_raw(substitute(&batch.finalize()))
}

/// Sends a finalized batch (begin and end messages included), as [`send`].
pub fn send_raw(buf: Vec<u8>) -> Result<()> {
    send_echoed(buf, 0, |_, _| {})
}

/// As [`send_raw`], handing `echo` each message the kernel sends back for messages sent
/// with `NLM_F_ECHO` (with its number and the datagram it is in); `echoed_bytes` is room
/// for them, since the kernel queues them all before the answer.
pub fn send_echoed(
    mut buf: Vec<u8>,
    echoed_bytes: usize,
    mut echo: impl FnMut(&Header, &[u8]),
) -> Result<()> {
    let messages = headers(&buf);
    let objects: Vec<&Header> = messages
        .iter()
        .filter(|h| h.kind != NFNL_MSG_BATCH_BEGIN && h.kind != NFNL_MSG_BATCH_END)
        .collect();
    let Some(last) = objects.last().map(|h| h.seq) else {
        return Ok(());
    };
    for h in &messages {
        let flags_at = h.at + 6;
        let mut flags = u16::from_ne_bytes([buf[flags_at], buf[flags_at + 1]]);
        if h.seq == last && h.kind != NFNL_MSG_BATCH_END {
            flags |= NLM_F_ACK;
        } else {
            flags &= !NLM_F_ACK;
        }
        buf[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
        debug_assert!(h.len >= 16);
    }

    super::netlink::with_socket(buf.len() + (1 << 16), |fd| {
        super::netlink::receive_room(fd, echoed_bytes);
        exchange(fd, &buf, 1 << 20, |h, reply| match error_code(reply, h) {
            None if h.kind >> 8 == NFNL_SUBSYS_NFTABLES => {
                echo(h, reply);
                None
            }
            Some(0) if h.seq == last => Some(Ok(())),
            Some(code) if code != 0 => {
                const NFT_MSG_NEWRULE: u16 = 10 << 8 | 6;
                let index = objects.iter().position(|o| o.seq == h.seq);
                let err = Err(io::Error::from_raw_os_error(-code)).with_context(|| match index {
                    Some(i) => {
                        format!("the kernel refused message {} of {}", i + 1, objects.len())
                    }
                    None => "the kernel refused the batch".to_string(),
                });
                // nfgenmsg (4 bytes) after the netlink header (16).
                let rule = index
                    .map(|i| objects[i])
                    .filter(|o| o.kind == NFT_MSG_NEWRULE && o.len >= 20)
                    .and_then(|o| refused_rule(&buf[o.at + 20..o.at + o.len]));
                Some(match rule {
                    Some(rule) => err.context(rule),
                    None => err,
                })
            }
            _ => None,
        })
    })
    .with_context(|| format!("applying a {}-byte nftables batch", buf.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::PortRange;

    /// A placeholder leaves the batch as the real expression, and every length that holds
    /// it (expression list, message) is fixed up.
    #[test]
    fn placeholders_become_real_expressions() {
        let table = rustables::Table::new(rustables::ProtocolFamily::Inet).with_name("t");
        let chain = rustables::Chain::new(&table).with_name("c");
        let mut exprs = Vec::new();
        super::super::exprs::redirect(Some(PortRange { min: 80, max: 81 }), 0, &mut exprs);
        let mut rule = rustables::Rule::new(&chain).unwrap();
        for e in exprs {
            rule.add_expr(e);
        }
        let mut batch = rustables::Batch::new();
        batch.add(&rule, rustables::MsgType::Add);
        let raw = batch.finalize();
        let out = substitute(&raw);
        let mark = super::super::exprs::RAW_MARK.as_bytes();
        assert!(raw.windows(mark.len()).any(|w| w == mark));
        assert!(!out.windows(mark.len()).any(|w| w == mark));
        assert!(out.windows(6).any(|w| w == b"redir\0"));
        let lengths: usize = headers(&out)
            .iter()
            .map(|h| h.len.next_multiple_of(4))
            .sum();
        assert_eq!(
            lengths,
            out.len(),
            "message lengths cover the batch exactly"
        );
        assert_eq!(headers(&out).len(), headers(&raw).len());
    }

    /// A refused NEWRULE message names its chain and the slot of its comment.
    #[test]
    fn a_refused_rule_message_names_its_chain_and_slot() {
        let table = rustables::Table::new(rustables::ProtocolFamily::Inet).with_name("t");
        let chain = rustables::Chain::new(&table).with_name("0v4-INPUT");
        let mut rule = rustables::Rule::new(&chain).unwrap();
        rule.set_userdata(super::super::comment("fwctl rule 42 and policy"));
        let mut batch = rustables::Batch::new();
        batch.add(&rule, rustables::MsgType::Add);
        let out = finalized(batch);
        let msg = headers(&out)
            .into_iter()
            .find(|h| h.kind == 10 << 8 | 6)
            .expect("a NEWRULE message");
        let refused = refused_rule(&out[msg.at + 20..msg.at + msg.len]).unwrap();
        assert_eq!(
            (refused.chain.as_str(), refused.slot),
            ("0v4-INPUT", Some(42))
        );
        assert_eq!(
            refused.to_string(),
            "the kernel refused a rule of chain 0v4-INPUT (fwctl rule 42)"
        );
    }
}
