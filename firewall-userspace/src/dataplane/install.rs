//! Loading the XDP and TC programs and pinning them with their maps, once per network
//! namespace.

use std::{fs, path::Path};

use anyhow::{Context, Result};
use aya::{
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use firewall_common::{
    Config, CT_MODE_FAKE, CT_MODE_KERNEL, CT_MODE_OFF, DEFAULT_MARK_SHIFT, GENERATIONS,
    MAP_COUNTERS, MAP_ENTRIES, MAP_POOL,
};

use super::{
    capacity::Capacity,
    kfunc::{conntrack_support, patch_kfunc_calls, Kfuncs},
    maps::Maps,
    maps::{MAP_NAMES, SET_MAP_NAMES},
    namespace::Namespace,
};

/// Name of the XDP program in the object file and of its pin.
pub const PROGRAM_NAME: &str = "fw_ingress";
/// Name of the TC program (XDP's verdict into skb->mark) in the object file and of its pin.
pub const TC_PROGRAM_NAME: &str = "fw_mark";

/// FW_CONFIG of a fresh install; each commit then writes the state's mark bits.
pub fn initial_config() -> Config {
    Config {
        mark_shift: DEFAULT_MARK_SHIFT,
        ..Config::default()
    }
}

/// The pinned firewall of one network namespace.
pub struct Dataplane {
    pub ns: Namespace,
    pub maps: Maps,
}

/// Where the XDP program learns a packet's conntrack state from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtLookup {
    /// The kernel's conntrack table, if vmlinux BTF has the conntrack kfuncs; else none.
    Auto,
    /// The kernel's conntrack table, or an error saying why not: for tests, which must not
    /// pass on a kernel where `Auto` would quietly have judged without it.
    Kernel,
    /// None: every rule on conntrack state is left to netfilter (as on a kernel without
    /// the kfuncs).
    Off,
    /// Test fixtures only: lookups pretend to return `Config::fake_ct_lookup`.
    Fake,
}

/// Loads the embedded object with maps of `capacity`, with conntrack lookups where the
/// kernel offers them.
pub fn load_object(capacity: Capacity) -> Result<Ebpf> {
    load_object_with(CtLookup::Auto, capacity)
}

/// Loads the embedded object with maps of `capacity`. Errors here are the "no BPF" errors
/// an operator sees, so they say what is missing.
pub fn load_object_with(ct: CtLookup, capacity: Capacity) -> Result<Ebpf> {
    let (mode, status_offset, kfuncs) = match ct {
        CtLookup::Auto | CtLookup::Kernel => {
            let support = std::fs::read("/sys/kernel/btf/vmlinux")
                .context("reading /sys/kernel/btf/vmlinux")
                .and_then(|btf| conntrack_support(&btf));
            match support {
                Ok(ct) => (CT_MODE_KERNEL, ct.status_offset, Kfuncs::Ids(ct.kfuncs)),
                Err(e) if ct == CtLookup::Kernel => {
                    return Err(e.context("conntrack lookups at XDP were required"));
                }
                Err(e) => {
                    log::info!(
                        "no conntrack lookups at XDP, rules on conntrack state go to netfilter: {e:#}"
                    );
                    (CT_MODE_OFF, 0, Kfuncs::Stubbed)
                }
            }
        }
        CtLookup::Off => (CT_MODE_OFF, 0, Kfuncs::Stubbed),
        CtLookup::Fake => (CT_MODE_FAKE, 0, Kfuncs::Stubbed),
    };
    // u64 words: the ELF parser wants its headers aligned, as include_bytes_aligned! gives.
    let len = crate::PROGRAM.len();
    let mut words = vec![0u64; len.div_ceil(8)];
    let elf = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len];
    elf.copy_from_slice(crate::PROGRAM);
    patch_kfunc_calls(elf, &kfuncs).context("preparing the conntrack kfunc calls")?;
    let mut ebpf = EbpfLoader::new()
        .override_global("CT_MODE", &mode, true)
        .override_global("NF_CONN_STATUS", &status_offset, true)
        .map_max_entries(MAP_POOL, GENERATIONS * capacity.pool_words)
        .map_max_entries(MAP_ENTRIES, GENERATIONS * capacity.entries)
        .map_max_entries(MAP_COUNTERS, capacity.counters)
        .load(elf)
        .context(
            "cannot load fwctl's BPF object: is BPF available here (root or CAP_BPF, a kernel with BTF)?",
        )?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .context("the BPF object has no fw_ingress program")?
        .try_into()
        .context("fw_ingress is not an XDP program")?;
    prog.load()
        .context("the kernel refused the XDP program (verifier or missing BPF support)")?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(TC_PROGRAM_NAME)
        .context("the BPF object has no fw_mark program")?
        .try_into()
        .context("fw_mark is not a TC program")?;
    tc.load()
        .context("the kernel refused the TC program (verifier or missing BPF support)")?;
    Ok(ebpf)
}

impl Dataplane {
    /// The namespace's firewall if it was installed.
    pub fn open(ns: &Namespace) -> Result<Option<Dataplane>> {
        if !Dataplane::installed(ns) {
            return Ok(None);
        }
        Ok(Some(Dataplane {
            ns: ns.clone(),
            maps: Maps::from_pins(&ns.pin_dir)?,
        }))
    }

