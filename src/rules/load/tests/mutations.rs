//! Rule files broken at random: whatever an edit does to a working file, the loader answers
//! with positioned errors (or loads it), never a panic or an unlocated complaint.

use proptest::prelude::*;

use super::*;
use crate::rules::yaml::mutate::{apply, edits, lines_in, Working, VARS, WORKING};

proptest! {
    #![proptest_config(crate::rules::yaml::mutate::config())]

    #[test]
    fn a_rule_file_broken_anyhow_gets_located_errors(
        which in 0..WORKING.len(),
        target in any::<usize>(),
        edits in edits(),
    ) {
        let Working { rules: yaml, scripts, .. } = WORKING[which];
        // The rule file, or one of its scripts.
        let target = target % (scripts.len() + 1);
        let broken = |i: usize, s: &str| {
            if i == target {
                apply(s, &edits)
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
        if let Err(errors) = dir.load_with(&VARS) {
            for e in &errors.0 {
                let shown = e.to_string();
                let (_, text) = files
                    .iter()
                    .find(|(rel, _)| e.file.ends_with(rel))
                    .unwrap_or_else(|| panic!("an error about another file: {shown}"));
                let location = e.location.as_ref();
                prop_assert!(location.is_some(), "no position: {shown}\n--- file ---\n{text}");
                let l = location.unwrap();
                let lines = lines_in(text);
                prop_assert!(l.line >= 1 && l.column >= 1, "{shown}");
                prop_assert!(l.line <= lines, "past the end ({lines} lines): {shown}");
                prop_assert!(!e.message.trim().is_empty(), "{shown}");
            }
        }
    }
}
