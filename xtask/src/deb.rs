//! `cargo xtask deb`: the Debian package, target/debian/fwctl_<version>_amd64.deb.
//!
//! cargo-deb packs; what it packs besides the binary is generated here from that very
//! binary (the man page and completions from its clap definitions, the units with its
//! installed path), so the package never documents another build than the one it holds.

use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::{build::workspace_root, cmd::run, setup};

/// Where the package puts the binary; the units' ExecStart= must name it.
const SBIN_FWCTL: &str = "/usr/sbin/fwctl";
const UNITS: [&str; 3] = [
    "fwctl.service",
    "fwctl-watch.service",
    "fwctl-exporter.service",
];

pub struct Options {
    /// The package's version instead of the workspace's (a test's second build).
    pub version: Option<String>,
    /// Adds this to the BPF ABI version (FWCTL_ABI_BUMP), for the upgrade test's second
    /// build, packed into target/debian-abi-bump-N/. Built in the usual target directory:
    /// only the crates that read the variable are compiled again (cargo tracks it), not
    /// every dependency, and they are again at the next build without it.
    pub abi_bump: Option<u32>,
}

pub fn deb(opts: Options) -> Result<()> {
    setup::ensure()?;
    let root = workspace_root();
    let target = root.join("target");
    // Both cargo and cargo-deb read these.
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("FWCTL_ABI_BUMP")
            .args(args);
        if let Some(n) = opts.abi_bump {
            cmd.env("FWCTL_ABI_BUMP", n.to_string());
        }
        cmd
    };
    eprintln!("[deb] cargo build --release -p firewall-userspace");
    run(&mut cargo(&[
        "build",
        "--release",
        "-p",
        "firewall-userspace",
    ]))?;
    let release = target.join("release");
    let fwctl = release.join("fwctl");
    let assets = release.join("deb-assets");
    fs::create_dir_all(&assets).with_context(|| format!("creating {}", assets.display()))?;

    generate(&fwctl, &["manpage"], &assets.join("fwctl.8"))?;
    // Debian wants man pages gzipped; cargo-deb compresses only assets it did not build.
    run(Command::new("gzip")
        .args(["-9", "-n", "-f"])
        .arg(assets.join("fwctl.8")))?;
    for (shell, file) in [
        ("bash", "fwctl.bash"),
        ("zsh", "_fwctl"),
        ("fish", "fwctl.fish"),
    ] {
        generate(&fwctl, &["completions", shell], &assets.join(file))?;
    }
    for unit in UNITS {
        let source = root.join("packaging").join(unit);
        let text =
            fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
        write(&assets.join(unit), &packaged_unit(&text)?)?;
    }

    eprintln!("[deb] cargo deb -p firewall-userspace --no-build");
    // cargo-deb clears the folder of the package's other versions: each build its own.
    let out_dir = match opts.abi_bump {
        Some(n) => target.join(format!("debian-abi-bump-{n}")),
        None => target.join("debian"),
    };
    let out_dir = out_dir.to_str().context("non-UTF-8 target path")?;
    let mut cmd = cargo(&[
        "deb",
        "-p",
        "firewall-userspace",
        "--no-build",
        "--output",
        out_dir,
    ]);
    if let Some(v) = &opts.version {
        cmd.args(["--deb-version", v]);
    }
    run(&mut cmd)?;
    Ok(())
}

/// A unit as `fwctl install-service` writes it, pointed at the packaged binary and docs.
fn packaged_unit(text: &str) -> Result<String> {
    if !text.contains("@FWCTL@") {
        bail!("a unit in packaging/ has no @FWCTL@ to replace with {SBIN_FWCTL}");
    }
    Ok(text.replace("@FWCTL@", SBIN_FWCTL).replace(
        "Documentation=file:///usr/local/share/doc/fwctl/",
        "Documentation=man:fwctl(8) file:///usr/share/doc/fwctl/",
    ))
}

/// Runs `fwctl ARGS` and keeps its standard output in `out`.
fn generate(fwctl: &Path, args: &[&str], out: &Path) -> Result<()> {
    let output = Command::new(fwctl)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", fwctl.display(), args.join(" ")))?;
    if !output.status.success() || output.stdout.is_empty() {
        bail!(
            "{} {} failed: {}",
            fwctl.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    write(out, &String::from_utf8(output.stdout).context("not UTF-8")?)
}

/// Written beside and renamed over, so a killed build never leaves half a file to pack.
fn write(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn units_point_at_the_packaged_binary() {
        let unit =
            "Documentation=file:///usr/local/share/doc/fwctl/README.md\nExecStart=@FWCTL@ boot\n";
        let out = super::packaged_unit(unit).unwrap();
        assert!(out.contains("ExecStart=/usr/sbin/fwctl boot"));
        assert!(out.contains("man:fwctl(8) file:///usr/share/doc/fwctl/README.md"));
        assert!(super::packaged_unit("ExecStart=/bin/true").is_err());
    }
}
