//! Rhai's errors in the operator's words: one line, at the innermost place that failed,
//! lowercase, with hints where Rhai's own wording would mislead.

use rhai::{EvalAltResult, ParseError, Position};

use super::{lint, CompileError, ScriptError, MAX_OPERATIONS};

/// Appended to the error of a rule that tried to change a request variable.
const READ_ONLY_HINT: &str =
    " (the request variables are read-only; copy one with `let` to work on a copy)";

/// Appended to a size-limit error: what the limits are, and how a large upstream answer, which
/// may hold more than they allow, can still be read — Rhai checks the whole object after a
/// method call on it (it may have grown), and every value a function gives.
fn too_large_hint() -> String {
    use super::{MAX_ARRAY_SIZE, MAX_MAP_SIZE, MAX_STRING_SIZE};
    format!(
        " (sandbox limits: {} KiB of text, {MAX_ARRAY_SIZE} list items, {MAX_MAP_SIZE} map entries, each counted together with everything inside the value; a larger answer can still be read field by field (response.body.items[0].sku), counted with len(response.body.items) and walked with for, but a method called on it (response.body.items.len()) or a value as large made from it fails)",
        MAX_STRING_SIZE / 1024
    )
}

/// Appended to the error of reading a property or an item of `()`.
const UNIT_HINT: &str = " (the value is (): a field missing from the payload or from an answer reads as (); read it with ?. or ?[ (payload.custom_data?.vip), which gives () instead of failing, or test it first (if x != () { … }))";

/// Appended to the error of `()` where text was wanted, such as a map's key.
const UNIT_KEY_HINT: &str = " (the value is (): a field missing from the payload or from an answer reads as (); where it is a map's key, give it a default (limits[store_id ?? \"\"] reads () for a missing key) or test it first (if store_id != () { … }))";

