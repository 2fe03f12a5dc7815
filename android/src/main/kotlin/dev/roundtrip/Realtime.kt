// Kotlin shape of realtime channels: a cold Flow of events over the generated listener.
//
// The reconnects, pings, queue and resume all run in Rust; this file only adapts the
// `ChannelListener` callback to a Flow, so the behaviour is the same from Kotlin, Swift and Rust.

package dev.roundtrip

import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow

/**
 * The channel's events, in order: state changes ([ChannelEvent.State]), messages
 * ([ChannelEvent.Text], [ChannelEvent.Binary]) and, with `resume`, events with ids
 * ([ChannelEvent.Event]).
 *
 * Each collection subscribes anew and sees the events from then on; the first collection of a
 * channel also gets the events since it opened, so nothing is missed between
 * `client.channel(...)` and `collect`. The flow completes after the channel stops
 * ([ChannelState.Disconnected]). Cancelling the collector ends the subscription, not the
 * channel: close it with [Channel.disconnect] or `close()`.
 *
 * A slow collector slows the channel down (the Rust side waits while the buffer is full)
 * rather than losing messages.
 *
 * ```kotlin
 * val channel = client.channel(ChannelConfig(path = "/ws", resume = true))
 * channel.events().collect { event ->
 *     when (event) {
 *         is ChannelEvent.Event -> render(event.id, event.data)
 *         is ChannelEvent.State -> showStatus(event.state)
 *         else -> Unit
 *     }
 * }
 * ```
 */
fun Channel.events(): Flow<ChannelEvent> = callbackFlow {
    val events = this
    val subscription = subscribe(object : ChannelListener {
        override fun onEvent(event: ChannelEvent) {
            // Called on the subscription's own thread, which may block here.
            events.trySendBlocking(event)
            if (event is ChannelEvent.State && event.state is ChannelState.Disconnected) {
                events.close()
            }
        }
    })
    awaitClose {
        subscription.cancel()
        subscription.close()
    }
}

/** Whether the channel is connected now. */
val ChannelState.isConnected: Boolean
    get() = this is ChannelState.Connected
