//! UniFFI bindings for Roundtrip: the layer Kotlin and Swift call.
//!
//! This crate holds no logic of its own. It converts records and errors between the FFI and the
//! `roundtrip` crate, runs async calls on one shared tokio runtime, and forwards `tracing`
//! events to a logger implemented in Kotlin or Swift.
//!
//! Async calls are spawned onto the runtime and awaited through a guard that aborts the task when
//! the foreign side drops the future, which is what Kotlin coroutine cancellation and Swift task
//! cancellation do: cancelling on the app's side stops the request in Rust.

#![allow(
    clippy::result_large_err,
    reason = "RoundtripError crosses the FFI by value; UniFFI cannot lift a boxed record"
)]

mod client;
mod error;
mod logging;
mod push;
mod realtime;
mod runtime;
mod session;
mod types;

pub use client::Client;
pub use error::RoundtripError;
pub use logging::{LogLevel, LogRecord, Logger, clear_logger, set_logger};
pub use push::{
    Push, PushBackoff, PushConfig, PushStatus, PushToken, RoundtripMessage,
    parse_roundtrip_message, parse_roundtrip_message_json,
};
pub use realtime::{
    Channel, ChannelConfig, ChannelEvent, ChannelListener, ChannelState, ChannelSubscription,
    DisconnectReason, Overflow,
};
pub use runtime::CancellationToken;
pub use session::{
    AuthorizationRequest, DeviceAuthorization, OAuthSettings, SessionEvent, SessionListener,
    StoredTokens, Subscription, TokenStore,
};
pub use types::{
    CacheInfo, CachePolicy, ClientConfig, Credentials, Header, Method, Problem, QueryParam,
    Request, Response, RetryConfig,
};

uniffi::setup_scaffolding!();
