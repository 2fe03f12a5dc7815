//! The refresh engine: the rules that keep a session alive without ever ending it by mistake.
//!
//! - Proactive: a token within the refresh margin of its expiry is refreshed before use.
//! - Reactive: a 401 for a token triggers a refresh, unless that token was already replaced.
//! - Single flight: however many requests need a refresh at once, one refresh call is made and
//!   all of them use its result (a generation number tells who is late).
//! - A refresh runs on its own task, so it completes even if every request that wanted it is
//!   cancelled, and its result is persisted before the new access token is handed out.
//! - A rotated refresh token replaces the old one in memory and in the store in one step; the
//!   old one is never sent again.
//! - Only a definitive rejection from the token endpoint ends the session; timeouts, connection
//!   failures, 5xx and offline keep it.
//! - A breaker stops refresh loops: too many refreshes in a window fail fast instead.
//!
//! Other components that must act at session boundaries (push registration) register a
//! [`SessionHook`]: told of every sign-in, and given the chance to make last authenticated calls
//! at sign-out, before the tokens are revoked and forgotten.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::Error;
use crate::auth::store::{StoredTokens, TokenStore};
use crate::auth::{OAuthFlows, Secret, SessionEvent};

/// How refreshes are paced.
#[derive(Clone, Debug)]
pub(crate) struct RefreshRules {
    /// Refresh this long before the access token expires.
    pub(crate) margin: Duration,
    /// At most this many refreshes within `window`.
    pub(crate) max_refreshes: usize,
    pub(crate) window: Duration,
}

