//! Tests, verdicts and counters as rustables expressions: the only place that knows
//! nftables' registers, payload offsets and byte orders.

use rustables::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, ConntrackKey, Immediate, Log, Meta, MetaType, NatType, Payload,
    RawExpression, Register, Reject, RejectType, VerdictKind,
};
use rustables::sys::{NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER};

use super::netlink::{nla, nla_text};
use super::translate::{nft_ct_bits, Test};
use crate::rules::{Family, NatTo, PortRange, RejectWith};

fn op(equal: bool) -> CmpOp {
    if equal {
        CmpOp::Eq
    } else {
        CmpOp::Neq
    }
}

/// Where a packet's address sits in the network header: offset and length.
fn addr_field(family: Family, src: bool) -> (u32, u32) {
    match (family, src) {
        (Family::V4, true) => (12, 4),
        (Family::V4, false) => (16, 4),
        (Family::V6, true) => (8, 16),
        (Family::V6, false) => (24, 16),
    }
}

/// A payload load into register `dreg`, by number (the 32-bit registers of a concatenated
/// key included).
fn load_into(dreg: u32, base: u32, offset: u32, len: u32) -> RawExpression {
    const NFTA_PAYLOAD_DREG: u16 = 1;
    const NFTA_PAYLOAD_BASE: u16 = 2;
    const NFTA_PAYLOAD_OFFSET: u16 = 3;
    const NFTA_PAYLOAD_LEN: u16 = 4;
    raw(
        "payload",
        &[
            (NFTA_PAYLOAD_DREG, dreg),
            (NFTA_PAYLOAD_BASE, base),
            (NFTA_PAYLOAD_OFFSET, offset),
            (NFTA_PAYLOAD_LEN, len),
        ],
    )
}

fn load(base: u32, offset: u32, len: u32) -> RawExpression {
    Payload::default()
        .with_base(base)
        .with_offset(offset)
        .with_len(len)
        .with_dreg(Register::Reg1)
        .into()
}

fn meta(key: MetaType) -> RawExpression {
    Meta::new(key).into()
}

/// `reg & mask` then compared: the shape of prefixes, flags and mark bits.
fn masked(mask: Vec<u8>, op: CmpOp, value: Vec<u8>) -> [RawExpression; 2] {
    let zero = vec![0; mask.len()];
    // Lengths are equal by construction; Bitwise::new only checks that.
    let bitwise = Bitwise::new(mask, zero).unwrap_or_default();
    [bitwise.into(), Cmp::new(op, value).into()]
}

/// The expressions of one test, appended to `out`.
pub fn test(t: &Test, family: Family, out: &mut Vec<RawExpression>) {
    match t {
        Test::Iface {
            out: is_out,
            name,
            prefix,
            equal,
        } => {
            out.push(meta(if *is_out {
                MetaType::OifName
            } else {
                MetaType::IifName
            }));
            let mut bytes = name.as_bytes().to_vec();
            if !prefix {
                bytes.push(0);
            }
            out.push(Cmp::new(op(*equal), bytes).into());
        }
        Test::Addr { src, cidr, equal } => {
            let (offset, len) = addr_field(family, *src);
            out.push(load(NFT_PAYLOAD_NETWORK_HEADER, offset, len));
            let addr = match cidr.addr {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            };
            let bits = len * 8;
            if (cidr.prefix as u32) < bits {
                let mask_bits = u128::MAX
                    .checked_shl(128 - cidr.prefix as u32)
                    .unwrap_or(0)
                    .to_be_bytes();
                let mask = mask_bits[..len as usize].to_vec();
                out.extend(masked(mask, op(*equal), addr));
            } else {
                out.push(Cmp::new(op(*equal), addr).into());
            }
        }
        Test::Proto { proto, equal } => {
            out.push(meta(MetaType::L4Proto));
            out.push(Cmp::new(op(*equal), vec![*proto]).into());
        }
        Test::Port { src, min, max } => {
            out.push(load(
                NFT_PAYLOAD_TRANSPORT_HEADER,
                if *src { 0 } else { 2 },
                2,
            ));
            if min == max {
                out.push(Cmp::new(CmpOp::Eq, min.to_be_bytes().to_vec()).into());
            } else {
                // Ports are big-endian, and nftables compares bytes in order: the
                // comparison is numeric.
                if *min > 0 {
                    out.push(Cmp::new(CmpOp::Gte, min.to_be_bytes().to_vec()).into());
                }
                if *max < u16::MAX {
                    out.push(Cmp::new(CmpOp::Lte, max.to_be_bytes().to_vec()).into());
                }
            }
        }
        Test::IcmpType { kind, equal } => {
            out.push(load(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1));
            out.push(Cmp::new(op(*equal), vec![*kind]).into());
        }
        Test::IcmpCode { min, max } => {
            out.push(load(NFT_PAYLOAD_TRANSPORT_HEADER, 1, 1));
            if min == max {
                out.push(Cmp::new(CmpOp::Eq, vec![*min]).into());
            } else {
                out.push(Cmp::new(CmpOp::Gte, vec![*min]).into());
                out.push(Cmp::new(CmpOp::Lte, vec![*max]).into());
            }
        }
        Test::TcpFlags { mask, comp, equal } => {
            out.push(load(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1));
            out.extend(masked(vec![*mask], op(*equal), vec![*comp]));
        }
        Test::CtState { states, any } => {
            out.push(Conntrack::new(ConntrackKey::State).into());
            let bits = nft_ct_bits(*states).to_ne_bytes().to_vec();
            // `any`: some bit set, i.e. not zero.
            out.extend(masked(bits, op(!*any), vec![0; 4]));
        }
    }
}

/// `meta mark & mask == value`.
pub fn mark(mask: u32, value: u32, out: &mut Vec<RawExpression>) {
    out.push(meta(MetaType::Mark));
    out.extend(masked(
        mask.to_ne_bytes().to_vec(),
        CmpOp::Eq,
        value.to_ne_bytes().to_vec(),
    ));
}

/// `meta mark set meta mark & ~mask`: takes fwctl's bits off the packet once its table
/// has read them, so later hooks, policy routing and other tools' `-m mark` see the mark
/// the packet arrived with.
pub fn clear_mark(mask: u32, out: &mut Vec<RawExpression>) {
    set_mark(crate::rules::mark::Mark { value: 0, mask }, out);
}

/// `meta mark set meta mark & ~mask ^ value`: iptables' MARK (`--set-xmark value/mask`).
pub fn set_mark(m: crate::rules::mark::Mark, out: &mut Vec<RawExpression>) {
    out.push(meta(MetaType::Mark));
    out.push(xmark(m));
    set_meta_mark(out);
}

