//! The netfilter side: fwctl's own nftables tables, `ip fwctl` and `ip6 fwctl`, written
//! only through netlink (rustables), one atomic batch per step, never touching another
//! table. One table per family, not one `inet` table: the kernel's xtables extensions that
//! register per family (xt_recent, xt_physdev) run through nftables' compat expression only
//! in a table of that family.
//!
//! The tables hold the whole ruleset, translated rule for rule, in two generations of
//! chains (`0v4-INPUT`, `1v6-MYCHAIN`, ...), like the XDP maps. Hooked base chains only
//! dispatch: a packet XDP accepted (mark bit) is accepted at once; one XDP judged but left
//! undecided (conntrack state) goes to the generation XDP used (its mark says which), so
//! both paths judge it with one ruleset; anything else (lo, an interface without XDP, XDP
//! detached) goes to the default generation. A change stages the idle generation, flips
//! XDP, then switches the default: killed anywhere, each packet is still judged by one
//! complete ruleset, and before the XDP flip that is the previous one on both paths.

mod batch;
pub mod exprs;
mod incremental;
pub(crate) mod netlink;
pub mod nflog;
pub(crate) mod objects;
pub mod record;
pub mod release;
pub mod sets;
mod stage;
pub mod translate;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use anyhow::{Context, Result};

pub use batch::RefusedRule;
use rustables::{
    expr::{NatType, RawExpression, VerdictKind},
    Batch, Chain as NftChain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily,
    Rule, Set as NftSet, Table as NftTable,
};
use serde::{Deserialize, Serialize};
pub use stage::{stage, Staging};

use crate::rules::{Chain, Family, Ruleset, Table, Target, Verdict};
use translate::{alternatives, TranslateError};

pub const TABLE: &str = "fwctl";

/// The nftables family of a rule family's table.
pub fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => libc::NFPROTO_IPV4 as u8,
        Family::V6 => libc::NFPROTO_IPV6 as u8,
    }
}

fn protocol_family(family: Family) -> ProtocolFamily {
    match family {
        Family::V4 => ProtocolFamily::Ipv4,
        Family::V6 => ProtocolFamily::Ipv6,
    }
}

/// The one `inet fwctl` table fwctl wrote before its tables were per family: the first
/// change replaces it (its sets and counts moved over, then deleted in the staging batch).
const LEGACY_FAMILY: u8 = libc::NFPROTO_INET as u8;

/// The nftables families fwctl's tables (named [`TABLE`]) may have.
pub const OWN_FAMILIES: [u8; 3] = [
    libc::NFPROTO_IPV4 as u8,
    libc::NFPROTO_IPV6 as u8,
    LEGACY_FAMILY,
];

/// The family of a generation chain or rate set, from the tag its name carries after the
/// generation digit (`0v4-INPUT`, `1v6-hl12`); every such name has one.
fn name_family(name: &str) -> Family {
    match name.get(1..4) {
        Some("v6-") => Family::V6,
        _ => Family::V4,
    }
}

/// The mark bits XDP's verdict travels in (see firewall-common).
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    pub shift: u32,
}

impl Marks {
    fn accepted(self) -> u32 {
        firewall_common::mark_accepted(self.shift)
    }
    fn forward(self) -> u32 {
        firewall_common::mark_forward(self.shift)
    }
    fn generation(self, generation: u32) -> u32 {
        firewall_common::mark_generation(self.shift, generation)
    }
    fn generations(self) -> u32 {
        self.generation(0) | self.generation(1)
    }
    fn all(self) -> u32 {
        firewall_common::mark_mask(self.shift)
    }
}

/// Packets and bytes netfilter counted, per rule slot and per built-in chain policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftCounters {
    pub rules: BTreeMap<u32, (u64, u64)>,
    /// Keyed by `v4-INPUT` and the like.
    pub policies: BTreeMap<String, (u64, u64)>,
}

impl NftCounters {
    pub fn rule(&self, slot: u32) -> (u64, u64) {
        self.rules.get(&slot).copied().unwrap_or_default()
    }

    pub fn policy(&self, table: Table, family: Family, chain: Chain) -> (u64, u64) {
        self.policies
            .get(&policy_key(table, family, chain))
            .copied()
            .unwrap_or_default()
    }

    /// `self` minus a baseline taken at the last `-Z`, never below zero.
    pub fn minus(&self, base: &NftCounters) -> NftCounters {
        let sub = |a: (u64, u64), b: (u64, u64)| (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1));
        NftCounters {
            rules: self
                .rules
                .iter()
                .map(|(k, v)| (*k, sub(*v, base.rule(*k))))
                .collect(),
            policies: self
                .policies
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        sub(*v, base.policies.get(k).copied().unwrap_or_default()),
                    )
                })
                .collect(),
        }
    }
}

pub fn policy_key(table: Table, family: Family, chain: Chain) -> String {
    format!(
        "{}-{}{}",
        family_tag(family),
        table_tag(table),
        chain.name()
    )
}

fn family_tag(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn table_tag(table: Table) -> &'static str {
    match table {
        Table::Filter => "",
        Table::Nat => "nat-",
        Table::Mangle => "mangle-",
        Table::Raw => "raw-",
        Table::Security => "security-",
    }
}

