//! The command line: `serve`, `check`, `test`, `eval`, `replay`. Every flag also reads
//! `CONFIRM_PROXY_<FLAG>` from the environment.

/// `println!` that does not panic when stdout is gone (piped into `head` or `grep -q`, which
/// close it early): the output is for a reader, and without one there is nothing left to say.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that does not panic when stderr is gone (`2>&-`, or a closed pipe): an error or
/// note without a reader changes nothing about the exit code that reports it.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod check;
mod eval;
mod replay;
mod serve;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "confirm-proxy",
    version,
    about = "Answers PortOne's confirm requests (confirm_url) from hot-reloadable YAML rules and Rhai scripts",
    long_about = "Answers PortOne's confirm requests (confirm_url / confirmUrl) from hot-reloadable YAML rules \
                  and Rhai scripts: HTTP 200 lets the payment go on, anything else stops it with a reason \
                  shown to the buyer.\n\nEvery flag can also be set through the environment: the flag name \
                  upper-cased with dashes as underscores, prefixed CONFIRM_PROXY_ (e.g. \
                  CONFIRM_PROXY_WEBHOOK_SECRET). Repeatable flags take a comma-separated list there."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy: public confirm listener and admin listener, rules reloaded on change.
    Serve(serve::ServeArgs),
    /// Validate the rules directory (and its rule tests); print every error as FILE:LINE:COL;
    /// exit 1 when there is any.
    Check(check::CheckArgs),
    /// Run the rule tests in rules/tests/*.yaml (no network); exit 1 when any case fails or the
    /// rules do not load, 2 when a test file is invalid.
    Test(test::TestArgs),
    /// Evaluate one request body against the rules and print the decision with its trace.
    Eval(eval::EvalArgs),
    /// Decide the requests of a decision log again with the rules as they are now (no network:
    /// upstream answers come from the log) and print every decision that would change; exit 1
    /// when any would, 2 when the log or the rules cannot be read.
    Replay(replay::ReplayArgs),
}

/// What `RUST_LOG` asks to log, or `default` when it is unset, blank or unreadable: a blank
/// one — what docker-compose passes for an unset `${RUST_LOG}` — must not turn off every line,
/// errors and the reasons not to start included.
fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        // Blank, or only separators (`,`): no directive, which would turn every line off.
        .filter(|v| v.split(',').any(|d| !d.trim().is_empty()))
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default))
}

/// An on/off flag's value, as its `CONFIRM_PROXY_…` variable gives it (the flag alone means
/// on). The values clap's own boolish parser takes, with an error that lists them.
fn switch(s: &str) -> Result<bool, String> {
    const ON: [&str; 6] = ["true", "1", "yes", "on", "y", "t"];
    const OFF: [&str; 6] = ["false", "0", "no", "off", "n", "f"];
    let v = s.trim().to_ascii_lowercase();
    if ON.contains(&v.as_str()) {
        Ok(true)
    } else if OFF.contains(&v.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "expected true or false (or 1/0, yes/no, on/off), found \"{s}\"; from the environment (CONFIRM_PROXY_…), an empty value is not false: unset the variable instead"
        ))
    }
}

/// The rules directory, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct RulesDir {
    /// Directory of rule files (one ruleset per *.yaml), scripts and tests/.
    #[arg(
        long = "rules",
        env = "CONFIRM_PROXY_RULES",
        default_value = "rules",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
}

impl RulesDir {
    /// Loads the rules as `serve` would; on failure prints every `FILE:LINE:COL: message` to
    /// stderr (the caller exits 1).
    fn load(&self, scripts: &crate::script::ScriptEngine) -> Option<crate::rules::Rules> {
        let opts = crate::rules::LoadOptions {
            engine: scripts,
            env: &crate::rules::ProcessEnv,
            previous: None,
        };
        match crate::rules::load_dir(&self.dir, &opts) {
            Ok(rules) => Some(rules),
            Err(errors) => {
                for e in &errors.0 {
                    err!("{e}");
                }
                None
            }
        }
    }

    /// [`Self::load`]; when the rules do not load, what can be checked of the test files without
    /// them is printed too, so that a broken test file is not found only once the rules are
    /// fixed (`check`, `test`).
    fn load_or_report_tests(
        &self,
        scripts: &crate::script::ScriptEngine,
    ) -> Option<crate::rules::Rules> {
        let rules = self.load(scripts);
        if rules.is_none() {
            for e in crate::ruletest::shape_errors(&self.dir) {
                err!("{e}");
            }
        }
        rules
    }

