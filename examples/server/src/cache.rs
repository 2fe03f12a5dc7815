//! Cacheable resources: responses whose caching headers a test scripts.
//!
//! A test defines a resource with `PUT /_control/cache/resources/{name}`,
//! choosing its status, headers and body, and defines it again to publish a
//! new version. `GET` and `HEAD /cache/resources/{name}` serve it, answering a
//! conditional request with 304 when its validators match; the unsafe methods
//! change nothing and only answer, so that a client cache can be seen
//! invalidating what it stored. Every request is counted per name, before any
//! fault applies, so a test can prove whether a response came from the
//! network or from a cache.
//!
//! Names are compared as they appear in the path, without percent-decoding.
//! None of these responses is compressed: a cache test needs the bodies and
//! headers exactly as defined.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tracing::{debug, info};

use crate::app::{AppState, QueryParams, Uncompressed, read_body};
use crate::problem::{FieldError, Problem};

/// Where resources are served.
const RESOURCE_PREFIX: &str = "/cache/resources/";

/// Where resources are defined.
const CONTROL_PREFIX: &str = "/_control/cache/resources/";

/// The largest definition body accepted.
const DEFINITION_LIMIT: usize = 1024 * 1024;

/// The largest body an unsafe method may carry; it is read and thrown away.
const UPDATE_LIMIT: usize = 1024 * 1024;

/// Headers that belong to the connection or the framing of the body, which the
/// HTTP layer sets itself; a definition may not script them.
const FORBIDDEN_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The resources defined so far, by name.
#[derive(Debug, Default)]
pub(crate) struct CacheResources {
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl CacheResources {
    /// Defines a resource, replacing any earlier one of the same name.
    fn define(&self, name: &str, resource: Resource) {
        self.lock().insert(name.to_owned(), Arc::new(resource));
    }

    fn get(&self, name: &str) -> Option<Arc<Resource>> {
        self.lock().get(name).cloned()
    }

    /// Removes every resource.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Resource>>> {
        // Each change is a single insert or clear, so a panicking holder leaves no half-state.
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One defined resource: what a `GET` of it answers.
#[derive(Debug)]
struct Resource {
    status: StatusCode,

    /// Every header to send, `Content-Type` included.
    headers: HeaderMap,

    /// The body, with `{header:NAME}` placeholders still in it.
    body: String,
}

/// The JSON body of `PUT /_control/cache/resources/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    #[serde(default)]
    body: String,
    content_type: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    status: Option<u16>,
}

impl Resource {
    /// Parses and checks a definition body.
    fn from_json(body: &[u8], instance: &str) -> Result<Self, Problem> {
        let spec: ResourceSpec = serde_json::from_slice(body)
            .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;
        let mut errors = Vec::new();

        let status = match spec.status.map(StatusCode::from_u16) {
            None => StatusCode::OK,
            Some(Ok(status)) if (200..=599).contains(&status.as_u16()) => status,
            Some(_) => {
                errors.push(FieldError::new("status", "must be between 200 and 599"));
                StatusCode::OK
            }
        };
        if matches!(status.as_u16(), 204 | 205 | 304) && !spec.body.is_empty() {
            errors.push(FieldError::new(
                "body",
                format!("must be empty for status {}", status.as_u16()),
            ));
        }

        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            match parse_header(name, value) {
                Ok((name, value)) => {
                    headers.insert(name, value);
                }
                Err(message) => errors.push(FieldError::new("headers", message)),
            }
        }

        if let Some(content_type) = &spec.content_type {
            match HeaderValue::from_str(content_type) {
                Ok(value) => {
                    headers.insert(header::CONTENT_TYPE, value);
                }
                Err(_) => errors.push(FieldError::new(
                    "content_type",
                    "cannot be sent as a header value",
                )),
            }
        }

        if !errors.is_empty() {
            return Err(Problem::validation(instance, errors));
        }

        Ok(Self {
            status,
            headers,
            body: spec.body,
        })
    }

    /// Whether a `GET` or `HEAD` carrying `request` headers should get a 304.
    ///
    /// As RFC 9110 13.2.2 orders it: `If-None-Match`, when present, decides
    /// alone; only without it is `If-Modified-Since` looked at. The resource's
    /// own status does not matter, so a test can revalidate a stored 404 too.
    fn is_not_modified(&self, request: &HeaderMap) -> bool {
        if request.contains_key(header::IF_NONE_MATCH) {
            let list = joined_values(request, header::IF_NONE_MATCH.as_str());
            let etag = self.header(header::ETAG);

            return etag.is_some_and(|etag| if_none_match_matches(&list, etag));
        }

        let since = request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(HttpDate::parse);
        let modified = self.header(header::LAST_MODIFIED).and_then(HttpDate::parse);

        matches!((since, modified), (Some(since), Some(modified)) if since >= modified)
    }

