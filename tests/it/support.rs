//! Shared helpers: rules directories, in-process servers, the real binary, mock upstreams.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use confirm_proxy::server::{App, Config};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The PortOne examples shared by the whole project.
pub fn testdata(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/portone")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A temporary rules directory.
pub struct Rules {
    pub dir: TempDir,
}

impl Rules {
    pub fn new() -> Rules {
        Rules {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn with(name: &str, yaml: &str) -> Rules {
        let r = Rules::new();
        r.write(name, yaml);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, content: &str) {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, content).unwrap();
    }
}

/// An answer as a test reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn decision(&self) -> &str {
        self.body["decision"].as_str().unwrap_or("")
    }

    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or("")
    }

    pub fn decision_id(&self) -> String {
        self.headers
            .get("x-confirm-decision-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn post(url: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
    let mut req = client().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    send(req).await
}

pub async fn get(url: &str) -> Answer {
    send(client().get(url)).await
}

/// Sends `req` and reads its answer (a body that is not JSON is kept as a JSON string).
pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

/// The proxy running in this process on loopback ports.
pub struct Server {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(rules: &Path) -> Server {
        Server::start_with(Config::new(rules.to_owned())).await
    }

    pub async fn start_with(config: Config) -> Server {
        Server::start_on(config, "127.0.0.1:0").await
    }

    /// Starts with the public listener on `public` (e.g. `[::1]:0` for IPv6 tests).
    pub async fn start_on(config: Config, public: &str) -> Server {
        let app = App::start(config)
            .await
            .unwrap_or_else(|e| panic!("rules did not load: {e:?}"));
        let public = TcpListener::bind(public).await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(public, admin, async move {
            let _ = stopped.await;
        }));
        Server {
            public: public_addr,
            admin: admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn confirm_json(&self, path: &str, body: &str) -> Answer {
        post(&self.url(path), Some("application/json"), body.to_owned()).await
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        metrics_text(&self.admin_url("/metrics")).await
    }

    /// Stops accepting, waits for in-flight requests and the decision log.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Starts a server that writes a decision log (no watcher), returning the log's path.
pub async fn logged(rules: &Rules) -> (Server, PathBuf) {
    let log = rules.path().join("decisions.jsonl");
    let mut config = Config::new(rules.path().to_owned());
    config.decision_log = Some(log.clone());
    config.watch = false;
    (Server::start_with(config).await, log)
}

/// One confirm request with `body` to a server with a decision log on `rules`, started for it
/// and stopped after: the answer and its decision record.
pub async fn decided(rules: &Rules, body: &str) -> (Answer, Value) {
    let (server, log) = logged(rules).await;
    let a = server.confirm_json("/confirm", body).await;
    server.stop().await;
    let r = record(&log, &a.decision_id());
    (a, r)
}

/// The decision-log record of decision `id`; the log must be complete (server stopped).
pub fn record(log: &Path, id: &str) -> Value {
    let records: Vec<Value> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["decision_id"] == id)
        .collect();
    assert_eq!(records.len(), 1, "decision {id}: one line in the log");
    records.into_iter().next().unwrap_or_default()
}

/// A V1 body with the given order id and amount.
pub fn v1(order_id: &str, amount: i64) -> String {
    serde_json::json!({"imp_uid": "imp_123412341234", "merchant_uid": order_id, "amount": amount})
        .to_string()
}

/// How long a test waits for what must come (an answer, an exit) before it fails: far longer
/// than any of them takes on a loaded machine, so that only a hang, not a slow run, reaches it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The output of `fut`, which must come within `limit`: a regression that makes the wait
/// endless fails the test, naming `what` was waited for, instead of hanging the whole run.
pub async fn within<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("waited {limit:?} for {what}"))
}

/// The text `/metrics` at `url` answers (empty when it answers no text).
async fn metrics_text(url: &str) -> String {
    get(url).await.body.as_str().unwrap_or_default().to_owned()
}

/// Polls `f` until it returns true, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `attempt` until it gives `Ok`, at most `tries` times, and fails with the last error:
/// for a check whose window the design fixes at tens of milliseconds (bodies are due a tenth
/// of the deadline before it, at most 100 ms; the answer 2 % before it, at most 50 ms), which a
/// test process descheduled at the wrong moment on a busy machine misses. A regression fails
/// every attempt.
pub async fn in_one_of<F, Fut>(tries: usize, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut failures = Vec::new();
    for _ in 0..tries {
        match attempt().await {
            Ok(()) => return,
            Err(e) => failures.push(e),
        }
    }
    panic!("failed {tries} times:\n{}", failures.join("\n"));
}

