//! The single, shared Rhai engine: sandbox limits, helper functions, and the scope a request
//! is seen through. Compiled ASTs live in `Rules`; this module never compiles per request.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike};
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position, Scope, AST, INT};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::payload::ConfirmRequest;

pub mod native;
mod numbers;

/// Sandbox limits. An operation is roughly one expression node; 200k of them run in a few
/// milliseconds, far more than a rule needs and far less than PortOne's timeout. Operations
/// of closures that native functions call back (`reduce`, `map`, …) count too (`on_operation`).
pub const MAX_OPERATIONS: u64 = 200_000;
/// Wall-time limit of one evaluation (a `when`, a `require`, one `script:` run), besides
/// [`MAX_OPERATIONS`]: some operations are expensive (sorting a 10,000-item array, changing the
/// case of a 64 KiB string), and 200k of those take seconds. Rhai runs synchronously on a
/// runtime worker, where the request's deadline timer cannot interrupt it, so the script has to
/// stop itself. Legitimate rule scripts take microseconds; 50 ms is a thousand times that, and
/// still short enough that a runaway blocks a worker only briefly and leaves most of any
/// sensible `deadline` for the answer. A request whose deadline is nearer gets less
/// (see [`ScriptEngine::eval_bool`]).
pub const MAX_RUN_TIME: Duration = Duration::from_millis(50);
/// The clock is read every this many operations (a power of two): often enough that the limit
/// holds to a few milliseconds even for expensive operations, rarely enough to cost nothing
/// measurable (one clock read is about as much as one cheap operation).
const CLOCK_EVERY_OPS: u64 = 64;
const MAX_CALL_LEVELS: usize = 32;
const MAX_EXPR_DEPTH: usize = 64;
const MAX_FN_EXPR_DEPTH: usize = 32;
const MAX_STRING_SIZE: usize = 64 * 1024;
const MAX_ARRAY_SIZE: usize = 10_000;
const MAX_MAP_SIZE: usize = 10_000;

/// Names every expression and script may read.
pub const REQUEST_VARS: [&str; 8] = [
    "order_id", "tx_id", "amount", "store_id", "api", "payload", "now", "fetched",
];

/// Appended to the error of a rule that tried to change a request variable.
const READ_ONLY_HINT: &str =
    " (the request variables are read-only; copy one with `let` to work on a copy)";

/// Korea has no daylight saving time, so a fixed offset is exact.
const SEOUL_OFFSET_SECS: i32 = 9 * 3600;

/// A compile error with its 1-based position inside the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// A run-time failure of an expression or script (including sandbox limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", position.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
pub struct ScriptError {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

/// What a `script:` rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptVerdict {
    Pass,
    /// `false` (None: use the rule's reason) or a string (that string is the reason).
    Refuse(Option<String>),
}

/// What is left of the time an evaluation may take (it never gets more than [`MAX_RUN_TIME`]),
/// and why: the cause is named in the error of an evaluation stopped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLeft {
    /// What is left of the request's deadline (enforced rules).
    Deadline(Duration),
    /// What is left before the shadow cut-off (shadow rules; see `engine`).
    ShadowCutoff(Duration),
}

impl TimeLeft {
    fn duration(self) -> Duration {
        match self {
            TimeLeft::Deadline(d) | TimeLeft::ShadowCutoff(d) => d,
        }
    }

    /// Why an evaluation stopped by this limit stopped.
    fn cause(self) -> &'static str {
        match self {
            TimeLeft::Deadline(_) => "the request's deadline",
            TimeLeft::ShadowCutoff(_) => {
                "shadow rule cut off to keep the deadline for enforced rules"
            }
        }
    }
}

/// Which limit stopped an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Operations,
    Time,
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
    /// The limit that stopped the evaluation. Once set, every further operation fails too, so a
    /// `try`/`catch` around a callback (where the stop arrives wrapped, hence catchable)
    /// cannot swallow it and carry on.
    static STOPPED: Cell<Option<Limit>> = const { Cell::new(None) };
}

/// Installs a budget on this thread for one evaluation; restores the previous one when
/// dropped (also if the evaluation unwinds).
struct Budgeted {
    previous: (u64, Option<Instant>, Option<Limit>),
}

impl Budgeted {
    fn start(stop_at: Instant) -> Self {
        Budgeted {
            previous: (
                OPS.replace(0),
                STOP_AT.replace(Some(stop_at)),
                STOPPED.take(),
            ),
        }
    }

