//! Integration tests of the `roundtrip` crate against the reference server on loopback.
//!
//! One binary, one module per capability. Each test starts its own server with its own
//! database, so tests run in parallel without seeing each other's requests.

mod support;

mod cache;
mod cancellation;
mod connectivity;
mod errors;
mod http;
mod push;
mod realtime;
mod retry;
mod safety;
mod session;
