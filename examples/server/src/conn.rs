//! The accept loop, and the kill switch that lets a fault reset one connection.
//!
//! Each accepted TCP stream is wrapped in a [`KillableStream`] and served by
//! hyper-util's automatic builder, which speaks HTTP/1.1 (with upgrades, for
//! WebSockets) and, with prior knowledge, HTTP/2 over cleartext. The connection's [`KillSwitch`] is put in
//! the extensions of every request it carries.
//!
//! Killing the switch does three things: the stream refuses any further read
//! or write, so not one byte of a pending response leaves; the connection task
//! stops serving and drops the connection; and the stream, as it is dropped,
//! sets `SO_LINGER` to zero so the kernel closes the socket with a RST instead
//! of a FIN. The client sees "connection reset", exactly as it would when a
//! load balancer or a flaky mobile network cuts it off.
//!
//! Shutdown stops the accept loop, asks every connection to finish gracefully
//! (idle keep-alive connections close at once, in-flight responses complete),
//! and waits up to [`SHUTDOWN_GRACE`] before aborting what is left.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, info, trace, warn};

/// How long shutdown waits for in-flight connections before aborting them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A handle that aborts one connection with a TCP RST.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch {
    inner: Arc<KillState>,
}

#[derive(Debug, Default)]
struct KillState {
    killed: AtomicBool,
    notify: Notify,
}

impl KillSwitch {
    /// Marks the connection for a reset and wakes its task.
    pub(crate) fn kill(&self) {
        self.inner.killed.store(true, Ordering::SeqCst);

        // `notify_one` keeps a permit when nobody is waiting yet, so the
        // connection task cannot miss the wake-up between two polls.
        self.inner.notify.notify_one();
    }

    fn is_killed(&self) -> bool {
        self.inner.killed.load(Ordering::SeqCst)
    }

    async fn killed(&self) {
        while !self.is_killed() {
            self.inner.notify.notified().await;
        }
    }
}

/// A TCP stream that stops all I/O once its kill switch is thrown, and resets on drop.
struct KillableStream {
    stream: TcpStream,
    kill: KillSwitch,
}

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        if self.kill.is_killed() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection killed",
            ));
        }

        Ok(())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;

        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;

        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;

        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;

        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;

        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if !self.kill.is_killed() {
            return;
        }

        // With a zero linger the close that follows this drop discards unsent
        // data and sends a RST.
        if let Err(err) = self.stream.set_zero_linger() {
            warn!(error = %err, "could not set zero linger");
        }
    }
}

/// Accepts connections until `shutdown` turns true or its sender is dropped.
pub(crate) async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    trace!(%peer, "connection accepted");
                    connections.spawn(serve_connection(stream, app.clone(), shutdown.clone()));
                }
                Err(err) => {
                    // Usually out of file descriptors; back off instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
            _ = shutdown.changed() => break,
        }
    }

    drop(listener);
    debug!(open = connections.len(), "draining connections");

    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            "aborting connections after grace period"
        );
        connections.shutdown().await;
    }

    info!("server stopped");
}

/// Serves one connection until it ends, is killed, or finishes draining after shutdown.
async fn serve_connection(stream: TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "could not set nodelay");
    }

    let kill = KillSwitch::default();
    let io = TokioIo::new(KillableStream {
        stream,
        kill: kill.clone(),
    });

    let request_kill = kill.clone();
    let service = app.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(request_kill.clone());
        req
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());

    // With upgrades, so that `/ws` can take the connection over; the kill switch stays in the
    // stream, so a killed WebSocket is reset like any other connection.
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    tokio::pin!(conn);

    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = kill.killed() => {
                debug!("connection killed");
                return;
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
