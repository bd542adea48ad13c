use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    confirm_proxy::cli::run(confirm_proxy::cli::Cli::parse())
}
