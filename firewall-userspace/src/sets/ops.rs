//! The set commands on a namespace's firewall. Every command list is first applied to a
//! copy of the sets (so a bad line changes nothing and is named), then put in force:
//! changed sets are loaded whole into new storages, rules that use them are switched with
//! the generation flip, and the replaced storages removed. Single `add`/`del` commands
//! change the set's storage in place instead, touching only the members around the one
//! changed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context, Result};

use super::{
    ipset_format::Cmd,
    layout::{layout, region, within, Piece},
    model::{containing, live_at, parse_member, Member, Members, SetDef},
    store,
    xdp::{now_ns, Tries},
};
use crate::{
    dataplane::{capacity::Capacity, Dataplane},
    firewall::Firewall,
    netfilter::sets as nft,
    rules::Ruleset,
};

/// Makes every set's storage in netfilter, members and all: an earlier fwctl kept them in
/// one `inet fwctl` table, which the next change replaces by a table per family.
pub fn remake_in_netfilter(
    state_dir: &std::path::Path,
    registry: &super::model::Registry,
) -> Result<()> {
    let now = now_ns();
    for def in &registry.sets {
        let members = store::read(state_dir, def.storage)
            .with_context(|| format!("reading the members of set {}", def.name))?;
        let (_, pieces) = layout(members.iter(), def.kind, def.family);
        let info = registry
            .storages
            .get(&def.storage)
            .with_context(|| format!("set {} has no storage record", def.name))?;
        nft::create(&info.into(), &pieces, now)
            .with_context(|| format!("making set {} in netfilter", def.name))?;
    }
    Ok(())
}

/// A command that failed, with the (1-based) line it came from when it came from a file.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct SetError {
    pub line: Option<usize>,
    pub message: String,
}

/// ipset's words for a name no set has.
pub const NO_SET: &str = "The set with the given name does not exist";

/// The sets as the commands leave them, before anything is put in force.
struct Work<'a> {
    fw: &'a Firewall,
    defs: Vec<SetDef>,
    /// Members of the sets read or changed so far (expired ones left out).
    members: BTreeMap<String, Members>,
    /// Sets whose members go into a new storage.
    reload: BTreeSet<String>,
    /// A `create` of an existing set of the same type replaces it (restore files).
    replace: bool,
    now: u64,
}

/// When a member added with `timeout` (or the set's default) expires; 0 for never.
fn expiry(def: &SetDef, timeout: Option<u32>, now: u64) -> Result<u64, String> {
    match (def.timeout, timeout) {
        (None, Some(_)) => Err(format!(
            "set {} was created without timeout support: its members cannot have one",
            def.name
        )),
        (None, None) | (Some(0), None) | (Some(_), Some(0)) => Ok(0),
        (Some(d), t) => Ok(now + t.unwrap_or(d) as u64 * 1_000_000_000),
    }
}

fn live(members: Members, now: u64) -> Members {
    members
        .into_iter()
        .filter(|(_, e)| live_at(*e, now))
        .collect()
}

/// Adds members; with `exist` a present member is no error (its timeout is renewed).
fn add(
    members: &mut Members,
    def: &SetDef,
    list: &[Member],
    expiry: u64,
    exist: bool,
) -> Result<(), String> {
    for m in list {
        if members.contains_key(m) {
            if !exist {
                return Err("Element cannot be added to the set: it's already added".into());
            }
        } else if members.len() >= def.maxelem as usize {
            return Err(format!(
                "Hash is full, cannot add more elements (set {} has maxelem {})",
                def.name, def.maxelem
            ));
        }
        // With -exist, as ipset: the timeout is renewed.
        members.insert(*m, expiry);
    }
    Ok(())
}

fn del(members: &mut Members, list: &[Member], exist: bool) -> Result<(), String> {
    for m in list {
        if members.remove(m).is_none() && !exist {
            return Err("Element cannot be deleted from the set: it's not added".into());
        }
    }
    Ok(())
}

