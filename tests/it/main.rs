//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP, with mock upstreams
//! on loopback. One test binary (each file in tests/ would be its own link step).

// Helpers panic on purpose: a panic in a test helper is a failed test with its cause.
#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod confirm;
mod hot_reload;
mod process;
mod replay;
mod security;
mod sequential;
mod upstreams;
