//! Signed messages seen while their signatures hold, and the answer each got.
//!
//! Standard Webhooks gives a message one `webhook-id` for every delivery of it, resends
//! included. A copy that arrives again while its signature still verifies — PortOne sending it
//! again, or someone replaying a captured request — is told the answer its first delivery got,
//! instead of running the rules (and their `forward` and `POST` fetches at the merchant) a
//! second time. Once the signature has expired the copy is refused as too old before it gets
//! here, so an id need only be remembered that long.
//!
//! The store is this process's own: replicas behind a load balancer each remember what reached
//! them. A store shared between replicas (the growth path of ARCHITECTURE.md) would take this
//! type's place behind the same three steps: claim an id, settle its answer, await an answer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::decision::{Decision, Verdict};
use crate::webhook::Signed;

/// The most message ids remembered at once. Only messages with a valid signature are
/// remembered, so only PortOne's own traffic fills it. An id is kept until its signature
/// expires, five minutes after PortOne signed it: 100,000 covers over 300 payments a second
/// (160 should PortOne's clock run five minutes ahead), in about 30 MB (measured: 290 bytes
/// each). When full, the id expiring first is forgotten (and counted): a copy of that message is then
/// evaluated again, as it would be without this check.
pub const CAPACITY: usize = 100_000;

/// The ids of recent signed messages, and their answers. One per server; clones share it.
#[derive(Clone)]
pub struct Deliveries(Arc<Shared>);

struct Shared {
    seen: Mutex<IdTable>,
    /// Woken whenever a first delivery is settled, for the repeats waiting on one.
    settled: Notify,
    capacity: usize,
}

/// A message id, digested: fixed-size keys keep each remembered message small, and 128 bits of
/// SHA-256 tell ids apart as surely as the ids themselves.
type Key = [u8; 16];

#[derive(Default)]
struct IdTable {
    by_id: HashMap<Key, First>,
    /// Every remembered id with the last second its signature held when it was claimed,
    /// soonest first. A repeat signed later extends its id's time in [`First::valid_until`];
    /// the entry here is then out of date, and put back with that time when it comes up.
    /// With the order of arrival, so that of ids expiring the same second the oldest goes
    /// first.
    expiry: BinaryHeap<Reverse<(i64, u64, Key)>>,
    arrivals: u64,
    /// The latest [`First::valid_until`] of the ids forgotten as expired. Callers read the
    /// clock at different moments (a request when its head arrived, a scrape now): a delivery
    /// whose signature expired no later than that may be a copy of one forgotten, so it is
    /// refused as too old whatever its own caller's clock says, or a replay whose body came in
    /// slowly would be evaluated again as a first delivery. Taken from the ids, not from a
    /// caller's clock, so that a clock once set ahead refuses only the deliveries it made
    /// forgotten, not every one signed until it is passed again.
    forgotten_until: i64,
}

/// A message's first delivery.
struct First {
    /// Its ruleset's name and its body, hashed: only compared with a repeat's. Only messages
    /// whose signatures verify get here, so a collision needs the secret, which could sign
    /// anything anyway.
    ruleset: u64,
    body: u64,
    /// The last second (Unix time) a delivery of it may still verify: the latest signature
    /// seen for it, plus the tolerance.
    valid_until: i64,
    /// Which claim made it: an id forgotten while its first delivery ran (the table full) and
    /// claimed again is another entry, which that delivery's answer must not overwrite.
    arrival: u64,
    state: State,
}

enum State {
    Pending,
    Answered(Answered),
    /// It ended without an answer.
    Unanswered,
}

/// What a first delivery was answered: what its repeats are told.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The first delivery's decision id, which a repeat's log line and record point to.
    pub decision_id: Box<str>,
    pub verdict: Verdict,
    pub status: u16,
    pub reason: Option<Box<str>>,
    pub rule: Option<Arc<str>>,
}

impl Answered {
    /// The decision a repeat answers with: the first delivery's, with no rule run again.
    pub fn decision(&self) -> Decision {
        Decision {
            decision: self.verdict,
            status: self.status,
            reason: self.reason.as_deref().map(str::to_owned),
            rule: self.rule.clone(),
            shadow: Vec::new(),
            trace: Vec::new(),
            unused_fetches: Vec::new(),
        }
    }
}