impl Work<'_> {
    fn def(&self, name: &str) -> Result<&SetDef, String> {
        self.defs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| NO_SET.to_string())
    }

    fn members(&mut self, name: &str) -> Result<&mut Members> {
        if !self.members.contains_key(name) {
            let def = self.def(name).map_err(|e| anyhow!(e))?;
            let loaded = if def.storage == 0 {
                Members::new()
            } else {
                live(store::read(&self.fw.ns.state_dir, def.storage)?, self.now)
            };
            self.members.insert(name.to_string(), loaded);
        }
        self.members
            .get_mut(name)
            .context("set members vanished while being read")
    }

    /// Names the commands act on: one, or every set for `flush`/`destroy` without a name.
    fn names(&self, name: &Option<String>) -> Result<Vec<String>, String> {
        match name {
            Some(n) => self.def(n).map(|d| vec![d.name.clone()]),
            None => Ok(self.defs.iter().map(|d| d.name.clone()).collect()),
        }
    }

    fn apply(&mut self, cmd: &Cmd, ruleset: &Ruleset) -> Result<(), SetError> {
        self.try_apply(cmd, ruleset).map_err(|e| SetError {
            line: None,
            message: format!("{e:#}"),
        })
    }

    fn try_apply(&mut self, cmd: &Cmd, ruleset: &Ruleset) -> Result<()> {
        let now = self.now;
        match cmd {
            Cmd::Create(spec, exist) => match self.defs.iter().position(|d| d.name == spec.name) {
                Some(i) => {
                    let old = &self.defs[i];
                    if *exist && old.same_options(spec) {
                        return Ok(());
                    }
                    let same_type = (old.kind, old.family) == (spec.kind, spec.family);
                    if *exist || !self.replace || !same_type {
                        anyhow::bail!(
                            "Set cannot be created: set with the same name already exists"
                        );
                    }
                    // fwctl's restore: a set the file creates is what the file says, its
                    // options and the members the file adds.
                    self.defs[i] = SetDef {
                        storage: old.storage,
                        ..spec.clone()
                    };
                    self.members.insert(spec.name.clone(), Members::new());
                    self.reload.insert(spec.name.clone());
                }
                None => {
                    self.defs.push(spec.clone());
                    self.members.insert(spec.name.clone(), Members::new());
                    self.reload.insert(spec.name.clone());
                }
            },
            Cmd::Add {
                set,
                member,
                timeout,
                exist,
            } => {
                let def = self.def(set).map_err(|e| anyhow!(e))?.clone();
                let list = parse_member(member, def.kind, def.family).map_err(|e| anyhow!(e))?;
                let at = expiry(&def, *timeout, now).map_err(|e| anyhow!(e))?;
                add(self.members(set)?, &def, &list, at, *exist).map_err(|e| anyhow!(e))?;
                self.reload.insert(set.clone());
            }
            Cmd::Del { set, member, exist } => {
                let def = self.def(set).map_err(|e| anyhow!(e))?.clone();
                let list = parse_member(member, def.kind, def.family).map_err(|e| anyhow!(e))?;
                del(self.members(set)?, &list, *exist).map_err(|e| anyhow!(e))?;
                self.reload.insert(set.clone());
            }
            Cmd::Flush(name) => {
                for n in self.names(name).map_err(|e| anyhow!(e))? {
                    self.members.insert(n.clone(), Members::new());
                    self.reload.insert(n);
                }
            }
            Cmd::Destroy(name) => {
                for n in self.names(name).map_err(|e| anyhow!(e))? {
                    if ruleset.set_references(&n) > 0 {
                        anyhow::bail!(
                            "Set cannot be destroyed: it is in use by a kernel component ({n})"
                        );
                    }
                    self.defs.retain(|d| d.name != n);
                    self.members.remove(&n);
                    self.reload.remove(&n);
                }
            }
            Cmd::Swap(a, b) => {
                let (da, db) = (
                    self.def(a).map_err(|e| anyhow!(e))?.clone(),
                    self.def(b).map_err(|e| anyhow!(e))?.clone(),
                );
                if (da.kind, da.family) != (db.kind, db.family) {
                    anyhow::bail!("The sets cannot be swapped: their type does not match");
                }
                // Everything but the names changes places, as in ipset.
                for d in self.defs.iter_mut() {
                    if d.name == *a {
                        *d = SetDef {
                            name: a.clone(),
                            ..db.clone()
                        };
                    } else if d.name == *b {
                        *d = SetDef {
                            name: b.clone(),
                            ..da.clone()
                        };
                    }
                }
                let (ma, mb) = (self.members.remove(a), self.members.remove(b));
                if let Some(m) = ma {
                    self.members.insert(b.clone(), m);
                }
                if let Some(m) = mb {
                    self.members.insert(a.clone(), m);
                }
                let (ra, rb) = (self.reload.remove(a), self.reload.remove(b));
                if ra {
                    self.reload.insert(b.clone());
                }
                if rb {
                    self.reload.insert(a.clone());
                }
            }
        }
        Ok(())
    }
}