    /// The limit hit during the evaluation, if any.
    fn finish(self) -> Option<Limit> {
        STOPPED.get()
    }
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        let (ops, stop_at, stopped) = self.previous;
        OPS.set(ops);
        STOP_AT.set(stop_at);
        STOPPED.set(stopped);
    }
}

/// Rhai's progress callback, called at every operation; `Some` terminates the script
/// (`ErrorTerminated`, which a script cannot catch unless it comes out of a callback).
/// Counting is all most operations cost; every [`CLOCK_EVERY_OPS`]th reads the clock.
fn on_operation(_rhai_count: u64) -> Option<Dynamic> {
    let ops = OPS.get() + 1;
    OPS.set(ops);
    if ops % CLOCK_EVERY_OPS != 0 && ops <= MAX_OPERATIONS {
        return None;
    }
    check_budget(ops)
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

/// `50 ms`, `12.5 ms`.
fn format_ms(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

/// The shared engine. Built once per process; `Engine` is `Send + Sync` with rhai's `sync`.
pub struct ScriptEngine {
    engine: Engine,
}

impl Default for ScriptEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptEngine")
    }
}

impl ScriptEngine {
    pub fn new() -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(MAX_OPERATIONS)
            .set_max_call_levels(MAX_CALL_LEVELS)
            .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH)
            .set_max_string_size(MAX_STRING_SIZE)
            .set_max_array_size(MAX_ARRAY_SIZE)
            .set_max_map_size(MAX_MAP_SIZE)
            // A misspelt variable is a load error, not a surprise at payment time.
            .set_strict_variables(true)
            .set_fail_on_invalid_map_property(false);
        // `eval` would compile code at run time, outside every check made at load.
        engine.disable_symbol("eval");
        // Bounds wall time (MAX_RUN_TIME), and operations inside callbacks; see `eval`.
        engine.on_progress(on_operation);
        engine.on_print(|s| tracing::info!(target: "confirm_proxy::script", "{s}"));
        engine.on_debug(|s, _, pos| tracing::debug!(target: "confirm_proxy::script", %pos, "{s}"));
        register_helpers(&mut engine);
        // `amount < 2000.0` with a fractional amount (a Decimal): exact, not an error.
        numbers::register(&mut engine);
        ScriptEngine { engine }
    }

    /// Compiles a boolean expression (`when`, `require`); `extra` names more variables in scope.
    pub fn compile_expression(&self, src: &str, extra: &[&str]) -> Result<AST, CompileError> {
        self.engine
            .compile_expression_with_scope(&compile_scope(extra), src)
            .map_err(|e| compile_error(e.to_string(), e.position(), &e.0.to_string()))
    }

    /// Compiles a whole script file.
    pub fn compile_script(&self, src: &str) -> Result<AST, CompileError> {
        self.engine
            .compile_with_scope(&compile_scope(&[]), src)
            .map_err(|e| compile_error(e.to_string(), e.position(), &e.0.to_string()))
    }

    /// Evaluates a boolean expression; anything but a bool is an error. It stops when
    /// `time_left` runs out, or after [`MAX_RUN_TIME`] if that is sooner. For the `require` of
    /// a `fetch` rule, `response` (read-only, as [`RequestScope::set_fetched`] returns it) is in
    /// scope too.
    ///
    /// Expressions run on the request's scope itself (no copy): an expression cannot hold a
    /// statement (Rhai's expression parser rejects assignments, blocks and `fn`, closure bodies
    /// included), and mutating methods fail on the read-only request variables, so no
    /// expression can change them. (Scripts can: see [`eval_script`](Self::eval_script).)
    pub fn eval_bool(
        &self,
        scope: &mut RequestScope,
        ast: &AST,
        response: Option<Dynamic>,
        time_left: TimeLeft,
    ) -> Result<bool, ScriptError> {
        let len = scope.scope.len();
        if let Some(response) = response {
            scope.scope.push_constant_dynamic("response", response);
        }
        let result = self.eval(&mut scope.scope, ast, time_left);
        scope.scope.rewind(len);
        scope.repair();
        as_bool(result?)
    }

    /// Runs a script rule: `true` or `()` pass, `false` refuses, a string refuses with itself.
    /// It stops when `time_left` runs out, or after [`MAX_RUN_TIME`] if that is sooner.
    ///
    /// A script runs on its own copy of the request variables, dropped afterwards. Assigning
    /// to one of them, or calling a mutating method on it, fails (they are constants), but
    /// Rhai lets a few assignments through: a new key in a constant map (`fetched.x = 1`, also
    /// through `this` in a script function), a character of a constant string
    /// (`order_id[0] = 'q'`), bits of a constant integer (`amount[20] = true`). Those change
    /// only the copy, never what the rules after it see.
    pub fn eval_script(
        &self,
        scope: &RequestScope,
        ast: &AST,
        time_left: TimeLeft,
    ) -> Result<ScriptVerdict, ScriptError> {
        let mut copy = scope.copy();
        let result = self.eval(&mut copy, ast, time_left)?;
        if result.is_unit() {
            return Ok(ScriptVerdict::Pass);
        }
        if let Ok(b) = result.as_bool() {
            return Ok(if b {
                ScriptVerdict::Pass
            } else {
                ScriptVerdict::Refuse(None)
            });
        }
        if result.is_string() {
            return Ok(ScriptVerdict::Refuse(Some(result.to_string())));
        }
        Err(ScriptError {
            message: format!(
                "script returned {}, expected true, false, () or a string",
                result.type_name()
            ),
            position: None,
        })
    }

    fn eval(
        &self,
        scope: &mut Scope<'static>,
        ast: &AST,
        time_left: TimeLeft,
    ) -> Result<Dynamic, ScriptError> {
        let limit = time_left.duration().min(MAX_RUN_TIME);
        // Scripts may declare variables; drop them so the next rule sees a clean scope.
        let len = scope.len();
        let budget = Budgeted::start(Instant::now() + limit);
        let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, ast);
        let stopped = budget.finish();
        scope.rewind(len);
        let Some(stopped) = stopped else {
            return result.map_err(|e| script_error(&e));
        };
        // A stopped script is an error even if it caught the stop and returned.
        let message = match stopped {
            Limit::Operations => operations_message(),
            Limit::Time if limit < MAX_RUN_TIME => format!(
                "script stopped after {} ({})",
                format_ms(limit),
                time_left.cause()
            ),
            Limit::Time => format!("script stopped after {} (time limit)", format_ms(limit)),
        };
        Err(ScriptError {
            message,
            position: result
                .err()
                .and_then(|e| position(root_cause(&e).position())),
        })
    }
}

