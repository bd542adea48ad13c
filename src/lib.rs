//! confirm-proxy: the merchant-side endpoint of PortOne's confirm process.
//!
//! One request flows one way: [`payload`] (PortOne formats → `ConfirmRequest`) → [`engine`]
//! (a [`rules`] snapshot evaluated, upstreams called through a seam) → [`decision`] (the answer).
//! [`script`] owns the shared Rhai engine. [`ruletest`] and [`replay`] drive the same engine
//! with canned upstreams: rule tests, and the decision log decided again.
//!
//! Around that line: [`server`] (the listeners and the guards in front of the engine: source,
//! size, [`webhook`] signature, payload) and [`cli`] (`serve`, `check`, `test`, `eval`,
//! `replay`); [`upstream`] (HTTP calls to the merchant, health probes, canned answers);
//! [`reload`] (the rules snapshot, swapped whole, and what triggers a reload); [`audit`] (the
//! decision log) written through [`spool`], as the log line of [`logfmt`] is; [`metrics`];
//! [`background`] (large answers read and freed off the runtime's workers); and small shared
//! pieces: [`text`] (outside text made fit to show), [`wordscan`], [`suggest`] ("did you mean").
//!
//! `SPEC §N` in comments is a section of the product contract, `SPEC.md` in the team's shared
//! folder beside this repository (`../shared/`); the README says the same for operators and
//! names every place where the proxy goes past it.

/// The scalar methods of a serde `Visitor` (with `Value = ()`) that walks a document for its
/// structure alone: every scalar is accepted and ignored. The duplicate-key walks of JSON bodies
/// and of YAML rule files both need them. `ignore_scalars!(T, value)`: every scalar but a string
/// gives `value`, for a visitor that looks at strings only.
macro_rules! ignore_scalars {
    () => {
        crate::ignore_scalars!((), ());
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
    };
    // Every scalar but a string gives `$value` (of type `$ty`).
    ($ty:ty, $value:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok($value)
        }
        // serde_yaml reads integers beyond 64 bits as 128-bit ones.
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<$ty, E> {
            Ok($value)
        }
    };
}
pub(crate) use ignore_scalars;

/// An error and its sources, outermost first: causes are told apart by what lies underneath
/// (an I/O error inside hyper's inside reqwest's).
pub(crate) fn error_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// The innermost error under `e`: what went wrong, where the outer ones say where.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    error_chain(e).last().unwrap_or(e).to_string()
}

pub mod audit;
pub mod background;
pub mod cli;
pub mod decision;
pub mod engine;
pub mod logfmt;
pub mod metrics;
pub mod payload;
pub mod reload;
pub mod replay;
pub mod rules;
pub mod ruletest;
pub mod script;
pub mod server;
pub mod spool;
pub mod suggest;
pub mod text;
pub mod upstream;
pub mod webhook;
pub mod wordscan;
