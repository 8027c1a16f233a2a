//! Compiles the XDP program (firewall-ebpf) for the BPF target with nightly, through
//! aya-build, so `include_bytes_aligned!` can embed it in fwctl.

use anyhow::anyhow;
use aya_build::{Package, Toolchain};

/// The objects `include_bytes_aligned!` embeds (see lib.rs).
const OBJECTS: [&str; 3] = ["firewall-ebpf", "ct-seen", "bench-xdp"];

/// A hash of the sources that turn rules into nftables rules (FWCTL_TRANSLATION_MARK):
/// netfilter/record.rs keeps rules it wrote before only if this build would write them
/// alike, so a build that translates differently writes every rule again.
fn translation_mark() -> anyhow::Result<()> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.join("netfilter"), src.join("rules")];
    while let Some(dir) = dirs.pop() {
        println!("cargo:rerun-if-changed={}", dir.display());
        for entry in std::fs::read_dir(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let name = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        for b in name.bytes().chain(bytes) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=FWCTL_TRANSLATION_MARK={hash:016x}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    translation_mark()?;
    // A folder holding objects another build of this crate made (`cargo xtask fuzz` passes
    // the usual build's): a build that only needs the bytes embedded, such as the parser
    // fuzz targets, need not compile the XDP program again with its own flags.
    println!("cargo:rerun-if-env-changed=FWCTL_PREBUILT_EBPF");
    if let Some(dir) = std::env::var_os("FWCTL_PREBUILT_EBPF") {
        let out = std::path::PathBuf::from(
            std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("cargo set no OUT_DIR"))?,
        );
        for name in OBJECTS {
            let from = std::path::Path::new(&dir).join(name);
            std::fs::copy(&from, out.join(name))
                .map_err(|e| anyhow!("copying {}: {e}", from.display()))?;
            println!("cargo:rerun-if-changed={}", from.display());
        }
        return code_mark();
    }
    // The eBPF crate sits beside this one in the workspace.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("firewall-userspace has no parent directory"))?
        .join("firewall-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    // The program is built from firewall-common too; aya-build only watches its own crate.
    println!("cargo:rerun-if-changed={root}/../firewall-common");
    aya_build::build_ebpf(
        [Package {
            name: "firewall-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::default(),
    )?;
    code_mark()
}

/// FWCTL_CODE_MARK: a hash (FNV-1a) of the embedded XDP object, which names this build's
/// programs in a pin directory (dataplane::install::code_mark). Computed here once rather
/// than over 800 KB at every run.
fn code_mark() -> anyhow::Result<()> {
    let out = std::path::PathBuf::from(
        std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("cargo set no OUT_DIR"))?,
    );
    let path = out.join("firewall-ebpf");
    let object = std::fs::read(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    let hash = object.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    println!("cargo:rustc-env=FWCTL_CODE_MARK={hash:016x}");
    Ok(())
}
