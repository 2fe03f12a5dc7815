//! The parts of an OAuth session the bindings expose so far: the settings, a token store the
//! app implements (Android has no keychain Rust can reach), password sign-in and sign-out.
//! Browser and device sign-in flows and session events are not exported yet.

use std::sync::Arc;

use crate::RoundtripError;

/// How to reach the authorization server: its issuer URL (metadata is discovered from it) and
/// the app's client id.
#[derive(uniffi::Record, Clone, Debug)]
pub struct OAuthSettings {
    /// The app's client identifier.
    pub client_id: String,
    /// The issuer; endpoints come from its RFC 8414 / OpenID metadata.
    pub issuer: String,
    /// The scopes to ask for.
    #[uniffi(default)]
    pub scopes: Vec<String>,
}

/// The tokens of a session, as a token store keeps them.
///
/// Deliberately not `Debug`: it holds credentials.
#[derive(uniffi::Record, Clone)]
pub struct StoredTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
    /// When the access token expires, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// The granted scope.
    pub scope: Option<String>,
}

/// Keeps a session's tokens across restarts; implement it over the Android Keystore or the
/// Keychain. Calls are short and may come from any thread.
#[uniffi::export(with_foreign)]
pub trait TokenStore: Send + Sync {
    /// The stored tokens, if any.
    fn load(&self) -> Result<Option<StoredTokens>, RoundtripError>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: StoredTokens) -> Result<(), RoundtripError>;
    /// Removes the stored tokens.
    fn clear(&self) -> Result<(), RoundtripError>;
}

/// The app's store, seen by the core.
pub(crate) struct ForeignStore(pub(crate) Arc<dyn TokenStore>);

impl roundtrip::auth::TokenStore for ForeignStore {
    fn load(&self) -> Result<Option<roundtrip::auth::StoredTokens>, roundtrip::Error> {
        let tokens = self.0.load().map_err(storage_error)?;
        Ok(tokens.map(Into::into))
    }

    fn save(&self, tokens: &roundtrip::auth::StoredTokens) -> Result<(), roundtrip::Error> {
        self.0.save(tokens.clone().into()).map_err(storage_error)
    }

    fn clear(&self) -> Result<(), roundtrip::Error> {
        self.0.clear().map_err(storage_error)
    }
}

fn storage_error(error: RoundtripError) -> roundtrip::Error {
    roundtrip::Error::Storage(error.to_string())
}

impl From<StoredTokens> for roundtrip::auth::StoredTokens {
    fn from(tokens: StoredTokens) -> Self {
        roundtrip::auth::StoredTokens {
            access_token: roundtrip::auth::Secret::new(tokens.access_token),
            refresh_token: tokens.refresh_token.map(roundtrip::auth::Secret::new),
            expires_at: tokens.expires_at,
            scope: tokens.scope,
        }
    }
}

impl From<roundtrip::auth::StoredTokens> for StoredTokens {
    fn from(tokens: roundtrip::auth::StoredTokens) -> Self {
        StoredTokens {
            access_token: tokens.access_token.expose().to_owned(),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            expires_at: tokens.expires_at,
            scope: tokens.scope,
        }
    }
}
