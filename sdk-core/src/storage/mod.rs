//! Local storage: one SQLite database file per component.
//!
//! Each component (the HTTP cache, push registration state, and later the sync outbox) keeps its
//! own file in the client's storage directory, so that a damaged cache can be thrown away without
//! touching data that must never be lost. Files open in WAL mode with a busy timeout. Each
//! component gives its schema as a list of migrations; the file's `user_version` records how many
//! have run. Secrets are never written here.
//!
//! Database work is blocking, so [`Database::call`] runs it on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tracing::{info, warn};

use crate::Error;

/// What to do when a database file cannot be opened or read as SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnCorruption {
    /// Move the damaged file aside and start an empty database: for data the server can give
    /// again, such as cached responses.
    Rebuild,
    /// Report [`Error::Storage`] and leave the file alone: for data that exists nowhere else.
    #[allow(dead_code, reason = "for the sync outbox, which lands later")]
    Fail,
}

/// A SQLite database owned by one component.
#[derive(Clone)]
pub(crate) struct Database {
    connection: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub(crate) fn open(
        path: &Path,
        migrations: &[&str],
        on_corruption: OnCorruption,
    ) -> Result<Database, Error> {
        match open_file(path, migrations) {
            Ok(connection) => Ok(Database::wrap(connection, Some(path.to_owned()))),
            Err(error) if is_corruption(&error) && on_corruption == OnCorruption::Rebuild => {
                warn!(path = %path.display(), %error, "database is damaged; rebuilding it");
                set_aside(path)?;
                let connection = open_file(path, migrations).map_err(database_error)?;
                Ok(Database::wrap(connection, Some(path.to_owned())))
            }
            Err(error) => Err(database_error(error)),
        }
    }

    /// An in-memory database, for clients without a storage directory.
    pub(crate) fn in_memory(migrations: &[&str]) -> Result<Database, Error> {
        let mut connection = Connection::open_in_memory().map_err(database_error)?;
        migrate(&mut connection, migrations).map_err(database_error)?;
        Ok(Database::wrap(connection, None))
    }

    fn wrap(connection: Connection, path: Option<PathBuf>) -> Database {
        Database {
            connection: Arc::new(Mutex::new(connection)),
            path,
        }
    }

    /// Runs `work` with the connection on the blocking pool.
    pub(crate) async fn call<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        });
        match task.await {
            Ok(result) => result.map_err(database_error),
            Err(_) => Err(Error::Internal("a database task failed".into())),
        }
    }

    /// Runs `work` with the connection on the current thread. For short calls from code that is
    /// not async.
    pub(crate) fn call_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        work(&mut connection).map_err(database_error)
    }
}

fn open_file(path: &Path, migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    // Reading the schema forces SQLite to look at the file, so damage shows up here.
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    let check: String = connection.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(check),
        ));
    }
    migrate(&mut connection, migrations)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let applied: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied >= migrations.len() {
        return Ok(());
    }

    let transaction = connection.transaction()?;
    for (index, migration) in migrations.iter().enumerate().skip(applied) {
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", (index + 1) as i64)?;
    }
    transaction.commit()?;
    info!(
        from = applied,
        to = migrations.len(),
        "database schema migrated"
    );
    Ok(())
}

fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Moves a damaged file (and its WAL and shared-memory files) out of the way.
fn set_aside(path: &Path) -> Result<(), Error> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            let damaged = PathBuf::from(format!("{}.damaged", file.display()));
            std::fs::rename(&file, &damaged).map_err(|error| {
                Error::Storage(format!("could not set the damaged file aside: {error}"))
            })?;
        }
    }
    Ok(())
}

pub(crate) fn database_error(error: rusqlite::Error) -> Error {
    Error::Storage(format!("database: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[&str] = &[
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        "ALTER TABLE items ADD COLUMN size INTEGER NOT NULL DEFAULT 0;",
    ];

    #[tokio::test]
    async fn test_migrations_run_once_and_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.sqlite3");
        let database = Database::open(&path, &MIGRATIONS[..1], OnCorruption::Fail).unwrap();
        database
            .call(|c| c.execute("INSERT INTO items (name) VALUES ('a')", []))
            .await
            .unwrap();
        drop(database);

        let reopened = Database::open(&path, MIGRATIONS, OnCorruption::Fail).unwrap();
        let (count, size): (i64, i64) = reopened
            .call(|c| {
                c.query_row("SELECT count(*), sum(size) FROM items", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .await
            .unwrap();

        assert_eq!((count, size), (1, 0));
        let version: i64 = reopened
            .call_blocking(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, 2);
    }

    #[test]
    fn test_a_damaged_file_is_rebuilt_or_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.sqlite3");
        std::fs::write(
            &path,
            b"this is not a database, just garbage bytes ".repeat(200),
        )
        .unwrap();

        let error = Database::open(&path, MIGRATIONS, OnCorruption::Fail).unwrap_err();
        assert!(matches!(error, Error::Storage(_)), "{error:?}");
        assert!(path.exists(), "a file that must not be lost was moved");

        let rebuilt = Database::open(&path, MIGRATIONS, OnCorruption::Rebuild).unwrap();
        let count: i64 = rebuilt
            .call_blocking(|c| c.query_row("SELECT count(*) FROM items", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(count, 0);
        assert!(dir.path().join("cache.sqlite3.damaged").exists());
    }
}
