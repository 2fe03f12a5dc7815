//! Push tokens: what each platform hands the app, how it goes on the wire, and how it is shown.
//!
//! A token addresses one device and is personal data. The SDK keeps it in memory only, stores a
//! SHA-256 of it to notice a change, and shows at most its first few characters in logs and
//! `Debug` output.

use std::fmt;

use url::Url;

use crate::Error;

/// The longest token accepted, in characters on the wire (the reference contract's limit).
const MAX_TOKEN_LEN: usize = 4096;

/// How many characters of a token logs and `Debug` output may show.
const SHOWN_PREFIX: usize = 6;

/// The address of this device at its push service, as the platform hands it to the app.
///
/// `Debug` shows the platform and the first characters only: `Fcm("dQw4w9…", 163 chars)`.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushToken {
    /// The device token from Apple Push Notification service, as the bytes
    /// `application(_:didRegisterForRemoteNotificationsWithDeviceToken:)` received. Sent to
    /// the server as lower-case hex.
    Apns(Vec<u8>),
    /// The registration token from Firebase Cloud Messaging (`FirebaseMessaging.getToken()`,
    /// `onNewToken`).
    Fcm(String),
    /// The endpoint URL a UnifiedPush distributor gave the app (`onNewEndpoint`).
    UnifiedPush(String),
}

impl PushToken {
    /// The platform's name in the reference contract: `apns`, `fcm` or `unifiedpush`.
    pub fn platform(&self) -> &'static str {
        match self {
            PushToken::Apns(_) => "apns",
            PushToken::Fcm(_) => "fcm",
            PushToken::UnifiedPush(_) => "unifiedpush",
        }
    }

    /// The token as sent to the server.
    pub(crate) fn wire(&self) -> String {
        match self {
            PushToken::Apns(bytes) => crate::internal::digest::hex(bytes),
            PushToken::Fcm(token) | PushToken::UnifiedPush(token) => token.clone(),
        }
    }

    /// A SHA-256 of the token on the wire, in hex: what the SDK stores to notice a new token.
    pub(crate) fn fingerprint(&self) -> String {
        crate::internal::digest::sha256_hex(self.wire().as_bytes())
    }

    /// The token in a form fit for logs: the platform, the first characters and the length.
    pub fn redacted(&self) -> String {
        let wire = self.wire();
        let prefix: String = wire.chars().take(SHOWN_PREFIX).collect();
        format!(
            "{}:{prefix}…({} chars)",
            self.platform(),
            wire.chars().count()
        )
    }

    /// Refuses a token that no server could use.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let wire = self.wire();
        if wire.is_empty() || wire.len() > MAX_TOKEN_LEN || wire.chars().any(char::is_whitespace) {
            return Err(Error::InvalidInput(format!(
                "a {} token must be 1 to {MAX_TOKEN_LEN} characters without spaces",
                self.platform()
            )));
        }
        if let PushToken::UnifiedPush(endpoint) = self {
            let is_http = Url::parse(endpoint)
                .is_ok_and(|url| matches!(url.scheme(), "https" | "http") && url.has_host());
            if !is_http {
                return Err(Error::InvalidInput(
                    "a UnifiedPush endpoint must be an http(s) URL".into(),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PushToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            PushToken::Apns(_) => "Apns",
            PushToken::Fcm(_) => "Fcm",
            PushToken::UnifiedPush(_) => "UnifiedPush",
        };
        let wire = self.wire();
        let prefix: String = wire.chars().take(SHOWN_PREFIX).collect();
        write!(
            f,
            "{variant}(\"{prefix}…\", {} chars)",
            wire.chars().count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FCM: &str = "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";

    #[test]
    fn test_apns_tokens_go_out_as_lower_case_hex() {
        let token = PushToken::Apns(vec![0x0a, 0xbc, 0xff, 0x00]);

        assert_eq!(token.wire(), "0abcff00");
        assert_eq!(token.platform(), "apns");
    }

    #[test]
    fn test_debug_and_logs_show_a_short_prefix_only() {
        let token = PushToken::Fcm(FCM.into());

        let debug = format!("{token:?}");
        let redacted = token.redacted();

        assert_eq!(debug, "Fcm(\"dQw4w9…\", 48 chars)");
        assert_eq!(redacted, "fcm:dQw4w9…(48 chars)");
        for shown in [&debug, &redacted] {
            assert!(!shown.contains("dQw4w9W"), "{shown}");
        }
    }

    #[test]
    fn test_the_fingerprint_is_the_sha256_of_the_wire_form() {
        let token = PushToken::Fcm("abc".into());

        assert_eq!(
            token.fingerprint(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            PushToken::Apns(vec![0xab]).fingerprint(),
            PushToken::Fcm("ab".into()).fingerprint(),
            "the platform is compared on its own"
        );
    }

    #[test]
    fn test_unusable_tokens_are_refused() {
        assert!(PushToken::Fcm(FCM.into()).check().is_ok());
        assert!(
            PushToken::UnifiedPush("https://ntfy.example/upAbC?up=1".into())
                .check()
                .is_ok()
        );

        for bad in [
            PushToken::Apns(Vec::new()),
            PushToken::Fcm(String::new()),
            PushToken::Fcm("two words".into()),
            PushToken::Fcm("x".repeat(4097)),
            PushToken::UnifiedPush("not a url".into()),
            PushToken::UnifiedPush("mailto:someone@example.com".into()),
        ] {
            let shown = format!("{bad:?}");
            assert!(
                matches!(bad.check(), Err(Error::InvalidInput(_))),
                "{shown}"
            );
        }
    }
}