/// `ct mark set reg1` (NFT_CT_MARK from register 1).
fn set_ct_mark(out: &mut Vec<RawExpression>) {
    const NFTA_CT_KEY: u16 = 2;
    const NFTA_CT_SREG: u16 = 4;
    const NFT_CT_MARK: u32 = 3;
    out.push(raw("ct", &[(NFTA_CT_KEY, NFT_CT_MARK), (NFTA_CT_SREG, 1)]));
}

/// `ct zone set N` (`ct original zone set N`, `ct reply zone set N`): `-j CT --zone*`.
/// The kernel loads the zone from its register as a host-order u16.
pub fn ct_zone(z: crate::rules::CtZone, out: &mut Vec<RawExpression>) {
    const NFTA_CT_KEY: u16 = 2;
    const NFTA_CT_DIRECTION: u16 = 3;
    const NFTA_CT_SREG: u16 = 4;
    const NFT_CT_ZONE: u32 = 17;
    out.push(Immediate::new_data(z.zone.to_ne_bytes().to_vec(), Register::Reg1).into());
    let mut attrs = vec![
        Attr::U32(NFTA_CT_KEY, NFT_CT_ZONE),
        Attr::U32(NFTA_CT_SREG, 1),
    ];
    if let Some(dir) = z.dir {
        // IP_CT_DIR_ORIGINAL 0, IP_CT_DIR_REPLY 1.
        attrs.push(Attr::U8(
            NFTA_CT_DIRECTION,
            (dir == crate::rules::ZoneDir::Reply) as u8,
        ));
    }
    out.push(placeholder(&element("ct", &attrs)));
}

/// `meta mark set reg1`.
fn set_meta_mark(out: &mut Vec<RawExpression>) {
    const NFTA_META_KEY: u16 = 2;
    const NFTA_META_SREG: u16 = 3;
    const NFT_META_MARK: u32 = 3;
    out.push(raw(
        "meta",
        &[(NFTA_META_KEY, NFT_META_MARK), (NFTA_META_SREG, 1)],
    ));
}

/// iptables' CONNMARK with whole marks: `ct mark set meta mark` (save), `meta mark set ct
/// mark` (restore), `ct mark set ct mark & ~mask ^ value` (set).
pub fn connmark(c: crate::rules::mark::Connmark, out: &mut Vec<RawExpression>) {
    use crate::rules::mark::Connmark;
    match c {
        Connmark::Save => {
            out.push(meta(MetaType::Mark));
            set_ct_mark(out);
        }
        Connmark::Restore => {
            out.push(Conntrack::new(ConntrackKey::Mark).into());
            set_meta_mark(out);
        }
        Connmark::Set(m) => {
            out.push(Conntrack::new(ConntrackKey::Mark).into());
            out.push(xmark(m));
            set_ct_mark(out);
        }
        // ctmark = (ctmark & ~ctmask) ^ (mark & nfmask), as xt_CONNMARK.
        Connmark::SaveMasked { nfmask, ctmask } => {
            out.push(meta(MetaType::Mark));
            out.push(and_xor(1, 1, nfmask, 0));
            if ctmask != u32::MAX {
                out.push(ct_mark_into(2));
                out.push(and_xor(2, 2, !ctmask, 0));
                out.push(xor_registers());
            }
            set_ct_mark(out);
        }
        // mark = (mark & ~nfmask) ^ (ctmark & ctmask).
        Connmark::RestoreMasked { nfmask, ctmask } => {
            out.push(Conntrack::new(ConntrackKey::Mark).into());
            out.push(and_xor(1, 1, ctmask, 0));
            if nfmask != u32::MAX {
                out.push(meta_mark_into(2));
                out.push(and_xor(2, 2, !nfmask, 0));
                out.push(xor_registers());
            }
            set_meta_mark(out);
        }
    }
}

const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;

/// Register `dreg` = register `sreg` & mask ^ xor, on a host-order u32.
fn and_xor(sreg: u32, dreg: u32, mask: u32, xor: u32) -> RawExpression {
    const NFTA_BITWISE_MASK: u16 = 4;
    const NFTA_BITWISE_XOR: u16 = 5;
    placeholder(&element(
        "bitwise",
        &[
            Attr::U32(NFTA_BITWISE_SREG, sreg),
            Attr::U32(NFTA_BITWISE_DREG, dreg),
            Attr::U32(NFTA_BITWISE_LEN, 4),
            Attr::Value(NFTA_BITWISE_MASK, &mask.to_ne_bytes()),
            Attr::Value(NFTA_BITWISE_XOR, &xor.to_ne_bytes()),
        ],
    ))
}

/// Register 1 ^= register 2: a bitwise operation between two registers, which kernels
/// from 6.13 on have (NFTA_BITWISE_SREG2); only CONNMARK's partial masks on both marks
/// need it, and an older kernel refuses the batch.
fn xor_registers() -> RawExpression {
    const NFTA_BITWISE_OP: u16 = 6;
    const NFTA_BITWISE_SREG2: u16 = 8;
    const NFT_BITWISE_XOR: u32 = 5;
    raw(
        "bitwise",
        &[
            (NFTA_BITWISE_SREG, 1),
            (NFTA_BITWISE_SREG2, 2),
            (NFTA_BITWISE_DREG, 1),
            (NFTA_BITWISE_LEN, 4),
            (NFTA_BITWISE_OP, NFT_BITWISE_XOR),
        ],
    )
}

fn ct_mark_into(dreg: u32) -> RawExpression {
    const NFTA_CT_DREG: u16 = 1;
    const NFTA_CT_KEY: u16 = 2;
    const NFT_CT_MARK: u32 = 3;
    raw("ct", &[(NFTA_CT_DREG, dreg), (NFTA_CT_KEY, NFT_CT_MARK)])
}

fn meta_mark_into(dreg: u32) -> RawExpression {
    const NFT_META_MARK: u32 = 3;
    meta_into(dreg, NFT_META_MARK)
}

/// `meta KEY` loaded into register `dreg` (`NFT_META_*`, enum nft_meta_keys).
fn meta_into(dreg: u32, key: u32) -> RawExpression {
    const NFTA_META_DREG: u16 = 1;
    const NFTA_META_KEY: u16 = 2;
    raw("meta", &[(NFTA_META_DREG, dreg), (NFTA_META_KEY, key)])
}

/// reg1 = reg1 & ~mask ^ value, on a host-order u32 mark.
fn xmark(m: crate::rules::mark::Mark) -> RawExpression {
    Bitwise::new(
        (!m.mask).to_ne_bytes().to_vec(),
        m.value.to_ne_bytes().to_vec(),
    )
    .unwrap_or_default()
    .into()
}

