//! The OAuth 2.0 protocol: endpoints and discovery (RFC 8414), PKCE (RFC 7636), the token
//! endpoint's grants (RFC 6749, RFC 8628) and revocation (RFC 7009).
//!
//! Token endpoint failures are sorted here into the two kinds the refresh engine cares about:
//! a definitive rejection (400 or 401 from the token endpoint, such as `invalid_grant`), which
//! ends a session, and everything else (transport failures, timeouts, 5xx, 429), which does not.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::auth::Secret;
use crate::auth::store::StoredTokens;
use crate::internal::error::Failure;
use crate::internal::{redact, transport};

const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The authorization server's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Where the browser is sent to sign in (authorization code flow).
    pub authorization: Option<Url>,
    /// Where codes, passwords and refresh tokens are exchanged for tokens.
    pub token: Url,
    /// Where tokens are revoked at sign-out.
    pub revocation: Option<Url>,
    /// Where the device authorization grant starts.
    pub device_authorization: Option<Url>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// What the device authorization grant asks the user to do (RFC 8628).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DeviceAuthorization {
    /// The code the device polls with. Not shown to the user.
    #[serde(rename = "device_code")]
    pub(crate) device_code: Secret,
    /// The code the user types at `verification_uri`.
    pub user_code: String,
    /// Where the user goes on another device to approve the sign-in.
    pub verification_uri: String,
    /// `verification_uri` with the code filled in, for a QR code or a link.
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls (default 5).
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// The outcome of one token endpoint call.
pub(crate) enum Grant {
    Issued(StoredTokens),
    /// The server refused the grant (400 or 401): `error` is its RFC 6749 error code.
    Refused {
        error: String,
        description: Option<Box<str>>,
    },
}

/// A PKCE verifier and the matching S256 challenge.
pub(crate) struct Pkce {
    pub(crate) verifier: Secret,
    pub(crate) challenge: String,
}

impl Pkce {
    pub(crate) fn new() -> Result<Pkce, Error> {
        let verifier = random_token(32)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Ok(Pkce {
            challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier: Secret::new(verifier),
        })
    }
}

/// A random URL-safe string carrying `bytes` bytes of entropy from the system's secure source.
pub(crate) fn random_token(bytes: usize) -> Result<String, Error> {
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| Error::Internal("the system random source failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// Fetches the authorization server's metadata from `issuer`.
pub(crate) async fn discover(
    http: &reqwest::Client,
    issuer: &Url,
    allow_insecure_http: bool,
) -> Result<Endpoints, Error> {
    let base = issuer.as_str().trim_end_matches('/');
    let mut last_error = None;
    for suffix in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let url = Url::parse(&format!("{base}{suffix}")).map_err(Failure::from)?;
        transport::check_security(&url, allow_insecure_http)?;

        let response = send(http.get(url.clone())).await?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(Failure::from)?;
        if status == 404 {
            last_error = Some(Error::Http {
                status,
                problem: None,
                retry_after: None,
            });
            continue;
        }
        if status >= 400 {
            return Err(Error::Http {
                status,
                problem: None,
                retry_after: None,
            });
        }

        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|error| Error::Decode(format!("authorization server metadata: {error}")))?;
        if let Some(claimed) = &metadata.issuer
            && claimed.trim_end_matches('/') != base
        {
            return Err(Error::OAuth {
                error: "invalid_issuer".into(),
                description: Some(format!("metadata names issuer {claimed}").into()),
            });
        }
        return endpoints_from(metadata, allow_insecure_http);
    }
    Err(last_error.unwrap_or_else(|| Error::Internal("discovery made no request".into())))
}

fn endpoints_from(metadata: Metadata, allow_insecure_http: bool) -> Result<Endpoints, Error> {
    let parse = |text: &str| -> Result<Url, Error> {
        let url = Url::parse(text).map_err(Failure::from)?;
        transport::check_security(&url, allow_insecure_http)?;
        Ok(url)
    };
    let optional = |text: Option<String>| text.as_deref().map(parse).transpose();

    Ok(Endpoints {
        token: parse(&metadata.token_endpoint)?,
        authorization: optional(metadata.authorization_endpoint)?,
        revocation: optional(metadata.revocation_endpoint)?,
        device_authorization: optional(metadata.device_authorization_endpoint)?,
    })
}

