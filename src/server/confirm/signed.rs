//! The second and later deliveries of a signed message: a repeat gets its first delivery's
//! answer; a delivery that is no copy of the first is refused.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use super::body::body_request;
use super::{Arrival, Delivery};
use crate::decision::Decision;
use crate::engine;
use crate::rules::Ruleset;
use crate::server::deliveries::{Claim, Earlier, FirstAnswer};
use crate::server::AppState;
use crate::webhook::Verifier;

impl AppState {
    /// Checks the request's signature and claims its message. `None` for its first delivery,
    /// to be evaluated (the ticket its answer settles is put in `arrival`); otherwise the answer:
    /// the 401 of a bad signature or of a message first sent to another ruleset, or a repeat's.
    pub(super) async fn signed(
        &self,
        verifier: &Verifier,
        arrival: &mut Arrival,
        set: &Ruleset,
        (headers, body): (&HeaderMap, &bytes::Bytes),
        peer: std::net::SocketAddr,
    ) -> Option<Response> {
        let s = &self.0;
        let now = arrival.arrived.timestamp();
        let message = match verifier.verify(headers, body, now) {
            Ok(message) => message,
            Err(e) => return Some(self.signature_refused(arrival, e, (headers, body), peer)),
        };
        s.metrics.signature_verified(message.secret);
        // Printable ASCII of a bounded length (the verifier checked), kept whole.
        arrival.webhook_id = Some(String::from_utf8_lossy(message.id).into());
        let reading = crate::payload::reading(headers, body);
        loop {
            // The time of the claim, not of the arrival: the body may have taken the deadline
            // to come in, and a repeat waited for its first delivery (see `Claim::Expired`).
            let claimed_at = chrono::Utc::now().timestamp();
            let (claim, forgotten) = s
                .deliveries
                .claim(message, reading, body, &set.name, claimed_at);
            s.metrics.delivery_ids_forgotten(forgotten);
            return match claim {
                Claim::First(ticket) => {
                    arrival.delivery = Delivery::First(Arc::new(ticket));
                    None
                }
                Claim::Repeat(earlier) => {
                    match self.repeat(arrival, set, earlier, headers, body).await {
                        Some(answer) => Some(answer),
                        // Its first delivery was released (or forgotten) while it waited: it is
                        // the first now. Each turn waited for a release, within its deadline.
                        None => continue,
                    }
                }
                Claim::Elsewhere => Some(self.not_a_copy(
                    arrival,
                    (headers, body),
                    "other_ruleset",
                    "for another ruleset",
                    "다른 결제 확인 경로로 이미 받은 요청입니다",
                )),
                Claim::Expired => {
                    let e = crate::webhook::VerifyError::TooOld;
                    tracing::warn!(decision_id = arrival.id.as_str(), error = %e, "webhook signature refused: it expired while the request was read or waited");
                    // Recorded as the signature guard's, like any other expired signature.
                    arrival.guard = Some(super::SIGNATURE_GUARD);
                    Some(self.refuse(arrival, 401, e.reason().into()))
                }
                Claim::Altered => Some(self.not_a_copy(
                    arrival,
                    (headers, body),
                    "other_body",
                    "with another body",
                    "이미 받은 요청과 같은 id로 다른 내용의 요청이 왔습니다",
                )),
            };
        }
    }

    /// The 401 of a signature that does not verify. Its line and record say what the request
    /// claims, unproven as it is — the webhook id, the source address, the order of its body,
    /// and in the line how old its timestamp is — so that an operator can tell a sender's
    /// clock adrift from a wrong secret and find the buyers refused.
    fn signature_refused(
        &self,
        arrival: &mut Arrival,
        e: crate::webhook::VerifyError,
        (headers, body): (&HeaderMap, &bytes::Bytes),
        peer: std::net::SocketAddr,
    ) -> Response {
        let (webhook_id, age) = crate::webhook::claimed(headers, arrival.arrived.timestamp());
        arrival.webhook_id = webhook_id.map(|id| crate::text::cut(&id, 100).into());
        arrival.refused_source = self.client_addr(peer, headers).ok();
        let req = body_request(headers, body);
        // The request is on record, but no rule decided it: `replay` passes it over.
        arrival.guard = Some(super::SIGNATURE_GUARD);
        tracing::warn!(
            decision_id = arrival.id.as_str(),
            error = %e,
            webhook_id = arrival.webhook_id.as_deref(),
            source = arrival.refused_source.map(tracing::field::display),
            timestamp_age_s = age,
            order_id = req
                .as_ref()
                .map(|r| crate::text::cut(&r.order_id, super::LOGGED_ID_MAX))
                .as_deref(),
            "webhook signature refused"
        );
        self.0.metrics.guard_refusal(401);
        self.finish(
            arrival,
            Decision::reject(401, e.reason().into(), None),
            req.as_ref(),
        )
    }

    /// The 401 of a message id seen before on a delivery that is no copy of the first. Its
    /// line and record name the webhook id (as the first delivery's do) and, when its body
    /// reads, the request, so that an operator can put the two side by side.
    fn not_a_copy(
        &self,
        arrival: &mut Arrival,
        (headers, body): (&HeaderMap, &bytes::Bytes),
        label: &'static str,
        how: &str,
        reason: &str,
    ) -> Response {
        self.0.metrics.repeated_delivery(label);
        arrival.delivery = Delivery::Refused(label);
        tracing::warn!(
            decision_id = arrival.id.as_str(),
            webhook_id = arrival.webhook_id.as_deref(),
            "webhook message already received {how}"
        );
        let decision = Decision::reject(401, reason.into(), None);
        self.finish(arrival, decision, body_request(headers, body).as_ref())
    }

    /// The answer to a repeated delivery of a signed message: the one its first delivery got,
    /// once given. A first delivery still unanswered at this request's deadline, or ended
    /// without an answer, is a refusal: a repeat never approves what its first delivery did not.
    /// `None` when the first is no longer remembered: this delivery is to be claimed again.
    /// The body is read only for the log line and record (the order id an operator looks for).
    async fn repeat(
        &self,
        arrival: &mut Arrival,
        set: &Ruleset,
        earlier: Earlier,
        headers: &HeaderMap,
        body: &bytes::Bytes,
    ) -> Option<Response> {
        let answered = tokio::time::timeout_at(
            engine::answer_by(&set.settings, arrival.started),
            earlier.answer(),
        )
        .await;
        let answered = match answered {
            Ok(FirstAnswer::Gone) => return None,
            Ok(FirstAnswer::Answered(answered)) => Some(answered),
            Ok(FirstAnswer::Unanswered) | Err(_) => None,
        };
        let req = body_request(headers, body);
        let Some(answered) = answered else {
            self.0.metrics.repeated_delivery("unanswered");
            arrival.delivery = Delivery::Refused("unanswered");
            tracing::warn!(
                decision_id = arrival.id.as_str(),
                "webhook message repeated while its first delivery has no answer"
            );
            let reason = "같은 결제 확인 요청을 처리하고 있습니다. 잠시 후 다시 시도해 주세요.";
            let decision = Decision::reject(set.settings.reject_status, reason.into(), None);
            return Some(self.finish(arrival, decision, req.as_ref()));
        };
        self.0.metrics.repeated_delivery("answered");
        arrival.delivery = Delivery::RepeatOf(answered.decision_id.clone());
        Some(self.finish(arrival, answered.decision(), req.as_ref()))
    }
}
