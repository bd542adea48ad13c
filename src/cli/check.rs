//! `confirm-proxy check`: validate a rules directory the way `serve` would load it.

use std::process::ExitCode;

use clap::Args;

use super::RulesDir;
use crate::rules::{load_dir, LoadOptions};
use crate::script::ScriptEngine;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub rules: RulesDir,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let engine = ScriptEngine::new();
    match load_dir(
        &args.rules.dir,
        &LoadOptions {
            engine: &engine,
            env: &super::process_env,
        },
    ) {
        Ok(rules) => {
            if let Err(errors) = crate::ruletest::load_suites(&args.rules.dir, &rules) {
                for e in &errors {
                    eprintln!("{e}");
                }
                return ExitCode::FAILURE;
            }
            for w in &rules.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} rulesets, {} rules",
                rules.rulesets.len(),
                rules.rule_count()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}
