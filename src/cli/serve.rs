//! `confirm-proxy serve`: bind both listeners, run until SIGTERM/SIGINT, reload on SIGHUP,
//! reopen the decision log on SIGUSR1.
//!
//! The signals it handles are held (blocked, so they wait) from its first step until their
//! handlers are installed with the runtime: without a handler a SIGHUP or SIGUSR1 (sent by a
//! rotation script or a config-management run while the proxy starts) would kill the process,
//! their default action. A signal received during start-up is acted on once started:
//! SIGHUP reloads, SIGUSR1 reopens the decision log, SIGTERM/SIGINT stop the proxy (exit 0)
//! right after it has started, with nothing in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use nix::sys::signal::SigSet;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::RulesDir;
use crate::audit::Sampling;
use crate::logfmt::LineFormat;
use crate::reload::Trigger;
use crate::server::{App, Config};
use crate::spool::{self, Spool};
use crate::webhook::WebhookSecret;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub rules: RulesDir,
    /// Public listener for PortOne's confirm requests.
    #[arg(
        long,
        env = "CONFIRM_PROXY_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,
    /// Admin listener (/healthz, /readyz, /metrics, /admin/*). Keep it off the internet.
    #[arg(
        long,
        env = "CONFIRM_PROXY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9901",
        value_name = "ADDR",
        value_parser = parse_listen
    )]
    pub admin_listen: SocketAddr,
    /// Append one JSON line per answered request to this file (reopened on SIGUSR1).
    #[arg(long, env = "CONFIRM_PROXY_DECISION_LOG", value_name = "PATH")]
    pub decision_log: Option<PathBuf>,
    /// Which approvals go to the decision log: "all" or "sample=N" (one in N); refusals always do.
    #[arg(
        long,
        env = "CONFIRM_PROXY_DECISION_LOG_APPROVALS",
        default_value = "all",
        value_name = "all|sample=N"
    )]
    pub decision_log_approvals: Sampling,
    /// Standard Webhooks secret (whsec_..., or the base64 alone); requests without a valid
    /// signature get 401.
    /// Give it twice while rotating secrets. A message delivered again (same webhook-id) gets
    /// its first delivery's answer without running the rules again.
    #[arg(
        long,
        env = "CONFIRM_PROXY_WEBHOOK_SECRET",
        value_delimiter = ',',
        value_name = "whsec_...",
        hide_env_values = true
    )]
    pub webhook_secret: Vec<String>,
    /// Only these source networks may call /confirm (repeatable), e.g. PortOne's published
    /// addresses: a network (203.0.113.0/24) or a single address (203.0.113.7).
    #[arg(
        long,
        env = "CONFIRM_PROXY_ALLOW_FROM",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = parse_network
    )]
    pub allow_from: Vec<IpNet>,
    /// Behind a load balancer: take the client address from the right-most X-Forwarded-For entry.
    #[arg(long, env = "CONFIRM_PROXY_TRUST_FORWARDED_FOR", value_parser = super::switch)]
    pub trust_forwarded_for: bool,
    /// The load balancers' own addresses (repeatable; implies --trust-forwarded-for): only their
    /// X-Forwarded-For is read, and any other peer is judged by its own address.
    #[arg(
        long,
        env = "CONFIRM_PROXY_FORWARDED_BY",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = parse_network
    )]
    pub forwarded_by: Vec<IpNet>,
    /// Require "Authorization: Bearer <token>" on /admin/* endpoints.
    #[arg(
        long,
        env = "CONFIRM_PROXY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Refuse a reload (and start-up) whose rule tests in rules/tests/ fail, like an invalid file.
    #[arg(long, env = "CONFIRM_PROXY_TEST_ON_RELOAD", value_parser = super::switch)]
    pub test_on_reload: bool,
    /// Close a connection that sends no complete request head for this long (idle keep-alive
    /// connections, clients that send slowly) or whose answer cannot be written for this long
    /// (a client that does not read). Keep it above the load balancer's own idle timeout.
    /// Sources that --allow-from refuses get 5 s at most.
    #[arg(
        long,
        env = "CONFIRM_PROXY_IDLE_TIMEOUT",
        default_value = "75s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = parse_idle_timeout
    )]
    pub idle_timeout: std::time::Duration,
    /// Log format on stderr.
    #[arg(long, env = "CONFIRM_PROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

