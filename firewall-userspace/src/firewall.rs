//! One network namespace's firewall as a whole: the locked state, the pinned dataplane, and
//! the operations the CLI offers on them. Each operation validates and compiles everything
//! before it touches the kernel, and records the new state only after the kernel took it.

use std::{ffi::CString, os::fd::AsFd};

use anyhow::{bail, Context, Result};
use aya::programs::{SchedClassifier, Xdp};
use aya_obj::programs::XdpAttachType;
use firewall_common::{
    Config, Counter, CONFIG_CT_HELPERS, CONFIG_FAST_V4, CONFIG_FAST_V6, CONFIG_LOG_VERDICTS,
    POLICY_COUNTER_SLOTS,
};

/// The `Config::flags` bits a commit recomputes from the namespace's forwarding sysctls.
const FAST_FLAGS: u32 = CONFIG_FAST_V4 | CONFIG_FAST_V6;

use crate::{
    cli::list::ChainCounters,
    compile::{compile_with_sets, prehooks, Image, Interface},
    dataplane::{
        attach::{self, Hook, XdpMode},
        capacity::Capacity,
        install::{remove_pins, PROGRAM_NAME},
        namespace::Namespace,
        Dataplane,
    },
    fault_point,
    netfilter::{self, Marks, NftCounters},
    rules::{
        edit::{EditError, Editor},
        Chain, Family, Table,
    },
    state::{Attachment, Origin, Source, State, StateStore},
};

/// Counters of both paths, read once for a whole listing.
pub struct CounterSource {
    pub dp: Option<Dataplane>,
    pub nft: NftCounters,
}

impl CounterSource {
    /// Reads nothing: every counter is zero (for listings that do not print them).
    pub fn none() -> CounterSource {
        CounterSource {
            dp: None,
            nft: NftCounters::default(),
        }
    }
}

pub struct Firewall {
    pub ns: Namespace,
    store: StateStore,
    pub state: State,
    /// Apply changes even if they would cut the caller's SSH session.
    pub force: bool,
    /// Where the next commit's ruleset comes from, when boot chose it; a commit that
    /// changes the rules without one is an operator's, and clears the recorded origin.
    pub origin: Option<Origin>,
    /// Boot records the last good copy once, at its end, not at each of its steps.
    pub defer_last_good: bool,
}

impl Firewall {
    /// Locks the current network namespace's firewall and reads its state.
    ///
    /// Refuses when the state says fwctl is installed here but its pins are not where this
    /// process looks: a run in a private mount namespace whose operator shell is gone sees
    /// an empty bpffs, and reading zeros there, or installing into it (pins that vanish at
    /// exit, beside the real ones), would be worse than stopping.
    pub fn lock() -> Result<Firewall> {
        let mut fw = Firewall::lock_for_down()?;
        let older = crate::dataplane::upgrade::older_instances(&fw.ns);
        if fw.store.exists() && !older.is_empty() {
            fw.upgrade(&older)?;
        }
        if fw.store.exists() && !Dataplane::installed(&fw.ns) {
            bail!(
                "the state in {} says fwctl is installed here, but its pinned programs and maps are not in {}: \
                 run fwctl from the operator's shell (`ip netns exec NS fwctl ...` in the foreground), \
                 or `fwctl down` to start afresh",
                fw.ns.state_dir.display(),
                fw.ns.pin_dir.display()
            );
        }
        crate::dataplane::resize::repair(&fw.ns)?;
        crate::timings::phase("pins checked");
        Ok(fw)
    }

