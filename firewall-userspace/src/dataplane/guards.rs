//! The guard maps: `FW_GUARDS` (per generation, written with the rest of a generation),
//! `FW_BUCKETS` (the meters of limit and hashlimit rules, which outlive generations so a
//! rule's bucket survives updates of the others) and `FW_HASHLIMIT` (per-key buckets, kept
//! by the program, pruned here when their rule goes).

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, Map, MapData};
use firewall_common::{
    Bucket, Guard, HashLimitKey, Meter, GUARDS_PER_GENERATION, MAP_BUCKETS, MAP_GUARDS,
    MAP_HASHLIMIT,
};

use crate::compile::Image;

pub struct GuardMaps {
    guards: Array<MapData, Guard>,
    buckets: HashMap<MapData, u32, Meter>,
    hashlimit: HashMap<MapData, HashLimitKey, Bucket>,
}

impl GuardMaps {
    pub fn from_source(take: &mut impl FnMut(&str) -> Result<Map>) -> Result<GuardMaps> {
        Ok(GuardMaps {
            guards: Array::try_from(take(MAP_GUARDS)?).context(MAP_GUARDS)?,
            buckets: HashMap::try_from(take(MAP_BUCKETS)?).context(MAP_BUCKETS)?,
            hashlimit: HashMap::try_from(take(MAP_HASHLIMIT)?).context(MAP_HASHLIMIT)?,
        })
    }

    /// Writes `generation`'s guards and creates the meters the image needs. A meter that
    /// exists with the same rate keeps its state: an update does not refill the bucket.
    pub fn write(&mut self, generation: u32, image: &Image) -> Result<()> {
        let base = generation * GUARDS_PER_GENERATION;
        for (i, g) in image.guards.iter().enumerate().skip(1) {
            self.guards
                .set(base + i as u32, *g, 0)
                .context("writing FW_GUARDS")?;
        }
        for (&key, &meter) in &image.meters {
            let same = self
                .buckets
                .get(&key, 0)
                .is_ok_and(|m| m.interval_ns == meter.interval_ns && m.burst == meter.burst);
            if !same {
                self.buckets
                    .insert(key, meter, 0)
                    .context("writing FW_BUCKETS")?;
            }
        }
        Ok(())
    }

    /// Once the image is in force: drops the meters, and the hashlimit keys, of rules that
    /// are gone, so a slot given to a new rule starts afresh.
    pub fn prune(&mut self, image: &Image) -> Result<()> {
        let stale: Vec<u32> = self
            .buckets
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !image.meters.contains_key(k))
            .collect();
        for key in &stale {
            self.buckets.remove(key).context("pruning FW_BUCKETS")?;
        }
        let gone: BTreeSet<u32> = stale.into_iter().collect();
        if gone.is_empty() {
            return Ok(());
        }
        let keys: Vec<HashLimitKey> = self
            .hashlimit
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| gone.contains(&k.id))
            .collect();
        for key in keys {
            // The program may have evicted it meanwhile (LRU): not an error.
            let _ = self.hashlimit.remove(&key);
        }
        Ok(())
    }
}
