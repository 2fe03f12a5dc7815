//! The push component: its state, the passes that act on the reconciliation rule, the session
//! hooks, and the background task that runs passes when something changes.
//!
//! A pass takes the single-flight lock, asks [`reconcile::plan`] for the next step, makes the
//! request through the client's own pipeline, records the outcome, and repeats until the plan
//! is idle. The background task runs a pass when the app reports a change, when a sign-in
//! happens, when the network returns, when a re-verification falls due, and after a backoff
//! when a pass failed transiently.
//!
//! The component holds the client weakly (the client holds the component), and the task holds
//! the component weakly, so dropping the client ends the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, instrument, warn};

use crate::auth::SessionHook;
use crate::client::{Auth, Shared};
use crate::push::reconcile::{self, Plan, Registered, Snapshot, Wanted};
use crate::push::store::{self, Stored};
use crate::push::{PushConfig, PushStatus, PushToken};
use crate::storage::Database;
use crate::{Client, Error, RetryClass, RetryPolicy};

/// How long sign-out waits for the unregistration before queueing it instead.
const SIGN_OUT_WAIT: Duration = Duration::from_secs(5);

/// More steps than any legitimate pass needs (unregister, verify, register).
const MAX_STEPS: usize = 8;

/// The first characters of an installation id: enough to follow a device through logs.
pub(crate) fn short_id(installation_id: &str) -> &str {
    installation_id.get(..8).unwrap_or(installation_id)
}

/// What the component knows, in memory; everything but the token is also in SQLite.
struct State {
    /// The token the app last handed over in this process, with its fingerprint.
    token: Option<(PushToken, String)>,
    opt_in: bool,
    locale: Option<String>,
    registered: Option<Registered>,
    unregister_pending: bool,
    /// Cleared when sign-out starts, set again by a sign-in: no registration in between.
    session_open: bool,
    /// Bumped by every sign-in, so that a request made for the previous session is not
    /// recorded as the new session's registration.
    session_epoch: u64,
    last_error: Option<String>,
}

pub(crate) struct PushShared {
    this: Weak<PushShared>,
    installation_id: String,
    config: PushConfig,
    database: Database,
    client: Weak<Shared>,
    state: Mutex<State>,
    /// One pass at a time: the background task, `reconcile` and sign-out take turns.
    flight: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    driving: AtomicBool,
}

impl PushShared {
    /// Opens the component's state (in `storage_dir`, or in memory) for the client behind
    /// `client`.
    pub(crate) fn open(
        config: PushConfig,
        storage_dir: Option<&std::path::Path>,
        client: Weak<Shared>,
    ) -> Result<Arc<PushShared>, Error> {
        config.check()?;
        let (database, stored) = store::open(storage_dir, new_installation_id)?;
        let Stored {
            installation_id,
            opt_in,
            unregister_pending,
            registered,
        } = stored;
        debug!(installation = %short_id(&installation_id), "push state loaded");

        Ok(Arc::new_cyclic(|this| PushShared {
            this: this.clone(),
            installation_id,
            database,
            client,
            state: Mutex::new(State {
                token: None,
                opt_in,
                locale: config.locale.clone(),
                registered,
                unregister_pending,
                session_open: true,
                session_epoch: 0,
                last_error: None,
            }),
            config,
            flight: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            driving: AtomicBool::new(false),
        }))
    }

    pub(crate) fn installation_id(&self) -> &str {
        &self.installation_id
    }

    pub(crate) fn set_token(&self, token: PushToken) -> Result<(), Error> {
        token.check()?;
        let fingerprint = token.fingerprint();
        debug!(token = %token.redacted(), "push token handed over");
        self.lock().token = Some((token, fingerprint));
        self.wake();
        Ok(())
    }

    pub(crate) fn set_opt_in(&self, opted_in: bool) -> Result<(), Error> {
        self.database
            .call_blocking(move |conn| store::save_opt_in(conn, opted_in))?;
        self.lock().opt_in = opted_in;
        self.wake();
        Ok(())
    }

    pub(crate) fn set_locale(&self, locale: Option<String>) -> Result<(), Error> {
        if locale
            .as_deref()
            .is_some_and(|locale| locale.trim().is_empty())
        {
            return Err(Error::InvalidInput("the locale must not be empty".into()));
        }
        self.lock().locale = locale;
        self.wake();
        Ok(())
    }

