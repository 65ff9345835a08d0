//! What the routes know of one connection: who is on it, where its frames
//! go, its subscriptions, all of which end with it, and its budget (how many
//! subscriptions, how large a reply, how many database turns at once).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::Identity;
use crate::budget::{DbTurn, SessionBudget};
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
    budget: SessionBudget,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("identity", &self.identity).finish()
    }
}

impl Session {
    pub(crate) fn new(identity: Identity, sink: Arc<dyn Sink>, fanout: Fanout) -> Self {
        Session { identity, sink, subs: Mutex::new(Some(HashMap::new())), fanout, budget: SessionBudget::default() }
    }

    /// The same session with this connection's budget.
    pub(crate) fn with_budget(mut self, budget: SessionBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The largest reply frame this connection may be sent, in bytes.
    pub(crate) fn max_reply_bytes(&self) -> usize {
        self.budget.max_reply_bytes
    }

    /// Waits for this connection's turn at the database (see
    /// [`SessionBudget::db_turn`]); hold it while reading or writing.
    pub(crate) async fn db_turn(&self) -> DbTurn {
        self.budget.db_turn().await
    }

    /// `too_many_subscriptions` when the connection holds as many as it may
    /// (checked before a subscription is even registered; [`Session::track`]
    /// checks again, for subscribes racing each other).
    pub(crate) fn check_room(&self) -> Result<(), Error> {
        match self.subs.lock().as_mut() {
            Some(subs) => Self::room(subs, self.budget.max_subscriptions),
            None => Ok(()),
        }
    }

    /// Whether `subs` has room for one more. Subscriptions the fan-out has
    /// ended (a `gap`, a refused push) still sit in the map until the client
    /// unsubscribes; at the limit they are dropped from it, so they do not
    /// hold a slot.
    fn room(subs: &mut HashMap<u64, Arc<Subscription>>, limit: usize) -> Result<(), Error> {
        if subs.len() >= limit {
            subs.retain(|_, sub| !sub.is_closed());
        }
        if subs.len() >= limit {
            return Err(Error::TooManySubscriptions { limit });
        }
        Ok(())
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
    /// (the caller then drops it), or `too_many_subscriptions`.
    pub(crate) fn track(&self, sub: &Arc<Subscription>) -> Result<Option<u64>, Error> {
        let mut subs = self.subs.lock();
        let Some(subs) = subs.as_mut() else { return Ok(None) };
        Self::room(subs, self.budget.max_subscriptions)?;
        subs.insert(sub.id, sub.clone());
        Ok(Some(sub.id))
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

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::*;

    struct Nowhere;

    impl Sink for Nowhere {
        fn push(&self, _frame: Outbound) -> bool {
            true
        }

        fn send(&self, _frame: Outbound) -> BoxFuture<'_, bool> {
            Box::pin(std::future::ready(true))
        }
    }

    #[test]
    fn a_subscription_the_fan_out_ended_does_not_hold_a_slot() {
        let sub = |id| Arc::new(Subscription::new(id, "item", Arc::new(Nowhere)));
        let mut subs: HashMap<u64, Arc<Subscription>> = [(1, sub(1)), (2, sub(2))].into_iter().collect();
        assert!(matches!(Session::room(&mut subs, 2), Err(Error::TooManySubscriptions { limit: 2 })));
        subs[&1].close(); // what a `gap` does
        assert!(Session::room(&mut subs, 2).is_ok());
        assert_eq!(subs.keys().collect::<Vec<_>>(), [&2], "the ended one is forgotten, the live one kept");
        assert!(Session::room(&mut subs, 3).is_ok() && subs.len() == 1);
    }
}