/// Where a delivery stands among the deliveries of its message.
pub enum Claim {
    /// The first: evaluate it, and settle the ticket with its answer.
    First(Ticket),
    /// A repeat for the same ruleset: it gets the first delivery's answer.
    Repeat(Earlier),
    /// A repeat sent to another ruleset than its first delivery. PortOne sends a message to
    /// one confirm URL; the signature does not cover the path, so this is a replay.
    Elsewhere,
    /// A repeat whose body is not its first delivery's. Every delivery of a message carries
    /// the same body; another one under the same id was signed by something that is not
    /// PortOne resending, and was never checked: answering it the first delivery's way could
    /// approve a payment no rule has seen.
    Altered,
    /// Its signature expired no later than an id forgotten as expired (see
    /// [`IdTable::forgotten_until`]): whether it was seen before may be forgotten, so it is
    /// refused as too old.
    Expired,
}

/// Held by a first delivery until it is answered. Dropped unsettled (a bug's path), it
/// leaves the message unanswered, which its repeats are told at once.
pub struct Ticket {
    deliveries: Deliveries,
    key: Key,
    arrival: u64,
    settled: AtomicBool,
}

impl Ticket {
    /// Records the answer given under `decision_id`. Only the first call counts: one delivery
    /// has one answer.
    pub fn settle(&self, decision_id: &str, decision: &Decision) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.deliveries.settle(
            (&self.key, self.arrival),
            State::Answered(Answered {
                decision_id: decision_id.into(),
                verdict: decision.decision,
                status: decision.status,
                reason: decision.reason.as_deref().map(Box::from),
                rule: decision.rule.clone(),
            }),
        );
    }
}

impl Ticket {
    /// Forgets the message instead of settling it: its answer depended on what its signature
    /// does not cover (a `Content-Type` the body could not be read as), so a later delivery
    /// is evaluated as a first one — else anyone holding a copy of a signed message could
    /// send it ahead with a wrong `Content-Type` and have PortOne's own delivery refused.
    pub fn release(&self) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut seen = self.deliveries.seen();
        if seen.entry(&self.key, self.arrival).is_some() {
            seen.by_id.remove(&self.key);
        }
        seen.drop_released();
        drop(seen);
        self.deliveries.0.settled.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.deliveries
                .settle((&self.key, self.arrival), State::Unanswered);
        }
    }
}

/// What a repeat learns of its first delivery.
#[derive(Debug, PartialEq)]
pub enum FirstAnswer {
    Answered(Answered),
    /// It ended without an answer.
    Unanswered,
    /// Its message is no longer remembered: released (its body could not be read as the
    /// request), or forgotten to make room. The repeat is then a first delivery itself.
    Gone,
}

/// A repeat's view of its first delivery.
pub struct Earlier {
    deliveries: Deliveries,
    key: Key,
    arrival: u64,
}

impl Earlier {
    /// The first delivery's answer, waiting for it while it is being evaluated.
    pub async fn answer(self) -> FirstAnswer {
        let shared = &self.deliveries.0;
        loop {
            // Registered before the state is read, so a settle in between is not missed.
            let mut settled = pin!(shared.settled.notified());
            settled.as_mut().enable();
            match (self.deliveries.seen().entry(&self.key, self.arrival)).map(|f| &f.state) {
                Some(State::Pending) => {}
                Some(State::Answered(answered)) => return FirstAnswer::Answered(answered.clone()),
                Some(State::Unanswered) => return FirstAnswer::Unanswered,
                None => return FirstAnswer::Gone,
            }
            settled.await;
        }
    }
}

impl Deliveries {
    pub fn new(capacity: usize) -> Deliveries {
        Deliveries(Arc::new(Shared {
            seen: Mutex::new(IdTable::default()),
            settled: Notify::new(),
            capacity: capacity.max(1),
        }))
    }

