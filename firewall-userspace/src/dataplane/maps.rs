//! Typed access to the program's maps, wherever they came from (pins, or a freshly loaded
//! object in tests), and the one write sequence that changes a ruleset atomically.

use std::path::Path;

use anyhow::{Context, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use firewall_common::{
    header_index, rule_index, Config, Counter, IfName, Rule, RulesetHeader, GENERATIONS,
    MAP_CONFIG, MAP_COUNTERS, MAP_HEADERS, MAP_IFNAMES, MAP_RULES,
};

use crate::{compile::FamilyImage, rules::Family};

pub const MAP_NAMES: [&str; 5] = [
    MAP_CONFIG,
    MAP_HEADERS,
    MAP_RULES,
    MAP_COUNTERS,
    MAP_IFNAMES,
];

pub struct Maps {
    config: Array<MapData, Config>,
    headers: Array<MapData, RulesetHeader>,
    rules: Array<MapData, Rule>,
    counters: PerCpuArray<MapData, Counter>,
    ifnames: HashMap<MapData, u32, IfName>,
}

impl Maps {
    /// Builds from maps looked up by name, e.g. `|name| ebpf.take_map(name)`.
    pub fn from_source(mut take: impl FnMut(&str) -> Result<Map>) -> Result<Maps> {
        Ok(Maps {
            config: Array::try_from(take(MAP_CONFIG)?).context(MAP_CONFIG)?,
            headers: Array::try_from(take(MAP_HEADERS)?).context(MAP_HEADERS)?,
            rules: Array::try_from(take(MAP_RULES)?).context(MAP_RULES)?,
            counters: PerCpuArray::try_from(take(MAP_COUNTERS)?).context(MAP_COUNTERS)?,
            ifnames: HashMap::try_from(take(MAP_IFNAMES)?).context(MAP_IFNAMES)?,
        })
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

    /// Installs a whole ruleset: both families are written into the generation packets do
    /// not read, then one write of `active` switches every CPU to it. A packet sees the old
    /// ruleset or the new one, never a mix; if this fails before the flip, nothing changed.
    pub fn install_ruleset(&mut self, images: &[(Family, FamilyImage)]) -> Result<u32> {
        let mut config = self.config()?;
        let next = (config.active + 1) % GENERATIONS;
        for (family, image) in images {
            for (position, rule) in image.rules.iter().enumerate() {
                self.rules
                    .set(rule_index(next, family.index(), position as u32), rule, 0)
                    .context("writing FW_RULES")?;
            }
            self.headers
                .set(header_index(next, family.index()), image.header, 0)
                .context("writing FW_HEADERS")?;
        }
        config.active = next;
        self.set_config(config)?;
        Ok(next)
    }

    pub fn header(&self, generation: u32, family: Family) -> Result<RulesetHeader> {
        self.headers
            .get(&header_index(generation, family.index()), 0)
            .context("reading FW_HEADERS")
    }

    /// A counter slot summed over CPUs.
    pub fn counter(&self, slot: u32) -> Result<Counter> {
        let values = self
            .counters
            .get(&slot, 0)
            .with_context(|| format!("reading counter slot {slot}"))?;
        Ok(values.iter().fold(Counter::default(), |sum, c| Counter {
            packets: sum.packets + c.packets,
            bytes: sum.bytes + c.bytes,
        }))
    }

    pub fn zero_counter(&mut self, slot: u32) -> Result<()> {
        let cpus = nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        let zeros = PerCpuValues::try_from(vec![Counter::default(); cpus])
            .context("building per-CPU zeros")?;
        self.counters
            .set(slot, zeros, 0)
            .with_context(|| format!("zeroing counter slot {slot}"))
    }

    pub fn set_ifname(&mut self, ifindex: u32, name: &str) -> Result<()> {
        let value = IfName {
            name: crate::compile::iface_words(name),
        };
        self.ifnames
            .insert(ifindex, value, 0)
            .context("writing FW_IFNAMES")
    }

    pub fn remove_ifname(&mut self, ifindex: u32) -> Result<()> {
        match self.ifnames.remove(&ifindex) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).context("removing from FW_IFNAMES"),
        }
    }
}
