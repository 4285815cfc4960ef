//! Behaviour of the HTTP API, driven through the router with `oneshot`
//! against a fresh database per test.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod contract;
mod create;
mod errors;
mod facts;
mod history;
mod idempotency;
mod insights;
mod ledger;
mod list;
mod no_5xx;
mod patch;
mod read;
