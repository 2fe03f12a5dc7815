//! Grants, tokens, codes and device codes in SQLite.
//!
//! Every function here takes a connection (or transaction) and the current
//! time, and does no other I/O, so the rules of each grant can be tested with
//! a fixed clock. Secrets arrive already hashed: the tables hold digests only.
//!
//! The outcome of a token request is an [`Exchange`]: tokens, a refusal in
//! OAuth terms, or detected refresh-token reuse (which has already revoked the
//! grant by the time it is returned).

use rusqlite::{Connection, OptionalExtension, params};

use super::error::ErrorCode;
use super::{Secret, Settings, is_subscope, secs_to_ms, verifier_matches};
use crate::db::DbError;

/// The OAuth tables, created with the rest of the schema.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS oauth_grants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        username TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );

    CREATE TABLE IF NOT EXISTS oauth_tokens (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
        grant_id INTEGER NOT NULL REFERENCES oauth_grants (id),
        scope TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        revoked_at INTEGER
    );

    CREATE INDEX IF NOT EXISTS oauth_tokens_by_grant ON oauth_tokens (grant_id);

    CREATE TABLE IF NOT EXISTS oauth_codes (
        hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        username TEXT NOT NULL,
        scope TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        grant_id INTEGER REFERENCES oauth_grants (id)
    );

    CREATE TABLE IF NOT EXISTS oauth_device_codes (
        hash TEXT PRIMARY KEY,
        user_code_hash TEXT NOT NULL UNIQUE,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        interval_secs INTEGER NOT NULL,
        last_polled_at INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
        username TEXT
    );
";

/// How much earlier than `interval` a device poll may arrive before it is
/// "too fast": network jitter alone must not earn a client a `slow_down`.
const POLL_GRACE_MS: i64 = 100;

/// How much a `slow_down` adds to a device code's interval (RFC 8628 3.5).
const SLOW_DOWN_STEP_SECS: i64 = 5;

/// Deletes all OAuth state and restarts grant ids at 1.
pub(crate) fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DELETE FROM oauth_tokens;
         DELETE FROM oauth_codes;
         DELETE FROM oauth_device_codes;
         DELETE FROM oauth_grants;
         DELETE FROM sqlite_sequence WHERE name = 'oauth_grants';",
    )
}

/// Tokens just issued, with the values the client gets to see once.
#[derive(Debug)]
pub(crate) struct Issued {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub scope: String,
    pub expires_in: u64,
    pub grant_id: i64,
}

/// The outcome of a token request.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// New tokens.
    Issued(Issued),

    /// Refused with this error; nothing changed but bookkeeping.
    Refused {
        code: ErrorCode,
        reason: &'static str,
    },

    /// A rotated refresh token came back: its grant is now revoked.
    ReuseDetected { grant_id: i64 },
}

impl Exchange {
    fn refused(code: ErrorCode, reason: &'static str) -> Self {
        Self::Refused { code, reason }
    }

    fn invalid_grant(reason: &'static str) -> Self {
        Self::refused(ErrorCode::InvalidGrant, reason)
    }
}

/// Starts a grant: `username` authorized `client_id` for `scope`.
pub(crate) fn create_grant(
    conn: &Connection,
    client_id: &str,
    username: &str,
    scope: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO oauth_grants (client_id, username, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![client_id, username, scope, now],
    )?;

    Ok(conn.last_insert_rowid())
}

/// Issues a new access token and refresh token under a grant.
pub(crate) fn issue_tokens(
    conn: &Connection,
    grant_id: i64,
    scope: &str,
    settings: &Settings,
    now: i64,
) -> rusqlite::Result<Issued> {
    let access_token = Secret::generate();
    let refresh_token = Secret::generate();

    let insert = "INSERT INTO oauth_tokens (hash, kind, grant_id, scope, expires_at)
                  VALUES (?1, ?2, ?3, ?4, ?5)";
    let access_expiry = now.saturating_add(secs_to_ms(settings.access_token_ttl_secs));
    let refresh_expiry = now.saturating_add(secs_to_ms(settings.refresh_token_ttl_secs));
    conn.execute(
        insert,
        params![
            access_token.digest(),
            "access",
            grant_id,
            scope,
            access_expiry
        ],
    )?;
    conn.execute(
        insert,
        params![
            refresh_token.digest(),
            "refresh",
            grant_id,
            scope,
            refresh_expiry
        ],
    )?;

    Ok(Issued {
        access_token,
        refresh_token,
        scope: scope.to_owned(),
        expires_in: settings.access_token_ttl_secs,
        grant_id,
    })
}

