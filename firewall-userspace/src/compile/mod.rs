//! Ruleset -> the classifier's maps, computed once per change so the per-packet path only
//! looks up one value per field, ANDs bitmaps and takes the first set bit.
//!
//! `flatten` inlines user chains into entries (conjunctions of conditions); `fields` gives,
//! for every value a field can take, the bitmap of entries it satisfies; `pool` stores those
//! bitmaps deduplicated and sparse.

pub mod accounting;
pub mod fast;
pub mod fields;
pub mod flatten;
pub mod guards;
pub mod meters;
pub mod nat;
pub mod pool;
pub mod prehooks;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use firewall_common::{
    fast_final, Entry, Guard, IfMac, Meter, TableHeader, ENTRIES_PER_GENERATION, FIELD_DPORT,
    FIELD_DST, FIELD_ICMP, FIELD_IFACE, FIELD_PROTO, FIELD_SPORT, FIELD_SRC, FIELD_TCP_FLAGS,
    GUARDS_PER_GENERATION, IFACE_PAIRS_PER_GENERATION, MAX_ENTRIES, NO_GUARD,
    POOL_WORDS_PER_GENERATION, PROTO_KEYS, TABLE_USES_CT, TABLE_USES_GUARDS, TCP_FLAG_KEYS,
    VERDICT_ACCEPT, VERDICT_DROP,
};

use self::{
    fields::{
        bits_where, icmp_ranges, iface_holds, per_interval, per_prefix, per_value, port_ranges,
    },
    flatten::{Conds, Flat, Flattener},
    guards::GuardSpec,
    pool::{Bits, Pool},
};
use crate::{
    rules::{Chain, Cidr, Family, RuleSpec, Ruleset, Table, Target, Verdict},
    sets::model::Registry,
};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("user chain `{0}' is nested deeper than XDP inlining allows (4 levels)")]
    TooDeep(String),
    #[error("jump to `{0}', which does not exist")]
    NoChain(String),
    #[error("{0} RETURN rules and user-chain jumps in one chain; XDP allows at most 31")]
    TooManyReturns(usize),
    #[error("{family} {chain} compiles to {entries} classifier entries; the most is {max}")]
    TooManyEntries {
        family: &'static str,
        chain: Chain,
        entries: usize,
        max: u32,
    },
    #[error(
        "the ruleset needs {0} limit and set checks at XDP, more than the {1} a generation holds"
    )]
    TooManyGuards(usize, u32),
    #[error("the ruleset needs {0} bitmap words, more than the {1} a generation holds")]
    PoolFull(usize, u32),
    #[error(
        "-i/-o rules over {0} interface pairs (attached x all), more than the {1} a generation holds"
    )]
    TooManyInterfacePairs(usize, u32),
}

/// An interface, by the name rules match and the index packets carry; `attached` when
/// fwctl's program runs on it, and then `mac`, its address, which XDP judges frames to.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub attached: bool,
    pub mac: [u8; 6],
}

/// One table (a built-in chain of a family) in classifier form. Fields the table does not
/// use are `None`/empty: the program does not read them.
#[derive(Debug, Default)]
pub struct TableImage {
    pub header: TableHeader,
    pub entries: Vec<Entry>,
    pub proto: Option<Vec<u32>>,
    pub sport: Option<Vec<u32>>,
    pub dport: Option<Vec<u32>>,
    pub icmp: Option<Vec<u32>>,
    pub tcp_flags: Option<Vec<u32>>,
    /// (input ifindex, output ifindex, bitmap); 0 for none or unknown.
    pub iface: Vec<(u32, u32, u32)>,
    pub src: Vec<(Cidr, u32)>,
    pub dst: Vec<(Cidr, u32)>,
}

