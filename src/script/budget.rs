//! The budget of one evaluation, kept on the thread that runs it: operations are counted and
//! the clock read, so a script stops at [`MAX_OPERATIONS`] or its time limit, even if it
//! catches the stop.
//!
//! Most operations take nanoseconds, but one can copy a whole value: a list filled by index
//! (`big[i] = inner`, where Rhai checks the size of the item, not of the list) can hold a
//! million items, and each argument of a call, each `let y = big`, each item `big in list`
//! compares against copies it, some 10 ms apiece. Checked only every [`CLOCK_EVERY_OPS`]
//! operations, 64 such copies ran past the limit: 0.9 s and 620 MB for a call of 128 `big`
//! arguments. So a clock that costs about as much as counting (the kernel's coarse clock, one
//! tick behind, 3 ns a read) is read at every operation too, and the exact one once the coarse
//! one says the limit may have come.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Position};

use super::MAX_OPERATIONS;

/// The exact clock is read every this many operations (a power of two), and at every one once
/// the coarse clock says the limit may have come: often enough that the limit holds to the
/// coarse clock's tick for cheap operations, rarely enough to cost nothing measurable (one
/// exact read is about as much as one cheap operation).
const CLOCK_EVERY_OPS: u64 = 64;

/// Which limit stopped an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Operations,
    Time,
    /// A map or list whose text would pass the string limit was asked for as text, here (see
    /// [`render`](super::render)).
    TooLarge(Position),
}

// The budget of the evaluation running on this thread. The engine is shared by every thread,
// so a per-call limit cannot live in it; evaluation is synchronous, so the thread that installs
// a budget ([`Budgeted`]) runs the whole script before taking it back.
thread_local! {
    /// Operations so far, counted here rather than taken from Rhai: Rhai loses the count of
    /// closures called back by native functions (`reduce`, `map`, `sort` with a comparator …),
    /// so nested callbacks would never reach its `max_operations`.
    static OPS: Cell<u64> = const { Cell::new(0) };
    /// When the evaluation must stop; `None` outside an evaluation.
    static STOP_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The same moment on the coarse clock ([`coarse_now`]), when the exact clock is to be read
    /// at every operation; `u64::MAX` outside an evaluation.
    static COARSE_STOP_AT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// The limit that stopped the evaluation. Once set, every further operation fails too, so a
    /// `try`/`catch` around a callback (where the stop arrives wrapped, hence catchable)
    /// cannot swallow it and carry on.
    static STOPPED: Cell<Option<Limit>> = const { Cell::new(None) };
    /// Lines `print` and `debug` wrote in the evaluation so far.
    static PRINTED: Cell<u32> = const { Cell::new(0) };
}

/// The lines `print` and `debug` together may write per evaluation: enough to try a script,
/// too few for a `print` in a loop to flood the log (one request wrote 25 MB in its 50 ms).
pub(super) const MAX_PRINTED_LINES: u32 = 20;

/// The longest line `print` or `debug` writes, in characters.
pub(super) const MAX_PRINTED_CHARS: usize = 1000;

/// What a script's next `print` or `debug` line may be: `Some` of the text to write (cut at
/// [`MAX_PRINTED_CHARS`]), a last note once [`MAX_PRINTED_LINES`] were written, then `None`.
pub(super) fn printed(text: &str) -> Option<String> {
    let n = PRINTED.get();
    if n > MAX_PRINTED_LINES {
        return None;
    }
    PRINTED.set(n + 1);
    if n == MAX_PRINTED_LINES {
        return Some(format!(
            "(further print and debug output of this evaluation left out: at most {MAX_PRINTED_LINES} lines)"
        ));
    }
    let mut line = text.to_owned();
    crate::text::cut_chars(&mut line, MAX_PRINTED_CHARS);
    Some(line)
}

/// Installs a budget on this thread for one evaluation; restores the previous one when
/// dropped (also if the evaluation unwinds).
pub(super) struct Budgeted {
    previous: (u64, Option<Instant>, u64, Option<Limit>, u32),
}

impl Budgeted {
    /// A budget of `limit` from now.
    pub(super) fn start(limit: Duration) -> Self {
        let stop_at = Instant::now() + limit;
        // The coarse clock may lag the exact one by up to a tick; the exact one decides.
        let coarse_stop_at = coarse_now().saturating_add(limit.as_nanos() as u64);
        Budgeted {
            previous: (
                OPS.replace(0),
                STOP_AT.replace(Some(stop_at)),
                COARSE_STOP_AT.replace(coarse_stop_at),
                STOPPED.take(),
                PRINTED.replace(0),
            ),
        }
    }