/// A listener's address: an IP address and a port, the error saying which part is wrong.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    const FORM: &str =
        "expected IP:PORT, such as 0.0.0.0:8080 (every interface), 127.0.0.1:9901 or [::]:8080";
    let s = s.trim();
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    if s.parse::<u16>().is_ok() {
        return Err(format!(
            "{FORM}; a port alone is not enough: write 0.0.0.0:{s} or 127.0.0.1:{s}"
        ));
    }
    // `:8080`, as nginx and Go write every interface.
    if let Some(port) = s.strip_prefix(':').filter(|p| p.parse::<u16>().is_ok()) {
        return Err(format!(
            "{FORM}; an address goes before the port: write 0.0.0.0:{port} (every interface) or 127.0.0.1:{port}"
        ));
    }
    // An address with no port: `127.0.0.1`, `[::1]`, `::1` — unless the last part of one
    // without brackets may be a port (`::1:8080`), which the brackets below are about.
    let port_last = s.rsplit_once(':').is_some_and(|(host, port)| {
        host.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok()
    });
    match s.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(std::net::IpAddr::V4(ip)) => {
            return Err(format!("{FORM}; a port is needed too: {ip}:8080"))
        }
        Ok(std::net::IpAddr::V6(ip)) if s.starts_with('[') || !port_last => {
            return Err(format!("{FORM}; a port is needed too: [{ip}]:8080"))
        }
        _ => {}
    }
    // `[::1]8080`: the port goes after a colon.
    if let Some((host, after)) = s.strip_prefix('[').and_then(|r| r.split_once(']')) {
        let port = after.trim_start().trim_start_matches(':').trim_start();
        if !after.starts_with(':')
            && host.parse::<std::net::Ipv6Addr>().is_ok()
            && port.parse::<u16>().is_ok()
        {
            return Err(format!(
                "{FORM}; the port goes right after a colon: [{host}]:{port}"
            ));
        }
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(FORM.to_owned());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "{FORM}; \"{host}\" is not an IP address, and names are not looked up (for localhost, write 127.0.0.1)"
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{FORM}; the port must be a number from 0 to 65535, not \"{port}\""
        ));
    }
    // An IPv6 address needs its brackets before a port.
    Err(format!(
        "{FORM}; write an IPv6 address in brackets: [{host}]:{port}"
    ))
}

/// An `--allow-from` value. PortOne publishes single addresses, so a bare address is its own
/// network (/32, /128) rather than an error about CIDR syntax.
fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            "expected an address (203.0.113.7, 2001:db8::7) or a network in CIDR notation \
             (203.0.113.0/24, 2001:db8::/32)"
                .to_owned()
        })?;
    let unmapped = unmapped_network(net)?;
    // `10.0.0.1/8` is 10.0.0.0/8 to a matcher: most likely one address meant, with a network's
    // prefix length left on it, and a whole network let in without a word.
    if net.trunc() != net {
        return Err(format!(
            "{net} has bits set past its /{len} prefix, so it would stand for all of {network} ({count} addresses); write {network} for the network, or {addr} alone for the one address",
            len = net.prefix_len(),
            network = net.trunc(),
            count = addresses(&net),
            addr = net.addr(),
        ));
    }
    Ok(unmapped)
}

/// How many addresses `net` holds, in words for a large one.
fn addresses(net: &IpNet) -> String {
    let free = u32::from(net.max_prefix_len() - net.prefix_len());
    match 1u128.checked_shl(free) {
        Some(n) if n < 1_000_000_000 => crate::script::format_amount_text(&n.to_string()),
        _ => format!("2^{free}"),
    }
}