/// A whole generation: every table and the pool their bitmaps live in.
#[derive(Debug, Default)]
pub struct Image {
    /// (table index, image), one per family and built-in chain.
    pub tables: Vec<(u32, TableImage)>,
    pub pool: Vec<u64>,
    /// The generation's `FW_GUARDS`, from index 1 (0 stands for none).
    pub guards: Vec<Guard>,
    /// The buckets the guards draw from, by `FW_BUCKETS` key.
    pub meters: BTreeMap<u32, Meter>,
    /// Chains already stored, by their guards' bytes: a rule's entries (its alternatives,
    /// conntrack classes, the entries of a chain it jumps to) share one chain.
    chains: HashMap<Vec<u8>, u32>,
    /// The fast table of each family's INPUT (family index, `FW_FAST` words), and the
    /// per-conntrack-class outcomes they point to (see fast.rs).
    pub fast: Vec<(u32, fast::Words)>,
    pub by_class: fast::ByClass,
    /// The attached interfaces' `FW_IFMAC` entries.
    pub macs: Vec<IfMac>,
    /// The `FW_CONFIG` flags this ruleset decides (`CONFIG_RULESET_MASK`): its raw and
    /// mangle chains (prehooks.rs) and whether XDP is idle ([`idle`]); set with the flip.
    pub config_flags: u32,
    /// Chains XDP could not hold (too deep, too many RETURNs or entries), and why: XDP
    /// passes all their packets to netfilter.
    pub netfilter_only: Vec<String>,
}

impl Image {
    /// Stores an entry's guards as a chain; returns its first index, or NO_GUARD.
    fn add_guards(&mut self, specs: &[GuardSpec]) -> u32 {
        if specs.is_empty() {
            return NO_GUARD;
        }
        let bytes: Vec<u8> = specs
            .iter()
            .flat_map(|s| bytemuck::bytes_of(&s.guard).to_vec())
            .collect();
        if let Some(&first) = self.chains.get(&bytes) {
            return first;
        }
        if self.guards.is_empty() {
            self.guards.push(Guard::default());
        }
        let first = self.guards.len() as u32;
        for (i, spec) in specs.iter().enumerate() {
            let last = i + 1 == specs.len();
            self.guards.push(Guard {
                next: if last { NO_GUARD } else { first + i as u32 + 1 },
                ..spec.guard
            });
            if let Some((key, meter)) = spec.meter {
                self.meters.insert(key, meter);
            }
        }
        self.chains.insert(bytes, first);
        first
    }
}

pub fn verdict(v: Verdict) -> u32 {
    match v {
        Verdict::Accept => VERDICT_ACCEPT,
        Verdict::Drop => VERDICT_DROP,
    }
}

/// `CONFIG_IDLE` when `ruleset` gives XDP nothing to decide: no rule in INPUT or FORWARD
/// of either family, and both accept by policy. XDP then passes every packet unmarked
/// without reading it, and netfilter, whose chains are just as empty, counts the policies.
/// Anything else (a deferral to the raw, mangle or nat tables included) is for netfilter
/// too in that case, which judges unmarked packets in full.
fn idle(ruleset: &Ruleset) -> u32 {
    let empty = Family::ALL.iter().all(|&family| {
        [Chain::Input, Chain::Forward].iter().all(|&chain| {
            let rules = ruleset.family(family).chain(chain);
            rules.rules.is_empty() && rules.policy == Verdict::Accept
        })
    });
    // Raw PREROUTING's DROP rules are judged at XDP too (prehooks::raw).
    if empty && !prehooks::raw_drops(ruleset) {
        firewall_common::CONFIG_IDLE
    } else {
        0
    }
}

/// Compiles without sets: rules that match on one are left to netfilter.
pub fn compile(ruleset: &Ruleset, interfaces: &[Interface]) -> Result<Image, CompileError> {
    compile_with_sets(ruleset, interfaces, &Registry::default())
}

