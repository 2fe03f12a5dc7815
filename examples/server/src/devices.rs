//! The device registry: where an app's installations register their push tokens.
//!
//! Each installation of the app names itself with an id it made up once (the
//! SDK uses a random UUID) and keeps one registration here:
//!
//! - `PUT /devices/{installation_id}` creates or replaces it, for the user
//!   whose bearer token comes with the request. A device registered by another
//!   user moves to the caller: a phone belongs to whoever signed in on it last.
//!   A token is registered once: if another installation held the same
//!   platform and token, that older registration is dropped.
//! - `GET /devices/{installation_id}` shows it to its owner, without the token.
//! - `DELETE /devices/{installation_id}` removes it. With a bearer token only
//!   the owner may; without one, knowing the installation id is enough, so that
//!   a device can still unregister after its user signed out (the id is 122
//!   random bits that only the device and this server know).
//!
//! The token is the one piece of personal data here. It is stored because
//! delivering a push needs it, but it never appears in a response or a log,
//! except in the test control that lists registrations.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::app::{AppState, read_body};
use crate::oauth::now_ms;
use crate::oauth::userinfo::{User, authenticate, require_user};
use crate::problem::{FieldError, Problem};

/// The devices table, created with the rest of the schema.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS devices (
        installation_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        token TEXT NOT NULL,
        app_version TEXT,
        locale TEXT,
        opt_in INTEGER NOT NULL,
        username TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );

    CREATE UNIQUE INDEX IF NOT EXISTS devices_by_token ON devices (platform, token);
";

/// The largest registration body accepted.
const BODY_LIMIT: usize = 16 * 1024;

/// The longest token accepted, in characters. FCM tokens are about 160, APNs
/// tokens 64 hex digits; UnifiedPush endpoints are URLs.
const MAX_TOKEN_LEN: usize = 4096;

/// The longest app version or locale accepted.
const MAX_LABEL_LEN: usize = 64;

/// The push services a token can come from.
const PLATFORMS: &[&str] = &["apns", "fcm", "unifiedpush"];

/// A registration as the owner sees it: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct DeviceBody {
    installation_id: String,
    platform: String,
    app_version: Option<String>,
    locale: Option<String>,
    opt_in: bool,
    user: String,
}

/// A registration as the test control lists it, token included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Device {
    installation_id: String,
    platform: String,
    token: String,
    app_version: Option<String>,
    locale: Option<String>,
    opt_in: bool,
    user: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl Device {
    fn public(self) -> DeviceBody {
        DeviceBody {
            installation_id: self.installation_id,
            platform: self.platform,
            app_version: self.app_version,
            locale: self.locale,
            opt_in: self.opt_in,
            user: self.user,
        }
    }
}

/// The fields a client sends with `PUT`.
#[derive(Debug, Default, Deserialize)]
struct DeviceFields {
    platform: Option<String>,
    token: Option<String>,
    app_version: Option<String>,
    locale: Option<String>,
    opt_in: Option<bool>,
}

/// A registration that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    platform: String,
    token: String,
    app_version: Option<String>,
    locale: Option<String>,
    opt_in: bool,
}

/// `PUT /devices/{installation_id}`: registers the device for the caller.
///
/// 201 when the installation was new, 200 when it replaced a registration.
pub(crate) async fn register(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_owned();
    state.stats.record_push(|push| push.registrations += 1);
    let user = match require_user(&state, &headers, &path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let installation_id = match installation_id(&path) {
        Ok(id) => id.to_owned(),
        Err(problem) => return problem.into_response(),
    };
    let body = match read_body(body, BODY_LIMIT, &path).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let registration = match parse_registration(&body, &path) {
        Ok(registration) => registration,
        Err(problem) => return problem.into_response(),
    };

    let now = now_ms();
    let owner = user.username.clone();
    let stored = state
        .db
        .run(move |conn| Ok(upsert(conn, &installation_id, &registration, &owner, now)?))
        .await;

    match stored {
        Ok((device, created)) => {
            info!(
                installation = %short(&device.installation_id),
                platform = %device.platform,
                user = %device.user,
                opt_in = device.opt_in,
                created,
                "device registered"
            );
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(device.public())).into_response()
        }
        Err(err) => err.into_problem(&path).into_response(),
    }
}

