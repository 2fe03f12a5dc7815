//! The network state, as the app reports it.
//!
//! Mobile platforms know when the device loses its network long before a socket times out. The app
//! forwards that signal (`ConnectivityManager` on Android, `NWPathMonitor` on iOS) to
//! [`Client::set_online`](crate::Client::set_online). While the device is known to be offline,
//! requests fail at once with [`Error::Offline`](crate::Error::Offline) instead of waiting for a
//! timeout, and retry waits are cut short. Other parts of the SDK subscribe to changes.

use std::sync::Arc;

use tokio::sync::watch;

/// A shared, observable online/offline flag. Clones observe the same state.
#[derive(Clone, Debug)]
pub struct Connectivity {
    state: Arc<watch::Sender<bool>>,
}

impl Default for Connectivity {
    fn default() -> Self {
        Connectivity {
            state: Arc::new(watch::Sender::new(true)),
        }
    }
}

impl Connectivity {
    /// Records whether the device has a network. Observers are told only of real changes.
    pub fn set_online(&self, online: bool) {
        self.state.send_if_modified(|current| {
            let changed = *current != online;
            *current = online;
            changed
        });
    }

    /// Whether the device was last reported to have a network. Starts out `true`.
    pub fn is_online(&self) -> bool {
        *self.state.borrow()
    }

    /// A receiver that sees every change of state.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.subscribe()
    }

    /// Completes when the device is reported offline; at once if it already is.
    pub async fn wait_offline(&self) {
        let mut receiver = self.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = receiver.wait_for(|online| !online).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_observers_see_changes_but_not_repeats() {
        let connectivity = Connectivity::default();
        let mut receiver = connectivity.subscribe();

        connectivity.set_online(true);
        assert!(!receiver.has_changed().unwrap());

        connectivity.set_online(false);
        assert!(receiver.has_changed().unwrap());
        assert!(!*receiver.borrow_and_update());
        assert!(!connectivity.is_online());
    }

    #[tokio::test]
    async fn test_wait_offline_wakes_on_the_change() {
        let connectivity = Connectivity::default();
        let waiter = tokio::spawn({
            let connectivity = connectivity.clone();
            async move { connectivity.wait_offline().await }
        });

        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());

        connectivity.set_online(false);
        waiter.await.unwrap();
    }
}