    /// Claims `message`, with `body` read as `reading` says ([`payload::reading`]), for
    /// `ruleset` at `now` (Unix seconds). Also says how many ids were forgotten to make room
    /// for it.
    ///
    /// The signature covers the body but not its `Content-Type`, which decides how the body is
    /// read: the same JSON sent as a form is another request (a `paymentId` holding
    /// `&amount=1&` reads as a V1 payment of 1). So a message is its id and its reading
    /// together: a copy sent ahead as a form is evaluated on its own, and PortOne's JSON
    /// delivery is no repeat of it. (Its reading, not the header's text: a captured message
    /// sent with ever new types makes at most five entries, not as many as it likes.)
    ///
    /// [`payload::reading`]: crate::payload::reading
    pub fn claim(
        &self,
        message: Signed<'_>,
        reading: &str,
        body: &[u8],
        ruleset: &str,
        now: i64,
    ) -> (Claim, usize) {
        let key = digest(message.id, reading);
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let (ruleset, body) = (hasher.hash_one(ruleset), hasher.hash_one(body));
        let mut seen = self.seen();
        seen.forget_expired(now);
        if message.valid_until <= seen.forgotten_until {
            return (Claim::Expired, 0);
        }
        if let Some(first) = seen.by_id.get_mut(&key) {
            let claim = if first.ruleset != ruleset {
                Claim::Elsewhere
            } else if first.body != body {
                Claim::Altered
            } else {
                // A copy signed later (PortOne re-signs its retries) can itself be sent again
                // until its own signature expires: the id is remembered until then.
                first.valid_until = first.valid_until.max(message.valid_until);
                Claim::Repeat(Earlier {
                    deliveries: self.clone(),
                    key,
                    arrival: first.arrival,
                })
            };
            return (claim, 0);
        }
        let mut forgotten = 0;
        // Each turn forgets one id; should `by_id` and `expiry` ever disagree, it stops
        // rather than spin under the lock.
        while seen.by_id.len() >= self.0.capacity && seen.forget_soonest() {
            forgotten += 1;
        }
        seen.arrivals += 1;
        let arrival = seen.arrivals;
        seen.by_id.insert(
            key,
            First {
                ruleset,
                body,
                valid_until: message.valid_until,
                arrival,
                state: State::Pending,
            },
        );
        seen.expiry
            .push(Reverse((message.valid_until, arrival, key)));
        let ticket = Ticket {
            deliveries: self.clone(),
            key,
            arrival,
            settled: AtomicBool::new(false),
        };
        (Claim::First(ticket), forgotten)
    }

    fn settle(&self, (key, arrival): (&Key, u64), state: State) {
        // Forgotten meanwhile (full, or expired): nobody is told, as nobody can ask.
        if let Some(first) = self.seen().entry(key, arrival) {
            first.state = state;
        }
        self.0.settled.notify_waiters();
    }

    /// Nothing panics while the lock is held, so a poisoned one holds consistent data.
    fn seen(&self) -> MutexGuard<'_, IdTable> {
        self.0.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many message ids are remembered at `now` (Unix seconds): expired ones are forgotten
    /// first, so a scrape after a quiet spell does not show ids no request has cleared out.
    pub fn len_at(&self, now: i64) -> usize {
        let mut seen = self.seen();
        seen.forget_expired(now);
        seen.by_id.len()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen().by_id.len()
    }
}

fn digest(id: &[u8], reading: &str) -> Key {
    // An id is printable ASCII (the verifier checked): a zero byte ends it unambiguously.
    let full = Sha256::new()
        .chain_update(id)
        .chain_update([0])
        .chain_update(reading)
        .finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&full[..16]);
    key
}

impl IdTable {
    /// The entry `arrival` claimed under `key`, if it is still remembered.
    fn entry(&mut self, key: &Key, arrival: u64) -> Option<&mut First> {
        (self.by_id.get_mut(key)).filter(|first| first.arrival == arrival)
    }

    /// Forgets every id whose signatures have all expired by `now`.
    fn forget_expired(&mut self, now: i64) {
        while let Some(until) = self.soonest().filter(|&until| until < now) {
            if !self.forget_soonest() {
                break;
            }
            self.forgotten_until = self.forgotten_until.max(until);
        }
        self.shrink();
    }

    /// Gives memory back once most of it holds nothing: a burst filled the table to its
    /// 100,000 ids, and at rest, every id expired, it kept their room (35 MB over idle in a
    /// soak). Each shrink halves the room at least, so it happens a few times per burst.
    fn shrink(&mut self) {
        let room = |len: usize| 2 * len + 1024;
        if self.by_id.capacity() > 2 * room(self.by_id.len()) {
            self.by_id.shrink_to(room(self.by_id.len()));
        }
        if self.expiry.capacity() > 2 * room(self.expiry.len()) {
            self.expiry.shrink_to(room(self.expiry.len()));
        }
    }

    /// Forgets the id whose signatures expire first (the one least likely to be sent again);
    /// `false` when there was none.
    fn forget_soonest(&mut self) -> bool {
        if self.soonest().is_none() {
            return false;
        }
        match self.expiry.pop() {
            Some(Reverse((_, _, key))) => self.by_id.remove(&key).is_some(),
            None => false,
        }
    }

