//! Parameters of OAuth requests, from a query string or a form body.
//!
//! RFC 6749 3.1 and 3.2 fix two rules that a plain map would lose: a parameter
//! sent without a value counts as absent, and a parameter sent twice makes the
//! request invalid.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};

use super::error::OAuthError;
use crate::app::read_body;

/// The largest form body accepted by the OAuth endpoints.
const FORM_LIMIT: usize = 16 * 1024;

/// Why parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamsError {
    /// The body is not `application/x-www-form-urlencoded`.
    NotAForm,

    /// The body could not be read, or is too large.
    Unreadable,

    /// The encoding is broken.
    Malformed,

    /// This parameter was sent more than once.
    Repeated(String),
}

impl ParamsError {
    /// A sentence for `error_description` or a problem detail.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::NotAForm => "the body must be application/x-www-form-urlencoded".to_owned(),
            Self::Unreadable => "the request body could not be read".to_owned(),
            Self::Malformed => "the parameters are not properly URL-encoded".to_owned(),
            Self::Repeated(name) => format!("`{name}` must not be sent more than once"),
        }
    }
}

impl From<ParamsError> for OAuthError {
    fn from(err: ParamsError) -> Self {
        OAuthError::invalid_request(err.describe())
    }
}

/// Decoded parameters, each present at most once and never empty.
#[derive(Default)]
pub(crate) struct Params {
    values: HashMap<String, String>,
}

// Parameters carry passwords, codes and tokens: never print their values.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text, such as a query string.
    pub(crate) fn parse(encoded: &str) -> Result<Self, ParamsError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(encoded).map_err(|_| ParamsError::Malformed)?;

        let mut values = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                return Err(ParamsError::Repeated(name));
            }
            if !value.is_empty() {
                values.insert(name, value);
            }
        }

        Ok(Self { values })
    }

    /// Reads and decodes a form body, after checking its media type.
    pub(crate) async fn from_form(headers: &HeaderMap, body: Body) -> Result<Self, ParamsError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ParamsError::NotAForm);
        }

        let body = read_body(body, FORM_LIMIT, "")
            .await
            .map_err(|_| ParamsError::Unreadable)?;
        let text = std::str::from_utf8(&body).map_err(|_| ParamsError::Malformed)?;

        Self::parse(text)
    }

    /// A parameter's value, if it was sent with one.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A parameter that must be present, or `invalid_request`.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("`{name}` is required")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let params = Params::parse("a=1&b=&c=x%20y").unwrap();

        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::parse("a=1&a=2").unwrap_err();

        assert_eq!(err, ParamsError::Repeated("a".to_owned()));
    }

    #[test]
    fn debug_shows_names_but_not_values() {
        let params = Params::parse("password=hunter2").unwrap();

        let shown = format!("{params:?}");

        assert!(shown.contains("password"));
        assert!(!shown.contains("hunter2"));
    }
}