    pub(crate) async fn reconcile(&self) -> Result<PushStatus, Error> {
        self.start();
        let outcome = self.pass().await;
        self.note_outcome(outcome.as_ref().err());
        if outcome.is_err() {
            // The background task takes it from here, with its backoff.
            self.wake();
        }
        outcome.map(|_| self.status())
    }

    pub(crate) fn status(&self) -> PushStatus {
        let can_authenticate = self.can_authenticate();
        let state = self.lock();
        let wanted = wanted(&state, &self.config);
        let snapshot = self.snapshot(&state, wanted.as_ref(), can_authenticate);
        PushStatus {
            installation_id: self.installation_id.clone(),
            registered: state.registered.is_some(),
            up_to_date: matches!(reconcile::plan(&snapshot), Plan::Idle { .. }),
            user: state.registered.as_ref().and_then(|r| r.user.clone()),
            last_verified: state.registered.as_ref().map(|r| r.verified_at),
            last_error: state.last_error.clone(),
        }
    }

    /// Starts the background task, if it is not running and a tokio runtime is at hand.
    pub(crate) fn start(&self) {
        if self.driving.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(client) = self.client.upgrade() else {
            return;
        };
        if self.driving.swap(true, Ordering::AcqRel) {
            return;
        }

        let online = client.connectivity.subscribe();
        runtime.spawn(drive(self.this.clone(), Arc::clone(&self.wake), online));
    }

    /// Asks for a pass.
    fn wake(&self) {
        self.start();
        self.wake.notify_one();
    }

    /// One pass: steps until the plan is idle. Returns when to look again, if a
    /// re-verification is scheduled.
    #[instrument(skip_all, fields(installation = %short_id(&self.installation_id)))]
    async fn pass(&self) -> Result<Option<Duration>, Error> {
        let _flight = self.flight.lock().await;
        let client = self.client()?;

        for _ in 0..MAX_STEPS {
            let can_authenticate = self.can_authenticate();
            let (plan, register) = {
                let state = self.lock();
                let wanted = wanted(&state, &self.config);
                let plan =
                    reconcile::plan(&self.snapshot(&state, wanted.as_ref(), can_authenticate));
                let register = match (wanted, &state.token) {
                    (Some(wanted), Some((token, _))) => Some((wanted, token.clone())),
                    _ => None,
                };
                (plan, register)
            };

            match (plan, register) {
                (Plan::Idle { recheck_in }, _) => return Ok(recheck_in),
                (Plan::Register, Some((wanted, token))) => {
                    self.register(&client, wanted, token).await?;
                }
                (Plan::Register, None) => return Ok(None),
                (Plan::Verify, _) => self.verify(&client).await?,
                (Plan::Unregister, _) => self.send_unregistration(&client).await?,
            }
        }
        warn!("push reconciliation did not settle; waiting for a change");
        Ok(None)
    }

    async fn register(
        &self,
        client: &Client,
        wanted: Wanted,
        token: PushToken,
    ) -> Result<(), Error> {
        let epoch = self.lock().session_epoch;
        debug!(token = %token.redacted(), opt_in = wanted.opt_in, "registering the device");
        let body = json!({
            "platform": wanted.platform,
            "token": token.wire(),
            "app_version": wanted.app_version,
            "locale": wanted.locale,
            "opt_in": wanted.opt_in,
        });

        let response = client.put(&self.path()).json(&body).send().await?;

        let user = user_of(response.json::<Value>().ok());
        let registered = Registered::from_wanted(&wanted, user.clone(), SystemTime::now());
        if !self.record(epoch, Some(registered))? {
            debug!("a sign-in happened meanwhile; registering again for the new session");
            return Ok(());
        }
        info!(
            user = user.as_deref().unwrap_or("-"),
            opt_in = wanted.opt_in,
            "device registered"
        );
        Ok(())
    }

