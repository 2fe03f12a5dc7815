//! Problem Details (RFC 9457): the one shape of every error body.
//!
//! Handlers build a [`Problem`] with one of the constructors below, each of
//! which fixes the `type` URI and the status that goes with it. The problem
//! renders itself as `application/problem+json`, either straight into a
//! response or, for idempotent writes, into a [`Reply`] that can be stored and
//! replayed later.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::idempotency::Reply;

/// The media type of every error body.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// One field that failed validation, listed under `errors` in a validation problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The name of the field in the request body.
    pub field: &'static str,

    /// What is wrong with it, for a developer to read.
    pub message: String,
}

impl FieldError {
    /// Creates a field error.
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// An error response body as defined by RFC 9457.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,

    title: String,

    #[serde(serialize_with = "serialize_status")]
    status: StatusCode,

    detail: String,

    instance: String,

    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl Problem {
    /// A problem of type `about:blank`, titled with the status's reason phrase.
    pub(crate) fn status(status: StatusCode, instance: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: reason_phrase(status).to_owned(),
            status,
            detail: detail.into(),
            instance: instance.to_owned(),
            errors: Vec::new(),
        }
    }

    /// 404 for a resource that does not exist.
    pub(crate) fn not_found(instance: &str, detail: impl Into<String>) -> Self {
        Self::status(StatusCode::NOT_FOUND, instance, detail)
    }

    /// 400 for a query parameter or path segment the server cannot use.
    pub(crate) fn bad_request(instance: &str, detail: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, instance, detail)
    }

    /// 500 for a failure inside the server; the detail says nothing internal.
    pub(crate) fn internal(instance: &str) -> Self {
        Self::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            instance,
            "the server failed to handle the request",
        )
    }

    /// 422 for a body that parsed but whose fields break the rules.
    pub(crate) fn validation(instance: &str, errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect::<Vec<_>>()
            .join("; ");

        Self {
            kind: "/problems/validation",
            title: "Validation failed".to_owned(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail,
            instance: instance.to_owned(),
            errors,
        }
    }

    /// 400 for a body that is not JSON, or not JSON of the expected shape.
    pub(crate) fn malformed_body(instance: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "/problems/malformed-body",
            title: "Malformed request body".to_owned(),
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
            instance: instance.to_owned(),
            errors: Vec::new(),
        }
    }

    /// 400 for an `Idempotency-Key` header that is empty, too long or not visible ASCII.
    pub(crate) fn invalid_idempotency_key(instance: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "/problems/invalid-idempotency-key",
            title: "Invalid idempotency key".to_owned(),
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
            instance: instance.to_owned(),
            errors: Vec::new(),
        }
    }

    /// 422 for an idempotency key that was first used with a different request.
    pub(crate) fn idempotency_key_reused(instance: &str) -> Self {
        Self {
            kind: "/problems/idempotency-key-reused",
            title: "Idempotency key reused".to_owned(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: "this idempotency key was already used for a different request".to_owned(),
            instance: instance.to_owned(),
            errors: Vec::new(),
        }
    }

    /// A status fault injected through `/_control/faults`.
    pub(crate) fn injected_fault(status: StatusCode, instance: &str) -> Self {
        Self {
            kind: "/problems/injected-fault",
            title: reason_phrase(status).to_owned(),
            status,
            detail: "this response was injected by a fault rule".to_owned(),
            instance: instance.to_owned(),
            errors: Vec::new(),
        }
    }

    /// The HTTP status this problem is sent with.
    #[cfg(test)]
    pub(crate) fn http_status(&self) -> StatusCode {
        self.status
    }

    /// Serializes the problem into the body of a storable reply.
    pub(crate) fn into_reply(self) -> Reply {
        let body = serde_json::to_vec(&self).expect("a problem always serializes");

        Reply {
            status: self.status,
            content_type: Some(PROBLEM_JSON.to_owned()),
            location: None,
            body: body.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self).expect("a problem always serializes");

        (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response()
    }
}

/// The reason phrase of a status, or a neutral title for codes that have none.
pub(crate) fn reason_phrase(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Unknown Status")
}

fn serialize_status<S: serde::Serializer>(
    status: &StatusCode,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u16(status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_blank_uses_the_reason_phrase_as_title() {
        let problem = Problem::not_found("/todos/9", "no todo with id 9");

        let json = serde_json::to_value(&problem).unwrap();

        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "no todo with id 9",
                "instance": "/todos/9",
            })
        );
    }

    #[test]
    fn validation_lists_every_field() {
        let errors = vec![
            FieldError::new("title", "is required"),
            FieldError::new("done", "is required"),
        ];

        let json = serde_json::to_value(Problem::validation("/todos/1", errors)).unwrap();

        assert_eq!(json["status"], 422);
        assert_eq!(json["type"], "/problems/validation");
        assert_eq!(json["errors"][1]["field"], "done");
        assert_eq!(json["detail"], "title: is required; done: is required");
    }

    #[test]
    fn unknown_codes_get_a_neutral_title() {
        let status = StatusCode::from_u16(599).unwrap();

        assert_eq!(reason_phrase(status), "Unknown Status");
    }
}