/// Revokes a grant and every token issued under it; false if it already was.
pub(crate) fn revoke_grant(conn: &Connection, grant_id: i64, now: i64) -> rusqlite::Result<bool> {
    let revoked = conn.execute(
        "UPDATE oauth_grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    conn.execute(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;

    Ok(revoked > 0)
}

/// A user's approval, waiting to be exchanged for tokens.
#[derive(Debug)]
pub(crate) struct NewCode<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub username: &'a str,
    pub scope: &'a str,
}

/// Stores an authorization code under its digest.
pub(crate) fn create_code(
    conn: &Connection,
    code_digest: &str,
    code: &NewCode<'_>,
    expires_at: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO oauth_codes
             (hash, client_id, redirect_uri, code_challenge, username, scope, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            code_digest,
            code.client_id,
            code.redirect_uri,
            code.code_challenge,
            code.username,
            code.scope,
            expires_at
        ],
    )?;

    Ok(())
}

/// What the client presents to exchange a code.
#[derive(Debug)]
pub(crate) struct CodeExchange<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
}

/// Exchanges an authorization code for tokens (RFC 6749 4.1.3, RFC 7636 4.6).
///
/// A code that was already exchanged revokes the grant it produced: whoever
/// holds it now may be an attacker, and the tokens are no longer trustworthy.
pub(crate) fn redeem_code(
    conn: &mut Connection,
    code_digest: &str,
    presented: &CodeExchange<'_>,
    settings: &Settings,
    now: i64,
) -> Result<Exchange, DbError> {
    let tx = conn.transaction()?;

    let row = tx
        .query_row(
            "SELECT client_id, redirect_uri, code_challenge, username, scope, expires_at,
                    used_at IS NOT NULL, grant_id
             FROM oauth_codes WHERE hash = ?1",
            [code_digest],
            |row| {
                Ok(StoredCode {
                    client_id: row.get(0)?,
                    redirect_uri: row.get(1)?,
                    code_challenge: row.get(2)?,
                    username: row.get(3)?,
                    scope: row.get(4)?,
                    expires_at: row.get(5)?,
                    used: row.get(6)?,
                    grant_id: row.get(7)?,
                })
            },
        )
        .optional()?;
    let Some(code) = row else {
        return Ok(Exchange::invalid_grant("the authorization code is unknown"));
    };

    if code.used {
        if let Some(grant_id) = code.grant_id {
            revoke_grant(&tx, grant_id, now)?;
        }
        tx.commit()?;
        return Ok(Exchange::invalid_grant(
            "the authorization code was already used; the tokens issued for it are revoked",
        ));
    }
    if now >= code.expires_at {
        return Ok(Exchange::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if code.client_id != presented.client_id {
        return Ok(Exchange::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if code.redirect_uri != presented.redirect_uri {
        return Ok(Exchange::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !verifier_matches(presented.code_verifier, &code.code_challenge) {
        return Ok(Exchange::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }

    let grant_id = create_grant(&tx, &code.client_id, &code.username, &code.scope, now)?;
    let issued = issue_tokens(&tx, grant_id, &code.scope, settings, now)?;
    tx.execute(
        "UPDATE oauth_codes SET used_at = ?2, grant_id = ?3 WHERE hash = ?1",
        params![code_digest, now, grant_id],
    )?;
    tx.commit()?;

    Ok(Exchange::Issued(issued))
}

struct StoredCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    username: String,
    scope: String,
    expires_at: i64,
    used: bool,
    grant_id: Option<i64>,
}

/// A stored token joined with its grant.
struct StoredToken {
    kind: String,
    grant_id: i64,
    scope: String,
    expires_at: i64,
    used: bool,
    revoked: bool,
    client_id: String,
    username: String,
    grant_scope: String,
}

fn find_token(conn: &Connection, token_digest: &str) -> rusqlite::Result<Option<StoredToken>> {
    conn.query_row(
        "SELECT t.kind, t.grant_id, t.scope, t.expires_at, t.used_at IS NOT NULL,
                t.revoked_at IS NOT NULL OR g.revoked_at IS NOT NULL,
                g.client_id, g.username, g.scope
         FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
         WHERE t.hash = ?1",
        [token_digest],
        |row| {
            Ok(StoredToken {
                kind: row.get(0)?,
                grant_id: row.get(1)?,
                scope: row.get(2)?,
                expires_at: row.get(3)?,
                used: row.get(4)?,
                revoked: row.get(5)?,
                client_id: row.get(6)?,
                username: row.get(7)?,
                grant_scope: row.get(8)?,
            })
        },
    )
    .optional()
}

/// Exchanges a refresh token for a new pair, rotating it (RFC 6749 6).
///
/// The presented token is spent. Presenting a spent token again means two
/// parties hold it, so the whole grant is revoked and the caller learns
/// [`Exchange::ReuseDetected`].
pub(crate) fn refresh(
    conn: &mut Connection,
    token_digest: &str,
    client_id: &str,
    requested_scope: Option<&str>,
    settings: &Settings,
    now: i64,
) -> Result<Exchange, DbError> {
    let tx = conn.transaction()?;

    let token = match find_token(&tx, token_digest)? {
        Some(token) if token.kind == "refresh" => token,
        _ => return Ok(Exchange::invalid_grant("the refresh token is unknown")),
    };
    if token.client_id != client_id {
        return Ok(Exchange::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if token.revoked {
        return Ok(Exchange::invalid_grant(
            "the refresh token has been revoked",
        ));
    }
    if token.used {
        revoke_grant(&tx, token.grant_id, now)?;
        tx.commit()?;
        return Ok(Exchange::ReuseDetected {
            grant_id: token.grant_id,
        });
    }
    if now >= token.expires_at {
        return Ok(Exchange::invalid_grant("the refresh token has expired"));
    }

    // RFC 6749 6: a refresh may narrow the scope, never widen it; without a
    // scope it gets everything the user originally granted.
    let scope = match requested_scope {
        Some(scope) if !is_subscope(scope, &token.grant_scope) => {
            return Ok(Exchange::refused(
                ErrorCode::InvalidScope,
                "the requested scope exceeds what was granted",
            ));
        }
        Some(scope) => scope.to_owned(),
        None => token.grant_scope.clone(),
    };

    tx.execute(
        "UPDATE oauth_tokens SET used_at = ?2 WHERE hash = ?1",
        params![token_digest, now],
    )?;
    let issued = issue_tokens(&tx, token.grant_id, &scope, settings, now)?;
    tx.commit()?;

    Ok(Exchange::Issued(issued))
}

/// What an access token presented to a resource turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccessCheck {
    /// Good: the request acts for this user.
    Valid {
        username: String,
        scope: String,
        grant_id: i64,
    },

    /// Never issued, or not an access token.
    Unknown,

    /// Past its lifetime.
    Expired,

    /// Revoked, alone or with its grant.
    Revoked,
}

/// Checks an access token presented as a bearer credential.
pub(crate) fn check_access_token(
    conn: &Connection,
    token_digest: &str,
    now: i64,
) -> rusqlite::Result<AccessCheck> {
    let check = match find_token(conn, token_digest)? {
        Some(token) if token.kind == "access" => {
            if token.revoked {
                AccessCheck::Revoked
            } else if now >= token.expires_at {
                AccessCheck::Expired
            } else {
                AccessCheck::Valid {
                    username: token.username,
                    scope: token.scope,
                    grant_id: token.grant_id,
                }
            }
        }
        _ => AccessCheck::Unknown,
    };

    Ok(check)
}

/// What a revocation request revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// The token was unknown or belongs to another client: nothing.
    Nothing,

    /// One access token.
    AccessToken,

    /// A refresh token, and with it its whole grant.
    Grant(i64),
}

/// Revokes a token by digest (RFC 7009 2.1).
pub(crate) fn revoke_token(
    conn: &mut Connection,
    token_digest: &str,
    client_id: &str,
    now: i64,
) -> Result<Revoked, DbError> {
    let tx = conn.transaction()?;

    let revoked = match find_token(&tx, token_digest)? {
        Some(token) if token.client_id != client_id => Revoked::Nothing,
        Some(token) if token.kind == "refresh" => {
            revoke_grant(&tx, token.grant_id, now)?;
            Revoked::Grant(token.grant_id)
        }
        Some(_) => {
            tx.execute(
                "UPDATE oauth_tokens SET revoked_at = ?2 WHERE hash = ?1 AND revoked_at IS NULL",
                params![token_digest, now],
            )?;
            Revoked::AccessToken
        }
        None => Revoked::Nothing,
    };
    tx.commit()?;

    Ok(revoked)
}

/// Makes every access token issued so far expire now; refresh tokens keep their lifetime.
pub(crate) fn expire_access_tokens(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE oauth_tokens SET expires_at = MIN(expires_at, ?1) WHERE kind = 'access'",
        [now],
    )?;

    Ok(())
}

/// Counts of what the store holds, for the test controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub access_tokens_issued: u64,
    pub refresh_tokens_issued: u64,
    pub grants_revoked: u64,
    pub active_grants: u64,
}

/// Counts tokens by kind and grants by state.
pub(crate) fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    conn.query_row(
        "SELECT
             (SELECT COUNT(*) FROM oauth_tokens WHERE kind = 'access'),
             (SELECT COUNT(*) FROM oauth_tokens WHERE kind = 'refresh'),
             (SELECT COUNT(*) FROM oauth_grants WHERE revoked_at IS NOT NULL),
             (SELECT COUNT(*) FROM oauth_grants WHERE revoked_at IS NULL)",
        [],
        |row| {
            let count = |index| row.get::<_, i64>(index).map(i64::unsigned_abs);
            Ok(Counts {
                access_tokens_issued: count(0)?,
                refresh_tokens_issued: count(1)?,
                grants_revoked: count(2)?,
                active_grants: count(3)?,
            })
        },
    )
}

/// A device authorization request, waiting for the user (RFC 8628 3.1).
#[derive(Debug)]
pub(crate) struct NewDeviceCode<'a> {
    pub device_code_digest: &'a str,
    pub user_code_digest: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub expires_at: i64,
    pub interval_secs: u64,
}

/// Stores a device code; false if its user code collides with another's.
pub(crate) fn create_device_code(
    conn: &Connection,
    device: &NewDeviceCode<'_>,
) -> rusqlite::Result<bool> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO oauth_device_codes
             (hash, user_code_hash, client_id, scope, expires_at, interval_secs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            device.device_code_digest,
            device.user_code_digest,
            device.client_id,
            device.scope,
            device.expires_at,
            i64::try_from(device.interval_secs).unwrap_or(i64::MAX),
        ],
    )?;

    Ok(inserted > 0)
}