/// `GET /devices/{installation_id}`: the caller's registration, or 404.
///
/// A device registered by another user is a 404 too: its existence is not the
/// caller's business.
pub(crate) async fn fetch(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    state.stats.record_push(|push| push.verifications += 1);
    let user = match require_user(&state, &headers, &path).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let installation_id = match installation_id(&path) {
        Ok(id) => id.to_owned(),
        Err(problem) => return problem.into_response(),
    };

    let found = state
        .db
        .run(move |conn| Ok(find(conn, &installation_id)?))
        .await;

    match found {
        Ok(Some(device)) if device.user == user.username => Json(device.public()).into_response(),
        Ok(_) => no_such_device(&path).into_response(),
        Err(err) => err.into_problem(&path).into_response(),
    }
}

/// `DELETE /devices/{installation_id}`: 204, or 404 when there was nothing to delete.
///
/// With a bearer token, only the owner's registration is deleted; without
/// credentials, the installation id alone is enough.
pub(crate) async fn unregister(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    state.stats.record_push(|push| push.unregistrations += 1);
    let caller = match authenticate(&state, &headers, &path).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if caller.is_none() {
        state
            .stats
            .record_push(|push| push.anonymous_unregistrations += 1);
    }
    let installation_id = match installation_id(&path) {
        Ok(id) => id.to_owned(),
        Err(problem) => return problem.into_response(),
    };

    let id = installation_id.clone();
    let owner = caller.as_ref().map(|user: &User| user.username.clone());
    let deleted = state
        .db
        .run(move |conn| Ok(delete(conn, &id, owner.as_deref())?))
        .await;

    match deleted {
        Ok(true) => {
            info!(
                installation = %short(&installation_id),
                authenticated = caller.is_some(),
                "device unregistered"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => no_such_device(&path).into_response(),
        Err(err) => err.into_problem(&path).into_response(),
    }
}

/// `GET /_control/devices`: every registration, tokens included, oldest first.
pub(crate) async fn control_list(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<Vec<Device>>, Problem> {
    let devices = state
        .db
        .run(|conn| Ok(list(conn)?))
        .await
        .map_err(|err| err.into_problem(uri.path()))?;

    Ok(Json(devices))
}

/// `DELETE /_control/devices/{installation_id}`: drops a registration as a push
/// provider's feedback would after a failed delivery. 204, or 404.
pub(crate) async fn control_delete(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let Some(installation_id) = path.strip_prefix("/_control/devices/").map(str::to_owned) else {
        return no_such_device(&path).into_response();
    };

    let id = installation_id.clone();
    let deleted = state.db.run(move |conn| Ok(delete(conn, &id, None)?)).await;

    match deleted {
        Ok(true) => {
            state.stats.record_push(|push| push.provider_deletions += 1);
            info!(installation = %short(&installation_id), "device dropped by the provider");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => no_such_device(&path).into_response(),
        Err(err) => err.into_problem(&path).into_response(),
    }
}

/// How many devices are registered.
pub(crate) fn count(conn: &Connection) -> rusqlite::Result<u64> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM devices", [], |row| row.get(0))?;

    Ok(count.unsigned_abs())
}

/// Deletes every registration.
pub(crate) fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM devices", [])?;

    Ok(())
}

/// Takes the installation id out of the path: 1 to 128 letters, digits, `-`, `_` or `.`.
fn installation_id(path: &str) -> Result<&str, Problem> {
    let id = path.strip_prefix("/devices/").unwrap_or_default();
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));

    if valid {
        Ok(id)
    } else {
        Err(Problem::bad_request(
            path,
            "an installation id is 1 to 128 letters, digits, '-', '_' or '.'",
        ))
    }
}

