//! Brings a fresh machine to the point where the eBPF side builds and the tests run.
//!
//! Every step checks first and acts only when something is missing, so running it again
//! costs a few hundred milliseconds and changes nothing.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::cmd::run;

/// Debian packages the tests and the lab use: `ip` for namespaces and veth, `nft` and
/// `iptables` as oracles, `ethtool` to read NIC features, `libclang-dev` for rustables'
/// bindgen (the netfilter table is written through it), `tmux` as the terminal `fwctl top`
/// is tested in, `ipset` as what `fwctl set restore` is benchmarked and compared against,
/// `conntrack` to forget connections between random differential cases, `xdp-tools` for
/// xdp-filter, the XDP peer the flood benchmark runs beside fwctl, `man-db` for the package
/// test's `man -w fwctl`, `zsh` and `fish` for its completion checks.
const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "nftables",
    "iptables",
    "ethtool",
    "libclang-dev",
    "tmux",
    "ipset",
    "conntrack",
    "xdp-tools",
    "man-db",
    "zsh",
    "fish",
];

const BPF_LINKER_VERSION: &str = "0.13";
/// Packs the Debian package (`cargo xtask deb`).
const CARGO_DEB_VERSION: &str = "3.8.0";
/// cargo-fuzz runs the parser fuzz targets (`cargo xtask fuzz --parsers`) on nightly.
const CARGO_FUZZ_VERSION: &str = "0.13";

pub fn setup() -> Result<()> {
    step("Debian packages", ensure_apt_packages)?;
    step("rust-src for the nightly toolchain", ensure_rust_src)?;
    step("bpf-linker against nightly's LLVM", ensure_bpf_linker)?;
    step("cargo-deb", ensure_cargo_deb)?;
    step("fail2ban (not started)", ensure_fail2ban)?;
    eprintln!("[setup] done");
    Ok(())
}

/// True when everything `setup` provides is already there; cheap enough to run before every
/// `xtask run` and `xtask test`.
pub fn is_complete() -> bool {
    missing_apt_packages().is_empty()
        && has_rust_src()
        && bpf_linker_works()
        && cargo_deb_works()
        && installed(FAIL2BAN)
}

fn step(name: &str, f: fn() -> Result<bool>) -> Result<()> {
    eprintln!("[setup] {name}: checking");
    let changed = f().with_context(|| format!("set-up step failed: {name}"))?;
    eprintln!(
        "[setup] {name}: {}",
        if changed {
            "installed"
        } else {
            "already present"
        }
    );
    Ok(())
}

fn installed(pkg: &str) -> bool {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output();
    matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn missing_apt_packages() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| !installed(pkg))
        .collect()
}

/// The fail2ban test runs a private fail2ban-server of its own in a namespace.
const FAIL2BAN: &str = "fail2ban";
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Installs fail2ban without letting its postinst start the system's server (which would
/// ban into the host's iptables): invoke-rc.d asks policy-rc.d, and 101 means "no". One
/// that is already there is left as it is; ours goes once the install is over.
fn ensure_fail2ban() -> Result<bool> {
    if installed(FAIL2BAN) {
        return Ok(false);
    }
    let ours = !Path::new(POLICY_RC_D).exists();
    if ours {
        fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# fwctl's xtask setup: start no service\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        fs::set_permissions(
            POLICY_RC_D,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .with_context(|| format!("making {POLICY_RC_D} executable"))?;
    }
    let result = run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends", FAIL2BAN]));
    if ours {
        fs::remove_file(POLICY_RC_D).with_context(|| format!("removing {POLICY_RC_D}"))?;
    }
    result?;
    Ok(true)
}

fn ensure_apt_packages() -> Result<bool> {
    let missing = missing_apt_packages();
    if missing.is_empty() {
        return Ok(false);
    }
    eprintln!("[setup]   apt-get install {}", missing.join(" "));
    let install = |update_first: bool| -> Result<()> {
        if update_first {
            run(Command::new("apt-get").args(["update", "-q"]))?;
        }
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))
    };
    // The package lists of a fresh image may be stale or absent; refresh only if needed.
    if install(false).is_err() {
        install(true)?;
    }
    Ok(true)
}

fn has_rust_src() -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
        })
        .unwrap_or(false)
}

