//! Push notifications: a device registration that keeps itself correct.
//!
//! The app hands over the token its platform gave it ([`PushToken`]) and whether the user allows
//! notifications; the SDK keeps the backend's registration of this installation in line with
//! them (reference contract: `PUT /devices/{installation_id}`, see `docs/server-contract.md`).
//!
//! ```no_run
//! # async fn run() -> Result<(), roundtrip::Error> {
//! use roundtrip::push::{PushConfig, PushToken};
//!
//! let client = roundtrip::Client::builder("https://api.example.com")
//!     .storage_dir("/data/app/roundtrip")
//!     .push(PushConfig::new().app_version("2.1.0").locale("fr-CH"))
//!     .build()?;
//! let push = client.push().unwrap();
//!
//! // From FirebaseMessagingService.onNewToken, or at every start with getToken():
//! push.set_token(PushToken::Fcm("dQw4w9WgXcQ:APA91b...".into()))?;
//! push.set_opt_in(true)?; // the notification permission, whenever it may have changed
//! # Ok(()) }
//! ```
//!
//! # How it stays correct
//!
//! - **One installation id**, a random UUID made on first use and kept in `push.sqlite3` in the
//!   storage directory. Without a storage directory it lives as long as the client.
//! - **Reconciliation**: the SDK compares what the registration should say (platform, a SHA-256
//!   of the token, app version, locale, opt-in) with what the server last confirmed, and
//!   registers again when anything differs. When nothing does, it makes no call, across
//!   restarts too. After [`PushConfig::reverify_interval`] it asks the server (`GET`) whether it
//!   still has the registration; a 404 or 410 (the server dropped it after a delivery failure)
//!   leads to a fresh registration.
//! - **Users**: the registration belongs to the signed-in user, whom the server knows from the
//!   access token. Every sign-in forgets the local record, so the next pass registers for
//!   whoever signed in. Sign-out first unregisters (`DELETE`) with the session's tokens, before
//!   they are revoked; if that cannot be done then (offline, a server error), the
//!   unregistration is queued and later sent without credentials, which the contract accepts
//!   for an installation id alone. Then the state is forgotten.
//! - **Failures**: requests go through the client's pipeline, so credentials, the refresh on a
//!   401 and the request retries all apply. A pass that still fails is tried again with
//!   backoff (transport errors, 5xx), when the network returns (offline), or when something
//!   changes (any other error). Work left pending at exit resumes at the next start.
//!
//! The work runs on a task of its own on the tokio runtime the client was built in (or the
//! first one a push call is made from). [`Push::reconcile`] runs a pass at once and reports its
//! outcome.
//!
//! # Privacy
//!
//! The token is personal data. It stays in memory; the database holds its SHA-256 only, and logs
//! and `Debug` output show its first six characters at most ([`PushToken::redacted`]). The
//! app hands the token over at every start (APNs calls its delegate at every launch; on Android
//! call `FirebaseMessaging.getToken()`), which costs no request when it did not change.
//!
//! # Incoming messages
//!
//! [`RoundtripMessage::parse`] tells the app's push handler whether a data message is addressed
//! to Roundtrip, so that later components (sync) can be woken by it.

mod driver;
mod message;
mod reconcile;
mod store;
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) use driver::PushShared;
pub use message::{MESSAGE_KEY, MessageKind, RoundtripMessage, is_roundtrip_message};
pub use token::PushToken;

use crate::Error;

const DEFAULT_REVERIFY_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// How the push component registers the device. Give it to
/// [`ClientBuilder::push`](crate::ClientBuilder::push).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushConfig {
    pub(crate) app_version: Option<String>,
    pub(crate) locale: Option<String>,
    pub(crate) reverify_interval: Duration,
    pub(crate) retry_initial: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) devices_path: String,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            app_version: None,
            locale: None,
            reverify_interval: DEFAULT_REVERIFY_INTERVAL,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            devices_path: "/devices".to_owned(),
        }
    }
}

impl PushConfig {
    /// The defaults: no app version or locale, re-verification weekly, retries from 1 s up to
    /// 5 min apart, registrations under `/devices`.
    pub fn new() -> PushConfig {
        PushConfig::default()
    }

