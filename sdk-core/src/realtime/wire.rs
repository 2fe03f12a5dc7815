//! What goes over the wire besides the app's own messages: the upgrade URL and the event
//! envelope of resumable streams (see `docs/server-contract.md`, "Realtime").
//!
//! A server message that is a JSON object with an unsigned integer `id` and a `data` member is
//! an *event*. The channel remembers the highest id it delivered and, when it reconnects, asks
//! the server to replay what came after it with the query parameter `last_event_id`.

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use crate::internal::error::Failure;
use crate::internal::{redact, transport};

/// The query parameter that carries the last event id on the upgrade request.
pub(crate) const LAST_EVENT_ID: &str = "last_event_id";

#[derive(Deserialize)]
struct Envelope<'a> {
    id: u64,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Reads an event envelope: its id and the JSON text of its `data`. `None` for anything else.
pub(crate) fn parse_event(text: &str) -> Option<(u64, String)> {
    // Cheap test first: most messages of apps that do not use events are not JSON objects.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).ok()?;
    Some((envelope.id, envelope.data.get().to_owned()))
}

/// Resolves a channel target under the base URL and checks transport security on its HTTP
/// form; returns that HTTP form (for the origin check of credentials).
pub(crate) fn http_url(
    base: &Url,
    target: &str,
    allow_insecure_http: bool,
) -> Result<Url, Failure> {
    let mut url = crate::request::resolve(base, target)?;
    let http_scheme = match url.scheme() {
        "wss" => Some("https"),
        "ws" => Some("http"),
        _ => None,
    };
    if let Some(scheme) = http_scheme {
        set_scheme(&mut url, scheme)?;
    }
    url.set_fragment(None);
    transport::check_security(&url, allow_insecure_http)?;
    Ok(url)
}

/// The WebSocket form of a checked HTTP URL: `https` becomes `wss`, `http` becomes `ws`.
pub(crate) fn websocket_url(http: &Url) -> Result<Url, Failure> {
    let mut url = http.clone();
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    set_scheme(&mut url, scheme)?;
    Ok(url)
}

fn set_scheme(url: &mut Url, scheme: &str) -> Result<(), Failure> {
    url.set_scheme(scheme)
        .map_err(|()| Failure::Invalid(format!("`{}` cannot become {scheme}", redact::url(url))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(base: &str, target: &str) -> Result<String, Failure> {
        let http = http_url(&Url::parse(base).unwrap(), target, false)?;
        Ok(websocket_url(&http)?.to_string())
    }

    #[test]
    fn test_targets_resolve_under_the_base_with_websocket_schemes() {
        assert_eq!(
            ws("https://api.example.com/v1", "/ws").unwrap(),
            "wss://api.example.com/v1/ws"
        );
        assert_eq!(
            ws("http://127.0.0.1:8080", "/ws?room=1").unwrap(),
            "ws://127.0.0.1:8080/ws?room=1"
        );
        assert_eq!(
            ws("https://api.example.com", "wss://push.example.com/x").unwrap(),
            "wss://push.example.com/x"
        );
    }

    #[test]
    fn test_plain_websockets_are_refused_off_loopback() {
        assert!(matches!(
            ws("http://api.example.com", "/ws"),
            Err(Failure::Insecure { .. })
        ));
        assert!(matches!(
            ws("https://api.example.com", "ws://api.example.com/ws"),
            Err(Failure::Insecure { .. })
        ));
        assert!(ws("http://localhost:9000", "ws://localhost:9000/ws").is_ok());
    }

    #[test]
    fn test_targets_cannot_leave_the_base_path() {
        assert!(ws("https://api.example.com/v1", "/../admin").is_err());
    }

    #[test]
    fn test_event_envelopes_are_recognised() {
        assert_eq!(
            parse_event(r#"{"id": 7, "data": {"text": "hi"}}"#),
            Some((7, r#"{"text": "hi"}"#.to_owned()))
        );
        assert_eq!(
            parse_event(r#" {"data":"x","id":8,"room":"a"}"#),
            Some((8, r#""x""#.to_owned()))
        );
    }

    #[test]
    fn test_other_messages_are_not_events() {
        for text in [
            "hello",
            "[1, 2]",
            r#"{"id": -1, "data": 1}"#,
            r#"{"id": "7", "data": 1}"#,
            r#"{"id": 7}"#,
            r#"{"data": 1}"#,
            r#"{"id": 7, "data": "#,
        ] {
            assert_eq!(parse_event(text), None, "{text}");
        }
    }
}
