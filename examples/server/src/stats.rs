//! Request counters that tests read back through `GET /_control/stats`.
//!
//! A request is counted as it arrives, before any fault is applied, so a test
//! can tell how many attempts a client really made. The `/slow` endpoint adds
//! its own counters to show whether a streamed body was read to the end or
//! dropped half way, and the cacheable resources count, per name, what reached
//! the network and how it was answered. The OAuth endpoints and the device registry keep
//! counters of their own, so that a test can tell what reached their handlers.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::Method;
use serde::Serialize;

/// The server's counters, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    counters: Mutex<Counters>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Counters {
    /// Every request outside `/_control`.
    pub total: u64,

    /// Requests per `"METHOD /path"`, the path as sent and without its query.
    pub by_route: BTreeMap<String, u64>,

    /// The life of `/slow` bodies.
    pub slow: SlowCounters,

    /// Fault rules that fired.
    pub faults_injected: u64,

    /// What the OAuth endpoints saw.
    pub oauth: OAuthCounters,

    /// What the device registry saw.
    pub push: PushCounters,
    /// Requests to each cacheable resource, by name.
    pub cache: BTreeMap<String, CacheCounters>,
    /// What the WebSocket endpoint saw.
    pub realtime: RealtimeCounters,
}

/// What the WebSocket endpoint saw; the open sockets are counted by the hub instead.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RealtimeCounters {
    /// Upgrades that completed: sockets opened.
    pub connections_accepted: u64,

    /// Requests to `/ws` the handler refused: not an upgrade, no or a bad token, a bad
    /// `last_event_id`.
    pub handshakes_rejected: u64,

    /// Sockets opened with `last_event_id`.
    pub resumed: u64,

    /// Events sent from the replay buffer to resuming sockets.
    pub events_replayed: u64,

    /// Events published, by clients or through the control.
    pub events_published: u64,

    /// Text and binary messages read from clients.
    pub messages_received: u64,
}

/// What one cacheable resource saw.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CacheCounters {
    /// Every request for it, whatever the method, counted before any fault applies.
    pub requests: u64,

    /// Requests carrying `If-None-Match` or `If-Modified-Since`.
    pub conditional: u64,

    /// 304 responses.
    pub not_modified: u64,

    /// `GET` responses that carried the resource in full.
    pub full: u64,
}

/// What the OAuth endpoints saw; the grant counts come from the database instead.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OAuthCounters {
    /// Requests that reached the token endpoint's handler, whatever their grant type or outcome.
    pub token_requests: u64,

    /// Token requests with `grant_type=refresh_token`, successful or not.
    pub refresh_grants: u64,

    /// Refresh tokens presented again after they were rotated.
    pub refresh_reuse_detected: u64,

    /// Requests that reached the revocation endpoint's handler.
    pub revocations: u64,
}

/// What the device registry saw; the number of devices comes from the database instead.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PushCounters {
    /// `PUT /devices/{id}` requests that reached the handler, whatever their outcome.
    pub registrations: u64,

    /// `GET /devices/{id}` requests that reached the handler.
    pub verifications: u64,

    /// `DELETE /devices/{id}` requests that reached the handler.
    pub unregistrations: u64,

    /// Those of them that came without credentials.
    pub anonymous_unregistrations: u64,

    /// Devices deleted through the test control, as a push provider's feedback would.
    pub provider_deletions: u64,
}

/// How `/slow` responses ended.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SlowCounters {
    /// Handlers that began.
    pub started: u64,

    /// Bodies whose last chunk was produced.
    pub completed: u64,

    /// Bodies dropped before their last chunk, because the client went away.
    pub aborted: u64,
}

impl Stats {
    /// Counts one arriving request.
    pub(crate) fn record_request(&self, method: &Method, path: &str) {
        let mut counters = self.lock();
        counters.total += 1;
        *counters
            .by_route
            .entry(format!("{method} {path}"))
            .or_default() += 1;
    }

    /// Counts a fault rule that fired.
    pub(crate) fn record_fault(&self) {
        self.lock().faults_injected += 1;
    }

    /// Counts a `/slow` handler that began.
    pub(crate) fn record_slow_started(&self) {
        self.lock().slow.started += 1;
    }

    /// Counts a `/slow` body that produced its last chunk.
    pub(crate) fn record_slow_completed(&self) {
        self.lock().slow.completed += 1;
    }

    /// Counts a `/slow` body dropped before its last chunk.
    pub(crate) fn record_slow_aborted(&self) {
        self.lock().slow.aborted += 1;
    }

    /// Changes the OAuth counters with `change`.
    pub(crate) fn record_oauth(&self, change: impl FnOnce(&mut OAuthCounters)) {
        change(&mut self.lock().oauth);
    }

    /// Changes the counters of the cacheable resource `name` with `change`.
    pub(crate) fn record_cache(&self, name: &str, change: impl FnOnce(&mut CacheCounters)) {
        change(self.lock().cache.entry(name.to_owned()).or_default());
    }

    /// Changes the device registry's counters with `change`.
    pub(crate) fn record_push(&self, change: impl FnOnce(&mut PushCounters)) {
        change(&mut self.lock().push);
    }

    /// Changes the realtime counters with `change`.
    pub(crate) fn record_realtime(&self, change: impl FnOnce(&mut RealtimeCounters)) {
        change(&mut self.lock().realtime);
    }

    /// Returns a copy of the counters.
    pub(crate) fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset(&self) {
        *self.lock() = Counters::default();
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters stay consistent even if a holder panicked: each update is one step.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_path() {
        let stats = Stats::default();

        stats.record_request(&Method::GET, "/todos");
        stats.record_request(&Method::GET, "/todos");
        stats.record_request(&Method::POST, "/todos");
        let counters = stats.snapshot();

        assert_eq!(counters.total, 3);
        assert_eq!(counters.by_route["GET /todos"], 2);
        assert_eq!(counters.by_route["POST /todos"], 1);
    }

    #[test]
    fn reset_zeroes_everything() {
        let stats = Stats::default();
        stats.record_request(&Method::GET, "/slow");
        stats.record_slow_started();
        stats.record_fault();
        stats.record_oauth(|oauth| oauth.token_requests += 1);
        stats.record_cache("r", |cache| cache.requests += 1);
        stats.record_push(|push| push.registrations += 1);
        stats.record_realtime(|realtime| realtime.connections_accepted += 1);

        stats.reset();

        assert_eq!(stats.snapshot(), Counters::default());
    }
}
