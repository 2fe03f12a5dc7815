//! An OAuth 2.0 authorization server and one protected resource.
//!
//! One public client (`roundtrip-demo`) and two users are registered for good.
//! A *grant* is one authorization a user gave the client; everything issued
//! under it (access tokens, refresh tokens, and the code or device code it
//! came from) belongs to that one family, and revoking the grant kills them all.
//!
//! The flows:
//!
//! - authorization code with PKCE (S256 only): [`authorize`] hands out a
//!   code, [`token`] trades it for tokens;
//! - resource owner password, for tests and first-party demos;
//! - refresh, with rotation: every refresh token works once, and presenting
//!   one again revokes the whole grant (RFC 6819 5.2.2.3, OAuth 2.1 4.3.1);
//! - device authorization (RFC 8628), approved through `/device` or a test
//!   control.
//!
//! Tokens are 32 random bytes in base64url. Only their SHA-256 is stored, and
//! the values appear in nothing but the response that issues them: not in the
//! database, not in logs, not in a `Debug` string ([`Secret`]).

pub(crate) mod authorize;
pub(crate) mod control;
pub(crate) mod device;
pub(crate) mod discovery;
mod error;
mod html;
mod params;
pub(crate) mod revoke;
pub(crate) mod store;
pub(crate) mod token;
pub(crate) mod userinfo;

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The only registered client: public, so it has no secret.
pub(crate) const CLIENT_ID: &str = "roundtrip-demo";

/// The scope granted when a request names none.
pub(crate) const DEFAULT_SCOPE: &str = "todos";

/// The registered users and their passwords.
const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

/// How long an authorization code can be exchanged, in milliseconds.
pub(crate) const CODE_TTL_MS: i64 = 60 * 1000;

/// How long a device code can be polled, in seconds.
pub(crate) const DEVICE_CODE_TTL_SECS: u64 = 600;

/// The realm named in `WWW-Authenticate` challenges.
pub(crate) const REALM: &str = "roundtrip";

/// Lifetimes and pacing that tests may change through `/_control/oauth/settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// How long a new access token lives.
    pub access_token_ttl_secs: u64,

    /// How long a new refresh token lives.
    pub refresh_token_ttl_secs: u64,

    /// The polling interval given to new device codes.
    pub device_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            device_interval_secs: 5,
        }
    }
}

/// The in-memory part of the OAuth state; grants and tokens live in SQLite.
#[derive(Debug, Default)]
pub(crate) struct OAuth {
    settings: Mutex<Settings>,
}

impl OAuth {
    /// The current settings.
    pub(crate) fn settings(&self) -> Settings {
        *self.lock()
    }

    /// Changes the settings with `change`.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.lock());
    }

    /// Puts the settings back to their defaults.
    pub(crate) fn reset(&self) {
        *self.lock() = Settings::default();
    }

    fn lock(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A freshly generated token, code or other secret.
///
/// Its `Debug` form is redacted, so that logging a value that holds one cannot
/// leak it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// 32 bytes from the operating system's random source, in base64url.
    pub(crate) fn generate() -> Self {
        let mut bytes = [0; 32];
        // Without a random source no token can be issued safely; there is no fallback.
        getrandom::fill(&mut bytes).expect("the operating system's random source works");

        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value, to be sent to the client exactly once.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps instead of the value.
    pub(crate) fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The base64url SHA-256 of a secret as presented by a client: the key it is stored under.
pub(crate) fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a PKCE verifier matches an S256 challenge (RFC 7636 4.6).
pub(crate) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    digest(verifier) == challenge
}

/// Whether a code verifier or S256 challenge has the form RFC 7636 4.1 allows:
/// 43 to 128 unreserved characters.
pub(crate) fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// Whether a scope parameter is well formed: space-separated tokens of the
/// characters RFC 6749 3.3 allows.
pub(crate) fn is_valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.split(' ').all(|token| {
            !token.is_empty()
                && token.bytes().all(|byte| {
                    byte == 0x21 || (0x23..=0x5b).contains(&byte) || (0x5d..=0x7e).contains(&byte)
                })
        })
}

/// Whether every scope token of `requested` is also in `granted`.
pub(crate) fn is_subscope(requested: &str, granted: &str) -> bool {
    requested
        .split(' ')
        .all(|token| granted.split(' ').any(|have| have == token))
}

/// Whether `redirect_uri` is registered for the client: the `roundtrip-demo`
/// scheme, or plain HTTP on a loopback host (any port, any path).
pub(crate) fn is_registered_redirect(redirect_uri: &str) -> bool {
    if redirect_uri.contains('#') {
        // RFC 6749 3.1.2: a redirection URI must not carry a fragment.
        return false;
    }
    if redirect_uri.starts_with("roundtrip-demo:") {
        return true;
    }

    ["http://127.0.0.1", "http://localhost"]
        .iter()
        .filter_map(|prefix| redirect_uri.strip_prefix(prefix))
        // The host must end right there, so that `http://localhost.example` is not loopback.
        .any(|rest| rest.is_empty() || rest.starts_with([':', '/', '?']))
}

/// The user a username and password belong to, if they match.
pub(crate) fn authenticate(username: &str, password: &str) -> Option<&'static str> {
    USERS
        .iter()
        .find(|(name, secret)| *name == username && *secret == password)
        .map(|(name, _)| *name)
}

/// The registered user with this name.
pub(crate) fn known_user(username: &str) -> Option<&'static str> {
    USERS
        .iter()
        .find(|(name, _)| *name == username)
        .map(|(name, _)| *name)
}

/// `http://` plus the host the client addressed, so links work on any bound port.
pub(crate) fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(ToString::to_string))
        .unwrap_or_else(|| "localhost".to_owned());

    format!("http://{host}")
}

/// Milliseconds since the Unix epoch: the clock every expiry is measured with.
pub(crate) fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();

    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Seconds as milliseconds, saturating instead of overflowing.
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let secret = Secret::generate();

        let shown = format!("{secret:?}");

        assert_eq!(shown, "Secret([redacted])");
        assert!(!shown.contains(secret.expose()));
    }

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let a = Secret::generate();
        let b = Secret::generate();

        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert!(is_pkce_value(a.expose()));
        assert_ne!(a.digest(), a.expose());
    }

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("wrong", challenge));
    }

    #[test]
    fn only_registered_redirects_are_accepted() {
        assert!(is_registered_redirect("roundtrip-demo:/callback"));
        assert!(is_registered_redirect("http://127.0.0.1:8123/cb"));
        assert!(is_registered_redirect("http://localhost/cb?x=1"));
        assert!(is_registered_redirect("http://localhost"));

        assert!(!is_registered_redirect("https://evil.example/cb"));
        assert!(!is_registered_redirect("http://localhost.evil.example/cb"));
        assert!(!is_registered_redirect("http://127.0.0.1.evil.example/cb"));
        assert!(!is_registered_redirect("roundtrip-demo:/cb#frag"));
    }

    #[test]
    fn scopes_are_checked_and_compared() {
        assert!(is_valid_scope("todos"));
        assert!(is_valid_scope("todos profile"));
        assert!(!is_valid_scope(""));
        assert!(!is_valid_scope("todos  profile"));
        assert!(!is_valid_scope("to\"dos"));

        assert!(is_subscope("todos", "todos profile"));
        assert!(!is_subscope("admin", "todos profile"));
    }

    #[test]
    fn users_authenticate_with_their_own_password_only() {
        assert_eq!(authenticate("alice", "wonderland"), Some("alice"));
        assert_eq!(authenticate("alice", "builder"), None);
        assert_eq!(authenticate("mallory", "wonderland"), None);
    }
}
