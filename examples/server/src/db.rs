//! The SQLite store: one connection behind a mutex, used from blocking tasks.
//!
//! Every piece of database work is a closure handed to [`Db::run`], which moves
//! it to tokio's blocking pool and holds the connection's lock for exactly as
//! long as the closure runs. One connection and one lock make the server's
//! writes strictly serial, which is what lets an idempotent write check its
//! key, apply the change and store the response without a race.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tracing::error;

use crate::problem::Problem;
use crate::{devices, oauth};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS todos (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        content_type TEXT,
        location TEXT,
        body BLOB NOT NULL,
        created_at INTEGER NOT NULL DEFAULT (unixepoch())
    );
";

/// A failure of database work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// SQLite refused a statement.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DbError {
    /// Logs the failure and turns it into a 500 problem for the given request path.
    pub(crate) fn into_problem(self, instance: &str) -> Problem {
        error!(error = %self, instance, "database work failed");

        Problem::internal(instance)
    }
}

/// A shared handle to the server's only SQLite connection.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens the database file in WAL mode, or a private in-memory database when `path` is `None`.
    pub(crate) fn open(path: Option<&Path>) -> rusqlite::Result<Self> {
        let conn = match path {
            Some(path) => {
                let conn = Connection::open(path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };

        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(oauth::store::SCHEMA)?;
        conn.execute_batch(devices::SCHEMA)?;

        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the blocking pool with the connection locked.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);

        tokio::task::spawn_blocking(move || {
            // A panic in earlier work left no transaction open (it rolled back on
            // unwind), so the connection is still usable.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await?
    }

    /// Counts the rows of the todos table.
    pub(crate) async fn count_todos(&self) -> Result<u64, DbError> {
        self.run(|conn| {
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM todos", [], |row| row.get(0))?;
            Ok(count.unsigned_abs())
        })
        .await
    }

    /// Deletes every todo, idempotency record, device and piece of OAuth
    /// state, and restarts todo and grant ids at 1.
    pub(crate) async fn clear(&self) -> Result<(), DbError> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM todos", [])?;
            tx.execute("DELETE FROM idempotency_keys", [])?;
            tx.execute("DELETE FROM sqlite_sequence WHERE name = 'todos'", [])?;
            oauth::store::clear(&tx)?;
            devices::clear(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clear_restarts_ids() {
        let db = Db::open(None).unwrap();
        db.run(|conn| {
            conn.execute("INSERT INTO todos (title) VALUES ('a'), ('b')", [])?;
            Ok(())
        })
        .await
        .unwrap();

        db.clear().await.unwrap();
        let id: i64 = db
            .run(|conn| {
                conn.execute("INSERT INTO todos (title) VALUES ('c')", [])?;
                Ok(conn.last_insert_rowid())
            })
            .await
            .unwrap();

        assert_eq!(id, 1);
        assert_eq!(db.count_todos().await.unwrap(), 1);
    }

    #[test]
    fn files_use_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");

        let _db = Db::open(Some(&path)).unwrap();
        let mode: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();

        assert_eq!(mode, "wal");
    }
}