    async fn verify(&self, client: &Client) -> Result<(), Error> {
        let epoch = self.lock().session_epoch;
        debug!("verifying the registration");

        let confirmed = match client.get(&self.path()).send().await {
            Ok(response) => {
                let user = user_of(response.json::<Value>().ok());
                let state = self.lock();
                state.registered.as_ref().map(|registered| Registered {
                    user: user.or_else(|| registered.user.clone()),
                    verified_at: SystemTime::now(),
                    ..registered.clone()
                })
            }
            Err(error) if is_gone(&error) => {
                info!("the server no longer has the registration; registering again");
                None
            }
            Err(error) => return Err(error),
        };
        self.record(epoch, confirmed).map(|_| ())
    }

    /// Sends the unregistration a sign-out could not make, without credentials.
    async fn send_unregistration(&self, client: &Client) -> Result<(), Error> {
        debug!("sending the queued unregistration");
        match client
            .delete(&self.path())
            .without_credentials()
            .send()
            .await
        {
            Ok(_) => info!("device unregistered after sign-out"),
            Err(error) if is_gone(&error) => debug!("the server had no registration left"),
            Err(error) if error.retry_class() == RetryClass::Never => {
                warn!(%error, "the server refused the unregistration; dropping it");
            }
            Err(error) => return Err(error),
        }

        self.database
            .call(|conn| store::save_unregister_pending(conn, false))
            .await?;
        self.lock().unregister_pending = false;
        Ok(())
    }

    /// Records the registration the server holds (or that it holds none), in SQLite first;
    /// unless a sign-in happened since `epoch`, which made the result stale. Says whether it
    /// recorded.
    ///
    /// The write is made under the state lock, so that a sign-in cannot slip in between the
    /// check and the write; it is one short row.
    fn record(&self, epoch: u64, registered: Option<Registered>) -> Result<bool, Error> {
        let mut state = self.lock();
        if state.session_epoch != epoch {
            return Ok(false);
        }
        self.database
            .call_blocking(|conn| store::save_registration(conn, registered.as_ref()))?;

        if registered.is_some() {
            state.unregister_pending = false;
        }
        state.registered = registered;
        Ok(true)
    }

    /// Unregisters with the session's tokens, which still work, or queues the unregistration.
    async fn unregister_at_sign_out(&self) {
        // From here on no pass registers, even one that is waiting for the lock.
        self.lock().session_open = false;
        let _flight = self.flight.lock().await;
        let needed = {
            let state = self.lock();
            state.registered.is_some() || state.token.is_some() || state.unregister_pending
        };
        if !needed {
            return;
        }

        let attempt = async {
            let client = self.client()?;
            let request = client
                .delete(&self.path())
                .retry_policy(RetryPolicy::never())
                .timeout(SIGN_OUT_WAIT);
            tokio::time::timeout(SIGN_OUT_WAIT, request.send())
                .await
                .unwrap_or(Err(Error::Timeout))
        };
        let pending = match attempt.await {
            Ok(_) => {
                info!("device unregistered at sign-out");
                false
            }
            Err(error) if is_gone(&error) => false,
            Err(error) => {
                info!(%error, "could not unregister at sign-out; queued");
                true
            }
        };

        let saved = self
            .database
            .call(move |conn| store::save_signed_out(conn, pending))
            .await;
        if let Err(error) = saved {
            warn!(%error, "push state could not be saved at sign-out");
        }
        let mut state = self.lock();
        state.registered = None;
        state.unregister_pending = pending;
        drop(state);
        self.wake();
    }

    fn forget_for_new_session(&self) {
        {
            let mut state = self.lock();
            state.session_open = true;
            state.session_epoch += 1;
            state.registered = None;
            let saved = self
                .database
                .call_blocking(|conn| store::save_registration(conn, None));
            if let Err(error) = saved {
                warn!(%error, "push state could not be saved at sign-in");
            }
        }
        self.wake();
    }