    /// Moves the firewall in force from the instances of another BPF ABI (`older`, pinned
    /// by the fwctl this one replaced) to one of this ABI: see `dataplane::upgrade`. Then
    /// commits the ruleset again, so netfilter's table follows this version too.
    fn upgrade(&mut self, older: &[(u32, std::path::PathBuf)]) -> Result<()> {
        use crate::dataplane::upgrade;
        let from: Vec<String> = older.iter().map(|(abi, _)| abi.to_string()).collect();
        if !Dataplane::installed(&self.ns) {
            let Some(generation) = self.state.generation else {
                bail!(
                    "the firewall in force was installed by an fwctl of BPF ABI {} that did not record its generation; \
                     it stays in force, untouched. To move it to this fwctl (ABI {}): `fwctl save` and `fwctl set save` \
                     with the old binary, `fwctl down`, then restore them with this one",
                    from.join(", "),
                    firewall_common::ABI_VERSION
                );
            };
            let image =
                compile_with_sets(&self.state.ruleset, &self.interfaces(), &self.state.sets)?;
            let slots_end = self.state.ruleset.slots().max().map_or(0, |s| s + 1);
            let capacity = Capacity::needed(&image, slots_end).sized();
            let flags = crate::dataplane::forwarding::fast_flags(
                self.state.interfaces.iter().map(|i| i.name.as_str()),
            );
            let config = firewall_common::Config {
                active: generation,
                mark_shift: self.state.mark_shift,
                flags,
                ..crate::dataplane::install::initial_config()
            };
            let fill = |dir: &std::path::Path| {
                crate::sets::xdp::reload_sets(dir, &self.ns.state_dir, &self.state.sets)
            };
            upgrade::build(&self.ns, capacity, &image, config, fill)?;
            fault_point("upgrade-built");
        }
        let mut moved = 0;
        for (_, dir) in older {
            moved += upgrade::move_links(dir, &self.ns)?;
        }
        fault_point("upgrade-relinked");
        for (_, dir) in older {
            remove_pins(dir)?;
        }
        eprintln!(
            "fwctl: moved the firewall in force from BPF ABI {} to {} ({moved} link(s)): rules, sets and \
             interfaces carried over; XDP's share of the rule counters restarts at 0, netfilter's carries over",
            from.join(", "),
            firewall_common::ABI_VERSION
        );
        self.recommit()
    }

    /// Locks without the consistency check, for `down`, which cleans up whatever is there.
    pub fn lock_for_down() -> Result<Firewall> {
        let ns = Namespace::current()?;
        crate::timings::phase("namespace");
        let store = StateStore::lock(&ns.state_dir)?;
        crate::timings::phase("lock");
        let state = store.load()?;
        crate::timings::phase("load state");
        Ok(Firewall {
            ns,
            store,
            state,
            force: std::env::var_os("FWCTL_FORCE").is_some_and(|v| v == "1"),
            origin: None,
            defer_last_good: false,
        })
    }

    /// Whether fwctl is installed here (a state was saved; `down` removes it).
    pub fn state_exists(&self) -> bool {
        self.store.exists()
    }

    pub fn dataplane(&self) -> Result<Option<Dataplane>> {
        Dataplane::open(&self.ns)
    }

    /// The interfaces rules are compiled for: every interface of the namespace (`-o` can
    /// name any of them), the attached ones as recorded. One created later is unknown to
    /// the compiled ruleset until the next change: `-i`/`-o` patterns treat it as nameless.
    fn interfaces(&self) -> Vec<Interface> {
        let mut list: Vec<Interface> = self
            .state
            .interfaces
            .iter()
            .map(|a| Interface {
                name: a.name.clone(),
                ifindex: a.ifindex,
                attached: true,
                // Unreadable (the interface went away): XDP judges none of its frames.
                mac: hw_address(&a.name).map(|(_, mac)| mac).unwrap_or_default(),
            })
            .collect();
        for (ifindex, name) in interface_names() {
            if !list.iter().any(|i| i.ifindex == ifindex) {
                list.push(Interface {
                    name,
                    ifindex,
                    attached: false,
                    mac: [0; 6],
                });
            }
        }
        list
    }

    /// The chains of the ruleset in force that XDP cannot hold, and why (netfilter alone
    /// judges their packets: compile/mod.rs), as the last change compiled them.
    pub fn netfilter_only_chains(&self) -> Result<Vec<String>> {
        let image = compile_with_sets(&self.state.ruleset, &self.interfaces(), &self.state.sets)?;
        Ok(image.netfilter_only)
    }