/// Calls the token endpoint with a form of parameters.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    endpoint: &Url,
    form: &[(&str, &str)],
    now: u64,
) -> Result<Grant, Error> {
    let response = send(form_post(http, endpoint, form)).await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| crate::retry::parse_retry_after(value, std::time::SystemTime::now()));
    let body = response.bytes().await.map_err(Failure::from)?;

    match status {
        200..=299 => {
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|error| Error::Decode(format!("token response: {error}")))?;
            if let Some(kind) = &parsed.token_type
                && !kind.eq_ignore_ascii_case("bearer")
            {
                return Err(Error::OAuth {
                    error: "unsupported_token_type".into(),
                    description: Some(format!("token type {kind} is not Bearer").into()),
                });
            }
            Ok(Grant::Issued(StoredTokens {
                access_token: Secret::new(parsed.access_token),
                refresh_token: parsed.refresh_token.map(Secret::new),
                expires_at: parsed.expires_in.map(|seconds| now.saturating_add(seconds)),
                scope: parsed.scope,
                session_id: None,
            }))
        }
        400 | 401 => {
            let refused = serde_json::from_slice::<ErrorResponse>(&body).ok();
            Ok(Grant::Refused {
                error: refused.as_ref().map_or_else(
                    || {
                        if status == 401 {
                            "invalid_client"
                        } else {
                            "invalid_request"
                        }
                        .to_owned()
                    },
                    |refused| refused.error.clone(),
                ),
                description: refused
                    .and_then(|refused| refused.error_description)
                    .map(String::into_boxed_str),
            })
        }
        _ => Err(Error::Http {
            status,
            problem: None,
            retry_after,
        }),
    }
}

/// Starts the device authorization grant.
pub(crate) async fn device_authorization(
    http: &reqwest::Client,
    endpoint: &Url,
    form: &[(&str, &str)],
) -> Result<DeviceAuthorization, Error> {
    let response = send(form_post(http, endpoint, form)).await?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(Failure::from)?;
    if status >= 400 {
        let refused = serde_json::from_slice::<ErrorResponse>(&body).ok();
        return Err(match refused {
            Some(refused) => Error::OAuth {
                error: refused.error,
                description: refused.error_description.map(String::into_boxed_str),
            },
            None => Error::Http {
                status,
                problem: None,
                retry_after: None,
            },
        });
    }
    serde_json::from_slice(&body)
        .map_err(|error| Error::Decode(format!("device authorization response: {error}")))
}

/// Revokes a token (RFC 7009). The server answers 200 whether or not it knew the token.
pub(crate) async fn revoke(
    http: &reqwest::Client,
    endpoint: &Url,
    form: &[(&str, &str)],
) -> Result<(), Error> {
    let response = send(form_post(http, endpoint, form)).await?;
    let status = response.status().as_u16();
    if status >= 400 {
        return Err(Error::Http {
            status,
            problem: None,
            retry_after: None,
        });
    }
    Ok(())
}

pub(crate) const fn device_grant_type() -> &'static str {
    DEVICE_GRANT
}

fn form_post(
    http: &reqwest::Client,
    endpoint: &Url,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    http.post(endpoint.clone())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body)
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
    match tokio::time::timeout(TOKEN_TIMEOUT, request.send()).await {
        Ok(result) => result.map_err(|error| Failure::from(error).into_public()),
        Err(_) => Err(Error::Timeout),
    }
}

/// The redirect's parameters, read without ever logging the URL (it carries the code).
pub(crate) fn redirect_parameters(redirect: &str) -> Result<Vec<(String, String)>, Error> {
    let url = Url::parse(redirect)
        .map_err(|_| Error::InvalidInput("the redirect URL does not parse".into()))?;
    tracing::debug!(url = %redact::url(&url), "completing authorization");
    Ok(url.query_pairs().into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pkce_challenge_is_the_s256_of_the_verifier() {
        let pkce = Pkce::new().unwrap();

        let digest = ring::digest::digest(&ring::digest::SHA256, pkce.verifier.expose().as_bytes());
        assert_eq!(pkce.challenge, URL_SAFE_NO_PAD.encode(digest.as_ref()));
        assert_eq!(pkce.verifier.expose().len(), 43);
        assert!(
            pkce.verifier
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn test_rfc_7636_example_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());

        assert_eq!(
            URL_SAFE_NO_PAD.encode(digest.as_ref()),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn test_random_tokens_differ() {
        assert_ne!(random_token(16).unwrap(), random_token(16).unwrap());
    }
}
