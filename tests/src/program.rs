//! The XDP program loaded straight from fwctl's embedded object (no pins, no attachment),
//! fed crafted frames through BPF_PROG_TEST_RUN.

use std::os::fd::AsFd;

use anyhow::{Context, Result};
use aya::{
    programs::{TestRun, TestRunOptions, TestRunResult, Xdp},
    Ebpf,
};
use firewall_common::{policy_counter, Counter, CHAIN_INPUT};
use fwctl::{
    compile::{compile, Image, Interface},
    dataplane::{
        capacity::Capacity,
        forwarding::fast_flags,
        install::{load_object_with, map_memlock, CtLookup, PROGRAM_NAME},
        maps::Maps,
    },
    rules::{edit::Editor, parse::parse_args, Family, Ruleset},
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
/// Not a return value of the kernel's: what test tables expect of a deferred packet,
/// XDP_PASS with the metadata of "judged, not accepted" and no counter moved.
pub const DEFER: u32 = u32::MAX;
/// Not a return value either: what they expect under a ruleset that leaves XDP idle
/// (`CONFIG_IDLE`): XDP_PASS without metadata and no counter moved, netfilter judging and
/// counting the packet as any unmarked one.
pub const IDLE: u32 = u32::MAX - 1;
/// The loopback interface: it exists in every namespace, so test runs can claim to have
/// received a frame on it.
pub const LO_IFINDEX: u32 = 1;

/// What the XDP program did with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judged {
    pub action: u32,
    /// The word in the metadata area (for the TC program), if the program left one.
    pub meta: Option<u32>,
}

impl Judged {
    /// XDP_PASS (accepted), DEFER (passed for netfilter to judge), or the action.
    pub fn verdict(&self) -> u32 {
        match (self.action, self.meta) {
            (XDP_PASS, Some(word)) if word & firewall_common::MARK_ACCEPTED == 0 => DEFER,
            (action, _) => action,
        }
    }
}

pub struct Harness {
    /// The namespace this thread runs test runs in: only loopback, forwarding off, so the
    /// program's routing decision (INPUT) does not depend on the machine's own network.
    _netns: netlab::Netns,
    ct: CtLookup,
    ebpf: Ebpf,
    pub maps: Maps,
    pub ruleset: Ruleset,
    /// Interfaces the ruleset is compiled for, as after `fwctl attach`.
    pub interfaces: Vec<Interface>,
    /// What the last install wrote.
    pub image: Image,
    /// The conntrack destination filter, once [`Harness::ct_filter`] built it: its map and
    /// the links of its netfilter program, which live as long as this.
    filter: Option<(fwctl::dataplane::mmap::MmapArray, Vec<std::os::fd::OwnedFd>)>,
}

/// The program loaded with maps of `capacity`, unpinned.
fn instance(ct: CtLookup, capacity: Capacity) -> Result<(Ebpf, Maps)> {
    let mut ebpf = load_object_with(ct, capacity)?;
    let maps = Maps::from_source(|name| {
        ebpf.take_map(name)
            .with_context(|| format!("object has no map {name}"))
    })?;
    Ok((ebpf, maps))
}

impl Harness {
    /// The program with faked conntrack lookups ([`Harness::fake_ct`]): test runs cannot
    /// create conntrack entries, so fixtures say what the lookup finds.
    pub fn load() -> Result<Harness> {
        Self::load_with(CtLookup::Fake)
    }

    pub fn load_with(ct: CtLookup) -> Result<Harness> {
        let netns = netlab::Netns::new("fwt-prog")?;
        netns.enter_on_this_thread()?;
        let capacity = Capacity::needed(&Image::default(), 0).sized();
        let (ebpf, maps) = instance(ct, capacity)?;
        let mut h = Harness {
            _netns: netns,
            ct,
            ebpf,
            maps,
            ruleset: Ruleset::default(),
            interfaces: vec![Interface {
                name: "lo".into(),
                ifindex: LO_IFINDEX,
                attached: true,
                mac: crate::packets::HOST_MAC,
            }],
            image: Image::default(),
            filter: None,
        };
        h.apply(&[])?;
        // Nothing known of conntrack unless a test says so; the fast table on where fwctl
        // would turn it on (this namespace forwards nothing).
        h.maps.set_config(firewall_common::Config {
            fake_ct_lookup: firewall_common::CT_FAKE_ERROR,
            flags: fast_flags(["lo"]),
            ..h.maps.config()?
        })?;
        anyhow::ensure!(
            h.fast()?,
            "the test namespace forwards packets: the fast path would not run"
        );
        Ok(h)
    }

