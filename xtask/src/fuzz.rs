//! `cargo xtask fuzz`: tests that look for what nobody wrote a case for.
//!
//! `--differential`: random rulesets and frames judged by iptables itself (the
//! `random_differential` kernel test) with a fresh seed, for as many cases as asked; a
//! failure leaves a replay file in target/fuzz-replays/. `--parsers`: cargo-fuzz (nightly,
//! libFuzzer) on the rule grammar, the iptables-save reader and the ipset-save reader, each
//! for the time asked; a crash leaves its input in fuzz/artifacts/TARGET/. Neither flag: both.

use std::{
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};

use crate::{build, cmd::run, setup};

/// The cargo-fuzz targets (fuzz/fuzz_targets/*.rs), each seeded from fuzz/seeds/TARGET/.
pub const PARSER_TARGETS: &[&str] = &["rule_grammar", "iptables_save", "ipset_save"];

pub struct Options {
    pub differential: bool,
    pub parsers: bool,
    /// Random differential cases.
    pub cases: u64,
    /// Seed of the random differential run; a fresh one when absent.
    pub seed: Option<u64>,
    /// Seconds per parser target.
    pub seconds: u64,
}

pub fn fuzz(opts: Options) -> Result<()> {
    let both = !opts.differential && !opts.parsers;
    setup::ensure()?;
    if opts.parsers || both {
        setup::ensure_cargo_fuzz()?;
        for target in PARSER_TARGETS {
            parser(target, opts.seconds, None)?;
        }
    }
    if opts.differential || both {
        let seed = opts.seed.unwrap_or_else(fresh_seed);
        differential(opts.cases, seed)?;
    }
    Ok(())
}

fn fresh_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
        .unwrap_or(u64::from(std::process::id()))
}

/// The random differential kernel test with `cases` cases from `seed`.
pub fn differential(cases: u64, seed: u64) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the differential run creates network namespaces and loads XDP: run as root");
    }
    let fwctl = build::fwctl()?;
    let root = build::workspace_root();
    let replays = root.join("target/fuzz-replays");
    std::fs::create_dir_all(&replays).with_context(|| format!("creating {}", replays.display()))?;
    eprintln!(
        "[fuzz] random differential: {cases} cases, seed {seed} (FWQ_SEED={seed} repeats it)"
    );
    let result = run(Command::new("cargo")
        .current_dir(&root)
        .env("FWCTL", &fwctl)
        .env("FWQ_CASES", cases.to_string())
        .env("FWQ_SEED", seed.to_string())
        .env("FWQ_REPLAY_DIR", &replays)
        .args([
            "test",
            "-p",
            "tests",
            "--test",
            "random_differential",
            "random_rulesets_count_as_in_iptables",
            "--",
            "--test-threads=1",
            "--nocapture",
        ]));
    match result {
        Ok(()) => {
            eprintln!("[fuzz] random differential: {cases} cases from seed {seed} agree");
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "random differential with seed {seed}: replay files in {}",
            replays.display()
        ))),
    }
}

/// Runs one cargo-fuzz target for `seconds`, from its seeds and the corpus earlier runs grew
/// (target/fuzz-corpus/TARGET, outside the repository). `objects`: see [`cargo_fuzz`].
pub fn parser(target: &str, seconds: u64, objects: Option<&Path>) -> Result<()> {
    let root = build::workspace_root();
    let corpus = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = root.join("fuzz/seeds").join(target);
    if !Path::new(&seeds).is_dir() {
        bail!("no seed corpus {}", seeds.display());
    }
    eprintln!("[fuzz] {target}: {seconds}s");
    run(cargo_fuzz("run", objects)
        .arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=10"))
    .with_context(|| {
        format!("fuzzing {target}: the input that failed is in fuzz/artifacts/{target}/")
    })
}

/// `cargo fuzz build`: every parser target, as [`parser`] runs them (the same flags, so
/// that running one later compiles nothing).
pub fn build_parsers(objects: Option<&Path>) -> Command {
    cargo_fuzz("build", objects)
}

/// `cargo +nightly fuzz SUBCOMMAND` with the flags every parser build and run shares. The
/// parsers need the XDP objects embedded, not rebuilt with the fuzzer's flags: those in
/// `objects`, or the newest a usual build made.
fn cargo_fuzz(subcommand: &str, objects: Option<&Path>) -> Command {
    let root = build::workspace_root();
    let mut cargo = Command::new("cargo");
    if let Some(dir) = objects
        .map(Path::to_path_buf)
        .or_else(|| built_objects(&root))
    {
        cargo.env("FWCTL_PREBUILT_EBPF", dir);
    }
    // Safe Rust: libFuzzer's coverage and debug assertions (overflow checks) find the
    // panics; AddressSanitizer would only slow each run down.
    cargo.current_dir(&root).args([
        "+nightly",
        "fuzz",
        subcommand,
        "--sanitizer",
        "none",
        "--debug-assertions",
    ]);
    cargo
}

/// The folder of the newest XDP object a usual build of firewall-userspace made
/// (target/*/build/firewall-userspace-*/out), if any.
fn built_objects(root: &Path) -> Option<std::path::PathBuf> {
    newest_objects(root, &["debug", "release"])
}

/// The same, of builds with one of `profiles` only.
pub fn newest_objects(root: &Path, profiles: &[&str]) -> Option<std::path::PathBuf> {
    let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    for profile in profiles {
        let Ok(dirs) = std::fs::read_dir(root.join("target").join(profile).join("build")) else {
            continue;
        };
        for dir in dirs.flatten() {
            if !dir
                .file_name()
                .to_string_lossy()
                .starts_with("firewall-userspace-")
            {
                continue;
            }
            let out = dir.path().join("out");
            let objects = ["firewall-ebpf", "ct-seen", "bench-xdp"].map(|n| out.join(n).metadata());
            let [Ok(program), Ok(_), Ok(_)] = objects else {
                continue;
            };
            let Ok(when) = program.modified() else {
                continue;
            };
            if newest.as_ref().is_none_or(|(t, _)| when > *t) {
                newest = Some((when, out));
            }
        }
    }
    newest.map(|(_, dir)| dir)
}
