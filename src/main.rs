use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match confirm_proxy::cli::Cli::try_parse() {
        Ok(cli) => confirm_proxy::cli::run(cli),
        Err(e) => match confirm_proxy::cli::refused_as_json(&e) {
            Some(code) => code,
            None => e.exit(),
        },
    }
}