    /// Builds the conntrack destination filter as fwctl does at a change (see
    /// fwctl::dataplane::ct_seen): its program attached in this namespace, the table's
    /// entries marked, the map ready. Only a program with real lookups consults it.
    pub fn ct_filter(&mut self) -> Result<()> {
        let map = self
            .ebpf
            .take_map(firewall_common::MAP_CT_SEEN)
            .context("the program has no conntrack filter map")?;
        let map = fwctl::dataplane::maps::data(map, firewall_common::MAP_CT_SEEN)?;
        let mut links = Vec::new();
        let filter = fwctl::dataplane::ct_seen::build(
            map,
            &fwctl::dataplane::ct_seen::link_names(),
            |_, link| {
                links.push(link);
                Ok(())
            },
        )?;
        self.filter = Some((filter, links));
        Ok(())
    }

    /// The network namespace test runs happen in.
    pub fn netns(&self) -> &netlab::Netns {
        &self._netns
    }

    /// Adds an interface `name` (a veth, whose peer stays idle: this kernel has no dummy
    /// driver) to the harness's namespace and compiles rulesets for
    /// it as the one attached interface, as on a host where fwctl judges one NIC; returns
    /// its ifindex, for test runs that claim to have received a frame on it.
    pub fn attach_dummy(&mut self, name: &str) -> Result<u32> {
        let peer = format!("{name}p");
        self._netns
            .ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])?;
        self._netns.ip(&["link", "set", name, "up"])?;
        let ifindex = crate::generator::ifindex(&self._netns, name)?;
        self.interfaces = vec![Interface {
            name: name.into(),
            ifindex,
            attached: true,
            mac: crate::packets::HOST_MAC,
        }];
        self.install(self.ruleset.clone())?;
        Ok(ifindex)
    }

    /// Turns the fast table on or off (off: every packet goes through the classifier, as
    /// on a namespace that forwards).
    pub fn set_fast(&mut self, on: bool) -> Result<()> {
        let config = self.maps.config()?;
        let bits = firewall_common::CONFIG_FAST_V4 | firewall_common::CONFIG_FAST_V6;
        self.maps.set_config(firewall_common::Config {
            flags: if on {
                config.flags | bits
            } else {
                config.flags & !bits
            },
            ..config
        })?;
        Ok(())
    }

    /// The fast table's word for a packet under the ruleset installed last (0 when it has
    /// no key for it, or the classifier decides).
    pub fn fast_word(&self, pkt: &fwctl::rules::eval::PacketView) -> u32 {
        let Some((class, value)) = fwctl::compile::fast::key(pkt) else {
            return 0;
        };
        self.image
            .fast
            .iter()
            .find(|(f, _)| *f == pkt.family.index())
            .and_then(|(_, words)| words.get((class * firewall_common::FAST_KEYS + value) as usize))
            .unwrap_or(0)
    }

    /// Whether the fast table is on for both families.
    pub fn fast(&self) -> Result<bool> {
        let bits = firewall_common::CONFIG_FAST_V4 | firewall_common::CONFIG_FAST_V6;
        Ok(self.maps.config()?.flags & bits == bits)
    }

    /// Kernel memory of the maps the XDP program uses (`memlock` of each), in bytes.
    pub fn map_memory(&self) -> Result<u64> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .context("no XDP program")?
            .try_into()?;
        let mut total = 0;
        for id in prog.info()?.map_ids()?.unwrap_or_default() {
            let map = aya::maps::MapData::from_id(id)?;
            total += map_memlock(map.fd().as_fd())?;
        }
        Ok(total)
    }

    /// Replaces the ruleset with the one the fwctl command lines build (rule, policy and
    /// chain commands), through fwctl's own parser, editor and compiler, and zeroes every
    /// counter it uses.
    pub fn apply(&mut self, lines: &[&str]) -> Result<()> {
        let mut editor = Editor::new(Ruleset::default());
        for line in lines {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            let inv = parse_args(&args).with_context(|| format!("parsing {line:?}"))?;
            if let Some(other) = editor.apply(inv.table, inv.family, inv.command)? {
                anyhow::bail!("not a ruleset command: {other:?}");
            }
        }
        self.install(editor.ruleset)
    }

    /// Compiles and installs `ruleset`, zeroing every counter. A ruleset the maps cannot
    /// hold gets a new instance of the program with maps of the size fwctl would make
    /// (keeping the configuration, not the other generation); maps never shrink here, as
    /// reloading costs the verifier's time.
    pub fn install(&mut self, ruleset: Ruleset) -> Result<()> {
        let image = compile(&ruleset, &self.interfaces)?;
        let slots_end = ruleset.slots().max().map_or(0, |s| s + 1);
        let need = Capacity::needed(&image, slots_end);
        if !self.maps.capacity().holds(need) {
            let config = self.maps.config()?;
            (self.ebpf, self.maps) = instance(self.ct, need.sized())?;
            self.maps.set_config(config)?;
            // A new instance has a map of its own, not ready.
            self.filter = None;
        }
        for slot in ruleset.slots() {
            self.maps.zero_counter(slot)?;
        }
        for family in Family::ALL {
            self.maps
                .zero_counter(policy_counter(family.index(), CHAIN_INPUT))?;
        }
        self.maps.install(&image, |_| Ok(()))?;
        self.ruleset = ruleset;
        self.image = image;
        Ok(())
    }

    /// Runs the program `repeat` times on `frame`, received on `ifindex` (an interface of
    /// this network namespace), with the frame and context written back into `out` if
    /// given.
    fn test_run(
        &self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        out: Option<(&mut [u8], &mut [u8])>,
    ) -> Result<TestRunResult> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .context("no program")?
            .try_into()?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let md: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let (data_out, ctx_out) = match out {
            Some((data, ctx)) => (Some(data), Some(ctx)),
            None => (None, None),
        };
        Ok(prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(ctx.as_slice()),
            data_out,
            ctx_out,
            repeat,
            ..Default::default()
        })?)
    }

    /// Instructions the verifier processed to accept the program (its limit is 1,000,000).
    pub fn verified_instructions(&self) -> Result<Option<u32>> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .context("no program")?
            .try_into()?;
        Ok(prog.info()?.verified_instruction_count())
    }

    /// The program's return value for one run on `frame`.
    pub fn run(&self, frame: &[u8], ifindex: u32) -> Result<u32> {
        Ok(self.judge(frame, ifindex)?.action)
    }

    /// The program's return value and the metadata it left for the TC program, for one run
    /// on `frame`. The kernel writes the frame back from data_meta on, and in the context
    /// `data` = the metadata's length.
    pub fn judge(&self, frame: &[u8], ifindex: u32) -> Result<Judged> {
        let mut data = vec![0u8; frame.len() + 256];
        let mut ctx = [0u8; 24];
        let r = self.test_run(frame, ifindex, 1, Some((&mut data, &mut ctx)))?;
        let meta_len = u32::from_ne_bytes(ctx[0..4].try_into()?) as usize;
        let meta = match meta_len {
            0 => None,
            4 => Some(u32::from_ne_bytes(data[0..4].try_into()?)),
            n => anyhow::bail!("{n} bytes of metadata, expected 0 or 4"),
        };
        anyhow::ensure!(
            r.data_size_out as usize == meta_len + frame.len(),
            "the program changed the frame's length"
        );
        Ok(Judged {
            action: r.return_value,
            meta,
        })
    }

    /// Nanoseconds per run over `repeat` runs, as the kernel timed them: whole
    /// nanoseconds, but only the runs themselves. The syscall's wall time also holds the
    /// time the task spends rescheduled between runs (in steps of a 4 ms tick on this VM,
    /// 10-20 ns per run over a million runs).
    pub fn time(&self, frame: &[u8], ifindex: u32, repeat: u32) -> Result<f64> {
        let r = self.test_run(frame, ifindex, repeat, None)?;
        Ok(r.duration.as_nanos() as f64)
    }

    /// What the program's conntrack lookups find from now on (`CT_FAKE_*`; 0 is a miss),
    /// for a harness loaded with [`CtLookup::Fake`].
    pub fn fake_ct(&mut self, lookup: u32) -> Result<()> {
        let config = self.maps.config()?;
        self.maps.set_config(firewall_common::Config {
            fake_ct_lookup: lookup,
            ..config
        })?;
        Ok(())
    }

    /// The generation packets are judged by now.
    pub fn generation(&self) -> Result<u32> {
        Ok(self.maps.config()?.active % firewall_common::GENERATIONS)
    }

    /// Counters of rule `n` (1-based) of INPUT, or of the policy for n = 0.
    pub fn counter(&self, family: Family, n: usize) -> Result<Counter> {
        let slot = if n == 0 {
            policy_counter(family.index(), CHAIN_INPUT)
        } else {
            self.ruleset
                .family(family)
                .input
                .rules
                .get(n - 1)
                .with_context(|| format!("no rule {n}"))?
                .slot
        };
        self.maps.counter(slot)
    }
}