/// Checks a `PUT` body: its shape (400), then its fields (422).
fn parse_registration(body: &[u8], instance: &str) -> Result<Registration, Problem> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| Problem::malformed_body(instance, format!("the body is not JSON: {err}")))?;
    if !value.is_object() {
        return Err(Problem::malformed_body(
            instance,
            "the body must be a JSON object",
        ));
    }
    let fields: DeviceFields = serde_json::from_value(value)
        .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;

    let mut errors = Vec::new();
    match fields.platform.as_deref() {
        None => errors.push(FieldError::new("platform", "is required")),
        Some(platform) if !PLATFORMS.contains(&platform) => errors.push(FieldError::new(
            "platform",
            "must be one of apns, fcm, unifiedpush",
        )),
        Some(_) => {}
    }
    match (fields.token.as_deref(), fields.platform.as_deref()) {
        (None, _) => errors.push(FieldError::new("token", "is required")),
        (Some(token), platform) => {
            if let Err(message) = check_token(token, platform) {
                errors.push(FieldError::new("token", message));
            }
        }
    }
    for (field, value) in [
        ("app_version", &fields.app_version),
        ("locale", &fields.locale),
    ] {
        if let Some(value) = value
            && (value.trim().is_empty() || value.len() > MAX_LABEL_LEN)
        {
            let message = format!("must be 1 to {MAX_LABEL_LEN} characters when present");
            errors.push(FieldError::new(field, message));
        }
    }
    if fields.opt_in.is_none() {
        errors.push(FieldError::new("opt_in", "is required"));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(instance, errors));
    }

    Ok(Registration {
        platform: fields.platform.unwrap_or_default(),
        token: fields.token.unwrap_or_default(),
        app_version: fields.app_version,
        locale: fields.locale,
        opt_in: fields.opt_in.unwrap_or_default(),
    })
}

/// Checks a token's form for its platform: APNs tokens are hex digits,
/// UnifiedPush tokens are HTTP(S) endpoint URLs, FCM tokens are opaque.
fn check_token(token: &str, platform: Option<&str>) -> Result<(), &'static str> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_whitespace) {
        return Err("must be 1 to 4096 characters without spaces");
    }

    match platform {
        Some("apns")
            if !token.len().is_multiple_of(2) || !token.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Err("an APNs token must be the device token in hex")
        }
        Some("unifiedpush") if !(token.starts_with("https://") || token.starts_with("http://")) => {
            Err("a UnifiedPush token must be the endpoint URL")
        }
        _ => Ok(()),
    }
}

/// Creates or replaces a registration for `owner`; also says whether it was new.
fn upsert(
    conn: &mut Connection,
    installation_id: &str,
    registration: &Registration,
    owner: &str,
    now: i64,
) -> rusqlite::Result<(Device, bool)> {
    let tx = conn.transaction()?;

    // The token moved here from another installation (a reinstall, or a
    // device whose local state was lost): that one will never receive it again.
    tx.execute(
        "DELETE FROM devices WHERE platform = ?1 AND token = ?2 AND installation_id != ?3",
        params![registration.platform, registration.token, installation_id],
    )?;
    let created = find(&tx, installation_id)?.is_none();
    tx.execute(
        "INSERT INTO devices (installation_id, platform, token, app_version, locale, opt_in,
                              username, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (installation_id) DO UPDATE SET
             platform = excluded.platform, token = excluded.token,
             app_version = excluded.app_version, locale = excluded.locale,
             opt_in = excluded.opt_in, username = excluded.username,
             updated_at = excluded.updated_at",
        params![
            installation_id,
            registration.platform,
            registration.token,
            registration.app_version,
            registration.locale,
            registration.opt_in,
            owner,
            now
        ],
    )?;
    let device = find(&tx, installation_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    tx.commit()?;

    Ok((device, created))
}

/// Deletes a registration, only if `owner` holds it when one is given.
fn delete(conn: &Connection, installation_id: &str, owner: Option<&str>) -> rusqlite::Result<bool> {
    let deleted = match owner {
        Some(owner) => conn.execute(
            "DELETE FROM devices WHERE installation_id = ?1 AND username = ?2",
            params![installation_id, owner],
        )?,
        None => conn.execute(
            "DELETE FROM devices WHERE installation_id = ?1",
            [installation_id],
        )?,
    };

    Ok(deleted > 0)
}

fn find(conn: &Connection, installation_id: &str) -> rusqlite::Result<Option<Device>> {
    conn.query_row(
        &format!("{SELECT_DEVICE} WHERE installation_id = ?1"),
        [installation_id],
        device_from_row,
    )
    .optional()
}

fn list(conn: &Connection) -> rusqlite::Result<Vec<Device>> {
    let mut statement = conn.prepare(&format!(
        "{SELECT_DEVICE} ORDER BY created_at, installation_id"
    ))?;
    let rows = statement.query_map([], device_from_row)?;

    rows.collect()
}

const SELECT_DEVICE: &str = "SELECT installation_id, platform, token, app_version, locale, \
                             opt_in, username, created_at, updated_at FROM devices";

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        installation_id: row.get(0)?,
        platform: row.get(1)?,
        token: row.get(2)?,
        app_version: row.get(3)?,
        locale: row.get(4)?,
        opt_in: row.get(5)?,
        user: row.get(6)?,
        created_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
    })
}

