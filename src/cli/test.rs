//! `confirm-proxy test`: run the rule tests in `rules/tests/*.yaml` through the real engine,
//! with canned upstreams and a fixed clock.

use std::process::ExitCode;

use clap::Args;

use super::RulesDir;
use crate::ruletest;
use crate::script::ScriptEngine;

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub rules: RulesDir,
    /// Run only the cases whose name contains this text.
    pub filter: Option<String>,
    /// List every case that ran, passed ones too (`ok FILE: NAME -> decision by RULE`), not
    /// only the failing ones: to see what a FILTER picked, or to review a suite.
    #[arg(short, long, env = "CONFIRM_PROXY_VERBOSE", value_parser = super::switch)]
    pub verbose: bool,
}

const INVALID_TEST_FILE: u8 = 2;

pub fn run(args: &TestArgs) -> ExitCode {
    let scripts = ScriptEngine::new();
    let Some(rules) = args.rules.load_or_report_tests(&scripts) else {
        out!("no case ran: the rules do not load");
        return ExitCode::FAILURE;
    };
    let suites = match ruletest::load_suites(&args.rules.dir, &rules) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                err!("{e}");
            }
            return ExitCode::from(INVALID_TEST_FILE);
        }
    };
    for w in suites.iter().flat_map(|s| &s.warnings) {
        err!("warning: {w}");
    }
    // No tests is a pass (SPEC §9), but a CI step run on a copy of the rules without their
    // tests, or on the wrong directory, would pass having checked nothing: it is said.
    if suites.is_empty() {
        let tests = args.rules.dir.join("tests");
        let found = if tests.is_dir() {
            "holds no *.yaml test file"
        } else {
            "does not exist"
        };
        err!("warning: {} {found}: nothing was tested", tests.display());
    }
    // Canned delays and timeouts pass at once, in the order their times say.
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::FAILURE;
    };
    let results = runtime.block_on(ruletest::run(
        &rules,
        &suites,
        &scripts,
        args.filter.as_deref(),
    ));
    // A FILTER that matches nothing is no tests at all, which SPEC §9 makes a pass; it may
    // be a typo in a CI step, so it is said.
    if let Some(filter) = args.filter.as_deref().filter(|_| results.is_empty()) {
        let cases: usize = suites.iter().map(ruletest::Suite::len).sum();
        let plural = if cases == 1 { "" } else { "s" };
        err!("warning: no case name contains \"{filter}\" ({cases} case{plural} in all): nothing was tested");
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    for r in &results {
        if !r.passed() {
            out!("{}", r.explain());
        } else if args.verbose {
            out!("{}", r.summary());
        }
    }
    out!("{} passed, {} failed", results.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
