//! The HTTP transport: reqwest over rustls with the *ring* crypto provider.
//!
//! Trust comes from the Mozilla root store compiled into the library (`webpki-roots`), so the same
//! certificates are trusted on every platform without platform initialisation, plus any roots the
//! app adds for a private CA. Redirects are followed by reqwest, which drops `Authorization` and
//! `Cookie` when a redirect crosses to another origin; the policy here refuses a redirect that
//! would downgrade to plain HTTP.

use std::sync::Arc;
use std::time::Duration;

use reqwest::redirect;
use rustls::pki_types::CertificateDer;
use url::{Host, Url};

use crate::internal::error::{Failure, InsecureRedirect};

const MAX_REDIRECTS: usize = 10;

pub(crate) struct TransportConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
    pub(crate) allow_insecure_http: bool,
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
}

pub(crate) fn build(config: TransportConfig) -> Result<reqwest::Client, Failure> {
    let mut tls = tls_config(config.extra_roots)?;
    // Offer HTTP/2 first; servers that do not speak it answer with HTTP/1.1.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let allow_insecure_http = config.allow_insecure_http;

    let redirects = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match check_security(attempt.url(), allow_insecure_http) {
            Ok(()) => attempt.follow(),
            Err(_) => {
                let host = attempt.url().host_str().unwrap_or_default().to_owned();
                attempt.error(InsecureRedirect { host })
            }
        }
    });

    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(config.connect_timeout)
        .user_agent(config.user_agent)
        .redirect(redirects)
        .build()?;
    Ok(client)
}

/// The TLS configuration of realtime channels: the same provider and roots as HTTP, offering
/// HTTP/1.1 only, since the WebSocket upgrade (RFC 6455) is an HTTP/1.1 exchange.
pub(crate) fn websocket_tls(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, Failure> {
    let mut tls = tls_config(extra_roots)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// rustls with *ring*, the Mozilla roots and the app's extra roots: the one place the crypto
/// provider is chosen.
fn tls_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, Failure> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for certificate in extra_roots {
        roots.add(certificate)?;
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Refuses plain HTTP except to loopback, unless the app opted in, and any scheme but HTTP(S).
pub(crate) fn check_security(url: &Url, allow_insecure_http: bool) -> Result<(), Failure> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(Failure::Insecure {
            host: url.host_str().unwrap_or_default().to_owned(),
        }),
        other => Err(Failure::Invalid(format!(
            "unsupported URL scheme `{other}`: use https"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        Some(Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, opt_in: bool) -> bool {
        check_security(&Url::parse(url).unwrap(), opt_in).is_ok()
    }

    #[test]
    fn test_https_is_always_allowed() {
        assert!(allowed("https://api.example.com/", false));
    }

    #[test]
    fn test_plain_http_is_allowed_to_loopback_only() {
        assert!(allowed("http://127.0.0.1:8080/", false));
        assert!(allowed("http://127.3.2.1/", false));
        assert!(allowed("http://[::1]:9000/", false));
        assert!(allowed("http://localhost/", false));
        assert!(allowed("http://api.localhost/", false));

        assert!(!allowed("http://api.example.com/", false));
        assert!(!allowed("http://10.0.2.2:8080/", false));
        assert!(!allowed("http://localhost.example.com/", false));
    }

    #[test]
    fn test_plain_http_is_allowed_anywhere_after_opt_in() {
        assert!(allowed("http://10.0.2.2:8080/", true));
    }

    #[test]
    fn test_other_schemes_are_refused_even_after_opt_in() {
        assert!(!allowed("ftp://example.com/", true));
        assert!(!allowed("file:///etc/passwd", true));
    }

    #[test]
    fn test_transport_builds_with_the_ring_provider() {
        let config = TransportConfig {
            connect_timeout: Duration::from_secs(1),
            user_agent: "test".into(),
            allow_insecure_http: false,
            extra_roots: Vec::new(),
        };

        assert!(build(config).is_ok());
    }

    #[test]
    fn test_websocket_tls_offers_http1_only() {
        let tls = websocket_tls(Vec::new()).unwrap();

        assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