    /// Drops the expiry entries of released ids once they outnumber the ids remembered: each
    /// would otherwise stay until it came up, and a captured message sent again and again
    /// with a wrong `Content-Type` (claimed, then released, each time) grew the queue by an
    /// entry a request — 32 bytes each, never given back — for as long as an id remembered
    /// before it had not expired. Amortised, a release costs a few entries' check.
    fn drop_released(&mut self) {
        if self.expiry.len() <= 2 * self.by_id.len() + 64 {
            return;
        }
        let IdTable { by_id, expiry, .. } = self;
        expiry.retain(|Reverse((_, _, key))| by_id.contains_key(key));
        expiry.shrink_to_fit();
    }

    /// When the first id to expire does, after putting back with its later time each entry
    /// whose id a repeat has extended since.
    fn soonest(&mut self) -> Option<i64> {
        loop {
            let Reverse((until, arrival, key)) = *self.expiry.peek()?;
            match self.by_id.get(&key) {
                Some(first) if first.valid_until > until => {
                    self.expiry.pop();
                    self.expiry.push(Reverse((first.valid_until, arrival, key)));
                }
                Some(_) => return Some(until),
                // Released (see [`Ticket::release`]): its entry goes now.
                None => {
                    self.expiry.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":1000}"#;
    const JSON: &str = "json";

    fn signed(id: &str, valid_until: i64) -> Signed<'_> {
        Signed {
            id: id.as_bytes(),
            valid_until,
            secret: 0,
        }
    }

    fn first(claim: (Claim, usize)) -> Ticket {
        match claim {
            (Claim::First(ticket), 0) => ticket,
            (Claim::First(_), n) => panic!("{n} ids forgotten"),
            _ => panic!("expected a first delivery"),
        }
    }

    fn repeat(claim: (Claim, usize)) -> Earlier {
        match claim {
            (Claim::Repeat(earlier), 0) => earlier,
            _ => panic!("expected a repeat"),
        }
    }

    fn refusal() -> Decision {
        Decision::reject(
            409,
            "재고가 모두 소진되었습니다".into(),
            Some("stock".into()),
        )
    }

    /// Audit: a replay whose head came in the last second its signature held, its body slowly,
    /// was claimed with its arrival's clock after a scrape (or another request) had forgotten
    /// its id on a later one — a first delivery again, its rules run a second time and
    /// approving what the first delivery was refused. A delivery whose signature expired by the
    /// time ids were last forgotten is refused as too old.
    #[test]
    fn a_delivery_expired_by_the_time_ids_were_forgotten_is_refused() {
        let deliveries = Deliveries::new(10);
        let ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        ticket.settle("id-1", &refusal());
        // A scrape at 401 forgets it.
        assert_eq!(deliveries.len_at(401), 0);
        let late = deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 399);
        assert!(matches!(late, (Claim::Expired, 0)));
        // Signed later (a resend PortOne signed again), it is a delivery of its own.
        first(deliveries.claim(signed("msg_1", 700), JSON, BODY, "default", 399));
        // A scrape on a clock an hour ahead forgets what it sees expired; once the clock is
        // right again, messages signed after those are taken as before.
        first(deliveries.claim(signed("msg_2", 800), JSON, BODY, "default", 500));
        assert_eq!(deliveries.len_at(4000), 0);
        first(deliveries.claim(signed("msg_3", 801), JSON, BODY, "default", 501));
    }

    #[tokio::test]
    async fn a_repeat_gets_the_answer_of_the_first_delivery() {
        let deliveries = Deliveries::new(10);
        let ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let earlier = repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 101));
        ticket.settle("id-1", &refusal());
        // A second settle (a bug's path) changes nothing: one delivery has one answer.
        ticket.settle("id-2", &Decision::approve(None));
        let FirstAnswer::Answered(answered) = earlier.answer().await else {
            panic!("answered")
        };
        assert_eq!(&*answered.decision_id, "id-1");
        assert_eq!(answered.decision(), refusal());
        // Another message is a first delivery of its own.
        first(deliveries.claim(signed("msg_2", 400), JSON, BODY, "default", 102));
        assert_eq!(deliveries.len(), 2);
    }

    /// A repeat that arrives while the first delivery is still being evaluated waits for its
    /// answer rather than running the rules alongside it.
    #[tokio::test]
    async fn a_repeat_waits_for_a_first_delivery_still_running() {
        let deliveries = Deliveries::new(10);
        let ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let earlier = repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let waiting = tokio::spawn(earlier.answer());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        ticket.settle("id-1", &Decision::approve(None));
        let FirstAnswer::Answered(answered) = waiting.await.unwrap() else {
            panic!("answered")
        };
        assert_eq!(answered.verdict, Verdict::Approve);
        assert_eq!(answered.status, 200);
    }