    /// Puts an edited ruleset in force: compile every table, write the idle generation,
    /// flip, then record it. An error before the flip leaves the old ruleset in force.
    pub fn commit(&mut self, editor: Editor) -> Result<()> {
        // Rules may only name sets that exist, as iptables refuses them.
        crate::sets::check(&editor.ruleset, &self.state.sets)?;
        crate::timings::phase("check sets");
        // Compile first: the guard judges only a ruleset that can go in (one with matches
        // the compiler refuses never reaches it).
        let image = compile_with_sets(&editor.ruleset, &self.interfaces(), &self.state.sets)?;
        crate::timings::phase("compile (XDP image)");
        // Translating for netfilter can refuse a rule too: find out before anything moves.
        // Translated for the generation the change will most likely write (the one after
        // the active one), so that the staging step can reuse it.
        let existing = Dataplane::open(&self.ns)?;
        crate::timings::phase("open the maps in force");
        let guess = match &existing {
            Some(dp) => (dp.maps.config()?.active + 1) % firewall_common::GENERATIONS,
            None => 0,
        };
        // Against what that generation holds, so that rules it has are not translated again.
        // FWCTL_NFT_REWRITE=1 writes every rule again (what a change without a record does):
        // to compare the two ways, or to repair a table someone else edited.
        let rewrite = std::env::var_os("FWCTL_NFT_REWRITE").is_some_and(|v| v == "1");
        let record_of = |generation: u32| {
            if rewrite {
                return None;
            }
            self.state
                .nft_records
                .get(&generation)
                .and_then(|&token| netfilter::record::load(&self.ns.state_dir, generation, token))
        };
        let guessed_record = record_of(guess);
        let known = guessed_record
            .as_ref()
            .map(|r| r.known())
            .unwrap_or_default();
        let mut translated = Some((
            netfilter::translate(&editor.ruleset, guess, &self.state.sets, &known)?,
            guessed_record,
        ));
        crate::timings::phase("translate");
        if !self.force {
            self.refuse_lockout(&editor.ruleset)?;
        }
        crate::timings::phase("lockout guard");
        // Counter slots of both generations' rules must exist.
        let slots_end = editor
            .ruleset
            .slots()
            .chain(self.state.ruleset.slots())
            .max()
            .map_or(0, |s| s + 1);
        // And room for a restore that replaces every rule (of either generation's
        // ruleset, as for the other maps): it takes as many new slots again while the old
        // ones still count. Without it every other restore of a large ruleset would load
        // new maps, and the program with them (~0.8 s here).
        let rules = editor
            .ruleset
            .slots()
            .count()
            .max(self.state.ruleset.slots().count()) as u32;
        let replaced = POLICY_COUNTER_SLOTS + 2 * rules;
        let need = Capacity::needed(&image, slots_end.max(replaced));
        let mut dp = match existing {
            Some(dp) => dp,
            None => Dataplane::open_or_install(&self.ns, need.sized())?,
        };
        dp.maps.record_keyed_in(
            self.ns.state_dir.clone(),
            std::mem::take(&mut self.state.keyed_records),
        );
        let resize = self.resize_for(&dp, need)?;
        crate::timings::phase("open dataplane");
        let marks = self.marks();
        let hooked = netfilter::hooked_tables(&editor.ruleset);
        let current = dp.maps.config()?.active;
        let set_registry = &self.state.sets;
        let mut retired_gone = false;
        let in_force = netfilter::in_force(&self.state.ruleset);
        let state_dir = &self.ns.state_dir;
        let mut staged_record = None;
        // Netfilter's idle generation is staged before XDP flips, the default switched after:
        // see netfilter/mod.rs for why each packet then meets one whole ruleset.
        let stage = |next| {
            let (chains, record) = match translated.take() {
                Some(done) if next == guess => done,
                _ => {
                    let record = record_of(next);
                    let known = record.as_ref().map(|r| r.known()).unwrap_or_default();
                    let chains = netfilter::translate(&editor.ruleset, next, set_registry, &known)?;
                    (chains, record)
                }
            };
            let remake_sets = || crate::sets::ops::remake_in_netfilter(state_dir, set_registry);
            let staging = netfilter::Staging {
                dir: state_dir,
                in_force: &in_force,
                remake_sets: &remake_sets,
            };
            let whole = || {
                Ok(netfilter::translate(
                    &editor.ruleset,
                    next,
                    set_registry,
                    &Default::default(),
                )?)
            };
            staged_record = Some((
                next,
                netfilter::stage(
                    chains, record, whole, next, current, marks, &hooked, &staging,
                )
                .map_err(|e| name_refused_rule(e, &editor.ruleset))?,
            ));
            // The idle generation's old rules were the last to name replaced sets.
            let retired: Vec<(Family, &str)> = set_registry
                .nft_retired
                .iter()
                .filter_map(|id| set_registry.storages.get(id))
                .map(|s| (s.family, s.nft_name.as_str()))
                .collect();
            match netfilter::sets::destroy(&retired) {
                Ok(()) => retired_gone = true,
                Err(e) => log::warn!(
                    "replaced sets stay in fwctl's nftables tables until the next change: {e:#}"
                ),
            }
            fault_point("staged");
            Ok(())
        };
        let next = match resize {
            None => {
                for &slot in &editor.new_slots {
                    dp.maps.zero_counter(slot)?;
                }
                dp.maps.install(&image, stage)?
            }
            // New maps: the new rules' slots are zero there already.
            Some((capacity, in_force)) => {
                let slots = (0..POLICY_COUNTER_SLOTS).chain(self.state.ruleset.slots());
                let fill = |dir: &std::path::Path| {
                    crate::sets::xdp::reload_sets(dir, &self.ns.state_dir, &self.state.sets)
                };
                dp.resize(capacity, &in_force, &image, slots, fill, stage)?
            }
        };
        crate::timings::phase("xdp: flip");
        fault_point("flipped");
        if let Err(e) = netfilter::switch(next, marks, &hooked) {
            // Back to the previous generation on the XDP side too: it is still intact.
            dp.maps.set_active(current)?;
            return Err(e);
        }
        crate::timings::phase("nft: switch batch");
        // After netfilter: until the TC program marks with the new bits, XDP-accepted
        // packets are merely judged twice, never waved through.
        let config = dp.maps.config()?;
        let fast = crate::dataplane::forwarding::fast_flags(
            self.state.interfaces.iter().map(|i| i.name.as_str()),
        );
        // Unknown counts as "helpers about": XDP then leaves conntrack misses to netfilter.
        let helpers = match netfilter::netlink::helpers_in_use(netfilter::TABLE) {
            Ok(false) => 0,
            Ok(true) => CONFIG_CT_HELPERS,
            Err(e) => {
                log::warn!("could not tell whether conntrack helpers are in use: {e:#}");
                CONFIG_CT_HELPERS
            }
        };
        let flags = (config.flags & !(FAST_FLAGS | CONFIG_CT_HELPERS)) | fast | helpers;
        if config.mark_shift != marks.shift || config.flags != flags {
            dp.maps.set_config(firewall_common::Config {
                mark_shift: marks.shift,
                flags,
                ..config
            })?;
        }
        crate::timings::phase("config and helpers");
        // Only a speed-up: without it XDP looks up every packet a conntrack rule needs.
        if let Err(e) = crate::dataplane::ct_seen::ensure(&self.ns.pin_dir, self.state.ct_filter) {
            log::info!("conntrack lookups at XDP stay unfiltered: {e:#}");
        }
        crate::timings::phase("conntrack filter");
        self.state.nft_baseline = NftCounters::default();
        if retired_gone {
            for id in std::mem::take(&mut self.state.sets.nft_retired) {
                self.state.sets.storages.remove(&id);
            }
        }
        match self.origin.take() {
            Some(origin) => self.state.origin = Some(origin),
            None if editor.ruleset != self.state.ruleset => self.state.origin = None,
            None => {}
        }
        self.state.ruleset = editor.ruleset;
        self.state.generation = Some(next);
        self.state.keyed_records = dp.maps.keyed_tokens();
        if let Some((generation, token)) = staged_record {
            match token {
                Some(token) => self.state.nft_records.insert(generation, token),
                None => self.state.nft_records.remove(&generation),
            };
        }
        self.state.last_apply_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        self.store.save(&self.state)?;
        crate::timings::phase("state file");
        self.record_last_good(false);
        crate::timings::phase("last good");
        Ok(())
    }

