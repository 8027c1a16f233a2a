//! Typed access to the program's maps, wherever they came from (pins, or a freshly loaded
//! object in tests), and the one write sequence that changes a ruleset atomically.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, IterableMap, Map, MapData, PerCpuArray, PerCpuValues,
    },
    util::nr_cpus,
};
use firewall_common::{
    fast_index, field_slot, tag, Config, Counter, IfMac, IfaceKey, Lpm4, Lpm6, TableHeader, Talker,
    CONFIG_RULESET_MASK, FAMILIES, FAST_CLASSES, FAST_CT_PER_GENERATION, FAST_KEYS, GENERATIONS,
    ICMP_KEYS, MAP_BUCKETS, MAP_CONFIG, MAP_COUNTERS, MAP_DPORT, MAP_DST4, MAP_DST6, MAP_ENTRIES,
    MAP_FAST, MAP_FAST_CT, MAP_GUARDS, MAP_HASHLIMIT, MAP_ICMP, MAP_IFACE, MAP_IFMAC, MAP_POOL,
    MAP_PROTO, MAP_REASONS, MAP_SPORT, MAP_SRC4, MAP_SRC6, MAP_TABLES, MAP_TALKERS, MAP_TCP_FLAGS,
    PORT_KEYS, PROTO_KEYS, REASON_NAMES, REASON_SLOTS, TABLES, TALKER_SLOTS, TCP_FLAG_KEYS,
};

use super::{
    capacity::Capacity,
    guards::GuardMaps,
    keyed::{self, KeyedImage, KEYED_MAPS, KEY_LEN},
    mmap::MmapArray,
};
use crate::compile::Image;

/// Every map fwctl pins (aya-log's ring buffer is not: the program keeps it alive).
pub const MAP_NAMES: [&str; 23] = [
    MAP_CONFIG,
    MAP_TABLES,
    MAP_ENTRIES,
    MAP_POOL,
    MAP_PROTO,
    MAP_SPORT,
    MAP_DPORT,
    MAP_ICMP,
    MAP_TCP_FLAGS,
    MAP_IFACE,
    MAP_SRC4,
    MAP_DST4,
    MAP_SRC6,
    MAP_DST6,
    MAP_COUNTERS,
    MAP_REASONS,
    MAP_TALKERS,
    MAP_GUARDS,
    MAP_BUCKETS,
    MAP_HASHLIMIT,
    MAP_FAST,
    MAP_FAST_CT,
    MAP_IFMAC,
];

/// The set tries, pinned beside the others; sets/xdp.rs opens them.
pub const SET_MAP_NAMES: [&str; 2] = [firewall_common::MAP_SET4, firewall_common::MAP_SET6];

/// LPM key data that starts with its table tag.
trait Tagged: aya::Pod {
    fn tag(&self) -> u32;
}

impl Tagged for Lpm4 {
    fn tag(&self) -> u32 {
        self.bytes[0] as u32
    }
}

impl Tagged for Lpm6 {
    fn tag(&self) -> u32 {
        self.bytes[0] as u32
    }
}

/// Removes a generation's prefixes from a trie.
fn clear_trie<K: Tagged>(trie: &mut LpmTrie<MapData, K, u32>, generation: u32) -> Result<()> {
    let stale: Vec<Key<K>> = trie
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| k.data().tag() / TABLES == generation)
        .collect();
    for k in stale {
        trie.remove(&k).context("clearing an LPM trie")?;
    }
    Ok(())
}

pub struct Maps {
    config: Array<MapData, Config>,
    tables: Array<MapData, TableHeader>,
    entries: MmapArray,
    pool: MmapArray,
    proto: MmapArray,
    sport: MmapArray,
    dport: MmapArray,
    icmp: MmapArray,
    tcp_flags: MmapArray,
    iface: HashMap<MapData, IfaceKey, u32>,
    src4: LpmTrie<MapData, Lpm4, u32>,
    dst4: LpmTrie<MapData, Lpm4, u32>,
    src6: LpmTrie<MapData, Lpm6, u32>,
    dst6: LpmTrie<MapData, Lpm6, u32>,
    counters: PerCpuArray<MapData, Counter>,
    reasons: PerCpuArray<MapData, u64>,
    talkers: PerCpuArray<MapData, Talker>,
    guards: GuardMaps,
    fast: MmapArray,
    fast_ct: MmapArray,
    ifmac: Array<MapData, IfMac>,
    /// Where each generation's keyed entries are recorded (see dataplane/keyed.rs), and the
    /// token of each record the state vouches for; None: every write clears the
    /// generation's keys the slow way.
    keyed_records: Option<(PathBuf, BTreeMap<u32, u64>)>,
}