    /// The resource in full; axum drops the body again for a `HEAD`.
    fn full(&self, request: &HeaderMap) -> Response {
        let mut response = Response::new(Body::from(render_body(&self.body, request)));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();

        response
    }

    /// A 304 with every header of the resource but its `Content-Type`.
    fn not_modified(&self) -> Response {
        let mut headers = self.headers.clone();
        headers.remove(header::CONTENT_TYPE);

        // axum adds `Content-Length: 0` for a body of known length, and hyper
        // passes it on in answer to a HEAD, where a cache could take it for the
        // length of the stored body. A body of unknown length gets none.
        let body = Body::from_stream(futures::stream::empty::<Result<Bytes, Infallible>>());

        (StatusCode::NOT_MODIFIED, headers, body).into_response()
    }

    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Counts every request to a resource as it arrives, before any fault applies.
///
/// This layer sits outside the fault middleware, so a request that a fault
/// answers or resets is counted like any other.
pub(crate) async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(name) = resource_name(req.uri().path()) {
        let conditional = req.headers().contains_key(header::IF_NONE_MATCH)
            || req.headers().contains_key(header::IF_MODIFIED_SINCE);

        state.stats.record_cache(name, |counters| {
            counters.requests += 1;
            if conditional {
                counters.conditional += 1;
            }
        });
    }

    next.run(req).await
}

/// `GET` and `HEAD /cache/resources/{name}`: the resource, or a 304.
pub(crate) async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let name = resource_name(path).unwrap_or_default();

    let Some(resource) = state.cache.get(name) else {
        let problem = Problem::not_found(path, format!("no cache resource is named {name}"));
        return uncompressed(problem.into_response());
    };

    if resource.is_not_modified(&headers) {
        debug!(name, %method, "cache resource not modified");
        state
            .stats
            .record_cache(name, |counters| counters.not_modified += 1);

        return uncompressed(resource.not_modified());
    }

    if method == Method::GET {
        state
            .stats
            .record_cache(name, |counters| counters.full += 1);
    }
    uncompressed(resource.full(&headers))
}

/// `POST`, `PUT`, `PATCH` and `DELETE /cache/resources/{name}`: changes nothing, answers.
///
/// The query can ask for `Location` and `Content-Location` headers and for
/// another status, which is what a cache's invalidation rules look at.
pub(crate) async fn update(uri: Uri, body: Body) -> Response {
    uncompressed(match answer_update(&uri, body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    })
}

