//! Brokers carry committed changes from the store to the subscription
//! registries that fan them out.
//!
//! [`LocalBroker`] is the embedded default: one process, one registry. A
//! multi-process broker (Redis) implements the same trait, sending changes to
//! other processes and feeding their own registries.

use std::sync::mpsc;
use std::sync::Arc;

use crate::change::Change;
use crate::registry::Registry;

/// Takes committed changes, in commit order.
pub trait Broker: Send + Sync + 'static {
    /// Called after each commit with that transaction's changes, while the
    /// store's commit lock is held: it must not block.
    fn publish(&self, changes: Vec<Change>);
}

/// The in-process broker: a dedicated fan-out thread delivers each change to
/// the local registry, in order, off the writer's path.
#[derive(Debug)]
pub struct LocalBroker {
    tx: mpsc::Sender<Vec<Change>>,
}

impl LocalBroker {
    /// Starts the fan-out thread for `registry`. It ends when the broker is dropped.
    pub fn new(registry: Arc<Registry>) -> Self {
        let (tx, rx) = mpsc::channel::<Vec<Change>>();
        std::thread::Builder::new()
            .name("wyrm-fanout".into())
            .spawn(move || {
                for batch in rx {
                    for change in &batch {
                        registry.fan_out(change);
                    }
                }
            })
            .expect("spawn the fan-out thread");
        LocalBroker { tx }
    }
}

impl Broker for LocalBroker {
    fn publish(&self, changes: Vec<Change>) {
        if self.tx.send(changes).is_err() {
            tracing::error!("fan-out thread is gone; changes not delivered");
        }
    }
}