/// A hint for a map key or property that is a word Rhai keeps for itself: `until` (the
/// `window:` check's own key), `in`, `fn` …, which Rhai reports as "expecting name of a
/// property" (or, as a map's first key, "expecting '}' to end this object map literal"), and the
/// words it reserves (`default`, `new`, `case`, `match`, `static`, `null`, `is` …), which it
/// reports as "'default' is a reserved keyword" alone.
fn keyword_hint(src: &str, error: &mut CompileError) {
    let line: Vec<char> = src
        .lines()
        .nth(error.line.saturating_sub(1))
        .unwrap_or_default()
        .chars()
        .collect();
    let at = error.column.saturating_sub(1).min(line.len());
    let is_name = |c: &char| c.is_alphanumeric() || *c == '_';
    let word: String = line[at..].iter().take_while(|c| is_name(c)).collect();
    if word.is_empty() {
        return;
    }
    let before = line[..at].iter().rev().find(|c| !c.is_whitespace());
    let after = line[at + word.chars().count()..]
        .iter()
        .find(|c| !c.is_whitespace());
    let property = before == Some(&'.');
    let key = after == Some(&':');
    // What the property is read from, when it is a name: `payload` in `payload.new`.
    let object: String = if property {
        let dot = line[..at].iter().rposition(|c| *c == '.').unwrap_or(0);
        let end = line[..dot]
            .iter()
            .rposition(|c| !c.is_whitespace())
            .map_or(0, |i| i + 1);
        let name: String = line[..end]
            .iter()
            .rev()
            .take_while(|c| is_name(c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            "x".to_owned()
        } else {
            name
        }
    } else {
        "x".to_owned()
    };
    let quote =
        format!("quote it as a key (#{{\"{word}\": …}}) and read it as {object}[\"{word}\"]");
    let message = &error.message;
    let hint = if message.starts_with("expecting name of a property") {
        if word.is_ascii() {
            format!(": {word} is a word Rhai keeps for itself; {quote}")
        } else {
            // `fetched.쿠폰`: no reserved word, a name beyond ASCII.
            format!(": a property written bare is ASCII letters, digits and _; {quote}")
        }
    } else if *message == format!("'{word}' is a reserved keyword") && (property || key) {
        format!(": a reserved word cannot be a bare map key or property; {quote}")
    } else if message.starts_with("expecting '}' to end this object map literal")
        && key
        && rhai::Token::lookup_symbol_from_syntax(&word).is_some()
    {
        format!(": {word} is a word Rhai keeps for itself; {quote}")
    } else {
        return;
    };
    error.message.push_str(&hint);
}

/// A hint for an undefined variable that is defined, but not where it is read: `response`
/// outside the `require` of a fetch rule (an earlier fetch rule's answer is
/// `fetched["rule-name"]`), and a script's own variable read inside one of its `fn`s, which
/// sees only its parameters.
fn undefined_variable_hint(src: &str, extra: &[&str], error: &mut CompileError) {
    let Some(name) = error.message.strip_prefix("undefined variable: ") else {
        return;
    };
    let name = name.to_owned();
    if name == "response" && !extra.contains(&"response") {
        error.message.push_str(": response is the answer of a fetch rule's own call, seen only in that rule's require; elsewhere read the answer of a fetch rule before this one as fetched[\"rule-name\"] (fetched[\"stock\"].status, fetched[\"stock\"].body)");
        return;
    }
    if let Some(function) = lint::outer_variable_in_fn(src, &name, error.line, error.column) {
        error.message.push_str(&format!(
            ": {name} is the script's, declared outside fn {function}, and a Rhai function sees only its parameters; pass it in: fn {function}(…, {name}) … called as {function}(…, {name})"
        ));
    }
}

/// For an undefined variable no other hint explains: the name closest to it among those it
/// could read (the request's, the caller's, the script's own), when close enough to be a slip.
fn closest_variable(src: &str, extra: &[&str], error: &mut CompileError) {
    let Some(name) = error.message.strip_prefix("undefined variable: ") else {
        return;
    };
    if name.contains(':') {
        return;
    }
    let name = name.to_owned();
    // A fetch rule's `status == 200`: its answer's, not the payment's (a review's was sent to
    // `payload.status`, which loaded and refused every payment).
    if extra.contains(&"response") && matches!(name.as_str(), "status" | "body" | "headers") {
        error.message.push_str(&format!(
            "; this rule's answer is response: response.{name}"
        ));
        return;
    }
    // `merchant_uid`, `paymentId`: what the proxy reads from every format under one name (a
    // trial's `payload.paymentId` loaded, and is in no V2 body's top level).
    if let Some((_, var)) = SAME_AS
        .iter()
        .find(|(fields, _)| fields.contains(&name.as_str()))
    {
        error.message.push_str(&format!(
            "; the body's {name} is {var} here, read from every format (V1 and V2) alike"
        ));
        return;
    }
    let declared = src
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect::<Vec<_>>();
    let declared = declared
        .windows(2)
        .filter(|w| matches!(w[0], "let" | "const"))
        .map(|w| w[1]);
    let names = super::REQUEST_VARS
        .into_iter()
        .chain(extra.iter().copied())
        .chain(declared);
    match crate::suggest::closest(&name, names).filter(|k| *k != name) {
        Some(known) => error.message.push_str(&format!("; did you mean {known}?")),
        // `custom_data.tier`: a field of the body read as if the body's fields were variables.
        None if PAYLOAD_FIELDS.contains(&name.as_str()) => {
            error.message.push_str(&format!(
                "; the request's fields other than order_id, tx_id, amount, store_id and api are read under payload: payload.{name}"
            ));
        }
        None => {}
    }
}

/// Body fields the proxy reads into its own variables, by the variable.
const SAME_AS: [(&[&str], &str); 4] = [
    (&["merchant_uid", "paymentId", "payment_id"], "order_id"),
    (&["imp_uid", "transactionId"], "tx_id"),
    (&["totalAmount", "total_amount"], "amount"),
    (&["storeId"], "store_id"),
];

/// Fields of PortOne's confirm bodies (V1 and V2) an operator may read as variables (not
/// `status`, which in a fetch rule is its answer's).
const PAYLOAD_FIELDS: [&str; 10] = [
    "data",
    "type",
    "timestamp",
    "currency",
    "custom_data",
    "pay_method",
    "pg_provider",
    "buyer_name",
    "buyer_email",
    "buyer_tel",
];

/// A hint for what JavaScript and Python write otherwise, where Rhai's words do not say it:
/// `'text'` (a character literal to Rhai), `and`/`or`, `elif`, `function`, `var`, `null`,
/// `None`, `True`, a C-style `for`, an `if` without braces.
fn slip_hint(src: &str, error: &mut CompileError) {
    let line = src
        .lines()
        .nth(error.line.saturating_sub(1))
        .unwrap_or_default();
    let from: String = line.chars().skip(error.column.saturating_sub(1)).collect();
    let word: String = from
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let before: String = line.chars().take(error.column.saturating_sub(1)).collect();
    // `let null = 1`: a name being declared is no slip of another language's value.
    let declared = before.trim_end().ends_with("let") || before.trim_end().ends_with("const");
    // Rhai words a character it meets inside a name as `unexpected 'Unexpected 'X''`.
    if let Some(inner) = unexpected(&error.message).and_then(unexpected_capitalised) {
        error.message = format!("unexpected '{inner}'");
    }
    let message = error.message.as_str();
    // `unexpected '한'`: a character Rhai has no use for outside quotes, typed by a Korean
    // input method or pasted from a document.
    let foreign = unexpected(message).and_then(|c| {
        let mut chars = c.chars();
        chars
            .next()
            .filter(|c| !c.is_ascii() && chars.next().is_none())
    });
    if let Some(c) = foreign {
        // A no-break space or a zero-width one, pasted with an expression: shown as it is,
        // `unexpected ' '` or `unexpected ''` names nothing.
        if let Some((name, fix)) = crate::text::unseen(c) {
            error.message = format!("unexpected {name}: {fix}");
            return;
        }
        let hint = match c {
            '“' | '”' | '‘' | '’' => {
                "a curly quote, as a word processor types it: write straight quotes — ' around the whole value in YAML, \" around text inside the expression (require: '!order_id.starts_with(\"vip-\")')".to_owned()
            }
            // Full-width forms of ASCII (`；`, `＞`, `（`) from a Korean input method.
            '\u{FF01}'..='\u{FF5E}' => {
                let ascii = char::from_u32(c as u32 - 0xFEE0).unwrap_or(c);
                format!("a full-width {c}: type the ASCII {ascii}")
            }
            c if c.is_alphabetic() => {
                "names of variables and functions are ASCII letters, digits and _ (한도 → limit); text in Korean goes inside quotes".to_owned()
            }
            _ => return,
        };
        error.message.push_str(": ");
        error.message.push_str(&hint);
        return;
    }
    // `amount < 100,000`, `let limit = 1,000,000;`: a comma where the number goes on.
    let digits_after = from.get(1..).unwrap_or_default();
    let thousands = from.starts_with(',')
        && before.ends_with(|c: char| c.is_ascii_digit())
        && digits_after.len() >= 3
        && digits_after.bytes().take(3).all(|b| b.is_ascii_digit());
    let hint = if thousands
        && (message == "unexpected ','" || message == "expecting ';' to terminate this statement")
    {
        "write numbers without thousands separators (1000000, not 1,000,000; Rhai takes 1_000_000)"
    } else if message.starts_with("invalid character: ") && from.starts_with('\'') {
        "text is written in double quotes (\"store-a\"); single quotes hold one character"
    } else if (message == "expecting ';' to terminate this statement"
        || message.starts_with("unexpected '"))
        && matches!(word.as_str(), "and" | "or")
    {
        if word == "and" {
            "Rhai writes and as &&"
        } else {
            "Rhai writes or as ||"
        }
    } else if message == "expecting '{' to start a statement block" {
        match word.as_str() {
            "and" => "Rhai writes and as &&",
            "or" => "Rhai writes or as ||",
            _ if line.trim_start().starts_with("if") => {
                "an if's branches are blocks in braces: if amount > 5 { return false; }"
            }
            _ => return,
        }
    } else if message.starts_with("undefined variable: ")
        && from[word.len()..]
            .trim_start_matches(|c: char| c == ')' || c.is_whitespace())
            .starts_with("=>")
    {
        "a closure is written |x| x.qty > 1, not x => …"
    } else if message == "undefined variable: Math" {
        "Rhai has no Math; max(a, b), min(a, b), abs(x), floor(x) are functions of their own"
    } else if !declared
        && (message.starts_with("undefined variable: ")
            || message.ends_with("is a reserved keyword"))
    {
        match word.as_str() {
            "elif" => "Rhai writes else if",
            "not" => "Rhai writes not as ! (!is_blank(x))",
            "function" | "def" => "a function is written fn name(a, b) { … }",
            "var" => "a variable is declared with let (const for one never assigned again)",
            "null" | "None" | "nil" | "undefined" => "Rhai's value for nothing is ()",
            "True" | "False" => "Rhai writes true and false in lower case",
            "import" | "export" => "scripts cannot import modules (each script is one file, run sandboxed); write the functions it needs in it",
            _ => return,
        }
    } else if let Some(op) = message
        .strip_prefix("unexpected ''")
        .and_then(|rest| rest.split_once("' is not a valid operator. This is not JavaScript!"))
        .map(|(op, _)| op.to_owned())
    {
        // Rhai's own words, quoted twice and addressed to a programmer.
        let instead = if op == "!==" { "!=" } else { "==" };
        error.message = format!("{op} is not an operator in Rhai: write {instead}");
        return;
    } else if message == "unexpected '='" {
        "= gives a variable a value; compare with == (order_id == \"x\")"
    } else if message == "unexpected '=>'"
        && !from
            .get(2..)
            .unwrap_or_default()
            .trim_start()
            .starts_with('{')
    {
        "greater than or equal is written >= (amount >= 1000); a closure is written |x| …"
    } else if message == "script is incomplete" {
        "a value is missing after its last operator (&&, ||, ==, +), or a bracket or a quote is not closed"
    } else if message == "unknown operator: '?'" {
        "Rhai has no c ? a : b; write if c { a } else { b }"
    } else if message == "unknown operator: '++'" {
        "Rhai has no ++; write n += 1"
    } else if message == "unknown operator: '--'" {
        "Rhai has no --; write n -= 1"
    } else if message == "expecting a boolean expression, not a string" {
        "&& and || join conditions; to refuse with a reason, return it: if !ok { return \"reason\"; }"
    } else if message == "expecting ';' to terminate this statement" && word == "fn" {
        "the statement before this fn needs a ; (or write the fns first)"
    } else if message == "expecting ';' to terminate this statement"
        && from.starts_with(['"', '`'])
        && before
            .trim_end()
            .ends_with(|c: char| c.is_alphanumeric() || "_)]\"`".contains(c))
    {
        // `"한도(" + format_amount(limit) "원)"`: a `+` left out between two values.
        "two values side by side with nothing between them: join them with + (\"한도 \" + format_amount(limit) + \"원\"), or end the statement before this one with ;"
    } else if message == "expecting name of a variable"
        && line.trim_start().starts_with("for")
        && line.trim_start()["for".len()..]
            .trim_start()
            .starts_with('(')
    {
        "Rhai's loops are for i in 0..3 { … } and for item in list { … }"
    } else {
        return;
    };
    error.message.push_str(": ");
    error.message.push_str(hint);
}

/// What Rhai's `Unexpected 'X'`, quoted inside another message, names: `X`.
fn unexpected_capitalised(message: &str) -> Option<&str> {
    message
        .strip_prefix("Unexpected '")
        .and_then(|rest| rest.strip_suffix('\''))
}

/// What Rhai's `unexpected 'X'` names: `X`.
fn unexpected(message: &str) -> Option<&str> {
    message
        .strip_prefix("unexpected '")
        .and_then(|rest| rest.strip_suffix('\''))
}

/// `unexpected 'let'` in a `require` or `when`: says where statements may be written.
pub(super) fn statement_in_expression(mut error: CompileError) -> CompileError {
    const STATEMENTS: [&str; 7] = ["let", "const", "for", "while", "loop", "do", "fn"];
    if let Some(keyword) = unexpected(&error.message).filter(|k| STATEMENTS.contains(k)) {
        let keyword = keyword.to_owned();
        error.message.push_str(&format!(": require and when hold one expression, and {keyword} begins a statement; write statements in a script (script: scripts/NAME.rhai)"));
    }
    error
}

/// A parse error as the operator reads it: at its position, with a hint where Rhai's own words
/// would mislead (a keyword used as a key, a variable read where it is not in scope, another
/// language's way of writing it).
pub(super) fn parse_error(src: &str, extra: &[&str], e: &ParseError) -> CompileError {
    let mut error = compile_error(e.to_string(), e.position(), &e.0.to_string());
    keyword_hint(src, &mut error);
    undefined_variable_hint(src, extra, &mut error);
    slip_hint(src, &mut error);
    closest_variable(src, extra, &mut error);
    if matches!(*e.0, rhai::ParseErrorType::ExprTooDeep) {
        // The usual way there is a long chain of tests; a long sum is rarer and needs no list.
        let tests = src.matches("&&").count() + src.matches("||").count();
        // What the chain mostly tests: `in` compares whole ids, so a chain of prefix (or end,
        // or part) tests told to use it would load and block nothing.
        let equalities = src.matches("==").count() + src.matches("!=").count();
        let method = ["starts_with", "ends_with", "contains"]
            .into_iter()
            .map(|m| (src.matches(&format!(".{m}(")).count(), m))
            .max()
            .filter(|(n, _)| *n > equalities)
            .map(|(_, m)| m);
        // A blocklist (`!(a || b)`, `x != a && x != b`, `!x.starts_with(a) && …`) keeps its
        // `!`; a list of the only ones allowed (`x == a || x == b`) has none.
        let negations = src.matches("!=").count() + src.matches("!order_id").count();
        let not = if src.trim_start().starts_with("!(") || 2 * negations > tests {
            "!"
        } else {
            ""
        };
        let list = |what: &str, items: &str, test: &str| {
            format!("each && or || of a chain is one more: test a long list of {what} with some, {not}[{items}, …].some(|p| order_id.{test}(p)) (in compares whole ids, not {what})")
        };
        let hint = match method {
            _ if tests < super::MAX_EXPR_DEPTH / 2 => "each operator of a chain, and each bracket, is one more: shorten it, or split it into parts with let in a script".to_owned(),
            Some("starts_with") => list("prefixes", "\"rs01-\", \"bot-\"", "starts_with"),
            Some("ends_with") => list("endings", "\"-test\"", "ends_with"),
            Some(_) => list("parts", "\"test\"", "contains"),
            None => format!("each && or || of a chain is one more: test a long list of values with in, {not}(order_id in [\"o-1\", \"o-2\", …])"),
        };
        error.message.push_str(&format!(
            " (at most {} levels, and {hint})",
            super::MAX_EXPR_DEPTH
        ));
    }
    error
}

/// The error of a load-time check ([`lint`](super::lint)) at `at`.
pub(super) fn lint_error(message: String, at: Position) -> CompileError {
    compile_error(message, at, "")
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
        also: Vec::new(),
    }
}