/// `Err` naming both sides when `got` is not `want`: [`in_one_of`]'s `assert_eq!`.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    got: T,
    want: T,
    what: &str,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_confirm-proxy"))
}

/// The real binary running `serve` on loopback ports.
pub struct Process {
    pub child: tokio::process::Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
    /// Set once the log reader has read stderr to its end.
    log_read: Arc<std::sync::atomic::AtomicBool>,
}

impl Process {
    pub async fn serve(rules: &Path, extra: &[&str]) -> Process {
        Process::serve_env(rules, extra, &[]).await
    }

    /// Like `serve`, with extra environment variables for the child.
    pub async fn serve_env(rules: &Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = tokio::process::Command::new(binary());
        command.envs(env.iter().copied());
        Process::serve_as(command, rules, extra).await
    }

    /// Like `serve`, the binary started by `command` (`bash -c '…; exec "$0" "$@"' BINARY`
    /// for limits set by the shell); the serve arguments are appended.
    pub async fn serve_as(
        command: tokio::process::Command,
        rules: &Path,
        extra: &[&str],
    ) -> Process {
        let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|a| a.as_ref()).collect();
        Starting::spawn_as(command, rules, &extra).ready().await
    }

    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub async fn confirm_json(&self, path: &str, body: &str) -> Answer {
        post(&self.url(path), Some("application/json"), body.to_owned()).await
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        metrics_text(&self.admin_url("/metrics")).await
    }

    /// Its exit status once it has exited (after a signal), within [`PATIENCE`].
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        exited(&mut self.child, &self.log, &self.log_read).await
    }

    /// The first log line holding `text` (a decision id, a message), once it is written
    /// (within 5 s).
    pub async fn log_line_of(&self, text: &str) -> String {
        let written = eventually(Duration::from_secs(5), || async {
            self.log_text().contains(text)
        })
        .await;
        assert!(written, "no log line with {text}:\n{}", self.log_text());
        let log = self.log_text();
        log.lines().find(|l| l.contains(text)).unwrap().to_owned()
    }
}

/// A small programmable HTTP server standing in for the merchant's services.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub calls: Arc<std::sync::Mutex<Vec<RecordedCall>>>,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// The proxy's end of the connection the call came on: one per connection.
    pub peer: SocketAddr,
    pub method: String,
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl MockUpstream {
    /// Serves `router`; every request is recorded before it reaches the router.
    pub async fn start(router: axum::Router) -> MockUpstream {
        let calls: Arc<std::sync::Mutex<Vec<RecordedCall>>> = Arc::default();
        let recorded = calls.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let recorded = recorded.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let peer = parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<SocketAddr>>()
                        .map(|info| info.0)
                        .expect("served with connect info");
                    let bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    recorded.lock().unwrap().push(RecordedCall {
                        peer,
                        method: parts.method.to_string(),
                        path: parts
                            .uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers: parts.headers.clone(),
                        body: bytes.to_vec(),
                    });
                    next.run(axum::extract::Request::from_parts(
                        parts,
                        axum::body::Body::from(bytes),
                    ))
                    .await
                }
            },
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        MockUpstream {
            addr,
            calls,
            _task: task,
        }
    }

    /// Answers every `GET path` with `body`.
    pub async fn answering(path: &str, body: String) -> MockUpstream {
        MockUpstream::answering_after(path, Duration::ZERO, body).await
    }

    /// Answers every `GET path` with `body` after `delay`.
    pub async fn answering_after(path: &str, delay: Duration, body: String) -> MockUpstream {
        MockUpstream::start(axum::Router::new().route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    body
                }
            }),
        ))
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, path_prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path.starts_with(path_prefix))
            .count()
    }
}

