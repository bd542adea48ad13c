//! `confirm-proxy replay`: the decision log decided again by the rules as they are now, without
//! the network, printing every decision that would change.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::RulesDir;
use crate::decision::Verdict;
use crate::replay::{read, replay, ShadowTally};
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

/// The longest line read as a record: `serve` never writes one over about 1 MiB, and a longer
/// one (a binary file, a dump without line breaks) is skipped without being held in memory.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// What the replay met, for the closing count.
#[derive(Default)]
struct Counts {
    replayed: usize,
    changed: usize,
    /// Of those changed, refused then and approved now, and the other way round: what an
    /// operator reads first before an edit or a new build goes live.
    now_approved: usize,
    now_refused: usize,
    /// Of those changed, the ones that reached a call or health state the record has no
    /// answer for: `on_error` decided there, not what the upstream would have said.
    unanswered: usize,
    /// Of those changed, the ones where a rule read an answer's headers (not in the log).
    headers_read: usize,
    /// Of those changed, the ones where a rule got an answer the log keeps only in part.
    partial_read: usize,
    /// Replayed records with a call the deadline caught unanswered then, waited for again.
    waited_again: usize,
    /// Of those changed, the ones whose answer differs only in the deciding rule's name.
    rule_only: usize,
    /// Answers no rule decided: guards', repeats, ignored messages.
    skipped: usize,
    /// Answered by `on_error` because the deadline passed before the first rule.
    deadline_first: usize,
    /// Answered by `on_error` at the deadline with the rules still running, or finished late.
    overran: usize,
    /// Answered by `on_error` for a rule the deadline stopped (or kept from running).
    stopped: usize,
    unreadable: usize,
    other_rulesets: usize,
}

