//! Incoming pushes: recognising a data message addressed to Roundtrip.
//!
//! The backend puts a `roundtrip` member in the message, whose value is an object with a `kind`
//! (see `docs/server-contract.md`, "Push messages"). APNs payloads carry it as a nested object;
//! FCM data messages only carry strings, so there it is the same object serialised as JSON. The
//! parsers here accept both.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The member of a push payload that addresses the SDK.
pub const MESSAGE_KEY: &str = "roundtrip";

/// What a message addressed to Roundtrip asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// Data changed on the server; pull it.
    Sync,
    /// A kind this version of the SDK does not know, kept as sent so that a newer backend does
    /// not break an older app.
    Other(String),
}

impl MessageKind {
    /// The kind as it appears in the message.
    pub fn as_str(&self) -> &str {
        match self {
            MessageKind::Sync => "sync",
            MessageKind::Other(kind) => kind,
        }
    }
}

/// A push data message addressed to Roundtrip.
///
/// The app calls one of the parsers from its push handler; `None` means the message is the
/// app's own.
///
/// ```
/// use roundtrip::push::{MessageKind, RoundtripMessage};
/// use serde_json::json;
///
/// // An APNs payload, as `userInfo` holds it.
/// let payload = json!({ "aps": { "content-available": 1 }, "roundtrip": { "kind": "sync" } });
/// let message = RoundtripMessage::parse(&payload).unwrap();
/// assert_eq!(message.kind(), &MessageKind::Sync);
///
/// // An FCM data message: string values only.
/// let member = r#"{"kind":"sync","collections":["todos"]}"#;
/// let data = [("roundtrip".to_string(), member.to_string())].into_iter().collect();
/// let message = RoundtripMessage::from_data(&data).unwrap();
/// assert_eq!(message.data()["collections"][0], "todos");
///
/// assert!(RoundtripMessage::parse(&json!({ "title": "Hello" })).is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RoundtripMessage {
    kind: MessageKind,
    data: Map<String, Value>,
}

impl RoundtripMessage {
    /// Reads a whole push payload (an APNs `userInfo`, a UnifiedPush body, any JSON object).
    pub fn parse(payload: &Value) -> Option<RoundtripMessage> {
        RoundtripMessage::from_member(payload.as_object()?.get(MESSAGE_KEY)?)
    }

    /// Reads a payload given as JSON text; text that is not JSON is not addressed to Roundtrip.
    pub fn parse_json(payload: &str) -> Option<RoundtripMessage> {
        RoundtripMessage::parse(&serde_json::from_str(payload).ok()?)
    }

    /// Reads an FCM data message (`RemoteMessage.getData()`), whose values are all strings.
    pub fn from_data(data: &HashMap<String, String>) -> Option<RoundtripMessage> {
        RoundtripMessage::from_member(&Value::String(data.get(MESSAGE_KEY)?.clone()))
    }

    /// Reads the value of the `roundtrip` member: an object, or an object serialised as a string.
    fn from_member(member: &Value) -> Option<RoundtripMessage> {
        let mut data = match member {
            Value::Object(object) => object.clone(),
            Value::String(text) => match serde_json::from_str(text).ok()? {
                Value::Object(object) => object,
                _ => return None,
            },
            _ => return None,
        };

        let kind = match data.remove("kind")? {
            Value::String(kind) if kind == "sync" => MessageKind::Sync,
            Value::String(kind) if !kind.is_empty() => MessageKind::Other(kind),
            _ => return None,
        };
        Some(RoundtripMessage { kind, data })
    }

    /// What the message asks for.
    pub fn kind(&self) -> &MessageKind {
        &self.kind
    }

    /// The other members of the message, such as `collections` for a sync.
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }
}

/// Whether a push payload is addressed to Roundtrip. See [`RoundtripMessage::parse`].
pub fn is_roundtrip_message(payload: &Value) -> bool {
    RoundtripMessage::parse(payload).is_some()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn test_nested_and_serialised_members_are_both_read() {
        let nested = json!({ "roundtrip": { "kind": "sync", "collections": ["todos"] } });
        let serialised = json!({ "roundtrip": r#"{"kind":"sync","collections":["todos"]}"# });

        let from_nested = RoundtripMessage::parse(&nested).unwrap();
        let from_serialised = RoundtripMessage::parse(&serialised).unwrap();

        assert_eq!(from_nested, from_serialised);
        assert_eq!(from_nested.kind(), &MessageKind::Sync);
        assert_eq!(from_nested.data()["collections"], json!(["todos"]));
        assert!(!from_nested.data().contains_key("kind"));
    }

    #[test]
    fn test_unknown_kinds_are_kept() {
        let message = RoundtripMessage::parse_json(r#"{"roundtrip":{"kind":"revoke"}}"#).unwrap();

        assert_eq!(message.kind(), &MessageKind::Other("revoke".into()));
        assert_eq!(message.kind().as_str(), "revoke");
    }

    #[test]
    fn test_other_messages_are_not_ours() {
        for payload in [
            json!({ "aps": { "alert": "Hi" } }),
            json!({ "roundtrip": "not json" }),
            json!({ "roundtrip": { "collections": [] } }),
            json!({ "roundtrip": { "kind": 3 } }),
            json!({ "roundtrip": { "kind": "" } }),
            json!({ "roundtrip": "[1, 2]" }),
            json!({ "roundtrip": true }),
            json!(["roundtrip"]),
        ] {
            assert!(!is_roundtrip_message(&payload), "{payload}");
        }
        assert!(RoundtripMessage::parse_json("garbage").is_none());
    }

    #[test]
    fn test_fcm_data_maps_are_read() {
        let mut data = HashMap::new();
        data.insert("title".to_owned(), "Hello".to_owned());
        assert!(RoundtripMessage::from_data(&data).is_none());

        data.insert("roundtrip".to_owned(), r#"{"kind":"sync"}"#.to_owned());

        assert_eq!(
            RoundtripMessage::from_data(&data).unwrap().kind(),
            &MessageKind::Sync
        );
    }
}
