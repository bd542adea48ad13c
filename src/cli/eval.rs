//! `confirm-proxy eval`: one request body through the same engine `serve` uses, printed as
//! JSON with its per-rule trace. Upstreams are called for real.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use clap::Args;

use super::RulesDir;
use crate::decision::Decision;
use crate::engine::{evaluate, Context, Original};
use crate::metrics::Metrics;
use crate::payload::{self, Parsed};
use crate::rules::Health;
use crate::script::ScriptEngine;
use crate::upstream::{start_probes, HttpUpstreams};

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub rules: RulesDir,
    /// Ruleset to evaluate (the file stem: default = rules/default.yaml).
    #[arg(long, env = "CONFIRM_PROXY_RULESET", default_value = "default")]
    pub ruleset: String,
    /// Evaluation time instead of the clock, e.g. 2026-12-01T10:00:00+09:00.
    #[arg(long, env = "CONFIRM_PROXY_NOW", value_parser = parse_now)]
    pub now: Option<DateTime<FixedOffset>>,
    /// Request body file (PortOne JSON or form); "-" or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
}

fn parse_now(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("expected RFC 3339 like 2026-12-01T10:00:00+09:00: {e}"))
}

const USAGE: u8 = 2;

pub fn run(args: &EvalArgs) -> ExitCode {
    let body = match read_body(args.file.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let scripts = ScriptEngine::new();
    let Some(rules) = args.rules.load(&scripts) else {
        return ExitCode::FAILURE;
    };
    let Some(ruleset) = rules.get(&args.ruleset).cloned() else {
        let known: Vec<&str> = rules.rulesets.keys().map(String::as_str).collect();
        eprintln!(
            "error: unknown ruleset \"{}\", expected one of {}",
            args.ruleset,
            known.join(", ")
        );
        return ExitCode::from(USAGE);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let decision = runtime.block_on(async {
        match payload::parse(None, &body) {
            Ok(Parsed::Confirm(req)) => {
                wait_for_health(&rules).await;
                let original = Original {
                    body: body.clone().into(),
                    ..Original::default()
                };
                let ctx = Context {
                    scripts: &scripts,
                    upstreams: Arc::new(HttpUpstreams::new(Metrics::new())),
                    now: args
                        .now
                        .unwrap_or_else(|| chrono::Utc::now().fixed_offset()),
                    started: tokio::time::Instant::now(),
                    original: &original,
                };
                evaluate(&ruleset, &req, &ctx).await
            }
            Ok(Parsed::Ignored { .. }) => Decision::ignored(),
            Err(e) => Decision::reject(e.status(), e.to_string(), None),
        }
    });
    let out = serde_json::json!({
        "ruleset": ruleset.name,
        "rules_version": rules.version,
        "decision": decision,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}

/// The body, or what could not be read, naming the file (or stdin).
fn read_body(file: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(body)
        }
    }
}

/// `healthy` rules need a probe result; give the probes one round before evaluating.
async fn wait_for_health(rules: &crate::rules::Rules) {
    let probed: Vec<_> = rules
        .upstreams()
        .filter(|u| u.health.is_some())
        .cloned()
        .collect();
    if probed.is_empty() {
        return;
    }
    start_probes(rules, Arc::new(|_, _, _| {}));
    let limit =
        probed.iter().map(|u| u.timeout).max().unwrap_or_default() + Duration::from_millis(200);
    let _ = tokio::time::timeout(limit, async {
        while probed.iter().any(|u| u.state.get() == Health::Unknown) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_body_file_is_named() {
        let missing = PathBuf::from("/nonexistent/request.json");
        let e = read_body(Some(&missing)).unwrap_err();
        assert!(e.starts_with("/nonexistent/request.json: "), "{e}");
    }
}