/// Sources are matched as IPv4 when they arrive as IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what
/// a dual-stack listener reports), so a mapped network is taken as the IPv4 one it maps;
/// kept as written it could never match.
fn unmapped_network(net: IpNet) -> Result<IpNet, String> {
    let IpNet::V6(v6) = net else {
        return Ok(net);
    };
    let Some(v4) = v6.addr().to_ipv4_mapped() else {
        return Ok(net);
    };
    if v6.prefix_len() < 96 {
        return Err(format!(
            "{net} mixes IPv4-mapped addresses (::ffff:0:0/96) with others; give the IPv4 network instead ({v4}/N)"
        ));
    }
    ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
        .map(|n| IpNet::V4(n.trunc()))
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub fn run(args: ServeArgs) -> ExitCode {
    // First, before any thread exists: every thread started from here on inherits the hold.
    if let Err(e) = Signals::hold() {
        err!("cannot hold signals until their handlers are installed: {e}");
        return ExitCode::FAILURE;
    }
    // Kept until exit: dropping it writes out the last log lines.
    let _log_writer = match init_tracing(args.log_format) {
        Ok(guard) => guard,
        Err(e) => {
            err!("cannot start the log writer thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A panic (caught, where a script runs, as an error decision) is logged as a record like
    // any other, not as stray text between JSON lines.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    // Said first: a misspelt variable may be why a flag's check below stops the start.
    for unknown in super::unknown_env_vars(super::env_names()) {
        tracing::warn!("{unknown}");
    }
    for ignored in super::ignored_by_serve(super::env_names()) {
        tracing::warn!("{ignored}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crate::script::THREAD_STACK)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(args));
    // Dropping the runtime would wait for every blocking task, a DNS lookup that hangs
    // included; everything that matters (answers, the decision log) is done by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Logs go to stderr through a [`Spool`], in batches: a decision line per request must not cost
/// the request a write system call. If stderr stalls and 16 MiB of lines are waiting, further
/// lines are dropped rather than holding up payments (the decision log is the lossless record);
/// how many is said at exit.
fn init_tracing(format: LogFormat) -> std::io::Result<LogGuard> {
    // notify reports routine inotify bookkeeping (a watch gone with a swapped `..data`
    // directory) at info; only its warnings concern an operator.
    let filter = super::log_filter("info,notify=warn");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let failed = spool::Stderr::default();
    let spool = Spool::start("log-writer", 16 << 20, failed.clone())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(spool.clone());
    match format {
        // Colours for a person at a terminal; the leaner line for files and collectors.
        LogFormat::Pretty if ansi => builder.init(),
        LogFormat::Pretty => builder.event_format(LineFormat).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .map_writer(|_| JsonLines(spool.clone()))
            .init(),
    }
    let _ = LOG.set(spool.clone());
    Ok(LogGuard(spool, failed))
}

/// The JSON log's writer: each event (one line, written whole) with its Unicode line breaks,
/// text-direction controls and invisible characters escaped, as in the decision log (see
/// [`crate::logfmt::unseen_escaped`]).
struct JsonLines(Spool);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JsonLines {
    type Writer = JsonLine<'a>;

    fn make_writer(&'a self) -> JsonLine<'a> {
        JsonLine(self.0.make_writer())
    }
}

struct JsonLine<'a>(crate::spool::SpoolWriter<'a>);

impl std::io::Write for JsonLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match crate::logfmt::unseen_escaped(buf) {
            Some(line) => self.0.write_all(&line)?,
            None => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The log's spool, for [`not_starting`] to write out what is logged before its own lines.
static LOG: std::sync::OnceLock<Spool> = std::sync::OnceLock::new();

/// Writes out the last log lines when dropped at exit, for at most 5 s, and says how many
/// were lost (refused while 16 MiB waited, or lost to a failed write).
struct LogGuard(Spool, spool::Stderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        let drained = self
            .0
            .drain()
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok();
        let lost = self.0.refused() + (self.1).0.load(std::sync::atomic::Ordering::Relaxed);
        last_words(drained, lost, &mut std::io::stderr());
    }
}

/// The last line at exit: how many log lines were lost, if any — only once the spool has
/// drained. Not drained, stderr is stalled (a log reader that stopped reading) and a write to
/// it would block the exit for as long, with the public port closed, under a supervisor
/// counting down to SIGKILL. A write that fails (the reader gone) is no panic.
fn last_words(drained: bool, lost: u64, stderr: &mut impl std::io::Write) {
    if drained && lost > 0 {
        let _ = writeln!(
            stderr,
            "{lost} log lines were dropped: stderr did not keep up or could not be written"
        );
    }
}

/// The handlers of the signals `serve` acts on. Each keeps what arrives until it is read, so
/// a signal received during start-up is acted on once started.
struct Signals {
    hup: Signal,
    usr1: Signal,
    term: Signal,
    int: Signal,
    /// SIGXFSZ: its default action kills the process when a write passes the file-size limit
    /// (`ulimit -f`); handled, the write fails instead and the decision log deals with it
    /// (cuts back to whole lines, retries, counts what it drops).
    xfsz: Signal,
}

impl Signals {
    /// The signals [`Signals`] handles, in its order.
    fn set() -> SigSet {
        use nix::sys::signal::Signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGXFSZ};
        [SIGHUP, SIGUSR1, SIGTERM, SIGINT, SIGXFSZ]
            .into_iter()
            .collect()
    }

    /// Holds the handled signals in this thread and every thread it starts, so one that arrives
    /// before [`Signals::install`] waits instead of killing the process.
    fn hold() -> nix::Result<()> {
        Signals::set().thread_block()
    }

    /// Installs the handlers, then lets the held signals (and those still to come) through to
    /// this thread — the one that held them. The runtime's workers keep them held; threads
    /// started after this (the decision-log writer, blocking threads) do not, which is harmless:
    /// the handlers are the process's, whichever thread a signal lands on. Called from the
    /// future `run` blocks on, which runs on that thread.
    fn install() -> std::io::Result<Signals> {
        let signals = Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            // tokio names no constant for it; its number differs between platforms.
            xfsz: signal(SignalKind::from_raw(
                nix::sys::signal::Signal::SIGXFSZ as i32,
            ))?,
        };
        Signals::set().thread_unblock()?;
        Ok(signals)
    }
}

/// Connections a listener queues before they are accepted. A flash sale opens hundreds at
/// once; past the queue the kernel drops their SYNs, and each retries a second later — a
/// second PortOne waits on top of the answer. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A flag value the proxy cannot use: reported as every reason not to start is, with the
/// exit code of a usage error.
fn bad_flag(format: LogFormat, error: String) -> ExitCode {
    not_starting(format, &[error]);
    ExitCode::from(2)
}

/// A command line clap refused, for `serve --log-format json` (in the arguments or the
/// environment): the same records as any other reason not to start, not clap's text between
/// a collector's JSON lines. `None` when JSON was not asked for.
pub(super) fn refused_as_json(error: &clap::Error) -> Option<ExitCode> {
    // `--help` and `--version` come as errors too, for stdout.
    if !error.use_stderr() {
        return None;
    }
    // Read as clap did: a flag that is no UTF-8 (which clap refused, without its value) must
    // not panic here and print it, a secret maybe, with the backtrace.
    let args: Vec<String> = (std::env::args_os().skip(1))
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let serve = args.first().is_some_and(|a| a == "serve");
    // The last `--log-format X` or `--log-format=X` given.
    let flag = (0..args.len())
        .rev()
        .find_map(|i| match args[i].strip_prefix("--log-format") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        });
    let json = flag
        .or_else(|| std::env::var("CONFIRM_PROXY_LOG_FORMAT").ok())
        // As clap reads it: `JSON` is no value of `--log-format`.
        .is_some_and(|f| f == "json");
    if !serve || !json {
        return None;
    }
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .try_init();
    for unknown in super::unknown_env_vars(super::env_names()) {
        tracing::warn!("{unknown}");
    }
    if let Some(var) = super::value_from_env(error) {
        tracing::warn!(
            variable = var,
            "the value refused was read from the environment, not from the command line"
        );
    }
    // clap's text, without its usage lines: the first paragraph, on one line.
    let text = error.to_string();
    let first = text.split("\n\n").next().unwrap_or(&text);
    let message = first
        .trim()
        .trim_start_matches("error: ")
        .replace('\n', " ");
    not_starting(LogFormat::Json, &[message]);
    Some(ExitCode::from(2))
}

/// Reports every reason the proxy cannot start, then that it is not starting.
fn not_starting(format: LogFormat, errors: &[impl std::fmt::Display]) -> ExitCode {
    // The reasons come after what was logged before them (the `protections` line), not
    // ahead of it: those lines wait in the spool, these go straight to stderr.
    if let (LogFormat::Pretty, Some(log)) = (format, LOG.get()) {
        let _ = log.drain().recv_timeout(std::time::Duration::from_secs(1));
    }
    for e in errors {
        match format {
            // As `check` prints them: FILE:LINE:COL lines an editor can jump to.
            LogFormat::Pretty => err!("{e}"),
            // A collector keeps records, not stray text between them.
            LogFormat::Json => tracing::error!(error = %e, "cannot start"),
        }
    }
    tracing::error!(errors = errors.len(), "not starting");
    ExitCode::FAILURE
}

/// Binds `addr` with [`LISTEN_BACKLOG`] (tokio's `bind` listens with 1024 at most, std with 128).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do: a restart can bind while old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Every confirm request in flight holds a socket, and so does every upstream call: in a flash
/// sale the soft limit on open files most systems start services with (1024) is reached long
/// before the CPUs are busy, and then PortOne's next request cannot even connect. The hard limit
/// is the one the administrator chose, so the soft one is raised to it. Returns the limit now in
/// force (0 when unknown); a low one is warned about, since only the administrator can lift it.
fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            if limit < 4096 {
                tracing::warn!(
                    "the open-files limit is {limit}: each confirm request and upstream call in \
                     flight needs one; raise the hard limit (ulimit -Hn, LimitNOFILE=) for busy sales"
                );
            }
            limit
        }
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit: {e}");
            0
        }
    }
}