pub(super) fn operations_message() -> String {
    format!("script stopped after {MAX_OPERATIONS} operations (sandbox limit)")
}

/// The error inside the function calls it came through.
pub(super) fn root_cause(e: &EvalAltResult) -> &EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => root_cause(inner),
        other => other,
    }
}

/// A run-time error on one line (the trace and the log line have no room for more): at the
/// innermost place where it failed — inside the closure or the script's `fn`, not at the call
/// that led there — with the calls it came through after it, innermost first (`…; in a
/// closure called by filter (line 2, column 17)`). Rhai's own text puts each call on a line
/// of its own.
pub(super) fn script_error(e: &EvalAltResult) -> ScriptError {
    // The calls, outermost first.
    let mut calls = Vec::new();
    let mut cause = e;
    while let EvalAltResult::ErrorInFunctionCall(name, _, inner, at) = cause {
        calls.push((name.as_str(), *at));
        cause = inner;
    }
    let mut message = match cause {
        EvalAltResult::ErrorTooManyOperations(_) => operations_message(),
        cause => {
            let mut s = shown(cause);
            if !cause.position().is_none() {
                if let Some(i) = s.rfind(" (line ") {
                    s.truncate(i);
                }
            }
            if matches!(
                cause,
                EvalAltResult::ErrorAssignmentToConstant(..)
                    | EvalAltResult::ErrorNonPureMethodCallOnConstant(..)
            ) {
                s.push_str(READ_ONLY_HINT);
            }
            if matches!(cause, EvalAltResult::ErrorDataTooLarge(..)) {
                s.push_str(&too_large_hint());
            }
            // Rhai says only "Stack overflow" when calls nest past the limit.
            if matches!(cause, EvalAltResult::ErrorStackOverflow(..)) {
                s = format!(
                    "functions called inside each other more than {} deep (a recursion that does not end soon enough?)",
                    super::MAX_CALL_LEVELS
                );
            }
            // Rhai writes the negation of a negative number as `--9223372036854775808`.
            if let Some(negated) = s.strip_prefix("Negation overflow: --") {
                s = format!("Negation overflow: -(-{negated}) is beyond the integer range");
            }
            let unit_argument = match cause {
                EvalAltResult::ErrorFunctionNotFound(..) => {
                    // Rust's names for Rhai's kinds: `seoul_date (&str | ImmutableString |
                    // String)` for a text argument.
                    s = plain_kinds(&s);
                    s.contains("(()") || s.contains(", ()")
                }
                EvalAltResult::ErrorMismatchDataType(_, actual, _) => actual == "()",
                _ => false,
            };
            // `payload.custom_data.vip` for a payment without `custom_data`: Rhai names the
            // type `()` and says nothing of where it came from. A `()` where text was wanted
            // is most often a map's key (`limits[store_id]` for a V1 payment), which `?[`
            // does not help with.
            let unit_key = matches!(
                cause,
                EvalAltResult::ErrorMismatchDataType(wanted, actual, _)
                    if actual == "()" && wanted == "string"
            );
            if unit_key {
                s.push_str(UNIT_KEY_HINT);
            } else if let Some(hint) = text_hint(cause, &s) {
                s.push_str(hint);
            } else if unit_argument
                || s.ends_with("for type '()'")
                || s.starts_with("Indexer unavailable: () [")
            {
                s.push_str(UNIT_HINT);
            }
            s
        }
    }
    .to_lowercase_first();
    // A thrown or failed text may hold line breaks too.
    if message.contains(['\n', '\r']) {
        message = message
            .split(['\n', '\r'])
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
    }
    message.push_str(&call_chain(&calls));
    let at = std::iter::once(cause.position())
        .chain(calls.iter().rev().map(|(_, at)| *at))
        .find(|at| !at.is_none())
        .unwrap_or(Position::NONE);
    ScriptError {
        message,
        position: position(at),
        cut_off: false,
    }
}

