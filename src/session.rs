//! What the routes know of one connection: who is on it, where its frames
//! go, and its subscriptions, all of which end with it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::Identity;
use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::fanout::subscription::Subscription;
use crate::fanout::Fanout;

/// One connection's identity, sink and subscriptions.
pub(crate) struct Session {
    /// Who is connected.
    pub(crate) identity: Identity,
    sink: Arc<dyn Sink>,
    /// `None` once the connection has ended: a subscribe still in flight
    /// then must not leave a subscription behind.
    subs: Mutex<Option<HashMap<u64, Arc<Subscription>>>>,
    fanout: Fanout,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("identity", &self.identity).finish()
    }
}

impl Session {
    pub(crate) fn new(identity: Identity, sink: Arc<dyn Sink>, fanout: Fanout) -> Self {
        Session { identity, sink, subs: Mutex::new(Some(HashMap::new())), fanout }
    }

    /// Where this connection's frames go.
    pub(crate) fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    /// Queues a reply (without waiting: a full queue is a slow consumer).
    pub(crate) fn reply(&self, frame: String) {
        self.sink.push(Outbound::Frame(frame));
    }

    /// Remembers a starting subscription, so the connection's end ends it
    /// too; returns its id, or `None` if the connection has ended already
    /// (the caller then drops it).
    pub(crate) fn track(&self, sub: &Arc<Subscription>) -> Option<u64> {
        let mut subs = self.subs.lock();
        subs.as_mut()?.insert(sub.id, sub.clone());
        Some(sub.id)
    }

    /// Forgets a subscription that failed to start (its opening ends it).
    pub(crate) fn forget(&self, id: u64) {
        if let Some(subs) = self.subs.lock().as_mut() {
            subs.remove(&id);
        }
    }

    /// Ends one of this connection's subscriptions: `unsubscribe`.
    pub(crate) fn unsubscribe(&self, id: u64) -> Result<(), Error> {
        let sub = self.subs.lock().as_mut().and_then(|s| s.remove(&id)).ok_or(Error::UnknownSubscription(id))?;
        self.fanout.unsubscribe(sub);
        Ok(())
    }

    /// Ends every subscription, for good.
    pub(crate) fn close(&self) {
        let subs = self.subs.lock().take().unwrap_or_default();
        for sub in subs.into_values() {
            self.fanout.unsubscribe(sub);
        }
    }
}