/// iptables' TCPMSS: `tcp option maxseg size set rt mtu` (clamp: the route's MTU less the
/// headers) or `set N`; the kernel only ever lowers the option, as xt_TCPMSS does.
pub fn tcpmss(mss: Option<u16>, out: &mut Vec<RawExpression>) {
    const NFTA_RT_DREG: u16 = 1;
    const NFTA_RT_KEY: u16 = 2;
    const NFT_RT_TCPMSS: u32 = 4;
    const NFTA_EXTHDR_TYPE: u16 = 2;
    const NFTA_EXTHDR_OFFSET: u16 = 3;
    const NFTA_EXTHDR_LEN: u16 = 4;
    const NFTA_EXTHDR_OP: u16 = 6;
    const NFTA_EXTHDR_SREG: u16 = 7;
    const TCPOPT_MAXSEG: u8 = 2;
    const NFT_EXTHDR_OP_TCPOPT: u32 = 1;
    match mss {
        None => out.push(raw(
            "rt",
            &[(NFTA_RT_DREG, 1), (NFTA_RT_KEY, NFT_RT_TCPMSS)],
        )),
        Some(n) => out.push(Immediate::new_data(n.to_be_bytes().to_vec(), Register::Reg1).into()),
    }
    out.push(placeholder(&element(
        "exthdr",
        &[
            Attr::U8(NFTA_EXTHDR_TYPE, TCPOPT_MAXSEG),
            Attr::U32(NFTA_EXTHDR_OFFSET, 2),
            Attr::U32(NFTA_EXTHDR_LEN, 2),
            Attr::U32(NFTA_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT),
            Attr::U32(NFTA_EXTHDR_SREG, 1),
        ],
    )));
}

/// `notrack`: conntrack leaves the packet alone (iptables' `-j CT --notrack`).
pub fn notrack() -> RawExpression {
    placeholder(&element("notrack", &[]))
}

/// The disjoint ways a packet satisfies a rule's netfilter-only matches, each a
/// conjunction: one, unless a match is a disjunction of its own (`-m tcpmss ! --mss`: no
/// MSS option, or one out of the range).
pub fn nf_alternatives(
    nf: &[crate::rules::Neg<crate::rules::matches::NfMatch>],
    family: Family,
) -> Vec<Vec<RawExpression>> {
    use crate::rules::matches::NfMatch;
    let mut out: Vec<Vec<RawExpression>> = vec![Vec::new()];
    for m in nf {
        let alts: Vec<Vec<RawExpression>> = match &m.value {
            NfMatch::TcpMss(mss) if m.negated => vec![
                vec![maxseg(true), Cmp::new(CmpOp::Eq, vec![0]).into()],
                vec![
                    maxseg(false),
                    range(&mss.min.to_be_bytes(), &mss.max.to_be_bytes(), true),
                ],
            ],
            other => {
                let mut e = Vec::new();
                nf_match(other, m.negated, family, &mut e);
                vec![e]
            }
        };
        out = out
            .iter()
            .flat_map(|head| {
                alts.iter()
                    .map(move |tail| head.iter().chain(tail).cloned().collect())
            })
            .collect();
    }
    out
}

/// `tcp option maxseg size` into register 1, or (`present`) whether the option is there
/// (1 or 0); without `present`, a packet without the option breaks the rule.
fn maxseg(present: bool) -> RawExpression {
    const NFTA_EXTHDR_DREG: u16 = 1;
    const NFTA_EXTHDR_TYPE: u16 = 2;
    const NFTA_EXTHDR_OFFSET: u16 = 3;
    const NFTA_EXTHDR_LEN: u16 = 4;
    const NFTA_EXTHDR_FLAGS: u16 = 5;
    const NFTA_EXTHDR_OP: u16 = 6;
    const TCPOPT_MAXSEG: u8 = 2;
    const NFT_EXTHDR_F_PRESENT: u32 = 1;
    const NFT_EXTHDR_OP_TCPOPT: u32 = 1;
    let (offset, len) = if present { (0, 1) } else { (2, 2) };
    placeholder(&element(
        "exthdr",
        &[
            Attr::U32(NFTA_EXTHDR_DREG, 1),
            Attr::U8(NFTA_EXTHDR_TYPE, TCPOPT_MAXSEG),
            Attr::U32(NFTA_EXTHDR_OFFSET, offset),
            Attr::U32(NFTA_EXTHDR_LEN, len),
            Attr::U32(
                NFTA_EXTHDR_FLAGS,
                if present { NFT_EXTHDR_F_PRESENT } else { 0 },
            ),
            Attr::U32(NFTA_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT),
        ],
    ))
}

