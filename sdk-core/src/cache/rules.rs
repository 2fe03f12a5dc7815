//! The rules of RFC 9111 for a private cache, as pure functions.
//!
//! Nothing here does I/O or reads a clock: times come in as arguments, so every rule is tested
//! with exact numbers. Section numbers in comments refer to RFC 9111 unless they say otherwise.

use std::time::{Duration, SystemTime};

use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES, LAST_MODIFIED, PRAGMA, VARY};
use http::{HeaderMap, HeaderName};

/// The directives of a `Cache-Control` header that a private cache acts on (5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) immutable: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<u64>,
    /// `Some(None)` is `max-stale` without a value: any staleness is acceptable.
    pub(crate) max_stale: Option<Option<u64>>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
}

impl Directives {
    /// Reads every `Cache-Control` field of `headers`. Unknown directives are ignored and a
    /// malformed number ignores its directive, except for `max-age`, which then means zero
    /// (stale at once), as 4.2.1 asks of invalid freshness information.
    pub(crate) fn parse(headers: &HeaderMap) -> Directives {
        let mut directives = Directives::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name, Some(argument.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = argument.and_then(|argument| argument.parse::<u64>().ok());
                match name.trim().to_ascii_lowercase().as_str() {
                    "no-store" => directives.no_store = true,
                    "no-cache" => directives.no_cache = true,
                    "must-revalidate" | "proxy-revalidate" => directives.must_revalidate = true,
                    "immutable" => directives.immutable = true,
                    "only-if-cached" => directives.only_if_cached = true,
                    "max-age" => directives.max_age = Some(seconds.unwrap_or(0)),
                    "max-stale" => directives.max_stale = Some(seconds),
                    "min-fresh" => directives.min_fresh = seconds,
                    "stale-while-revalidate" => directives.stale_while_revalidate = seconds,
                    "stale-if-error" => directives.stale_if_error = seconds,
                    _ => {}
                }
            }
        }
        // HTTP/1.0's `Pragma: no-cache` counts only where Cache-Control is absent (5.4).
        if headers.get(CACHE_CONTROL).is_none()
            && headers.get_all(PRAGMA).iter().any(|value| {
                value
                    .to_str()
                    .is_ok_and(|value| value.to_ascii_lowercase().contains("no-cache"))
            })
        {
            directives.no_cache = true;
        }
        directives
    }
}

/// Status codes whose responses may be stored and given a heuristic freshness (RFC 9110 15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether a response to a GET may be stored (3).
pub(crate) fn is_storable(status: u16, request: &Directives, response: &HeaderMap) -> bool {
    let directives = Directives::parse(response);
    if request.no_store || directives.no_store {
        return false;
    }
    // Partial content needs range support that this cache does not have; 304s only update.
    if status == 206 || status == 304 || !(200..600).contains(&status) {
        return false;
    }
    if vary_names(response).is_none() {
        // `Vary: *` never matches a later request (4.1), so storing it is pointless.
        return false;
    }
    let explicit = directives.max_age.is_some() || response.contains_key(EXPIRES);
    explicit || heuristically_cacheable(status)
}

/// When a response was received and what the clock said then: the inputs of the age
/// calculation (4.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) request_time: SystemTime,
    pub(crate) response_time: SystemTime,
}

/// The age of a stored response at `now` (4.2.3).
pub(crate) fn current_age(headers: &HeaderMap, timing: Timing, now: SystemTime) -> Duration {
    let date = header_date(headers, DATE).unwrap_or(timing.response_time);
    let age_value = headers
        .get(AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);

    let apparent_age = timing
        .response_time
        .duration_since(date)
        .unwrap_or(Duration::ZERO);
    let response_delay = timing
        .response_time
        .duration_since(timing.request_time)
        .unwrap_or(Duration::ZERO);
    let corrected_age_value = age_value + response_delay;
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now
        .duration_since(timing.response_time)
        .unwrap_or(Duration::ZERO);
    corrected_initial_age + resident_time
}

