//! The cache's SQLite table: one row per stored response variant, keyed by partition, URL and
//! the hash of the request header values the response varies on.
//!
//! Credentials never reach the file: credential headers of responses (`Set-Cookie`...) are not
//! stored, and the varied request values are kept only as a SHA-256 hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use rusqlite::{OptionalExtension, params};

use crate::cache::rules::{self, Timing};
use crate::internal::{digest, redact};
use crate::storage::Database;
use crate::{Error, Response};

pub(crate) const MIGRATIONS: &[&str] = &["
    CREATE TABLE entries (
        partition TEXT NOT NULL,
        url TEXT NOT NULL,
        vary_hash TEXT NOT NULL,
        vary_names TEXT NOT NULL,
        status INTEGER NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        request_time INTEGER NOT NULL,
        response_time INTEGER NOT NULL,
        size INTEGER NOT NULL,
        last_used INTEGER NOT NULL,
        PRIMARY KEY (partition, url, vary_hash)
    );
    CREATE INDEX entries_by_use ON entries (last_used);
    CREATE INDEX entries_by_url ON entries (url);
"];

/// A stored response.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) partition: String,
    pub(crate) url: String,
    pub(crate) vary_hash: String,
    pub(crate) vary_names: Vec<String>,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) timing: Timing,
}

#[derive(Clone, Debug)]
pub(crate) struct CacheStore {
    database: Database,
    max_size: u64,
    /// The LRU clock: a counter, so that uses within the same millisecond still order.
    uses: Arc<AtomicI64>,
}

impl CacheStore {
    pub(crate) fn new(database: Database, max_size: u64) -> Result<CacheStore, Error> {
        let latest: i64 = database.call_blocking(|connection| {
            connection.query_row(
                "SELECT coalesce(max(last_used), 0) FROM entries",
                [],
                |row| row.get(0),
            )
        })?;
        Ok(CacheStore {
            database,
            max_size,
            uses: Arc::new(AtomicI64::new(latest)),
        })
    }

