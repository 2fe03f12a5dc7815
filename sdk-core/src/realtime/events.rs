//! Delivering events to the app's streams.
//!
//! Every stream returned by [`Channel::events`](crate::realtime::Channel::events) gets every
//! event from the moment it was made. Events that happen while no stream exists (between
//! `open` and the first `events()`, typically) are kept, up to the buffer size, for the first
//! stream. Delivery waits for room in each stream's buffer, so an app that reads slowly slows
//! the channel down instead of losing messages.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;
use tracing::warn;

use crate::realtime::ChannelEvent;

pub(crate) struct Subscribers {
    state: Mutex<State>,
    buffer: usize,
}

struct State {
    senders: Vec<mpsc::Sender<ChannelEvent>>,
    /// Events from before the first stream; `None` once a stream was made.
    early: Option<VecDeque<ChannelEvent>>,
}

impl Subscribers {
    pub(crate) fn new(buffer: usize) -> Subscribers {
        Subscribers {
            state: Mutex::new(State {
                senders: Vec::new(),
                early: Some(VecDeque::new()),
            }),
            buffer: buffer.max(1),
        }
    }

    /// A new stream's receiving end, primed with the events kept for the first stream.
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<ChannelEvent> {
        let mut state = self.lock();
        let early = state.early.take().unwrap_or_default();
        let (sender, receiver) = mpsc::channel(self.buffer.max(early.len()));
        for event in early {
            // The channel was sized for them, so this cannot fail.
            let _ = sender.try_send(event);
        }
        state.senders.push(sender);
        receiver
    }

    /// Delivers `event` to every stream, waiting for room; forgets streams that were dropped.
    pub(crate) async fn deliver(&self, event: ChannelEvent) {
        let senders = {
            let mut state = self.lock();
            if let Some(early) = &mut state.early {
                if early.len() >= self.buffer {
                    early.pop_front();
                    warn!(
                        buffer = self.buffer,
                        "no event stream yet; dropped the oldest event"
                    );
                }
                early.push_back(event);
                return;
            }
            state.senders.retain(|sender| !sender.is_closed());
            state.senders.clone()
        };

        if let [only] = senders.as_slice() {
            let _ = only.send(event).await;
            return;
        }
        for sender in &senders {
            let _ = sender.send(event.clone()).await;
        }
    }

    /// Ends every stream: they yield what they hold, then `None`.
    pub(crate) fn close(&self) {
        self.lock().senders.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::Message;

    fn text(value: &str) -> ChannelEvent {
        ChannelEvent::Message(Message::Text(value.to_owned()))
    }

    fn is_text(event: Option<ChannelEvent>, expected: &str) -> bool {
        matches!(event, Some(ChannelEvent::Message(Message::Text(text))) if text == expected)
    }

    #[tokio::test]
    async fn test_events_before_the_first_stream_are_kept_for_it() {
        let subscribers = Subscribers::new(2);
        for value in ["a", "b", "c"] {
            subscribers.deliver(text(value)).await;
        }

        let mut first = subscribers.subscribe();
        let mut second = subscribers.subscribe();
        let early = [first.recv().await, first.recv().await];
        subscribers.deliver(text("d")).await;

        let [b, c] = early;
        assert!(is_text(b, "b"));
        assert!(is_text(c, "c"));
        assert!(is_text(first.recv().await, "d"));
        assert!(is_text(second.recv().await, "d"));
    }

    #[tokio::test]
    async fn test_dropped_streams_are_forgotten_and_close_ends_the_rest() {
        let subscribers = Subscribers::new(4);
        let dropped = subscribers.subscribe();
        let mut kept = subscribers.subscribe();
        drop(dropped);

        subscribers.deliver(text("a")).await;
        subscribers.close();

        assert!(is_text(kept.recv().await, "a"));
        assert!(kept.recv().await.is_none());
    }
}