    fn snapshot<'a>(
        &self,
        state: &'a State,
        wanted: Option<&'a Wanted>,
        can_authenticate: bool,
    ) -> Snapshot<'a> {
        Snapshot {
            wanted,
            can_authenticate: can_authenticate && state.session_open,
            registered: state.registered.as_ref(),
            unregister_pending: state.unregister_pending,
            now: SystemTime::now(),
            reverify_interval: self.config.reverify_interval,
        }
    }

    /// Whether requests can carry credentials: an OAuth session is signed in, or the client has
    /// fixed credentials (or none, for a server that needs none).
    fn can_authenticate(&self) -> bool {
        match self.client.upgrade().as_deref().map(|shared| &shared.auth) {
            Some(Some(Auth::OAuth(engine))) => engine.is_signed_in(),
            Some(_) => true,
            None => false,
        }
    }

    fn note_outcome(&self, error: Option<&Error>) {
        self.lock().last_error = error.map(ToString::to_string);
    }

    /// How long to wait after the `failures`-th failed pass in a row.
    fn backoff(&self, failures: u32, class: RetryClass) -> Duration {
        let policy = RetryPolicy::default()
            .max_attempts(u32::MAX)
            .initial_delay(self.config.retry_initial)
            .max_delay(self.config.retry_max)
            .max_elapsed(Duration::MAX);
        let fallback = match class {
            RetryClass::After(wait) => wait,
            _ => self.config.retry_max,
        };
        policy
            .delay_after(failures, class, Duration::ZERO, fastrand::f64())
            .unwrap_or(fallback)
    }

    fn client(&self) -> Result<Client, Error> {
        self.client
            .upgrade()
            .map(|shared| Client { shared })
            .ok_or_else(|| Error::Internal("the client is gone".into()))
    }

    fn path(&self) -> String {
        let base = self.config.devices_path.trim_end_matches('/');
        format!("{base}/{}", self.installation_id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionHook for PushShared {
    fn signed_in(&self) {
        debug!("signed in; registering for the new session");
        self.forget_for_new_session();
    }

    fn before_sign_out(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.unregister_at_sign_out())
    }
}

impl Drop for PushShared {
    fn drop(&mut self) {
        // The task holds the component weakly: woken, it finds it gone and ends.
        self.wake.notify_one();
    }
}

/// The background task: a pass, then a wait for a reason to make the next one.
async fn drive(push: Weak<PushShared>, wake: Arc<Notify>, mut online: watch::Receiver<bool>) {
    let mut failures = 0;
    loop {
        let recheck = {
            let Some(push) = push.upgrade() else {
                return;
            };
            let outcome = push.pass().await;
            push.note_outcome(outcome.as_ref().err());
            match outcome {
                Ok(recheck) => {
                    failures = 0;
                    recheck
                }
                Err(error) if error.is_offline() => {
                    debug!("offline; waiting for the network");
                    None
                }
                Err(error) if error.retry_class() == RetryClass::Never => {
                    failures = 0;
                    warn!(%error, "push registration failed; waiting for a change");
                    None
                }
                Err(error) => {
                    failures += 1;
                    let delay = push.backoff(failures, error.retry_class());
                    let delay_ms = delay.as_millis() as u64;
                    warn!(%error, delay_ms, "push registration failed; retrying");
                    Some(delay)
                }
            }
        };

        let timer = async {
            match recheck {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = timer => {}
            changed = online.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// What the registration should say, once the app has handed over a token.
fn wanted(state: &State, config: &PushConfig) -> Option<Wanted> {
    let (token, fingerprint) = state.token.as_ref()?;
    Some(Wanted {
        platform: token.platform(),
        token_sha256: fingerprint.clone(),
        app_version: config.app_version.clone(),
        locale: state.locale.clone(),
        opt_in: state.opt_in,
    })
}

/// The `user` member of the server's answer, if it has one.
fn user_of(body: Option<Value>) -> Option<String> {
    body?.get("user")?.as_str().map(str::to_owned)
}

/// Whether the server says the registration does not exist.
fn is_gone(error: &Error) -> bool {
    matches!(error.status(), Some(404 | 410))
}

/// A random (version 4) UUID from the system's secure source.
fn new_installation_id() -> Result<String, Error> {
    use ring::rand::SecureRandom;

    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("the system random source failed".into()))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;

    let hex = crate::internal::digest::hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_installation_ids_are_version_4_uuids() {
        let id = new_installation_id().unwrap();

        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, new_installation_id().unwrap());
        assert_eq!(short_id(&id), &id[..8]);
    }

    #[test]
    fn test_the_user_is_read_leniently() {
        assert_eq!(
            user_of(Some(json!({ "user": "alice" }))),
            Some("alice".into())
        );
        assert_eq!(user_of(Some(json!({ "user": 7 }))), None);
        assert_eq!(user_of(None), None);
    }
}
