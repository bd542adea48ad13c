//! `confirm-proxy check`: validate a rules directory (and its rule tests) the way `serve`
//! would load it.

use std::process::ExitCode;

use clap::Args;

use super::RulesDir;
use crate::script::ScriptEngine;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub rules: RulesDir,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let Some(rules) = args.rules.load(&ScriptEngine::new()) else {
        return ExitCode::FAILURE;
    };
    let suites = match crate::ruletest::load_suites(&args.rules.dir, &rules) {
        Ok(suites) => suites,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &rules.warnings {
        eprintln!("warning: {w}");
    }
    for w in suites.iter().flat_map(|s| &s.warnings) {
        eprintln!("warning: {w}");
    }
    out!(
        "ok: {} rulesets, {} rules",
        rules.rulesets.len(),
        rules.rule_count()
    );
    ExitCode::SUCCESS
}