/// Sends every one of `bodies` (JSON) to `url` at once; the answers, in the same order.
pub async fn burst(url: &str, bodies: impl IntoIterator<Item = String>) -> Vec<Answer> {
    let sends: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let url = url.to_owned();
            tokio::spawn(async move { post(&url, Some("application/json"), body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

/// Runs the binary with `args`, `stdin` written to it, to the end.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(body) = stdin {
        // A command that fails before reading its input (bad flags, rules that do not load)
        // closes the pipe; its exit status and output are what the test checks.
        if let Err(e) = input.write_all(body) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `eval` on the rules in `rules` with `flags`, given the V1 payment `o-1` of 5, off the
/// runtime: its calls go to mock upstreams this test's runtime serves.
pub async fn eval_o1(rules: &Rules, flags: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["eval".into(), "--rules".into()];
    args.push(rules.path().to_str().unwrap().to_owned());
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push("-".into());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, Some(v1("o-1", 5).as_bytes()))
    })
    .await
    .unwrap()
}

/// The decision-log records present so far (the log need not be complete: lines are written
/// whole, so whatever is there parses).
pub fn records_so_far(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// A client that gives up on an answer after `timeout`, closing its connection.
pub fn impatient_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Sends `sig` (`TERM`, `HUP`, …) to `child`.
fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The exit status of `child`, whose stderr is `log`, once it has exited, within [`PATIENCE`].
async fn exited(
    child: &mut tokio::process::Child,
    log: &std::sync::Mutex<Vec<String>>,
    log_read: &std::sync::atomic::AtomicBool,
) -> std::process::ExitStatus {
    let status = match tokio::time::timeout(PATIENCE, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => panic!(
            "the server did not exit within {PATIENCE:?}:\n{}",
            log.lock().unwrap().join("\n")
        ),
    };
    // Its last lines may still be in the pipe: a test reading the stop's log line right
    // after the exit missed it now and then.
    let read = eventually(Duration::from_secs(5), || async {
        log_read.load(std::sync::atomic::Ordering::Acquire)
    })
    .await;
    assert!(read, "the server's log did not end within 5 s of its exit");
    status
}

/// The public and admin addresses of a "listening" log line: pretty logs say `public=ADDR`,
/// JSON logs have a "public" field.
fn listening_on(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if !line.contains("listening") {
        return None;
    }
    let json: Option<Value> = serde_json::from_str(line).ok();
    let find = |key: &str| {
        json.as_ref()
            .and_then(|j| j[key].as_str().map(str::to_owned))
            .or_else(|| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_owned))
            })
            .and_then(|a| a.parse::<SocketAddr>().ok())
    };
    Some((find("public")?, find("admin")?))
}

/// The real binary running `serve`, started but not yet known to be listening: for what
/// happens during start-up. [`Starting::ready`] waits for it to listen.
pub struct Starting {
    pub child: tokio::process::Child,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
    log_read: Arc<std::sync::atomic::AtomicBool>,
    addrs: oneshot::Receiver<(SocketAddr, SocketAddr)>,
}

impl Starting {
    /// Starts the binary without waiting for it to listen (JSON logs).
    pub fn spawn(rules: &Path, extra: &[&std::ffi::OsStr]) -> Starting {
        let mut command = tokio::process::Command::new(binary());
        command.env("CONFIRM_PROXY_LOG_FORMAT", "json");
        Starting::spawn_as(command, rules, extra)
    }

    /// Runs `serve` through `command`, keeping its log and watching it for the addresses.
    pub fn spawn_as(
        mut command: tokio::process::Command,
        rules: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> Starting {
        // `info` unless the test asked for another level: the secrets test reads every debug
        // line, and a level set here after its own would silently replace it.
        if !command.as_std().get_envs().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .arg("serve")
            .arg("--rules")
            .arg(rules)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addrs_tx, addrs) = oneshot::channel();
        let log_w = log.clone();
        let log_read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let read = log_read.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut addrs_tx = Some(addrs_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addrs) = listening_on(&line) {
                    if let Some(tx) = addrs_tx.take() {
                        let _ = tx.send(addrs);
                    }
                }
                log_w.lock().unwrap().push(line);
            }
            read.store(true, std::sync::atomic::Ordering::Release);
        });
        Starting {
            child,
            log,
            log_read,
            addrs,
        }
    }

    /// The signals this process catches (`SigCgt` of /proc/PID/status; bit N-1 is signal N).
    #[cfg(target_os = "linux")]
    pub fn caught_signals(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Its exit status once it has exited (after a signal), within [`PATIENCE`].
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        exited(&mut self.child, &self.log, &self.log_read).await
    }

    /// Waits (at most 10 s) for the server to listen.
    pub async fn ready(self) -> Process {
        let log = self.log.clone();
        let (public, admin) = tokio::time::timeout(Duration::from_secs(10), self.addrs)
            .await
            .expect("the server did not start listening in 10 s")
            .unwrap_or_else(|_| {
                panic!(
                    "the server exited before listening:\n{}",
                    log.lock().unwrap().join("\n")
                )
            });
        Process {
            child: self.child,
            public,
            admin,
            log: self.log,
            log_read: self.log_read,
        }
    }
}