async fn answer_update(uri: &Uri, body: Body) -> Result<Response, Problem> {
    let path = uri.path();
    let name = resource_name(path).unwrap_or_default();
    read_body(body, UPDATE_LIMIT, path).await?;

    let params = QueryParams::from_uri(uri)?;
    let status = match params.parse::<u16>("status", "a status from 200 to 599", path)? {
        None => StatusCode::OK,
        Some(code) => StatusCode::from_u16(code)
            .ok()
            .filter(|status| (200..=599).contains(&status.as_u16()))
            .ok_or_else(|| {
                Problem::bad_request(path, "`status` must be a status from 200 to 599")
            })?,
    };

    let mut response = if matches!(status.as_u16(), 204 | 205 | 304) {
        status.into_response()
    } else {
        let body = json!({ "updated": name }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };

    for (param, name) in [
        ("location", header::LOCATION),
        ("content_location", header::CONTENT_LOCATION),
    ] {
        if let Some(value) = params.get(param) {
            let value = HeaderValue::from_str(value).map_err(|_| {
                Problem::bad_request(path, format!("`{param}` cannot be sent as a header"))
            })?;
            response.headers_mut().insert(name, value);
        }
    }

    Ok(response)
}

/// `PUT /_control/cache/resources/{name}`: defines a resource or replaces it.
pub(crate) async fn define(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, Problem> {
    let path = uri.path();
    let name = path.strip_prefix(CONTROL_PREFIX).unwrap_or_default();

    let body = read_body(body, DEFINITION_LIMIT, path).await?;
    let resource = Resource::from_json(&body, path)?;

    info!(
        name,
        status = resource.status.as_u16(),
        "cache resource defined"
    );
    state.cache.define(name, resource);

    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /_control/cache/resources`: removes every resource; the counters stay.
pub(crate) async fn clear(State(state): State<AppState>) -> StatusCode {
    state.cache.clear();
    info!("cache resources removed");

    StatusCode::NO_CONTENT
}

/// The resource name in a `/cache/resources/{name}` path: one non-empty segment.
fn resource_name(path: &str) -> Option<&str> {
    path.strip_prefix(RESOURCE_PREFIX)
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

fn uncompressed(mut response: Response) -> Response {
    response.extensions_mut().insert(Uncompressed);
    response
}

/// Checks one scripted header, returning it ready to send or what is wrong with it.
fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;

    if FORBIDDEN_HEADERS.contains(&parsed.as_str()) {
        return Err(format!("`{name}` is set by the server itself"));
    }
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` cannot be sent as a header"))?;

    Ok((parsed, value))
}

/// Every value of a request header, joined with `", "`; empty when it is absent.
fn joined_values(request: &HeaderMap, name: &str) -> String {
    request
        .get_all(name.trim().to_ascii_lowercase().as_str())
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replaces each `{header:NAME}` in `template` with that request header's value.
///
/// An absent header gives the empty string; a `{header:` with no closing brace
/// is left as it is.
fn render_body(template: &str, request: &HeaderMap) -> String {
    const OPEN: &str = "{header:";
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;

    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            break;
        };

        rendered.push_str(&rest[..start]);
        rendered.push_str(&joined_values(request, &after[..end]));
        rest = &after[end + 1..];
    }

    rendered.push_str(rest);
    rendered
}

/// Whether an `If-None-Match` list matches `etag` by weak comparison.
///
/// `W/"x"` and `"x"` match each other; `*` matches any resource that has an etag.
fn if_none_match_matches(list: &str, etag: &str) -> bool {
    let etag = opaque_tag(etag);

    entity_tags(list)
        .into_iter()
        .any(|tag| tag == "*" || opaque_tag(tag) == etag)
}

/// The entity tags of a comma-separated list, as written.
///
/// A quoted tag may itself contain commas, so the list is read tag by tag
/// rather than split. Unquoted tokens are kept, to be lenient with scripts.
fn entity_tags(list: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = list;

    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return tags;
        }

        let prefix = if rest.starts_with("W/") { 2 } else { 0 };
        let tag = &rest[prefix..];
        let len = match tag.strip_prefix('"') {
            Some(quoted) => quoted.find('"').map_or(tag.len(), |end| end + 2),
            None => tag.find(',').unwrap_or(tag.len()),
        };

        tags.push(rest[..prefix + len].trim_end());
        rest = &tag[len..];
    }
}

/// An entity tag without its weakness marker, for weak comparison.
fn opaque_tag(tag: &str) -> &str {
    let tag = tag.trim();

    tag.strip_prefix("W/").unwrap_or(tag)
}