/// The admin token as requests can carry it. Surrounding whitespace is dropped, as for webhook
/// secrets: a token read from a secret file often ends in a newline, and HTTP trims a header
/// value's ends, so with it no request could ever match.
fn admin_token(given: &str) -> Result<String, &'static str> {
    let token = given.trim();
    // An empty token would turn the admin check off without a word.
    if token.is_empty() {
        return Err("empty; give a token, or leave the option out");
    }
    if token.chars().any(char::is_control) {
        return Err("holds a control character, which no HTTP header can carry");
    }
    // Header values are read as visible ASCII; `tök` could never be matched.
    if !token.is_ascii() {
        return Err("holds a character outside ASCII, which HTTP headers do not carry as text; use letters, digits and punctuation");
    }
    Ok(token.to_owned())
}

async fn serve(args: ServeArgs) -> ExitCode {
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let open_files = raise_open_files_limit();
    let mut secrets = Vec::new();
    for s in &args.webhook_secret {
        match WebhookSecret::parse(s) {
            Ok(secret) => secrets.push(secret),
            Err(e) => return bad_flag(args.log_format, format!("--webhook-secret: {e}")),
        }
    }
    let admin_token = match args.admin_token.as_deref().map(admin_token).transpose() {
        Ok(token) => token,
        Err(e) => return bad_flag(args.log_format, format!("--admin-token: {e}")),
    };
    // What guards this process, in one line an operator can hold against the go-live checklist
    // (README, Security); never the secrets themselves.
    let allow_from = if args.allow_from.is_empty() {
        "any".to_owned()
    } else {
        let nets: Vec<String> = args.allow_from.iter().map(IpNet::to_string).collect();
        nets.join(",")
    };
    // `--forwarded-by` names the balancers, and so says there are some.
    let forwarded = args.trust_forwarded_for || !args.forwarded_by.is_empty();
    tracing::info!(
        webhook_secrets = secrets.len(),
        allow_from = %allow_from,
        trust_forwarded_for = forwarded,
        forwarded_by = %args.forwarded_by.iter().map(IpNet::to_string).collect::<Vec<_>>().join(","),
        admin_token = admin_token.is_some(),
        decision_log = %args.decision_log.as_deref().map_or_else(|| "off".into(), |p| p.display().to_string()),
        decision_log_approvals = %match args.decision_log_approvals.every {
            1 => "all".to_owned(),
            n => format!("sample={n}"),
        },
        test_on_reload = args.test_on_reload,
        idle_timeout = ?args.idle_timeout,
        admin_listen = %args.admin_listen,
        "protections"
    );
    if open_to_anyone(args.listen, forwarded, secrets.len(), &args.allow_from) {
        tracing::warn!(
            listen = %args.listen,
            "confirm requests are taken from anyone, unsigned: whoever reaches this listener can have payments decided (and a forward or POST fetch sent to the shop); set --webhook-secret (PortOne V2 signs its requests) or --allow-from (PortOne's sending addresses) before going live"
        );
    }
    if let Some((a, b)) = same_secret_twice(&secrets) {
        tracing::warn!(
            "--webhook-secret: secrets {a} and {b} are the same: a rotation needs the old secret and the new one (the second was perhaps never pasted)"
        );
    }
    if admin_open_to_others(args.admin_listen, admin_token.is_some()) {
        tracing::warn!(
            admin_listen = %args.admin_listen,
            "the admin listener is not on loopback and has no --admin-token: whoever reaches it can reload the rules and read them (/admin/*); set --admin-token, or listen on loopback or a network only operators reach"
        );
    }
    if any_peer_names_the_source(
        args.listen,
        args.trust_forwarded_for,
        &args.forwarded_by,
        &args.allow_from,
    ) {
        tracing::warn!(
            listen = %args.listen,
            "--trust-forwarded-for reads X-Forwarded-For from any peer: a client that reaches this listener directly, not through the load balancer, can name an allowed address in it; name the balancers with --forwarded-by CIDR"
        );
    }
    if forwarded && args.allow_from.is_empty() {
        tracing::warn!("--trust-forwarded-for (or --forwarded-by) has no effect without --allow-from: X-Forwarded-For is read only to check a request's source against the allow-list");
    }
    if args.decision_log.is_none() && args.decision_log_approvals.every != 1 {
        tracing::warn!("--decision-log-approvals has no effect without --decision-log: no decision log is written");
    }
    let mut config = Config::new(args.rules.dir.clone());
    config.webhook_secrets = secrets;
    config.allow_from = args.allow_from;
    config.trust_forwarded_for = forwarded;
    config.forwarded_by = args.forwarded_by;
    config.admin_token = admin_token;
    config.decision_log = args.decision_log;
    config.decision_log_approvals = args.decision_log_approvals;
    config.env = Arc::new(crate::rules::ProcessEnv);
    config.idle_timeout = args.idle_timeout;
    if args.test_on_reload {
        // The gate has its own engine: it runs on the reload thread, never on a request.
        let scripts = Arc::new(crate::script::ScriptEngine::silent());
        config.gate = Some(Arc::new(move |dir, rules| {
            crate::ruletest::gate(dir, rules, &scripts)
        }));
    }

    let (listen_on, admin_on) = (args.listen, args.admin_listen);
    let shared = take_the_same_port(listen_on, admin_on);
    let listeners = move || {
        if shared {
            return Err(vec![format!(
                "--listen {listen_on} and --admin-listen {admin_on} take the same port: give the admin listener another one (the admin endpoints must never be served on the public listener)"
            )]);
        }
        match (listen(listen_on), listen(admin_on)) {
            (Ok(p), Ok(a)) => Ok((p, a)),
            (public, admin) => Err([(listen_on, public.err()), (admin_on, admin.err())]
                .into_iter()
                .filter_map(|(addr, e)| Some(format!("cannot listen on {addr}: {}", e?)))
                .collect::<Vec<String>>()),
        }
    };
    // Every reason not to start at once; nothing started (no health probe sent to the
    // merchant) until there is none.
    let (app, (public, admin)) = match (App::open(config).await, listeners()) {
        (Ok(opened), Ok(listeners)) => (opened.start(), listeners),
        (opened, listeners) => {
            let mut errors = opened.err().unwrap_or_default();
            errors.extend(listeners.err().unwrap_or_default());
            return not_starting(args.log_format, &errors);
        }
    };
    let (public_addr, admin_addr) = (public.local_addr().ok(), admin.local_addr().ok());
    tracing::info!(
        public = %public_addr.map_or_else(String::new, |a| a.to_string()),
        admin = %admin_addr.map_or_else(String::new, |a| a.to_string()),
        open_files,
        "listening"
    );

    let Signals {
        mut hup,
        mut usr1,
        mut term,
        mut int,
        mut xfsz,
    } = signals;
    let reloader = app.reloader();
    let decision_log = app.decision_log();
    tokio::spawn(async move {
        let mut xfsz_said = None;
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading rules");
                    reloader.request(Trigger::Signal);
                }
                Some(()) = usr1.recv() => {
                    if let Some(log) = &decision_log {
                        tracing::info!("SIGUSR1: reopening the decision log");
                        log.reopen();
                    } else {
                        tracing::info!("SIGUSR1: no decision log to reopen (no --decision-log)");
                    }
                }
                Some(()) = xfsz.recv() => {
                    // Every failing write raises it again (the decision log retries); once a
                    // minute is enough to say so.
                    if xfsz_said.is_none_or(|at: std::time::Instant| at.elapsed().as_secs() >= 60) {
                        tracing::warn!("SIGXFSZ: a file reached the file-size limit (ulimit -f); writes to it fail");
                        xfsz_said = Some(std::time::Instant::now());
                    }
                }
                else => break,
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
        }
        // Another one while stopping (Ctrl-C again during a slow drain) is said, not ignored
        // without a word.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = term.recv() => {}
                    Some(()) = int.recv() => {}
                    else => break,
                }
                tracing::warn!("already stopping: in-flight requests and the decision log are being finished, within the grace period");
            }
        });
    };
    app.serve(public, admin, shutdown).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Whether two listen addresses take the same port: the same address, or one that an
