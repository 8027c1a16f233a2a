//! `cargo xtask test`: unit tests (in parallel), then the kernel tests (one at a time, as
//! root: they share the host's bpffs and create network namespaces; among them a
//! fixed-seed random differential run against iptables), the package test last, then each
//! parser fuzz target for a few seconds from its seeds (`cargo xtask fuzz --parsers` runs
//! them longer). The packages and the fuzz targets build in the background meanwhile.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::{background::Background, build, cmd::run, fuzz, setup};

/// Seconds per parser fuzz target in `cargo xtask test`: enough to replay the seeds (every
/// `found-*` input among them) and the corpus earlier runs grew, and to try some mutations,
/// while the whole step stays well under a minute.
const FUZZ_SECONDS: u64 = 10;

pub fn test(filter: Option<String>) -> Result<()> {
    let start = Instant::now();
    setup::ensure()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the kernel tests load XDP programs and create network namespaces: run as root");
    }
    let fwctl = build::fwctl()?;
    let root = build::workspace_root();
    // A whole run builds what its last steps need (the packages the package test installs,
    // the fuzz targets) in the background while the other tests run.
    let late = match filter {
        None => Some(LateBuilds::start(&root)?),
        Some(_) => None,
    };

    eprintln!("[test] unit tests");
    let mut unit = Command::new("cargo");
    unit.current_dir(&root).args([
        "test",
        "--workspace",
        "--exclude",
        "firewall-ebpf",
        "--exclude",
        "tests",
    ]);
    if let Some(f) = &filter {
        unit.arg(f);
    }
    run(&mut unit)?;

    eprintln!("[test] kernel tests (BPF_PROG_TEST_RUN fixtures, end to end in namespaces)");
    let kernel = |args: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root)
            .env("FWCTL", &fwctl)
            .args(["test", "-p", "tests"])
            .args(args);
        cmd
    };
    let Some(late) = late else {
        let f = filter.as_deref().unwrap_or_default();
        run(&mut kernel(&[f, "--", "--test-threads=1"]))?;
        eprintln!("[test] passed in {:.1}s", start.elapsed().as_secs_f64());
        return Ok(());
    };
    let mut first = vec!["--lib".to_string(), "--bins".to_string()];
    for name in kernel_test_files(&root)? {
        if name != PACKAGE_TEST {
            first.extend(["--test".to_string(), name]);
        }
    }
    first.extend(["--".to_string(), "--test-threads=1".to_string()]);
    run(&mut kernel(
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
    ))?;

    late.packages.finish()?;
    let (old, next) = (
        only_deb(&root.join(KEPT_DEBS).join("first"))?,
        only_deb(&root.join(KEPT_DEBS).join("next"))?,
    );
    run(kernel(&["--test", PACKAGE_TEST, "--", "--test-threads=1"])
        .env("FWCTL_DEB", old)
        .env("FWCTL_DEB_NEXT", next))?;

    late.fuzz.finish()?;
    eprintln!("[test] parser fuzzing, {FUZZ_SECONDS}s per target");
    for target in fuzz::PARSER_TARGETS {
        fuzz::parser(target, FUZZ_SECONDS, late.objects.as_deref())?;
    }
    eprintln!("[test] all passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The kernel test that installs packages: it runs once they are built.
const PACKAGE_TEST: &str = "package";
/// The package test's second build, as tests/tests/package.rs expects it.
const NEXT_VERSION: &str = "0.1.1";
/// Where the background build keeps both packages for the package test.
const KEPT_DEBS: &str = "target/xtask-debs";

/// The background builds of a whole run, and the XDP objects the fuzz build embeds (the
/// dev build's, chosen once so that the fuzz build and the runs agree on them).
struct LateBuilds {
    packages: Background,
    fuzz: Background,
    objects: Option<PathBuf>,
}

impl LateBuilds {
    fn start(root: &Path) -> Result<LateBuilds> {
        setup::ensure_cargo_fuzz()?;
        let xtask = std::env::current_exe().context("the xtask binary's path")?;
        let deb = |args: &[&str]| {
            let mut cmd = Command::new(&xtask);
            cmd.current_dir(root).arg("deb").args(args);
            cmd
        };
        let logs = root.join("target/xtask-logs");
        // cargo-deb clears every build's packages but its own: each is kept aside at once.
        let keep = |from: &str, to: &Path| {
            let mut cmd = Command::new("sh");
            cmd.current_dir(root).arg("-c").arg(format!(
                "rm -rf '{to}' && mkdir -p '{to}' && cp {from}/*.deb '{to}/'",
                to = to.display()
            ));
            cmd
        };
        let packages = Background::start(
            "the packages for the package test",
            &logs.join("deb.log"),
            vec![
                deb(&[]),
                keep("target/debian", &root.join(KEPT_DEBS).join("first")),
                deb(&["--version", NEXT_VERSION, "--abi-bump", "1"]),
                keep(
                    "target/debian-abi-bump-1",
                    &root.join(KEPT_DEBS).join("next"),
                ),
            ],
        )?;
        let objects = fuzz::newest_objects(root, &["debug"]);
        let fuzz = Background::start(
            "the parser fuzz targets",
            &logs.join("fuzz-build.log"),
            vec![fuzz::build_parsers(objects.as_deref())],
        )?;
        Ok(LateBuilds {
            packages,
            fuzz,
            objects,
        })
    }
}

/// The kernel test files (tests/tests/*.rs), by name.
fn kernel_test_files(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("tests/tests");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The one package in `dir`.
fn only_deb(dir: &Path) -> Result<PathBuf> {
    let debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    match debs.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one package in {}, found {debs:?}", dir.display()),
    }
}