pub fn run(args: &ReplayArgs) -> ExitCode {
    let mut input: Box<dyn BufRead> = match args.file.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(e) => {
                err!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(CANNOT_RUN);
            }
        },
        None => {
            // A forgotten file argument would otherwise wait on the terminal without a word.
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                err!("reading the decision log from stdin (no FILE given); end it with Ctrl-D");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let name = args
        .file
        .as_ref()
        .map_or("-".into(), |p| p.display().to_string());
    let scripts = ScriptEngine::new();
    let Some(rules) = args.rules.load_servable(&scripts) else {
        return ExitCode::from(CANNOT_RUN);
    };
    // The log's timeouts and deadlines pass at once: a replay waits for nothing.
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::from(CANNOT_RUN);
    };
    let mut counts = Counts::default();
    let mut shadow = ShadowTally::default();
    // Reserved whole, not grown by doubling: growing to a line of 64 MiB copied it into 64 MiB
    // more and peaked at 140 MB. Only the pages a line fills take memory.
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut n = 0;
    loop {
        // Lines are read as bytes: one cut inside a character is an unreadable line like any
        // other, not the end of the replay.
        match read_line(&mut input, &mut line, MAX_LINE) {
            Ok(Line::End) => break,
            Ok(Line::Read) => n += 1,
            Ok(Line::TooLong) => {
                n += 1;
                err!(
                    "{name}:{n}: not a decision-log record: a line over {} MiB, skipped",
                    MAX_LINE >> 20
                );
                counts.unreadable += 1;
                continue;
            }
            Err(e) => {
                err!("error: cannot read {name}: {e}");
                return ExitCode::from(CANNOT_RUN);
            }
        }
        if let Some((format, tool)) = compressed(&line).filter(|_| n == 1) {
            // From stdin the file's name is not known: the tool reads it.
            let file = if name == "-" { "FILE" } else { name.as_str() };
            err!(
                "error: {name}: {format}-compressed; decompress it first: {tool} {file} | confirm-proxy replay -"
            );
            return ExitCode::from(CANNOT_RUN);
        }
        if n == 1 && line.starts_with(b"\xEF\xBB\xBF") {
            // A byte-order mark: the log was saved by an editor that adds one.
            line.drain(..3);
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = match read(&line) {
            Ok(record) => record,
            Err(e) => {
                err!("{name}:{n}: {e}");
                counts.unreadable += 1;
                continue;
            }
        };
        if args.ruleset.as_ref().is_some_and(|r| *r != record.ruleset) {
            counts.other_rulesets += 1;
            continue;
        }
        if !record.decided_by_rules() {
            counts.skipped += 1;
            continue;
        }
        if record.deadline_came_first(&rules) {
            counts.deadline_first += 1;
        } else if record.overran() {
            counts.overran += 1;
        } else if record.stopped_by_deadline().is_some() {
            counts.stopped += 1;
        }
        let again = runtime.block_on(replay(&rules, &scripts, record));
        counts.replayed += 1;
        counts.waited_again += usize::from(again.waited_again);
        if let Some(ruleset) = rules.get(&again.record.ruleset) {
            shadow.add(ruleset, &again);
        }
        if again.changed() {
            counts.changed += 1;
            counts.unanswered += usize::from(again.unanswered);
            counts.headers_read += usize::from(again.headers_read);
            counts.partial_read += usize::from(again.partial_read);
            // Renamed only if the rule that decided then is gone: two rules that both refused
            // with `error_reason` give the same answer too (a trial's).
            let gone = |name: &str| {
                rules
                    .get(&again.record.ruleset)
                    .is_none_or(|set| set.rules.iter().all(|r| *r.name != *name))
            };
            let renamed = again.record.rule.as_deref().is_some_and(gone);
            counts.rule_only += usize::from(again.only_the_rule_changed() && renamed);
            match (again.record.decision, again.decision.decision) {
                (Verdict::Reject, Verdict::Approve) => counts.now_approved += 1,
                (Verdict::Approve, Verdict::Reject) => counts.now_refused += 1,
                _ => {}
            }
            out!("{}", again.explain());
        }
    }
    let read_any = counts.replayed + counts.skipped > 0;
    if let Some(ruleset) = args.ruleset.as_ref().filter(|_| !read_any) {
        if rules.get(ruleset).is_none() {
            let known: Vec<&str> = rules.rulesets.keys().map(String::as_str).collect();
            err!(
                "error: unknown ruleset \"{ruleset}\": no record of it in {name}, and the rules load {}",
                known.join(", ")
            );
            return ExitCode::from(CANNOT_RUN);
        }
        err!(
            "note: no record of ruleset \"{ruleset}\" ({} records of other rulesets)",
            counts.other_rulesets
        );
    }
    if !read_any && counts.unreadable == 0 && counts.other_rulesets == 0 {
        // "0 replayed" alone reads as "no change" where nothing was read (a file argument
        // forgotten, so stdin was read, or a log just rotated).
        let name = if name == "-" { "stdin" } else { name.as_str() };
        err!("note: {name} has no lines: nothing was replayed (give the decision log as FILE, or pipe it in)");
    }
    let shadow = shadow.report();
    if !shadow.is_empty() {
        out!("{shadow}");
    }
    out!("{}", summary(&counts, args.ruleset.as_deref()));
    if counts.changed > 0 {
        ExitCode::FAILURE
    } else if counts.unreadable > 0 && !read_any && counts.other_rulesets == 0 {
        // Not one record read: not a decision log (a log file given by mistake), and "nothing
        // changed" would be no answer.
        err!("error: no line of {name} is a decision-log record");
        ExitCode::from(CANNOT_RUN)
    } else {
        ExitCode::SUCCESS
    }
}

