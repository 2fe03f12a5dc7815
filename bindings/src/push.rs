//! Push registration and incoming push messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::RoundtripError;
use crate::runtime;

/// The address of this device at its push service, as the platform hands it to the app.
///
/// Deliberately not `Debug`: a token is personal data.
#[derive(uniffi::Enum, Clone, PartialEq, Eq)]
pub enum PushToken {
    /// The APNs device token, as the bytes
    /// `application(_:didRegisterForRemoteNotificationsWithDeviceToken:)` received.
    Apns {
        /// The token's bytes; sent to the server as hex.
        device_token: Vec<u8>,
    },
    /// The Firebase Cloud Messaging registration token (`onNewToken`, `getToken()`).
    Fcm {
        /// The token as Firebase gives it.
        token: String,
    },
    /// The endpoint a UnifiedPush distributor gave the app (`onNewEndpoint`).
    UnifiedPush {
        /// The endpoint URL.
        endpoint: String,
    },
}

/// How the device is registered. Every field is optional.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct PushConfig {
    /// The app's version, sent with the registration; a new version registers again.
    #[uniffi(default = None)]
    pub app_version: Option<String>,
    /// The user's language as a BCP 47 tag (`fr-CH`).
    #[uniffi(default = None)]
    pub locale: Option<String>,
    /// How long a confirmed registration is trusted before the server is asked again.
    /// Default: 7 days.
    #[uniffi(default = None)]
    pub reverify_interval_ms: Option<u64>,
    /// The backoff between attempts that failed transiently. Default: 1 s, doubling up to
    /// 5 min.
    #[uniffi(default = None)]
    pub backoff: Option<PushBackoff>,
    /// Where registrations live, relative to the base URL. Default: `/devices`.
    #[uniffi(default = None)]
    pub devices_path: Option<String>,
}

/// The backoff between push registration attempts that failed transiently (after the
/// request's own retries).
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct PushBackoff {
    /// Upper bound of the first wait, doubling (with full jitter) after that.
    pub initial_delay_ms: u64,
    /// Longest wait.
    pub max_delay_ms: u64,
}

/// Where the device's registration stands.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct PushStatus {
    /// The id this installation registers under; made once and kept.
    pub installation_id: String,
    /// Whether the server holds a registration for this installation, as far as the SDK knows.
    pub registered: bool,
    /// Whether nothing is left to do.
    pub up_to_date: bool,
    /// The user the server registered the device for.
    pub user: Option<String>,
    /// When the server last confirmed the registration, in milliseconds since the Unix epoch.
    pub last_verified_ms: Option<u64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// A push data message addressed to Roundtrip.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct RoundtripMessage {
    /// What the message asks for: `sync`, or a kind this SDK version does not know.
    pub kind: String,
    /// The other members of the message, as a JSON object.
    pub data_json: String,
}

/// The push registration of this device. Get it from `Client.push()`.
#[derive(uniffi::Object)]
pub struct Push {
    inner: roundtrip::push::Push,
}

impl Push {
    pub(crate) fn new(inner: roundtrip::push::Push) -> Arc<Self> {
        Arc::new(Push { inner })
    }
}

#[uniffi::export]
impl Push {
    /// The id this installation registers under.
    pub fn installation_id(&self) -> String {
        self.inner.installation_id().to_owned()
    }

    /// Hands over the platform's token; the registration happens in the background. Call it
    /// from `onNewToken` / `didRegisterForRemoteNotificationsWithDeviceToken` and at every
    /// start: a token that did not change costs no request. Throws `InvalidInput` for a token
    /// no server could use.
    pub fn set_token(&self, token: PushToken) -> Result<(), RoundtripError> {
        let _runtime = runtime::enter();
        Ok(self.inner.set_token(token.into())?)
    }

    /// Reports whether the user allows notifications. Remembered across restarts.
    pub fn set_opt_in(&self, opted_in: bool) -> Result<(), RoundtripError> {
        let _runtime = runtime::enter();
        Ok(self.inner.set_opt_in(opted_in)?)
    }

    /// Changes the locale sent with the registration.
    pub fn set_locale(&self, locale: Option<String>) -> Result<(), RoundtripError> {
        let _runtime = runtime::enter();
        Ok(self.inner.set_locale(locale)?)
    }

    /// Brings the server's registration up to date now and reports where it stands; throws
    /// the error of this attempt if it failed (the SDK keeps trying in the background).
    pub async fn reconcile(&self) -> Result<PushStatus, RoundtripError> {
        let push = self.inner.clone();
        let work = async move { Ok(push.reconcile().await?.into()) };
        runtime::run(work, None).await
    }

    /// Where the registration stands, without any request.
    pub fn status(&self) -> PushStatus {
        self.inner.status().into()
    }
}

/// Reads a Firebase data message (`RemoteMessage.data`): `null` unless it is addressed to
/// Roundtrip.
#[uniffi::export]
pub fn parse_roundtrip_message(data: HashMap<String, String>) -> Option<RoundtripMessage> {
    roundtrip::push::RoundtripMessage::from_data(&data).map(Into::into)
}

/// Reads a push payload given as JSON text (an APNs `userInfo` serialised, a UnifiedPush
/// body): `null` unless it is addressed to Roundtrip.
#[uniffi::export]
pub fn parse_roundtrip_message_json(json: String) -> Option<RoundtripMessage> {
    roundtrip::push::RoundtripMessage::parse_json(&json).map(Into::into)
}

impl From<PushToken> for roundtrip::push::PushToken {
    fn from(token: PushToken) -> Self {
        match token {
            PushToken::Apns { device_token } => roundtrip::push::PushToken::Apns(device_token),
            PushToken::Fcm { token } => roundtrip::push::PushToken::Fcm(token),
            PushToken::UnifiedPush { endpoint } => {
                roundtrip::push::PushToken::UnifiedPush(endpoint)
            }
        }
    }
}

impl From<PushConfig> for roundtrip::push::PushConfig {
    fn from(config: PushConfig) -> Self {
        let mut converted = roundtrip::push::PushConfig::new();
        if let Some(version) = config.app_version {
            converted = converted.app_version(version);
        }
        if let Some(locale) = config.locale {
            converted = converted.locale(locale);
        }
        if let Some(ms) = config.reverify_interval_ms {
            converted = converted.reverify_interval(Duration::from_millis(ms));
        }
        if let Some(backoff) = config.backoff {
            converted = converted.retry_backoff(
                Duration::from_millis(backoff.initial_delay_ms),
                Duration::from_millis(backoff.max_delay_ms),
            );
        }
        if let Some(path) = config.devices_path {
            converted = converted.devices_path(path);
        }
        converted
    }
}

impl From<roundtrip::push::PushStatus> for PushStatus {
    fn from(status: roundtrip::push::PushStatus) -> Self {
        PushStatus {
            last_verified_ms: status.last_verified.map(|time| {
                let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            }),
            installation_id: status.installation_id,
            registered: status.registered,
            up_to_date: status.up_to_date,
            user: status.user,
            last_error: status.last_error,
        }
    }
}

impl From<roundtrip::push::RoundtripMessage> for RoundtripMessage {
    fn from(message: roundtrip::push::RoundtripMessage) -> Self {
        RoundtripMessage {
            kind: message.kind().as_str().to_owned(),
            data_json: serde_json::Value::Object(message.data().clone()).to_string(),
        }
    }
}