fn no_such_device(path: &str) -> Problem {
    Problem::not_found(path, "there is no such device registration")
}

/// The start of an installation id, enough to follow one device through the logs.
fn short(installation_id: &str) -> &str {
    installation_id.get(..8).unwrap_or(installation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn fcm(token: &str) -> Registration {
        Registration {
            platform: "fcm".into(),
            token: token.into(),
            app_version: Some("1.0".into()),
            locale: None,
            opt_in: true,
        }
    }

    #[test]
    fn installation_ids_are_unreserved_characters() {
        assert_eq!(
            installation_id("/devices/a1-b2_c3.d4").unwrap(),
            "a1-b2_c3.d4"
        );
        assert!(installation_id("/devices/").is_err());
        assert!(installation_id("/devices/a%20b").is_err());
        assert!(installation_id(&format!("/devices/{}", "a".repeat(129))).is_err());
    }

    #[test]
    fn bodies_are_checked_for_shape_then_fields() {
        let malformed = parse_registration(br#"{"opt_in": "yes"}"#, "/devices/x").unwrap_err();
        let invalid = parse_registration(br#"{"platform": "sms"}"#, "/devices/x").unwrap_err();

        assert_eq!(malformed.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(invalid.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
        let fields = serde_json::to_value(invalid).unwrap()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        assert_eq!(fields, ["platform", "token", "opt_in"]);
    }

    #[test]
    fn tokens_are_checked_for_their_platform() {
        assert!(check_token("0a1B", Some("apns")).is_ok());
        assert!(check_token("0a1", Some("apns")).is_err());
        assert!(check_token("xyz!", Some("apns")).is_err());
        assert!(check_token("https://up.example/abc", Some("unifiedpush")).is_ok());
        assert!(check_token("abc", Some("unifiedpush")).is_err());
        assert!(check_token("anything:goes", Some("fcm")).is_ok());
        assert!(check_token("with space", Some("fcm")).is_err());
        assert!(check_token("", Some("fcm")).is_err());
    }

    #[test]
    fn a_put_creates_then_replaces_and_moves_ownership() {
        let mut conn = conn();

        let (first, created) = upsert(&mut conn, "i1", &fcm("t1"), "alice", 1).unwrap();
        let (second, created_again) = upsert(&mut conn, "i1", &fcm("t2"), "bob", 2).unwrap();

        assert!(created && !created_again);
        assert_eq!((first.user.as_str(), first.token.as_str()), ("alice", "t1"));
        assert_eq!(second.user, "bob");
        assert_eq!(second.token, "t2");
        assert_eq!((second.created_at_ms, second.updated_at_ms), (1, 2));
        assert_eq!(count(&conn).unwrap(), 1);
    }

    #[test]
    fn a_token_is_registered_to_one_installation() {
        let mut conn = conn();
        upsert(&mut conn, "old", &fcm("t"), "alice", 1).unwrap();

        upsert(&mut conn, "new", &fcm("t"), "alice", 2).unwrap();

        let ids: Vec<_> = list(&conn)
            .unwrap()
            .into_iter()
            .map(|device| device.installation_id)
            .collect();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn deletes_respect_the_owner_when_one_is_given() {
        let mut conn = conn();
        upsert(&mut conn, "i1", &fcm("t"), "alice", 1).unwrap();

        assert!(!delete(&conn, "i1", Some("bob")).unwrap());
        assert!(delete(&conn, "i1", None).unwrap());
        assert!(!delete(&conn, "i1", None).unwrap());
    }
}
