//! Roundtrip: the client half of a mobile app's connection to its server.
//!
//! One [`Client`] per backend makes HTTP calls with safe defaults: HTTPS required except to
//! loopback, credentials kept to their origin on redirects, bounded response bodies, retries
//! only where repeating a request cannot apply it twice, and a typed [`Error`] whose
//! [`retry_class`](Error::retry_class) tells what to do next.
//!
//! ```no_run
//! # async fn run() -> Result<(), roundtrip::Error> {
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)]
//! struct NewTodo<'a> { title: &'a str }
//!
//! #[derive(Deserialize)]
//! struct Todo { id: u64, title: String, done: bool }
//!
//! let client = roundtrip::Client::builder("https://api.example.com").build()?;
//!
//! let created: Todo = client
//!     .post("/todos")
//!     .json(&NewTodo { title: "Buy milk" })
//!     .generated_idempotency_key() // safe to retry: the server applies it once
//!     .send()
//!     .await?
//!     .json()?;
//!
//! let todos: Vec<Todo> = client.get("/todos").query("done", "false").await?.json()?;
//! # Ok(()) }
//! ```
//!
//! # Flow of a request
//!
//! [`RequestBuilder`] resolves the target against the base URL and merges headers; the pipeline
//! then makes attempts until one succeeds or the [`RetryPolicy`] says stop. Each attempt checks
//! the app-reported [`Connectivity`], sends through reqwest (rustls with *ring*, HTTP/2 when
//! offered, gzip and brotli), reads the body within the size limit and maps any failure to an
//! [`Error`] in one place.
//!
//! # Components
//!
//! Sessions (API keys, OAuth 2.0 and the refresh engine) live in [`auth`]; push registration,
//! which keeps the backend's record of this device correct, in [`push`]. Push makes its calls
//! through the same request pipeline as the app's own, so credentials, the refresh on a 401,
//! retries and the offline check apply to them too.
//! # Realtime
//!
//! [`Client::channel`] opens a WebSocket [`realtime::Channel`] that authenticates like requests
//! do, reconnects with backoff, detects dead connections with pings, queues messages while
//! disconnected and can resume from the last event it received.
//!
//! # Logging
//!
//! The crate logs through `tracing`: `debug` for each request's outcome, `warn` for retries.
//! URLs are logged without query strings and header values are never logged.

#![warn(missing_docs)]

pub mod auth;
mod cache;
mod client;
mod connectivity;
mod error;
mod internal;
pub mod push;
pub mod realtime;
mod request;
mod response;
mod retry;
mod storage;

pub use cache::{CacheInfo, CachePolicy, CacheSource};
pub use client::{Client, ClientBuilder};
pub use connectivity::Connectivity;
pub use error::{Error, Problem, RetryClass};
pub use request::{Method, RequestBuilder};
pub use response::Response;
pub use retry::RetryPolicy;

/// A `Result` whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
