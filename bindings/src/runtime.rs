//! The tokio runtime that runs every async call made from Kotlin or Swift.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::RoundtripError;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("roundtrip")
        .enable_all()
        .build()
        .expect("the roundtrip runtime could not start")
});

/// Runs `work` on the calling thread, which must not be one of the runtime's, with the runtime's
/// timers and I/O available.
pub(crate) fn block_on<F: Future>(work: F) -> F::Output {
    RUNTIME.block_on(work)
}

/// Makes the runtime current on this thread while the guard lives, so that the core can start
/// its background tasks (push registration) from a call made on an app thread.
pub(crate) fn enter() -> tokio::runtime::EnterGuard<'static> {
    RUNTIME.enter()
}

/// Runs `work` on the runtime. Dropping the returned future, or cancelling `cancellation`, aborts
/// the work.
pub(crate) async fn run<T, F>(
    work: F,
    cancellation: Option<Arc<CancellationToken>>,
) -> Result<T, RoundtripError>
where
    F: Future<Output = Result<T, RoundtripError>> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(RUNTIME.spawn(work));
    let cancelled = async {
        match &cancellation {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };

    let joined = tokio::select! {
        biased;
        () = cancelled => return Err(cancelled_error()),
        joined = &mut task.0 => joined,
    };
    match joined {
        Ok(result) => result,
        Err(error) if error.is_panic() => Err(RoundtripError::Internal {
            reason: "the operation panicked; please report this".to_owned(),
        }),
        Err(_) => Err(cancelled_error()),
    }
}

fn cancelled_error() -> RoundtripError {
    RoundtripError::Cancelled {
        reason: "the operation was cancelled".to_owned(),
    }
}

/// Cancels the calls it is passed to.
///
/// Kotlin does not need it: cancelling a coroutine already drops the Rust future. Swift's async
/// calls cannot be dropped from outside, so the Swift helpers pass a token to `send` and cancel it
/// from `withTaskCancellationHandler`.
#[derive(uniffi::Object, Default)]
pub struct CancellationToken {
    token: tokio_util::sync::CancellationToken,
}

#[uniffi::export]
impl CancellationToken {
    /// A token that is not cancelled yet.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancellationToken::default())
    }

    /// Cancels every call this token was passed to; calls passed it later fail at once.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether [`CancellationToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl CancellationToken {
    async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

/// Spawns background work on the runtime, such as forwarding events to a listener.
pub(crate) fn spawn<F>(work: F) -> tokio::task::AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    RUNTIME.spawn(work).abort_handle()
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_panic_becomes_an_internal_error() {
        let outcome = RUNTIME.block_on(run(async { panic!("boom") as Result<(), _> }, None));

        assert!(matches!(outcome, Err(RoundtripError::Internal { .. })));
    }

    #[test]
    fn test_a_cancelled_token_stops_the_work() {
        let token = CancellationToken::new();
        let (finished_tx, finished_rx) = std::sync::mpsc::channel();
        let work = async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            finished_tx.send(()).ok();
            Ok(())
        };

        token.cancel();
        let outcome = RUNTIME.block_on(run(work, Some(token)));

        assert!(matches!(outcome, Err(RoundtripError::Cancelled { .. })));
        let aborted = finished_rx.recv_timeout(std::time::Duration::from_millis(500));
        assert!(aborted.is_err(), "the work ran on after cancellation");
    }
}
