//! Project tasks: set-up of a fresh machine, the lab (`run`), the tests and the benchmarks.

mod cmd;
mod setup;

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
    /// nightly, bpf-linker linked against nightly's LLVM.
    Setup,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
    }
}
