//! `confirm-proxy replay`: the decision log decided again by the rules as they are now, without
//! the network, printing every decision that would change.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::RulesDir;
use crate::replay::{read, replay};
use crate::script::ScriptEngine;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub rules: RulesDir,
    /// Replay only the records of this ruleset.
    #[arg(long, env = "CONFIRM_PROXY_RULESET")]
    pub ruleset: Option<String>,
    /// Decision log (JSON Lines, as `serve --decision-log` writes it); "-" or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
}

/// Unreadable input, rules that do not load, bad usage.
const CANNOT_RUN: u8 = 2;

pub fn run(args: &ReplayArgs) -> ExitCode {
    let mut input: Box<dyn BufRead> = match args.file.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(CANNOT_RUN);
            }
        },
        None => Box::new(std::io::stdin().lock()),
    };
    let name = args
        .file
        .as_ref()
        .map_or("-".into(), |p| p.display().to_string());
    let scripts = ScriptEngine::new();
    let Some(rules) = args.rules.load(&scripts) else {
        return ExitCode::from(CANNOT_RUN);
    };
    // The log's timeouts and deadlines pass at once: a replay waits for nothing.
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::from(CANNOT_RUN);
    };
    let (mut replayed, mut changed, mut skipped, mut unreadable, mut other_rulesets) =
        (0, 0, 0, 0, 0);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        // Lines are read as bytes: one cut inside a character is an unreadable line like any
        // other, not the end of the replay.
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => n += 1,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::from(CANNOT_RUN);
            }
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = match read(&line) {
            Ok(record) => record,
            Err(e) => {
                eprintln!("{name}:{n}: {e}");
                unreadable += 1;
                continue;
            }
        };
        if args.ruleset.as_ref().is_some_and(|r| *r != record.ruleset) {
            other_rulesets += 1;
            continue;
        }
        if !record.decided_by_rules() {
            skipped += 1;
            continue;
        }
        let again = runtime.block_on(replay(&rules, &scripts, record));
        replayed += 1;
        if again.changed() {
            changed += 1;
            out!("{}", again.explain());
        }
    }
    if let Some(ruleset) = args.ruleset.as_ref().filter(|_| replayed + skipped == 0) {
        eprintln!(
            "note: no record of ruleset \"{ruleset}\" ({other_rulesets} records of other rulesets)"
        );
    }
    out!(
        "{replayed} replayed: {changed} changed, {} unchanged; {skipped} not decided by rules (guards' answers, repeats, ignored messages){}",
        replayed - changed,
        if unreadable > 0 {
            format!(
                "; {unreadable} unreadable line{}",
                if unreadable == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    );
    if changed > 0 {
        ExitCode::FAILURE
    } else if unreadable > 0 && replayed + skipped + other_rulesets == 0 {
        // Not one record read: not a decision log (a log file given by mistake), and "nothing
        // changed" would be no answer.
        eprintln!("error: no line of {name} is a decision-log record");
        ExitCode::from(CANNOT_RUN)
    } else {
        ExitCode::SUCCESS
    }
}
