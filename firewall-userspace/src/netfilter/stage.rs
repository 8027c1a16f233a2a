//! Staging a generation (see the parent module): the new ruleset, translated, against the
//! record of what the generation holds (`record`); only the rules that differ go to the
//! kernel, by handle (`incremental`), or the whole generation when nothing is recorded.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use rustables::{Batch, MsgType, Rule};
use rustc_hash::{FxHashMap as HashMap, FxHashSet};

use super::{
    add_rule, base_chain, bases, batch, chain, chain_name, dispatch, dispatch_tag, flush,
    incremental, is_rate_set, name_family, netlink, nfproto, objects, own_table, rate_set, record,
    steady_defaults, table, tables, ChainImage, Marks, RateSet, Tables, LEGACY_FAMILY, POLICY_RULE,
    TABLE,
};
use crate::rules::{Family, Table};

/// Where the records of what each generation holds live (`record`), and what is in force.
pub struct Staging<'a> {
    pub dir: &'a std::path::Path,
    /// The counters the rules in force count in ([`in_force`]).
    pub in_force: &'a objects::InForce,
    /// Makes every fwctl set in the per-family tables: called when the `inet fwctl` of
    /// earlier versions is still there, which this staging replaces.
    pub remake_sets: &'a dyn Fn() -> Result<()>,
}

/// A translated generation taken apart: the messages of the rules translated (one
/// finalized batch) and, per chain, what the rest of staging needs.
struct Catalog {
    buf: Vec<u8>,
    messages: Vec<netlink::Header>,
    chains: Vec<CatalogChain>,
}

/// A rule of a [`CatalogChain`].
struct CatalogRule {
    source: u64,
    alt: u32,
    slot: u32,
    /// Its message in the catalog, if it was translated.
    message: Option<usize>,
}

impl CatalogRule {
    fn fingerprint(&self) -> u64 {
        record::fingerprint(self.source, self.alt)
    }
}

struct CatalogChain {
    name: String,
    rules: Vec<CatalogRule>,
    sets: Vec<RateSet>,
}

impl Catalog {
    fn build(chains: Vec<ChainImage>) -> Result<Catalog> {
        let mut batch = Batch::new();
        let mut out = Vec::new();
        let mut at = 0;
        // Taken apart as they go into the batch: a copy of every rule's expressions, made
        // and freed, cost as much as the batch itself for 10,000 rules.
        for image in chains {
            let c = chain(&image.name);
            let mut rules = Vec::with_capacity(image.rules.len());
            for r in image.rules {
                let message = match r.body {
                    Some((e, userdata)) => {
                        add_rule(&mut batch, &c, e, Some(userdata))?;
                        at += 1;
                        Some(at - 1)
                    }
                    None => None,
                };
                rules.push(CatalogRule {
                    source: r.source,
                    alt: r.alt,
                    slot: r.slot,
                    message,
                });
            }
            out.push(CatalogChain {
                name: image.name,
                rules,
                sets: image.sets,
            });
        }
        let buf = batch::finalized(batch);
        let messages = batch::inner_messages(&buf);
        anyhow::ensure!(
            messages.len() == at,
            "{} nftables rules made {} messages",
            at,
            messages.len()
        );
        Ok(Catalog {
            buf,
            messages,
            chains: out,
        })
    }

    /// Whether a rule `plans` sends was left untranslated (the generation held it, but it
    /// moved, or its chain is written whole).
    fn lacks(&self, plans: &Plans) -> bool {
        self.chains.iter().zip(plans).any(|(c, plan)| match plan {
            None => c.rules.iter().any(|r| r.message.is_none()),
            Some(keep) => keep
                .iter()
                .zip(&c.rules)
                .any(|(kept, r)| kept.is_none() && r.message.is_none()),
        })
    }
}

/// Per chain of a catalog, for each of its rules the recorded rule it keeps; None for a
/// chain written whole (not recorded, or changed too much: `incremental::rewrite_whole`).
type Plans = Vec<Option<Vec<Option<usize>>>>;

fn plans(catalog: &Catalog, record: Option<&record::GenRecord>) -> Plans {
    catalog
        .chains
        .iter()
        .map(|c| {
            let old = record?.chains.get(&c.name)?;
            let fps: Vec<u64> = old.iter().map(|r| r.fingerprint()).collect();
            let new: Vec<u64> = c.rules.iter().map(|r| r.fingerprint()).collect();
            let keep = incremental::plan(&fps, &new);
            let kept = keep.iter().flatten().count();
            (!incremental::rewrite_whole(old.len(), new.len(), kept)).then_some(keep)
        })
        .collect()
}

