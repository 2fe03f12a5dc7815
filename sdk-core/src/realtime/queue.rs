//! The outgoing queue: every message the app sends waits here until a connection takes it.
//!
//! Messages leave in the order they were sent. The queue is bounded; when it is full, the
//! channel's [`Overflow`] rule decides which message is given up. The driver is woken when a
//! message arrives and takes messages in batches, so that many small messages share one flush.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tracing::warn;

use crate::Error;
use crate::realtime::{Message, Overflow};

pub(crate) struct Outbox {
    messages: Mutex<VecDeque<Message>>,
    capacity: usize,
    overflow: Overflow,
    arrived: Notify,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Outbox {
        Outbox {
            messages: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            overflow,
            arrived: Notify::new(),
        }
    }

    /// Queues `message` behind the others, applying the overflow rule when the queue is full.
    pub(crate) fn push(&self, message: Message) -> Result<(), Error> {
        {
            let mut messages = self.lock();
            if messages.len() >= self.capacity {
                match self.overflow {
                    Overflow::DropOldest => {
                        messages.pop_front();
                        warn!(
                            capacity = self.capacity,
                            "outgoing queue full; dropped the oldest"
                        );
                    }
                    Overflow::DropNewest => {
                        warn!(
                            capacity = self.capacity,
                            "outgoing queue full; dropped the newest"
                        );
                        return Ok(());
                    }
                    Overflow::Fail => {
                        return Err(Error::QueueFull {
                            capacity: self.capacity,
                        });
                    }
                }
            }
            messages.push_back(message);
        }

        // One waiter (the driver); a permit is kept if it is busy, so no wake-up is lost.
        self.arrived.notify_one();
        Ok(())
    }

    /// Takes up to `max` messages from the front.
    pub(crate) fn take(&self, max: usize) -> Vec<Message> {
        let mut messages = self.lock();
        let count = messages.len().min(max);
        messages.drain(..count).collect()
    }

    /// Puts messages that could not be written back at the front, in their order.
    pub(crate) fn put_back(&self, batch: Vec<Message>) {
        let mut messages = self.lock();
        for message in batch.into_iter().rev() {
            messages.push_front(message);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) -> usize {
        let mut messages = self.lock();
        let dropped = messages.len();
        messages.clear();
        dropped
    }

    /// Completes when a message was pushed since the last call returned.
    pub(crate) async fn arrived(&self) {
        self.arrived.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Message>> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Message {
        Message::Text(value.to_owned())
    }

    fn texts(outbox: &Outbox) -> Vec<String> {
        outbox
            .take(usize::MAX)
            .into_iter()
            .map(|message| match message {
                Message::Text(text) => text,
                Message::Binary(_) => panic!("binary"),
            })
            .collect()
    }

    fn filled(overflow: Overflow) -> Outbox {
        let outbox = Outbox::new(3, overflow);
        for value in ["a", "b", "c"] {
            outbox.push(text(value)).unwrap();
        }
        outbox
    }

    #[test]
    fn test_messages_leave_in_order_in_batches() {
        let outbox = filled(Overflow::Fail);

        assert_eq!(outbox.take(2).len(), 2);
        assert_eq!(texts(&outbox), ["c"]);
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn test_drop_oldest_keeps_the_newest_messages() {
        let outbox = filled(Overflow::DropOldest);

        outbox.push(text("d")).unwrap();

        assert_eq!(texts(&outbox), ["b", "c", "d"]);
    }

    #[test]
    fn test_drop_newest_keeps_the_queue_as_it_was() {
        let outbox = filled(Overflow::DropNewest);

        outbox.push(text("d")).unwrap();

        assert_eq!(texts(&outbox), ["a", "b", "c"]);
    }

    #[test]
    fn test_fail_reports_a_full_queue() {
        let outbox = filled(Overflow::Fail);

        let refused = outbox.push(text("d"));

        assert!(matches!(refused, Err(Error::QueueFull { capacity: 3 })));
        assert_eq!(texts(&outbox), ["a", "b", "c"]);
    }

    #[test]
    fn test_put_back_restores_the_order() {
        let outbox = filled(Overflow::Fail);
        let batch = outbox.take(2);

        outbox.put_back(batch);

        assert_eq!(texts(&outbox), ["a", "b", "c"]);
    }
}
