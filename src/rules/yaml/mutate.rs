//! Random edits of a working YAML file, for the property tests that break rule and rule test
//! files: whatever an edit does, the loaders answer with located errors.

use proptest::prelude::*;

/// A working rules directory: its rule file, the scripts it uses and its rule tests.
pub struct Working {
    pub rules: &'static str,
    pub scripts: &'static [(&'static str, &'static str)],
    pub tests: &'static str,
}

/// The shipped and example rules directories.
pub const WORKING: [Working; 3] = [
    Working {
        rules: include_str!("../../../rules/default.yaml"),
        scripts: &[],
        tests: include_str!("../../../rules/tests/default.yaml"),
    },
    Working {
        rules: include_str!("../../../examples/shop-rules/default.yaml"),
        scripts: &[],
        tests: include_str!("../../../examples/shop-rules/tests/default.yaml"),
    },
    Working {
        rules: include_str!("../../../examples/scripted-rules/default.yaml"),
        scripts: &[
            (
                "scripts/vip.rhai",
                include_str!("../../../examples/scripted-rules/scripts/vip.rhai"),
            ),
            (
                "scripts/store_hours.rhai",
                include_str!("../../../examples/scripted-rules/scripts/store_hours.rhai"),
            ),
            (
                "scripts/marathon.rhai",
                include_str!("../../../examples/scripted-rules/scripts/marathon.rhai"),
            ),
        ],
        tests: include_str!("../../../examples/scripted-rules/tests/default.yaml"),
    },
];

/// The environment the example rules need.
pub const VARS: [(&str, &str); 2] = [
    ("SHOP_API_URL", "http://127.0.0.1:1"),
    ("SHOP_API_TOKEN", "t"),
];

/// What an edit (or a slip of the keyboard) may put in.
const INSERTS: &[&str] = &[
    ":",
    "-",
    " ",
    "  ",
    "\n",
    "\t",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "#",
    ",",
    "&a",
    "*a",
    "!",
    "|",
    ">",
    "%",
    "@",
    "`",
    "x",
    "0",
    "-1",
    "1e400",
    "null",
    "~",
    "한",
    "\u{feff}",
    "\r",
    "{order_id",
    "}}",
    "${",
    "${X}",
    "<<: ",
    "? ",
    "---\n",
    "...\n",
    "\\",
];

#[derive(Debug, Clone)]
pub enum Edit {
    /// Removes `len` bytes from `at` (both rounded to character boundaries).
    Delete { at: usize, len: usize },
    /// Inserts `INSERTS[which]` at `at`.
    Insert { at: usize, which: usize },
    /// Repeats line `line` after itself.
    Repeat { line: usize },
    /// Swaps lines `a` and `b`.
    Swap { a: usize, b: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..12usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 0..INSERTS.len()).prop_map(|(at, which)| Edit::Insert { at, which }),
        any::<usize>().prop_map(|line| Edit::Repeat { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap { a, b }),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply_one(s: &str, edit: &Edit) -> String {
    match *edit {
        Edit::Delete { at, len } => {
            let start = boundary(s, at);
            let end = boundary(s, (start + len).min(s.len()));
            format!("{}{}", &s[..start], &s[end.max(start)..])
        }
        Edit::Insert { at, which } => {
            let at = boundary(s, at);
            format!("{}{}{}", &s[..at], INSERTS[which], &s[at..])
        }
        Edit::Repeat { line } => {
            let mut lines: Vec<&str> = s.split_inclusive('\n').collect();
            let i = line % lines.len();
            lines.insert(i, lines[i]);
            lines.concat()
        }
        Edit::Swap { a, b } => {
            let mut lines: Vec<&str> = s.split_inclusive('\n').collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.concat()
        }
    }
}

/// The property tests' settings: 64 cases, or `MUTATION_CASES` (thousands, for a longer
/// search than CI makes).
pub fn config() -> ProptestConfig {
    let cases = std::env::var("MUTATION_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    ProptestConfig {
        cases: cases.unwrap_or(64),
        ..ProptestConfig::default()
    }
}

/// The last line an error in `text` may name: line breaks counted as YAML, Rhai and editors
/// count them (a lone `\r`, one of the edits, ends a line too), and the end of a file that
/// ends with one on the line after it.
pub fn lines_in(text: &str) -> usize {
    text.replace("\r\n", "\n").split(['\n', '\r']).count()
}

/// One to three edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..4)
}

/// `s` with `edits` made in turn.
pub fn apply(s: &str, edits: &[Edit]) -> String {
    edits.iter().fold(s.to_owned(), |s, e| apply_one(&s, e))
}