/// The counter object a rule of chain `chain` (named with its generation `prefix`) with
/// slot `slot` counts in first, in the table of the chain's family.
fn counter_of(prefix: &str, chain: &str, slot: u32) -> (Family, String) {
    let name = if slot == POLICY_RULE {
        objects::policy(&chain[prefix.len()..])
    } else {
        objects::rule(slot)
    };
    (name_family(chain), name)
}

/// Writes generation `next` while the default stays on `current`, if that generation is
/// in the table. One batch: all of it or none. `chains` is the new ruleset translated
/// against `record`, what `next` holds (see [`translate`]): only the rules that differ are
/// sent, by handle. Without a record, or if the kernel refuses the short batch, the
/// generation is written whole (`retranslate` translates everything for that). `hooked`:
/// the tables besides filter the new ruleset needs hooks for ([`hooked_tables`]). Returns
/// the token of the record of what `next` now holds, if one could be written.
#[allow(clippy::too_many_arguments)]
pub fn stage(
    chains: Vec<ChainImage>,
    record: Option<record::GenRecord>,
    retranslate: impl Fn() -> Result<Vec<ChainImage>>,
    next: u32,
    current: u32,
    marks: Marks,
    hooked: &[Table],
    staging: &Staging,
) -> Result<Option<u64>> {
    let tables = tables()?;
    if tables.legacy {
        (staging.remake_sets)()?;
    }
    crate::timings::phase("nft: list chains");
    record::forget(staging.dir, next)?;
    let mut catalog = Catalog::build(chains)?;
    crate::timings::phase("nft: build rules");
    let plans = plans(&catalog, record.as_ref());
    // Rules left untranslated because the generation holds them, but that are sent after
    // all: everything is translated.
    if catalog.lacks(&plans) {
        catalog = Catalog::build(retranslate()?)?;
    }
    let written = match write_generation(
        &catalog,
        &plans,
        next,
        current,
        marks,
        hooked,
        &tables,
        record.as_ref(),
        staging,
    ) {
        Err(e) if record.is_some() => {
            log::warn!("rewriting nftables generation {next} whole: {e:#}");
            let catalog = Catalog::build(retranslate()?)?;
            write_generation(
                &catalog,
                &vec![None; catalog.chains.len()],
                next,
                current,
                marks,
                hooked,
                &tables,
                None,
                staging,
            )?
        }
        other => other?,
    };
    let Some(written) = written else {
        return Ok(None);
    };
    let token = crate::dataplane::keyed::new_token();
    match record::store(staging.dir, next, token, &written) {
        Ok(()) => Ok(Some(token)),
        Err(e) => {
            log::info!("the next change rewrites nftables generation {next} whole: {e:#}");
            Ok(None)
        }
    }
}