fn chain_name(generation: u32, table: Table, family: Family, chain: &str) -> String {
    format!(
        "{generation}{}-{}{chain}",
        family_tag(family),
        table_tag(table)
    )
}

/// A hooked chain of the table: it only dispatches to a generation's chain.
struct BaseChain {
    name: &'static str,
    hook: HookClass,
    priority: i32,
    kind: ChainType,
    table: Table,
    chain: Chain,
    /// XDP's marks apply (packets XDP saw arrive through these hooks).
    xdp: bool,
}

/// iptables' priorities: raw at -300, mangle at -150, DNAT at -100, filter at 0, SNAT
/// at 100, security at 150 (iptables-nft's; legacy's 50 is also after filter). Mangle's
/// OUTPUT is a route chain, as iptables' is: a mark it sets reroutes.
const BASE_CHAINS: [BaseChain; 17] = [
    BaseChain {
        name: "security-input",
        hook: HookClass::In,
        priority: 150,
        kind: ChainType::Filter,
        table: Table::Security,
        chain: Chain::Input,
        xdp: false,
    },
    BaseChain {
        name: "security-forward",
        hook: HookClass::Forward,
        priority: 150,
        kind: ChainType::Filter,
        table: Table::Security,
        chain: Chain::Forward,
        xdp: false,
    },
    BaseChain {
        name: "security-output",
        hook: HookClass::Out,
        priority: 150,
        kind: ChainType::Filter,
        table: Table::Security,
        chain: Chain::Output,
        xdp: false,
    },
    BaseChain {
        name: "raw-prerouting",
        hook: HookClass::PreRouting,
        priority: -300,
        kind: ChainType::Filter,
        table: Table::Raw,
        chain: Chain::PreRouting,
        xdp: false,
    },
    BaseChain {
        name: "raw-output",
        hook: HookClass::Out,
        priority: -300,
        kind: ChainType::Filter,
        table: Table::Raw,
        chain: Chain::Output,
        xdp: false,
    },
    BaseChain {
        name: "mangle-prerouting",
        hook: HookClass::PreRouting,
        priority: -150,
        kind: ChainType::Filter,
        table: Table::Mangle,
        chain: Chain::PreRouting,
        xdp: false,
    },
    BaseChain {
        name: "mangle-input",
        hook: HookClass::In,
        priority: -150,
        kind: ChainType::Filter,
        table: Table::Mangle,
        chain: Chain::Input,
        xdp: false,
    },
    BaseChain {
        name: "mangle-forward",
        hook: HookClass::Forward,
        priority: -150,
        kind: ChainType::Filter,
        table: Table::Mangle,
        chain: Chain::Forward,
        xdp: false,
    },
    BaseChain {
        name: "mangle-output",
        hook: HookClass::Out,
        priority: -150,
        kind: ChainType::Route,
        table: Table::Mangle,
        chain: Chain::Output,
        xdp: false,
    },
    BaseChain {
        name: "mangle-postrouting",
        hook: HookClass::PostRouting,
        priority: -150,
        kind: ChainType::Filter,
        table: Table::Mangle,
        chain: Chain::PostRouting,
        xdp: false,
    },
    BaseChain {
        name: "input",
        hook: HookClass::In,
        priority: 0,
        kind: ChainType::Filter,
        table: Table::Filter,
        chain: Chain::Input,
        xdp: true,
    },
    BaseChain {
        name: "forward",
        hook: HookClass::Forward,
        priority: 0,
        kind: ChainType::Filter,
        table: Table::Filter,
        chain: Chain::Forward,
        xdp: true,
    },
    BaseChain {
        name: "output",
        hook: HookClass::Out,
        priority: 0,
        kind: ChainType::Filter,
        table: Table::Filter,
        chain: Chain::Output,
        xdp: false,
    },
    BaseChain {
        name: "nat-prerouting",
        hook: HookClass::PreRouting,
        priority: -100,
        kind: ChainType::Nat,
        table: Table::Nat,
        chain: Chain::PreRouting,
        xdp: false,
    },
    BaseChain {
        name: "nat-input",
        hook: HookClass::In,
        priority: 100,
        kind: ChainType::Nat,
        table: Table::Nat,
        chain: Chain::Input,
        xdp: false,
    },
    BaseChain {
        name: "nat-output",
        hook: HookClass::Out,
        priority: -100,
        kind: ChainType::Nat,
        table: Table::Nat,
        chain: Chain::Output,
        xdp: false,
    },
    BaseChain {
        name: "nat-postrouting",
        hook: HookClass::PostRouting,
        priority: 100,
        kind: ChainType::Nat,
        table: Table::Nat,
        chain: Chain::PostRouting,
        xdp: false,
    },
];

/// Rule comments (nftables userdata) tie rules back to counter slots.
const COMMENT_RULE: &str = "fwctl rule ";
const COMMENT_POLICY: &str = "fwctl policy";
/// After a rule's slot: the rule is a RETURN in a built-in chain, which iptables ends with
/// the chain's policy, counting both the rule and the policy.
const COMMENT_AND_POLICY: &str = " and policy";

