//! The `fwctl` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    fwctl::cli::main()
}
