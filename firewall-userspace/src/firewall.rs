//! One network namespace's firewall as a whole: the locked state, the pinned dataplane, and
//! the operations the CLI offers on them. Each operation validates and compiles everything
//! before it touches the kernel, and records the new state only after the kernel took it.

use std::ffi::CString;

use anyhow::{bail, Context, Result};
use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use firewall_common::{policy_counter, Config, Counter, CONFIG_LOG_VERDICTS};

use crate::{
    cli::list::ChainCounters,
    compile::compile,
    dataplane::{
        attach::{self, XdpMode},
        install::{remove_pins, PROGRAM_NAME},
        namespace::Namespace,
        Dataplane,
    },
    rules::{edit::Editor, Chain, Family},
    state::{Attachment, State, StateStore},
};

pub struct Firewall {
    pub ns: Namespace,
    store: StateStore,
    pub state: State,
}

impl Firewall {
    /// Locks the current network namespace's firewall and reads its state.
    pub fn lock() -> Result<Firewall> {
        let ns = Namespace::current()?;
        let store = StateStore::lock(&ns.state_dir)?;
        let state = store.load()?;
        Ok(Firewall { ns, store, state })
    }

    pub fn dataplane(&self) -> Result<Option<Dataplane>> {
        Dataplane::open(&self.ns)
    }

    /// Puts an edited ruleset in force: compile both families, write the idle generation,
    /// flip, then record it. An error before the flip leaves the old ruleset in force.
    pub fn commit(&mut self, editor: Editor) -> Result<()> {
        let images = Family::ALL
            .iter()
            .map(|&f| Ok((f, compile(&editor.ruleset, f)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut dp = Dataplane::open_or_install(&self.ns)?;
        for &slot in &editor.new_slots {
            dp.maps.zero_counter(slot)?;
        }
        dp.maps.install_ruleset(&images)?;
        self.state.ruleset = editor.ruleset;
        self.store.save(&self.state)
    }

    /// Counters of a chain; zeros where nothing is installed or the chain is not enforced.
    pub fn counters(
        &self,
        dp: Option<&Dataplane>,
        family: Family,
        chain: Chain,
    ) -> Result<ChainCounters> {
        let rules = &self.state.ruleset.family(family).chain(chain).rules;
        let Some(dp) = dp.filter(|_| chain == Chain::Input) else {
            return Ok(ChainCounters {
                policy: Counter::default(),
                rules: vec![Counter::default(); rules.len()],
            });
        };
        Ok(ChainCounters {
            policy: dp.maps.counter(policy_counter(family.index()))?,
            rules: rules
                .iter()
                .map(|r| dp.maps.counter(r.slot))
                .collect::<Result<_>>()?,
        })
    }

    /// `-Z`: zero the counters of one chain (or all) of a family.
    pub fn zero(&mut self, family: Family, chain: Option<Chain>) -> Result<()> {
        let Some(mut dp) = self.dataplane()? else {
            return Ok(());
        };
        for c in Chain::ALL
            .into_iter()
            .filter(|c| chain.is_none_or(|o| o == *c))
        {
            for rule in &self.state.ruleset.family(family).chain(c).rules {
                dp.maps.zero_counter(rule.slot)?;
            }
            if c == Chain::Input {
                dp.maps.zero_counter(policy_counter(family.index()))?;
            }
        }
        Ok(())
    }

    pub fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<()> {
        let ifindex = ifindex(iface)?;
        if self.state.interfaces.iter().any(|a| a.ifindex == ifindex) {
            bail!("{iface} is already attached (fwctl detach {iface} first)");
        }
        // The ruleset must be in the maps before the program sees a packet.
        let mut dp = match self.dataplane()? {
            Some(dp) => dp,
            None => {
                self.commit(Editor::new(self.state.ruleset.clone()))?;
                self.dataplane()?
                    .context("firewall missing right after install")?
            }
        };
        dp.maps.set_ifname(ifindex, iface)?;
        let prog = Xdp::from_pin(dp.program_path(), XdpAttachType::Interface)
            .context("opening the pinned XDP program")?;
        let fd = prog.fd().context("pinned program has no fd")?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(fd));
        attach::attach_pinned(
            raw,
            ifindex,
            mode,
            &attach::link_path(&dp.ns.pin_dir, ifindex),
        )
        .with_context(|| format!("attaching to {iface}"))?;
        self.state.interfaces.push(Attachment {
            name: iface.to_string(),
            ifindex,
            mode,
        });
        self.store.save(&self.state)
    }

    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let Some(pos) = self.state.interfaces.iter().position(|a| a.name == iface) else {
            bail!("{iface} is not attached");
        };
        let att = self.state.interfaces.remove(pos);
        attach::detach_pinned(&attach::link_path(&self.ns.pin_dir, att.ifindex))?;
        if let Some(mut dp) = self.dataplane()? {
            dp.maps.remove_ifname(att.ifindex)?;
        }
        self.store.save(&self.state)
    }

    /// Detaches everything and removes every pin and the state: nothing of fwctl is left
    /// in this namespace.
    pub fn down(self) -> Result<()> {
        remove_pins(&self.ns.pin_dir)?;
        remove_pins(&crate::dataplane::install::scratch_dir(&self.ns.pin_dir))?;
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

pub fn ifindex(iface: &str) -> Result<u32> {
    let c = CString::new(iface).with_context(|| format!("bad interface name {iface:?}"))?;
    // SAFETY: c is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface named {iface} in this network namespace");
    }
    Ok(index)
}
