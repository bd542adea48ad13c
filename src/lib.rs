//! confirm-proxy: the merchant-side endpoint of PortOne's confirm process.
//!
//! One request flows one way: [`payload`] (PortOne formats → `ConfirmRequest`) → [`engine`]
//! (a [`rules`] snapshot evaluated, upstreams called through a seam) → [`decision`] (the answer).
//! [`script`] owns the shared Rhai engine.

pub mod audit;
pub mod cli;
pub mod decision;
pub mod engine;
pub mod logfmt;
pub mod metrics;
pub mod payload;
pub mod reload;
pub mod rules;
pub mod ruletest;
pub mod script;
pub mod server;
pub mod spool;
pub mod upstream;
pub mod webhook;