    /// Keeps what is in force now as the last good copy on disk (`sets`: with the sets'
    /// members, which changed). Not the fail-safe: it is what boot falls back to when there
    /// is nothing good, and must not pass for something good at the next boot. A failure is
    /// reported, not returned: the change is in force already, and the previous copy stays
    /// whole.
    pub fn record_last_good(&self, sets: bool) {
        self.keep_last_good(|fw| crate::last_good::record(fw, sets));
    }

    /// As [`Self::record_last_good`] after one set change made in place: appended to the
    /// copy's journal (see `last_good`).
    pub fn journal_last_good(&self, cmd: &crate::sets::ipset_format::Cmd) {
        self.keep_last_good(|fw| crate::last_good::journal(fw, cmd));
    }

    /// Runs `write` unless the last good copy must not change now (boot defers it; the
    /// fail-safe is never recorded as good); a failure is a warning, the change stays.
    fn keep_last_good(&self, write: impl FnOnce(&Firewall) -> Result<()>) {
        if self.defer_last_good
            || self
                .state
                .origin
                .as_ref()
                .is_some_and(|o| o.source == Source::FailSafe)
        {
            return;
        }
        if let Err(e) = write(self) {
            eprintln!("fwctl: warning: the last good ruleset was not recorded: {e:#}");
        }
    }