fn comment(text: &str) -> Vec<u8> {
    // NFTNL_UDATA_RULE_COMMENT: type 0, length with the NUL, text, NUL.
    let mut text = text.as_bytes().to_vec();
    text.truncate(254);
    let mut out = vec![0u8, text.len() as u8 + 1];
    out.extend(text);
    out.push(0);
    out
}

fn parse_comment(data: &[u8]) -> Option<&str> {
    let (&kind, rest) = data.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if kind != 0 || rest.len() < len as usize || len == 0 {
        return None;
    }
    std::str::from_utf8(&rest[..len as usize - 1]).ok()
}

/// One chain of a generation: its name and its rules.
#[derive(Debug)]
pub struct ChainImage {
    pub name: String,
    pub rules: Vec<NftRule>,
    /// Sets its rules update (hashlimit meters, connlimit counts), made with the chain.
    pub sets: Vec<RateSet>,
}

/// One nftables rule of a chain: which of the alternatives (`alt`) of which source rule
/// (`source`, a hash of the iptables rule and of everything its translation depends on),
/// and its expressions and comment, left out (None) when the generation holds the rule
/// already (see [`Known`]).
#[derive(Debug)]
pub struct NftRule {
    pub source: u64,
    pub alt: u32,
    /// The counter slot it counts in ([`POLICY_RULE`] for the policy's rule).
    pub slot: u32,
    pub body: Option<(Vec<RawExpression>, Vec<u8>)>,
}

/// Source rules a generation holds (from its record): source -> how many nftables rules.
/// [`translate`] leaves their translation out.
pub type Known = HashMap<u64, u32>;

/// The slot recorded for a built-in chain's last rule, which applies and counts its policy.
pub const POLICY_RULE: u32 = u32::MAX;

#[derive(Debug)]
/// A set of per-key state for rate matches, named after its generation and rule slot.
pub struct RateSet {
    pub name: String,
    /// The counter slot of the rule it belongs to.
    pub slot: u32,
    pub key: exprs::Key,
    /// How long a key's state outlives its last packet (ms); None: until conntrack's
    /// connections of the key are gone (connlimit).
    pub timeout_ms: Option<u64>,
}

/// Appends the tests of `rule`'s rate matches (after its other tests, as iptables checks
/// them after the packet's fields) and records the sets they need.
fn rate_exprs(
    rule: &crate::rules::Rule,
    generation: u32,
    family: Family,
    e: &mut Vec<RawExpression>,
    sets: &mut Vec<RateSet>,
) {
    use crate::rules::ratelimit::{
        rate_per_unit, HASHLIMIT_SCALE, HL_DSTIP, HL_DSTPORT, HL_SRCIP, HL_SRCPORT, LIMIT_SCALE,
    };
    let rate = &rule.spec.rate;
    let full = if family == Family::V6 { 128 } else { 32 };
    let mut want = |name: String, key: exprs::Key, timeout_ms: Option<u64>| {
        if !sets.iter().any(|s| s.name == name) {
            sets.push(RateSet {
                name,
                slot: rule.slot,
                key,
                timeout_ms,
            });
        }
    };
    if let Some(l) = &rate.limit {
        e.push(exprs::limit(
            rate_per_unit(l.avg, LIMIT_SCALE),
            l.burst,
            false,
        ));
    }
    if let Some(h) = &rate.hashlimit {
        let per_unit = rate_per_unit(h.avg, HASHLIMIT_SCALE);
        if h.mode == 0 {
            e.push(exprs::limit(per_unit, h.burst, h.above));
        } else {
            let mut addrs = Vec::new();
            if h.mode & HL_SRCIP != 0 {
                addrs.push((true, h.srcmask.unwrap_or(full)));
            }
            if h.mode & HL_DSTIP != 0 {
                addrs.push((false, h.dstmask.unwrap_or(full)));
            }
            let ports: Vec<bool> = [(HL_SRCPORT, true), (HL_DSTPORT, false)]
                .iter()
                .filter(|(bit, _)| h.mode & bit != 0)
                .map(|(_, src)| *src)
                .collect();
            let key = exprs::load_key(family, &addrs, &ports, e);
            let name = rate_set_name(generation, family, "hl", rule.slot);
            e.push(exprs::meter(&name, per_unit, h.burst, h.above));
            want(name, key, Some(h.expire_ms()));
        }
    }
    if let Some(c) = &rate.connlimit {
        let key = exprs::load_key(family, &[(!c.daddr, c.mask)], &[], e);
        let name = rate_set_name(generation, family, "cl", rule.slot);
        e.push(exprs::conn_count(&name, c.count, c.above));
        want(name, key, None);
    }
}

/// A chain to translate: its name, rules, and for a built-in chain, its policy.
type ChainSource<'a> = (
    String,
    &'a Vec<crate::rules::Rule>,
    Option<(Chain, Verdict)>,
);

/// Hashes what a rule's translation depends on, in order: see [`translate`].
struct SourceHash(u64);