/// A user's answer to a device authorization request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    Approve { username: &'a str },
    Deny,
}

/// What became of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decided {
    /// Recorded; the device learns it at its next poll.
    Recorded,

    /// No live device code has this user code.
    Unknown,

    /// The request was already decided.
    AlreadyAnswered,
}

/// Records a user's decision on the device code with this user code.
pub(crate) fn decide_device_code(
    conn: &Connection,
    user_code_digest: &str,
    decision: Decision<'_>,
    now: i64,
) -> rusqlite::Result<Decided> {
    let status: Option<String> = conn
        .query_row(
            "SELECT status FROM oauth_device_codes WHERE user_code_hash = ?1 AND expires_at > ?2",
            params![user_code_digest, now],
            |row| row.get(0),
        )
        .optional()?;

    match status.as_deref() {
        None => return Ok(Decided::Unknown),
        Some("pending") => {}
        Some(_) => return Ok(Decided::AlreadyAnswered),
    }

    let (status, username) = match decision {
        Decision::Approve { username } => ("approved", Some(username)),
        Decision::Deny => ("denied", None),
    };
    conn.execute(
        "UPDATE oauth_device_codes SET status = ?2, username = ?3 WHERE user_code_hash = ?1",
        params![user_code_digest, status, username],
    )?;

    Ok(Decided::Recorded)
}