    /// The map sizes to move to, with the ruleset in force compiled for the new maps, when
    /// the maps in place cannot take a ruleset that needs `need` (or are far larger than
    /// both generations need), or hold another build's programs.
    fn resize_for(&self, dp: &Dataplane, need: Capacity) -> Result<Option<(Capacity, Image)>> {
        let have = dp.maps.capacity();
        // Another build's programs (an upgrade that kept the ABI): a new instance of this
        // build's, as a resize makes it, even at the same size.
        let rebuild = !dp.runs_this_build();
        if have.fits(need) && !rebuild {
            return Ok(None);
        }
        // The sets are loaded into the new instance before it sees a packet (`resize`'s
        // fill), so the ruleset in force checks them at XDP there as it does here.
        let in_force =
            compile_with_sets(&self.state.ruleset, &self.interfaces(), &self.state.sets)?;
        let capacity = need.max(Capacity::needed(&in_force, 0)).sized();
        if capacity == have && !rebuild {
            return Ok(None);
        }
        if rebuild {
            log::info!(
                "the XDP program in force is another fwctl build's: moving the firewall onto this build's programs (counters carried over; rate-limit buckets and top talkers start afresh)"
            );
        } else {
            log::info!("resizing the BPF maps from {have:?} to {capacity:?}");
        }
        Ok(Some((capacity, in_force)))
    }

    fn marks(&self) -> Marks {
        Marks {
            shift: self.state.mark_shift,
        }
    }

    /// Moves XDP's verdict bits to skb->mark bits `shift`..`shift + 2`, clear of other
    /// fwmark users (policy routing, kube-proxy, Docker).
    pub fn set_mark_shift(&mut self, shift: u32) -> Result<()> {
        if shift > 32 - firewall_common::MARK_BITS.count_ones() {
            bail!(
                "mark bits {shift}..{} do not fit in the 32-bit mark: use 0 to 29",
                shift + 2
            );
        }
        self.state.mark_shift = shift;
        self.recommit()
    }

    /// Turns the conntrack destination filter on or off (`fwctl ct-filter`).
    pub fn set_ct_filter(&mut self, on: bool) -> Result<()> {
        self.state.ct_filter = on;
        self.recommit()
    }

    /// Where counters are read from: the XDP maps and netfilter's tables.
    pub fn counter_source(&self) -> Result<CounterSource> {
        let dp = self.dataplane()?;
        let nft = match &dp {
            Some(_) => netfilter::counters(&self.state.ruleset)?.minus(&self.state.nft_baseline),
            None => NftCounters::default(),
        };
        Ok(CounterSource { dp, nft })
    }

    /// Refuses a ruleset that would drop the caller's SSH session on an interface fwctl
    /// judges at XDP.
    fn refuse_lockout(&self, ruleset: &crate::rules::Ruleset) -> Result<()> {
        let Some(session) = crate::guard::Session::from_env() else {
            return Ok(());
        };
        let Some(iface) = crate::guard::interface_of(session.server) else {
            return Ok(());
        };
        if !self.state.interfaces.iter().any(|a| a.name == iface) {
            return Ok(());
        }
        let in_set = |family, m: &crate::rules::Neg<crate::rules::SetMatch>| {
            self.session_in_set(&session, family, m)
        };
        if let Some(why) = crate::guard::would_cut(ruleset, &session, &iface, &in_set) {
            bail!("refusing the change: {why}; use --force (or FWCTL_FORCE=1) to apply it anyway");
        }
        Ok(())
    }

    /// Records the state as it is now.
    pub fn save_state(&self) -> Result<()> {
        self.store.save(&self.state)
    }

    /// Recompiles the ruleset in force (after the set of attached interfaces changed, or a
    /// set its rules use moved to another storage).
    pub fn recommit(&mut self) -> Result<()> {
        self.commit(Editor::new(self.state.ruleset.clone()))
    }

    /// Counters of a chain; zeros where nothing is installed.
    pub fn counters(
        &self,
        src: &CounterSource,
        table: Table,
        family: Family,
        chain: &str,
    ) -> Result<ChainCounters> {
        let mut out = self.xdp_counters(src.dp.as_ref(), table, family, chain)?;
        let rules = self.state.ruleset.table(table, family);
        for (c, rule) in out
            .rules
            .iter_mut()
            .zip(rules.rules(chain).into_iter().flatten())
        {
            let (p, b) = src.nft.rule(rule.slot);
            c.packets += p;
            c.bytes += b;
        }
        if let Some(builtin) = rules.builtin(chain) {
            let (p, b) = src.nft.policy(table, family, builtin);
            out.policy.packets += p;
            out.policy.bytes += b;
        }
        Ok(out)
    }

    fn xdp_counters(
        &self,
        dp: Option<&Dataplane>,
        table: Table,
        family: Family,
        chain: &str,
    ) -> Result<ChainCounters> {
        let rules = self
            .state
            .ruleset
            .table(table, family)
            .rules(chain)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(dp) = dp else {
            return Ok(ChainCounters {
                policy: Counter::default(),
                rules: vec![Counter::default(); rules.len()],
            });
        };
        let policy = match Chain::from_name(chain)
            .and_then(|c| prehooks::xdp_policy_slot(table, family, c))
        {
            Some(slot) => dp.maps.counter(slot)?,
            None => Counter::default(),
        };
        Ok(ChainCounters {
            policy,
            rules: rules
                .iter()
                .map(|r| dp.maps.counter(r.slot))
                .collect::<Result<_>>()?,
        })
    }

