//! Compiles the XDP program (firewall-ebpf) for the BPF target with nightly, through
//! aya-build, so `include_bytes_aligned!` can embed it in fwctl.

use anyhow::anyhow;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
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
    )
}