/// How long a response stays fresh (4.2.1), with the heuristic of 4.2.2 (a tenth of the time
/// since `Last-Modified`, at most a day) where no explicit lifetime is given.
pub(crate) fn freshness_lifetime(status: u16, headers: &HeaderMap) -> Duration {
    let directives = Directives::parse(headers);
    if let Some(max_age) = directives.max_age {
        return Duration::from_secs(max_age);
    }

    let date = header_date(headers, DATE);
    if headers.contains_key(EXPIRES) {
        // An invalid Expires, such as "0", means already expired.
        return match (header_date(headers, EXPIRES), date) {
            (Some(expires), Some(date)) => expires.duration_since(date).unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        };
    }

    match (
        heuristically_cacheable(status),
        header_date(headers, LAST_MODIFIED),
        date,
    ) {
        (true, Some(modified), Some(date)) => {
            let since = date.duration_since(modified).unwrap_or(Duration::ZERO);
            (since / 10).min(Duration::from_secs(24 * 60 * 60))
        }
        _ => Duration::ZERO,
    }
}

/// What the cache may do with a stored response for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Serve it without contacting the server.
    Fresh,
    /// Serve it now, and revalidate in the background (RFC 5861 stale-while-revalidate).
    StaleWhileRevalidate,
    /// Validate it with the server before use.
    Revalidate,
}

/// The freshness of a stored response at the moment of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) age: Duration,
    pub(crate) lifetime: Duration,
}

impl Freshness {
    pub(crate) fn is_fresh(&self) -> bool {
        self.lifetime > self.age
    }

    /// How long ago it went stale; zero while fresh.
    pub(crate) fn staleness(&self) -> Duration {
        self.age.saturating_sub(self.lifetime)
    }
}

/// Decides whether a stored response can satisfy a request as it is (4.2, 5.2.1, RFC 5861,
/// RFC 8246). `always_revalidate` is the app's per-request policy.
pub(crate) fn decide(
    request: &Directives,
    stored: &HeaderMap,
    freshness: Freshness,
    always_revalidate: bool,
) -> Use {
    let response = Directives::parse(stored);
    let age = freshness.age.as_secs();
    let fresh = freshness.is_fresh();

    // An immutable response is not revalidated while fresh, even on a reload (RFC 8246).
    if fresh && response.immutable && !response.no_cache {
        return Use::Fresh;
    }
    if response.no_cache || request.no_cache || always_revalidate {
        return Use::Revalidate;
    }
    if request.max_age.is_some_and(|max_age| age > max_age) {
        return Use::Revalidate;
    }
    if let Some(min_fresh) = request.min_fresh {
        let remaining = freshness.lifetime.saturating_sub(freshness.age).as_secs();
        if remaining < min_fresh {
            return Use::Revalidate;
        }
    }
    if fresh {
        return Use::Fresh;
    }

    let staleness = freshness.staleness().as_secs();
    if !response.must_revalidate {
        match request.max_stale {
            Some(None) => return Use::Fresh,
            Some(Some(limit)) if staleness <= limit => return Use::Fresh,
            _ => {}
        }
        if response
            .stale_while_revalidate
            .is_some_and(|window| staleness <= window)
        {
            return Use::StaleWhileRevalidate;
        }
    }
    Use::Revalidate
}

/// Whether a stale response may be served because the server cannot be reached or failed
/// (4.2.4, and RFC 5861 stale-if-error). `disconnected` is true when the device is offline or
/// the request failed for a transport reason; otherwise the failure was a 5xx.
pub(crate) fn may_serve_stale(
    stored: &HeaderMap,
    freshness: Freshness,
    disconnected: bool,
) -> bool {
    let response = Directives::parse(stored);
    if response.no_cache || response.must_revalidate {
        return false;
    }
    if disconnected {
        return true;
    }
    response
        .stale_if_error
        .is_some_and(|window| freshness.staleness().as_secs() <= window)
}

/// The request header names a response varies on, lowercased; `None` for `Vary: *`.
pub(crate) fn vary_names(response: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in response.get_all(VARY) {
        for name in value.to_str().unwrap_or_default().split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return None;
            }
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    Some(names)
}

/// The request's values of the varied headers, normalised for comparison (4.1): values of a
/// repeated field joined, whitespace around commas removed.
pub(crate) fn vary_key(names: &[String], request: &HeaderMap) -> String {
    let mut key = String::new();
    for name in names {
        let values: Vec<String> = request
            .get_all(name.as_str())
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|part| part.trim().to_owned())
            .collect();
        key.push_str(name);
        key.push('=');
        key.push_str(&values.join(","));
        key.push('\n');
    }
    key
}

