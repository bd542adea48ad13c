//! Rule test files broken at random: whatever an edit does to a working suite, `test` answers
//! with located errors (exit 2), or runs it; never a panic or an unlocated complaint.

use proptest::prelude::*;

use super::load_suites;
use crate::rules::yaml::mutate::{apply, edits, lines_in, Working, VARS, WORKING};
use crate::rules::{load_dir, LoadOptions};
use crate::script::ScriptEngine;

proptest! {
    #![proptest_config(crate::rules::yaml::mutate::config())]

    #[test]
    fn a_rule_test_file_broken_anyhow_gets_located_errors(
        which in 0..WORKING.len(),
        edits in edits(),
    ) {
        let Working { rules: yaml, scripts, tests } = WORKING[which];
        let broken = apply(tests, &edits);
        let dir = tempfile::tempdir().unwrap();
        let files = scripts
            .iter()
            .copied()
            .chain([("default.yaml", yaml), ("tests/default.yaml", broken.as_str())]);
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let env = |name: &str| {
            VARS.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(std::env::VarError::NotPresent)
        };
        let engine = ScriptEngine::new();
        let options = LoadOptions {
            engine: &engine,
            env: &env,
            previous: None,
        };
        let rules = load_dir(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
        if let Err(errors) = load_suites(dir.path(), &rules) {
            let lines = lines_in(&broken);
            for e in &errors {
                let shown = e.to_string();
                prop_assert!(e.file.ends_with("tests/default.yaml"), "{shown}");
                let location = e.location.as_ref();
                prop_assert!(location.is_some(), "no position: {shown}\n--- file ---\n{broken}");
                let l = location.unwrap();
                prop_assert!(l.line >= 1 && l.column >= 1, "{shown}");
                prop_assert!(l.line <= lines, "past the end ({lines} lines): {shown}");
                prop_assert!(!e.message.trim().is_empty(), "{shown}");
            }
        }
    }
}
