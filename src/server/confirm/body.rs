//! Reading the request body within the deadline and the size limit, and answering a request
//! whose body is left unread.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Arrival;
use crate::engine;
use crate::payload::{self, ConfirmRequest, Parsed, MAX_BODY};
use crate::rules::Ruleset;
use crate::server::AppState;

impl AppState {
    /// The body, read within the deadline and the size limit, or the refusal saying which
    /// it broke (413, 408; 400 when the HTTP layer could not read it). Each refusal leaves the
    /// body unread (or half read) on the connection, so hyper closes it after the answer,
    /// which says so: a client pooling connections sends its next request on a new one.
    pub(super) async fn read_body(
        &self,
        arrival: &Arrival,
        set: &Ruleset,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<bytes::Bytes, Response> {
        let too_large = || {
            let e = payload::PayloadError::TooLarge;
            closing(self.refuse(arrival, e.status(), e.to_string()))
        };
        // Framed two ways, the body is not read at all, and the connection goes with it.
        if payload::chunked_twice(headers) {
            let e = payload::PayloadError::RepeatedChunked;
            return Err(closing(self.refuse(arrival, e.status(), e.to_string())));
        }
        // A body announced as too large is refused before any of it is read (and before an
        // `Expect: 100-continue` client is told to send it).
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        // The deadline covers a body sent slowly too; what has not arrived cannot be checked.
        let read = axum::body::to_bytes(body, MAX_BODY);
        match tokio::time::timeout_at(engine::answer_by(&set.settings, arrival.started), read).await
        {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) if over_limit(&e) => Err(too_large()),
            // Nobody is left to answer, and nothing was read to decide about: like a request
            // dropped before it was read, no decision, no count, no record.
            Ok(Err(e)) if caller_gone(&e) => {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    "the caller hung up while sending the request body; nothing was decided"
                );
                Err(closing(StatusCode::BAD_REQUEST.into_response()))
            }
            Ok(Err(e)) => {
                tracing::warn!(decision_id = arrival.id.as_str(), error = %e, cause = crate::root_cause(&e), "request body could not be read");
                Err(closing(self.refuse(
                    arrival,
                    400,
                    "요청 본문을 읽지 못했습니다".into(),
                )))
            }
            Err(_) => {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    "request body not received within the deadline"
                );
                Err(closing(self.refuse(
                    arrival,
                    408,
                    "요청 본문을 제한 시간 안에 받지 못했습니다".into(),
                )))
            }
        }
    }
}

/// Whether reading the body failed because the connection closed (or was reset) before all
/// of it came: hyper says so with an I/O error of its own under the body error.
fn caller_gone(e: &axum::Error) -> bool {
    use std::io::ErrorKind;
    crate::error_chain(e).any(|err| {
        err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
            )
        })
    })
}

/// Whether reading the body failed because it is over [`MAX_BODY`].
fn over_limit(e: &axum::Error) -> bool {
    crate::error_chain(e).any(|err| err.is::<http_body_util::LengthLimitError>())
}

/// The request a body holds, if it reads as one: for the log line and record of an answer
/// that no rule decided.
/// Read exactly as the rules would have read it: a body they would refuse names no request.
pub(super) fn body_request(headers: &HeaderMap, body: &bytes::Bytes) -> Option<ConfirmRequest> {
    match payload::parse_request(headers, body) {
        Ok(Parsed::Confirm(req)) => Some(req),
        _ => None,
    }
}

/// `answer`, to a request whose body is left unread, with `Connection: close` when there is a
/// body: hyper ends such a connection after the answer (unless the whole body happened to be
/// in already), and the answer says so, so that a client pooling connections does not send
/// its next request into a connection being closed.
pub(super) fn unread_body(headers: &HeaderMap, answer: Response) -> Response {
    let empty = headers.get(header::TRANSFER_ENCODING).is_none()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|n| n.as_bytes() == b"0");
    if empty {
        answer
    } else {
        closing(answer)
    }
}

/// `answer` with `Connection: close`: hyper ends the connection after it.
pub(super) fn closing(mut answer: Response) -> Response {
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}