/// Headers of a 304 that must not replace the stored ones (3.2).
pub(crate) fn updates_stored_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-length" | "content-encoding" | "transfer-encoding" | "content-range" | "trailer"
    )
}

fn header_date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const T0: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

    fn at(offset: u64) -> SystemTime {
        httpdate::parse_http_date(T0).unwrap() + Duration::from_secs(offset)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn timing(request: u64, response: u64) -> Timing {
        Timing {
            request_time: at(request),
            response_time: at(response),
        }
    }

    fn fresh_for(lifetime: u64, age: u64) -> Freshness {
        Freshness {
            age: Duration::from_secs(age),
            lifetime: Duration::from_secs(lifetime),
        }
    }

    #[test]
    fn test_directives_parse_case_quotes_and_repeats() {
        let parsed = Directives::parse(&headers(&[
            ("cache-control", "Max-Age=\"60\", no-cache"),
            (
                "cache-control",
                "stale-while-revalidate=30, IMMUTABLE, max-stale",
            ),
        ]));

        assert_eq!(parsed.max_age, Some(60));
        assert!(parsed.no_cache && parsed.immutable);
        assert_eq!(parsed.stale_while_revalidate, Some(30));
        assert_eq!(parsed.max_stale, Some(None));
    }

    #[test]
    fn test_invalid_max_age_means_stale_at_once() {
        let parsed = Directives::parse(&headers(&[("cache-control", "max-age=soon")]));

        assert_eq!(parsed.max_age, Some(0));
    }

    #[test]
    fn test_pragma_no_cache_only_without_cache_control() {
        assert!(Directives::parse(&headers(&[("pragma", "no-cache")])).no_cache);
        assert!(
            !Directives::parse(&headers(&[
                ("pragma", "no-cache"),
                ("cache-control", "max-age=5")
            ]))
            .no_cache
        );
    }

    #[test]
    fn test_storable_statuses_and_no_store() {
        let none = Directives::default();
        let plain = headers(&[]);

        assert!(is_storable(200, &none, &plain));
        assert!(is_storable(404, &none, &plain));
        assert!(
            !is_storable(201, &none, &plain),
            "201 needs explicit freshness"
        );
        assert!(is_storable(
            201,
            &none,
            &headers(&[("cache-control", "max-age=10")])
        ));
        assert!(!is_storable(
            200,
            &none,
            &headers(&[("cache-control", "no-store")])
        ));
        assert!(!is_storable(
            206,
            &none,
            &headers(&[("cache-control", "max-age=10")])
        ));
        assert!(!is_storable(
            200,
            &Directives {
                no_store: true,
                ..none.clone()
            },
            &plain
        ));
        assert!(!is_storable(200, &none, &headers(&[("vary", "accept, *")])));
    }

    #[test]
    fn test_age_follows_the_rfc_calculation() {
        // Sent at 0, answered at 2 with Date 1 and Age 10; read at 30.
        let stored = headers(&[("date", &httpdate::fmt_http_date(at(1))), ("age", "10")]);

        let age = current_age(&stored, timing(0, 2), at(30));

        // corrected_initial_age = max(apparent 1, 10 + delay 2) = 12; resident 28.
        assert_eq!(age, Duration::from_secs(40));
    }

    #[test]
    fn test_age_without_date_uses_the_response_time() {
        assert_eq!(
            current_age(&headers(&[]), timing(0, 0), at(7)),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn test_freshness_from_max_age_expires_and_heuristics() {
        let date = httpdate::fmt_http_date(at(0));
        let expires = httpdate::fmt_http_date(at(300));
        let modified = httpdate::fmt_http_date(at(0) - Duration::from_secs(1000));

        let max_age = headers(&[
            ("cache-control", "max-age=60"),
            ("expires", &expires),
            ("date", &date),
        ]);
        assert_eq!(freshness_lifetime(200, &max_age), Duration::from_secs(60));

        let by_expires = headers(&[("expires", &expires), ("date", &date)]);
        assert_eq!(
            freshness_lifetime(200, &by_expires),
            Duration::from_secs(300)
        );

        let invalid = headers(&[("expires", "0"), ("date", &date)]);
        assert_eq!(freshness_lifetime(200, &invalid), Duration::ZERO);

        let heuristic = headers(&[("last-modified", &modified), ("date", &date)]);
        assert_eq!(
            freshness_lifetime(200, &heuristic),
            Duration::from_secs(100)
        );
        assert_eq!(freshness_lifetime(201, &heuristic), Duration::ZERO);
    }

    #[test]
    fn test_decide_fresh_stale_and_request_directives() {
        let none = Directives::default();
        let plain = headers(&[]);

        assert_eq!(decide(&none, &plain, fresh_for(60, 10), false), Use::Fresh);
        assert_eq!(
            decide(&none, &plain, fresh_for(60, 61), false),
            Use::Revalidate
        );
        assert_eq!(
            decide(&none, &plain, fresh_for(60, 10), true),
            Use::Revalidate
        );

        let max_age = Directives {
            max_age: Some(5),
            ..none.clone()
        };
        assert_eq!(
            decide(&max_age, &plain, fresh_for(60, 10), false),
            Use::Revalidate
        );

        let min_fresh = Directives {
            min_fresh: Some(55),
            ..none.clone()
        };
        assert_eq!(
            decide(&min_fresh, &plain, fresh_for(60, 10), false),
            Use::Revalidate
        );

        let max_stale = Directives {
            max_stale: Some(Some(20)),
            ..none.clone()
        };
        assert_eq!(
            decide(&max_stale, &plain, fresh_for(60, 70), false),
            Use::Fresh
        );
        assert_eq!(
            decide(&max_stale, &plain, fresh_for(60, 90), false),
            Use::Revalidate
        );
    }

    #[test]
    fn test_decide_response_directives() {
        let none = Directives::default();
        let no_cache = headers(&[("cache-control", "max-age=60, no-cache")]);
        let immutable = headers(&[("cache-control", "max-age=60, immutable")]);
        let must = headers(&[("cache-control", "max-age=60, must-revalidate")]);
        let swr = headers(&[("cache-control", "max-age=60, stale-while-revalidate=30")]);
        let any_stale = Directives {
            max_stale: Some(None),
            ..none.clone()
        };

        assert_eq!(
            decide(&none, &no_cache, fresh_for(60, 1), false),
            Use::Revalidate
        );
        assert_eq!(
            decide(&none, &immutable, fresh_for(60, 1), true),
            Use::Fresh
        );
        assert_eq!(
            decide(&none, &immutable, fresh_for(60, 61), true),
            Use::Revalidate
        );
        assert_eq!(
            decide(&any_stale, &must, fresh_for(60, 61), false),
            Use::Revalidate
        );
        assert_eq!(
            decide(&none, &swr, fresh_for(60, 80), false),
            Use::StaleWhileRevalidate
        );
        assert_eq!(
            decide(&none, &swr, fresh_for(60, 95), false),
            Use::Revalidate
        );
    }

    #[test]
    fn test_stale_may_be_served_when_disconnected_or_within_stale_if_error() {
        let plain = headers(&[]);
        let must = headers(&[("cache-control", "must-revalidate")]);
        let no_cache = headers(&[("cache-control", "no-cache")]);
        let sie = headers(&[("cache-control", "max-age=10, stale-if-error=60")]);

        assert!(may_serve_stale(&plain, fresh_for(10, 500), true));
        assert!(!may_serve_stale(&plain, fresh_for(10, 500), false));
        assert!(!may_serve_stale(&must, fresh_for(10, 500), true));
        assert!(!may_serve_stale(&no_cache, fresh_for(10, 500), true));
        assert!(may_serve_stale(&sie, fresh_for(10, 60), false));
        assert!(!may_serve_stale(&sie, fresh_for(10, 80), false));
    }

    #[test]
    fn test_vary_names_and_keys() {
        let response = headers(&[
            ("vary", "Accept-Language, accept"),
            ("vary", "accept-language"),
        ]);
        let names = vary_names(&response).unwrap();
        assert_eq!(names, ["accept", "accept-language"]);
        assert_eq!(vary_names(&headers(&[("vary", "*")])), None);

        let english = headers(&[("accept-language", "en"), ("accept", "a ,  b")]);
        let spaced = headers(&[("accept-language", "en"), ("accept", "a, b")]);
        let german = headers(&[("accept-language", "de"), ("accept", "a,b")]);
        assert_eq!(vary_key(&names, &english), vary_key(&names, &spaced));
        assert_ne!(vary_key(&names, &english), vary_key(&names, &german));
    }
}
