//! Fault injection: rules that make chosen requests fail on purpose.
//!
//! Tests append rules through `POST /_control/faults`. The [`middleware`]
//! sits in front of every route; for each request outside `/_control` it
//! counts the request, then asks the rule list for a fault. The first rule
//! whose path prefix and method match, and that has count left, gives up one
//! count and decides what happens:
//!
//! - `status`: answer at once with an injected-fault problem, handler skipped;
//! - `reset`: kill the connection with a TCP RST, handler skipped;
//! - `reset_after`: run the handler, then kill the connection instead of
//!   sending its response;
//! - `delay`: wait, then handle the request normally.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::{debug, error, info};

use crate::app::AppState;
use crate::conn::KillSwitch;
use crate::problem::{FieldError, Problem};

/// What a fault rule does to the request it catches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// Respond at once with this status and an injected-fault problem.
    Status {
        status: StatusCode,
        retry_after: Option<u64>,
    },

    /// Abort the connection without responding.
    Reset,

    /// Run the handler, then abort the connection instead of responding.
    ResetAfter,

    /// Wait, then handle the request normally.
    Delay(Duration),
}

impl FaultKind {
    fn name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Reset => "reset",
            Self::ResetAfter => "reset_after",
            Self::Delay(_) => "delay",
        }
    }
}

/// One rule: which requests it catches, how many more times, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultRule {
    path_prefix: String,
    method: Option<Method>,
    remaining: u64,
    kind: FaultKind,
}

impl FaultRule {
    fn matches(&self, method: &Method, path: &str) -> bool {
        let method_matches = self.method.as_ref().is_none_or(|wanted| wanted == method);

        self.remaining > 0 && method_matches && path.starts_with(&self.path_prefix)
    }

    /// Parses and checks the JSON body of `POST /_control/faults`.
    pub(crate) fn from_json(body: &[u8], instance: &str) -> Result<Self, Problem> {
        let spec: FaultSpec = serde_json::from_slice(body)
            .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;

        spec.validate()
            .map_err(|errors| Problem::validation(instance, errors))
    }
}

/// The JSON shape of a fault rule, before validation.
#[derive(Debug, Deserialize)]
struct FaultSpec {
    path: Option<String>,
    method: Option<String>,
    count: Option<u64>,
    kind: Option<String>,
    status: Option<u16>,
    retry_after: Option<u64>,
    delay_ms: Option<u64>,
}

impl FaultSpec {
    fn validate(self) -> Result<FaultRule, Vec<FieldError>> {
        let mut errors = Vec::new();

        let path_prefix = match self.path {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                errors.push(FieldError::new("path", "must start with '/'"));
                String::new()
            }
            None => {
                errors.push(FieldError::new("path", "is required"));
                String::new()
            }
        };

        let method = match self.method {
            Some(method) => match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
                Ok(method) => Some(method),
                Err(_) => {
                    errors.push(FieldError::new("method", "is not an HTTP method"));
                    None
                }
            },
            None => None,
        };

        let remaining = match self.count {
            Some(count) if count > 0 => count,
            Some(_) => {
                errors.push(FieldError::new("count", "must be at least 1"));
                0
            }
            None => {
                errors.push(FieldError::new("count", "is required"));
                0
            }
        };

        let kind = match self.kind.as_deref() {
            Some("status") => {
                let status = self.status.unwrap_or(503);
                match StatusCode::from_u16(status) {
                    Ok(status) if (400..=599).contains(&status.as_u16()) => {
                        Some(FaultKind::Status {
                            status,
                            retry_after: self.retry_after,
                        })
                    }
                    _ => {
                        errors.push(FieldError::new("status", "must be between 400 and 599"));
                        None
                    }
                }
            }
            Some("reset") => Some(FaultKind::Reset),
            Some("reset_after") => Some(FaultKind::ResetAfter),
            Some("delay") => match self.delay_ms {
                Some(ms) => Some(FaultKind::Delay(Duration::from_millis(ms))),
                None => {
                    errors.push(FieldError::new("delay_ms", "is required for a delay fault"));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new(
                    "kind",
                    "must be one of status, reset, reset_after, delay",
                ));
                None
            }
            None => {
                errors.push(FieldError::new("kind", "is required"));
                None
            }
        };

        match kind {
            Some(kind) if errors.is_empty() => Ok(FaultRule {
                path_prefix,
                method,
                remaining,
                kind,
            }),
            _ => Err(errors),
        }
    }
}