impl SourceHash {
    fn new() -> SourceHash {
        SourceHash(0xcbf2_9ce4_8422_2325)
    }
    fn add(mut self, bytes: &[u8]) -> SourceHash {
        for &b in bytes.iter().chain(&[0xff]) {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
}

/// Translates a whole ruleset into generation `generation`'s chains, each rule counting in
/// its slot's counter object (see `objects`). A rule is named by a hash of what its
/// translation depends on: this build's translation code, the generation, the chain and
/// its policy, the rule itself (its slot included) and the sets it names; the rules `known`
/// names are not translated again.
pub fn translate(
    ruleset: &Ruleset,
    generation: u32,
    set_registry: &crate::sets::model::Registry,
    known: &Known,
) -> Result<Vec<ChainImage>, TranslateError> {
    let mut out = Vec::new();
    let context = SourceHash::new()
        .add(env!("FWCTL_TRANSLATION_MARK").as_bytes())
        .add(&generation.to_le_bytes())
        .0;
    let mut json = Vec::new();
    for table in Table::ALL {
        for family in Family::ALL {
            let rules = ruleset.table(table, family);
            let mut chains: Vec<ChainSource> = rules
                .builtins()
                .iter()
                .map(|&c| {
                    let cr = rules.chain(c);
                    (c.name().to_string(), &cr.rules, Some((c, cr.policy)))
                })
                .collect();
            chains.extend(rules.user.iter().map(|u| (u.name.clone(), &u.rules, None)));
            for (name, list, policy) in chains {
                // A RETURN in a built-in chain applies the policy (iptables), where an
                // nftables `return` would leave the generation chain for the hooked chain
                // and its own `accept`: such a rule gets the policy's verdict instead, and
                // counts in the policy's counter too.
                let returns_to_policy = |rule: &crate::rules::Rule| {
                    policy.is_some() && rule.spec.target == Target::Return
                };
                let policy_counter =
                    policy.map(|(c, _)| objects::policy(&policy_key(table, family, c)));
                let mut image = ChainImage {
                    name: chain_name(generation, table, family, &name),
                    rules: Vec::new(),
                    sets: Vec::new(),
                };
                let chain_source = SourceHash(context)
                    .add(image.name.as_bytes())
                    .add(format!("{policy:?}").as_bytes());
                for rule in list {
                    json.clear();
                    // Writing into a Vec cannot fail, and a rule always serializes.
                    let _ = serde_json::to_writer(&mut json, rule);
                    let mut source = SourceHash(chain_source.0).add(&json);
                    for m in &rule.spec.sets {
                        let (_, info) = set_registry
                            .resolve(&m.value, family)
                            .map_err(TranslateError::Set)?;
                        source = source.add(format!("{:?}", sets::NftSet::from(info)).as_bytes());
                    }
                    if let Target::Set(st) = &rule.spec.target {
                        let mut e = Vec::new();
                        set_target(st, set_registry, family, &mut e)?;
                        source = source.add(format!("{e:?}").as_bytes());
                    }
                    let source = source.0;
                    if let Some(&count) = known.get(&source) {
                        // Held already: only what its neighbours in the generation need.
                        let mut scratch = Vec::new();
                        rate_exprs(rule, generation, family, &mut scratch, &mut image.sets);
                        image.rules.extend((0..count).map(|alt| NftRule {
                            source,
                            alt,
                            slot: rule.slot,
                            body: None,
                        }));
                        continue;
                    }
                    let to_policy = returns_to_policy(rule);
                    let note = if to_policy { COMMENT_AND_POLICY } else { "" };
                    let nf_alts = exprs::nf_alternatives(&rule.spec.nf, family);
                    for (index, (alt, nf)) in alternatives(&rule.spec, family)?
                        .iter()
                        .flat_map(|alt| nf_alts.iter().map(move |nf| (alt, nf)))
                        .enumerate()
                    {
                        let mut e = Vec::new();
                        for t in alt {
                            exprs::test(t, family, &mut e);
                        }
                        for m in &rule.spec.sets {
                            let (_, info) = set_registry
                                .resolve(&m.value, family)
                                .map_err(TranslateError::Set)?;
                            let set = sets::NftSet::from(info);
                            exprs::set_lookup(&set, &m.value.dst, m.negated, &mut e);
                        }
                        e.extend(nf.iter().cloned());
                        rate_exprs(rule, generation, family, &mut e, &mut image.sets);
                        e.push(exprs::counter_ref(&objects::rule(rule.slot)));
                        match (policy, &policy_counter) {
                            (Some((_, verdict)), Some(counter)) if to_policy => {
                                e.push(exprs::counter_ref(counter));
                                e.push(exprs::verdict(policy_verdict(verdict)));
                            }
                            _ => {
                                if let Target::Set(st) = &rule.spec.target {
                                    set_target(st, set_registry, family, &mut e)?;
                                }
                                target(&rule.spec, generation, table, family, &mut e)
                            }
                        }
                        image.rules.push(NftRule {
                            source,
                            alt: index as u32,
                            slot: rule.slot,
                            body: Some((e, comment(&format!("{COMMENT_RULE}{}{note}", rule.slot)))),
                        });
                    }
                }
                if let (Some((_, policy)), Some(counter)) = (policy, &policy_counter) {
                    let source = SourceHash(chain_source.0).add(b"policy").0;
                    image.rules.push(NftRule {
                        source,
                        alt: 0,
                        slot: POLICY_RULE,
                        body: (!known.contains_key(&source)).then(|| {
                            (
                                vec![
                                    exprs::counter_ref(counter),
                                    exprs::verdict(policy_verdict(policy)),
                                ],
                                comment(COMMENT_POLICY),
                            )
                        }),
                    });
                }
                out.push(image);
            }
        }
    }
    Ok(out)
}

/// The counters the rules of `ruleset` count in (see [`translate`]).
pub fn in_force(ruleset: &Ruleset) -> objects::InForce {
    let mut out = objects::InForce::default();
    for table in Table::ALL {
        for family in Family::ALL {
            let rules = ruleset.table(table, family);
            for &c in rules.builtins() {
                out.policies.insert(policy_key(table, family, c));
            }
            out.slots.extend(rules.all_rules().map(|r| r.slot));
        }
    }
    out
}

fn policy_verdict(policy: Verdict) -> VerdictKind {
    match policy {
        Verdict::Accept => VerdictKind::Accept,
        Verdict::Drop => VerdictKind::Drop,
    }
}

/// `-j SET`: `add`/`update`/`delete @set { key }` for each set the rule writes. Without
/// `--timeout`, a member of a set with timeouts gets the set's default, as ipset gives it
/// (fwctl's nftables sets carry no default of their own).
fn set_target(
    st: &crate::rules::set_target::SetTarget,
    registry: &crate::sets::model::Registry,
    family: Family,
    e: &mut Vec<RawExpression>,
) -> Result<(), TranslateError> {
    let each = st.add.iter().map(|m| (m, true));
    for (m, add) in each.chain(st.del.iter().map(|m| (m, false))) {
        let (def, info) = registry.resolve(m, family).map_err(TranslateError::Set)?;
        let set = sets::NftSet::from(info);
        let op = match (add, st.exist) {
            (true, false) => exprs::DynsetOp::Add,
            (true, true) => exprs::DynsetOp::Update,
            (false, _) => exprs::DynsetOp::Delete,
        };
        let timeout = match op {
            exprs::DynsetOp::Delete => None,
            _ => st.timeout.or(def.timeout.filter(|t| *t > 0)),
        };
        exprs::set_dynset(&set, &m.dst, op, timeout, e);
    }
    Ok(())
}

fn target(
    spec: &crate::rules::RuleSpec,
    generation: u32,
    table: Table,
    family: Family,
    e: &mut Vec<RawExpression>,
) {
    let flags = spec.nat_flags.0;
    let verdict = match &spec.target {
        Target::Accept => VerdictKind::Accept,
        Target::Drop => VerdictKind::Drop,
        Target::Return => VerdictKind::Return,
        Target::Jump(to) => VerdictKind::Jump {
            chain: chain_name(generation, table, family, to),
        },
        // A nat statement ends the chain for this packet by itself.
        Target::Masquerade(ports) => return exprs::masquerade(*ports, flags, e),
        Target::Redirect(ports) => return exprs::redirect(*ports, flags, e),
        Target::Snat(to) => return exprs::nat(NatType::SNat, family, *to, flags, e),
        Target::Dnat(to) => return exprs::nat(NatType::DNat, family, *to, flags, e),
        Target::Reject(with, family) => return e.push(exprs::reject(*with, *family)),
        // No verdict: the packet goes on to the next rule, as after iptables' LOG.
        Target::Log(log) => return e.push(exprs::log(log.prefix.as_deref(), log.flags)),
        // The rule's counter has counted; the next rule goes on.
        // The rule's counter has counted; nothing nftables can do fills a checksum.
        // -j SET's expressions come from the set registry (`set_target`).
        Target::Count | Target::Checksum | Target::Set(_) => return,
        Target::Mark(m) => return exprs::set_mark(*m, e),
        Target::Nflog { group, prefix } => return e.push(exprs::nflog(*group, prefix.as_deref())),
        Target::Connmark(c) => return exprs::connmark(*c, e),
        Target::Tcpmss(t) => return exprs::tcpmss(t.mss, e),
        Target::Notrack { .. } => return e.push(exprs::notrack()),
        Target::CtZone(z) => return exprs::ct_zone(*z, e),
        Target::Nfqueue(q) => return e.push(exprs::queue(q)),
        Target::Synproxy(s) => return e.push(exprs::synproxy(s)),
    };
    e.push(exprs::verdict(verdict));
}

/// Whether a set name is one of `RateSet`'s (`0v4-hl12`), not an operator's set.
fn is_rate_set(name: &str) -> bool {
    let rest = name
        .strip_prefix(['0', '1'])
        .and_then(|r| r.strip_prefix("v4-").or_else(|| r.strip_prefix("v6-")))
        .and_then(|r| r.strip_prefix("hl").or_else(|| r.strip_prefix("cl")));
    rest.is_some_and(|slot| !slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit()))
}

/// The name of a rate set: generation, family, kind (`hl` meter, `cl` connection count)
/// and the rule's slot, e.g. `0v4-hl17`; [`is_rate_set`] reads it back.
fn rate_set_name(generation: u32, family: Family, kind: &str, slot: u32) -> String {
    format!("{generation}{}-{kind}{slot}", family_tag(family))
}

/// A rate set to create (with its definition) or delete (by name).
fn rate_set(name: &str, def: Option<&RateSet>) -> NftSet {
    // Flags: NFT_SET_TIMEOUT, NFT_SET_EVAL (updated from the packet path).
    const NFT_SET_TIMEOUT: u32 = 0x10;
    const NFT_SET_EVAL: u32 = 0x20;
    let mut set = NftSet::default().with_table(TABLE).with_name(name);
    set.family = protocol_family(name_family(name));
    if let Some(def) = def {
        set = set
            .with_key_len(def.key.len)
            .with_key_type(def.key.kind)
            .with_flags(NFT_SET_EVAL | def.timeout_ms.map_or(0, |_| NFT_SET_TIMEOUT));
        if let Some(ms) = def.timeout_ms.filter(|ms| *ms > 0) {
            set = set.with_timeout(ms);
        }
    }
    set
}

fn table(family: Family) -> NftTable {
    NftTable::new(protocol_family(family)).with_name(TABLE)
}

fn chain_in(family: Family, name: &str) -> NftChain {
    NftChain::new(&table(family)).with_name(name)
}

/// A hooked chain of `family`'s table. Once dispatch rules are in, every packet leaves it
/// by one of them; until then (a first change killed after its staging batch, before the
/// switch) filter INPUT and FORWARD drop, so that no packet passes a firewall that is half
/// in place.
fn base_chain((family, b): Base) -> NftChain {
    let closed = b.table == Table::Filter && matches!(b.chain, Chain::Input | Chain::Forward);
    chain_in(family, b.name)
        .with_hook(Hook::new(b.hook, b.priority))
        .with_type(b.kind)
        .with_policy(if closed {
            ChainPolicy::Drop
        } else {
            ChainPolicy::Accept
        })
}

/// A generation chain, in the table of the family its name carries.
fn chain(name: &str) -> NftChain {
    chain_in(name_family(name), name)
}

fn add_rule(
    batch: &mut Batch,
    chain: &NftChain,
    exprs: Vec<RawExpression>,
    userdata: Option<Vec<u8>>,
) -> Result<()> {
    let mut rule = Rule::new(chain).context("building an nftables rule")?;
    for e in exprs {
        rule.add_expr(e);
    }
    if let Some(u) = userdata {
        rule.set_userdata(u);
    }
    batch.add(&rule, MsgType::Add);
    Ok(())
}

/// What of fwctl's tables the kernel holds.
#[derive(Debug, Default)]
struct Tables {
    /// The chains of `ip fwctl` and `ip6 fwctl`.
    chains: Vec<(Family, String)>,
    /// The `inet fwctl` of earlier versions is there ([`LEGACY_FAMILY`]).
    legacy: bool,
}

impl Tables {
    fn has(&self, family: Family, name: &str) -> bool {
        self.chains.iter().any(|(f, n)| *f == family && n == name)
    }