/// Arithmetic on a number an API or a form sent as text (`{"remaining": "3"}`), or a field
/// read from text that holds JSON (V2's `customData`): Rhai names the kinds and no way out.
/// (Orderings and equalities between text and a number have their own errors, which say it.)
fn text_hint(cause: &EvalAltResult, shown: &str) -> Option<&'static str> {
    match cause {
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            let (name, args) = signature.split_once(" (")?;
            let arithmetic = ["*", "/", "-", "%", "**"].contains(&name);
            let text = args.contains("&str") || args.contains("ImmutableString");
            let number = ["i64", "f64", "Decimal"].iter().any(|k| args.contains(k));
            (arithmetic && text && number).then_some(
                " (a number sent as text: read it with parse_int(…) or parse_decimal(…) first)",
            )
        }
        _ if shown.contains("a getter is not registered for type 'string'") => {
            Some(" (it is text: a field that holds JSON as text is read with parse_json(…) first)")
        }
        _ => None,
    }
}

/// The most of an error's text that is read: the message is cut shorter still where it is
/// shown (2,000 characters).
const SHOWN_MAX: usize = 8 * 1024;

/// `cause` as its `Display` writes it, stopped at [`SHOWN_MAX`] bytes (and marked `…`): a
/// thrown map or list is written whole otherwise, which for a map holding one 64 KiB string
/// under thousands of keys took seconds and hundreds of megabytes, out of the time budget's
/// reach, to be cut to 2,000 characters afterwards.
fn shown(cause: &EvalAltResult) -> String {
    let (mut text, cut) = crate::text::display_within(cause, SHOWN_MAX);
    if cut {
        text.push('…');
    }
    text
}