    /// `-Z [CHAIN [N]]`: zero the counters of one rule, one chain, or all of a family.
    pub fn zero(
        &mut self,
        table: Table,
        family: Family,
        chain: Option<&str>,
        rule: Option<usize>,
    ) -> Result<()> {
        let rules = self.state.ruleset.table(table, family);
        let names = crate::cli::list::chain_names(rules, chain)
            .ok_or_else(|| EditError::NoSuchChain(chain.unwrap_or_default().to_string()))?;
        let Some(mut dp) = self.dataplane()? else {
            return Ok(());
        };
        let mut slots = Vec::new();
        let mut policies = Vec::new();
        if let (Some(n), Some(name)) = (rule, names.first()) {
            slots.extend(rules.rules(name).and_then(|r| r.get(n - 1)).map(|r| r.slot));
        } else {
            for name in names {
                slots.extend(rules.rules(&name).into_iter().flatten().map(|r| r.slot));
                policies.extend(rules.builtin(&name));
            }
        }
        // Netfilter's counters cannot be zeroed in place: what they hold now becomes the
        // baseline they are read against, until the next change rewrites them from zero.
        let raw = netfilter::counters(&self.state.ruleset)?;
        let baseline = &mut self.state.nft_baseline;
        for slot in slots {
            dp.maps.zero_counter(slot)?;
            baseline.rules.insert(slot, raw.rule(slot));
        }
        for chain in policies {
            if let Some(slot) = prehooks::xdp_policy_slot(table, family, chain) {
                dp.maps.zero_counter(slot)?;
            }
            baseline.policies.insert(
                netfilter::policy_key(table, family, chain),
                raw.policy(table, family, chain),
            );
        }
        self.store.save(&self.state)
    }

    pub fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<()> {
        let ifindex = ifindex(iface)?;
        if self.state.interfaces.iter().any(|a| a.ifindex == ifindex) {
            bail!("{iface} is already attached (fwctl detach {iface} first)");
        }
        // Refused before anything changes, naming the program in the way.
        if let Some(id) = attach::xdp_program_on(ifindex)? {
            bail!("{}", attach::busy(iface, id));
        }
        if !xdp_can_judge(iface)? {
            bail!(
                "{iface} has no Ethernet header (link type {}): XDP would misread its packets, so fwctl leaves it to its nftables table, which judges it with the same rules",
                hw_address(iface)?.0
            );
        }
        // The ruleset, compiled with this interface's name for `-i` matches, is in the maps
        // before the program sees a packet from it.
        self.state.interfaces.push(Attachment {
            name: iface.to_string(),
            ifindex,
            mode,
        });
        if let Err(e) = self.recommit() {
            self.state.interfaces.pop();
            return Err(e);
        }
        if let Err(e) = self.attach_links(ifindex, mode) {
            self.state.interfaces.pop();
            self.recommit()?;
            return Err(e.context(format!("attaching to {iface}")));
        }
        Ok(())
    }

    /// The TC program first, then XDP: while only the TC program is attached there is no
    /// verdict for it to carry, whereas XDP alone would accept packets that reach netfilter
    /// unmarked. If XDP fails, the TC link goes again.
    fn attach_links(&self, ifindex: u32, mode: XdpMode) -> Result<()> {
        let dp = self
            .dataplane()?
            .context("firewall missing right after install")?;
        let tc = SchedClassifier::from_pin(dp.tc_program_path())
            .context("opening the pinned TC program")?;
        let tc_link = attach::tc_link_path(&dp.ns.pin_dir, ifindex);
        attach::attach_pinned(tc.fd()?.as_fd(), ifindex, Hook::TcxIngress, &tc_link)?;
        fault_point("attach-tc");
        let xdp = Xdp::from_pin(dp.program_path(), XdpAttachType::Interface)
            .context("opening the pinned XDP program")?;
        let link = attach::link_path(&dp.ns.pin_dir, ifindex);
        if let Err(e) = attach::attach_pinned(xdp.fd()?.as_fd(), ifindex, Hook::Xdp(mode), &link) {
            attach::detach_pinned(&tc_link)?;
            return Err(e);
        }
        Ok(())
    }