fn as_bool(result: Dynamic) -> Result<bool, ScriptError> {
    result.as_bool().map_err(|t| ScriptError {
        message: format!("expression returned {t}, expected a bool (true or false)"),
        position: None,
    })
}

fn compile_scope(extra: &[&str]) -> Scope<'static> {
    let mut scope = Scope::new();
    for name in REQUEST_VARS.iter().chain(extra) {
        scope.push_dynamic(*name, Dynamic::UNIT);
    }
    scope
}

fn compile_error(full: String, pos: Position, bare: &str) -> CompileError {
    // rhai's Display appends " (line L, position C)"; we report the position ourselves.
    let message = if bare.is_empty() {
        full
    } else {
        bare.to_owned()
    };
    CompileError {
        message: message.to_lowercase_first(),
        line: pos.line().unwrap_or(1),
        column: pos.position().unwrap_or(1),
    }
}

fn operations_message() -> String {
    format!("script stopped after {MAX_OPERATIONS} operations (sandbox limit)")
}

/// The error inside the function calls it came through.
fn root_cause(e: &EvalAltResult) -> &EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => root_cause(inner),
        other => other,
    }
}

fn script_error(e: &EvalAltResult) -> ScriptError {
    let pos = e.position();
    let message = match root_cause(e) {
        EvalAltResult::ErrorTooManyOperations(_) => operations_message(),
        cause => {
            let mut s = e.to_string();
            if let Some(i) = s.rfind(" (line ") {
                s.truncate(i);
            }
            if matches!(
                cause,
                EvalAltResult::ErrorAssignmentToConstant(..)
                    | EvalAltResult::ErrorNonPureMethodCallOnConstant(..)
            ) {
                s.push_str(READ_ONLY_HINT);
            }
            s
        }
    };
    ScriptError {
        message: message.to_lowercase_first(),
        position: position(pos),
    }
}

fn position(pos: Position) -> Option<(usize, usize)> {
    pos.line().map(|l| (l, pos.position().unwrap_or(1)))
}