/// One staging batch (see [`stage`]): against `record` if given, else whole. Returns what
/// the generation holds after it, if the kernel told every new rule's handle.
#[allow(clippy::too_many_arguments)]
fn write_generation(
    catalog: &Catalog,
    plans: &Plans,
    next: u32,
    current: u32,
    marks: Marks,
    hooked: &[Table],
    tables: &Tables,
    record: Option<&record::GenRecord>,
    staging: &Staging,
) -> Result<Option<record::GenRecord>> {
    const NLM_F_ECHO: u16 = 0x8;
    let prefix = next.to_string();
    let bases = bases(tables, hooked);
    let in_kernel: Vec<&String> = tables.generation(next).collect();
    let fresh = |chain: &str, slot: u32| staging.in_force.fresh(&prefix, chain, slot);
    let mut out = batch::RawBatch::new();
    let mut head = Batch::new();
    // The `inet fwctl` of earlier versions goes as the per-family tables take over: its
    // generations are not kept, the new one is the default at once.
    if tables.legacy {
        head.add(&own_table(LEGACY_FAMILY), MsgType::Del);
    }
    for family in Family::ALL {
        head.add(&table(family), MsgType::Add);
    }
    // Only the missing ones: adding a chain that exists is an update, which nf_tables
    // frees after an RCU grace period, and the socket's release waits that out (10-20 ms,
    // holding the commit mutex the next change needs).
    for &base in bases.iter().filter(|(f, b)| !tables.has(*f, b.name)) {
        head.add(&base_chain(base), MsgType::Add);
    }
    let keep_current = current != next && tables.has_generation(current);
    // In order: the switch writes them so (their marks are disjoint, any order judges alike).
    let present: Vec<u32> = if keep_current {
        vec![current.min(next), current.max(next)]
    } else {
        vec![next]
    };
    let default = if keep_current { current } else { next };
    // The base chains already dispatch as they must (to both generations, the default to
    // the one in force) and every chain of this generation they name stays: left as they
    // are. Otherwise emptied while chains of the idle one may go, and written again below.
    let steady = keep_current
        && bases.iter().all(|&(f, b)| {
            let name = chain_name(next, b.table, f, b.chain.name());
            catalog.chains.iter().any(|c| c.name == name)
        })
        && steady_defaults(&bases, tables, &dispatch_tag(marks, &present))?
            .is_some_and(|(_, to)| to == default);
    if !steady {
        flush(&mut head, &bases)?;
    }
    // Per chain of the catalog: for each new rule, the old rule it keeps.
    let mut keeps: Vec<Option<Vec<Option<usize>>>> = Vec::new();
    // Counters of old rules of this generation that the ruleset in force lacks.
    let mut idle_fresh = BTreeSet::new();
    for (c, plan) in catalog.chains.iter().zip(plans) {
        let old = record.and_then(|r| r.chains.get(&c.name));
        let (Some(old), Some(keep)) = (old, plan) else {
            // Not recorded: emptied if the kernel has it, then written whole.
            if in_kernel.contains(&&c.name) {
                head.add(
                    &Rule::new(&chain(&c.name)).context("flushing")?,
                    MsgType::Del,
                );
            }
            keeps.push(None);
            continue;
        };
        let kept: FxHashSet<usize> = keep.iter().flatten().copied().collect();
        for (_, r) in old.iter().enumerate().filter(|(i, _)| !kept.contains(i)) {
            let mut del = Rule::new(&chain(&c.name)).context("deleting a rule")?;
            del.set_handle(r.handle);
            head.add(&del, MsgType::Del);
        }
        keeps.push(Some(keep.clone()));
    }
    if let Some(r) = record {
        for (name, rules) in &r.chains {
            idle_fresh.extend(
                rules
                    .iter()
                    .filter(|x| fresh(name, x.slot))
                    .map(|x| counter_of(&prefix, name, x.slot)),
            );
        }
    }
    // Chains of the generation that the new one lacks go, rules first.
    let gone: Vec<&&String> = in_kernel
        .iter()
        .filter(|n| !catalog.chains.iter().any(|c| &c.name == **n))
        .collect();
    for name in &gone {
        head.add(&Rule::new(&chain(name)).context("flushing")?, MsgType::Del);
    }
    for name in &gone {
        head.add(&chain(name), MsgType::Del);
    }
    // Rate sets: a kept rule keeps its set (and its state); a set whose rule is new, or
    // that no rule uses any more, goes.
    let mut existing_sets: Vec<String> = Vec::new();
    if !tables.chains.is_empty() {
        for family in Family::ALL {
            existing_sets.extend(netlink::set_names(nfproto(family), TABLE)?);
        }
    }
    crate::timings::phase("nft: list sets");
    let wanted: Vec<&RateSet> = catalog.chains.iter().flat_map(|c| &c.sets).collect();
    // (A rule kept with a slot new to the ruleset keeps its set too: iptables' hashlimit
    // keeps a table by name across rule replacements as well.)
    let keep_set = |name: &str| record.is_some() && wanted.iter().any(|s| s.name == name);
    for name in existing_sets
        .iter()
        .filter(|n| n.starts_with(&prefix) && is_rate_set(n))
        .filter(|n| !keep_set(n))
    {
        head.add(&rate_set(name, None), MsgType::Del);
    }
    out.extend(head);
    let mut made_sets: Vec<&str> = existing_sets
        .iter()
        .filter(|n| keep_set(n))
        .map(String::as_str)
        .collect();
    let mut id = 0u32;
    let mut sets = Batch::new();
    for set in &wanted {
        if made_sets.contains(&set.name.as_str()) {
            continue;
        }
        made_sets.push(&set.name);
        id += 1;
        // The kernel wants an id for a set made in a batch, unique in the batch.
        sets.add(&rate_set(&set.name, Some(set)).with_id(id), MsgType::Add);
    }
    out.extend(sets);
    // Counter objects: one at zero for each new slot, and for the policy of a chain new to
    // the ruleset. One may be left from an earlier rule of that slot number (or a run that
    // went wrong): made here if missing, reset once the batch is in (`objects::reset`).
    // Those of the old rules of this generation that neither generation counts in any
    // more go; written whole, the generation deletes none (the rules in force may not be
    // what the state says after a crash, and a counter in use cannot go). A table written
    // before counter objects has its counts moved into them.
    let wanted = |all: bool| -> BTreeMap<(Family, String), bool> {
        catalog
            .chains
            .iter()
            .flat_map(|c| c.rules.iter().map(move |r| (c, r)))
            .filter_map(|(c, r)| {
                let fresh = fresh(&c.name, r.slot);
                (all || fresh).then(|| (counter_of(&prefix, &c.name, r.slot), fresh))
            })
            .collect()
    };
    let mut reset: Vec<(Family, String)> = Vec::new();
    match record {
        Some(_) => {
            let wanted_fresh = wanted(false);
            for (family, name) in idle_fresh.iter().filter(|o| !wanted_fresh.contains_key(*o)) {
                objects::delete(&mut out, *family, name);
            }
            for (family, name) in wanted_fresh.into_keys() {
                objects::create(&mut out, family, &name, (0, 0));
                reset.push((family, name));
            }
        }
        None => {
            let existing = objects::dump()?;
            let legacy = if tables.legacy {
                objects::dump_legacy()?
            } else {
                BTreeMap::new()
            };
            for (key, fresh) in wanted(true) {
                let (family, name) = &key;
                if fresh {
                    objects::create(&mut out, *family, name, (0, 0));
                    if existing.contains_key(&key) {
                        reset.push(key);
                    }
                } else if !existing.contains_key(&key) {
                    let counts = legacy.get(name).copied().unwrap_or_default();
                    objects::create(&mut out, *family, name, counts);
                }
            }
        }
    }
    let mut adds = Batch::new();
    for (c, keep) in catalog.chains.iter().zip(&keeps) {
        if keep.is_none() && !in_kernel.contains(&&c.name) {
            adds.add(&chain(&c.name), MsgType::Add);
        }
    }
    out.extend(adds);
    // The new rules, each echoed back with the handle the kernel gave it.
    let mut sent: HashMap<u32, (usize, usize)> = HashMap::default();
    let mut echoed_bytes = 0;
    for (ci, (c, keep)) in catalog.chains.iter().zip(&keeps).enumerate() {
        let places = match (keep, record.and_then(|r| r.chains.get(&c.name))) {
            (Some(keep), Some(old)) => {
                let handles: Vec<u64> = old.iter().map(|r| r.handle).collect();
                incremental::placements(keep, &handles)
            }
            _ => (0..c.rules.len())
                .map(|j| (j, incremental::Place::End))
                .collect(),
        };
        for (j, place) in places {
            let Some(h) = c.rules[j].message.map(|m| &catalog.messages[m]) else {
                bail!("a rule to write in {} was not translated", c.name);
            };
            let msg = &catalog.buf[h.at..h.at + h.len];
            let seq = out.copy_rule(msg, NLM_F_ECHO, place);
            sent.insert(seq, (ci, j));
            echoed_bytes += 2 * h.len + 512;
        }
    }
    if !steady {
        let mut tail = Batch::new();
        dispatch(&mut tail, marks, &present, default, &bases)?;
        out.extend(tail);
    }
    crate::timings::phase("nft: build staging batch");
    let mut handles: HashMap<(usize, usize), u64> =
        HashMap::with_capacity_and_hasher(sent.len(), Default::default());
    batch::send_echoed(out.finish(), echoed_bytes, |h, buf| {
        const NFT_MSG_NEWRULE: u16 = 6;
        const NFTA_RULE_HANDLE: u16 = 3;
        if h.kind & 0xff != NFT_MSG_NEWRULE || h.len < 20 {
            return;
        }
        let Some(&at) = sent.get(&h.seq) else {
            return;
        };
        for (k, v) in netlink::attributes(&buf[h.at + 20..h.at + h.len]) {
            if k & netlink::NLA_TYPE_MASK == NFTA_RULE_HANDLE {
                if let Ok(b) = <[u8; 8]>::try_from(v) {
                    handles.insert(at, u64::from_be_bytes(b));
                }
            }
        }
    })
    .with_context(|| format!("netlink: staging the new ruleset (tables ip and ip6 {TABLE})"))?;
    crate::timings::phase("nft: send staging batch");
    objects::reset(&reset)?;
    // What the generation holds now.
    let mut written = record::GenRecord::default();
    for (ci, (c, keep)) in catalog.chains.iter().zip(&keeps).enumerate() {
        let old = record.and_then(|r| r.chains.get(&c.name));
        let mut rules = Vec::with_capacity(c.rules.len());
        for (j, r) in c.rules.iter().enumerate() {
            let kept = match (keep, old) {
                (Some(keep), Some(old)) => keep[j].map(|i| old[i].handle),
                _ => None,
            };
            let Some(handle) = kept.or_else(|| handles.get(&(ci, j)).copied()) else {
                log::info!("nftables did not echo every new rule: the next change writes the generation whole");
                return Ok(None);
            };
            rules.push(record::RuleRecord {
                source: r.source,
                alt: r.alt,
                handle,
                slot: r.slot,
            });
        }
        written.chains.insert(c.name.clone(), rules);
    }
    Ok(Some(written))
}