/// The name of keyed map `i` (dataplane/keyed.rs's order), for errors.
fn keyed_name(i: usize) -> &'static str {
    [MAP_IFACE, MAP_SRC4, MAP_DST4, MAP_SRC6, MAP_DST6][i]
}

/// The array map behind `map`.
pub fn data(map: Map, name: &str) -> Result<MapData> {
    match map {
        Map::Array(d) => Ok(d),
        other => anyhow::bail!("{name} is a {other:?}, not an array"),
    }
}

impl Maps {
    /// Builds from maps looked up by name, e.g. `|name| ebpf.take_map(name)`.
    pub fn from_source(mut take: impl FnMut(&str) -> Result<Map>) -> Result<Maps> {
        let mut mm =
            |name: &str| -> Result<MmapArray> { MmapArray::new(data(take(name)?, name)?, name) };
        let entries = mm(MAP_ENTRIES)?;
        let pool = mm(MAP_POOL)?;
        let proto = mm(MAP_PROTO)?;
        let sport = mm(MAP_SPORT)?;
        let dport = mm(MAP_DPORT)?;
        let icmp = mm(MAP_ICMP)?;
        let tcp_flags = mm(MAP_TCP_FLAGS)?;
        let fast = mm(MAP_FAST)?;
        let fast_ct = mm(MAP_FAST_CT)?;
        Ok(Maps {
            config: Array::try_from(take(MAP_CONFIG)?).context(MAP_CONFIG)?,
            tables: Array::try_from(take(MAP_TABLES)?).context(MAP_TABLES)?,
            entries,
            pool,
            proto,
            sport,
            dport,
            icmp,
            tcp_flags,
            iface: HashMap::try_from(take(MAP_IFACE)?).context(MAP_IFACE)?,
            src4: LpmTrie::try_from(take(MAP_SRC4)?).context(MAP_SRC4)?,
            dst4: LpmTrie::try_from(take(MAP_DST4)?).context(MAP_DST4)?,
            src6: LpmTrie::try_from(take(MAP_SRC6)?).context(MAP_SRC6)?,
            dst6: LpmTrie::try_from(take(MAP_DST6)?).context(MAP_DST6)?,
            counters: PerCpuArray::try_from(take(MAP_COUNTERS)?).context(MAP_COUNTERS)?,
            reasons: PerCpuArray::try_from(take(MAP_REASONS)?).context(MAP_REASONS)?,
            talkers: PerCpuArray::try_from(take(MAP_TALKERS)?).context(MAP_TALKERS)?,
            guards: GuardMaps::from_source(&mut take)?,
            fast,
            fast_ct,
            ifmac: Array::try_from(take(MAP_IFMAC)?).context(MAP_IFMAC)?,
            keyed_records: None,
        })
    }

    /// Records each generation's keyed entries in `dir`, so that the next write of that
    /// generation changes only what differs; `tokens`: the records the state vouches for.
    pub fn record_keyed_in(&mut self, dir: PathBuf, tokens: BTreeMap<u32, u64>) {
        self.keyed_records = Some((dir, tokens));
    }

    /// The records the state must vouch for once it is saved (after the flip).
    pub fn keyed_tokens(&self) -> BTreeMap<u32, u64> {
        self.keyed_records
            .as_ref()
            .map(|(_, tokens)| tokens.clone())
            .unwrap_or_default()
    }

    /// The keyed maps, in dataplane/keyed.rs's order.
    fn keyed_maps(&self) -> [&MapData; KEYED_MAPS] {
        [
            self.iface.map(),
            self.src4.map(),
            self.dst4.map(),
            self.src6.map(),
            self.dst6.map(),
        ]
    }

