//! The accept loop of both listeners. axum's own `serve` runs hyper without a timer, so a client
//! that connects and then sends its request head slowly, or nothing at all, holds a connection
//! (and a file descriptor) for ever: enough of them and PortOne's next confirm request cannot
//! connect, which fails the payment. Here every connection has a head timeout, which in hyper
//! also ends keep-alive connections left idle that long. hyper has no write timeout at all, so
//! the same time bounds how long an answer may wait for a client that does not read it.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::pin;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

/// The most a connection buffers while its request head arrives; a longer head gets hyper's
/// 431. A confirm request's head is a handful of short lines, even with several signatures and
/// a load balancer's headers. hyper's default (about 400 KiB) let each connection still
/// sending its head hold that much: a few thousand slow clients, gigabytes (security review).
/// The body is read in pieces through the same buffer, so its own 64 KiB limit is unaffected.
const MAX_HEAD: usize = 16 * 1024;

/// The head timeout of a connection from a source `--allow-from` refuses: time enough to send
/// a request and read its 403, too little to hold many connections open for long.
const STRANGER_TIMEOUT: Duration = Duration::from_secs(5);

/// At most one warning a minute about HTTP/2 connections: any client can open them, and the
/// log must not fill with them. `more` says how many were not warned about since.
static HTTP2_WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// A warning given at most once every `every`, counting the ones held back. (Rare: a lock.)
struct Throttle {
    every: Duration,
    /// When the last one was given, and how many were held back since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last one)` when a warning is due now, else `None` (counted).
    fn due(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < self.every) {
            *held += 1;
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(std::mem::take(held))
    }
}

/// Serves `router` on `listener` until `stop` resolves; then stops accepting, lets every request
/// in flight finish (idle keep-alive connections close at once) and returns. It waits at most
/// until the end of the grace period `stop` gives: every request is answered within its deadline, so what is
/// still open after the longest one is a client that never finished sending a request, which
/// must not hold up the exit (and the decision log's last lines) until its idle timeout.
///
/// A connection from a peer for which `stranger` holds gets [`STRANGER_TIMEOUT`] instead of
/// `idle_timeout`: one that can only be refused must not hold a connection for long.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    idle_timeout: Duration,
    stranger: impl Fn(IpAddr) -> bool,
    stop: impl Future<Output = tokio::time::Instant>,
) {
    let builder = |head_timeout| {
        let mut http = http1::Builder::new();
        // hyper's default, no half-close: a client whose side closes is taken as gone. PortOne
        // never half-closes, and a caller that hung up (PortOne's own timeout) must be seen as
        // such ("answer not delivered"); answering a half-closed connection would hide that.
        http.timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .max_buf_size(MAX_HEAD);
        http
    };
    let stranger_timeout = idle_timeout.min(STRANGER_TIMEOUT);
    let (http, strangers) = (builder(idle_timeout), builder(stranger_timeout));
    let connections = GracefulShutdown::new();
    // The connections' tasks, so that those still open at the end of the grace period are
    // ended rather than left to run into the decision log's drain. Finished ones are reaped
    // as connections come.
    let mut tasks = tokio::task::JoinSet::new();
    let mut stop = pin!(stop);
    let until = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            until = &mut stop => break until,
        };
        // Answers are one small write each; Nagle would hold the next one back for an ACK.
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let (http, timeout) = if stranger(peer.ip()) {
            (&strangers, stranger_timeout)
        } else {
            (&http, idle_timeout)
        };
        // A client that sends requests but never reads the answers (pipelining them, or one
        // large enough) fills the socket's send buffer, and hyper then waits to write for ever,
        // holding the connection; the clock runs only while a write cannot go on.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(timeout));
        let conn = http.serve_connection(
            TokioIo::new(Box::pin(stream)),
            TowerToHyperService::new(service),
        );
        let conn = connections.watch(conn);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            // A client that goes away or times out is its own business, not an error of ours;
            // but one that hangs up with a request unanswered is told, since that request may
            // have been dropped before anything was decided about it.
            match conn.await {
                Ok(()) => {}
                Err(e) if e.is_incomplete_message() => {
                    tracing::info!(%peer, "connection closed by the caller with a request unanswered");
                }
                // A balancer set to speak HTTP/2 to its backends would fail every payment with
                // nothing said: the one protocol mistake an operator must hear about.
                Err(e) if e.is_parse_version_h2() => {
                    if let Some(more) = HTTP2_WARNINGS.due() {
                        tracing::warn!(
                            %peer,
                            more,
                            "HTTP/2 connection refused: the proxy speaks HTTP/1.1 (set the balancer or proxy in front to send HTTP/1.1)"
                        );
                    }
                }
                // Requests decided (and in the decision log) whose answers the caller never
                // took: said, so that a record is not taken for an answer delivered.
                Err(e)
                    if crate::error_chain(&e).any(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                    }) =>
                {
                    tracing::info!(%peer, "connection closed: the caller read none of its answers for {timeout:?}; answers decided on it may not have been delivered");
                }
                Err(e) => tracing::debug!(%peer, "connection ended: {e}"),
            }
        });
    };
    drop(listener);
    if tokio::time::timeout_at(until, connections.shutdown())
        .await
        .is_err()
    {
        // A request whose head comes in now would be answered, and recorded, after the
        // decision log was drained: its line lost without a count. The connection is closed.
        tasks.abort_all();
        tracing::info!(
            "closed, at the end of the grace period, connections that never sent a whole request"
        );
    }
}

/// A peer that reset its connection before it was accepted is nothing; anything else (most
/// likely out of file descriptors) is logged, and accepting pauses so that connections can
/// close instead of the loop spinning on the same error.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[cfg(test)]
mod tests {
    use super::Throttle;

    /// The first warning is given, the ones within the interval are counted, not given.
    #[test]
    fn a_throttle_gives_the_first_and_counts_the_rest() {
        use std::time::Duration;
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.due(), Some(0));
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.state.lock().unwrap().1, 2);
        let every_time = Throttle::new(Duration::ZERO);
        assert_eq!(every_time.due(), Some(0));
        assert_eq!(every_time.due(), Some(0));
    }
}