    fn next_use(&self) -> i64 {
        self.uses.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The stored variant of `url` whose varied headers match `request`, if any, marked as
    /// used for the LRU order.
    ///
    /// Runs on the calling thread: a lookup is one indexed read, mostly from SQLite's page
    /// cache, and a cache hit must cost much less than a network round trip, which a hop to the
    /// blocking pool would not allow.
    pub(crate) fn lookup(
        &self,
        partition: &str,
        url: &str,
        request: &HeaderMap,
    ) -> Result<Option<Entry>, Error> {
        self.database.call_blocking(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT partition, url, vary_hash, vary_names, status, headers, body,
                        request_time, response_time, last_used
                 FROM entries WHERE partition = ?1 AND url = ?2",
            )?;
            let variants = statement
                .query_map(params![partition, url], |row| {
                    Ok((read_entry(row)?, row.get::<_, i64>(9)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;

            for (entry, last_used) in variants {
                let Some(entry) = entry else { continue };
                if entry.vary_hash != vary_hash(&rules::vary_key(&entry.vary_names, request)) {
                    continue;
                }
                let now = self.next_use();
                if now != last_used + 1 {
                    connection.execute(
                        "UPDATE entries SET last_used = ?4
                         WHERE partition = ?1 AND url = ?2 AND vary_hash = ?3",
                        params![entry.partition, entry.url, entry.vary_hash, now],
                    )?;
                }
                return Ok(Some(entry));
            }
            Ok(None)
        })
    }

    /// Stores a response, replacing the same variant, then evicts the least recently used
    /// entries beyond the size budget.
    pub(crate) async fn put(
        &self,
        partition: &str,
        url: &str,
        request: &HeaderMap,
        response: &Response,
        timing: Timing,
    ) -> Result<(), Error> {
        let (status, headers, body) = (response.status(), response.headers(), response.bytes());
        let Some(vary_names) = rules::vary_names(headers) else {
            return Ok(());
        };
        let vary_hash = vary_hash(&rules::vary_key(&vary_names, request));
        let encoded_headers = encode_headers(headers);
        let size = (body.len() + encoded_headers.len() + url.len()) as u64;
        if size > self.max_size {
            return Ok(());
        }

        let row = (
            partition.to_owned(),
            url.to_owned(),
            vary_hash,
            serde_json::to_string(&vary_names).unwrap_or_default(),
            status,
            encoded_headers,
            body.to_vec(),
            millis(timing.request_time),
            millis(timing.response_time),
            size,
        );
        let max_size = self.max_size;
        let used = self.next_use();
        self.database
            .call(move |connection| {
                let transaction = connection.transaction()?;
                transaction.execute(
                    "INSERT OR REPLACE INTO entries (partition, url, vary_hash, vary_names,
                         status, headers, body, request_time, response_time, size, last_used)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        row.0,
                        row.1,
                        row.2,
                        row.3,
                        row.4,
                        row.5,
                        row.6,
                        row.7,
                        row.8,
                        row.9 as i64,
                        used
                    ],
                )?;
                evict(&transaction, max_size)?;
                transaction.commit()
            })
            .await
    }

    /// Replaces a stored variant's headers after a 304 and records when it was validated.
    pub(crate) async fn freshen(&self, entry: &Entry) -> Result<(), Error> {
        let row = (
            entry.partition.clone(),
            entry.url.clone(),
            entry.vary_hash.clone(),
            encode_headers(&entry.headers),
            millis(entry.timing.request_time),
            millis(entry.timing.response_time),
        );
        self.database
            .call(move |connection| {
                connection.execute(
                    "UPDATE entries SET headers = ?4, request_time = ?5, response_time = ?6
                     WHERE partition = ?1 AND url = ?2 AND vary_hash = ?3",
                    params![row.0, row.1, row.2, row.3, row.4, row.5],
                )
            })
            .await
            .map(|_| ())
    }

    /// Removes every stored response for `url`, in every partition.
    pub(crate) async fn invalidate(&self, url: String) -> Result<(), Error> {
        self.database
            .call(move |connection| connection.execute("DELETE FROM entries WHERE url = ?1", [url]))
            .await
            .map(|_| ())
    }

    /// Removes every partition whose name starts with `prefix`.
    pub(crate) fn wipe_partitions(&self, prefix: &str) -> Result<usize, Error> {
        let pattern = format!("{}%", prefix.replace('%', ""));
        self.database.call_blocking(|connection| {
            connection.execute("DELETE FROM entries WHERE partition LIKE ?1", [pattern])
        })
    }
}

fn evict(connection: &rusqlite::Connection, max_size: u64) -> rusqlite::Result<()> {
    let mut total: i64 =
        connection.query_row("SELECT coalesce(sum(size), 0) FROM entries", [], |row| {
            row.get(0)
        })?;
    while total as u64 > max_size {
        let oldest: Option<(i64, String, String, String)> = connection
            .query_row(
                "SELECT size, partition, url, vary_hash FROM entries ORDER BY last_used LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((size, partition, url, vary_hash)) = oldest else {
            break;
        };
        connection.execute(
            "DELETE FROM entries WHERE partition = ?1 AND url = ?2 AND vary_hash = ?3",
            params![partition, url, vary_hash],
        )?;
        total -= size;
    }
    Ok(())
}

#[allow(clippy::type_complexity)]
fn read_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Entry>> {
    let vary_names: String = row.get(3)?;
    let headers: String = row.get(5)?;
    let body: Vec<u8> = row.get(6)?;
    let status: i64 = row.get(4)?;
    let (Ok(vary_names), Some(headers), Ok(status)) = (
        serde_json::from_str::<Vec<String>>(&vary_names),
        decode_headers(&headers),
        u16::try_from(status),
    ) else {
        // A row this version cannot read is treated as absent; it will be replaced.
        return Ok(None);
    };

    Ok(Some(Entry {
        partition: row.get(0)?,
        url: row.get(1)?,
        vary_hash: row.get(2)?,
        vary_names,
        status,
        headers,
        body: Bytes::from(body),
        timing: Timing {
            request_time: from_millis(row.get(7)?),
            response_time: from_millis(row.get(8)?),
        },
    }))
}

/// Headers as a JSON list of pairs, without credential headers or non-text values.
fn encode_headers(headers: &HeaderMap) -> String {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| !redact::is_sensitive_header(name))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

fn decode_headers(text: &str) -> Option<HeaderMap> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_str(&value).ok()?);
    }
    Some(headers)
}

fn vary_hash(key: &str) -> String {
    digest::sha256_hex(key.as_bytes())
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}