    /// Kernel ids of the keyed maps: what a record of their contents is valid for.
    fn keyed_ids(&self) -> Result<[u32; KEYED_MAPS]> {
        let mut ids = [0; KEYED_MAPS];
        for (id, map) in ids.iter_mut().zip(self.keyed_maps()) {
            *id = map.info().context("reading a map's id")?.id();
        }
        Ok(ids)
    }

    /// Makes generation `generation`'s keyed maps hold `want`: only the difference from
    /// what it held, if that was recorded; otherwise every key of the generation goes and
    /// `want` is written whole.
    fn write_keyed(&mut self, generation: u32, want: &KeyedImage) -> Result<()> {
        let ids = self.keyed_ids()?;
        let mut old = None;
        if let Some((dir, tokens)) = &mut self.keyed_records {
            if let Some(&token) = tokens.get(&generation) {
                old = keyed::load(dir, generation, token, ids);
            }
            // No record vouched for from here until the state is saved with a new one.
            tokens.remove(&generation);
            keyed::forget(dir, generation)?;
        }
        let empty = KeyedImage::default();
        let old = match old {
            Some(old) => old,
            None => {
                self.clear_keyed(generation)?;
                empty
            }
        };
        let mut changed = 0;
        for (i, map) in self.keyed_maps().into_iter().enumerate() {
            let (deletes, writes) = keyed::diff(&old.maps[i], &want.maps[i]);
            changed += deletes.len() + writes.len();
            keyed::delete(map, KEY_LEN[i], &deletes).context(keyed_name(i))?;
            keyed::write(map, KEY_LEN[i], &writes).context(keyed_name(i))?;
        }
        crate::timings::phase_with(|| format!("xdp: keyed maps ({changed} changed)"));
        Ok(())
    }

    /// Once the whole generation is written: what its keyed maps hold now.
    fn record_keyed(&mut self, generation: u32, written: &KeyedImage) -> Result<()> {
        let ids = self.keyed_ids()?;
        if let Some((dir, tokens)) = &mut self.keyed_records {
            let token = keyed::new_token();
            keyed::store(dir, generation, token, ids, written)?;
            tokens.insert(generation, token);
        }
        Ok(())
    }