/// A function's signature in an error with the kinds of its arguments as a rule author knows
/// them: `text` for `&str | ImmutableString | String`, `integer` for `i64`, and so on.
fn plain_kinds(message: &str) -> String {
    const KINDS: [(&str, &str); 7] = [
        ("&str | ImmutableString | String", "text"),
        ("ImmutableString", "text"),
        ("i64", "integer"),
        ("f64", "float"),
        ("rust_decimal::Decimal", "decimal"),
        ("Array", "list"),
        ("Map", "map"),
    ];
    let mut out = message.to_owned();
    for (rust, plain) in KINDS {
        out = out.replace(rust, plain);
    }
    out
}

/// The calls an error came through (outermost first), innermost first, as the end of its
/// message: `; in a closure called by filter (line 2, column 17), in function limit (called at
/// line 5, column 1)`. A call at the same place as the one around it was made by that one (a
/// closure called back by `filter`).
fn call_chain(calls: &[(&str, Position)]) -> String {
    let mut parts = Vec::new();
    let mut i = calls.len();
    while i > 0 {
        let (name, at) = calls[i - 1];
        let what = if name.starts_with("anon$") {
            "a closure".to_owned()
        } else {
            format!("function {name}")
        };
        let place = |at: Position| match position(at) {
            Some((line, column)) => format!("line {line}, column {column}"),
            None => "an unknown place".to_owned(),
        };
        match i.checked_sub(2).and_then(|j| calls.get(j)) {
            Some((by, by_at)) if *by_at == at && !by.starts_with("anon$") => {
                parts.push(format!("in {what} called by {by} ({})", place(at)));
                i -= 2;
            }
            _ => {
                parts.push(format!("in {what} (called at {})", place(at)));
                i -= 1;
            }
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

pub(super) fn position(pos: Position) -> Option<(usize, usize)> {
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