    /// [`Self::load`], with the rule tests read as a reload reads them: a test file that does
    /// not read holds the directory back from `serve`, so what `eval` or `replay` would show
    /// of it could never be what is served.
    fn load_servable(&self, scripts: &crate::script::ScriptEngine) -> Option<crate::rules::Rules> {
        let rules = self.load(scripts)?;
        match crate::ruletest::load_suites(&self.dir, &rules) {
            Ok(_) => Some(rules),
            Err(errors) => {
                for e in &errors {
                    err!("{e}");
                }
                // A rule edit that its tests now contradict (a shadow rule enforced, a limit
                // moved) reads as a failure of the command unless this says why it stops.
                err!("note: the rules load, but their tests under tests/ do not, and serve refuses such a directory: change the tests with the rules (or remove them from a scratch copy), then run this again");
                None
            }
        }
    }
}

/// The `CONFIRM_PROXY_*` variables of `vars` that no flag reads, each with what was perhaps
/// meant: a misspelt `CONFIRM_PROXY_WEBHOOK_SECRETS` would otherwise leave the proxy
/// unsigned without a word.
pub fn unknown_env_vars(vars: impl IntoIterator<Item = String>) -> Vec<String> {
    const PREFIX: &str = "CONFIRM_PROXY_";
    let known = env_readers();
    // Compared without the prefix they all share, which would make any two names "close".
    let flags: Vec<&str> = known
        .keys()
        .filter_map(|v| v.strip_prefix(PREFIX))
        .collect();
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter(|name| name.starts_with(PREFIX) && !known.contains_key(name))
        .map(|name| {
            // Variables are read as written, upper case: `CONFIRM_PROXY_rules` is a slip too.
            let bare = name[PREFIX.len()..].to_ascii_uppercase();
            let hint = crate::suggest::closest(&bare, flags.iter().copied())
                .map(|near| format!("; did you mean \"{PREFIX}{near}\"?"))
                .unwrap_or_default();
            format!("environment variable {name} is read by no flag of confirm-proxy{hint}")
        })
        .collect();
    unknown.sort();
    unknown
}

/// The `CONFIRM_PROXY_*` variables of `vars` that only the what-if commands (`eval`,
/// `replay`) read, which `serve` ignores: a trial set `CONFIRM_PROXY_NOW` and
/// `CONFIRM_PROXY_DRY_RUN` on `serve` to rehearse a sale, and its forwards went out for real
/// on the real clock without a word. `check`'s `CONFIRM_PROXY_STRICT` may share `serve`'s
/// environment file (its `ExecStartPre`), so it is not named.
pub fn ignored_by_serve(vars: impl IntoIterator<Item = String>) -> Vec<String> {
    let readers = env_readers();
    let mut ignored: Vec<String> = vars
        .into_iter()
        .filter_map(|name| {
            let read_by = readers.get(&name)?;
            let what_if = |c: &String| matches!(c.as_str(), "eval" | "replay");
            (!read_by.iter().any(|c| c == "serve") && read_by.iter().any(what_if)).then(|| {
                format!(
                    "environment variable {name} is read by {} only: serve ignores it",
                    read_by.join(" and ")
                )
            })
        })
        .collect();
    ignored.sort();
    ignored
}

/// Each `CONFIRM_PROXY_*` variable a flag reads, with the commands that read it (all of them
/// for a flag of every command, such as `--rules`), in command order.
fn env_readers() -> std::collections::BTreeMap<String, Vec<String>> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut readers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for command in cli.get_subcommands() {
        for arg in command.get_arguments().chain(cli.get_arguments()) {
            if let Some(env) = arg.get_env() {
                let read_by = readers
                    .entry(env.to_string_lossy().into_owned())
                    .or_default();
                if !read_by.iter().any(|c| c == command.get_name()) {
                    read_by.push(command.get_name().to_owned());
                }
            }
        }
    }
    readers
}

/// The names of this process's environment variables (those that are text).
fn env_names() -> impl Iterator<Item = String> {
    std::env::vars_os().filter_map(|(name, _)| name.into_string().ok())
}

/// Answers a command line clap refused (or `--help`, `--version`): a misspelt
/// `CONFIRM_PROXY_*` variable is said first, as it may be why a value is missing or wrong.
pub fn refused(error: clap::Error) -> ExitCode {
    if let Some(code) = serve::refused_as_json(&error) {
        return code;
    }
    if error.use_stderr() {
        for unknown in unknown_env_vars(env_names()) {
            err!("warning: {unknown}");
        }
        if let Some(var) = value_from_env(&error) {
            err!("note: the value refused below was read from environment variable {var}, not from the command line");
        }
    }
    error.exit()
}

