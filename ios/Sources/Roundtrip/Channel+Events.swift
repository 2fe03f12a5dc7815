// Swift shape of realtime channels: an AsyncStream of events over the generated listener.
//
// The reconnects, pings, queue and resume all run in Rust; this file only adapts the
// `ChannelListener` callback to an `AsyncStream`.

import Foundation

extension Channel {
    /// The channel's events, in order: state changes, messages and, with `resume`, events with
    /// ids.
    ///
    /// Each call subscribes anew; the first subscription of a channel also gets the events
    /// since it opened. The stream finishes after the channel stops (`.disconnected`).
    /// Cancelling the iterating task ends the subscription, not the channel: close it with
    /// `disconnect()`.
    ///
    /// ```swift
    /// let channel = try client.channel(config: ChannelConfig(path: "/ws", resume: true))
    /// for await event in channel.events() {
    ///     if case let .event(id, data) = event { render(id, data) }
    /// }
    /// ```
    public func events(
        bufferingPolicy: AsyncStream<ChannelEvent>.Continuation.BufferingPolicy = .unbounded
    ) -> AsyncStream<ChannelEvent> {
        AsyncStream(bufferingPolicy: bufferingPolicy) { continuation in
            let subscription = subscribe(listener: StreamListener(continuation))
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }
}

/// Forwards each event to an `AsyncStream`, and finishes it when the channel stops.
private final class StreamListener: ChannelListener, @unchecked Sendable {
    // The continuation is thread-safe; the Rust side calls from one thread, in order.
    private let continuation: AsyncStream<ChannelEvent>.Continuation

    init(_ continuation: AsyncStream<ChannelEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: ChannelEvent) {
        continuation.yield(event)
        if case .state(state: .disconnected) = event {
            continuation.finish()
        }
    }
}