    /// The limit hit during the evaluation, if any.
    pub(super) fn finish(self) -> Option<Limit> {
        STOPPED.get()
    }
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        let (ops, stop_at, coarse_stop_at, stopped, printed) = self.previous;
        OPS.set(ops);
        STOP_AT.set(stop_at);
        COARSE_STOP_AT.set(coarse_stop_at);
        STOPPED.set(stopped);
        PRINTED.set(printed);
    }
}

/// Stops the evaluation at its next operation, as if a limit had run out: for a limit a native
/// function finds where an error of its own would not end the evaluation (Rhai answers an
/// error of a rendering function by rendering the value its own way). Outside an evaluation it
/// does nothing.
pub(super) fn stop(limit: Limit) {
    if STOP_AT.get().is_some() && STOPPED.get().is_none() {
        STOPPED.set(Some(limit));
        // The next operation passes MAX_OPERATIONS, so it reaches `check_budget` and fails.
        OPS.set(MAX_OPERATIONS);
    }
}

/// Rhai's progress callback, called at every operation; `Some` terminates the script
/// (`ErrorTerminated`, which a script cannot catch unless it comes out of a callback).
/// Counting and a coarse clock read are all most operations cost; every [`CLOCK_EVERY_OPS`]th,
/// and every one once the coarse clock reaches the limit, reads the exact clock.
pub(super) fn on_operation(_rhai_count: u64) -> Option<Dynamic> {
    let ops = OPS.get() + 1;
    OPS.set(ops);
    if !ops.is_multiple_of(CLOCK_EVERY_OPS)
        && ops <= MAX_OPERATIONS
        && coarse_now() < COARSE_STOP_AT.get()
    {
        return None;
    }
    check_budget(ops)
}

/// Nanoseconds on the kernel's coarse monotonic clock: the time of the last timer tick (1–4 ms
/// apart, more on an idle tickless CPU), read without asking the hardware. Where there is
/// none, 0, and the exact clock is read every [`CLOCK_EVERY_OPS`] operations only.
#[cfg(target_os = "linux")]
fn coarse_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn coarse_now() -> u64 {
    0
}