    /// Links again an interface the state records as attached whose XDP link is missing
    /// (a run killed between recording the interface and linking it). What a killed run
    /// may have linked already goes first, so it is never linked twice.
    pub fn relink(&mut self, ifindex: u32) -> Result<()> {
        let Some(att) = self.state.interfaces.iter().find(|a| a.ifindex == ifindex) else {
            bail!("interface {ifindex} is not attached");
        };
        let mode = att.mode;
        detach_links(&self.ns.pin_dir, ifindex)?;
        self.attach_links(ifindex, mode)
    }

    /// Forgets an attached interface that is gone (or now has another name): its links
    /// went with it; their pins and its entry go now, so that an interface that appears
    /// under its name is attached afresh. The caller recommits.
    pub fn forget(&mut self, ifindex: u32) -> Result<()> {
        self.state.interfaces.retain(|a| a.ifindex != ifindex);
        detach_links(&self.ns.pin_dir, ifindex)
    }

    /// Detaches an interface, or every interface a pattern (`eth+`) matches; either stops
    /// being watched for (`fwctl watch` would attach it again otherwise).
    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let watched = self.state.watch.len();
        self.state.watch.retain(|l| l.iface != iface);
        let line = crate::boot::AttachLine {
            iface: iface.to_string(),
            mode: XdpMode::Native,
        };
        let gone: Vec<u32> = self
            .state
            .interfaces
            .iter()
            .filter(|a| line.matches(&a.name))
            .map(|a| a.ifindex)
            .collect();
        if gone.is_empty() && watched == self.state.watch.len() {
            bail!("{iface} is not attached");
        }
        for ifindex in gone {
            self.state.interfaces.retain(|a| a.ifindex != ifindex);
            detach_links(&self.ns.pin_dir, ifindex)?;
        }
        self.recommit()
    }

    /// `fwctl attach eth+`: attaches the interfaces a prefix matches, now and (through
    /// `fwctl watch`) when they appear. Returns what was done, interface by interface.
    pub fn attach_pattern(&mut self, iface: &str, mode: XdpMode) -> Result<Vec<String>> {
        let line = crate::boot::AttachLine {
            iface: iface.to_string(),
            mode,
        };
        self.state.watch.retain(|l| l.iface != iface);
        self.state.watch.push(line);
        self.save_state()?;
        let mut done = Vec::new();
        for result in crate::watch::reconcile(self) {
            done.push(result.map_err(|e| anyhow::anyhow!(e))?);
        }
        self.record_last_good(false);
        Ok(done)
    }

    /// Detaches everything and removes every pin and the state: nothing of fwctl is left
    /// in this namespace.
    pub fn down(self) -> Result<()> {
        for att in &self.state.interfaces {
            detach_links(&self.ns.pin_dir, att.ifindex)?;
        }
        netfilter::remove()?;
        remove_pins(&self.ns.pin_dir)?;
        remove_pins(&crate::dataplane::install::scratch_dir(&self.ns.pin_dir))?;
        // An instance an fwctl of another ABI left (its links go with their pins).
        for (_, dir) in crate::dataplane::upgrade::older_instances(&self.ns) {
            remove_pins(&dir)?;
        }
        // Leave no empty fwctl directories behind either.
        let mut dir = self.ns.pin_dir.parent();
        while let Some(d) = dir {
            if d == std::path::Path::new(crate::dataplane::namespace::BPFFS)
                || std::fs::remove_dir(d).is_err()
            {
                break;
            }
            dir = d.parent();
        }
        crate::last_good::remove()?;
        self.store.remove()?;
        crate::dataplane::namespace::release_bpffs_if_unused()
    }

    /// Turns per-packet verdict logging (aya-log) on or off.
    pub fn set_verdict_logging(&self, on: bool) -> Result<()> {
        let mut dp = self
            .dataplane()?
            .context("fwctl is not installed in this namespace")?;
        let config = dp.maps.config()?;
        let flags = if on {
            config.flags | CONFIG_LOG_VERDICTS
        } else {
            config.flags & !CONFIG_LOG_VERDICTS
        };
        dp.maps.set_config(Config { flags, ..config })
    }

    /// Kernel id of the pinned program, for aya-log and status.
    pub fn program_id(&self) -> Result<Option<u32>> {
        let path = self.ns.pin_dir.join(PROGRAM_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let prog = Xdp::from_pin(&path, XdpAttachType::Interface)?;
        Ok(Some(prog.info()?.id()))
    }
}