/// An HTTP-date (RFC 9110 5.6.7), kept only as precisely as ordering needs.
///
/// The fields are in order of significance, so the derived ordering is
/// chronological. All three formats are read; the weekday is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HttpDate {
    year: u32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl HttpDate {
    fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split_whitespace().collect();

        match parts.as_slice() {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            [weekday, day, month, year, time, "GMT"] if weekday.ends_with(',') => {
                Self::from_parts(year.parse().ok()?, month, day, time)
            }
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            [weekday, date, time, "GMT"] if weekday.ends_with(',') => {
                let mut date = date.split('-');
                let (day, month, year) = (date.next()?, date.next()?, date.next()?);
                if date.next().is_some() || year.len() != 2 {
                    return None;
                }
                // Two-digit years: 70 to 99 are the 1900s, the rest this century.
                let year: u32 = year.parse().ok()?;
                let year = if year >= 70 { 1900 + year } else { 2000 + year };
                Self::from_parts(year, month, day, time)
            }
            // asctime: Sun Nov  6 08:49:37 1994
            [_, month, day, time, year] => Self::from_parts(year.parse().ok()?, month, day, time),
            _ => None,
        }
    }

    fn from_parts(year: u32, month: &str, day: &str, time: &str) -> Option<Self> {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS.iter().position(|name| *name == month)? as u8 + 1;
        let day: u8 = day.parse().ok()?;

        let mut time = time.split(':').map(str::parse::<u8>);
        let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
        if time.next().is_some() {
            return None;
        }

        let valid = (1..=31).contains(&day) && hour < 24 && minute < 60 && second <= 60;
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn resource(json: &str) -> Resource {
        Resource::from_json(json.as_bytes(), "/_control/cache/resources/r").unwrap()
    }

    #[test]
    fn http_dates_parse_in_all_three_formats() {
        let expected = HttpDate {
            year: 1994,
            month: 11,
            day: 6,
            hour: 8,
            minute: 49,
            second: 37,
        };

        assert_eq!(
            HttpDate::parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(expected)
        );
        assert_eq!(
            HttpDate::parse("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(expected)
        );
        assert_eq!(HttpDate::parse("Sun Nov  6 08:49:37 1994"), Some(expected));
    }

    #[test]
    fn http_dates_order_chronologically_and_reject_nonsense() {
        let earlier = HttpDate::parse("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        let later = HttpDate::parse("Thu, 22 Oct 2026 00:00:00 GMT").unwrap();

        assert!(earlier < later);
        assert_eq!(HttpDate::parse("yesterday"), None);
        assert_eq!(HttpDate::parse("Wed, 21 Foo 2026 07:28:00 GMT"), None);
        assert_eq!(HttpDate::parse("Wed, 21 Oct 2026 25:28:00 GMT"), None);
        assert_eq!(HttpDate::parse("Wed, 21 Oct 2026 07:28:00 CET"), None);
    }

    #[test]
    fn entity_tags_are_read_one_by_one() {
        let tags = entity_tags(r#" "a", W/"b" ,"c,d",*, W/"" "#);

        assert_eq!(tags, [r#""a""#, r#"W/"b""#, r#""c,d""#, "*", r#"W/"""#]);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(if_none_match_matches(r#""v1""#, r#""v1""#));
        assert!(if_none_match_matches(r#"W/"v1""#, r#""v1""#));
        assert!(if_none_match_matches(r#""v1""#, r#"W/"v1""#));
        assert!(if_none_match_matches(r#""v0", "v1""#, r#""v1""#));
        assert!(if_none_match_matches("*", r#""v1""#));
        assert!(!if_none_match_matches(r#""v2""#, r#""v1""#));
        assert!(!if_none_match_matches(r#""v1,x""#, r#""v1""#));
    }

    #[test]
    fn if_none_match_decides_alone_when_present() {
        let resource = resource(
            r#"{"headers": {"etag": "\"v1\"", "last-modified": "Wed, 21 Oct 2026 07:28:00 GMT"}}"#,
        );
        let since = ("if-modified-since", "Thu, 22 Oct 2026 00:00:00 GMT");

        assert!(resource.is_not_modified(&request(&[since])));
        assert!(!resource.is_not_modified(&request(&[("if-none-match", "\"v0\""), since])));
        assert!(resource.is_not_modified(&request(&[("if-none-match", "\"v1\""), since])));
    }

    #[test]
    fn if_modified_since_compares_with_last_modified() {
        let resource =
            resource(r#"{"headers": {"last-modified": "Wed, 21 Oct 2026 07:28:00 GMT"}}"#);
        let since = |date| request(&[("if-modified-since", date)]);

        assert!(resource.is_not_modified(&since("Wed, 21 Oct 2026 07:28:00 GMT")));
        assert!(resource.is_not_modified(&since("Wed, 21 Oct 2026 07:28:01 GMT")));
        assert!(!resource.is_not_modified(&since("Wed, 21 Oct 2026 07:27:59 GMT")));
        assert!(!resource.is_not_modified(&since("not a date")));
        assert!(!resource.is_not_modified(&request(&[])));
    }

    #[test]
    fn without_validators_nothing_is_not_modified() {
        let resource = resource(r#"{"body": "x"}"#);

        assert!(!resource.is_not_modified(&request(&[("if-none-match", "*")])));
        assert!(!resource.is_not_modified(&request(&[(
            "if-modified-since",
            "Wed, 21 Oct 2026 07:28:00 GMT"
        )])));
    }

    #[test]
    fn placeholders_take_request_header_values() {
        let headers = request(&[("accept-language", "fr"), ("x-many", "a"), ("x-many", "b")]);

        let rendered = render_body(
            "{header:Accept-Language}|{header:x-missing}|{header:x-many}|{header:open",
            &headers,
        );

        assert_eq!(rendered, "fr||a, b|{header:open");
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let body = br#"{"status": 150, "headers": {"content-length": "3", "bad name": "x"},
                        "content_type": "a\nb"}"#;

        let problem = Resource::from_json(body, "/r").unwrap_err();
        let json = serde_json::to_value(&problem).unwrap();

        let fields: Vec<_> = json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fields, ["status", "headers", "headers", "content_type"]);
    }

    #[test]
    fn no_body_for_bodiless_statuses() {
        let problem = Resource::from_json(br#"{"status": 304, "body": "x"}"#, "/r").unwrap_err();

        assert_eq!(problem.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn resource_names_are_one_segment() {
        assert_eq!(resource_name("/cache/resources/a"), Some("a"));
        assert_eq!(resource_name("/cache/resources/"), None);
        assert_eq!(resource_name("/cache/resources/a/b"), None);
        assert_eq!(resource_name("/cache/other"), None);
    }
}