    /// The app's version, sent with the registration (`CFBundleShortVersionString`,
    /// `versionName`). A new version registers again.
    pub fn app_version(mut self, version: impl Into<String>) -> PushConfig {
        self.app_version = Some(version.into());
        self
    }

    /// The user's language as a BCP 47 tag (`fr-CH`), sent with the registration. Change it
    /// later with [`Push::set_locale`].
    pub fn locale(mut self, locale: impl Into<String>) -> PushConfig {
        self.locale = Some(locale.into());
        self
    }

    /// How long a registration the server confirmed is trusted before the SDK asks the server
    /// again whether it still has it. Default: 7 days.
    pub fn reverify_interval(mut self, interval: Duration) -> PushConfig {
        self.reverify_interval = interval;
        self
    }

    /// The backoff between passes that failed transiently: the first wait is at most
    /// `initial`, doubling (with full jitter) up to `max`. The request pipeline's own retries
    /// come first. Default: 1 s to 5 min.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> PushConfig {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }

    /// Where registrations live, relative to the base URL: `{path}/{installation_id}`.
    /// Default: `/devices`.
    pub fn devices_path(mut self, path: impl Into<String>) -> PushConfig {
        self.devices_path = path.into();
        self
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        for (name, value) in [("app version", &self.app_version), ("locale", &self.locale)] {
            if value
                .as_deref()
                .is_some_and(|value| value.trim().is_empty())
            {
                return Err(Error::InvalidInput(format!("the {name} must not be empty")));
            }
        }
        if !self.devices_path.starts_with('/') {
            return Err(Error::InvalidInput(
                "the devices path must start with '/'".into(),
            ));
        }
        Ok(())
    }
}

/// Where the device's registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStatus {
    /// The id this installation registers under; made once and kept.
    pub installation_id: String,
    /// Whether the server holds a registration for this installation, as far as the SDK knows.
    pub registered: bool,
    /// Whether nothing is left to do: the registration says what the app last reported (or
    /// there is nothing to register yet) and no unregistration waits.
    pub up_to_date: bool,
    /// The user the server registered the device for, as it said.
    pub user: Option<String>,
    /// When the server last confirmed the registration.
    pub last_verified: Option<SystemTime>,
    /// Why the last pass failed, if it did.
    pub last_error: Option<String>,
}

/// The push side of a client: hand it the platform's token and the user's opt-in.
///
/// Cheap to clone. Get it from [`Client::push`](crate::Client::push).
#[derive(Clone)]
pub struct Push {
    pub(crate) inner: Arc<PushShared>,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Push {
    /// The id this installation registers under: a random UUID made once and kept in the
    /// storage directory (in memory without one).
    pub fn installation_id(&self) -> &str {
        self.inner.installation_id()
    }

    /// Hands over the token the platform gave the app. Call it whenever the platform reports
    /// one (`onNewToken`, `didRegisterForRemoteNotificationsWithDeviceToken`, and at every
    /// start); a token that did not change costs no request.
    ///
    /// Returns once the token is recorded; the registration happens in the background. Fails
    /// with [`Error::InvalidInput`] for a token no server could use (empty, over 4096
    /// characters, a UnifiedPush endpoint that is not an http(s) URL).
    pub fn set_token(&self, token: PushToken) -> Result<(), Error> {
        self.inner.set_token(token)
    }

    /// Reports whether the user allows notifications. Opting out keeps the registration (the
    /// server marks it and sends no notifications; silent data messages can still wake the
    /// app). Remembered across restarts; assumed `true` until the app says otherwise, the
    /// platform still enforcing the user's choice.
    pub fn set_opt_in(&self, opted_in: bool) -> Result<(), Error> {
        self.inner.set_opt_in(opted_in)
    }

    /// Changes the locale sent with the registration, for a language change while the app
    /// runs. `None` sends none.
    pub fn set_locale(&self, locale: Option<String>) -> Result<(), Error> {
        self.inner.set_locale(locale)
    }

    /// Brings the server's registration up to date now and reports where it stands.
    ///
    /// Returns the error of this pass if it failed (after the request pipeline's retries); the
    /// background work keeps trying either way.
    pub async fn reconcile(&self) -> Result<PushStatus, Error> {
        self.inner.reconcile().await
    }

    /// Where the registration stands, without any request.
    pub fn status(&self) -> PushStatus {
        self.inner.status()
    }
}
