//! Project tasks: set-up of a fresh machine, the lab (`run`), the tests.

mod background;
mod bench;
mod build;
mod cmd;
mod deb;
mod fuzz;
mod lab;
mod setup;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "fwctl's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent): Debian packages, rust-src for
    /// nightly, bpf-linker linked against nightly's LLVM, cargo-fuzz.
    Setup,
    /// Build and show the firewall at work on a lab of network namespaces (or, with
    /// --iface, on a real interface until Ctrl-C).
    Run {
        /// Stop (and remove the lab) after this many seconds instead of at Ctrl-C.
        #[arg(long)]
        duration: Option<u64>,
        /// Attach to this interface of the current namespace instead of building a lab.
        #[arg(long)]
        iface: Option<String>,
        /// XDP mode: native (in the driver) or generic.
        #[arg(long, default_value = "native")]
        mode: String,
    },
    /// Benchmarks (release, as root): the classifier's per-packet cost against the rule
    /// count, the flood drop rate against a bare XDP_DROP, the update cost, and a service
    /// under a SYN flood; tables and SVG charts in target/bench/.
    Bench,
    /// Build the Debian package target/debian/fwctl_<version>_amd64.deb (cargo-deb): the
    /// binary, man page, completions, systemd units, /etc/fwctl/fwctl.conf.
    Deb {
        /// The package's version instead of the workspace's.
        #[arg(long)]
        version: Option<String>,
        /// Add N to the BPF ABI version (a test's second build); the package goes to
        /// target/debian-abi-bump-N/.
        #[arg(long, value_name = "N")]
        abi_bump: Option<u32>,
    },
    /// Run every test: unit tests, then the kernel tests one at a time (needs root).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
    /// Look for bugs nobody wrote a case for: random rulesets judged by iptables itself
    /// (--differential, as root) and cargo-fuzz on the parsers (--parsers); both without
    /// either flag.
    Fuzz {
        /// Random rulesets and frames in twin namespaces, iptables against fwctl.
        #[arg(long)]
        differential: bool,
        /// The rule grammar, the iptables-save reader and the ipset-save reader.
        #[arg(long)]
        parsers: bool,
        /// Random differential cases.
        #[arg(long, default_value_t = 200)]
        cases: u64,
        /// Seed of the random differential run (default: a fresh one, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds per parser target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
        Task::Run {
            duration,
            iface,
            mode,
        } => lab::run(lab::Options {
            duration,
            iface,
            mode,
        }),
        Task::Test { filter } => test::test(filter),
        Task::Bench => bench::bench(),
        Task::Fuzz {
            differential,
            parsers,
            cases,
            seed,
            seconds,
        } => fuzz::fuzz(fuzz::Options {
            differential,
            parsers,
            cases,
            seed,
            seconds,
        }),
        Task::Deb { version, abi_bump } => deb::deb(deb::Options { version, abi_bump }),
    }
}
