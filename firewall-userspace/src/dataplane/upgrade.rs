//! Moving a firewall in force to this fwctl's BPF ABI, after a package upgrade.
//!
//! An fwctl built for another ABI cannot read the maps pinned under `fwctl/v<old>/`, so it
//! does not try: it builds an instance of its own under `fwctl/v<ABI>/` from the state
//! file (the canonical record: rules, sets with their members on disk, interfaces, mark
//! bits and the generation in force), with both generations holding the ruleset in force
//! and the recorded one active, so packets it defers meet in netfilter the ruleset it used.
//! Then each link moves to the new programs with one BPF_LINK_UPDATE (the hook never lacks
//! a program; every packet meets the old instance or the new one, each complete), and the
//! old pins go. Killed at any step, the next run finishes the job: an instance already
//! built is used as it is, links already moved are moved again harmlessly. XDP's packet
//! counts restart at zero in the new maps; netfilter's carry over.

use std::{
    fs,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use aya::programs::{SchedClassifier, Xdp};
use aya_obj::programs::XdpAttachType;
use firewall_common::{Config, ABI_VERSION, GENERATIONS};

use super::{
    attach::{pinned_links, relink, LinkKind},
    capacity::Capacity,
    install::{load_and_pin, scratch_dir, PROGRAM_NAME, TC_PROGRAM_NAME},
    namespace::{ensure_bpffs, Namespace},
};
use crate::compile::Image;

/// Pin directories of this network namespace made by fwctl builds of another ABI (the
/// instance, and an interrupted resize's scratch beside it), with their ABI versions.
pub fn older_instances(ns: &Namespace) -> Vec<(u32, PathBuf)> {
    let Some(name) = ns.pin_dir.file_name() else {
        return Vec::new();
    };
    let Some(versions) = ns.pin_dir.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(versions) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let dir_name = e.file_name();
        let Some(abi) = dir_name
            .to_str()
            .and_then(|n| n.strip_prefix('v'))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if abi == ABI_VERSION {
            continue;
        }
        for dir in [e.path().join(name), scratch_dir(&e.path().join(name))] {
            if dir.exists() {
                out.push((abi, dir));
            }
        }
    }
    out
}

/// Builds this ABI's instance at `ns.pin_dir` (assembled in the scratch directory, then
/// renamed into place): every generation holds `image`, `config` says which is active,
/// `fill` loads the sets. Nothing is attached to it yet.
pub fn build(
    ns: &Namespace,
    capacity: Capacity,
    image: &Image,
    config: Config,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    ensure_bpffs()?;
    let parent = ns.pin_dir.parent().context("pin directory has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let scratch = scratch_dir(&ns.pin_dir);
    let (_ebpf, mut maps) = load_and_pin(&scratch, capacity)?;
    fill(&scratch)?;
    for generation in 0..GENERATIONS {
        maps.write_generation(generation, image)?;
    }
    maps.set_config(config)?;
    fs::rename(&scratch, &ns.pin_dir)
        .with_context(|| format!("moving {} to {}", scratch.display(), ns.pin_dir.display()))
}

/// Points every link pinned in `old` at this instance's programs and pins it here too (a
/// link moved by an interrupted run is pinned here already); returns how many.
pub fn move_links(old: &Path, ns: &Namespace) -> Result<usize> {
    let xdp = Xdp::from_pin(ns.pin_dir.join(PROGRAM_NAME), XdpAttachType::Interface)
        .context("opening the pinned XDP program")?;
    let tc = SchedClassifier::from_pin(ns.pin_dir.join(TC_PROGRAM_NAME))
        .context("opening the pinned TC program")?;
    let links = pinned_links(old)?;
    for (name, kind) in &links {
        let prog = match kind {
            LinkKind::Xdp => xdp.fd()?.as_fd(),
            LinkKind::Tcx => tc.fd()?.as_fd(),
        };
        let here = ns.pin_dir.join(name);
        let also = (!here.exists()).then_some(here.as_path());
        relink(&old.join(name), prog, also)?;
    }
    Ok(links.len())
}