/// unspecified address takes too — `0.0.0.0` every IPv4 address, `[::]` every address of both
/// families (dual-stack, Linux's default). Said as such rather than as an address in use, which
/// sends an operator looking for another process. (`[::ffff:127.0.0.1]` is 127.0.0.1.)
fn take_the_same_port(a: SocketAddr, b: SocketAddr) -> bool {
    let ip = |addr: SocketAddr| crate::server::unmapped(addr.ip());
    let (a_ip, b_ip) = (ip(a), ip(b));
    let covers = |any: std::net::IpAddr, other: std::net::IpAddr| {
        any.is_unspecified() && (any.is_ipv6() || other.is_ipv4())
    };
    a.port() != 0
        && a.port() == b.port()
        && (a_ip == b_ip || covers(a_ip, b_ip) || covers(b_ip, a_ip))
}

/// Below this, a request head sent in two packets, or by a client on a slow network, would
/// be cut off: `1ms` for `1m` is a slip of the unit.
const MIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn parse_idle_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::rules::parse_duration(s)?;
    if d < MIN_IDLE_TIMEOUT {
        return Err(format!("{d:?} is too short, expected at least 1s: a request head sent in two packets, or over a slow network, would be cut off (a few seconds when exposed directly, above the load balancer's idle timeout behind one)"));
    }
    Ok(d)
}

