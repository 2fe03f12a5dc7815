// Async access to the session events of a `Client` built with OAuth settings.
//
// Signing in and out, refreshing and storing tokens all happen in Rust; this
// file only adapts the generated listener registration to an `AsyncStream`.

import Foundation

extension Client {
    /// The changes of this client's session: `.signedIn` after a sign-in, `.refreshed` after
    /// each token refresh, `.expired` when the server ends the session (show sign-in again),
    /// `.signedOut` after `signOut()`.
    ///
    /// Each read of the property registers a new listener at once, so the stream holds every
    /// event from that moment on, in order, even before it is iterated; nothing earlier is
    /// replayed, so read `isSignedIn()` for the current state. Ending the iteration (for
    /// example by cancelling the task that runs it) cancels the registration. Events are
    /// buffered without bound, so a slow reader never blocks the SDK's threads.
    ///
    /// ```swift
    /// Task {
    ///     for await event in client.sessionEvents where event == .expired {
    ///         await showSignIn()
    ///     }
    /// }
    /// ```
    ///
    /// A client built without `ClientConfig.oauth` has no session: its stream finishes at once.
    public var sessionEvents: AsyncStream<SessionEvent> {
        AsyncStream(bufferingPolicy: .unbounded) { continuation in
            let listener = StreamingSessionListener(continuation: continuation)
            do {
                let subscription = try subscribeSessionEvents(listener: listener)
                continuation.onTermination = { _ in
                    subscription.cancel()
                }
            } catch {
                continuation.finish()
            }
        }
    }
}

/// Forwards each event from the SDK's threads into an `AsyncStream`.
private final class StreamingSessionListener: SessionListener {
    private let continuation: AsyncStream<SessionEvent>.Continuation

    init(continuation: AsyncStream<SessionEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: SessionEvent) {
        continuation.yield(event)
    }
}
