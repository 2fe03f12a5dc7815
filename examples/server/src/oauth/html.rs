//! The few HTML pages a person sees: sign-in for `/oauth/authorize` and
//! device approval at `/device`.
//!
//! They are deliberately plain. Every value from a request is escaped, and the
//! pages refuse to be framed, so another site cannot overlay them.

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;\
                     padding:0 1rem}label{display:block;margin:.75rem 0}input{display:block;\
                     width:100%;padding:.4rem;box-sizing:border-box}.error{color:#b00020}\
                     button{margin:1rem .5rem 0 0;padding:.4rem 1rem}";

/// Escapes text for use in HTML content and in double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A form under construction: hidden fields, inputs and buttons, escaped as they are added.
#[derive(Debug)]
pub(crate) struct Form {
    html: String,
}

impl Form {
    /// Starts a form that posts to `action`, with an error line on top if there is one.
    pub(crate) fn new(action: &str, error: Option<&str>) -> Self {
        let mut html = String::new();
        if let Some(error) = error {
            let _ = write!(
                html,
                "<p class=\"error\" role=\"alert\">{}</p>",
                escape(error)
            );
        }
        let _ = write!(html, "<form method=\"post\" action=\"{}\">", escape(action));

        Self { html }
    }

    /// Adds a hidden field; an absent value adds nothing.
    pub(crate) fn hidden(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            let _ = write!(
                self.html,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            );
        }
        self
    }

    /// Adds a labelled input of `kind` (`text`, `password`).
    pub(crate) fn input(
        mut self,
        label: &str,
        name: &str,
        kind: &str,
        value: Option<&str>,
    ) -> Self {
        let _ = write!(
            self.html,
            "<label>{}<input type=\"{}\" name=\"{}\" value=\"{}\" autocomplete=\"{}\"></label>",
            escape(label),
            escape(kind),
            escape(name),
            escape(value.unwrap_or("")),
            if kind == "password" {
                "current-password"
            } else {
                "username"
            },
        );
        self
    }

    /// Adds a submit button that sends `decision=value`.
    pub(crate) fn button(mut self, label: &str, value: &str) -> Self {
        let _ = write!(
            self.html,
            "<button type=\"submit\" name=\"decision\" value=\"{}\">{}</button>",
            escape(value),
            escape(label)
        );
        self
    }

    /// Closes the form and returns its HTML.
    pub(crate) fn finish(mut self) -> String {
        self.html.push_str("</form>");
        self.html
    }
}

/// A whole page with a heading and `body` (already HTML), answered with 200.
pub(crate) fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut response = (StatusCode::OK, html).into_response();

    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );

    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = Form::new("/x", Some("<b>"))
            .hidden("state", Some("\"><script>"))
            .finish();

        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