impl Default for RefreshRules {
    fn default() -> Self {
        RefreshRules {
            margin: Duration::from_secs(60),
            max_refreshes: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// A source of the current time, replaceable in tests.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A component that acts at session boundaries. Every method has a default that does nothing.
pub(crate) trait SessionHook: Send + Sync {
    /// A user signed in. Called once the new tokens are in place; must be quick.
    fn signed_in(&self) {}

    /// The app is signing the user out. Called while the tokens still work, before they are
    /// revoked and forgotten, so that the component can make its last authenticated calls.
    fn before_sign_out(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }

    /// The session ended (signed out, or rejected by the server). Called after the tokens are
    /// gone; must be quick.
    fn ended(&self) {}
}

/// The token to send, and the generation it belongs to.
#[derive(Clone)]
pub(crate) struct Authorization {
    pub(crate) token: Secret,
    pub(crate) generation: u64,
}

struct State {
    tokens: Option<StoredTokens>,
    generation: u64,
}

/// Counts recent refreshes; opens when there were too many.
struct Breaker {
    recent: VecDeque<SystemTime>,
}

impl Breaker {
    /// Records a refresh at `now`, or says how long until one is allowed.
    fn admit(&mut self, now: SystemTime, rules: &RefreshRules) -> Result<(), Duration> {
        while let Some(oldest) = self.recent.front() {
            let age = now.duration_since(*oldest).unwrap_or(Duration::ZERO);
            if age < rules.window {
                break;
            }
            self.recent.pop_front();
        }

        if self.recent.len() >= rules.max_refreshes {
            let oldest = self.recent[0];
            let age = now.duration_since(oldest).unwrap_or(Duration::ZERO);
            return Err(rules.window.saturating_sub(age));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

pub(crate) struct Engine {
    flows: OAuthFlows,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    rules: RefreshRules,
    state: Mutex<State>,
    breaker: Mutex<Breaker>,
    single_flight: tokio::sync::Mutex<()>,
    events: broadcast::Sender<SessionEvent>,
    hooks: Mutex<Vec<Arc<dyn SessionHook>>>,
}

impl Engine {
    pub(crate) fn new(
        flows: OAuthFlows,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        rules: RefreshRules,
    ) -> Engine {
        let tokens = match store.load() {
            Ok(tokens) => tokens,
            Err(error) => {
                warn!(%error, "stored session could not be read; starting signed out");
                None
            }
        };
        Engine {
            flows,
            store,
            clock,
            rules,
            state: Mutex::new(State {
                tokens,
                generation: 0,
            }),
            breaker: Mutex::new(Breaker {
                recent: VecDeque::new(),
            }),
            single_flight: tokio::sync::Mutex::new(()),
            events: broadcast::channel(64).0,
            hooks: Mutex::new(Vec::new()),
        }
    }

    /// Registers a component to be told of sign-ins and sign-outs.
    pub(crate) fn add_hook(&self, hook: Arc<dyn SessionHook>) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    pub(crate) fn hooks(&self) -> Vec<Arc<dyn SessionHook>> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn flows(&self) -> &OAuthFlows {
        &self.flows
    }

    /// The identifier of the current sign-in, if signed in.
    pub(crate) fn session_id(&self) -> Option<String> {
        self.lock_state()
            .tokens
            .as_ref()
            .and_then(|tokens| tokens.session_id.clone())
    }

    pub(crate) fn now_secs(&self) -> u64 {
        unix_seconds(self.clock.now())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    pub(crate) fn is_signed_in(&self) -> bool {
        self.lock_state().tokens.is_some()
    }

    pub(crate) fn scope(&self) -> Option<String> {
        self.lock_state()
            .tokens
            .as_ref()
            .and_then(|tokens| tokens.scope.clone())
    }

    /// The token for the next request, refreshed first if it is about to expire.
    pub(crate) async fn authorization(self: &Arc<Self>) -> Result<Authorization, Error> {
        let (current, needs_refresh, still_valid) = {
            let state = self.lock_state();
            let tokens = state.tokens.as_ref().ok_or(Error::SignInRequired)?;
            let now = unix_seconds(self.clock.now());
            let expires_at = tokens.expires_at.unwrap_or(u64::MAX);
            let current = Authorization {
                token: tokens.access_token.clone(),
                generation: state.generation,
            };
            let due = expires_at.saturating_sub(self.rules.margin.as_secs()) <= now;
            let refreshable = tokens.refresh_token.is_some();
            (current, due && refreshable, expires_at > now)
        };
        if !needs_refresh {
            return Ok(current);
        }

        match self.refresh(current.generation).await {
            Ok(fresh) => Ok(fresh),
            // The token has not expired yet: use it while the refresh cannot be made.
            Err(error) if still_valid && error.is_transient() => {
                debug!(%error, "proactive refresh failed; using the current token");
                Ok(current)
            }
            Err(error) => Err(error),
        }
    }

    /// Handles a 401 for a token of `generation`: refreshes, unless someone already did.
    pub(crate) async fn rejected(
        self: &Arc<Self>,
        generation: u64,
    ) -> Result<Authorization, Error> {
        self.refresh(generation).await
    }

    /// Refreshes the tokens of `generation`, once for all concurrent callers. Runs on its own
    /// task so that it completes even if the caller goes away.
    async fn refresh(self: &Arc<Self>, generation: u64) -> Result<Authorization, Error> {
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move { engine.refresh_once(generation).await });
        task.await
            .map_err(|_| Error::Internal("the token refresh task failed".into()))?
    }

    async fn refresh_once(&self, generation: u64) -> Result<Authorization, Error> {
        let _flight = self.single_flight.lock().await;

        let (refresh_token, session_id) = {
            let state = self.lock_state();
            let tokens = state.tokens.as_ref().ok_or(Error::SignInRequired)?;
            if state.generation != generation {
                // Another caller refreshed while this one waited.
                return Ok(Authorization {
                    token: tokens.access_token.clone(),
                    generation: state.generation,
                });
            }
            let refresh_token = tokens.refresh_token.clone().ok_or(Error::SignInRequired)?;
            (refresh_token, tokens.session_id.clone())
        };

        let now = self.clock.now();
        let admitted = self
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(now, &self.rules);
        if let Err(wait) = admitted {
            warn!(
                wait_ms = wait.as_millis() as u64,
                "token refreshes throttled"
            );
            return Err(Error::RefreshThrottled { retry_after: wait });
        }

        debug!("refreshing the access token");
        match self.flows.refresh(&refresh_token, unix_seconds(now)).await {
            Ok(mut tokens) => {
                // Servers that do not rotate keep the refresh token valid.
                if tokens.refresh_token.is_none() {
                    tokens.refresh_token = Some(refresh_token);
                }
                tokens.session_id = session_id;
                let authorization = self.replace(tokens);
                let _ = self.events.send(SessionEvent::Refreshed);
                Ok(authorization)
            }
            Err(RefreshFailure::Definitive(error)) => {
                info!(%error, "the server ended the session");
                self.end(SessionEvent::Expired);
                Err(Error::SignInRequired)
            }
            Err(RefreshFailure::Transient(error)) => {
                warn!(%error, "token refresh failed; keeping the session");
                Err(error)
            }
        }
    }

    /// Makes `tokens` the session's tokens: persisted first, then used.
    pub(crate) fn replace(&self, tokens: StoredTokens) -> Authorization {
        if let Err(error) = self.store.save(&tokens) {
            // Keep the new tokens in memory anyway: going back to a rotated refresh token would
            // make the server revoke the whole grant.
            warn!(%error, "new tokens could not be persisted");
        }

        let mut state = self.lock_state();
        state.generation += 1;
        let authorization = Authorization {
            token: tokens.access_token.clone(),
            generation: state.generation,
        };
        state.tokens = Some(tokens);
        authorization
    }

    /// Starts a session with tokens from a sign-in.
    pub(crate) fn sign_in(&self, mut tokens: StoredTokens) {
        if tokens.session_id.is_none() {
            tokens.session_id = crate::auth::oauth::random_token(16).ok();
        }
        self.replace(tokens);
        for hook in self.hooks() {
            hook.signed_in();
        }
        let _ = self.events.send(SessionEvent::SignedIn);
    }

    /// Forgets the session, in memory and in the store, and announces `event`.
    pub(crate) fn end(&self, event: SessionEvent) -> Option<StoredTokens> {
        let previous = {
            let mut state = self.lock_state();
            state.generation += 1;
            state.tokens.take()
        };
        if let Err(error) = self.store.clear() {
            warn!(%error, "stored tokens could not be cleared");
        }
        for hook in self.hooks() {
            hook.ended();
        }
        let _ = self.events.send(event);
        previous
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a refresh failed, as the engine needs to know it.
pub(crate) enum RefreshFailure {
    /// The server rejected the refresh token: the session is over.
    Definitive(Error),
    /// The refresh could not be made now; the session stays.
    Transient(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn test_breaker_admits_up_to_the_limit_within_the_window() {
        let rules = RefreshRules {
            max_refreshes: 3,
            window: Duration::from_secs(60),
            ..RefreshRules::default()
        };
        let mut breaker = Breaker {
            recent: VecDeque::new(),
        };

        assert!(breaker.admit(at(0), &rules).is_ok());
        assert!(breaker.admit(at(10), &rules).is_ok());
        assert!(breaker.admit(at(20), &rules).is_ok());
        assert_eq!(breaker.admit(at(30), &rules), Err(Duration::from_secs(30)));
    }

    #[test]
    fn test_breaker_closes_again_as_refreshes_age_out() {
        let rules = RefreshRules {
            max_refreshes: 2,
            window: Duration::from_secs(60),
            ..RefreshRules::default()
        };
        let mut breaker = Breaker {
            recent: VecDeque::new(),
        };
        breaker.admit(at(0), &rules).unwrap();
        breaker.admit(at(1), &rules).unwrap();

        assert!(breaker.admit(at(59), &rules).is_err());
        assert!(breaker.admit(at(61), &rules).is_ok());
    }
}