trait LowercaseFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowercaseFirst for String {
    fn to_lowercase_first(&self) -> String {
        let mut chars = self.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// The request as expressions and scripts see it: [`REQUEST_VARS`], built once per request
/// and shared by all its rules.
///
/// Every request variable is a Rhai constant, so no rule can change what the rules after it
/// see: an assignment (`amount = 1`, `payload.x.y = 1`) or a mutating method call
/// (`order_id.clear()`, `fetched.clear()`) is an error, which the rule's `on_error` handles.
/// Expressions run on this scope directly, scripts on a copy (see
/// [`ScriptEngine::eval_script`]). Only the engine changes it, to record a fetch
/// ([`set_fetched`](Self::set_fetched)).
pub struct RequestScope {
    /// The request variables, in [`REQUEST_VARS`] order, every one read-only and none shared.
    scope: Scope<'static>,
}

impl RequestScope {
    /// The request's variables. `with_payload: false` leaves `payload` as `()`: converting
    /// the whole body is the most expensive part, and rulesets that never mention `payload`
    /// skip it.
    pub fn new(req: &ConfirmRequest, now: DateTime<FixedOffset>, with_payload: bool) -> Self {
        let payload = if with_payload {
            json_to_dynamic(req.payload.value())
        } else {
            Dynamic::UNIT
        };
        let values = [
            req.order_id.clone().into(),
            req.tx_id.clone().into(),
            amount_dynamic(req.amount.value(), req.amount.as_i64()),
            req.store_id.clone().map_or(Dynamic::UNIT, Dynamic::from),
            req.api.as_str().into(),
            payload,
            Dynamic::from_int(now.timestamp_millis()),
            Dynamic::from_map(Map::new()),
        ];
        RequestScope {
            scope: template_with(values.map(Dynamic::into_read_only)),
        }
    }

    /// No variables, for rulesets that run no Rhai (nothing is built per request).
    pub fn empty() -> Self {
        RequestScope {
            scope: Scope::new(),
        }
    }

    /// The value of a request variable (`None` if it does not exist, or in an empty scope).
    pub fn get(&self, name: &str) -> Option<Dynamic> {
        self.scope.get(name).map(Dynamic::flatten_clone)
    }

    /// Records a fetch result under `fetched[rule]` (read-only, as every request variable)
    /// for later rules; returns `response` for the rule's own `require`
    /// ([`ScriptEngine::eval_bool`] makes it a constant there).
    pub fn set_fetched(&mut self, rule: &str, response: Dynamic) -> Dynamic {
        if self.scope.is_empty() {
            return response;
        }
        self.repair();
        if let Some(fetched) = self.scope.get_value_mut::<Map>("fetched") {
            // A clone is writable (Rhai's `Dynamic::clone` drops the access mode).
            fetched.insert(rule.into(), response.clone().into_read_only());
        }
        response
    }

    /// A closure that captures a request variable turns it into a shared value in place
    /// (Rhai's `Share` statement); it keeps its value, but a shared value could be changed
    /// through another handle to it, and `get_value_mut` does not take one. Put back plain
    /// copies.
    fn repair(&mut self) {
        if self.scope.iter_raw().any(|(_, _, v)| v.is_shared()) {
            self.scope = self.copy();
        }
    }

    /// A copy of the variables sharing nothing with these, read-only too (Rhai's
    /// `Dynamic::clone` drops the access mode, so it is set again).
    fn copy(&self) -> Scope<'static> {
        if self.scope.is_empty() {
            return Scope::new();
        }
        template_with(REQUEST_VARS.map(|name| {
            self.scope
                .get(name)
                .map_or(Dynamic::UNIT, Dynamic::flatten_clone)
                .into_read_only()
        }))
    }
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.scope.iter_raw().map(|(name, _, value)| (name, value)))
            .finish()
    }
}

/// A scope of [`REQUEST_VARS`] holding `values` (in that order) as they are: read-only values
/// make read-only variables (Rhai keeps a variable's access mode in its value).
fn template_with(values: [Dynamic; REQUEST_VARS.len()]) -> Scope<'static> {
    // Cloning a scope shares its variable names; pushing would allocate each name anew.
    static TEMPLATE: LazyLock<Scope<'static>> = LazyLock::new(|| compile_scope(&[]));
    let mut scope = TEMPLATE.clone();
    for (name, value) in REQUEST_VARS.iter().zip(values) {
        // The template's variables are writable, so `get_mut` finds every one.
        if let Some(slot) = scope.get_mut(name) {
            *slot = value;
        }
    }
    scope
}