/// The `CONFIRM_PROXY_*` variable a refused value came from, when no flag on the command line
/// gave it: clap names the flag (`--idle-timeout`), which an operator with an env file and no
/// such flag in the unit looks for in vain.
pub(crate) fn value_from_env(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next()?.strip_prefix("--")?;
    let var = format!(
        "CONFIRM_PROXY_{}",
        flag.replace('-', "_").to_ascii_uppercase()
    );
    let on_command_line = std::env::args_os()
        .filter_map(|a| a.into_string().ok())
        .any(|a| a == format!("--{flag}") || a.starts_with(&format!("--{flag}=")));
    (!on_command_line && std::env::var_os(&var).is_some()).then_some(var)
}

/// Runs the parsed command; the process exit code is the result.
pub fn run(cli: Cli) -> ExitCode {
    // `serve` logs them as warnings, once its log is set up.
    if !matches!(cli.command, Command::Serve(_)) {
        for unknown in unknown_env_vars(env_names()) {
            err!("warning: {unknown}");
        }
    }
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => on_script_stack(move || check::run(&args)),
        Command::Eval(args) => on_script_stack(move || eval::run(&args)),
        Command::Test(args) => on_script_stack(move || test::run(&args)),
        Command::Replay(args) => on_script_stack(move || replay::run(&args)),
    }
}

/// Runs a one-shot command on a thread with the stack `serve` gives the threads that run
/// scripts ([`crate::script::THREAD_STACK`]): what a script makes is freed as safely as there.
/// (The main thread's stack is whatever `ulimit -s` says, often 8 MiB.)
fn on_script_stack(command: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    let thread = std::thread::Builder::new()
        .name("command".into())
        .stack_size(crate::script::THREAD_STACK)
        .spawn(command);
    match thread.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // A panic was printed by the panic hook; an error starting the thread is said here.
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            err!("cannot start the command's thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The single-threaded runtime of the one-shot commands; `None` (the error printed) if it
/// cannot start. On a `paused` clock, time moves on only when every task waits for it, at once.
fn runtime(paused: bool) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            err!("error: cannot start runtime: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    /// A `CONFIRM_PROXY_*` variable no flag reads is named, with the flag's meant; every flag's
    /// variable (of any command) and other variables are not.
    #[test]
    fn environment_variables_no_flag_reads_are_named() {
        let vars = [
            "CONFIRM_PROXY_WEBHOOK_SECRETS",
            "CONFIRM_PROXY_WEBHOOK_SECRET",
            "CONFIRM_PROXY_RULES",
            "CONFIRM_PROXY_NOW",
            "CONFIRM_PROXY_FORWARDED_BY",
            "CONFIRM_PROXY_COLOUR",
            "CONFIRM_PROXY_rules",
            "SHOP_API_URL",
        ]
        .map(String::from);
        assert_eq!(
            super::unknown_env_vars(vars),
            [
                "environment variable CONFIRM_PROXY_COLOUR is read by no flag of confirm-proxy",
                "environment variable CONFIRM_PROXY_WEBHOOK_SECRETS is read by no flag of confirm-proxy; did you mean \"CONFIRM_PROXY_WEBHOOK_SECRET\"?",
                "environment variable CONFIRM_PROXY_rules is read by no flag of confirm-proxy; did you mean \"CONFIRM_PROXY_RULES\"?",
            ]
        );
    }

    /// What only `eval` and `replay` read is named for `serve`, which ignores it; what `serve`
    /// reads, `check`'s `--strict`, unknown variables (warned about apart) and others are not.
    #[test]
    fn variables_serve_ignores_are_named() {
        let vars = [
            "CONFIRM_PROXY_NOW",
            "CONFIRM_PROXY_DRY_RUN",
            "CONFIRM_PROXY_RULESET",
            "CONFIRM_PROXY_RULES",
            "CONFIRM_PROXY_WEBHOOK_SECRET",
            "CONFIRM_PROXY_STRICT",
            "CONFIRM_PROXY_COLOUR",
            "SHOP_API_URL",
        ]
        .map(String::from);
        assert_eq!(
            super::ignored_by_serve(vars),
            [
                "environment variable CONFIRM_PROXY_DRY_RUN is read by eval only: serve ignores it",
                "environment variable CONFIRM_PROXY_NOW is read by eval only: serve ignores it",
                "environment variable CONFIRM_PROXY_RULESET is read by eval and replay only: serve ignores it",
            ]
        );
    }

    #[test]
    fn switches_read_the_usual_words_and_list_them_otherwise() {
        for on in ["true", "1", "YES", " on "] {
            assert_eq!(super::switch(on), Ok(true), "{on}");
        }
        for off in ["false", "0", "No", "off"] {
            assert_eq!(super::switch(off), Ok(false), "{off}");
        }
        for bad in ["maybe", ""] {
            let e = super::switch(bad).unwrap_err();
            assert!(
                e.starts_with("expected true or false (or 1/0, yes/no, on/off)"),
                "{e}"
            );
        }
    }
}
