//! Where tokens are kept: the platform's secure store, or one the app supplies.
//!
//! Tokens never go to SQLite or plain files. [`KeychainStore`] keeps them through `keyring-core`
//! in the platform's credential store: kernel keyutils on Linux, the data-protection keychain on
//! iOS, the login keychain on macOS. On Android, Rust cannot reach the Keystore without the app's
//! JNI context, so the app supplies a [`TokenStore`] of its own (the bindings let Kotlin implement
//! it over the Android Keystore).

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::auth::Secret;

/// The tokens of a session, as kept in a [`TokenStore`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    /// The access token sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// The refresh token, if the server issued one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, in seconds since the Unix epoch; `None` if unknown.
    pub expires_at: Option<u64>,
    /// The scope the server granted.
    pub scope: Option<String>,
    /// A random identifier of this sign-in, kept across refreshes; it names the session's
    /// partition of the HTTP cache. Not a credential.
    #[serde(default)]
    pub session_id: Option<String>,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// Keeps a session's tokens across restarts. Implementations must be safe to call from any
/// thread; calls are short and may block.
pub trait TokenStore: Send + Sync {
    /// Returns the stored tokens, if any.
    fn load(&self) -> Result<Option<StoredTokens>, Error>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: &StoredTokens) -> Result<(), Error>;
    /// Removes the stored tokens. Succeeds when there were none.
    fn clear(&self) -> Result<(), Error>;
}

/// Keeps tokens in memory only: a session ends with the process. For tests, and for apps that
/// must never persist a session.
#[derive(Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<StoredTokens>>,
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<StoredTokens>, Error> {
        Ok(self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), Error> {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), Error> {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

/// Keeps tokens in the platform's secure credential store, under a service and account name.
///
/// One entry holds the whole token set as JSON, so the access and refresh tokens are always
/// replaced together.
pub struct KeychainStore {
    entry: keyring_core::Entry,
}

impl KeychainStore {
    /// Opens the entry `service` / `account` in the platform's store.
    ///
    /// Fails with [`Error::Storage`] on platforms whose store Rust cannot reach (Android), or
    /// when the store is unavailable.
    pub fn new(service: &str, account: &str) -> Result<KeychainStore, Error> {
        let store = platform_store()?;
        let entry = keyring_core::Entry::new_in_store(&store, service, account)
            .map_err(|error| storage_error("open the keychain entry", error))?;
        Ok(KeychainStore { entry })
    }
}

impl TokenStore for KeychainStore {
    fn load(&self) -> Result<Option<StoredTokens>, Error> {
        match self.entry.get_secret() {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| Error::Storage(format!("stored tokens are unreadable: {error}"))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(error) => Err(storage_error("read the keychain", error)),
        }
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), Error> {
        let bytes = serde_json::to_vec(tokens)
            .map_err(|error| Error::Internal(format!("tokens did not serialize: {error}")))?;
        self.entry
            .set_secret(&bytes)
            .map_err(|error| storage_error("write the keychain", error))
    }

    fn clear(&self) -> Result<(), Error> {
        match self.entry.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(error) => Err(storage_error("clear the keychain", error)),
        }
    }
}

fn storage_error(action: &str, error: keyring_core::Error) -> Error {
    // keyring errors describe the store, never the secret.
    Error::Storage(format!("could not {action}: {error}"))
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, Error> {
    linux_keyutils_keyring_store::Store::new()
        .map(|store| store as Arc<keyring_core::CredentialStore>)
        .map_err(|error| storage_error("open the kernel keyring", error))
}

#[cfg(target_os = "ios")]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, Error> {
    apple_native_keyring_store::protected::Store::new()
        .map(|store| store as Arc<keyring_core::CredentialStore>)
        .map_err(|error| storage_error("open the keychain", error))
}

#[cfg(target_os = "macos")]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, Error> {
    apple_native_keyring_store::keychain::Store::new()
        .map(|store| store as Arc<keyring_core::CredentialStore>)
        .map_err(|error| storage_error("open the keychain", error))
}

#[cfg(not(any(target_os = "linux", target_os = "ios", target_os = "macos")))]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, Error> {
    Err(Error::Storage(
        "this platform's secure store cannot be reached from Rust; supply a TokenStore".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: &str) -> StoredTokens {
        StoredTokens {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new("refresh-value")),
            expires_at: Some(1_900_000_000),
            scope: Some("todos".into()),
            session_id: Some("s1".into()),
        }
    }

    #[test]
    fn test_debug_hides_both_tokens() {
        let shown = format!("{:?}", tokens("access-value"));

        assert!(
            !shown.contains("access-value") && !shown.contains("refresh-value"),
            "{shown}"
        );
        assert!(shown.contains("1900000000"));
    }

    #[test]
    fn test_memory_store_round_trip() {
        let store = MemoryStore::default();

        store.save(&tokens("a")).unwrap();
        assert_eq!(store.load().unwrap(), Some(tokens("a")));
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn test_keychain_store_round_trip_in_the_kernel_keyring() {
        let account = format!("unit-{}", fastrand::u64(..));
        let store = KeychainStore::new("dev.roundtrip.tests", &account).unwrap();

        assert_eq!(store.load().unwrap(), None);
        store.save(&tokens("first")).unwrap();
        store.save(&tokens("second")).unwrap();
        let reopened = KeychainStore::new("dev.roundtrip.tests", &account).unwrap();
        assert_eq!(reopened.load().unwrap(), Some(tokens("second")));

        reopened.clear().unwrap();
        reopened.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }
}
