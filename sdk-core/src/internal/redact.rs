//! Keeping secrets out of logs, error messages and `Debug` output.
//!
//! Query strings often carry API keys and one-time codes, and userinfo carries passwords, so a URL
//! is only ever shown as scheme, host, port and path. Header values that authenticate are marked
//! sensitive, which makes `http`'s `Debug` print `Sensitive` in their place, and are never logged.

use http::HeaderName;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use url::Url;

/// The URL without userinfo, query or fragment: safe to log.
pub(crate) fn url(url: &Url) -> String {
    let mut shown = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        shown.push_str(host);
    }
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

/// Whether a header's value is a credential that must never be shown.
pub(crate) fn is_sensitive_header(name: &HeaderName) -> bool {
    if [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, SET_COOKIE].contains(name) {
        return true;
    }

    let name = name.as_str();
    [
        "token", "secret", "password", "api-key", "apikey", "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Formats an error with its chain of causes on one line.
///
/// Callers strip URLs from the errors they pass (reqwest's `without_url`) before calling.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_url_drops_userinfo_query_and_fragment() {
        let secret =
            Url::parse("https://user:pw@api.example.com:8443/v1/todos?token=abc#frag").unwrap();

        assert_eq!(url(&secret), "https://api.example.com:8443/v1/todos");
    }

    #[test]
    fn test_url_keeps_default_port_implicit() {
        let plain = Url::parse("http://127.0.0.1/health").unwrap();

        assert_eq!(url(&plain), "http://127.0.0.1/health");
    }

    #[test]
    fn test_credential_headers_are_sensitive() {
        for name in [
            "authorization",
            "cookie",
            "x-api-key",
            "x-auth-token",
            "x-session-id",
        ] {
            assert!(
                is_sensitive_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        for name in ["accept", "content-type", "idempotency-key", "user-agent"] {
            assert!(
                !is_sensitive_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn test_error_chain_joins_causes_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }

        let error = Outer(std::io::Error::other("connection reset"));

        assert_eq!(error_chain(&error), "request failed: connection reset");
    }
}