/// The ordered list of fault rules.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    /// Appends a rule after the existing ones.
    pub(crate) fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    /// Removes every rule.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Consumes one count of the first rule that catches this request.
    pub(crate) fn take(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut rules = self.lock();

        let index = rules.iter().position(|rule| rule.matches(method, path))?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let kind = rule.kind.clone();

        if rule.remaining == 0 {
            rules.remove(index);
        }

        Some(kind)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts each request and applies the fault rule that catches it, if any.
pub(crate) async fn middleware(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if is_control_path(&path) {
        return next.run(req).await;
    }

    debug!(method = %req.method(), path, "request");
    state.stats.record_request(req.method(), &path);

    let Some(fault) = state.faults.take(req.method(), &path) else {
        return next.run(req).await;
    };

    state.stats.record_fault();
    info!(kind = fault.name(), method = %req.method(), path, "injecting fault");

    match fault {
        FaultKind::Status {
            status,
            retry_after,
        } => {
            let mut response = Problem::injected_fault(status, &path).into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        FaultKind::Reset => {
            let kill = req.extensions().get::<KillSwitch>().cloned();
            drop(req);

            reset_connection(kill, &path).await
        }
        FaultKind::ResetAfter => {
            let kill = req.extensions().get::<KillSwitch>().cloned();
            let response = next.run(req).await;
            debug!(
                status = response.status().as_u16(),
                path, "dropping response"
            );
            drop(response);

            reset_connection(kill, &path).await
        }
        FaultKind::Delay(delay) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
    }
}

/// Paths under `/_control` are never counted and never faulted.
fn is_control_path(path: &str) -> bool {
    path == "/_control" || path.starts_with("/_control/")
}

/// Kills the connection and never returns; the connection task drops this future.
async fn reset_connection(kill: Option<KillSwitch>, path: &str) -> Response {
    let Some(kill) = kill else {
        error!(path, "request has no kill switch");
        return Problem::internal(path).into_response();
    };

    kill.kill();
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        FaultRule::from_json(json.as_bytes(), "/_control/faults").unwrap()
    }

    #[test]
    fn status_defaults_to_503() {
        let rule = rule(r#"{"path": "/todos", "count": 1, "kind": "status"}"#);

        assert_eq!(
            rule.kind,
            FaultKind::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: None
            }
        );
    }

    #[test]
    fn rejects_bad_rules_with_every_field_named() {
        let body = br#"{"path": "todos", "count": 0, "kind": "explode"}"#;

        let problem = FaultRule::from_json(body, "/_control/faults").unwrap_err();
        let json = serde_json::to_value(&problem).unwrap();

        let fields: Vec<_> = json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["path", "count", "kind"]);
    }

    #[test]
    fn delay_needs_a_duration() {
        let body = br#"{"path": "/", "count": 1, "kind": "delay"}"#;

        assert!(FaultRule::from_json(body, "/_control/faults").is_err());
    }

    #[test]
    fn first_matching_rule_is_consumed_count_times() {
        let faults = Faults::default();
        faults.add(rule(
            r#"{"path": "/todos", "method": "post", "count": 2, "kind": "reset"}"#,
        ));
        faults.add(rule(
            r#"{"path": "/todos", "count": 1, "kind": "reset_after"}"#,
        ));

        let get = faults.take(&Method::GET, "/todos/1");
        let first = faults.take(&Method::POST, "/todos");
        let second = faults.take(&Method::POST, "/todos");
        let third = faults.take(&Method::POST, "/todos");

        assert_eq!(get, Some(FaultKind::ResetAfter));
        assert_eq!(first, Some(FaultKind::Reset));
        assert_eq!(second, Some(FaultKind::Reset));
        assert_eq!(third, None);
    }

    #[test]
    fn path_is_a_prefix() {
        let faults = Faults::default();
        faults.add(rule(r#"{"path": "/todos", "count": 5, "kind": "reset"}"#));

        assert!(faults.take(&Method::GET, "/health").is_none());
        assert!(faults.take(&Method::GET, "/todos/7").is_some());
    }

    #[test]
    fn control_paths_are_recognised() {
        assert!(is_control_path("/_control/stats"));
        assert!(is_control_path("/_control"));
        assert!(!is_control_path("/_controller"));
    }
}