    pub fn from_pins(dir: &Path) -> Result<Maps> {
        Maps::from_source(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            Map::from_map_data(data).with_context(|| format!("map {}", path.display()))
        })
    }

    pub fn config(&self) -> Result<Config> {
        self.config.get(&0, 0).context("reading FW_CONFIG")
    }

    pub fn set_config(&mut self, config: Config) -> Result<()> {
        self.config.set(0, config, 0).context("writing FW_CONFIG")
    }

    /// Points packets at `generation`, which must be fully written.
    pub fn set_active(&mut self, generation: u32) -> Result<()> {
        let config = self.config()?;
        self.set_config(Config {
            active: generation,
            ..config
        })
    }

    pub fn table(&self, generation: u32, table: u32) -> Result<TableHeader> {
        self.tables
            .get(&tag(generation, table), 0)
            .context("reading FW_TABLES")
    }

    /// How many elements the maps sized to the ruleset hold.
    pub fn capacity(&self) -> Capacity {
        Capacity {
            pool_words: (self.pool.entries() / GENERATIONS as usize) as u32,
            entries: (self.entries.entries() / GENERATIONS as usize) as u32,
            counters: self.counters.len(),
        }
    }

    /// Installs a whole generation: every table, bitmap and field value is written into
    /// the generation packets do not read, then one write of `active` switches every CPU to
    /// it. A packet sees the old ruleset or the new one, never a mix; if this fails before
    /// the flip, nothing in force changed.
    ///
    /// `before_flip` runs with the new generation's number once it is written, just before
    /// the flip; its error leaves the old generation in force.
    pub fn install(
        &mut self,
        image: &Image,
        before_flip: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        let config = self.config()?;
        let next = (config.active + 1) % GENERATIONS;
        self.write_generation(next, image)?;
        crate::timings::phase("xdp: fast table");
        before_flip(next)?;
        // These flags belong to the ruleset: in the same write as the flip.
        let config = self.config()?;
        self.set_config(Config {
            active: next,
            flags: (config.flags & !CONFIG_RULESET_MASK) | image.config_flags,
            ..config
        })?;
        self.guards.prune(image)?;
        Ok(next)
    }

    /// Writes `image` as `generation`, which packets must not be reading.
    pub fn write_generation(&mut self, generation: u32, image: &Image) -> Result<()> {
        let capacity = self.capacity();
        let need = Capacity::needed(image, 0);
        if need.pool_words > capacity.pool_words || need.entries > capacity.entries {
            bail!("the ruleset needs {need:?}, more than these maps hold ({capacity:?})");
        }
        let pool_base = generation * capacity.pool_words;
        self.pool
            .write_all(pool_base as usize, &image.pool)
            .context("writing FW_POOL")?;
        crate::timings::phase("xdp: pool");
        let keyed = KeyedImage::build(generation, image);
        self.write_keyed(generation, &keyed)?;
        for (table, t) in &image.tables {
            let tg = tag(generation, *table);
            let header = TableHeader {
                entry_base: generation * capacity.entries + t.header.entry_base,
                pool_base,
                ..t.header
            };
            self.entries
                .write_all(header.entry_base as usize, &t.entries)
                .context("writing FW_ENTRIES")?;
            let arrays: [(&mut MmapArray, &Option<Vec<u32>>, u32); 5] = [
                (&mut self.proto, &t.proto, PROTO_KEYS),
                (&mut self.sport, &t.sport, PORT_KEYS),
                (&mut self.dport, &t.dport, PORT_KEYS),
                (&mut self.icmp, &t.icmp, ICMP_KEYS),
                (&mut self.tcp_flags, &t.tcp_flags, TCP_FLAG_KEYS),
            ];
            for (map, values, keys) in arrays {
                if let Some(values) = values {
                    // Two offsets per element (see firewall_common::field_slot).
                    let pairs: Vec<u64> = values
                        .chunks(2)
                        .map(|p| p[0] as u64 | (p.get(1).copied().unwrap_or(0) as u64) << 32)
                        .collect();
                    let (first, _) = field_slot(tg, keys, 0);
                    map.write_all(first as usize, &pairs)?;
                }
            }
            self.tables
                .set(tg, header, 0)
                .context("writing FW_TABLES")?;
        }
        crate::timings::phase("xdp: tables and arrays");
        self.guards.write(generation, image)?;
        crate::timings::phase("xdp: guards");
        self.write_fast(generation, image)?;
        self.write_macs(image)?;
        self.record_keyed(generation, &keyed)
    }

    /// The attached interfaces' MACs. Not per generation: an interface's address is not
    /// the ruleset's, and a stale or missing one only sends its frames to netfilter.
    fn write_macs(&mut self, image: &Image) -> Result<()> {
        for mac in &image.macs {
            let slot = firewall_common::ifmac_slot(mac.ifindex);
            if self.ifmac.get(&slot, 0).ok() != Some(*mac) {
                self.ifmac.set(slot, *mac, 0).context("writing FW_IFMAC")?;
            }
        }
        Ok(())
    }

    /// The generation's fast table. A family without one (an image compiled for no
    /// table) gets zeros: every packet goes to the classifier.
    fn write_fast(&mut self, generation: u32, image: &Image) -> Result<()> {
        for family in 0..FAMILIES {
            let none = crate::compile::fast::Words::default();
            let words = image
                .fast
                .iter()
                .find(|(f, _)| *f == family)
                .map_or(&none, |(_, w)| w);
            let start = fast_index(generation, family, 0, 0);
            let len = (FAST_CLASSES * FAST_KEYS) as usize;
            if !words.is_empty() && words.len() != len {
                bail!("a fast table of {} words, not {len}", words.len());
            }
            // Two words per element (see firewall_common::FAST_ELEMENTS); only those that
            // differ from what the generation held are stored.
            self.fast
                .update_u64_runs(start as usize / 2, len / 2, words.pairs())
                .context("writing FW_FAST")?;
        }
        let outcomes = &image.by_class.outcomes;
        if outcomes.len() > FAST_CT_PER_GENERATION as usize {
            bail!(
                "{} FW_FASTCT elements, more than a generation holds",
                outcomes.len()
            );
        }
        self.fast_ct
            .write_all((generation * FAST_CT_PER_GENERATION) as usize, outcomes)
            .context("writing FW_FASTCT")
    }

    /// Removes the keyed entries (interfaces, prefixes) a generation was given last time.
    fn clear_keyed(&mut self, generation: u32) -> Result<()> {
        let ours = |t: u32| t / TABLES == generation;
        let stale: Vec<IfaceKey> = self
            .iface
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| ours(k.tag))
            .collect();
        for k in stale {
            self.iface.remove(&k).context("clearing FW_IFACE")?;
        }
        for trie in [&mut self.src4, &mut self.dst4] {
            clear_trie(trie, generation)?;
        }
        for trie in [&mut self.src6, &mut self.dst6] {
            clear_trie(trie, generation)?;
        }
        Ok(())
    }

    /// Packets decided without a rule, per reason code, summed over CPUs.
    pub fn reasons(&self) -> Result<Vec<(&'static str, u64)>> {
        REASON_NAMES
            .iter()
            .enumerate()
            .map(|(code, name)| {
                let per_cpu = self
                    .reasons
                    .get(&(code as u32), 0)
                    .with_context(|| format!("reading reason {name}"))?;
                Ok((*name, per_cpu.iter().sum()))
            })
            .collect()
    }

    /// The sampled sources of recent drops, every CPU's ring together: (family, address).
    pub fn talkers(&self) -> Result<Vec<(u32, [u32; 4])>> {
        let mut out = Vec::new();
        for slot in 0..TALKER_SLOTS {
            for t in self
                .talkers
                .get(&slot, 0)
                .context("reading FW_TALKERS")?
                .iter()
            {
                if t.family != 0 {
                    out.push((t.family - 1, t.src));
                }
            }
        }
        Ok(out)
    }

    /// A counter slot summed over CPUs.
    pub fn counter(&self, slot: u32) -> Result<Counter> {
        let values = self
            .counters
            .get(&slot, 0)
            .with_context(|| format!("reading counter slot {slot}"))?;
        Ok(sum(&values))
    }

    /// Carries counters over to another instance's maps (a resize): `slots` as they are now,
    /// each CPU's value to the same CPU, and every reason code. Returns the sums copied, for
    /// [`Maps::add_counters_since`].
    pub fn copy_counters_to(
        &self,
        other: &mut Maps,
        slots: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, Counter)>> {
        let mut copied = Vec::new();
        for slot in slots {
            let values = self
                .counters
                .get(&slot, 0)
                .with_context(|| format!("reading counter slot {slot}"))?;
            copied.push((slot, sum(&values)));
            other
                .counters
                .set(slot, values, 0)
                .with_context(|| format!("writing counter slot {slot}"))?;
        }
        for code in 0..REASON_SLOTS {
            let values = self.reasons.get(&code, 0).context("reading FW_REASONS")?;
            other
                .reasons
                .set(code, values, 0)
                .context("writing FW_REASONS")?;
        }
        Ok(copied)
    }

    /// Adds to `other` what this instance counted in `copied`'s slots since they were
    /// copied (packets it judged until the links moved to `other`'s program).
    pub fn add_counters_since(&self, other: &mut Maps, copied: &[(u32, Counter)]) -> Result<()> {
        for &(slot, before) in copied {
            let now = self.counter(slot)?;
            if now == before {
                continue;
            }
            let theirs = other.counter(slot)?;
            other.set_counter(
                slot,
                Counter {
                    packets: theirs.packets + now.packets.wrapping_sub(before.packets),
                    bytes: theirs.bytes + now.bytes.wrapping_sub(before.bytes),
                },
            )?;
        }
        Ok(())
    }

    pub fn zero_counter(&mut self, slot: u32) -> Result<()> {
        self.set_counter(slot, Counter::default())
    }

    /// Sets a counter: the value on the first CPU, zero on the others.
    pub fn set_counter(&mut self, slot: u32, value: Counter) -> Result<()> {
        let cpus = nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        let mut values = vec![Counter::default(); cpus];
        values[0] = value;
        let values = PerCpuValues::try_from(values).context("building per-CPU values")?;
        self.counters
            .set(slot, values, 0)
            .with_context(|| format!("writing counter slot {slot}"))
    }
}

fn sum(values: &PerCpuValues<Counter>) -> Counter {
    values.iter().fold(Counter::default(), |sum, c| Counter {
        packets: sum.packets.wrapping_add(c.packets),
        bytes: sum.bytes.wrapping_add(c.bytes),
    })
}