/// Answers one poll of the token endpoint with a device code (RFC 8628 3.4, 3.5).
pub(crate) fn poll_device_code(
    conn: &mut Connection,
    device_code_digest: &str,
    client_id: &str,
    settings: &Settings,
    now: i64,
) -> Result<Exchange, DbError> {
    let tx = conn.transaction()?;

    let row = tx
        .query_row(
            "SELECT client_id, scope, expires_at, interval_secs, last_polled_at, status, username
             FROM oauth_device_codes WHERE hash = ?1",
            [device_code_digest],
            |row| {
                Ok(StoredDeviceCode {
                    client_id: row.get(0)?,
                    scope: row.get(1)?,
                    expires_at: row.get(2)?,
                    interval_secs: row.get(3)?,
                    last_polled_at: row.get(4)?,
                    status: row.get(5)?,
                    username: row.get(6)?,
                })
            },
        )
        .optional()?;
    let Some(device) = row else {
        return Ok(Exchange::invalid_grant("the device code is unknown"));
    };

    if device.client_id != client_id {
        return Ok(Exchange::invalid_grant(
            "the device code was issued to another client",
        ));
    }
    match device.status.as_str() {
        "consumed" => {
            return Ok(Exchange::invalid_grant(
                "the device code was already exchanged",
            ));
        }
        "denied" => {
            return Ok(Exchange::refused(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        _ => {}
    }
    if now >= device.expires_at {
        return Ok(Exchange::refused(
            ErrorCode::ExpiredToken,
            "the device code has expired",
        ));
    }

    let too_fast = device
        .last_polled_at
        .is_some_and(|last| now - last < device.interval_secs.saturating_mul(1000) - POLL_GRACE_MS);
    if too_fast {
        tx.execute(
            "UPDATE oauth_device_codes
             SET last_polled_at = ?2, interval_secs = interval_secs + ?3 WHERE hash = ?1",
            params![device_code_digest, now, SLOW_DOWN_STEP_SECS],
        )?;
        tx.commit()?;
        return Ok(Exchange::refused(
            ErrorCode::SlowDown,
            "polling faster than the interval; wait 5 seconds more between polls",
        ));
    }
    tx.execute(
        "UPDATE oauth_device_codes SET last_polled_at = ?2 WHERE hash = ?1",
        params![device_code_digest, now],
    )?;

    let username = match (device.status.as_str(), device.username) {
        ("approved", Some(username)) => username,
        _ => {
            tx.commit()?;
            return Ok(Exchange::refused(
                ErrorCode::AuthorizationPending,
                "the user has not answered yet",
            ));
        }
    };

    let grant_id = create_grant(&tx, &device.client_id, &username, &device.scope, now)?;
    let issued = issue_tokens(&tx, grant_id, &device.scope, settings, now)?;
    tx.execute(
        "UPDATE oauth_device_codes SET status = 'consumed' WHERE hash = ?1",
        [device_code_digest],
    )?;
    tx.commit()?;

    Ok(Exchange::Issued(issued))
}

struct StoredDeviceCode {
    client_id: String,
    scope: String,
    expires_at: i64,
    interval_secs: i64,
    last_polled_at: Option<i64>,
    status: String,
    username: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{CLIENT_ID, digest};

    const NOW: i64 = 1_700_000_000_000;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn password_grant(conn: &Connection, now: i64) -> Issued {
        let grant_id = create_grant(conn, CLIENT_ID, "alice", "todos", now).unwrap();
        issue_tokens(conn, grant_id, "todos", &Settings::default(), now).unwrap()
    }

    fn issued(exchange: Exchange) -> Issued {
        match exchange {
            Exchange::Issued(issued) => issued,
            other => panic!("expected tokens, got {other:?}"),
        }
    }

    fn refused_with(exchange: &Exchange) -> Option<ErrorCode> {
        match exchange {
            Exchange::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn refresh_rotates_and_detects_reuse() {
        let mut conn = conn();
        let first = password_grant(&conn, NOW);
        let settings = Settings::default();

        let old = first.refresh_token.digest();
        let second = issued(refresh(&mut conn, &old, CLIENT_ID, None, &settings, NOW).unwrap());
        let reuse = refresh(&mut conn, &old, CLIENT_ID, None, &settings, NOW).unwrap();
        let after = refresh(
            &mut conn,
            &second.refresh_token.digest(),
            CLIENT_ID,
            None,
            &settings,
            NOW,
        )
        .unwrap();

        assert_ne!(second.refresh_token, first.refresh_token);
        assert!(
            matches!(reuse, Exchange::ReuseDetected { grant_id } if grant_id == first.grant_id)
        );
        assert_eq!(refused_with(&after), Some(ErrorCode::InvalidGrant));
        let check = check_access_token(&conn, &second.access_token.digest(), NOW).unwrap();
        assert_eq!(check, AccessCheck::Revoked);
    }

    #[test]
    fn refresh_may_narrow_but_not_widen_scope() {
        let mut conn = conn();
        let grant_id = create_grant(&conn, CLIENT_ID, "alice", "todos profile", NOW).unwrap();
        let first =
            issue_tokens(&conn, grant_id, "todos profile", &Settings::default(), NOW).unwrap();
        let settings = Settings::default();

        let wide = refresh(
            &mut conn,
            &first.refresh_token.digest(),
            CLIENT_ID,
            Some("admin"),
            &settings,
            NOW,
        )
        .unwrap();
        let narrow = refresh(
            &mut conn,
            &first.refresh_token.digest(),
            CLIENT_ID,
            Some("todos"),
            &settings,
            NOW,
        )
        .unwrap();

        assert_eq!(refused_with(&wide), Some(ErrorCode::InvalidScope));
        assert_eq!(issued(narrow).scope, "todos");
    }

    #[test]
    fn access_tokens_expire_with_the_clock() {
        let conn = conn();
        let tokens = password_grant(&conn, NOW);
        let token = tokens.access_token.digest();

        let before = check_access_token(&conn, &token, NOW + 3_599_999).unwrap();
        let after = check_access_token(&conn, &token, NOW + 3_600_000).unwrap();

        assert!(matches!(before, AccessCheck::Valid { .. }));
        assert_eq!(after, AccessCheck::Expired);
    }

    #[test]
    fn codes_work_once_and_reuse_revokes_the_grant() {
        let mut conn = conn();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let code = NewCode {
            client_id: CLIENT_ID,
            redirect_uri: "roundtrip-demo:/cb",
            code_challenge: &digest(verifier),
            username: "bob",
            scope: "todos",
        };
        create_code(&conn, "code", &code, NOW + 60_000).unwrap();
        let presented = CodeExchange {
            client_id: CLIENT_ID,
            redirect_uri: "roundtrip-demo:/cb",
            code_verifier: verifier,
        };
        let settings = Settings::default();

        let tokens = issued(redeem_code(&mut conn, "code", &presented, &settings, NOW).unwrap());
        let again = redeem_code(&mut conn, "code", &presented, &settings, NOW).unwrap();

        assert_eq!(refused_with(&again), Some(ErrorCode::InvalidGrant));
        let check = check_access_token(&conn, &tokens.access_token.digest(), NOW).unwrap();
        assert_eq!(check, AccessCheck::Revoked);
    }

    #[test]
    fn codes_expire_after_their_lifetime() {
        let mut conn = conn();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let code = NewCode {
            client_id: CLIENT_ID,
            redirect_uri: "roundtrip-demo:/cb",
            code_challenge: &digest(verifier),
            username: "bob",
            scope: "todos",
        };
        create_code(&conn, "code", &code, NOW + 60_000).unwrap();
        let presented = CodeExchange {
            client_id: CLIENT_ID,
            redirect_uri: "roundtrip-demo:/cb",
            code_verifier: verifier,
        };

        let late = redeem_code(
            &mut conn,
            "code",
            &presented,
            &Settings::default(),
            NOW + 60_000,
        )
        .unwrap();

        assert_eq!(refused_with(&late), Some(ErrorCode::InvalidGrant));
    }

    #[test]
    fn device_polls_are_paced_and_answered_once() {
        let mut conn = conn();
        let device = NewDeviceCode {
            device_code_digest: "device",
            user_code_digest: "user",
            client_id: CLIENT_ID,
            scope: "todos",
            expires_at: NOW + 600_000,
            interval_secs: 5,
        };
        assert!(create_device_code(&conn, &device).unwrap());
        let settings = Settings::default();
        let mut poll = |now| poll_device_code(&mut conn, "device", CLIENT_ID, &settings, now);

        let first = poll(NOW).unwrap();
        let fast = poll(NOW + 1_000).unwrap();
        let still_fast = poll(NOW + 6_000).unwrap();
        let paced = poll(NOW + 21_000).unwrap();

        assert_eq!(refused_with(&first), Some(ErrorCode::AuthorizationPending));
        assert_eq!(refused_with(&fast), Some(ErrorCode::SlowDown));
        // The interval is now 10 s, and then 15 s.
        assert_eq!(refused_with(&still_fast), Some(ErrorCode::SlowDown));
        assert_eq!(refused_with(&paced), Some(ErrorCode::AuthorizationPending));

        let approve = Decision::Approve { username: "alice" };
        let decided = decide_device_code(&conn, "user", approve, NOW).unwrap();
        let tokens = poll_device_code(&mut conn, "device", CLIENT_ID, &settings, NOW + 60_000);
        let again = poll_device_code(&mut conn, "device", CLIENT_ID, &settings, NOW + 90_000);

        assert_eq!(decided, Decided::Recorded);
        assert_eq!(issued(tokens.unwrap()).scope, "todos");
        assert_eq!(refused_with(&again.unwrap()), Some(ErrorCode::InvalidGrant));
    }

    #[test]
    fn device_codes_expire() {
        let mut conn = conn();
        let device = NewDeviceCode {
            device_code_digest: "device",
            user_code_digest: "user",
            client_id: CLIENT_ID,
            scope: "todos",
            expires_at: NOW + 600_000,
            interval_secs: 0,
        };
        create_device_code(&conn, &device).unwrap();

        let late = poll_device_code(
            &mut conn,
            "device",
            CLIENT_ID,
            &Settings::default(),
            NOW + 600_000,
        )
        .unwrap();

        assert_eq!(refused_with(&late), Some(ErrorCode::ExpiredToken));
    }

    #[test]
    fn counts_and_clear() {
        let mut conn = conn();
        let tokens = password_grant(&conn, NOW);
        password_grant(&conn, NOW);
        revoke_token(&mut conn, &tokens.refresh_token.digest(), CLIENT_ID, NOW).unwrap();

        let counts = counts(&conn).unwrap();
        clear(&conn).unwrap();

        assert_eq!(
            counts,
            Counts {
                access_tokens_issued: 2,
                refresh_tokens_issued: 2,
                grants_revoked: 1,
                active_grants: 1,
            }
        );
        assert_eq!(super::counts(&conn).unwrap(), Counts::default());
    }
}
