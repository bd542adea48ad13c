//! Unit tests of the rule loader. Every failing load is checked against the exact list of
//! `FILE:LINE:COL: message` lines an operator would see, in order.

use std::collections::HashMap;

use chrono::DateTime;
use rust_decimal::Decimal;
use tempfile::TempDir;

use super::*;
use crate::rules::template::Scope;
use crate::rules::{
    Check, HttpMethod, Mode, OnError, Template, DEFAULT_DEADLINE, DEFAULT_ERROR_REASON,
    DEFAULT_REASON,
};

const DEFAULT: &str = "default.yaml";

/// A scratch rules directory.
struct RulesDir {
    tmp: TempDir,
}

impl RulesDir {
    fn new() -> Self {
        RulesDir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `rel` (creating its directories).
    fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        self
    }

    /// The line an error in `rel` at `line:col` prints as.
    fn at(&self, rel: &str, line: usize, col: usize, message: &str) -> String {
        format!(
            "{}:{line}:{col}: {message}",
            self.path().join(rel).display()
        )
    }

    /// The line an error without a position prints as.
    fn whole(&self, rel: &str, message: &str) -> String {
        format!("{}: {message}", self.path().join(rel).display())
    }

    /// Loads with `vars` as the whole environment.
    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Rules, LoadErrors> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        load_dir(
            self.path(),
            &LoadOptions {
                engine: &ScriptEngine::new(),
                env: &env,
            },
        )
    }

    fn ok_with(&self, vars: &[(&str, &str)]) -> Rules {
        self.load_with(vars)
            .unwrap_or_else(|e| panic!("expected the rules to load, got:\n{e}"))
    }

    fn ok(&self) -> Rules {
        self.ok_with(&[])
    }

    fn errors_with(&self, vars: &[(&str, &str)]) -> Vec<String> {
        match self.load_with(vars) {
            Ok(rules) => panic!("expected load errors, got {rules:?}"),
            Err(e) => e.lines(),
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors_with(&[])
    }

    fn version(&self) -> String {
        rules_version(self.path()).unwrap()
    }
}

/// A directory holding only `default.yaml` with `yaml`.
fn default_file(yaml: &str) -> RulesDir {
    let dir = RulesDir::new();
    dir.write(DEFAULT, yaml);
    dir
}

fn reason(src: &str) -> Template {
    Template::parse(src, Scope::Request).unwrap()
}

fn time(rfc3339: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

mod files;
mod rules;
mod settings;
