//! The push component's state in SQLite: `push.sqlite3` in the client's storage directory.
//!
//! One row of settings (the installation id, the opt-in the app last reported, whether an
//! unregistration waits) and at most one row describing the registration the server holds. The
//! token itself is never written: only its SHA-256.
//!
//! A damaged file is set aside and rebuilt ([`OnCorruption::Rebuild`]): everything here can be
//! made again by registering. The rebuilt file gets a new installation id, so the device
//! registers under it; the server drops the old registration when the same token arrives from
//! the new installation (a token belongs to one installation), or when the provider reports the
//! token dead.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::Error;
use crate::push::reconcile::Registered;
use crate::storage::{Database, OnCorruption};

/// The file's name in the storage directory.
pub(crate) const FILE_NAME: &str = "push.sqlite3";

const MIGRATIONS: &[&str] = &["
    CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        installation_id TEXT NOT NULL,
        opt_in INTEGER NOT NULL DEFAULT 1,
        unregister_pending INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE registration (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        platform TEXT NOT NULL,
        token_sha256 TEXT NOT NULL,
        app_version TEXT,
        locale TEXT,
        opt_in INTEGER NOT NULL,
        user TEXT,
        verified_at_ms INTEGER NOT NULL
    );
"];

/// What the component reads at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) installation_id: String,
    pub(crate) opt_in: bool,
    pub(crate) unregister_pending: bool,
    pub(crate) registered: Option<Registered>,
}

/// Opens the component's database, in `dir` or in memory, and loads its state. The first open
/// creates the installation id with `new_id`.
pub(crate) fn open(
    dir: Option<&Path>,
    new_id: impl FnOnce() -> Result<String, Error>,
) -> Result<(Database, Stored), Error> {
    let database = match dir {
        Some(dir) => Database::open(&dir.join(FILE_NAME), MIGRATIONS, OnCorruption::Rebuild)?,
        None => Database::in_memory(MIGRATIONS)?,
    };

    let existing = database.call_blocking(|conn| {
        conn.query_row("SELECT installation_id FROM settings", [], |row| {
            row.get::<_, String>(0)
        })
        .optional()
    })?;
    if existing.is_none() {
        let id = new_id()?;
        database.call_blocking(move |conn| {
            conn.execute(
                "INSERT INTO settings (id, installation_id) VALUES (1, ?1)",
                [id],
            )
        })?;
    }

    let stored = database.call_blocking(|conn| load(conn))?;
    Ok((database, stored))
}

fn load(conn: &Connection) -> rusqlite::Result<Stored> {
    let (installation_id, opt_in, unregister_pending) = conn.query_row(
        "SELECT installation_id, opt_in, unregister_pending FROM settings",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let registered = conn
        .query_row(
            "SELECT platform, token_sha256, app_version, locale, opt_in, user, verified_at_ms
             FROM registration",
            [],
            |row| {
                Ok(Registered {
                    platform: row.get(0)?,
                    token_sha256: row.get(1)?,
                    app_version: row.get(2)?,
                    locale: row.get(3)?,
                    opt_in: row.get(4)?,
                    user: row.get(5)?,
                    verified_at: from_millis(row.get(6)?),
                })
            },
        )
        .optional()?;

    Ok(Stored {
        installation_id,
        opt_in,
        unregister_pending,
        registered,
    })
}

/// Records the registration the server holds, or that it holds none. Recording one also clears
/// a pending unregistration, which the registration superseded.
pub(crate) fn save_registration(
    conn: &mut Connection,
    registered: Option<&Registered>,
) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    transaction.execute("DELETE FROM registration", [])?;
    if let Some(registered) = registered {
        transaction.execute(
            "INSERT INTO registration (id, platform, token_sha256, app_version, locale, opt_in,
                                       user, verified_at_ms)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                registered.platform,
                registered.token_sha256,
                registered.app_version,
                registered.locale,
                registered.opt_in,
                registered.user,
                to_millis(registered.verified_at),
            ],
        )?;
        transaction.execute("UPDATE settings SET unregister_pending = 0", [])?;
    }
    transaction.commit()
}

/// Records the opt-in state the app reported.
pub(crate) fn save_opt_in(conn: &mut Connection, opt_in: bool) -> rusqlite::Result<()> {
    conn.execute("UPDATE settings SET opt_in = ?1", [opt_in])
        .map(|_| ())
}

/// Forgets the registration and records whether an unregistration still has to be sent, in one
/// step: what sign-out leaves behind.
pub(crate) fn save_signed_out(
    conn: &mut Connection,
    unregister_pending: bool,
) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    transaction.execute("DELETE FROM registration", [])?;
    transaction.execute(
        "UPDATE settings SET unregister_pending = ?1",
        [unregister_pending],
    )?;
    transaction.commit()
}

/// Records whether an unregistration still has to be sent.
pub(crate) fn save_unregister_pending(
    conn: &mut Connection,
    unregister_pending: bool,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE settings SET unregister_pending = ?1",
        [unregister_pending],
    )
    .map(|_| ())
}

fn to_millis(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Registered {
        Registered {
            platform: "fcm".into(),
            token_sha256: "ab".repeat(32),
            app_version: Some("3.0".into()),
            locale: None,
            opt_in: false,
            user: Some("alice".into()),
            verified_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn test_the_installation_id_is_made_once_and_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (database, first) = open(Some(dir.path()), || Ok("first-id".into())).unwrap();
        database
            .call_blocking(|conn| {
                save_opt_in(conn, false)?;
                save_registration(conn, Some(&registered()))
            })
            .unwrap();
        drop(database);

        let (_, reopened) = open(Some(dir.path()), || Ok("second-id".into())).unwrap();

        assert_eq!(first.installation_id, "first-id");
        assert!(first.opt_in && first.registered.is_none());
        assert_eq!(
            reopened,
            Stored {
                installation_id: "first-id".into(),
                opt_in: false,
                unregister_pending: false,
                registered: Some(registered()),
            }
        );
    }

    #[test]
    fn test_sign_out_state_and_its_supersession() {
        let (database, _) = open(None, || Ok("id".into())).unwrap();

        database
            .call_blocking(|conn| {
                save_registration(conn, Some(&registered()))?;
                save_signed_out(conn, true)
            })
            .unwrap();
        let signed_out = database.call_blocking(|conn| load(conn)).unwrap();
        database
            .call_blocking(|conn| save_registration(conn, Some(&registered())))
            .unwrap();
        let registered_again = database.call_blocking(|conn| load(conn)).unwrap();

        assert!(signed_out.unregister_pending && signed_out.registered.is_none());
        assert!(!registered_again.unregister_pending);
        assert!(registered_again.registered.is_some());
    }

    #[test]
    fn test_a_damaged_file_is_rebuilt_with_a_new_installation_id() {
        let dir = tempfile::tempdir().unwrap();
        let (database, _) = open(Some(dir.path()), || Ok("old".into())).unwrap();
        drop(database);
        std::fs::write(dir.path().join(FILE_NAME), b"garbage ".repeat(512)).unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("{FILE_NAME}{suffix}")));
        }

        let (_, rebuilt) = open(Some(dir.path()), || Ok("new".into())).unwrap();

        assert_eq!(rebuilt.installation_id, "new");
        assert!(rebuilt.registered.is_none());
    }
}
