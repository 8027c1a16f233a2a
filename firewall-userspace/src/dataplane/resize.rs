//! Moving a namespace's firewall to maps of another size. A map cannot be resized, so a
//! ruleset that outgrows its maps (or shrinks far below them) gets a new instance of the
//! programs with maps of the right size, built beside the old one, then swapped in.
//!
//! Never failing open: every interface is judged by the old instance or the new one, each
//! holding a complete ruleset, at every moment of the swap and after a crash at any point.
//! The new instance is assembled in the scratch directory (a crash there leaves the old
//! one untouched); each link moves to the new programs with one BPF_LINK_UPDATE (the hook
//! never lacks a program); one rename exchanges the directories. A scratch directory found
//! beside an installed firewall is the trace of an interrupted swap: [`repair`] points
//! every link at the installed programs, whichever they were, and removes it.

use std::{os::fd::AsFd, path::Path};

use anyhow::{Context, Result};
use aya::programs::{ProgramFd, SchedClassifier, Xdp};
use aya_obj::programs::XdpAttachType;
use firewall_common::GENERATIONS;

use super::{
    attach::{pinned_links, relink, LinkKind},
    capacity::Capacity,
    install::{load_and_pin, remove_pins, scratch_dir, PROGRAM_NAME, TC_PROGRAM_NAME},
    namespace::Namespace,
    Dataplane,
};
use crate::compile::Image;

impl Dataplane {
    /// Installs `image` in a new instance with maps of `capacity` and puts that instance in
    /// force on every attached interface; returns the generation `image` went into, as
    /// [`Maps::install`] does. The new instance is a copy of the old one first (`in_force`,
    /// the compiled ruleset in force, in the active generation; the counters of `slots` and
    /// the reason counts), so a caller that must go back to the previous generation after
    /// this returns can, as after an install in place. `fill` gets the new instance's pin
    /// directory to load what the ruleset does not carry (sets). `before_flip` runs once the new
    /// generation is written, before any packet can meet it.
    pub fn resize(
        &mut self,
        capacity: Capacity,
        in_force: &Image,
        image: &Image,
        slots: impl IntoIterator<Item = u32>,
        fill: impl FnOnce(&Path) -> Result<()>,
        before_flip: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        self.swap_in(capacity, in_force, image, slots, fill, before_flip)
            // Every link back on the instance in place, as the next run would do.
            .map_err(|e| match repair(&self.ns) {
                Ok(()) => e,
                Err(undo) => e.context(format!("and moving the links back failed: {undo:#}")),
            })
    }

    /// [`Dataplane::resize`] up to the first error, which leaves the scratch directory
    /// and maybe some links on its programs.
    fn swap_in(
        &mut self,
        capacity: Capacity,
        in_force: &Image,
        image: &Image,
        slots: impl IntoIterator<Item = u32>,
        fill: impl FnOnce(&Path) -> Result<()>,
        before_flip: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        let pin_dir = self.ns.pin_dir.clone();
        let scratch = scratch_dir(&pin_dir);
        let (ebpf, mut maps) = load_and_pin(&scratch, capacity)?;
        // Maps that do not follow the ruleset (the sets' tries) start empty: filled from
        // what they hold in the instance in place, before any packet can reach this one.
        fill(&scratch)?;
        let config = self.maps.config()?;
        maps.set_config(config)?;
        maps.write_generation(config.active % GENERATIONS, in_force)?;
        let copied = self.maps.copy_counters_to(&mut maps, slots)?;
        // Nothing runs the new programs yet: this flip only chooses what they will judge by.
        let next = maps.install(image, before_flip)?;
        let program = |name: &str| -> Result<&ProgramFd> {
            let prog = ebpf
                .program(name)
                .with_context(|| format!("object has no {name}"))?;
            Ok(prog.fd()?)
        };
        let (xdp, tc) = (
            program(PROGRAM_NAME)?.as_fd(),
            program(TC_PROGRAM_NAME)?.as_fd(),
        );
        for (name, kind) in pinned_links(&pin_dir)? {
            let prog = match kind {
                LinkKind::Xdp => xdp,
                LinkKind::Tcx => tc,
            };
            relink(&pin_dir.join(&name), prog, Some(&scratch.join(&name)))?;
        }
        crate::fault_point("relinked");
        // What the old programs counted until their links moved.
        self.maps.add_counters_since(&mut maps, &copied)?;
        exchange(&scratch, &pin_dir)?;
        // The old instance; if this fails, the next run's repair removes it.
        if let Err(e) = remove_pins(&scratch) {
            log::warn!("{e:#}");
        }
        self.maps = maps;
        Ok(next)
    }
}

/// Finishes or undoes an interrupted [`Dataplane::resize`]: see the module's comment. Run
/// under the namespace's lock, before anything reads or writes the maps.
pub fn repair(ns: &Namespace) -> Result<()> {
    let scratch = scratch_dir(&ns.pin_dir);
    if !scratch.exists() || !Dataplane::installed(ns) {
        // No scratch, or an interrupted first install, which installing again clears.
        return Ok(());
    }
    log::warn!(
        "an interrupted change of map sizes left {}: moving every link back to {}",
        scratch.display(),
        ns.pin_dir.display()
    );
    let xdp = Xdp::from_pin(ns.pin_dir.join(PROGRAM_NAME), XdpAttachType::Interface)
        .context("opening the pinned XDP program")?;
    let tc = SchedClassifier::from_pin(ns.pin_dir.join(TC_PROGRAM_NAME))
        .context("opening the pinned TC program")?;
    for (name, kind) in pinned_links(&ns.pin_dir)? {
        let prog = match kind {
            LinkKind::Xdp => xdp.fd()?.as_fd(),
            LinkKind::Tcx => tc.fd()?.as_fd(),
        };
        relink(&ns.pin_dir.join(name), prog, None)?;
    }
    remove_pins(&scratch)
}

/// Swaps two directories in one step (renameat2 RENAME_EXCHANGE, which bpffs supports).
pub(crate) fn exchange(a: &Path, b: &Path) -> Result<()> {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes());
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("exchanging {} and {}", a.display(), b.display()));
    }
    Ok(())
}