    /// The chains of generation `generation` (named with its digit first).
    fn generation(&self, generation: u32) -> impl Iterator<Item = &String> {
        let prefix = generation.to_string();
        self.chains
            .iter()
            .map(|(_, n)| n)
            .filter(move |n| n.starts_with(&prefix))
    }

    fn has_generation(&self, generation: u32) -> bool {
        self.generation(generation).any(|n| n.ends_with("-INPUT"))
    }
}

/// The families of fwctl's tables in this network namespace.
fn own_tables() -> Result<Vec<u8>> {
    Ok(netlink::table_names()?
        .into_iter()
        .filter(|(f, n)| n == TABLE && OWN_FAMILIES.contains(f))
        .map(|(f, _)| f)
        .collect())
}

/// Whether any of fwctl's tables exists in this network namespace.
pub fn table_exists() -> Result<bool> {
    Ok(!own_tables()?.is_empty())
}

/// The chains of fwctl's tables; empty when there is none.
fn tables() -> Result<Tables> {
    let own = own_tables()?;
    let mut out = Tables {
        chains: Vec::new(),
        legacy: own.contains(&LEGACY_FAMILY),
    };
    for family in Family::ALL {
        if own.contains(&nfproto(family)) {
            out.chains.extend(
                netlink::chain_names(nfproto(family), TABLE)?
                    .into_iter()
                    .map(|n| (family, n)),
            );
        }
    }
    Ok(out)
}

/// A hooked chain in the table of a family.
type Base = (Family, &'static BaseChain);

/// Empties the base chains, in the batch.
fn flush(batch: &mut Batch, bases: &[Base]) -> Result<()> {
    for &(family, b) in bases {
        batch.add(
            &Rule::new(&chain_in(family, b.name)).context("flushing a base chain")?,
            MsgType::Del,
        );
    }
    Ok(())
}

/// The dispatch rules of already emptied base chains: accepted-at-XDP, each generation XDP
/// may name, then the default generation.
fn dispatch(
    batch: &mut Batch,
    marks: Marks,
    present: &[u32],
    default: u32,
    bases: &[Base],
) -> Result<()> {
    for &(family, b) in bases {
        let base = chain_in(family, b.name);
        if b.xdp {
            // Only the chain XDP judged the packet by: if routing now disagrees with
            // XDP's view (an address or a sysctl changed since), judge it in full.
            let chain_bit = if b.chain == Chain::Forward {
                marks.forward()
            } else {
                0
            };
            let mut e = Vec::new();
            exprs::mark(
                marks.accepted() | marks.forward(),
                marks.accepted() | chain_bit,
                &mut e,
            );
            exprs::clear_mark(marks.all(), &mut e);
            e.push(exprs::verdict(VerdictKind::Accept));
            add_rule(batch, &base, e, Some(comment("fwctl accepted at XDP")))?;
            for &g in present {
                let mut e = Vec::new();
                exprs::mark(marks.generations(), marks.generation(g), &mut e);
                exprs::clear_mark(marks.all(), &mut e);
                e.push(exprs::verdict(VerdictKind::Goto {
                    chain: chain_name(g, b.table, family, b.chain.name()),
                }));
                add_rule(batch, &base, e, None)?;
            }
        }
        default_rule(batch, marks, present, default, (family, b))?;
    }
    Ok(())
}

/// The rule of base chain `b` that sends unmarked packets to generation `default`, after
/// its other dispatch rules (written for `present`).
fn default_rule(
    batch: &mut Batch,
    marks: Marks,
    present: &[u32],
    default: u32,
    (family, b): Base,
) -> Result<()> {
    let mut e = Vec::new();
    // Bits XDP set that no rule above took (routing changed its mind) go too.
    if b.xdp {
        exprs::clear_mark(marks.all(), &mut e);
    }
    e.push(exprs::verdict(VerdictKind::Goto {
        chain: chain_name(default, b.table, family, b.chain.name()),
    }));
    let tag = format!("{}to{default}", dispatch_tag(marks, present));
    add_rule(batch, &chain_in(family, b.name), e, Some(comment(&tag)))
}

/// The comment of a base chain's default rule (with `to<generation>` after it): what the
/// dispatch rules in front of it were written for. While it stays the same, a switch puts
/// a new default rule in front of the old ones rather than emptying the chain: a batch
/// that deletes rules makes the kernel wait for an RCU grace period when its netlink socket
/// closes (nf_tables flushes its destroy work at NETLINK_URELEASE, holding the commit
/// mutex: 10-20 ms here, paid by the next change). The old defaults are never reached: the
/// first sends every packet to a generation's chain for good (goto; those chains end in
/// their policy).
fn dispatch_tag(marks: Marks, present: &[u32]) -> String {
    let gens: String = present.iter().map(|g| g.to_string()).collect();
    format!("{DISPATCH_TAG}m{} g{gens} ", marks.shift)
}
const DISPATCH_TAG: &str = "fwctl default ";

/// Old default rules a base chain may hold before a switch deletes them (and the next
/// change pays the grace period once).
const STALE_DEFAULTS: usize = 16;

/// The default rules of each of `bases` (handles, first first) and the generation the
/// first ones send packets to, when every chain is in `tables` and its first default rule
/// was written for `tag`; None otherwise (its dispatch rules are then written again).
fn steady_defaults(
    bases: &[Base],
    tables: &Tables,
    tag: &str,
) -> Result<Option<(Vec<Vec<u64>>, u32)>> {
    let mut out = Vec::new();
    let mut target = None;
    for &(family, b) in bases {
        if !tables.has(family, b.name) {
            return Ok(None);
        }
        let rules = netlink::rule_comments(nfproto(family), TABLE, b.name)
            .context("netlink: reading a base chain's dispatch rules")?;
        let defaults: Vec<(u64, &str)> = rules
            .iter()
            .filter_map(|r| Some((r.handle, parse_comment(&r.userdata)?)))
            .filter(|(_, c)| c.starts_with(DISPATCH_TAG))
            .collect();
        let Some(to) = defaults
            .first()
            .and_then(|(_, c)| c.strip_prefix(tag)?.strip_prefix("to")?.parse::<u32>().ok())
        else {
            return Ok(None);
        };
        if *target.get_or_insert(to) != to {
            return Ok(None);
        }
        out.push(defaults.iter().map(|(h, _)| *h).collect());
    }
    Ok(target.map(|t| (out, t)))
}

/// A new default rule to generation `default` in front of the old ones of each of `bases`
/// (`defaults`: their handles, from [`steady_defaults`]); a chain's old ones go once it
/// holds [`STALE_DEFAULTS`].
fn redirect_defaults(
    out: &mut batch::RawBatch,
    marks: Marks,
    present: &[u32],
    default: u32,
    bases: &[Base],
    defaults: &[Vec<u64>],
) -> Result<()> {
    for (&(family, b), handles) in bases.iter().zip(defaults) {
        let Some(&first) = handles.first() else {
            continue;
        };
        let mut rules = Batch::new();
        default_rule(&mut rules, marks, present, default, (family, b))?;
        let buf = batch::finalized(rules);
        for h in batch::inner_messages(&buf) {
            out.copy_rule(
                &buf[h.at..h.at + h.len],
                0,
                incremental::Place::Before(first),
            );
        }
        if handles.len() >= STALE_DEFAULTS {
            let mut gone = Batch::new();
            for &handle in handles {
                let mut del = Rule::new(&chain_in(family, b.name)).context("deleting a rule")?;
                del.set_handle(handle);
                gone.add(&del, MsgType::Del);
            }
            out.extend(gone);
        }
    }
    Ok(())
}

fn send(batch: Batch, what: &str) -> Result<()> {
    batch::send(batch).with_context(|| format!("netlink: {what} (tables ip and ip6 {TABLE})"))
}

/// The hooked chains in use, in each family's table: the filter table's, and those of the
/// tables in `hooked` ([`hooked_tables`]); a base chain still in a table stays until
/// `switch` removes it.
fn bases(tables: &Tables, hooked: &[Table]) -> Vec<Base> {
    Family::ALL
        .into_iter()
        .flat_map(|family| {
            BASE_CHAINS
                .iter()
                .filter(move |b| {
                    b.table == Table::Filter
                        || hooked.contains(&b.table)
                        || tables.has(family, b.name)
                })
                .map(move |b| (family, b))
        })
        .collect()
}

/// Sends unmarked packets to generation `next` (already staged). `hooked`: the tables the
/// ruleset now in force needs hooks for; the other tables' hooks go.
pub fn switch(next: u32, marks: Marks, hooked: &[Table]) -> Result<()> {
    let tables = tables()?;
    let present: Vec<u32> = [0, 1]
        .into_iter()
        .filter(|g| tables.has_generation(*g))
        .collect();
    // The hooks of tables no longer in use go.
    let (gone, kept): (Vec<Base>, Vec<Base>) = bases(&tables, hooked)
        .into_iter()
        .partition(|(_, b)| b.table != Table::Filter && !hooked.contains(&b.table));
    if gone.is_empty() {
        if let Some((defaults, _)) =
            steady_defaults(&kept, &tables, &dispatch_tag(marks, &present))?
        {
            let mut out = batch::RawBatch::new();
            redirect_defaults(&mut out, marks, &present, next, &kept, &defaults)?;
            return batch::send_raw(out.finish()).with_context(|| {
                format!("netlink: switching to the new ruleset (tables ip and ip6 {TABLE})")
            });
        }
    }
    let mut batch = Batch::new();
    flush(&mut batch, &kept)?;
    dispatch(&mut batch, marks, &present, next, &kept)?;
    for &(family, b) in &gone {
        let base = chain_in(family, b.name);
        batch.add(&Rule::new(&base).context("flushing")?, MsgType::Del);
        batch.add(&base, MsgType::Del);
    }
    send(batch, "switching to the new ruleset")
}

/// The tables besides filter whose hooks `ruleset` needs: nat only while it has rules,
/// since a nat hook turns conntrack on for every packet of the namespace; mangle, raw and
/// security while they exist (iptables counts their policies from then on).
pub fn hooked_tables(ruleset: &Ruleset) -> Vec<Table> {
    let nat = Family::ALL
        .iter()
        .any(|&f| ruleset.table(Table::Nat, f).all_rules().next().is_some());
    let exists = |t: Table| Family::ALL.iter().any(|&f| ruleset.table(t, f).exists());
    [
        (Table::Nat, nat),
        (Table::Mangle, exists(Table::Mangle)),
        (Table::Raw, exists(Table::Raw)),
        (Table::Security, exists(Table::Security)),
    ]
    .into_iter()
    .filter(|(_, used)| *used)
    .map(|(t, _)| t)
    .collect()
}

/// The table of nftables family `family` (one of [`OWN_FAMILIES`]).
fn own_table(family: u8) -> NftTable {
    let kind = Family::ALL
        .into_iter()
        .find(|&f| nfproto(f) == family)
        .map_or(ProtocolFamily::Inet, protocol_family);
    NftTable::new(kind).with_name(TABLE)
}

/// Removes fwctl's tables and everything in them, in one batch; nothing when there is none.
pub fn remove() -> Result<()> {
    let own = own_tables()?;
    if own.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for family in own {
        batch.add(&own_table(family), MsgType::Del);
    }
    send(batch, "removing")
}

/// What netfilter counted for `ruleset`'s rules, per rule slot and policy. A counter of a
/// slot is read from the table of the family of the rule that has the slot: a counter left
/// from an earlier rule of that number may linger in the other table.
pub fn counters(ruleset: &Ruleset) -> Result<NftCounters> {
    let mut families: HashMap<u32, Family> = HashMap::default();
    for (family, rules) in ruleset.all_tables() {
        families.extend(rules.all_rules().map(|r| (r.slot, family)));
    }
    Ok(objects::counters(&objects::dump()?, |slot| {
        families.get(&slot).copied()
    }))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_set_names_read_back_and_nothing_else_does() {
        for (g, f, kind, slot) in [(0, Family::V4, "hl", 17), (1, Family::V6, "cl", 3)] {
            assert!(is_rate_set(&rate_set_name(g, f, kind, slot)));
        }
        for other in [
            "0v4-hl",
            "0v4-hlx",
            "set3-my-hlist",
            "2v4-hl1",
            "0v4-INPUT",
            "hl17",
        ] {
            assert!(!is_rate_set(other), "{other}");
        }
    }
}
