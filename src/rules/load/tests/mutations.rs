//! Rule files broken at random: whatever an edit does to a working file, the loader answers
//! with positioned errors (or loads it), never a panic or an unlocated complaint.

use proptest::prelude::*;

use super::*;

/// The shipped and example rule files, each with the scripts it needs.
const WORKING: [(&str, &[(&str, &str)]); 3] = [
    (include_str!("../../../../rules/default.yaml"), &[]),
    (
        include_str!("../../../../examples/shop-rules/default.yaml"),
        &[],
    ),
    (
        include_str!("../../../../examples/scripted-rules/default.yaml"),
        &[
            (
                "scripts/vip.rhai",
                include_str!("../../../../examples/scripted-rules/scripts/vip.rhai"),
            ),
            (
                "scripts/store_hours.rhai",
                include_str!("../../../../examples/scripted-rules/scripts/store_hours.rhai"),
            ),
            (
                "scripts/marathon.rhai",
                include_str!("../../../../examples/scripted-rules/scripts/marathon.rhai"),
            ),
        ],
    ),
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
enum Edit {
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

fn apply(s: &str, edit: &Edit) -> String {
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

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MUTATION_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_rule_file_broken_anyhow_gets_located_errors(
        which in 0..WORKING.len(),
        target in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let (yaml, scripts) = WORKING[which];
        // The rule file, or one of its scripts.
        let target = target % (scripts.len() + 1);
        let broken = |i: usize, s: &str| {
            if i == target {
                edits.iter().fold(s.to_owned(), |s, e| apply(&s, e))
            } else {
                s.to_owned()
            }
        };
        let dir = default_file(&broken(0, yaml));
        let mut files = vec![(DEFAULT, broken(0, yaml))];
        for (i, (rel, script)) in scripts.iter().enumerate() {
            let script = broken(i + 1, script);
            dir.write(rel, &script);
            files.push((rel, script));
        }
        let vars = [("SHOP_API_URL", "http://127.0.0.1:1"), ("SHOP_API_TOKEN", "t")];
        if let Err(errors) = dir.load_with(&vars) {
            for e in &errors.0 {
                let shown = e.to_string();
                let (_, text) = files
                    .iter()
                    .find(|(rel, _)| e.file.ends_with(rel))
                    .unwrap_or_else(|| panic!("an error about another file: {shown}"));
                let location = e.location.as_ref();
                prop_assert!(location.is_some(), "no position: {shown}\n--- file ---\n{text}");
                let l = location.unwrap();
                let lines = text.lines().count() + 1;
                prop_assert!(l.line >= 1 && l.column >= 1, "{shown}");
                prop_assert!(l.line <= lines, "past the end ({lines} lines): {shown}");
                prop_assert!(!e.message.trim().is_empty(), "{shown}");
            }
        }
    }
}