/// Integers stay `INT` so `amount >= 1000` reads naturally; fractions are exact `Decimal`s.
fn amount_dynamic(value: Decimal, as_int: Option<i64>) -> Dynamic {
    match as_int {
        Some(i) => Dynamic::from_int(i),
        None => Dynamic::from_decimal(value),
    }
}

/// JSON → Rhai, keeping integers as `INT` and other numbers exact where they fit.
pub fn json_to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Dynamic::from_int(i)
            } else if let Ok(d) = n.to_string().parse::<Decimal>() {
                Dynamic::from_decimal(d)
            } else {
                Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => s.clone().into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        Value::Object(obj) => Dynamic::from_map(
            obj.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    }
}

fn seoul(now_ms: INT) -> Option<DateTime<FixedOffset>> {
    FixedOffset::east_opt(SEOUL_OFFSET_SECS)?
        .timestamp_millis_opt(now_ms)
        .single()
}

/// `1234567` → `"1,234,567"`; keeps a fractional part as written.
pub fn format_amount_text(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(text.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

fn register_helpers(engine: &mut Engine) {
    const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    engine.register_fn("seoul_date", |now: INT| {
        seoul(now).map_or(String::new(), |t| t.format("%Y-%m-%d").to_string())
    });
    engine.register_fn("seoul_time", |now: INT| {
        seoul(now).map_or(String::new(), |t| t.format("%H:%M").to_string())
    });
    engine.register_fn("seoul_hour", |now: INT| {
        seoul(now).map_or(-1, |t| INT::from(t.hour()))
    });
    engine.register_fn("seoul_minute", |now: INT| {
        seoul(now).map_or(-1, |t| INT::from(t.minute()))
    });
    engine.register_fn("seoul_weekday", |now: INT| {
        seoul(now).map_or("", |t| {
            WEEKDAYS[t.weekday().num_days_from_monday() as usize]
        })
    });
    engine.register_fn("format_amount", |n: INT| format_amount_text(&n.to_string()));
    engine.register_fn("format_amount", |d: Decimal| {
        format_amount_text(&d.to_string())
    });
    engine.register_fn("one_of", |x: &str, list: rhai::Array| {
        list.iter().any(|item| {
            item.read_lock::<rhai::ImmutableString>()
                .is_some_and(|s| s.as_str() == x)
        })
    });
    // An absent field (`store_id` of a V1 payment, `payload.coupon` not sent) is `()`: it is
    // blank and in no list, rather than a "function not found" error decision.
    engine.register_fn("one_of", |_: (), list: rhai::Array| {
        list.iter().any(rhai::Dynamic::is_unit)
    });
    engine.register_fn("is_blank", |s: &str| s.trim().is_empty());
    engine.register_fn("is_blank", |_: ()| true);
    // An expression cannot `throw`; this makes "cannot tell" an error (-> on_error) rather than
    // a refusal with the rule's reason: `if response.status == 200 { … } else { fail("…") }`.
    engine.register_fn(
        "fail",
        |message: &str| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            Err(Box::new(rhai::EvalAltResult::ErrorRuntime(
                message.into(),
                rhai::Position::NONE,
            )))
        },
    );
    engine.register_fn("before", |s: &str, sep: &str| {
        s.split_once(sep).map_or(s, |(head, _)| head).to_owned()
    });
    engine.register_fn("after", |s: &str, sep: &str| {
        s.split_once(sep).map_or("", |(_, tail)| tail).to_owned()
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The whole time budget: no deadline is near.
    const FULL: TimeLeft = TimeLeft::Deadline(MAX_RUN_TIME);
    use crate::payload::{parse, Parsed};
    use std::time::Instant;

    fn request(body: &str) -> ConfirmRequest {
        match parse(Some("application/json"), body.as_bytes()).unwrap() {
            Parsed::Confirm(r) => r,
            Parsed::Ignored { .. } => unreachable!(),
        }
    }

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap()
    }

    fn eval_expr(src: &str, body: &str) -> Result<bool, ScriptError> {
        let engine = ScriptEngine::new();
        let ast = engine.compile_expression(src, &[]).unwrap();
        let mut scope = RequestScope::new(&request(body), at("2026-12-01T12:30:00+09:00"), true);
        engine.eval_bool(&mut scope, &ast, None, FULL)
    }

    fn run_script(src: &str) -> Result<ScriptVerdict, ScriptError> {
        let engine = ScriptEngine::new();
        let ast = engine.compile_script(src).unwrap();
        let scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        engine.eval_script(&scope, &ast, FULL)
    }

    const V1: &str =
        r#"{"imp_uid":"imp_1","merchant_uid":"vip-7","amount":50000,"custom":{"tier":"gold"}}"#;

    #[test]
    fn expressions_see_the_request() {
        assert_eq!(
            eval_expr(r#"order_id.starts_with("vip-") && amount == 50000"#, V1),
            Ok(true)
        );
        assert_eq!(
            eval_expr(r#"payload.custom.tier == "gold" && api == "v1""#, V1),
            Ok(true)
        );
        assert_eq!(eval_expr("store_id == ()", V1), Ok(true));
        assert_eq!(eval_expr(r#"fetched["stock"] == ()"#, V1), Ok(true));
        let frac = r#"{"imp_uid":"i","merchant_uid":"m","amount":10.5}"#;
        assert_eq!(eval_expr("amount > 10 && amount < 11", frac), Ok(true));
    }

    #[test]
    fn non_bool_expression_is_an_error() {
        let err = eval_expr("amount + 1", V1).unwrap_err();
        assert!(err.message.contains("expected a bool"), "{err}");
    }

    #[test]
    fn unknown_variables_fail_at_compile_time() {
        let err = ScriptEngine::new()
            .compile_expression("order_idd == \"x\"", &[])
            .unwrap_err();
        assert!(err.message.contains("order_idd"), "{err:?}");
        assert_eq!((err.line, err.column), (1, 1));
        // `response` exists only where the caller says so.
        assert!(ScriptEngine::new()
            .compile_expression("response.status == 200", &[])
            .is_err());
        assert!(ScriptEngine::new()
            .compile_expression("response.status == 200", &["response"])
            .is_ok());
    }

    #[test]
    fn eval_and_imports_are_not_available() {
        assert!(ScriptEngine::new().compile_script("eval(\"1\")").is_err());
        assert!(ScriptEngine::new()
            .compile_script("import \"x\" as y;")
            .is_err());
    }

    #[test]
    fn script_return_conventions() {
        assert_eq!(run_script("true"), Ok(ScriptVerdict::Pass));
        assert_eq!(run_script("let x = 1;"), Ok(ScriptVerdict::Pass));
        assert_eq!(run_script("false"), Ok(ScriptVerdict::Refuse(None)));
        assert_eq!(
            run_script(r#"if amount > 1000 { "한도 초과: " + format_amount(amount) + "원" }"#),
            Ok(ScriptVerdict::Refuse(Some("한도 초과: 50,000원".into())))
        );
        assert!(run_script("42")
            .unwrap_err()
            .message
            .contains("expected true, false"));
    }

    #[test]
    fn runaway_scripts_stop_quickly() {
        for (src, what) in [
            ("loop {}", "operations"),
            ("let s = \"x\"; loop { s += s; }", "length"),
            ("let a = []; loop { a.push(1); }", "size"),
            ("fn f(x) { f(x + 1) } f(0)", "stack"),
        ] {
            let started = Instant::now();
            let err = run_script(src).unwrap_err();
            let took = started.elapsed();
            assert!(
                err.message.to_lowercase().contains(what) || err.message.contains("limit"),
                "{src}: {err}"
            );
            // Generous: the point is "milliseconds, not a hang"; the benchmark gives the number.
            assert!(took.as_secs() < 5, "{src} took {took:?}");
        }
    }

    /// Each operation of this script is expensive (cloning and sorting 9,000 items, changing
    /// the case of 60 KB): 200,000 of them took 8 s, overrunning a 1 s deadline, before
    /// evaluations had a time limit. The engine's tests use it too.
    pub(crate) const HEAVY: &str = r#"
        let a = [];
        for i in 0..9000 { a.push(9000 - i); }
        let s = "";
        for i in 0..6000 { s += "0123456789"; }
        loop {
            let b = a;
            b.sort();
            s.to_upper();
        }
    "#;

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
        // Generous for slow CI and debug builds; it stops a few ms after MAX_RUN_TIME.
        assert!(took < Duration::from_millis(500), "took {took:?}");
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
        assert!(took < Duration::from_millis(250), "took {took:?}");
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
                .eval_bool(&mut scope, &ast, None, TimeLeft::Deadline(Duration::from_secs(1)))
                .unwrap_err();
            let took = started.elapsed();
            println!("{src}: {took:?}: {err}");
            assert!(limits.iter().any(|l| err.message.contains(l)), "{src}: {err}");
            assert!(took < Duration::from_millis(500), "{src} took {took:?}");
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
        ] {
            let (result, took) = run_script_within(src, Duration::from_secs(1));
            println!("caught runaway stopped after {took:?}: {result:?}");
            let err = result.unwrap_err();
            assert!(
                err.message.contains("operations (sandbox limit)")
                    || err.message.contains("(time limit)"),
                "{src}: {err}"
            );
            assert!(took < Duration::from_millis(500), "{src} took {took:?}");
        }
        // Catching ordinary errors still works.
        assert_eq!(
            run_script("try { [1].reduce(|s, x| s.nope(), 0) } catch { true }"),
            Ok(ScriptVerdict::Pass)
        );
    }

    #[test]
    fn ordinary_scripts_are_not_limited() {
        // A whole request's worth of helper calls, well within both limits, on any thread.
        let src = r#"
            let total = 0;
            for i in 0..1000 { total += i; }
            if seoul_hour(now) >= 10 && one_of(order_id, ["vip-7"]) && total == 499500 {
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

    /// `(order_id, amount, payload, fetched)` as the scope holds them now.
    fn request_vars(scope: &RequestScope) -> String {
        ["order_id", "amount", "payload", "fetched"]
            .map(|n| format!("{n}={:?}", scope.get(n).unwrap()))
            .join(" ")
    }

    fn scope_with_fetch() -> RequestScope {
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let response =
            json_to_dynamic(&serde_json::json!({"status": 200, "body": {"available": 0}}));
        let _ = scope.set_fetched("stock", response);
        scope
    }

    #[test]
    fn request_variables_are_read_only_to_scripts() {
        let engine = ScriptEngine::new();
        let mut scope = scope_with_fetch();
        let before = request_vars(&scope);
        for (src, message) in [
            ("amount = 999999; true", "cannot modify constant amount"),
            (
                r#"order_id = "qa-1"; true"#,
                "cannot modify constant order_id",
            ),
            ("amount += 1; true", "cannot modify constant amount"),
            (
                r#"payload.custom.tier = "x"; true"#,
                "cannot modify constant payload",
            ),
            (
                "fetched.stock.body.available = 9; true",
                "cannot modify constant fetched",
            ),
            (
                "fetched.stock.status += 1; true",
                "cannot modify constant fetched",
            ),
            ("now = 0; true", "cannot modify constant now"),
            (
                "order_id.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                r#"payload.custom.remove("tier"); true"#,
                "'remove' cannot be called on constant",
            ),
            (
                "fetched.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                "fetched.stock.body.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                "fn f() { this.status = 1 } fetched.stock.f(); true",
                "cannot modify constant",
            ),
            (
                "let f = || { amount = 1 }; f.call(); true",
                "cannot modify constant amount",
            ),
        ] {
            let ast = engine.compile_script(src).unwrap();
            let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
            assert!(err.message.to_lowercase().contains(message), "{src}: {err}");
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        let ast = engine.compile_script("\n amount = 1;").unwrap();
        let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot modify constant amount (the request variables are read-only; copy one with `let` to work on a copy) (line 2, column 2)"
        );
        // Rhai lets a script add keys to a constant map, and its own variables may shadow the
        // request's: both change only the script's copy.
        for src in [
            r#"payload.extra = 1; payload.custom.extra = 1; fetched.stock.body.extra = 1; payload.len() == 5"#,
            r#"fetched["fake"] = #{ status: 200 }; fetched.len() == 2"#,
            "fn f() { this.fake = 1 } fetched.f(); fetched.len() == 2",
            "let f = || { fetched.fake = 1; }; f.call(); fetched.len() == 2",
            r#"let amount = 999999; let order_id = "qa-1"; amount == 999999"#,
            r#"order_id[0] = 'q'; order_id[1] = 'a'; order_id.starts_with("qa")"#,
            "amount[20] = true; amount[0..3] = 7; amount > 1000000",
            "payload.custom.tier[0] = 'G'; fetched.stock.body.available[0] = true; true",
        ] {
            let ast = engine.compile_script(src).unwrap();
            assert_eq!(
                engine.eval_script(&scope, &ast, FULL),
                Ok(ScriptVerdict::Pass),
                "{src}"
            );
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        // The scope still works as before: expressions read it, fetches add to it.
        let ast = engine
            .compile_expression(
                r#"order_id == "vip-7" && amount == 50000 && fetched.len() == 1"#,
                &[],
            )
            .unwrap();
        assert_eq!(engine.eval_bool(&mut scope, &ast, None, FULL), Ok(true));
    }

    #[test]
    fn request_variables_are_read_only_to_expressions() {
        let engine = ScriptEngine::new();
        let mut scope = scope_with_fetch();
        let before = request_vars(&scope);
        for src in [
            "order_id.clear() == ()",
            "fetched.stock.body.clear() == ()",
            "payload.custom.remove(\"tier\") == ()",
            "fetched.remove(\"stock\") == ()",
        ] {
            let ast = engine.compile_expression(src, &[]).unwrap();
            let err = engine.eval_bool(&mut scope, &ast, None, FULL).unwrap_err();
            assert!(
                err.message.contains("cannot be called on constant"),
                "{src}: {err}"
            );
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        // Statements, assignments included, are not expressions at all.
        for src in [
            "amount = 1",
            "order_id[0] = 'q'",
            "{ fetched.x = 1; true }",
            "[1].all(|x| { amount = x; true })",
        ] {
            assert!(engine.compile_expression(src, &[]).is_err(), "{src}");
        }
        // A closure capturing request variables makes them shared; they are put back as
        // plain values, and recording a fetch afterwards still works.
        let ast = engine
            .compile_expression(
                "[1].filter(|x| x < amount && fetched.len() == 1 && order_id != \"\").len() == 1",
                &[],
            )
            .unwrap();
        assert_eq!(engine.eval_bool(&mut scope, &ast, None, FULL), Ok(true));
        assert!(scope
            .scope
            .iter_raw()
            .all(|(_, constant, v)| constant && !v.is_shared()));
        assert_eq!(request_vars(&scope), before);
        let _ = scope.set_fetched("limits", Dynamic::from_int(1));
        let ast = engine
            .compile_expression("fetched.len() == 2", &[])
            .unwrap();
        assert_eq!(engine.eval_bool(&mut scope, &ast, None, FULL), Ok(true));
        // `response` is read-only too.
        let response =
            scope.set_fetched("more", json_to_dynamic(&serde_json::json!({"body": [1]})));
        let ast = engine
            .compile_expression("response.body.pop() == 1", &["response"])
            .unwrap();
        let err = engine
            .eval_bool(
                &mut scope,
                &ast,
                Some(response),
                TimeLeft::Deadline(MAX_RUN_TIME),
            )
            .unwrap_err();
        assert!(
            err.message.contains("cannot be called on constant"),
            "{err}"
        );
        let ast = engine
            .compile_expression("fetched.more.body == [1]", &[])
            .unwrap();
        assert_eq!(engine.eval_bool(&mut scope, &ast, None, FULL), Ok(true));
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
        // Past the cut-off (no time left), a cheap expression still completes.
        let ast = engine.compile_expression("amount > 1000", &[]).unwrap();
        let mut scope = scope;
        assert_eq!(
            engine.eval_bool(
                &mut scope,
                &ast,
                None,
                TimeLeft::ShadowCutoff(Duration::ZERO)
            ),
            Ok(true)
        );
    }

    #[test]
    fn helpers() {
        // 2026-12-01 12:30 KST is a Tuesday.
        assert_eq!(
            eval_expr(
                r#"seoul_date(now) == "2026-12-01" && seoul_hour(now) == 12 && seoul_minute(now) == 30 && seoul_weekday(now) == "tue" && seoul_time(now) == "12:30""#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"one_of(order_id, ["a", "vip-7"]) && !one_of("z", ["a"])"#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"before(order_id, "-") == "vip" && after(order_id, "-") == "7""#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(r#"is_blank("  ") && !is_blank(order_id)"#, V1),
            Ok(true)
        );
        // V1 has no store_id and this body no coupon: absent values are blank and in no list.
        assert_eq!(
            eval_expr(
                r#"is_blank(store_id) && is_blank(payload.coupon) && !one_of(store_id, ["store-1"]) && one_of(payload.coupon, [()])"#,
                V1
            ),
            Ok(true)
        );
        // fail() is an error with its message, in an expression where `throw` cannot be.
        let e = eval_expr(
            r#"if amount > 0 { fail("stock API answered 401") } else { true }"#,
            V1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("stock API answered 401"), "{e}");
        assert_eq!(format_amount_text("1234567"), "1,234,567");
        assert_eq!(format_amount_text("100"), "100");
        assert_eq!(format_amount_text("1000.5"), "1,000.5");
    }
}
