// Coroutine access to the session events of a `Client` built with OAuth settings.
//
// Signing in and out, refreshing and storing tokens all happen in Rust; this
// file only adapts the generated listener registration to a `Flow`.

package dev.roundtrip

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow

/**
 * The changes of this client's session, as a cold [Flow]: [SessionEvent.SIGNED_IN] after a
 * sign-in, [SessionEvent.REFRESHED] after each token refresh, [SessionEvent.EXPIRED] when the
 * server ends the session (show sign-in again), [SessionEvent.SIGNED_OUT] after [Client.signOut].
 *
 * Each collector registers its own listener when it starts collecting, and receives the events
 * that happen from then on, in order; nothing is replayed, so read [Client.isSignedIn] for the
 * current state. Cancelling the collecting coroutine cancels the registration.
 *
 * Events are buffered without bound rather than dropped, so a slow collector never blocks
 * the SDK's threads; they are rare, so the buffer stays small.
 *
 * ```kotlin
 * lifecycleScope.launch {
 *     client.sessionEvents().collect { event ->
 *         if (event == SessionEvent.EXPIRED) showSignIn()
 *     }
 * }
 * ```
 *
 * @throws RoundtripException.InvalidInput from collection when the client was built without
 *   [ClientConfig.oauth].
 */
fun Client.sessionEvents(): Flow<SessionEvent> = callbackFlow {
    val listener = object : SessionListener {
        override fun onEvent(event: SessionEvent) {
            // Only fails once the flow is closed, when the event is no longer wanted.
            trySend(event)
        }
    }
    val subscription = subscribeSessionEvents(listener)

    awaitClose {
        subscription.cancel()
        subscription.close()
    }
}.buffer(Channel.UNLIMITED)