/// The compression a log's first bytes show (a rotated log, compressed by logrotate), with the
/// tool that writes it out decompressed: a decision log itself starts with `{`.
fn compressed(start: &[u8]) -> Option<(&'static str, &'static str)> {
    const MAGIC: [(&[u8], &str, &str); 4] = [
        (&[0x1f, 0x8b], "gzip", "zcat"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz", "xzcat"),
        (b"BZh", "bzip2", "bzcat"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "zstdcat"),
    ];
    MAGIC
        .iter()
        .find(|(magic, ..)| start.starts_with(magic))
        .map(|&(_, format, tool)| (format, tool))
}

/// The closing count; `ruleset`, the one replayed when only one was asked for.
fn summary(c: &Counts, ruleset: Option<&str>) -> String {
    let mut at_deadline = Vec::new();
    if c.deadline_first > 0 {
        at_deadline.push(format!(
            "{} with the deadline passed before the first rule",
            c.deadline_first
        ));
    }
    if c.overran > 0 {
        at_deadline.push(format!(
            "{} with the rules unfinished when the answer was due",
            c.overran
        ));
    }
    if c.stopped > 0 {
        at_deadline.push(format!("{} with a rule the deadline stopped", c.stopped));
    }
    if c.waited_again > 0 {
        at_deadline.push(format!(
            "{} with a call unanswered at the deadline, waited for again: an edited deadline or timeout is not replayed",
            c.waited_again
        ));
    }
    let first = if at_deadline.is_empty() {
        String::new()
    } else {
        format!(" ({}, decided by on_error)", at_deadline.join(", "))
    };
    let directions = if c.changed == 0 {
        String::new()
    } else {
        let other = c.changed - c.now_approved - c.now_refused;
        // The changed records of a kind, said only when there are some.
        let of_them = |n: usize, what: &str| {
            if n == 0 {
                String::new()
            } else {
                format!("; {n} of them {what}")
            }
        };
        format!(
            " ({} now approved, {} now refused, {other} with another reason, status or deciding rule{}{}{}{})",
            c.now_approved,
            c.now_refused,
            of_them(c.unanswered, "reached a call or health state the record has no answer for, and on_error decided it, not the upstream"),
            of_them(c.headers_read, "reached a rule that reads response headers, which the log does not keep, so they are no prediction"),
            of_them(c.partial_read, "reached an answer the log keeps only in part (the start of its body, or its status alone), so they are no prediction"),
            of_them(
                c.rule_only,
                if c.rule_only == 1 {
                    "differs only in the deciding rule's name (a rule renamed?)"
                } else {
                    "differ only in the deciding rule's name (a rule renamed?)"
                }
            ),
        )
    };
    let mut out = format!(
        "{} replayed{first}: {} changed{directions}, {} unchanged; {} not decided by rules (guards' answers, repeats, ignored messages)",
        c.replayed,
        c.changed,
        c.replayed - c.changed,
        c.skipped
    );
    if c.unreadable > 0 {
        let s = if c.unreadable == 1 { "" } else { "s" };
        out.push_str(&format!("; {} unreadable line{s}", c.unreadable));
    }
    // Asked for by --ruleset, or by CONFIRM_PROXY_RULESET left set from eval: said, or
    // "0 changed" would pass for the whole log's.
    if let Some(ruleset) = ruleset.filter(|_| c.other_rulesets > 0) {
        let s = if c.other_rulesets == 1 { "" } else { "s" };
        out.push_str(&format!(
            "; {} record{s} of other rulesets left out (only ruleset \"{ruleset}\" was asked for, by --ruleset or CONFIRM_PROXY_RULESET)",
            c.other_rulesets
        ));
    }
    out
}

enum Line {
    Read,
    /// Over the limit: consumed, not kept.
    TooLong,
    End,
}

/// Reads the next line into `line` (its line break included), keeping at most `max` bytes: a
/// longer line is read to its end and dropped.
fn read_line(input: &mut dyn BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    line.clear();
    let (mut any, mut too_long) = (false, false);
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let end = memchr::memchr(b'\n', buf).map(|i| i + 1);
        let part = &buf[..end.unwrap_or(buf.len())];
        if !too_long && line.len() + part.len() > max {
            too_long = true;
            line.clear();
        }
        if !too_long {
            line.extend_from_slice(part);
        }
        let used = part.len();
        input.consume(used);
        if end.is_some() {
            break;
        }
    }
    Ok(match (any, too_long) {
        (false, _) => Line::End,
        (true, true) => Line::TooLong,
        (true, false) => Line::Read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<Result<String, &'static str>> {
        let mut input: &[u8] = text;
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut input, &mut line, max).unwrap() {
                Line::End => return out,
                Line::Read => out.push(Ok(String::from_utf8_lossy(&line).into_owned())),
                Line::TooLong => out.push(Err("too long")),
            }
        }
    }

    /// A line over the limit is skipped whole, and the lines around it read as usual.
    #[test]
    fn lines_over_the_limit_are_skipped_not_kept() {
        assert_eq!(
            lines(b"abc\n0123456789\nde", 5),
            [Ok("abc\n".into()), Err("too long"), Ok("de".into())]
        );
        assert_eq!(lines(b"", 5), []);
        assert_eq!(lines(b"abcd\n", 5), [Ok("abcd\n".into())]);
    }
}