/// Makes a named pipe (FIFO) at `path`. Opening one for writing blocks until a reader opens
/// it: as the decision log, it holds the server's start-up until the test lets it go on.
pub fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A server speaking raw HTTP/1.1 on loopback, for answers no HTTP library would give: each
/// connection is handed to `serve` with the count of requests read so far (shared by all).
/// Returns its URL and that count.
pub async fn raw_server<F, Fut>(serve: F) -> (String, Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream, Arc<std::sync::atomic::AtomicUsize>) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = read.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, count.clone()));
        }
    });
    (url, read)
}

/// Reads one whole request (its head and the body its `Content-Length` announces) from
/// `conn` and counts it; `false` when the connection ends first.
pub async fn read_request(
    conn: &mut tokio::net::TcpStream,
    count: &std::sync::atomic::AtomicUsize,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    let whole = |got: &[u8]| {
        let end = got.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse::<usize>().unwrap_or(0));
        (got.len() >= end + length).then_some(())
    };
    while whole(&got).is_none() {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    true
}

/// An upstream speaking raw HTTP/1.1: for each request it reads the head and the body the head
/// announces, then writes `answer` (nothing at all when empty), waits `hold` and closes the
/// connection. Returns its URL and a count of requests read.
pub async fn raw_upstream(
    answer: &'static str,
    hold: Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    raw_server(move |mut conn, count| async move {
        if read_request(&mut conn, &count).await && conn.write_all(answer.as_bytes()).await.is_ok()
        {
            tokio::time::sleep(hold).await;
        }
    })
    .await
}

/// A merchant too busy to take a connection: a listener whose accept queue is full and never
/// taken from, so a new connection to it is never made (the kernel leaves its SYN unanswered).
/// Kept open (listener and queued connections) while the value lives.
pub struct Unconnectable {
    pub url: String,
    _listener: tokio::net::TcpListener,
    _queued: Vec<tokio::net::TcpStream>,
}

impl Unconnectable {
    pub async fn start() -> Unconnectable {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Filled until a connection no longer completes (one or two, by the kernel).
        let mut queued = Vec::new();
        for _ in 0..8 {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(200), connect).await {
                Ok(Ok(conn)) => queued.push(conn),
                _ => break,
            }
        }
        Unconnectable {
            url: format!("http://{addr}"),
            _listener: listener,
            _queued: queued,
        }
    }
}