/// A match only netfilter judges (rules::matches), negated with `!`.
fn nf_match(
    nf: &crate::rules::matches::NfMatch,
    negated: bool,
    family: Family,
    out: &mut Vec<RawExpression>,
) {
    use crate::rules::matches::{ttl::TtlOp, NfMatch};
    match nf {
        NfMatch::Mark(m) | NfMatch::Connmark(m) => {
            out.push(if matches!(nf, NfMatch::Mark(_)) {
                meta(MetaType::Mark)
            } else {
                Conntrack::new(ConntrackKey::Mark).into()
            });
            out.extend(masked(
                m.mask.to_ne_bytes().to_vec(),
                op(!negated),
                m.value.to_ne_bytes().to_vec(),
            ));
        }
        // `meta secpath exists` (in), `rt ipsec exists` (out): one byte, 1 or 0.
        NfMatch::Policy(p) => {
            const NFT_META_SECPATH: u32 = 25;
            const NFTA_RT_DREG: u16 = 1;
            const NFTA_RT_KEY: u16 = 2;
            const NFT_RT_XFRM: u32 = 4;
            out.push(if p.out == Some(true) {
                raw("rt", &[(NFTA_RT_DREG, 1), (NFTA_RT_KEY, NFT_RT_XFRM)])
            } else {
                meta_into(1, NFT_META_SECPATH)
            });
            out.push(Cmp::new(CmpOp::Eq, vec![(p.ipsec == Some(true)) as u8]).into());
        }
        NfMatch::PktType(t) => {
            const NFT_META_PKTTYPE: u32 = 19;
            out.push(meta_into(1, NFT_META_PKTTYPE));
            out.push(Cmp::new(op(!negated), vec![t.0]).into());
        }
        NfMatch::Length(l) => {
            // IPv4's total length; IPv6's payload length, 40 bytes short of xt_length's.
            let (offset, header) = match family {
                Family::V4 => (2, 0),
                Family::V6 => (4, 40),
            };
            if l.max < header {
                // No packet is that short: the match never holds (always, negated).
                if !negated {
                    out.push(load(NFT_PAYLOAD_NETWORK_HEADER, offset, 2));
                    out.push(Cmp::new(CmpOp::Gte, vec![0xff, 0xff]).into());
                    out.push(Cmp::new(CmpOp::Lte, vec![0, 0]).into());
                }
                return;
            }
            out.push(load(NFT_PAYLOAD_NETWORK_HEADER, offset, 2));
            let (min, max) = (l.min.saturating_sub(header), l.max - header);
            out.push(range(&min.to_be_bytes(), &max.to_be_bytes(), negated));
        }
        NfMatch::Ttl(t) => {
            let offset = match family {
                Family::V4 => 8,
                Family::V6 => 7,
            };
            out.push(load(NFT_PAYLOAD_NETWORK_HEADER, offset, 1));
            let cmp = match t.op {
                TtlOp::Eq => op(!negated),
                TtlOp::Lt => CmpOp::Lt,
                TtlOp::Gt => CmpOp::Gt,
            };
            out.push(Cmp::new(cmp, vec![t.value]).into());
        }
        NfMatch::IpRange(r) => {
            for (src, range_of) in [(true, r.src), (false, r.dst)] {
                let Some(x) = range_of else { continue };
                let (offset, len) = addr_field(family, src);
                out.push(load(NFT_PAYLOAD_NETWORK_HEADER, offset, len));
                out.push(range(&octets(x.from), &octets(x.to), x.negated));
            }
        }
        NfMatch::Mac(m) => {
            const NFT_PAYLOAD_LL_HEADER: u32 = 0;
            out.push(load(NFT_PAYLOAD_LL_HEADER, 6, 6));
            out.push(Cmp::new(op(!negated), m.0.to_vec()).into());
        }
        NfMatch::Owner(o) => out.push(xtables("match", "owner", 1, &o.xt_info())),
        // Negated, it is two alternatives (nf_alternatives); here the option is there and
        // in range, and a SYN without it breaks the rule, as xt_tcpmss does not match it.
        NfMatch::TcpMss(m) => {
            out.push(maxseg(false));
            out.push(range(&m.min.to_be_bytes(), &m.max.to_be_bytes(), negated));
        }
        NfMatch::Conntrack(c) => conntrack(c, family, out),
        NfMatch::Recent(m) => out.push(xtables("match", "recent", 1, &m.xt_info())),
        // The kernel's xtables matches through nft_compat, as iptables-nft writes them;
        // their info carries the negation.
        NfMatch::String(m) => out.push(xtables("match", "string", 1, &m.xt_info())),
        NfMatch::U32(m) => out.push(xtables("match", "u32", 0, &m.xt_info())),
        NfMatch::Helper(m) => out.push(xtables("match", "helper", 0, &m.xt_info())),
        NfMatch::Statistic(m) => out.push(xtables("match", "statistic", 0, &m.xt_info())),
        NfMatch::Connbytes(m) => out.push(xtables("match", "connbytes", 0, &m.xt_info())),
        NfMatch::Time(m) => out.push(xtables("match", "time", 0, &m.xt_info())),
        NfMatch::Physdev(m) => out.push(xtables("match", "physdev", 0, &m.xt_info())),
        NfMatch::Fragment => {
            // The fragment offset, flags masked off: not 0 past the first fragment.
            out.push(load(NFT_PAYLOAD_NETWORK_HEADER, 6, 2));
            out.extend(masked(vec![0x1f, 0xff], op(negated), vec![0, 0]));
        }
        NfMatch::AddrType(a) => {
            const NFTA_FIB_DREG: u16 = 1;
            const NFTA_FIB_RESULT: u16 = 2;
            const NFTA_FIB_FLAGS: u16 = 3;
            const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
            const NFTA_FIB_F_SADDR: u32 = 1;
            const NFTA_FIB_F_DADDR: u32 = 2;
            const NFTA_FIB_F_IIF: u32 = 8;
            const NFTA_FIB_F_OIF: u32 = 16;
            let iface = if a.limit_in {
                NFTA_FIB_F_IIF
            } else if a.limit_out {
                NFTA_FIB_F_OIF
            } else {
                0
            };
            for (addr, types) in [(NFTA_FIB_F_SADDR, a.src), (NFTA_FIB_F_DADDR, a.dst)] {
                let Some(types) = types else { continue };
                out.push(raw(
                    "fib",
                    &[
                        (NFTA_FIB_DREG, 1),
                        (NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
                        (NFTA_FIB_FLAGS, addr | iface),
                    ],
                ));
                // The parser allows several types only negated: none of them, each a test.
                for t in types.numbers() {
                    out.push(Cmp::new(op(!types.negated), t.to_ne_bytes().to_vec()).into());
                }
            }
        }
    }
}

/// The kernel's xtables match or target (`kind`) `name`, revision `rev`, with its info
/// struct as the kernel reads it, run by nftables' compat expression in the table of the
/// rule's family (an `inet` table would find only the extensions that register for every
/// family: docs/notes/facts.md).
fn xtables(kind: &str, name: &str, rev: u32, info: &[u8]) -> RawExpression {
    // NFTA_MATCH_* and NFTA_TARGET_* alike.
    const NAME: u16 = 1;
    const REV: u16 = 2;
    const INFO: u16 = 3;
    placeholder(&element(
        kind,
        &[
            Attr::Str(NAME, name),
            Attr::U32(REV, rev),
            Attr::Bytes(INFO, info),
        ],
    ))
}

/// `-m conntrack`'s options as xt_conntrack tests them, each inverted by its own `!`
/// (iptables-nft lists them as `ct original saddr`...). Every key but the state breaks
/// the rule for a packet without a connection, where xt_conntrack's options fail too
/// (CtMatch::check refuses the one case where they would not be looked at).
fn conntrack(
    c: &crate::rules::matches::conntrack::CtMatch,
    family: Family,
    out: &mut Vec<RawExpression>,
) {
    const NFTA_CT_DREG: u16 = 1;
    const NFTA_CT_KEY: u16 = 2;
    const NFTA_CT_DIRECTION: u16 = 3;
    const NFT_CT_DIRECTION: u32 = 1;
    const NFT_CT_STATUS: u32 = 2;
    const NFT_CT_EXPIRATION: u32 = 5;
    const NFT_CT_PROTOCOL: u32 = 10;
    const NFT_CT_PROTO_SRC: u32 = 11;
    const NFT_CT_PROTO_DST: u32 = 12;
    const NFT_CT_SRC_IP: u32 = 19;
    const NFT_CT_DST_IP: u32 = 20;
    const NFT_CT_SRC_IP6: u32 = 21;
    const NFT_CT_DST_IP6: u32 = 22;
    let ct = |key: u32, dir: Option<u8>| {
        let mut attrs = vec![Attr::U32(NFTA_CT_DREG, 1), Attr::U32(NFTA_CT_KEY, key)];
        attrs.extend(dir.map(|d| Attr::U8(NFTA_CT_DIRECTION, d)));
        placeholder(&element("ct", &attrs))
    };
    if let Some(s) = &c.state {
        out.push(Conntrack::new(ConntrackKey::State).into());
        let bits = nft_ct_bits(s.value).to_ne_bytes().to_vec();
        out.extend(masked(bits, op(s.negated), vec![0; 4]));
    }
    if let Some(p) = &c.proto {
        out.push(ct(NFT_CT_PROTOCOL, Some(0)));
        out.push(Cmp::new(op(!p.negated), vec![p.value]).into());
    }
    for (i, a) in c.addrs.iter().enumerate() {
        let Some(a) = a else { continue };
        let (dir, src) = ((i / 2) as u8, i % 2 == 0);
        let key = match (family, src) {
            (Family::V4, true) => NFT_CT_SRC_IP,
            (Family::V4, false) => NFT_CT_DST_IP,
            (Family::V6, true) => NFT_CT_SRC_IP6,
            (Family::V6, false) => NFT_CT_DST_IP6,
        };
        out.push(ct(key, Some(dir)));
        let bytes = octets(a.value.addr);
        let prefix = usize::from(a.value.prefix);
        let mask: Vec<u8> = (0..bytes.len())
            .map(|i| {
                let ones = prefix.saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - ones)) as u8
            })
            .collect();
        let value: Vec<u8> = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
        if prefix == bytes.len() * 8 {
            out.push(Cmp::new(op(!a.negated), value).into());
        } else {
            out.extend(masked(mask, op(!a.negated), value));
        }
    }
    for (i, p) in c.ports.iter().enumerate() {
        let Some(p) = p else { continue };
        let dir = (i / 2) as u8;
        let key = if i % 2 == 0 {
            NFT_CT_PROTO_SRC
        } else {
            NFT_CT_PROTO_DST
        };
        out.push(ct(key, Some(dir)));
        let (min, max) = (p.value.min.to_be_bytes(), p.value.max.to_be_bytes());
        if min == max {
            out.push(Cmp::new(op(!p.negated), min.to_vec()).into());
        } else {
            out.push(range(&min, &max, p.negated));
        }
    }
    if let Some(s) = &c.status {
        out.push(ct(NFT_CT_STATUS, None));
        out.extend(masked(
            s.value.to_ne_bytes().to_vec(),
            op(s.negated),
            vec![0; 4],
        ));
    }
    if let Some(e) = &c.expire {
        // nftables reads milliseconds; xt_conntrack whole seconds, rounded down.
        let (min, max) = e.value;
        out.push(ct(NFT_CT_EXPIRATION, None));
        out.push(hton32());
        if min > max {
            // An empty range: never within it.
            if !e.negated {
                out.push(Cmp::new(CmpOp::Lt, vec![0; 4]).into());
            }
        } else {
            let ms = |s: u64| s.saturating_mul(1000).min(u64::from(u32::MAX)) as u32;
            let (lo, hi) = (ms(u64::from(min)), ms(u64::from(max) + 1).saturating_sub(1));
            out.push(range(&lo.to_be_bytes(), &hi.to_be_bytes(), e.negated));
        }
    }
    if let Some(reply) = c.reply {
        out.push(ct(NFT_CT_DIRECTION, None));
        out.push(Cmp::new(CmpOp::Eq, vec![reply as u8]).into());
    }
}

