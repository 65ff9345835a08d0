//! What the routes know of one connection: who is on it, where its frames
//! go, its subscriptions, presence topics and channels, all of which end
//! with it, and its budget (how many subscriptions and topics, how large a
//! reply, how many database turns at once).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::Identity;
use crate::budget::{DbTurn, LiveLimits, SessionBudget};
use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::fanout::subscription::Subscription;
use crate::fanout::Fanout;
use crate::filter::Filter;
use crate::presence::channels::Channels;
use crate::presence::Presence;
use crate::write_order::{Ticket, WriteOrder};

/// Numbers connections, for the presence and channel registries.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

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
    /// Names this connection in the presence and channel registries.
    conn: u64,
    live: Option<(Arc<Presence>, Arc<Channels>)>,
    /// Presence topics and channels joined; `None` once the connection has
    /// ended (a join still in flight then takes itself back).
    joined: Mutex<Option<Joined>>,
    /// The order the connection's writes apply in.
    writes: WriteOrder,
}

#[derive(Default)]
struct Joined {
    topics: HashSet<String>,
    channels: HashSet<String>,
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
        Session {
            identity,
            sink,
            subs: Mutex::new(Some(HashMap::new())),
            fanout,
            budget: SessionBudget::default(),
            conn: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            live: None,
            joined: Mutex::new(Some(Joined::default())),
            writes: WriteOrder::default(),
        }
    }

    /// The same session, in the app's presence and channel registries (a
    /// signed-in one also reachable by `to_user` from now on).
    pub(crate) fn with_live(mut self, presence: Arc<Presence>, channels: Arc<Channels>) -> Self {
        if let Some(user) = self.identity.user_id() {
            channels.connect_user(user, self.conn, self.sink.clone());
        }
        self.live = Some((presence, channels));
        self
    }

    /// The place of a request just read in the order of the connection's
    /// writes; taken in arrival order, before the request's task is spawned.
    pub(crate) fn ticket(&self, write: bool) -> Ticket {
        self.writes.ticket(write)
    }

    /// This connection's number in the presence and channel registries.
    pub(crate) fn conn(&self) -> u64 {
        self.conn
    }

    /// The bounds on this connection's presence and channels.
    pub(crate) fn live_limits(&self) -> &LiveLimits {
        &self.budget.live
    }

    /// Counts a presence topic joined: false if it was already, or the
    /// connection has ended; `too_many_topics` at the limit.
    pub(crate) fn add_topic(&self, topic: &str) -> Result<bool, Error> {
        let limit = self.budget.live.max_topics;
        self.add_joined(|j| &mut j.topics, topic, limit, "presence topics")
    }

    /// Counts a channel subscribed, like [`Session::add_topic`].
    pub(crate) fn add_channel(&self, channel: &str) -> Result<bool, Error> {
        let limit = self.budget.live.max_channels;
        self.add_joined(|j| &mut j.channels, channel, limit, "channels")
    }

    fn add_joined(
        &self,
        set: impl Fn(&mut Joined) -> &mut HashSet<String>,
        name: &str,
        limit: usize,
        what: &'static str,
    ) -> Result<bool, Error> {
        let mut joined = self.joined.lock();
        let Some(joined) = joined.as_mut() else { return Ok(false) };
        let set = set(joined);
        if set.contains(name) {
            return Ok(false);
        }
        if set.len() >= limit {
            return Err(Error::TooManyTopics { what, limit });
        }
        Ok(set.insert(name.to_owned()))
    }

    /// Whether the connection (still) holds the topic.
    pub(crate) fn holds_topic(&self, topic: &str) -> bool {
        self.joined.lock().as_ref().is_some_and(|j| j.topics.contains(topic))
    }

    /// Whether the connection (still) holds the channel.
    pub(crate) fn holds_channel(&self, channel: &str) -> bool {
        self.joined.lock().as_ref().is_some_and(|j| j.channels.contains(channel))
    }

    /// Frees a topic's slot.
    pub(crate) fn left_topic(&self, topic: &str) {
        if let Some(j) = self.joined.lock().as_mut() {
            j.topics.remove(topic);
        }
    }

    /// Frees a channel's slot.
    pub(crate) fn left_channel(&self, channel: &str) {
        if let Some(j) = self.joined.lock().as_mut() {
            j.channels.remove(channel);
        }
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

    /// Ends every subscription, presence and channel, for good.
    pub(crate) fn close(&self) {
        let subs = self.subs.lock().take().unwrap_or_default();
        for tracked in subs.into_values() {
            self.fanout.unsubscribe(tracked.sub);
        }
        let joined = self.joined.lock().take().unwrap_or_default();
        if let Some((presence, channels)) = &self.live {
            for topic in &joined.topics {
                presence.leave(self.conn, topic);
            }
            for channel in &joined.channels {
                channels.unsubscribe(channel, self.conn);
            }
            if let Some(user) = self.identity.user_id() {
                channels.disconnect_user(user, self.conn);
            }
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