    #[tokio::test]
    async fn a_first_delivery_that_ends_unanswered_leaves_its_repeats_none() {
        let deliveries = Deliveries::new(10);
        let ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let earlier = repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        drop(ticket);
        assert_eq!(earlier.answer().await, FirstAnswer::Unanswered);
    }

    /// A first delivery released while a repeat waits (a copy sent ahead with a wrong
    /// `Content-Type`) leaves the repeat free to be a first delivery itself.
    #[tokio::test]
    async fn a_repeat_of_a_released_first_delivery_claims_again() {
        let deliveries = Deliveries::new(10);
        let ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let earlier = repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let waiting = tokio::spawn(earlier.answer());
        tokio::task::yield_now().await;
        ticket.release();
        assert_eq!(waiting.await.unwrap(), FirstAnswer::Gone);
        first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
    }

    /// Claimed and released again and again while an earlier id is remembered, a message
    /// leaves no expiry entries piling up behind it.
    #[test]
    fn released_ids_leave_no_expiry_entries_behind() {
        let deliveries = Deliveries::new(100);
        let _kept = first(deliveries.claim(signed("msg_0", 300), JSON, BODY, "default", 100));
        for _ in 0..10_000 {
            first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100)).release();
        }
        let seen = deliveries.seen();
        assert_eq!(seen.by_id.len(), 1);
        assert!(seen.expiry.len() <= 2 + 64, "{}", seen.expiry.len());
    }

    #[test]
    fn a_repeat_for_another_ruleset_is_told_apart() {
        let deliveries = Deliveries::new(10);
        let _ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        assert!(matches!(
            deliveries.claim(signed("msg_1", 400), JSON, BODY, "marathon", 100),
            (Claim::Elsewhere, 0)
        ));
    }

    /// A copy read another way (its `Content-Type`, which the signature does not cover,
    /// decides how the body reads) is no repeat: it is claimed as a message of its own.
    #[test]
    fn a_copy_with_another_content_type_is_a_message_of_its_own() {
        let deliveries = Deliveries::new(10);
        let _json = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let form = "form";
        let _form = first(deliveries.claim(signed("msg_1", 400), form, BODY, "default", 100));
        repeat(deliveries.claim(signed("msg_1", 400), form, BODY, "default", 100));
        repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
    }

    /// Another body under a remembered id is told apart from a repeat, whichever comes first
    /// of the two: a repeat only ever gets the answer given to the very same request.
    #[test]
    fn a_repeat_with_another_body_is_told_apart() {
        let deliveries = Deliveries::new(10);
        let _ticket = first(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
        let other = br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":10}"#;
        assert!(matches!(
            deliveries.claim(signed("msg_1", 400), JSON, other, "default", 100),
            (Claim::Altered, 0)
        ));
        repeat(deliveries.claim(signed("msg_1", 400), JSON, BODY, "default", 100));
    }

    /// An id is remembered up to and including the last second its signature holds, then
    /// forgotten, whatever the order the ids arrived in.
    #[test]
    fn ids_are_forgotten_once_their_signatures_expire() {
        let deliveries = Deliveries::new(10);
        let _a = first(deliveries.claim(signed("a", 400), JSON, BODY, "default", 100));
        let _b = first(deliveries.claim(signed("b", 500), JSON, BODY, "default", 100));
        let _c = first(deliveries.claim(signed("c", 450), JSON, BODY, "default", 100));
        repeat(deliveries.claim(signed("a", 400), JSON, BODY, "default", 400));
        let _d = first(deliveries.claim(signed("d", 900), JSON, BODY, "default", 401));
        assert_eq!(deliveries.len(), 3, "a is forgotten at 401");
        let _a = first(deliveries.claim(signed("a", 1000), JSON, BODY, "default", 401));
        let _e = first(deliveries.claim(signed("e", 900), JSON, BODY, "default", 460));
        assert_eq!(deliveries.len(), 4, "c is forgotten at 460, before b");
        let _f = first(deliveries.claim(signed("f", 900), JSON, BODY, "default", 501));
        assert_eq!(deliveries.len(), 4, "b is forgotten at 501");
        // Counting (a scrape) forgets what has expired by then, with no claim to do it.
        assert_eq!(deliveries.len_at(900), 4, "d, a, e and f hold through 900");
        assert_eq!(
            deliveries.len_at(901),
            1,
            "d, e and f are forgotten; a holds"
        );
        assert_eq!(deliveries.len_at(1001), 0);
    }

    /// A copy signed later (a resend PortOne signed again) keeps its id remembered until that
    /// signature expires too: a captured copy of it is still a repeat, not a new message.
    #[test]
    fn a_repeat_signed_later_keeps_its_id_longer() {
        let deliveries = Deliveries::new(10);
        let _g = first(deliveries.claim(signed("g", 400), JSON, BODY, "default", 100));
        repeat(deliveries.claim(signed("g", 700), JSON, BODY, "default", 390));
        // Another body or ruleset extends nothing.
        let other = br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":10}"#;
        assert!(matches!(
            deliveries.claim(signed("g", 900), JSON, other, "default", 391),
            (Claim::Altered, 0)
        ));
        assert_eq!(deliveries.len_at(700), 1);
        repeat(deliveries.claim(signed("g", 700), JSON, BODY, "default", 700));
        assert_eq!(deliveries.len_at(701), 0);
    }

    /// A burst's room is given back once its ids expire.
    #[test]
    fn the_room_of_expired_ids_is_given_back() {
        let deliveries = Deliveries::new(100_000);
        for i in 0..20_000 {
            let id = format!("msg_{i}");
            let _ = deliveries.claim(signed(&id, 1_000), JSON, b"{}", "default", 900);
        }
        assert!(deliveries.seen().by_id.capacity() >= 20_000);
        assert_eq!(deliveries.len_at(1_001), 0);
        let seen = deliveries.seen();
        assert!(
            seen.by_id.capacity() <= 2 * 1024 + 1024,
            "{}",
            seen.by_id.capacity()
        );
        assert!(
            seen.expiry.capacity() <= 2 * 1024,
            "{}",
            seen.expiry.capacity()
        );
    }

    #[test]
    fn when_full_the_id_expiring_first_is_forgotten_and_counted() {
        let deliveries = Deliveries::new(2);
        let _a = first(deliveries.claim(signed("a", 400), JSON, BODY, "default", 100));
        let _b = first(deliveries.claim(signed("b", 400), JSON, BODY, "default", 100));
        let (Claim::First(_c), 1) = deliveries.claim(signed("c", 400), JSON, BODY, "default", 100)
        else {
            panic!("c is a first delivery, and a is forgotten for it");
        };
        assert_eq!(deliveries.len(), 2);
        repeat(deliveries.claim(signed("b", 400), JSON, BODY, "default", 100));
        let (Claim::First(_a), 1) = deliveries.claim(signed("a", 400), JSON, BODY, "default", 100)
        else {
            panic!("a, forgotten, is a first delivery again");
        };
    }

    /// Review: a first delivery forgotten while it ran (the table full) and its message
    /// claimed again by a resend — the earlier delivery's answer, or its ending unanswered or
    /// released, leaves the resend's entry alone: the resend's repeats get the resend's answer.
    #[tokio::test]
    async fn an_answer_settles_only_the_claim_it_was_given_for() {
        for end in ["settled", "dropped", "released"] {
            let deliveries = Deliveries::new(1);
            let old = first(deliveries.claim(signed("a", 400), JSON, BODY, "default", 100));
            let waiting = repeat(deliveries.claim(signed("a", 400), JSON, BODY, "default", 100));
            let (Claim::First(resend), 1) =
                deliveries.claim(signed("b", 400), JSON, BODY, "default", 100)
            else {
                panic!("b pushes a out");
            };
            drop(resend);
            let (Claim::First(resend), 1) =
                deliveries.claim(signed("a", 400), JSON, BODY, "default", 100)
            else {
                panic!("a, forgotten, is a first delivery again");
            };
            let repeat_of_resend =
                repeat(deliveries.claim(signed("a", 400), JSON, BODY, "default", 100));
            match end {
                "settled" => old.settle("id-old", &refusal()),
                "dropped" => drop(old),
                _ => old.release(),
            }
            // The repeat of the forgotten delivery learns it is gone, not the resend's state.
            assert_eq!(waiting.answer().await, FirstAnswer::Gone, "{end}");
            resend.settle("id-new", &Decision::approve(None));
            let FirstAnswer::Answered(answered) = repeat_of_resend.answer().await else {
                panic!("{end}: the resend's repeat gets the resend's answer");
            };
            assert_eq!(&*answered.decision_id, "id-new", "{end}");
            assert_eq!(deliveries.len(), 1, "{end}");
        }
    }
}