/// Whether the public listener takes confirm requests from anyone: neither signed nor limited
/// to a source (an allow-list holding `0.0.0.0/0` or `::/0` limits nothing), and on an
/// address other hosts reach.
/// `forwarded`: `--trust-forwarded-for`, which says a load balancer in front forwards requests
/// from outside, so that a listener on loopback is reached from anywhere too.
fn open_to_anyone(
    listen: SocketAddr,
    forwarded: bool,
    secrets: usize,
    allow_from: &[IpNet],
) -> bool {
    let limited = !allow_from.is_empty() && allow_from.iter().all(|net| net.prefix_len() > 0);
    secrets == 0 && !limited && (forwarded || !crate::server::is_loopback(listen.ip()))
}

/// Whether `/admin/*` (reload, the rules as loaded) is open to whoever reaches a listener
/// that is not on loopback: an audit reloaded the rules from another host.
fn admin_open_to_others(admin_listen: SocketAddr, token: bool) -> bool {
    !token && !crate::server::is_loopback(admin_listen.ip())
}

/// Whether the allow-list is checked against an address any peer of a listener others can
/// reach may write: `--trust-forwarded-for` without `--forwarded-by` reads every peer's
/// `X-Forwarded-For`, a client's own too, if it reaches the listener past the balancer.
fn any_peer_names_the_source(
    listen: SocketAddr,
    trust_forwarded_for: bool,
    forwarded_by: &[IpNet],
    allow_from: &[IpNet],
) -> bool {
    trust_forwarded_for
        && forwarded_by.is_empty()
        && !allow_from.is_empty()
        && !crate::server::is_loopback(listen.ip())
}

