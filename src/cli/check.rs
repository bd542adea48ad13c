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
    /// Fail (exit 1) on warnings too: for the pipeline that ships rule changes, where a
    /// deadline over 5 s or a YAML file named .yml should stop the change, not scroll by.
    #[arg(long, env = "CONFIRM_PROXY_STRICT", value_parser = super::switch)]
    pub strict: bool,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let Some(rules) = args.rules.load_or_report_tests(&ScriptEngine::new()) else {
        return ExitCode::FAILURE;
    };
    let suites = match crate::ruletest::load_suites(&args.rules.dir, &rules) {
        Ok(suites) => suites,
        Err(errors) => {
            for e in &errors {
                err!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let warnings: Vec<String> = rules
        .warnings
        .iter()
        .cloned()
        .chain(
            suites
                .iter()
                .flat_map(|s| &s.warnings)
                .map(ToString::to_string),
        )
        .collect();
    for w in &warnings {
        err!("warning: {w}");
    }
    if args.strict && !warnings.is_empty() {
        err!(
            "{} warning(s), and --strict makes warnings fail the check",
            warnings.len()
        );
        return ExitCode::FAILURE;
    }
    out!(
        "ok: {} rulesets, {} rules",
        rules.rulesets.len(),
        rules.rule_count()
    );
    // The confirm URLs to register at PortOne. No `default.yaml` is no mistake when every
    // confirm URL names its ruleset, so it is said here rather than warned about.
    let mut serves: Vec<String> = rules
        .rulesets
        .keys()
        .map(|name| format!("POST {} ({name}.yaml)", crate::rules::confirm_path(name)))
        .collect();
    if !rules.rulesets.contains_key("default") {
        serves.push("POST /confirm answers 404 (no default.yaml)".to_owned());
    }
    out!("serves: {}", serves.join(", "));
    // A trial took `ok` for "the tests pass": they were read, not run.
    if !suites.is_empty() {
        let cases: usize = suites.iter().map(crate::ruletest::Suite::len).sum();
        let files = match suites.len() {
            1 => "1 file".to_owned(),
            n => format!("{n} files"),
        };
        out!("tests: {cases} cases in {files} read, not run (confirm-proxy test runs them)");
    }
    ExitCode::SUCCESS
}