impl Firewall {
    /// Runs set commands (with the line each came from, for errors) as one change: all of
    /// them or, at the first error, none.
    pub fn set_commands(&mut self, cmds: &[(Option<usize>, Cmd)]) -> Result<()> {
        self.recover_sets()?;
        if let [(None, cmd @ (Cmd::Add { .. } | Cmd::Del { .. }))] = cmds {
            self.change_in_place(cmd)?;
            self.journal_last_good(cmd);
        } else {
            self.apply_set_commands(cmds)?;
            self.record_last_good(true);
        }
        crate::timings::phase("last good");
        Ok(())
    }

    fn apply_set_commands(&mut self, cmds: &[(Option<usize>, Cmd)]) -> Result<()> {
        let ruleset = self.state.ruleset.clone();
        let mut work = Work {
            fw: self,
            defs: self.state.sets.sets.clone(),
            members: BTreeMap::new(),
            reload: BTreeSet::new(),
            replace: cmds.iter().any(|(line, _)| line.is_some()),
            now: now_ns(),
        };
        for (line, cmd) in cmds {
            work.apply(cmd, &ruleset).map_err(|e| SetError {
                line: *line,
                message: e.message,
            })?;
        }
        let Work {
            defs,
            mut members,
            reload,
            now,
            ..
        } = work;
        self.put_in_force(defs, &mut members, &reload, now)
    }