/// The positions (from 1) of the first two `--webhook-secret`s that are the same key.
fn same_secret_twice(secrets: &[WebhookSecret]) -> Option<(usize, usize)> {
    (0..secrets.len()).find_map(|j| {
        let i = secrets[..j]
            .iter()
            .position(|s| s.same_key_as(&secrets[j]))?;
        Some((i + 1, j + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An audit: an admin listener on every address without a token, and X-Forwarded-For read
    /// from any peer of a public listener, started without a word.
    #[test]
    fn an_open_admin_listener_and_a_source_any_peer_names_are_told() {
        let at = |a: &str| -> SocketAddr { a.parse().unwrap() };
        assert!(admin_open_to_others(at("0.0.0.0:9901"), false));
        assert!(admin_open_to_others(at("10.0.0.5:9901"), false));
        assert!(!admin_open_to_others(at("0.0.0.0:9901"), true));
        assert!(!admin_open_to_others(at("127.0.0.1:9901"), false));
        assert!(!admin_open_to_others(at("[::1]:9901"), false));
        let nets = |n: &[&str]| -> Vec<IpNet> { n.iter().map(|n| n.parse().unwrap()).collect() };
        let allow = nets(&["203.0.113.0/24"]);
        let public = at("0.0.0.0:8080");
        assert!(any_peer_names_the_source(public, true, &[], &allow));
        assert!(!any_peer_names_the_source(
            public,
            true,
            &nets(&["10.0.0.0/8"]),
            &allow
        ));
        assert!(!any_peer_names_the_source(public, false, &[], &allow));
        // Without an allow-list there is nothing to name (warned about apart).
        assert!(!any_peer_names_the_source(public, true, &[], &[]));
        // Behind a balancer on the same host, only its own processes reach the listener.
        assert!(!any_peer_names_the_source(
            at("127.0.0.1:8080"),
            true,
            &[],
            &allow
        ));
    }

    /// An unspecified address takes the port on every address of its family, `[::]` of both;
    /// `0.0.0.0` beside `[::1]` is no clash (an audit bound both).
    #[test]
    fn which_listen_addresses_take_the_same_port() {
        let clash = |a: &str, b: &str| take_the_same_port(a.parse().unwrap(), b.parse().unwrap());
        for (a, b) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::ffff:127.0.0.1]:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("127.0.0.1:8080", "[::]:8080"),
        ] {
            assert!(clash(a, b), "{a} {b}");
        }
        for (a, b) in [
            ("0.0.0.0:8080", "[::1]:8080"),
            ("[::1]:8080", "0.0.0.0:8080"),
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("127.0.0.1:8080", "127.0.0.1:9901"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            assert!(!clash(a, b), "{a} {b}");
        }
    }

    /// The flag's default is written as text for `--help`; it must be the server's own.
    #[test]
    fn the_idle_timeout_default_is_the_servers() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let flag = serve
            .get_arguments()
            .find(|a| a.get_id() == "idle_timeout")
            .unwrap();
        let default = flag.get_default_values()[0].to_str().unwrap();
        assert_eq!(
            parse_idle_timeout(default),
            Ok(crate::server::DEFAULT_IDLE_TIMEOUT)
        );
    }

    /// `1ms` for `1m`: an idle timeout that would cut off a request head sent in two packets.
    #[test]
    fn an_idle_timeout_under_a_second_is_refused() {
        assert_eq!(
            parse_idle_timeout("1s"),
            Ok(std::time::Duration::from_secs(1))
        );
        assert_eq!(
            parse_idle_timeout("75s"),
            Ok(std::time::Duration::from_secs(75))
        );
        for short in ["1ms", "999ms", "0.5s"] {
            let e = parse_idle_timeout(short).unwrap_err();
            assert!(
                e.contains("too short, expected at least 1s"),
                "{short}: {e}"
            );
        }
        assert!(parse_idle_timeout("abc")
            .unwrap_err()
            .starts_with("invalid duration"));
    }

    /// The count of lost log lines is written only once the spool drained: to a stalled stderr
    /// it would block the exit (it held a SIGTERM for good), and a write that fails is let go.
    #[test]
    fn the_last_words_never_wait_for_a_stalled_stderr() {
        let mut out = Vec::new();
        last_words(false, 13100, &mut out);
        last_words(true, 0, &mut out);
        assert!(out.is_empty());
        last_words(true, 3, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3 log lines were dropped: stderr did not keep up or could not be written\n"
        );
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        last_words(true, 3, &mut Broken);
    }

    /// A dual-stack listener reports IPv4 sources as `::ffff:a.b.c.d`, and they are matched as
    /// IPv4: a network written in that form is read as the IPv4 network it maps.
    #[test]
    fn ipv4_mapped_networks_are_read_as_ipv4() {
        let net = |s: &str| parse_network(s).map(|n| n.to_string());
        assert_eq!(net("::ffff:10.0.0.0/104"), Ok("10.0.0.0/8".into()));
        assert_eq!(net("::ffff:203.0.113.7"), Ok("203.0.113.7/32".into()));
        assert_eq!(net("2001:db8::/32"), Ok("2001:db8::/32".into()));
        assert_eq!(net("10.0.0.0/8"), Ok("10.0.0.0/8".into()));
        assert_eq!(
            net("::ffff:10.0.0.7/104").unwrap_err(),
            "::ffff:10.0.0.7/104 has bits set past its /104 prefix, so it would stand for all of ::ffff:10.0.0.0/104 (16,777,216 addresses); write ::ffff:10.0.0.0/104 for the network, or ::ffff:10.0.0.7 alone for the one address"
        );
        assert!(net("::ffff:10.0.0.0/80")
            .unwrap_err()
            .contains("give the IPv4 network"));
    }

    /// Connections beyond std's 128 (tokio's 1024) wait in the queue instead of having their
    /// SYN dropped and retried a second later. Bounded by the kernel's `somaxconn`.
    #[tokio::test]
    async fn the_listen_queue_holds_a_burst_of_connections() {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        // One descriptor per client socket, as the server raises its own limit.
        let open_files = raise_open_files_limit() as usize;
        let burst = 1500
            .min(somaxconn.saturating_sub(1))
            .min(open_files.saturating_sub(100));
        assert!(
            burst > 1024,
            "this machine's somaxconn ({somaxconn}) or open-files limit ({open_files}) is too low for the test"
        );
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: every connection must complete into the queue, none wait for a
        // retransmitted SYN.
        let mut held = Vec::new();
        for i in 0..burst {
            let connected = tokio::time::timeout(
                std::time::Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            match connected {
                Ok(Ok(stream)) => held.push(stream),
                other => panic!("connection {i} of {burst} did not complete: {other:?}"),
            }
        }
        drop(listener);
    }

    /// A rotation whose new secret was never pasted gives the old one twice.
    #[test]
    fn the_same_secret_given_twice_is_found_however_written() {
        let given = |list: &[&str]| {
            let parsed: Vec<WebhookSecret> = list
                .iter()
                .map(|s| WebhookSecret::parse(s).unwrap())
                .collect();
            same_secret_twice(&parsed)
        };
        let (a, b) = (
            "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u",
            "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4",
        );
        let (whsec_a, whsec_b) = (format!("whsec_{a}"), format!(" whsec_{b}\n"));
        assert_eq!(given(&[&whsec_a, &format!("{a}\n")]), Some((1, 2)));
        assert_eq!(given(&[&whsec_a, b, &whsec_b]), Some((2, 3)));
        assert_eq!(given(&[&whsec_a, &whsec_b]), None);
        assert_eq!(given(&[]), None);
    }

    #[test]
    fn a_listener_open_to_anyone_is_one_without_secret_or_allow_list_off_loopback_or_behind_a_balancer(
    ) {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let portone: Vec<IpNet> = vec!["52.78.100.19/32".parse().unwrap()];
        assert!(open_to_anyone(public, false, 0, &[]));
        assert!(open_to_anyone("[::]:8080".parse().unwrap(), false, 0, &[]));
        assert!(!open_to_anyone(public, false, 1, &[]));
        assert!(!open_to_anyone(public, false, 0, &portone));
        // An allow-list of everyone limits nothing.
        for everyone in ["0.0.0.0/0", "::/0"] {
            let nets = [portone[0], everyone.parse().unwrap()];
            assert!(open_to_anyone(public, false, 0, &nets), "{everyone}");
        }
        assert!(!open_to_anyone(local, false, 0, &[]));
        assert!(!open_to_anyone(
            "[::1]:8080".parse().unwrap(),
            false,
            0,
            &[]
        ));
        assert!(!open_to_anyone(
            "[::ffff:127.0.0.1]:8080".parse().unwrap(),
            false,
            0,
            &[]
        ));
        // Behind a load balancer (`--trust-forwarded-for`), loopback is reached from outside.
        assert!(open_to_anyone(local, true, 0, &[]));
        assert!(!open_to_anyone(local, true, 0, &portone));
        assert!(!open_to_anyone(local, true, 1, &[]));
    }

    #[test]
    fn listener_addresses_and_what_is_wrong_with_others() {
        assert_eq!(
            parse_listen(" 127.0.0.1:9901 "),
            Ok("127.0.0.1:9901".parse().unwrap())
        );
        assert_eq!(parse_listen("[::]:8080"), Ok("[::]:8080".parse().unwrap()));
        for (bad, says) in [
            (
                "8080",
                "a port alone is not enough: write 0.0.0.0:8080 or 127.0.0.1:8080",
            ),
            (
                "localhost:8080",
                "\"localhost\" is not an IP address, and names are not looked up",
            ),
            (
                "127.0.0.1:99999",
                "the port must be a number from 0 to 65535, not \"99999\"",
            ),
            ("127.0.0.1", "a port is needed too: 127.0.0.1:8080"),
            ("::1:8080", "write an IPv6 address in brackets: [::1]:8080"),
            // Audit: these were said to be no IP address, names not being looked up.
            ("[::1]", "a port is needed too: [::1]:8080"),
            ("::1", "a port is needed too: [::1]:8080"),
            (
                ":8080",
                "an address goes before the port: write 0.0.0.0:8080 (every interface) or 127.0.0.1:8080",
            ),
            ("[::1]46098", "the port goes right after a colon: [::1]:46098"),
            ("[::1] :8080", "the port goes right after a colon: [::1]:8080"),
            ("shop", "expected IP:PORT"),
        ] {
            let e = parse_listen(bad).unwrap_err();
            assert!(
                e.starts_with("expected IP:PORT, such as 0.0.0.0:8080"),
                "{bad}: {e}"
            );
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn networks_and_bare_addresses() {
        for (given, net) in [
            ("203.0.113.0/24", "203.0.113.0/24"),
            ("203.0.113.7", "203.0.113.7/32"),
            (" 2001:db8::7 ", "2001:db8::7/128"),
            ("2001:db8::/32", "2001:db8::/32"),
        ] {
            assert_eq!(parse_network(given).unwrap().to_string(), net);
        }
        for bad in ["203.0.113.0/33", "203.0.113", "", "example.com"] {
            let e = parse_network(bad).unwrap_err();
            assert!(e.contains("203.0.113.0/24"), "{bad}: {e}");
        }
        // An address with a network's prefix length: which was meant is the operator's call.
        for (bad, message) in [
            ("10.0.0.1/8", "10.0.0.1/8 has bits set past its /8 prefix, so it would stand for all of 10.0.0.0/8 (16,777,216 addresses); write 10.0.0.0/8 for the network, or 10.0.0.1 alone for the one address"),
            ("203.0.113.7/24", "203.0.113.7/24 has bits set past its /24 prefix, so it would stand for all of 203.0.113.0/24 (256 addresses); write 203.0.113.0/24 for the network, or 203.0.113.7 alone for the one address"),
            ("2001:db8::7/32", "2001:db8::7/32 has bits set past its /32 prefix, so it would stand for all of 2001:db8::/32 (2^96 addresses); write 2001:db8::/32 for the network, or 2001:db8::7 alone for the one address"),
        ] {
            assert_eq!(parse_network(bad).unwrap_err(), message);
        }
    }

    #[test]
    fn admin_tokens_as_requests_can_carry_them() {
        assert_eq!(admin_token("s3cret").unwrap(), "s3cret");
        // From a secret file: the trailing newline would make every request a 401.
        assert_eq!(admin_token(" s3cret\n").unwrap(), "s3cret");
        assert_eq!(admin_token("two words").unwrap(), "two words");
        assert!(admin_token(" \n").unwrap_err().contains("empty"));
        assert!(admin_token("a\nb")
            .unwrap_err()
            .contains("control character"));
        assert!(admin_token("tök").unwrap_err().contains("outside ASCII"));
    }
}