/// Checks that a ruleset can go in, on both paths, without touching anything.
pub fn check(ruleset: &crate::rules::Ruleset, sets: &crate::sets::model::Registry) -> Result<()> {
    crate::sets::check(ruleset, sets)?;
    compile_with_sets(ruleset, &[], sets)?;
    netfilter::translate(ruleset, 0, sets, &Default::default())?;
    Ok(())
}

/// XDP first, then TC, the reverse of attaching, so no XDP-accepted packet goes unmarked.
fn detach_links(pin_dir: &std::path::Path, ifindex: u32) -> Result<()> {
    attach::detach_pinned(&attach::link_path(pin_dir, ifindex))?;
    attach::detach_pinned(&attach::tc_link_path(pin_dir, ifindex))?;
    Ok(())
}

/// (ifindex, name) of every interface of this network namespace.
pub fn interface_names() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut cur = list;
        while (*cur).if_index != 0 && !(*cur).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*cur).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(((*cur).if_index, name));
            cur = cur.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

/// Link types whose frames start with an Ethernet header, the only kind the XDP program
/// parses (loopback's frames carry one too).
const ETHERNET_LINKS: [u16; 2] = [libc::ARPHRD_ETHER, libc::ARPHRD_LOOPBACK];

/// The interface's link type (`ARPHRD_*`) and the first six bytes of its hardware address
/// (an Ethernet device's MAC), from this network namespace's view of it.
pub fn hw_address(iface: &str) -> Result<(u16, [u8; 6])> {
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        bail!("bad interface name {iface:?}");
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: a plain datagram socket, closed below; the ioctl fills `req`, which lives
    // through the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket for SIOCGIFHWADDR");
        }
        let r = libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(err).with_context(|| format!("hardware address of {iface}"));
        }
        let addr = req.ifr_ifru.ifru_hwaddr;
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(addr.sa_data) {
            *d = s as u8;
        }
        Ok((addr.sa_family, mac))
    }
}

/// Whether fwctl's XDP program can judge `iface`'s frames: a device without an Ethernet
/// header (tun, WireGuard, IP tunnels) hands XDP bare IP packets, which the program would
/// misread. Netfilter's table judges such an interface, as any fwctl is not attached to.
pub fn xdp_can_judge(iface: &str) -> Result<bool> {
    Ok(ETHERNET_LINKS.contains(&hw_address(iface)?.0))
}

pub fn ifindex(iface: &str) -> Result<u32> {
    let c = CString::new(iface).with_context(|| format!("bad interface name {iface:?}"))?;
    // SAFETY: c is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface named {iface} in this network namespace");
    }
    Ok(index)
}

/// Names the operator's rule a refused netfilter batch stumbled on, as a command, when the
/// kernel's refusal says which (`netfilter::RefusedRule`): "No such file or directory"
/// alone does not tell which of 10,000 rules names a helper or algorithm it lacks.
fn name_refused_rule(e: anyhow::Error, ruleset: &crate::rules::Ruleset) -> anyhow::Error {
    use crate::rules::{Family, Table};
    let Some(slot) = e
        .downcast_ref::<netfilter::RefusedRule>()
        .and_then(|r| r.slot)
    else {
        return e;
    };
    for family in Family::ALL {
        for table in Table::ALL {
            let rules = ruleset.table(table, family);
            let builtins = rules
                .builtins()
                .iter()
                .map(|&c| (c.name().to_string(), &rules.chain(c).rules));
            let users = rules.user.iter().map(|u| (u.name.clone(), &u.rules));
            for (chain, list) in builtins.chain(users) {
                if let Some(rule) = list.iter().find(|r| r.slot == slot) {
                    let args = crate::cli::list::rule_args(&rule.spec);
                    return e.context(format!(
                        "the kernel cannot take this rule: {} -t {} -A {chain} {args}",
                        family.tool(),
                        table.name()
                    ));
                }
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_rule_is_named_as_a_command() {
        let ruleset = crate::rules::edit::ruleset_of(&[
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-t raw -A PREROUTING -p udp --dport 53 -j DROP",
        ]);
        let slot = ruleset
            .table(crate::rules::Table::Raw, crate::rules::Family::V4)
            .all_rules()
            .next()
            .unwrap()
            .slot;
        let refused = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOENT))
            .context(netfilter::RefusedRule {
                chain: "0v4-raw-PREROUTING".into(),
                slot: Some(slot),
            })
            .context("applying a batch")
            .context("netlink: staging the new ruleset");
        let text = format!("{:#}", name_refused_rule(refused, &ruleset));
        assert!(
            text.starts_with(
                "the kernel cannot take this rule: iptables -t raw -A PREROUTING -p udp -m udp --dport 53 -j DROP: "
            ),
            "{text}"
        );
    }
}