/// Compiles with set matches checked at XDP against the storages `sets` has in force.
pub fn compile_with_sets(
    ruleset: &Ruleset,
    interfaces: &[Interface],
    sets: &Registry,
) -> Result<Image, CompileError> {
    // Members `-j SET` adds are netfilter's alone: XDP leaves every match on such a set
    // to it, as it does a match on a set it does not know.
    let written: Vec<&str> = ruleset
        .written_sets()
        .map(|(_, m)| m.name.as_str())
        .collect();
    let unwritten;
    let sets = if written.is_empty() {
        sets
    } else {
        unwritten = Registry {
            sets: sets
                .sets
                .iter()
                .filter(|d| !written.contains(&d.name.as_str()))
                .cloned()
                .collect(),
            ..sets.clone()
        };
        &unwritten
    };
    let mut pool = Pool::default();
    let mut image = Image {
        macs: interfaces
            .iter()
            .filter(|i| i.attached)
            .map(|i| IfMac::new(i.ifindex, i.mac))
            .collect(),
        config_flags: prehooks::config_flags(ruleset) | idle(ruleset),
        ..Image::default()
    };
    let mut entry_base = 0u32;
    for family in Family::ALL {
        for chain in Chain::ALL {
            // OUTPUT has no table: locally generated packets never pass XDP.
            let Some(index) = chain.xdp_index() else {
                continue;
            };
            let table = firewall_common::table_index(family.index(), index);
            let slot = firewall_common::policy_counter(family.index(), index);
            let rules = ruleset.family(family);
            let policy = rules.chain(chain).policy;
            let flatten = |ahead: &[prehooks::Ahead], rules: &[crate::rules::Rule]| {
                let mut f = Flattener::new(ruleset.family(family), family, sets, policy, slot);
                for a in ahead {
                    match a {
                        prehooks::Ahead::Defer(spec) => f.defer(spec),
                        prehooks::Ahead::RawDrop(rule) => f.raw_drop(rule)?,
                    }
                }
                f.chain(rules, &Conds::default(), &[], None)?;
                let mut flats = f.finish()?;
                meters::one_per_limit(&mut flats);
                if flats.len() > MAX_ENTRIES as usize {
                    return Err(CompileError::TooManyEntries {
                        family: family.tool(),
                        chain,
                        entries: flats.len(),
                        max: MAX_ENTRIES,
                    });
                }
                Ok(flats)
            };
            // In iptables' order: raw PREROUTING (-300), mangle (-150), nat (-100).
            let mut ahead = prehooks::raw(ruleset, family);
            let deferred = prehooks::mangle(ruleset, family, chain)
                .into_iter()
                .chain(nat::deferred(ruleset.table(Table::Nat, family)))
                .chain(accounting::deferred(ruleset, family));
            ahead.extend(deferred.map(prehooks::Ahead::Defer));
            let flats = match flatten(&ahead, &rules.chain(chain).rules) {
                // A chain XDP cannot hold in its classifier is netfilter's alone: XDP passes
                // every packet of it on, and iptables' semantics are kept where they live
                // in full. Slower, never refused: iptables loads such a ruleset.
                Err(
                    e @ (CompileError::TooDeep(_)
                    | CompileError::TooManyReturns(_)
                    | CompileError::TooManyEntries { .. }),
                ) => {
                    let why = format!("{} {}: {e}", family.tool(), chain.name());
                    log::warn!("{why}: netfilter judges this chain's packets; XDP passes them on");
                    image.netfilter_only.push(why);
                    flatten(
                        &[prehooks::Ahead::Defer(RuleSpec::any(Target::Accept))],
                        &[],
                    )?
                }
                other => other?,
            };
            let mut t = table_image(&flats, family, interfaces, &mut pool);
            for (entry, flat) in t.entries.iter_mut().zip(&flats) {
                entry.guard = image.add_guards(&flat.conds.guards);
            }
            if flats.iter().any(|f| !f.conds.guards.is_empty()) {
                t.header.flags |= TABLE_USES_GUARDS;
            }
            t.header.policy = verdict(policy);
            t.header.policy_slot = slot;
            if chain == Chain::Input {
                let inputs: Vec<&str> = interfaces
                    .iter()
                    .filter(|i| i.attached)
                    .map(|i| i.name.as_str())
                    .chain([""])
                    .collect();
                let spec = fast::Chain {
                    family,
                    inputs: &inputs,
                    policy: fast_final(verdict(policy), slot),
                    uses_ct: t.header.flags & TABLE_USES_CT != 0,
                };
                let words = fast::table(&flats, &spec, &mut image.by_class);
                image.fast.push((family.index(), words));
            }
            t.header.entry_base = entry_base;
            entry_base += t.entries.len() as u32;
            image.tables.push((table, t));
        }
    }
    if entry_base > ENTRIES_PER_GENERATION {
        return Err(CompileError::TooManyEntries {
            family: "all",
            chain: Chain::Input,
            entries: entry_base as usize,
            max: ENTRIES_PER_GENERATION,
        });
    }
    if image.guards.len() > GUARDS_PER_GENERATION as usize {
        return Err(CompileError::TooManyGuards(
            image.guards.len() - 1,
            GUARDS_PER_GENERATION - 1,
        ));
    }
    if pool.words.len() > POOL_WORDS_PER_GENERATION as usize {
        return Err(CompileError::PoolFull(
            pool.words.len(),
            POOL_WORDS_PER_GENERATION,
        ));
    }
    // Checked here, not left to the map insert: its E2BIG would not say which limit.
    let pairs: usize = image.tables.iter().map(|(_, t)| t.iface.len()).sum();
    if pairs > IFACE_PAIRS_PER_GENERATION as usize {
        return Err(CompileError::TooManyInterfacePairs(
            pairs,
            IFACE_PAIRS_PER_GENERATION,
        ));
    }
    image.pool = pool.words;
    Ok(image)
}