/// A raw HTTP/1.1 request: `head` (`POST /confirm`), then `headers` (whole lines, each ending
/// in `\r\n`) and `body` with the `Content-Length` it has.
pub fn raw_request(head: &str, headers: &str, body: &str) -> String {
    format!(
        "{head} HTTP/1.1\r\nhost: x\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A raw confirm request of the JSON `body`, as PortOne sends one.
pub fn raw_post(body: &str) -> String {
    raw_request("POST /confirm", "content-type: application/json\r\n", body)
}

/// What one read of `conn` brings, as text (a small answer on loopback comes in one piece),
/// within [`PATIENCE`]; empty once the peer has closed.
pub async fn read_once(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let n = within(PATIENCE, "an answer on the connection", conn.read(&mut buf))
        .await
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The decision-log records so far of order `order_id`.
pub fn records_of(log: &Path, order_id: &str) -> Vec<Value> {
    records_so_far(log)
        .into_iter()
        .filter(|r| r["order_id"] == order_id)
        .collect()
}

/// The path of a [`merchant`]'s existing confirm handler.
pub const MERCHANT_CONFIRM: &str = "/payments/confirm";

/// A merchant whose existing confirm handler (`POST` [`MERCHANT_CONFIRM`]) approves after
/// `delay`.
pub async fn merchant(delay: Duration) -> MockUpstream {
    MockUpstream::start(axum::Router::new().route(
        MERCHANT_CONFIRM,
        axum::routing::post(move || async move {
            tokio::time::sleep(delay).await;
            axum::Json(serde_json::json!({"ok": true}))
        }),
    ))
    .await
}

/// A [`merchant`] that approves after `delay`, and a ruleset that forwards to it with a
/// deadline (4 s) well beyond that.
pub async fn slow_merchant(delay: Duration) -> (MockUpstream, Rules) {
    let shop = merchant(delay).await;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "settings: {{ deadline: 4s }}\nupstreams:\n  shop: {{ url: \"{}\", timeout: 3s }}\nrules:\n  - name: existing-confirm\n    forward: {{ upstream: shop, path: {MERCHANT_CONFIRM} }}\n",
            shop.url()
        ),
    );
    (shop, rules)
}

/// Sends a confirm request for `order_id` to `url` and hangs up once `shop` (a
/// [`slow_merchant`] of a second or more) has the forward, before it answers. Hanging up on an
/// event, not after a fixed time: a debug binary on a busy machine took in the request too
/// late for a 200 ms client, which hung up before anything was forwarded.
pub async fn hang_up_mid_forward(url: &str, shop: &MockUpstream, order_id: &str) {
    let sending = impatient_client(PATIENCE)
        .post(url)
        .header("content-type", "application/json")
        .body(v1(order_id, 5_000))
        .send();
    let caller = tokio::spawn(sending);
    assert!(
        eventually(PATIENCE, || async { shop.calls_to(MERCHANT_CONFIRM) == 1 }).await,
        "the merchant was never called"
    );
    assert!(!caller.is_finished(), "answered before the merchant");
    // Dropping the request's future closes its connection: the caller has hung up.
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));
}

/// One sample of a Prometheus text exposition: name, labels (unescaped) and value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The value of `series` — a name and its labels as `/metrics` writes them,
/// `name{label="value",…}` — in the `/metrics` text `text`; `None` when it is not there (or
/// `text` is no exposition at all, as when `/metrics` failed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    let (name, labels, _) =
        sample(&format!("{series} 0")).unwrap_or_else(|| panic!("not a series: {series}"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
        .find(|(n, l, _)| *n == name && *l == labels)
        .map(|(_, _, value)| value)
}

/// Parses a whole `/metrics` text, panicking on anything that is not valid text exposition
/// format: a sample line that does not parse, a `# HELP` or `# TYPE` given twice for one
/// family, or a family's lines not kept together.
pub fn exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut described = std::collections::HashSet::new();
    let mut seen_families: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap(), words.next().unwrap_or(""));
            assert!(
                described.insert((kind.to_owned(), name.to_owned())),
                "second `# {kind}` for {name}:\n{text}"
            );
            continue;
        }
        let (name, labels, value) = sample(line).unwrap_or_else(|| panic!("bad line {line:?}"));
        // Histogram series belong to the family without their suffix.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| described.contains(&("TYPE".to_owned(), f.to_string())))
            .unwrap_or(&name)
            .to_owned();
        if seen_families.last() != Some(&family) {
            assert!(
                !seen_families.contains(&family),
                "{family} is split:\n{text}"
            );
            seen_families.push(family);
        }
        samples.push((name, labels, value));
    }
    samples
}

/// One sample line of a text exposition; `None` when it is not one.
fn sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, mut rest)) = series.split_once('{') else {
        return Some((series.to_owned(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    loop {
        if rest == "}" {
            break;
        }
        let (label, after) = rest.split_once("=\"")?;
        let mut chars = after.char_indices();
        let mut text = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => text.push('\n'),
                    c @ ('\\' | '"') => text.push(c),
                    _ => return None,
                },
                (i, '"') => break i,
                (_, c) => text.push(c),
            }
        };
        labels.push((label.to_owned(), text));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some((name.to_owned(), labels, value))
}

/// `confirm-proxy replay --rules RULES LOG EXTRA…`: exit status, stdout, stderr.
pub fn replay(rules: &Rules, log: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "replay",
        "--rules",
        rules.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run_cli(&args, None);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
