//! The Roundtrip reference server: the backend contract, executable.
//!
//! It serves a small todo API backed by SQLite, a handful of endpoints made to
//! exercise an HTTP client (echo, redirects, large and slow bodies, arbitrary
//! statuses, resources with scripted caching headers), idempotency keys on
//! every write, and test controls under
//! `/_control` that inject faults (error statuses, delays, TCP resets) and
//! report what the server saw. It is also an OAuth 2.0 authorization server
//! guarding `/me` and the WebSocket endpoint `/ws` (echo, publish, event
//! replay) for the SDK's sign-in, token refresh and realtime tests, and a device
//! registry (`/devices/{installation_id}`) where apps register their push
//! tokens. `docs/server-contract.md` describes the contract
//! for backend teams; this crate is what the SDK's tests run against.
//!
//! Tests embed it in-process:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = roundtrip_server::start(roundtrip_server::Config::default()).await?;
//! println!("serving on {}", server.base_url());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod app;
mod cache;
mod conn;
mod control;
mod db;
mod devices;
mod faults;
mod fixtures;
mod idempotency;
mod oauth;
mod problem;
mod realtime;
mod stats;
mod todos;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::app::AppState;
use crate::db::Db;

/// Where the server listens and where it keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The address to bind. The default, `127.0.0.1:0`, picks a free loopback port.
    pub addr: SocketAddr,

    /// The SQLite file, opened in WAL mode and created if missing. `None` keeps
    /// the data in memory, private to this server and gone when it stops.
    pub database: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            database: None,
        }
    }
}

/// A server that is accepting connections.
///
/// Dropping it asks the server to stop, without waiting; [`shutdown`](Self::shutdown)
/// stops it and waits until it has.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The address the server is bound to, with the real port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to prefix paths with, such as `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to stop.
    ///
    /// Connections still busy after a few seconds are aborted.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);

        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Opens the database, binds the address and starts serving on the current tokio runtime.
///
/// Fails when the database cannot be opened or the address cannot be bound.
pub async fn start(config: Config) -> io::Result<RunningServer> {
    let database = config.database.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(database.as_deref()))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;

    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let app = app::router(AppState::new(db, shutdown_rx.clone()));

    let task = tokio::spawn(conn::serve(listener, app, shutdown_rx));
    info!(%addr, database = ?config.database, "server listening");

    Ok(RunningServer {
        addr,
        shutdown,
        task: Some(task),
    })
}