    /// Loads the reloaded sets into new storages, switches rules to them, removes what no
    /// set uses any more.
    fn put_in_force(
        &mut self,
        mut defs: Vec<SetDef>,
        members: &mut BTreeMap<String, Members>,
        reload: &BTreeSet<String>,
        now: u64,
    ) -> Result<()> {
        let before = self.state.sets.sets.clone();
        let dp = Dataplane::open_or_install(&self.ns, Capacity::minimum())?;
        let tries = Tries::open(&dp.ns.pin_dir)?;
        let mut loads = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            if reload.contains(&def.name) {
                loads.push((i, self.state.sets.new_storage(def)));
            }
        }
        // Recorded as scrap before anything is loaded: a crash leaves nothing unaccounted.
        self.save_state()?;
        if let Err(e) = self.load(&tries, &defs, &loads, members, now) {
            // Nothing uses the new storages yet: take them out again now rather than at
            // the next command (best effort; the state keeps them as scrap otherwise).
            let _ = self.collect_scrap();
            return Err(e);
        }
        for &(i, id) in &loads {
            defs[i].storage = id;
            self.state.sets.adopt(id);
        }
        crate::fault_point("sets-loaded");
        for old in &before {
            if !defs.iter().any(|d| d.storage == old.storage) {
                self.state.sets.discard(old.storage);
            }
        }
        let moved = before.iter().any(|old| {
            self.state.ruleset.set_references(&old.name) > 0
                && defs
                    .iter()
                    .find(|d| d.name == old.name)
                    .is_none_or(|d| d.storage != old.storage)
        });
        self.state.sets.sets = defs;
        if moved {
            self.recommit()?;
        } else {
            self.save_state()?;
        }
        self.collect_scrap()
    }

    /// Writes each new storage (`loads`: the set's index in `defs`, the storage) to disk,
    /// the trie and netfilter.
    fn load(
        &self,
        tries: &Tries,
        defs: &[SetDef],
        loads: &[(usize, u32)],
        members: &mut BTreeMap<String, Members>,
        now: u64,
    ) -> Result<()> {
        for &(i, id) in loads {
            let def = &defs[i];
            let list = members.remove(&def.name).unwrap_or_default();
            let t0 = std::time::Instant::now();
            store::write(&self.ns.state_dir, id, &list)?;
            let (values, pieces) = layout(list.iter(), def.kind, def.family);
            let t1 = std::time::Instant::now();
            tries.update(def.family, id, &values)?;
            let t2 = std::time::Instant::now();
            let info = self
                .state
                .sets
                .storages
                .get(&id)
                .context("a new storage has no record")?;
            nft::create(&info.into(), &pieces, now)?;
            if std::env::var_os("FWCTL_DEBUG").is_some() {
                eprintln!(
                    "fwctl: set {}: {} members: file and layout {:.2} s, XDP trie {:.2} s, nftables {:.2} s",
                    def.name,
                    list.len(),
                    (t1 - t0).as_secs_f64(),
                    (t2 - t1).as_secs_f64(),
                    t2.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }

    /// One `add` or `del` in the set's own storage.
    fn change_in_place(&mut self, cmd: &Cmd) -> Result<()> {
        let (name, member, adding, timeout, exist) = match cmd {
            Cmd::Add {
                set,
                member,
                timeout,
                exist,
            } => (set, member, true, *timeout, *exist),
            Cmd::Del { set, member, exist } => (set, member, false, None, *exist),
            _ => anyhow::bail!("only add and del change a set in place"),
        };
        let def = self
            .state
            .sets
            .get(name)
            .ok_or_else(|| anyhow!(NO_SET))?
            .clone();
        let fail = |message: String| SetError {
            line: None,
            message,
        };
        let list = parse_member(member, def.kind, def.family).map_err(fail)?;
        let now = now_ns();
        let at = expiry(&def, timeout, now).map_err(fail)?;
        let dir = self.ns.state_dir.clone();
        let (mut members, expired): (Members, Members) = store::read(&dir, def.storage)?
            .into_iter()
            .partition(|(_, e)| live_at(*e, now));
        crate::timings::phase("sets: read storage");
        // Expired members leave the trie here, since the program only ignores them; a
        // value the trie holds for a member inside an expired one stays right (sets/layout.rs:
        // the later of the two expiries).
        let mut gone: Vec<Member> = expired.into_keys().collect();
        let mut values = Vec::new();
        let (mut remove, mut insert) = (Vec::<Piece>::new(), Vec::<Piece>::new());
        // What puts the trie back if a later step fails.
        let (mut undo_values, mut undo_delete) = (Vec::new(), Vec::new());
        for m in &list {
            // Members strictly containing `m` decide the region, with or without `m`.
            let r = region(&members, m, def.family);
            let (old_values, old_pieces) = layout(within(&members, r), def.kind, def.family);
            if adding {
                add(&mut members, &def, std::slice::from_ref(m), at, exist).map_err(fail)?;
            } else {
                del(&mut members, std::slice::from_ref(m), exist).map_err(fail)?;
            }
            let (new_values, new_pieces) = layout(within(&members, r), def.kind, def.family);
            let old: BTreeMap<Member, u64> = old_values.into_iter().collect();
            for (k, v) in &new_values {
                match old.get(k) {
                    Some(was) if was == v => continue,
                    Some(was) => undo_values.push((*k, *was)),
                    None => undo_delete.push(*k),
                }
                values.push((*k, *v));
            }
            for (k, was) in old.iter().filter(|(k, _)| !members.contains_key(k)) {
                gone.push(*k);
                undo_values.push((*k, *was));
            }
            remove.extend(old_pieces.iter().filter(|p| !new_pieces.contains(p)));
            insert.extend(new_pieces.iter().filter(|p| !old_pieces.contains(p)));
        }
        crate::timings::phase("sets: lay out");
        // The tries only: opening every map of the dataplane would cost more than the change.
        if !Dataplane::installed(&self.ns) {
            Dataplane::open_or_install(&self.ns, Capacity::minimum())?;
        }
        let tries = Tries::open(&self.ns.pin_dir)?;
        crate::timings::phase("sets: open tries");
        let info = self
            .state
            .sets
            .storages
            .get(&def.storage)
            .context("the set's storage has no record")?
            .clone();
        let set = nft::NftSet::from(&info);
        // Best effort: the error that made it necessary is the one to report.
        let undo_trie = || {
            let _ = tries.update(def.family, def.storage, &undo_values);
            let _ = tries.delete(def.family, def.storage, &undo_delete);
        };
        let applied = tries
            .update(def.family, def.storage, &values)
            .and_then(|()| tries.delete(def.family, def.storage, &gone));
        crate::timings::phase("sets: xdp trie");
        if let Err(e) = applied.and_then(|()| nft::change(&set, &remove, &insert, now)) {
            undo_trie();
            return Err(e);
        }
        crate::timings::phase("sets: nft set");
        if let Err(e) = store::write(&dir, def.storage, &members) {
            undo_trie();
            let _ = nft::change(&set, &insert, &remove, now);
            return Err(e);
        }
        crate::timings::phase("sets: write storage");
        Ok(())
    }

    /// After a run that stopped half-way: makes the kernel's rules agree with the state
    /// (they may name a storage the state does not), then removes unused storages.
    fn recover_sets(&mut self) -> Result<()> {
        if self.state.sets.scrap.is_empty() {
            return Ok(());
        }
        if self.state.ruleset.set_matches().next().is_some() {
            self.recommit()?;
        }
        self.collect_scrap()
    }

    /// Removes the members of storages no set uses; their netfilter sets go at the next
    /// rule change (the idle generation may still name them).
    fn collect_scrap(&mut self) -> Result<()> {
        if self.state.sets.scrap.is_empty() {
            return Ok(());
        }
        let tries = match self.dataplane()? {
            Some(dp) => Some(Tries::open(&dp.ns.pin_dir)?),
            None => None,
        };
        for id in self.state.sets.scrap.clone() {
            if let Some(info) = self.state.sets.storages.get(&id).cloned() {
                let members = store::read(&self.ns.state_dir, id)?;
                if let Some(t) = &tries {
                    let keys: Vec<Member> = members.into_keys().collect();
                    t.delete(info.family, id, &keys)?;
                }
                nft::flush(info.family, &info.nft_name)?;
                self.state.sets.nft_retired.push(id);
            }
            store::remove(&self.ns.state_dir, id)?;
            self.state.sets.scrap.retain(|s| *s != id);
        }
        self.save_state()
    }

    /// The members of a set, without the expired ones.
    pub fn set_members(&self, def: &SetDef) -> Result<Members> {
        Ok(live(
            store::read(&self.ns.state_dir, def.storage)?,
            now_ns(),
        ))
    }
}

/// Whether `addr` text is in the set as `ipset test` asks: a member equal to it, or for a
/// `hash:net` and a plain address, a member containing it.
pub fn test(def: &SetDef, members: &Members, text: &str) -> Result<bool, String> {
    let list = parse_member(text, def.kind, def.family)?;
    Ok(list
        .iter()
        .all(|m| contains(def, members, m, !text.contains('/'))))
}

/// Whether `m` is a member, or with `address` (a packet's address, not a network) inside a
/// `hash:net` member.
fn contains(def: &SetDef, members: &Members, m: &Member, address: bool) -> bool {
    members.contains_key(m)
        || (def.kind == super::model::SetKind::HashNet
            && address
            && containing(members, m, def.family).next().is_some())
}

impl Firewall {
    /// Whether set match `m` holds (its negation included) for a packet of the caller's SSH
    /// session, for the lockout guard. A set that cannot be read counts as not holding the
    /// session's addresses.
    pub fn session_in_set(
        &self,
        session: &crate::guard::Session,
        family: crate::rules::Family,
        m: &crate::rules::Neg<crate::rules::SetMatch>,
    ) -> bool {
        let Ok((def, _)) = self.state.sets.resolve(&m.value, family) else {
            return m.negated;
        };
        let Ok(members) = self.set_members(def) else {
            return m.negated;
        };
        let pick = |dim: usize| m.value.dst.get(dim).copied().unwrap_or(false);
        let addr = match if pick(0) {
            session.server
        } else {
            session.client
        } {
            std::net::IpAddr::V4(a) => u32::from(a) as u128,
            std::net::IpAddr::V6(a) => u128::from(a),
        };
        let (proto, port) = match def.kind {
            super::model::SetKind::HashIpPort => (
                crate::rules::IPPROTO_TCP,
                if pick(1) {
                    session.server_port
                } else {
                    session.client_port
                },
            ),
            _ => (0, 0),
        };
        let member = Member {
            addr,
            prefix: family.max_prefix(),
            proto,
            port,
        };
        contains(def, &members, &member, true) != m.negated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{rules::Family, sets::model::SetKind};

    fn def(kind: SetKind, timeout: Option<u32>) -> SetDef {
        SetDef {
            name: "s".into(),
            kind,
            family: Family::V4,
            timeout,
            maxelem: 2,
            hashsize: 1024,
            storage: 1,
        }
    }

    /// A set of `d`'s type holding `member` alone.
    fn holding(d: &SetDef, member: &str) -> Members {
        let list = parse_member(member, d.kind, d.family).unwrap();
        let mut m = Members::new();
        add(&mut m, d, &list, 0, false).unwrap();
        m
    }

    #[test]
    fn test_finds_addresses_inside_networks_and_exact_members() {
        let d = def(SetKind::HashNet, None);
        let m = holding(&d, "10.0.0.0/8");
        assert_eq!(test(&d, &m, "10.1.2.3"), Ok(true));
        assert_eq!(test(&d, &m, "10.0.0.0/8"), Ok(true));
        assert_eq!(test(&d, &m, "10.0.0.0/16"), Ok(false));
        assert_eq!(test(&d, &m, "11.0.0.1"), Ok(false));
        let p = def(SetKind::HashIpPort, None);
        let m = holding(&p, "1.2.3.4,udp:53");
        assert_eq!(test(&p, &m, "1.2.3.4,udp:53"), Ok(true));
        assert_eq!(test(&p, &m, "1.2.3.4,53"), Ok(false));
    }

    #[test]
    fn adds_and_deletes_say_what_ipset_says() {
        let d = def(SetKind::HashIp, None);
        let one = parse_member("1.1.1.1", d.kind, d.family).unwrap();
        let mut m = Members::new();
        add(&mut m, &d, &one, 0, false).unwrap();
        assert!(add(&mut m, &d, &one, 0, false)
            .unwrap_err()
            .contains("it's already added"));
        add(&mut m, &d, &one, 0, true).unwrap();
        let more = parse_member("1.1.1.2", d.kind, d.family).unwrap();
        add(&mut m, &d, &more, 0, false).unwrap();
        let full = parse_member("1.1.1.3", d.kind, d.family).unwrap();
        assert!(add(&mut m, &d, &full, 0, false)
            .unwrap_err()
            .contains("Hash is full"));
        del(&mut m, &one, false).unwrap();
        assert!(del(&mut m, &one, false)
            .unwrap_err()
            .contains("it's not added"));
        del(&mut m, &one, true).unwrap();
    }

    #[test]
    fn timeouts_need_a_set_made_for_them() {
        let now = 1_000_000_000;
        assert!(expiry(&def(SetKind::HashIp, None), Some(5), now).is_err());
        assert_eq!(expiry(&def(SetKind::HashIp, None), None, now), Ok(0));
        let t = def(SetKind::HashIp, Some(10));
        assert_eq!(expiry(&t, None, now), Ok(now + 10_000_000_000));
        assert_eq!(expiry(&t, Some(2), now), Ok(now + 2_000_000_000));
        assert_eq!(expiry(&t, Some(0), now), Ok(0));
    }
}