fn table_image(
    flats: &[Flat],
    family: Family,
    interfaces: &[Interface],
    pool: &mut Pool,
) -> TableImage {
    let mut t = TableImage {
        entries: flats.iter().map(|f| f.entry).collect(),
        ..TableImage::default()
    };
    let n = flats.len();
    t.header.entry_count = n as u32;
    if n == 0 {
        return t;
    }
    let mut all = Bits::new(n);
    (0..n).for_each(|e| all.set(e, true));
    t.header.all = pool.add(&all);
    let without = |used: &dyn Fn(&Conds) -> bool| bits_where(flats, |f| !used(&f.conds));
    let used = |f: fn(&Conds) -> bool| flats.iter().any(|fl| f(&fl.conds));

    if used(|c| !c.iface.is_empty() || !c.oiface.is_empty()) {
        t.header.fields |= FIELD_IFACE;
        // Input: the attached interfaces (XDP runs nowhere else) and "unknown"; output:
        // every interface and "none" (for this host, or created after this compile).
        let inputs: Vec<(u32, &str)> = interfaces
            .iter()
            .filter(|i| i.attached)
            .map(|i| (i.ifindex, i.name.as_str()))
            .chain([(0, "")])
            .collect();
        let outputs: Vec<(u32, &str)> = interfaces
            .iter()
            .map(|i| (i.ifindex, i.name.as_str()))
            .chain([(0, "")])
            .collect();
        for &(in_ifindex, in_name) in &inputs {
            for &(out_ifindex, out_name) in &outputs {
                let bits = bits_where(flats, |f| {
                    iface_holds(&f.conds.iface, in_name) && iface_holds(&f.conds.oiface, out_name)
                });
                let at = pool.add(&bits);
                if in_ifindex == 0 && out_ifindex == 0 {
                    t.header.unknown_iface = at;
                } else {
                    t.iface.push((in_ifindex, out_ifindex, at));
                }
            }
        }
    }
    if used(|c| !c.src.is_empty()) {
        t.header.fields |= FIELD_SRC;
        t.src = per_prefix(flats, pool, family, |f| &f.conds.src);
    }
    if used(|c| !c.dst.is_empty()) {
        t.header.fields |= FIELD_DST;
        t.dst = per_prefix(flats, pool, family, |f| &f.conds.dst);
    }
    let uses_ct = used(|c| c.classes.is_some());
    if uses_ct || used(|c| !c.proto.is_empty()) {
        t.header.fields |= FIELD_PROTO;
        let proto_holds = |f: &Flat, p: u32| {
            f.conds
                .proto
                .iter()
                .all(|c| (c.value as u32 == p) != c.negated)
        };
        // What proto_holds and for_class read of an entry.
        let key = |f: &Flat| {
            let protos: Vec<(u8, bool)> =
                f.conds.proto.iter().map(|c| (c.value, c.negated)).collect();
            (protos, f.conds.classes)
        };
        // Key: class * 256 + protocol. A table without conntrack rules only ever sees
        // class 0; its other classes repeat it rather than cost a compile each.
        let proto = if uses_ct {
            t.header.flags |= TABLE_USES_CT;
            per_value(flats, pool, PROTO_KEYS, key, |f, v| {
                f.conds.for_class(v / 256) && proto_holds(f, v % 256)
            })
        } else {
            per_value(flats, pool, 256, key, proto_holds).repeat((PROTO_KEYS / 256) as usize)
        };
        t.proto = Some(proto);
    }
    if used(|c| !c.sport.is_empty()) {
        t.header.fields |= FIELD_SPORT;
        t.header.no_sport = pool.add(&without(&|c| !c.sport.is_empty()));
        t.sport = Some(per_interval(flats, pool, |f| port_ranges(&f.conds.sport)));
    }
    if used(|c| !c.dport.is_empty()) {
        t.header.fields |= FIELD_DPORT;
        t.header.no_dport = pool.add(&without(&|c| !c.dport.is_empty()));
        t.dport = Some(per_interval(flats, pool, |f| port_ranges(&f.conds.dport)));
    }
    if used(|c| !c.icmp.is_empty()) {
        t.header.fields |= FIELD_ICMP;
        t.header.no_icmp = pool.add(&without(&|c| !c.icmp.is_empty()));
        t.icmp = Some(per_interval(flats, pool, |f| {
            icmp_ranges(&f.conds.icmp, family)
        }));
    }
    if used(|c| !c.tcp_flags.is_empty()) {
        t.header.fields |= FIELD_TCP_FLAGS;
        t.header.no_tcp = pool.add(&without(&|c| !c.tcp_flags.is_empty()));
        let key = |f: &Flat| -> Vec<(u8, u8, bool)> {
            f.conds
                .tcp_flags
                .iter()
                .map(|c| (c.value.mask, c.value.comp, c.negated))
                .collect()
        };
        t.tcp_flags = Some(per_value(flats, pool, TCP_FLAG_KEYS, key, |f, v| {
            f.conds
                .tcp_flags
                .iter()
                .all(|c| ((v as u8 & c.value.mask) == c.value.comp) != c.negated)
        }));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::restore::restore;

    fn interfaces(n: u32) -> Vec<Interface> {
        (1..=n)
            .map(|i| Interface {
                name: format!("eth{i}"),
                ifindex: i,
                attached: true,
                mac: [2, 0, 0, 0, 0, i as u8],
            })
            .collect()
    }

    #[test]
    fn entries_of_one_rule_share_its_guard_chain() {
        // --ports: two entries (source port, destination port), one limit.
        let text = "*filter\n-A INPUT -p tcp -m multiport --ports 25,587 -m limit --limit 5/sec -j ACCEPT\nCOMMIT\n";
        let rules = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        let image = compile(&rules.editor.ruleset, &[]).unwrap();
        let guarded: Vec<u32> = image
            .tables
            .iter()
            .flat_map(|(_, t)| t.entries.iter().map(|e| e.guard))
            .filter(|&g| g != NO_GUARD)
            .collect();
        assert_eq!(guarded.len(), 2);
        assert_eq!(guarded[0], guarded[1]);
        // Index 0 stands for none; one stored guard.
        assert_eq!(image.guards.len(), 2);
    }

    #[test]
    fn a_chain_beyond_xdps_limits_is_left_to_netfilter() {
        let mut text = String::from("*filter\n:U - [0:0]\n-A INPUT -p tcp -j U\n");
        for i in 0..40 {
            text.push_str(&format!("-A U -s 10.0.0.{i} -j RETURN\n"));
        }
        text.push_str("-A FORWARD -p udp -j DROP\nCOMMIT\n");
        let rules = restore(&text, Family::V4, &Ruleset::default(), false).unwrap();
        let image = compile(&rules.editor.ruleset, &[]).unwrap();
        assert_eq!(image.netfilter_only.len(), 1, "{:?}", image.netfilter_only);
        assert!(image.netfilter_only[0].starts_with("iptables INPUT"));
        let table = |chain| {
            let index = firewall_common::table_index(Family::V4.index(), chain);
            &image.tables.iter().find(|(i, _)| *i == index).unwrap().1
        };
        // One entry that matches everything and defers; FORWARD is XDP's as before.
        let input = table(firewall_common::CHAIN_INPUT);
        assert_eq!(input.entries.len(), 1);
        assert_eq!(input.entries[0].action, firewall_common::VERDICT_DEFER);
        let forward = table(firewall_common::CHAIN_FORWARD);
        assert_eq!(forward.entries[0].action, firewall_common::VERDICT_DROP);
    }

    #[test]
    fn interface_pairs_are_bounded_per_generation() {
        let text = "*filter\n-A FORWARD -i eth1 -o eth2 -j ACCEPT\nCOMMIT\n";
        let rules = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        let ruleset = &rules.editor.ruleset;
        // 10 attached: 10 x 11 input/output pairs (with "none") + 10 unknown-input ones.
        let image = compile(ruleset, &interfaces(10)).unwrap();
        let pairs: usize = image.tables.iter().map(|(_, t)| t.iface.len()).sum();
        assert_eq!(pairs, 10 * 11 + 10);
        match compile(ruleset, &interfaces(60)) {
            Err(CompileError::TooManyInterfacePairs(n, max)) => {
                assert_eq!(n, 60 * 61 + 60);
                assert_eq!(max, IFACE_PAIRS_PER_GENERATION);
            }
            other => panic!("expected TooManyInterfacePairs, got {other:?}"),
        }
    }
}