/// Register 1's u32 from host to network order.
fn hton32() -> RawExpression {
    const NFTA_BYTEORDER_SREG: u16 = 1;
    const NFTA_BYTEORDER_DREG: u16 = 2;
    const NFTA_BYTEORDER_OP: u16 = 3;
    const NFTA_BYTEORDER_LEN: u16 = 4;
    const NFTA_BYTEORDER_SIZE: u16 = 5;
    const NFT_BYTEORDER_HTON: u32 = 1;
    raw(
        "byteorder",
        &[
            (NFTA_BYTEORDER_SREG, 1),
            (NFTA_BYTEORDER_DREG, 1),
            (NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON),
            (NFTA_BYTEORDER_LEN, 4),
            (NFTA_BYTEORDER_SIZE, 4),
        ],
    )
}

fn octets(a: std::net::IpAddr) -> Vec<u8> {
    match a {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Register 1 within `from..=to` (big-endian bytes compare as numbers), or outside it.
fn range(from: &[u8], to: &[u8], outside: bool) -> RawExpression {
    const NFTA_RANGE_SREG: u16 = 1;
    const NFTA_RANGE_OP: u16 = 2;
    const NFTA_RANGE_FROM_DATA: u16 = 3;
    const NFTA_RANGE_TO_DATA: u16 = 4;
    placeholder(&element(
        "range",
        &[
            Attr::U32(NFTA_RANGE_SREG, 1),
            Attr::U32(NFTA_RANGE_OP, outside as u32),
            Attr::Value(NFTA_RANGE_FROM_DATA, from),
            Attr::Value(NFTA_RANGE_TO_DATA, to),
        ],
    ))
}

/// Counts the packet in the table's named counter `name` (nftables' `counter name`): both
/// generations of a rule count in one object, so a change never copies counts.
pub fn counter_ref(name: &str) -> RawExpression {
    const NFTA_OBJREF_IMM_TYPE: u16 = 1;
    const NFTA_OBJREF_IMM_NAME: u16 = 2;
    placeholder(&element(
        "objref",
        &[
            Attr::U32(NFTA_OBJREF_IMM_TYPE, super::objects::NFT_OBJECT_COUNTER),
            Attr::Str(NFTA_OBJREF_IMM_NAME, name),
        ],
    ))
}

pub fn verdict(kind: VerdictKind) -> RawExpression {
    Immediate::new_verdict(kind).into()
}

/// What iptables' REJECT sends, as nftables' reject: a TCP reset, or a destination
/// unreachable (ICMP type 3, ICMPv6 type 1) with the family's own code, as iptables sends
/// it (`reject with icmp host-prohibited`). The rule sits in a chain of one family, so the
/// kernel's inet reject sends the code in that family's ICMP.
pub fn reject(with: RejectWith, family: Family) -> RawExpression {
    const NFTA_REJECT_TYPE: u16 = 1;
    const NFTA_REJECT_ICMP_CODE: u16 = 2;
    const NFT_REJECT_ICMP_UNREACH: u32 = 0;
    match with.icmp_code(family) {
        None => Reject::default().with_type(RejectType::TcpRst).into(),
        Some(code) => placeholder(&element(
            "reject",
            &[
                Attr::U32(NFTA_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH),
                Attr::U8(NFTA_REJECT_ICMP_CODE, code),
            ],
        )),
    }
}

/// The netlink-log group LOG rules send their packets to; `fwctl log` listens on it. One
/// group per network namespace, as netlink-log groups are.
pub const LOG_GROUP: u16 = 0xf3c7;

/// The groups after [`LOG_GROUP`] that carry LOG's flags: the kernel refuses a `log`
/// expression with both a group and flags (nft_log_init: EINVAL), so a rule's
/// `--log-uid`... choose its group, and `fwctl log` reads them back from the group.
pub const LOG_GROUPS: u16 = 32;

/// The group of a LOG rule with the kernel's `XT_LOG_*` flags (0x01 to 0x08, 0x20).
pub fn log_group(flags: u8) -> u16 {
    LOG_GROUP + u16::from((flags & 0x0f) | ((flags & 0x20) >> 1))
}

/// The `XT_LOG_*` flags of a group `log_group` gave, if it is one.
pub fn log_flags(group: u16) -> Option<u8> {
    let i = group.checked_sub(LOG_GROUP).filter(|i| *i < LOG_GROUPS)? as u8;
    Some((i & 0x0f) | ((i & 0x10) << 1))
}

/// `log group N prefix P`: the packet goes to `fwctl log`, which writes the line the
/// kernel's LOG target would, with what the flags ask for.
pub fn log(prefix: Option<&str>, flags: u8) -> RawExpression {
    // A prefix of at most 29 bytes (the parser's limit) always fits.
    Log::new(Some(log_group(flags)), prefix)
        .unwrap_or_default()
        .into()
}

/// iptables' NFQUEUE as iptables-nft writes it: the kernel's xt_NFQUEUE (revision 3,
/// struct xt_NFQ_info_v3), run by the compat expression. This kernel has no nftables
/// `queue` expression (CONFIG_NFT_QUEUE unset); xt_NFQUEUE registers for every family.
pub fn queue(q: &crate::rules::nfqueue::Nfqueue) -> RawExpression {
    const NFQ_FLAG_BYPASS: u16 = 1;
    const NFQ_FLAG_CPU_FANOUT: u16 = 2;
    let flags = if q.bypass { NFQ_FLAG_BYPASS } else { 0 }
        | if q.cpu_fanout { NFQ_FLAG_CPU_FANOUT } else { 0 };
    let mut info = Vec::with_capacity(8);
    for field in [q.num, q.total(), flags] {
        info.extend(field.to_ne_bytes());
    }
    info.resize(8, 0);
    xtables("target", "NFQUEUE", 3, &info)
}

/// `-j SYNPROXY` as nftables' synproxy expression (the kernel's same SYN proxy as
/// xt_SYNPROXY, which registers for the filter table only): its options, MSS and scale.
pub fn synproxy(s: &crate::rules::synproxy::Synproxy) -> RawExpression {
    const NFTA_SYNPROXY_MSS: u16 = 1;
    const NFTA_SYNPROXY_WSCALE: u16 = 2;
    const NFTA_SYNPROXY_FLAGS: u16 = 3;
    placeholder(&element(
        "synproxy",
        &[
            Attr::Bytes(NFTA_SYNPROXY_MSS, &s.mss.to_be_bytes()),
            Attr::U8(NFTA_SYNPROXY_WSCALE, s.wscale),
            Attr::U32(NFTA_SYNPROXY_FLAGS, s.options),
        ],
    ))
}

/// `log group N prefix P`: iptables' NFLOG, to whoever listens on the group.
pub fn nflog(group: u16, prefix: Option<&str>) -> RawExpression {
    // A prefix of at most 63 bytes (the parser's limit) fits.
    Log::new(Some(group), prefix).unwrap_or_default().into()
}

/// Marks a placeholder for an expression rustables cannot write (nat with port ranges,
/// masq and redir with ports): a `log` expression whose prefix carries the real
/// expression's bytes in hex, swapped in by batch.rs before the batch leaves. Never sent.
pub const RAW_MARK: &str = "\u{1}fwctl-raw:";

const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;

/// An attribute of an expression written here.
enum Attr<'a> {
    U8(u16, u8),
    U32(u16, u32),
    U64(u16, u64),
    Str(u16, &'a str),
    /// Bytes as they are (a binary attribute).
    Bytes(u16, &'a [u8]),
    /// Nested `NFTA_DATA_VALUE` bytes.
    Value(u16, &'a [u8]),
    /// A nested expression (its list element's contents).
    Expr(u16, Vec<u8>),
}

/// An expression as the contents of its list element: name, then nested data.
fn element(name: &str, attrs: &[Attr]) -> Vec<u8> {
    const NFTA_DATA_VALUE: u16 = 1;
    let mut elem = nla_text(NFTA_EXPR_NAME, name);
    // Numbers are big-endian in nftables.
    let data: Vec<u8> = attrs
        .iter()
        .flat_map(|a| match a {
            Attr::U8(k, v) => nla(*k, &[*v]),
            Attr::U32(k, v) => nla(*k, &v.to_be_bytes()),
            Attr::U64(k, v) => nla(*k, &v.to_be_bytes()),
            Attr::Str(k, v) => nla_text(*k, v),
            Attr::Bytes(k, v) => nla(*k, v),
            Attr::Value(k, v) => nla(*k | NLA_F_NESTED, &nla(NFTA_DATA_VALUE, v)),
            Attr::Expr(k, e) => nla(*k | NLA_F_NESTED, e),
        })
        .collect();
    elem.extend(nla(NFTA_EXPR_DATA | NLA_F_NESTED, &data));
    elem
}

/// The placeholder that batch.rs swaps for `elem` before the batch leaves.
fn placeholder(elem: &[u8]) -> RawExpression {
    // Every rule has one (its counter): a formatter per byte cost as much as the rest of
    // the translation.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(RAW_MARK.len() + 2 * elem.len());
    hex.push_str(RAW_MARK);
    for b in elem {
        hex.push(DIGITS[(b >> 4) as usize] as char);
        hex.push(DIGITS[(b & 15) as usize] as char);
    }
    // Not Log::new: the hex is longer than a real prefix may be, and never sent as one.
    Log::default().with_prefix(hex).into()
}

fn raw(name: &str, attrs: &[(u16, u32)]) -> RawExpression {
    let attrs: Vec<Attr> = attrs.iter().map(|&(k, v)| Attr::U32(k, v)).collect();
    placeholder(&element(name, &attrs))
}

/// The limit expression of a rate (`N/unit` from `rate_per_unit`) with its burst; `over`
/// matches packets beyond the rate instead (`NFT_LIMIT_F_INV`).
fn limit_element(per_unit: (u64, u64), burst: u32, over: bool) -> Vec<u8> {
    const NFTA_LIMIT_RATE: u16 = 1;
    const NFTA_LIMIT_UNIT: u16 = 2;
    const NFTA_LIMIT_BURST: u16 = 3;
    const NFTA_LIMIT_TYPE: u16 = 4;
    const NFTA_LIMIT_FLAGS: u16 = 5;
    const NFT_LIMIT_PKTS: u32 = 0;
    let (rate, unit) = per_unit;
    element(
        "limit",
        &[
            Attr::U64(NFTA_LIMIT_RATE, rate),
            Attr::U64(NFTA_LIMIT_UNIT, unit),
            Attr::U32(NFTA_LIMIT_BURST, burst),
            Attr::U32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS),
            Attr::U32(NFTA_LIMIT_FLAGS, over as u32),
        ],
    )
}

/// `limit rate N/unit burst B packets`: one bucket for the rule.
pub fn limit(per_unit: (u64, u64), burst: u32, over: bool) -> RawExpression {
    placeholder(&limit_element(per_unit, burst, over))
}

/// `NFT_REG32_00`: the first 32-bit register, where keys are assembled.
const REG32_00: u32 = 8;

/// nftables' data type numbers, for the key type of a set (what `nft list` shows).
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_IPV6_ADDR: u32 = 8;
const TYPE_INET_SERVICE: u32 = 13;

#[derive(Debug, Clone, Copy)]
/// A key assembled from the packet in consecutive 32-bit registers, and the set type that
/// holds it.
pub struct Key {
    /// Bytes, a multiple of 4.
    pub len: u32,
    /// nftables' (concatenated) data type.
    pub kind: u32,
}

/// Loads the packet's fields (`(source?, prefix length)` addresses, then `source?` ports)
/// into registers from REG32_00, masking addresses to their prefix; returns the key.
pub fn load_key(
    family: Family,
    addrs: &[(bool, u8)],
    ports: &[bool],
    out: &mut Vec<RawExpression>,
) -> Key {
    const NFTA_BITWISE_SREG: u16 = 1;
    const NFTA_BITWISE_DREG: u16 = 2;
    const NFTA_BITWISE_LEN: u16 = 3;
    const NFTA_BITWISE_MASK: u16 = 4;
    const NFTA_BITWISE_XOR: u16 = 5;
    let mut reg = REG32_00;
    let mut kind = 0;
    let mut push = |base: u32, offset: u32, len: u32, mask: Option<&[u8]>, t: u32| {
        out.push(load_into(reg, base, offset, len));
        if let Some(mask) = mask {
            let zero = vec![0; mask.len()];
            out.push(placeholder(&element(
                "bitwise",
                &[
                    Attr::U32(NFTA_BITWISE_SREG, reg),
                    Attr::U32(NFTA_BITWISE_DREG, reg),
                    Attr::U32(NFTA_BITWISE_LEN, len),
                    Attr::Value(NFTA_BITWISE_MASK, mask),
                    Attr::Value(NFTA_BITWISE_XOR, &zero),
                ],
            )));
        }
        reg += len.div_ceil(4);
        // Concatenated types: 6 bits per component, first component highest.
        kind = (kind << 6) | t;
    };
    for &(src, prefix) in addrs {
        let (offset, len) = addr_field(family, src);
        let t = match family {
            Family::V4 => TYPE_IPV4_ADDR,
            Family::V6 => TYPE_IPV6_ADDR,
        };
        let mask = ((prefix as u32) < len * 8).then(|| {
            let bits = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
            bits.to_be_bytes()[..len as usize].to_vec()
        });
        push(NFT_PAYLOAD_NETWORK_HEADER, offset, len, mask.as_deref(), t);
    }
    for &src in ports {
        let offset = if src { 0 } else { 2 };
        push(
            NFT_PAYLOAD_TRANSPORT_HEADER,
            offset,
            2,
            None,
            TYPE_INET_SERVICE,
        );
    }
    Key {
        len: (reg - REG32_00) * 4,
        kind,
    }
}

/// `update @set { key limit rate ... }`: one bucket per key, made on first sight and kept
/// for the set's timeout after the key's last packet. The rule goes on only while the key
/// is within its rate (`over`: beyond it).
pub fn meter(set: &str, per_unit: (u64, u64), burst: u32, over: bool) -> RawExpression {
    const NFT_DYNSET_OP_UPDATE: u32 = 1;
    dynset(
        set,
        NFT_DYNSET_OP_UPDATE,
        limit_element(per_unit, burst, over),
    )
}

/// `add @set { key ct count [over] N }`: the connections of each key (conntrack's own).
pub fn conn_count(set: &str, count: u32, over: bool) -> RawExpression {
    const NFTA_CONNLIMIT_COUNT: u16 = 1;
    const NFTA_CONNLIMIT_FLAGS: u16 = 2;
    const NFT_DYNSET_OP_ADD: u32 = 0;
    let connlimit = element(
        "connlimit",
        &[
            Attr::U32(NFTA_CONNLIMIT_COUNT, count),
            Attr::U32(NFTA_CONNLIMIT_FLAGS, over as u32),
        ],
    );
    dynset(set, NFT_DYNSET_OP_ADD, connlimit)
}

fn dynset(set: &str, op: u32, expr: Vec<u8>) -> RawExpression {
    const NFTA_DYNSET_SET_NAME: u16 = 1;
    const NFTA_DYNSET_OP: u16 = 3;
    const NFTA_DYNSET_SREG_KEY: u16 = 4;
    const NFTA_DYNSET_EXPR: u16 = 7;
    placeholder(&element(
        "dynset",
        &[
            Attr::Str(NFTA_DYNSET_SET_NAME, set),
            Attr::U32(NFTA_DYNSET_OP, op),
            Attr::U32(NFTA_DYNSET_SREG_KEY, REG32_00),
            Attr::Expr(NFTA_DYNSET_EXPR, expr),
        ],
    ))
}

/// NF_NAT_RANGE_PROTO_SPECIFIED: masq and redir apply their port registers only with it
/// (nft sets it too).
const PROTO_SPECIFIED: u32 = 2;

/// Loads a port range into `first` and the register after it; returns the registers.
fn load_ports(ports: PortRange, first: Register, out: &mut Vec<RawExpression>) -> (u32, u32) {
    let (min, max) = match first {
        Register::Reg1 => (Register::Reg1, Register::Reg2),
        _ => (Register::Reg2, Register::Reg3),
    };
    out.push(Immediate::new_data(ports.min.to_be_bytes().to_vec(), min).into());
    out.push(Immediate::new_data(ports.max.to_be_bytes().to_vec(), max).into());
    (min as u32, max as u32)
}

/// SNAT or DNAT to one address and optionally a port or port range.
pub fn nat(kind: NatType, family: Family, to: NatTo, flags: u32, out: &mut Vec<RawExpression>) {
    const NFTA_NAT_TYPE: u16 = 1;
    const NFTA_NAT_FAMILY: u16 = 2;
    const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
    const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
    const NFTA_NAT_REG_PROTO_MAX: u16 = 6;
    const NFTA_NAT_FLAGS: u16 = 7;
    let bytes = match to.addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    out.push(Immediate::new_data(bytes, Register::Reg1).into());
    let nfproto = u32::from(super::nfproto(family));
    let kind = match kind {
        NatType::SNat => libc::NFT_NAT_SNAT,
        NatType::DNat => libc::NFT_NAT_DNAT,
    } as u32;
    let mut attrs = vec![
        (NFTA_NAT_TYPE, kind),
        (NFTA_NAT_FAMILY, nfproto),
        (NFTA_NAT_REG_ADDR_MIN, Register::Reg1 as u32),
    ];
    let mut flags = flags;
    if let Some(ports) = to.ports {
        let (min, max) = load_ports(ports, Register::Reg2, out);
        attrs.push((NFTA_NAT_REG_PROTO_MIN, min));
        attrs.push((NFTA_NAT_REG_PROTO_MAX, max));
        flags |= PROTO_SPECIFIED;
    }
    if flags != 0 {
        attrs.push((NFTA_NAT_FLAGS, flags));
    }
    out.push(raw("nat", &attrs));
}

/// MASQUERADE [--to-ports] (`--random`...: `flags`, NF_NAT_RANGE_* bits).
pub fn masquerade(ports: Option<PortRange>, flags: u32, out: &mut Vec<RawExpression>) {
    const NFTA_MASQ_FLAGS: u16 = 1;
    const NFTA_MASQ_REG_PROTO_MIN: u16 = 2;
    const NFTA_MASQ_REG_PROTO_MAX: u16 = 3;
    port_rewrite(
        "masq",
        ports,
        flags,
        [
            NFTA_MASQ_REG_PROTO_MIN,
            NFTA_MASQ_REG_PROTO_MAX,
            NFTA_MASQ_FLAGS,
        ],
        out,
    );
}

/// REDIRECT [--to-ports]: to this host, the incoming interface's address.
pub fn redirect(ports: Option<PortRange>, flags: u32, out: &mut Vec<RawExpression>) {
    const NFTA_REDIR_REG_PROTO_MIN: u16 = 1;
    const NFTA_REDIR_REG_PROTO_MAX: u16 = 2;
    const NFTA_REDIR_FLAGS: u16 = 3;
    port_rewrite(
        "redir",
        ports,
        flags,
        [
            NFTA_REDIR_REG_PROTO_MIN,
            NFTA_REDIR_REG_PROTO_MAX,
            NFTA_REDIR_FLAGS,
        ],
        out,
    );
}

/// A masq or redir expression (`name`): its port range registers and flags, by their
/// attribute numbers `[min, max, flags]`.
fn port_rewrite(
    name: &str,
    ports: Option<PortRange>,
    mut flags: u32,
    [attr_min, attr_max, attr_flags]: [u16; 3],
    out: &mut Vec<RawExpression>,
) {
    let mut attrs = Vec::new();
    if let Some(ports) = ports {
        let (min, max) = load_ports(ports, Register::Reg1, out);
        attrs.push((attr_min, min));
        attrs.push((attr_max, max));
        flags |= PROTO_SPECIFIED;
    }
    if flags != 0 {
        attrs.push((attr_flags, flags));
    }
    out.push(raw(name, &attrs));
}

/// `-m set [!] --match-set NAME src|dst[,src|dst]`: the key loaded as the set's members
/// are laid out (netfilter/sets.rs), then looked up, inverted for `!`. `dst`: which of the
/// set's dimensions come from the destination.
/// What `-j SET` does to a set: `--add-set`, `--add-set --exist` (which refreshes the
/// timeout of a member already there) or `--del-set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynsetOp {
    Add = 0,
    Update = 1,
    Delete = 2,
}

/// `add`/`update`/`delete @set { key [timeout T] }` with the packet's key, `timeout` in
/// seconds.
pub fn set_dynset(
    set: &super::sets::NftSet,
    dst: &[bool],
    op: DynsetOp,
    timeout: Option<u32>,
    out: &mut Vec<RawExpression>,
) {
    const NFTA_DYNSET_SET_NAME: u16 = 1;
    const NFTA_DYNSET_OP: u16 = 3;
    const NFTA_DYNSET_SREG_KEY: u16 = 4;
    const NFTA_DYNSET_TIMEOUT: u16 = 6;
    let first = set_key(set, dst, out);
    let mut attrs = vec![
        Attr::Str(NFTA_DYNSET_SET_NAME, set.name),
        Attr::U32(NFTA_DYNSET_OP, op as u32),
        Attr::U32(NFTA_DYNSET_SREG_KEY, first),
    ];
    attrs.extend(timeout.map(|t| Attr::U64(NFTA_DYNSET_TIMEOUT, u64::from(t) * 1000)));
    out.push(placeholder(&element("dynset", &attrs)));
}

pub fn set_lookup(
    set: &super::sets::NftSet,
    dst: &[bool],
    negated: bool,
    out: &mut Vec<RawExpression>,
) {
    const NFTA_LOOKUP_SET: u16 = 1;
    const NFTA_LOOKUP_SREG: u16 = 2;
    const NFTA_LOOKUP_FLAGS: u16 = 5;
    const NFT_LOOKUP_F_INV: u32 = 1;
    let first = set_key(set, dst, out);
    let flags = if negated { NFT_LOOKUP_F_INV } else { 0 };
    out.push(placeholder(&element(
        "lookup",
        &[
            Attr::Str(NFTA_LOOKUP_SET, set.name),
            Attr::U32(NFTA_LOOKUP_SREG, first),
            Attr::U32(NFTA_LOOKUP_FLAGS, flags),
        ],
    )));
}

/// Loads the packet's key for `set` (each dimension from the source or the destination
/// as `dst` says) and returns the register it starts in.
fn set_key(set: &super::sets::NftSet, dst: &[bool], out: &mut Vec<RawExpression>) -> u32 {
    const NFT_REG_1: u32 = 1;
    const NFT_META_L4PROTO: u32 = 16;
    let from_dst = |dim: usize| dst.get(dim).copied().unwrap_or(false);
    let (offset, len) = addr_field(set.family, !from_dst(0));
    let ports = set.kind == crate::sets::model::SetKind::HashIpPort;
    // A concatenation starts at a 32-bit register, each field in its own words.
    let first = if ports { REG32_00 } else { NFT_REG_1 };
    out.push(load_into(first, NFT_PAYLOAD_NETWORK_HEADER, offset, len));
    if ports {
        let proto_reg = first + len / 4;
        out.push(meta_into(proto_reg, NFT_META_L4PROTO));
        let port_offset = if from_dst(1) { 2 } else { 0 };
        out.push(load_into(
            proto_reg + 1,
            NFT_PAYLOAD_TRANSPORT_HEADER,
            port_offset,
            2,
        ));
    }
    first
}