fn ensure_rust_src() -> Result<bool> {
    if has_rust_src() {
        return Ok(false);
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok(true)
}

fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains(&format!(" {BPF_LINKER_VERSION}."))
        })
        .unwrap_or(false)
}

fn ensure_bpf_linker() -> Result<bool> {
    // The prefix must exist even when bpf-linker is already installed: the binary keeps an
    // rpath into it, and a toolchain update changes the file it must point at.
    let prefix = ensure_llvm_prefix()?;
    if bpf_linker_works() {
        return Ok(false);
    }
    eprintln!(
        "[setup]   cargo install bpf-linker {BPF_LINKER_VERSION} (llvm-22, LLVM_PREFIX={}); about a minute",
        prefix.display()
    );
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--force", "--version"])
        .arg(format!("~{BPF_LINKER_VERSION}"))
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", &prefix)
        // bpf-linker links the LLVM that nightly rustc ships, so it must find it at run time.
        .env(
            "RUSTFLAGS",
            format!("-C link-args=-Wl,-rpath,{}/lib", prefix.display()),
        ))?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but `bpf-linker --version` does not run");
    }
    Ok(true)
}

/// Whether `cmd args` runs and its first line of output satisfies `version`.
fn reports(cmd: &mut Command, version: impl Fn(&str) -> bool) -> bool {
    cmd.output()
        .map(|o| o.status.success() && version(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or(false)
}

/// `cargo install NAME --version REQ` unless `works` already holds, and it must after.
fn cargo_install(name: &str, req: &str, works: fn() -> bool) -> Result<bool> {
    if works() {
        return Ok(false);
    }
    eprintln!("[setup]   cargo install {name} {req}; a few minutes");
    run(Command::new("cargo").args(["install", name, "--locked", "--force", "--version", req]))?;
    if !works() {
        bail!("{name} was installed but does not report version {req}");
    }
    Ok(true)
}

fn cargo_deb_works() -> bool {
    reports(Command::new("cargo-deb").arg("--version"), |v| {
        v == format!("cargo-deb {CARGO_DEB_VERSION}")
    })
}

fn ensure_cargo_deb() -> Result<bool> {
    cargo_install(
        "cargo-deb",
        &format!("={CARGO_DEB_VERSION}"),
        cargo_deb_works,
    )
}

fn cargo_fuzz_works() -> bool {
    reports(
        Command::new("cargo").args(["+nightly", "fuzz", "--version"]),
        |v| v.contains(&format!(" {CARGO_FUZZ_VERSION}.")),
    )
}

/// cargo-fuzz, for the parser fuzz targets (`cargo xtask fuzz`, and briefly `cargo xtask test`).
pub fn ensure_cargo_fuzz() -> Result<bool> {
    cargo_install(
        "cargo-fuzz",
        &format!("~{CARGO_FUZZ_VERSION}"),
        cargo_fuzz_works,
    )
}

/// A folder shaped like an LLVM install (`lib/libLLVM.so` and the soname file) whose files
/// link to the libLLVM that the nightly toolchain ships. It lives beside cargo's own files,
/// not in /tmp, because the bpf-linker binary loads from it at every run.
fn ensure_llvm_prefix() -> Result<PathBuf> {
    let sysroot = String::from_utf8(
        Command::new("rustup")
            .args(["run", "nightly", "rustc", "--print", "sysroot"])
            .output()
            .context("running `rustup run nightly rustc --print sysroot`")?
            .stdout,
    )?;
    let toolchain_lib = Path::new(sysroot.trim()).join("lib");
    let llvm_so = fs::read_dir(&toolchain_lib)
        .with_context(|| format!("reading {}", toolchain_lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.*-rust-* in {}: is the nightly toolchain complete?",
                toolchain_lib.display()
            )
        })?;
    let soname = llvm_so
        .file_name()
        .context("libLLVM path has no file name")?;

    let prefix = cargo_home().join("fwctl-llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        let link = lib.join(name);
        if fs::read_link(&link).ok().as_deref() == Some(llvm_so.as_path()) {
            continue;
        }
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm_so, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), llvm_so.display()))?;
    }
    Ok(prefix)
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

/// Used by `xtask run` and `xtask test`: set up only when something is missing.
pub fn ensure() -> Result<()> {
    if !is_complete() {
        setup()?;
    }
    Ok(())
}
