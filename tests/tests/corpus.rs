//! Real rulesets, as their authors published them (tests/corpus/SOURCES.md: 51 rules.v4
//! files from 48 public repositories, each with its licence). Every file real iptables
//! loads must load with `fwctl restore`, in force, with XDP attached; every file iptables
//! refuses, fwctl refuses too. iptables decides here, on this machine, not a list: a file
//! its restore takes is one fwctl must take, but for the few `NOT_YET` names, with why.

use std::path::{Path, PathBuf};

use netlab::Netns;
use tests::{twins::run_in, Lab, HOST_IF};

/// Files fwctl does not load yet, each with the words of its refusal. A file here that
/// loads fails the test: take it off the list.
const NOT_YET: &[(&str, &str)] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(folder))
        .expect("corpus folder")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    files.sort();
    files
}

/// The ipset sets the corpus files name (tests/corpus/sets.txt: `FILE SET TYPE ...`).
fn sets() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(corpus_dir().join("sets.txt")).expect("sets.txt");
    text.lines()
        .flat_map(|line| {
            let words: Vec<&str> = line.split_whitespace().skip(1).collect();
            words
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `iptables-restore --test` takes the file, in `ns` (which has the sets).
fn iptables_takes(ns: &Netns, file: &Path) -> bool {
    ns.command("iptables-restore")
        .arg("--test")
        .arg(file)
        .output()
        .expect("iptables-restore (installed by cargo xtask setup)")
        .status
        .success()
}

#[test]
fn published_rulesets_load_wherever_iptables_loads_them() {
    let ipt = Netns::new("fwc-ipt").expect("iptables namespace");
    let lab = Lab::named("fwc").expect("lab");
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    for (name, kind) in sets() {
        run_in(&ipt, "ipset", &["create", &name, &kind]);
        lab.host.fwctl_ok(&["set", "create", &name, &kind]);
    }
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    let mut not_yet = 0;
    for file in files("rules-v4") {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if !iptables_takes(&ipt, &file) {
            eprintln!("{name}: iptables-restore refuses it on this machine; not a test of fwctl");
            continue;
        }
        let out = lab.host.fwctl(&["restore", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match (
            out.status.success(),
            NOT_YET.iter().find(|(n, _)| *n == name),
        ) {
            (true, None) => loaded.push(name),
            (true, Some(_)) => failures.push(format!("{name} loads now: take it off NOT_YET")),
            (false, Some((_, why))) if stderr.contains(why) => not_yet += 1,
            (false, _) => failures.push(format!("{name}: {stderr}")),
        }
    }
    eprintln!(
        "corpus: fwctl loaded {} files iptables loads, {not_yet} not yet (NOT_YET), {} otherwise refused",
        loaded.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "fwctl refused {} of {} rulesets iptables loads:\n{}",
        failures.len(),
        failures.len() + loaded.len(),
        failures.join("\n")
    );
    // The corpus is what it says: a test that loaded a handful would prove little.
    assert!(loaded.len() >= 45, "only {} files loaded", loaded.len());
}

#[test]
fn published_rulesets_iptables_refuses_are_refused() {
    let ipt = Netns::new("fwc-ref-ipt").expect("iptables namespace");
    let host = tests::FwNs::new("fwc-ref").expect("fwctl namespace");
    for file in files("rules-v4-refused") {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if iptables_takes(&ipt, &file) {
            eprintln!("{name}: iptables-restore takes it on this machine; skipped");
            continue;
        }
        let out = host.fwctl(&["restore", file.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "{name}: iptables refuses it, fwctl took it"
        );
        assert!(
            host.fwctl_ok(&["save"])
                .lines()
                .all(|l| !l.starts_with("-A")),
            "{name}: a refused file left rules in force"
        );
    }
}