    /// Whether the namespace's firewall is pinned (its program is, last of an install).
    pub fn installed(ns: &Namespace) -> bool {
        ns.pin_dir.join(PROGRAM_NAME).exists()
    }

    /// Opens the namespace's firewall, loading and pinning it first if needed, with maps of
    /// `capacity`.
    ///
    /// A new install starts with empty rulesets and ACCEPT policies in generation 0, as
    /// iptables starts; nothing is attached yet, so no packet sees it before the caller
    /// writes the operator's ruleset. Pins are made in a scratch directory renamed into
    /// place, so a crash mid-install never leaves a half-pinned firewall to be opened.
    pub fn open_or_install(ns: &Namespace, capacity: Capacity) -> Result<Dataplane> {
        if let Some(dp) = Dataplane::open(ns)? {
            return Ok(dp);
        }
        super::namespace::ensure_bpffs()?;
        let parent = ns.pin_dir.parent().context("pin directory has no parent")?;
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let scratch = scratch_dir(&ns.pin_dir);
        let (_ebpf, mut maps) = load_and_pin(&scratch, capacity)?;
        maps.set_config(initial_config())?;
        maps.install(
            &crate::compile::compile(&crate::rules::Ruleset::default(), &[])?,
            |_| Ok(()),
        )?;
        fs::rename(&scratch, &ns.pin_dir)
            .with_context(|| format!("moving {} to {}", scratch.display(), ns.pin_dir.display()))?;
        Dataplane::open(ns)?.context("the firewall vanished right after it was installed")
    }

    /// Bytes of kernel memory the pinned maps hold (the kernel's `memlock` figure), per map,
    /// largest first.
    pub fn map_memory(&self) -> Result<Vec<(String, u64)>> {
        use std::os::fd::AsFd;
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.ns.pin_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("FW_") {
                continue;
            }
            let map = aya::maps::MapData::from_pin(entry.path())
                .with_context(|| format!("opening pinned map {name}"))?;
            out.push((name, map_memlock(map.fd().as_fd())?));
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.1));
        Ok(out)
    }

    /// Whether the pinned programs are this fwctl build's (see [`code_mark`]).
    pub fn runs_this_build(&self) -> bool {
        self.ns.pin_dir.join(code_mark()).is_dir()
    }

    pub fn program_path(&self) -> std::path::PathBuf {
        self.ns.pin_dir.join(PROGRAM_NAME)
    }

    pub fn tc_program_path(&self) -> std::path::PathBuf {
        self.ns.pin_dir.join(TC_PROGRAM_NAME)
    }
}

/// The mark, in a pin directory, of the build whose programs it holds: a directory (bpffs
/// takes those, not files) named after a hash (FNV-1a) of the embedded object. An upgrade
/// that keeps the ABI finds another build's mark, or none, and moves the firewall onto
/// its own programs at the next change. The hash is the build script's (FWCTL_CODE_MARK).
pub fn code_mark() -> &'static str {
    concat!("code-", env!("FWCTL_CODE_MARK"))
}

/// Loads the programs with maps of `capacity` and pins them all in `dir`, made afresh.
pub fn load_and_pin(dir: &Path, capacity: Capacity) -> Result<(Ebpf, Maps)> {
    remove_pins(dir)?;
    fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mark = dir.join(code_mark());
    fs::create_dir(&mark).with_context(|| format!("creating {}", mark.display()))?;
    let mut ebpf = load_object(capacity)?;
    for name in MAP_NAMES
        .iter()
        .chain(&SET_MAP_NAMES)
        .chain(&[firewall_common::MAP_CT_SEEN])
    {
        let map = ebpf
            .map(name)
            .with_context(|| format!("object has no map {name}"))?;
        map.pin(dir.join(name))
            .with_context(|| format!("pinning map {name}"))?;
    }
    let maps = Maps::from_source(|name| {
        ebpf.take_map(name)
            .with_context(|| format!("object has no map {name}"))
    })?;
    for name in [PROGRAM_NAME, TC_PROGRAM_NAME] {
        ebpf.program_mut(name)
            .with_context(|| format!("object has no program {name}"))?
            .pin(dir.join(name))
            .with_context(|| format!("pinning program {name}"))?;
    }
    Ok((ebpf, maps))
}

/// Bytes of kernel memory a map holds: the kernel's `memlock` figure for its fd.
pub fn map_memlock(fd: std::os::fd::BorrowedFd) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .context("reading a map's fdinfo")?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Removes a pin directory and everything in it: unpinning a link detaches it, unpinning the
/// program and maps frees them once nothing else holds them.
pub fn remove_pins(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Where an install is assembled before being renamed into place. bpffs refuses names with
/// dots, hence no extension.
pub fn scratch_dir(pin_dir: &Path) -> std::path::PathBuf {
    let mut name = pin_dir.file_name().unwrap_or_default().to_os_string();
    name.push("-new");
    pin_dir.with_file_name(name)
}