#[cold]
fn check_budget(ops: u64) -> Option<Dynamic> {
    let stop_at = STOP_AT.get()?;
    if STOPPED.get().is_none() {
        let limit = if ops > MAX_OPERATIONS {
            Limit::Operations
        } else if Instant::now() >= stop_at {
            Limit::Time
        } else {
            return None;
        };
        STOPPED.set(Some(limit));
        // Past MAX_OPERATIONS, every operation comes here and fails.
        OPS.set(MAX_OPERATIONS);
    }
    Some(Dynamic::UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::{at, request, run_script, HEAVY, V1};
    use crate::script::{RequestScope, ScriptEngine, ScriptError, ScriptVerdict, TimeLeft};
    use std::time::Duration;

    /// "Stopped soon": far under what the same script takes unchecked (seconds in a debug
    /// build), and generous for a loaded machine, where a thread may wait its turn for a while.
    const SOON: Duration = Duration::from_secs(2);

    fn run_script_within(
        src: &str,
        time_left: Duration,
    ) -> (Result<ScriptVerdict, ScriptError>, Duration) {
        let engine = ScriptEngine::new();
        let ast = engine.compile_script(src).unwrap();
        let scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let started = Instant::now();
        let result = engine.eval_script(&scope, &ast, TimeLeft::Deadline(time_left));
        (result, started.elapsed())
    }

    #[test]
    fn the_operation_after_the_last_allowed_one_is_stopped() {
        // The deadline is an hour away, so only the count can stop it. A script cannot pin
        // this edge: Rhai's own `max_operations` (the same number) stops top-level code too.
        let budget = Budgeted::start(Duration::from_secs(3600));
        for op in 1..=MAX_OPERATIONS {
            assert!(on_operation(op).is_none(), "operation {op} was stopped");
        }
        assert!(on_operation(MAX_OPERATIONS + 1).is_some());
        assert_eq!(budget.finish(), Some(Limit::Operations));
    }

    #[test]
    fn print_writes_a_bounded_number_of_bounded_lines_per_evaluation() {
        let long = "가".repeat(MAX_PRINTED_CHARS + 5);
        for _ in 0..2 {
            // Each evaluation has its own allowance.
            let budget = Budgeted::start(Duration::from_secs(1));
            let lines: Vec<String> = (0..100).filter_map(|_| printed(&long)).collect();
            drop(budget);
            assert_eq!(lines.len() as u32, MAX_PRINTED_LINES + 1);
            assert_eq!(lines[0].chars().count(), MAX_PRINTED_CHARS + 1);
            assert!(lines[0].ends_with('…'));
            assert!(lines[MAX_PRINTED_LINES as usize].starts_with("(further print"));
        }
        let _budget = Budgeted::start(Duration::from_secs(1));
        assert_eq!(printed("짧은 줄").as_deref(), Some("짧은 줄"));
    }

    #[test]
    fn expensive_operations_stop_at_the_time_limit() {
        let (result, took) = run_script_within(HEAVY, Duration::from_secs(1));
        println!("heavy script stopped after {took:?}: {result:?}");
        let err = result.unwrap_err();
        assert!(
            err.message
                .starts_with("script stopped after 50 ms (time limit)"),
            "{err}"
        );
        assert!(err.position.is_some(), "{err:?}");
        // It stops a few ms after MAX_RUN_TIME.
        assert!(took < SOON, "took {took:?}");
    }

    /// A list of lists far over the item limit (filled by index, which Rhai checks item by
    /// item) copied into each argument of a call: 128 copies of 600,000 items, some
    /// milliseconds each, each one operation. Checked only every 64 operations, the limit let
    /// 0.9 s and 620 MB of copies through (release build, by `eval`); the coarse clock read at
    /// every operation stops it one copy after the limit. (The list is made here, so that
    /// making it spends none of the script's 50 ms and the limit falls among the copies.)
    #[test]
    fn operations_that_copy_a_huge_value_stop_at_the_time_limit() {
        let engine = ScriptEngine::new();
        let args: Vec<String> = (0..128).map(|i| format!("a{i}")).collect();
        let src = format!(
            "fn f({}) {{ true }}\nlet big = fetched.big;\nf({})",
            args.join(", "),
            vec!["big"; 128].join(", ")
        );
        let ast = engine.compile_script(&src).unwrap();
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let inner: rhai::Array = vec![Dynamic::from_int(0); 10_000];
        let big: rhai::Array = vec![Dynamic::from_array(inner); 60];
        let _ = scope.set_fetched("big", Dynamic::from_array(big));
        let started = Instant::now();
        let result = engine.eval_script(&scope, &ast, TimeLeft::Deadline(Duration::from_secs(1)));
        let took = started.elapsed();
        println!("128 copies of a 600,000-item list stopped after {took:?}: {result:?}");
        let err = result.unwrap_err();
        assert!(err.message.contains("(time limit)"), "{err}");
        // One copy takes tens of milliseconds in a debug build.
        assert!(took < SOON, "took {took:?}");
    }

    #[test]
    fn a_near_deadline_stops_scripts_sooner() {
        let (result, took) = run_script_within(HEAVY, Duration::from_millis(5));
        println!("heavy script with 5 ms left stopped after {took:?}: {result:?}");
        let err = result.unwrap_err();
        assert!(
            err.message
                .starts_with("script stopped after 5 ms (the request's deadline)"),
            "{err}"
        );
        assert!(took < SOON, "took {took:?}");
        // No time left at all: stopped within the first CLOCK_EVERY_OPS operations.
        let (result, _) = run_script_within("loop {}", Duration::ZERO);
        assert!(result.unwrap_err().message.contains("0 ms"));
    }

    #[test]
    fn runaway_expressions_stop_too() {
        let engine = ScriptEngine::new();
        for (src, limits) in [
            // 10^8 cheap steps: the operation limit (or, in a slow debug build, the time).
            (
                "blob(10000, 1).to_array().reduce(|s, x| s + blob(10000, 1).to_array().reduce(|t, y| t + y, 0), 0) > 0",
                &["operations (sandbox limit)", "(time limit)"][..],
            ),
            // The strict callbacks (`some`, `filter`, `sort` …) count their closures' steps too.
            (
                "blob(10000, 1).to_array().some(|x| blob(10000, 1).to_array().filter(|y| y > 1).len() > 0)",
                &["operations (sandbox limit)", "(time limit)"][..],
            ),
            // 10^8 expensive steps: the time limit.
            (
                r#"blob(10000, 1).to_array().reduce(|s, x| s + blob(10000, 1).to_array().reduce(|t, y| t + blob(10000, 65).as_string().to_upper().len(), 0), 0) > 0"#,
                &["(time limit)"][..],
            ),
        ] {
            let ast = engine.compile_expression(src, &[]).unwrap();
            let mut scope =
                RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
            let started = Instant::now();
            let err = engine
                .eval_bool(&mut scope, &ast, &mut None, TimeLeft::Deadline(Duration::from_secs(1)))
                .unwrap_err();
            let took = started.elapsed();
            println!("{src}: {took:?}: {err}");
            assert!(limits.iter().any(|l| err.message.contains(l)), "{src}: {err}");
            assert!(took < SOON, "{src} took {took:?}");
        }
    }

    #[test]
    fn stops_cannot_be_caught() {
        // The closure's operations are invisible to Rhai's own count (it runs inside `reduce`);
        // the stop it gets is wrapped in a catchable error, and the script tries to carry on.
        for src in [
            r#"
            let a = blob(100, 1).to_array();
            let caught = 0;
            for i in 0..3 {
                try { a.reduce(|s, x| { loop {} }, 0); } catch (e) { caught += 1; }
            }
            true
            "#,
            // Retrying for ever, inside a callback whose operations Rhai does not count.
            r#"
            [1, 2].reduce(|s, x| {
                loop { try { [3, 4].reduce(|t, y| { loop {} }, 0); } catch {} }
            }, 0)
            "#,
            "try { [1].reduce(|s, x| { loop {} }, 0); } catch {} true",
            "let a = [2, 1]; try { a.sort(|x, y| { loop {} }); } catch {} true",
            "let a = blob(10000, 1).to_array(); try { a.sort(|x, y| blob(10000, 1).to_array().reduce(|s, v| s + v, 0) - 1); } catch {} true",
        ] {
            let (result, took) = run_script_within(src, Duration::from_secs(1));
            println!("caught runaway stopped after {took:?}: {result:?}");
            let err = result.unwrap_err();
            assert!(
                err.message.contains("operations (sandbox limit)")
                    || err.message.contains("(time limit)"),
                "{src}: {err}"
            );
            assert!(took < SOON, "{src} took {took:?}");
        }
        // Catching ordinary errors still works.
        assert_eq!(
            run_script(r#"try { [1].reduce(|s, x| throw "ordinary", 0) } catch { return true; }"#),
            Ok(ScriptVerdict::Pass)
        );
    }

    #[test]
    fn ordinary_scripts_are_not_limited() {
        // A whole request's worth of helper calls, well within both limits, on any thread.
        let src = r#"
            let total = 0;
            for i in 0..100 { total += i; }
            if seoul_hour(now) >= 10 && one_of(order_id, ["vip-7"]) && total == 4950 {
                true
            } else {
                "refused"
            }
        "#;
        let (result, took) = run_script_within(src, Duration::from_secs(1));
        println!("ordinary script took {took:?}");
        assert_eq!(result, Ok(ScriptVerdict::Pass));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(run_script(src), Ok(ScriptVerdict::Pass)));
            }
        });
        // The budget is per evaluation: it does not linger on the thread afterwards.
        assert_eq!((STOP_AT.get(), STOPPED.get()), (None, None));
    }

    #[test]
    fn a_shadow_cut_off_names_itself() {
        let engine = ScriptEngine::new();
        let ast = engine.compile_script(HEAVY).unwrap();
        let scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), false);
        let err = engine
            .eval_script(
                &scope,
                &ast,
                TimeLeft::ShadowCutoff(Duration::from_millis(5)),
            )
            .unwrap_err();
        assert!(
            err.message.starts_with(
                "script stopped after 5 ms (shadow rule cut off to keep the deadline for enforced rules)"
            ),
            "{err}"
        );
        // A cheap expression completes with a little time left; past the cut-off, with none
        // left, even it is stopped (once the clock was read only every 64 operations, an
        // expression of fewer went through; the clock is read at every operation now: one
        // operation can be a long copy).
        let ast = engine.compile_expression("amount > 1000", &[]).unwrap();
        let mut scope = scope;
        let mut eval = |left| engine.eval_bool(&mut scope, &ast, &mut None, left);
        assert_eq!(
            eval(TimeLeft::ShadowCutoff(Duration::from_millis(20))),
            Ok(true)
        );
        let err = eval(TimeLeft::ShadowCutoff(Duration::ZERO)).unwrap_err();
        assert!(
            err.message
                .starts_with("script stopped after 0 ms (shadow rule cut off"),
            "{err}"
        );
    }
}
