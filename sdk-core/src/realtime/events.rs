//! Delivering events to the app's streams.
//!
//! Every stream returned by [`Channel::events`](crate::realtime::Channel::events) gets every
//! event from the moment it was made. Events that happen while no stream exists (between
//! `open` and the first `events()`, typically) are kept, up to the buffer size, for the first
//! stream. Delivery waits for room in each stream's buffer, so an app that reads slowly slows
//! the channel down instead of losing messages.
//!
//! Events travel in batches (the messages that arrived together), which keeps the cost of
//! handing them to another task low; the buffer is still counted in events, with a semaphore
//! whose permits the stream gives back as it takes batches.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use futures_util::Stream;

use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

use crate::realtime::ChannelEvent;

pub(crate) struct Subscribers {
    state: Mutex<State>,
    buffer: usize,
}

struct State {
    senders: Vec<Sender>,
    /// Events from before the first stream; `None` once a stream was made.
    early: Option<VecDeque<ChannelEvent>>,
}

/// The sending end of one stream.
#[derive(Clone)]
struct Sender {
    batches: mpsc::UnboundedSender<Vec<ChannelEvent>>,
    room: Arc<Semaphore>,
}

/// The receiving end of one stream.
pub(crate) struct Receiver {
    batches: mpsc::UnboundedReceiver<Vec<ChannelEvent>>,
    room: Arc<Semaphore>,
    ready: VecDeque<ChannelEvent>,
    buffer: usize,
}

impl Receiver {
    /// The next event; `None` once the channel stopped and every event was taken.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<ChannelEvent> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelEvent>> {
        if let Some(event) = self.ready.pop_front() {
            return Poll::Ready(Some(event));
        }
        let Some(batch) = ready!(self.batches.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        self.room.add_permits(batch.len().min(self.buffer));
        self.ready.extend(batch);
        Poll::Ready(self.ready.pop_front())
    }
}

/// A stream's events, one at a time: what [`Channel::events`](crate::realtime::Channel::events)
/// returns.
impl Stream for Receiver {
    type Item = ChannelEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChannelEvent>> {
        self.poll_recv(cx)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Wakes a delivery waiting for room that will never come.
        self.room.close();
    }
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
    pub(crate) fn subscribe(&self) -> Receiver {
        let mut state = self.lock();
        let early: Vec<_> = state.early.take().unwrap_or_default().into();
        let (sender, receiver) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(self.buffer));
        let sender = Sender {
            batches: sender,
            room: Arc::clone(&room),
        };
        if !early.is_empty() {
            // Kept within the buffer size, so the permits are there.
            if let Ok(permits) = room.try_acquire_many(permits(early.len(), self.buffer)) {
                permits.forget();
            }
            let _ = sender.batches.send(early);
        }
        state.senders.push(sender);
        Receiver {
            batches: receiver,
            room,
            ready: VecDeque::new(),
            buffer: self.buffer,
        }
    }

    /// Delivers `events` to every stream, waiting for room; forgets streams that were dropped.
    pub(crate) async fn deliver(&self, events: Vec<ChannelEvent>) {
        if events.is_empty() {
            return;
        }
        let senders = {
            let mut state = self.lock();
            if let Some(early) = &mut state.early {
                for event in events {
                    if early.len() >= self.buffer {
                        early.pop_front();
                        warn!(
                            buffer = self.buffer,
                            "no event stream yet; dropped the oldest event"
                        );
                    }
                    early.push_back(event);
                }
                return;
            }
            state.senders.retain(|sender| !sender.batches.is_closed());
            state.senders.clone()
        };

        let last = senders.len().saturating_sub(1);
        let mut events = Some(events);
        for (index, sender) in senders.iter().enumerate() {
            let batch = if index == last {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            self.send(sender, batch).await;
        }
    }

    async fn send(&self, sender: &Sender, batch: Vec<ChannelEvent>) {
        let needed = permits(batch.len(), self.buffer);
        let permits = match sender.room.try_acquire_many(needed) {
            Ok(permits) => Ok(permits),
            Err(_) => sender.room.acquire_many(needed).await,
        };
        // Closed: the stream was dropped while this waited.
        if let Ok(permits) = permits {
            permits.forget();
            let _ = sender.batches.send(batch);
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

/// The permits a batch takes: one per event, a batch larger than the buffer taking all of it.
fn permits(events: usize, buffer: usize) -> u32 {
    u32::try_from(events.min(buffer)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::Message;

    fn text(value: &str) -> Vec<ChannelEvent> {
        vec![ChannelEvent::Message(Message::Text(value.to_owned()))]
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

    #[tokio::test]
    async fn test_a_full_stream_holds_delivery_back_until_it_is_read() {
        let subscribers = Arc::new(Subscribers::new(2));
        let mut stream = subscribers.subscribe();
        subscribers.deliver(text("a")).await;
        subscribers.deliver(text("b")).await;

        let blocked = tokio::spawn({
            let subscribers = Arc::clone(&subscribers);
            async move { subscribers.deliver(text("c")).await }
        });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished());

        assert!(is_text(stream.recv().await, "a"));
        blocked.await.unwrap();
        assert!(is_text(stream.recv().await, "b"));
        assert!(is_text(stream.recv().await, "c"));
    }
}
