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
use crate::filter::Filter;

/// One connection's identity, sink and subscriptions.
pub(crate) struct Session {
    /// Who is connected.
    pub(crate) identity: Identity,
    sink: Arc<dyn Sink>,
    /// `None` once the connection has ended: a subscribe still in flight
    /// then must not leave a subscription behind.
    subs: Mutex<Option<HashMap<u64, Tracked>>>,
    fanout: Fanout,
    budget: SessionBudget,
}

/// A subscription of the connection, and whether its filter scans text.
struct Tracked {
    sub: Arc<Subscription>,
    scans: bool,
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
    /// (of those whose filter scans text, if `filter` does), checked before
    /// a subscription is even registered; [`Session::track`] checks again,
    /// for subscribes racing each other.
    pub(crate) fn check_room(&self, filter: &Filter) -> Result<(), Error> {
        match self.subs.lock().as_mut() {
            Some(subs) => self.room(subs, filter.scans()),
            None => Ok(()),
        }
    }

    /// Whether `subs` has room for one more (that scans, or not).
    /// Subscriptions the fan-out has ended (a `gap`, a refused push) still
    /// sit in the map until the client unsubscribes; at a limit they are
    /// dropped from it, so they do not hold a slot.
    fn room(&self, subs: &mut HashMap<u64, Tracked>, scans: bool) -> Result<(), Error> {
        let (limit, scanning) = (self.budget.max_subscriptions, self.budget.max_scanning_subscriptions);
        let scanning_held = |subs: &HashMap<u64, Tracked>| subs.values().filter(|t| t.scans).count();
        if subs.len() >= limit || (scans && scanning_held(subs) >= scanning) {
            subs.retain(|_, t| !t.sub.is_closed());
        }
        if subs.len() >= limit {
            return Err(Error::TooManySubscriptions { limit });
        }
        if scans && scanning_held(subs) >= scanning {
            return Err(Error::TooManyScanningSubscriptions { limit: scanning });
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
    pub(crate) fn track(&self, sub: &Arc<Subscription>, filter: &Filter) -> Result<Option<u64>, Error> {
        let mut subs = self.subs.lock();
        let Some(subs) = subs.as_mut() else { return Ok(None) };
        let scans = filter.scans();
        self.room(subs, scans)?;
        subs.insert(sub.id, Tracked { sub: sub.clone(), scans });
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
        let tracked = self.subs.lock().as_mut().and_then(|s| s.remove(&id)).ok_or(Error::UnknownSubscription(id))?;
        self.fanout.unsubscribe(tracked.sub);
        Ok(())
    }

    /// Ends every subscription, for good.
    pub(crate) fn close(&self) {
        let subs = self.subs.lock().take().unwrap_or_default();
        for tracked in subs.into_values() {
            self.fanout.unsubscribe(tracked.sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::sink::Nowhere;

    #[allow(dead_code)]
    #[derive(crate::Model)]
    #[wyrm(route = "item")]
    struct Item {
        id: i32,
        text: String,
    }

    fn filter(json: serde_json::Value) -> Filter {
        use crate::model::Model;
        Filter::parse(Item::FIELDS, &json, crate::filter::FieldAccess::All).unwrap()
    }

    fn session(max: usize, scanning: usize) -> Session {
        let fanout = crate::fanout::Fanout::detached();
        let budget = SessionBudget::new(max, 1 << 20, 1, None).scanning(scanning);
        Session::new(Identity::anonymous(), Arc::new(Nowhere), fanout).with_budget(budget)
    }

    #[test]
    fn a_subscription_the_fan_out_ended_does_not_hold_a_slot() {
        let session = session(2, 2);
        let sub = |id| Arc::new(Subscription::new(id, "item", Arc::new(Nowhere)));
        let (one, two, three) = (sub(1), sub(2), sub(3));
        let exact = filter(serde_json::json!({"text": "milk"}));
        assert_eq!(session.track(&one, &exact).unwrap(), Some(1));
        assert_eq!(session.track(&two, &exact).unwrap(), Some(2));
        assert!(matches!(session.track(&three, &exact), Err(Error::TooManySubscriptions { limit: 2 })));
        one.close(); // what a `gap` does
        assert_eq!(session.track(&three, &exact).unwrap(), Some(3), "the ended one is forgotten");
        assert!(session.unsubscribe(1).is_err() && session.unsubscribe(2).is_ok(), "the live one was kept");
    }

    #[test]
    fn subscriptions_that_scan_have_a_budget_of_their_own() {
        let session = session(10, 1);
        let sub = |id| Arc::new(Subscription::new(id, "item", Arc::new(Nowhere)));
        let scanning = filter(serde_json::json!({"text__icontains": "milk"}));
        let exact = filter(serde_json::json!({"text": "milk"}));
        assert_eq!(session.track(&sub(1), &scanning).unwrap(), Some(1));
        assert!(matches!(session.check_room(&scanning), Err(Error::TooManyScanningSubscriptions { limit: 1 })));
        assert!(session.check_room(&exact).is_ok(), "other subscriptions still have room");
        assert_eq!(session.track(&sub(2), &exact).unwrap(), Some(2));
        session.unsubscribe(1).unwrap();
        assert!(session.check_room(&scanning).is_ok(), "unsubscribing frees the slot");
    }
}
