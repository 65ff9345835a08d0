//! The fan-out: committed changes in, events to exactly the subscriptions
//! they concern out, in position order, with nothing lost between a
//! subscription's snapshot and its stream.
//!
//! - [`hub`]: the thread that orders each route's changes ([`stream`]) and
//!   fans them out through the [`registry`] and its equality [`index`];
//! - [`subscription`]: one subscription's state, and [`sequence`]: the one
//!   way a subscription starts, for `subscribe` and `resume` alike;
//! - [`sink`]: what events are delivered to (the transport's outbox);
//! - [`window`]: ordered, limited subscriptions, refreshed per route;
//! - [`catalog`]: the routes served here, and how a change from history or
//!   another process is decoded.
//!
//! The fan-out sits on the store (it reads history through [`History`],
//! which [`Db`] implements) and under the brokers, which carry changes
//! between processes through the [`Broker`] trait defined here and feed the
//! hub through an [`Upstream`].

pub(crate) mod catalog;
pub(crate) mod hub;
pub(crate) mod hubs;
pub(crate) mod index;
pub(crate) mod lane;
pub(crate) mod registry;
pub(crate) mod sequence;
#[cfg(test)]
mod simulation;
pub(crate) mod sink;
pub(crate) mod stream;
pub(crate) mod subscription;
pub(crate) mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

use crate::change::Change;
use crate::error::Error;
use crate::store::history::Page;
use crate::store::{CommitSink, Db};
use hub::Command;
use hubs::Hubs;
use subscription::Subscription;

pub(crate) use catalog::{Catalog, RouteInfo};
pub use registry::RouteStats;

/// Carries committed changes between processes serving one database.
pub(crate) trait Broker: Send + Sync + 'static {
    /// Called after each commit with its changes, in this process's commit
    /// order. Must not block.
    fn publish(&self, changes: &[Change]);

    /// Resolves once changes of `route` committed from now on by other
    /// processes will reach this one (a subscription awaits it before
    /// reading its snapshot).
    fn listen(&self, route: &'static str) -> BoxFuture<'static, ()>;

    /// Whether other processes write through it (so the hub must also look
    /// for changes whose message was lost).
    fn connects_processes(&self) -> bool {
        true
    }

    /// The state of its link to the other processes, when it has one (for
    /// readiness and metrics).
    fn link(&self) -> Option<&LinkStatus> {
        None
    }
}

/// How a broker's link to the other processes is doing: written by the
/// broker's tasks (rarely: on connect, disconnect, a dropped message), read
/// by the readiness check and the metrics endpoint.
#[derive(Debug)]
pub(crate) struct LinkStatus {
    connected: std::sync::atomic::AtomicBool,
    reconnects: AtomicU64,
    dropped: AtomicU64,
    /// From another process handing a commit to its broker to this one
    /// receiving it (same clock on one machine; skewed across machines).
    lag: prometheus_client::metrics::histogram::Histogram,
}

impl Default for LinkStatus {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        LinkStatus {
            connected: Default::default(),
            reconnects: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            // 0.1 ms to ~3 s, doubling.
            lag: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }
}

impl LinkStatus {
    /// A message published `lag` ago arrived.
    pub(crate) fn received(&self, lag: Duration) {
        self.lag.observe(lag.as_secs_f64());
    }

    pub(crate) fn lag(&self) -> &prometheus_client::metrics::histogram::Histogram {
        &self.lag
    }

    /// The listener is connected (`true`) or lost its connection.
    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// The listener connected again after losing its connection.
    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A commit was not published (the outgoing queue was full); returns
    /// how many were, this one included.
    pub(crate) fn drop_message(&self) -> u64 {
        self.dropped.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where missing changes are read back from: the store's history.
pub(crate) trait History: Send + Sync + 'static {
    /// Up to `limit` consecutive history entries of `route` after `after`
    /// (from the first one still kept), with the route's head. May block.
    fn page(&self, route: &'static str, after: u64, limit: usize) -> Result<Page, Error>;
}

impl History for Db {
    fn page(&self, route: &'static str, after: u64, limit: usize) -> Result<Page, Error> {
        self.history_blocking(route, after, limit)
    }
}

/// Subscription counts per route, published by the hub for everyone else
/// (the broker releasing channels nobody watches, the app's stats), and
/// the hubs' repairs, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Watch(RwLock<HashMap<&'static str, RouteStats>>, Repairs);

/// What the hubs had to read back from history (rare: a lost or late
/// message, Redis away), counted when it happens.
#[derive(Debug, Default)]
pub(crate) struct Repairs {
    /// Changes read from history to fill a hole or catch up.
    pub(crate) from_history: AtomicU64,
    /// Holes history could not fill (subscribers got a `gap` frame).
    pub(crate) gaps: AtomicU64,
}

impl Watch {
    pub(crate) fn repairs(&self) -> &Repairs {
        &self.1
    }

    fn set(&self, route: &'static str, stats: RouteStats) {
        let mut routes = self.0.write();
        if stats.subscriptions == 0 {
            routes.remove(route);
        } else {
            routes.insert(route, stats);
        }
    }

    pub(crate) fn stats(&self, route: &str) -> RouteStats {
        self.0.read().get(route).copied().unwrap_or_default()
    }

    pub(crate) fn watched(&self, route: &str) -> bool {
        self.0.read().contains_key(route)
    }
}

/// What a broker may do to this process's fan-out.
#[derive(Clone)]
pub(crate) struct Upstream {
    hubs: Hubs,
    catalog: Arc<Catalog>,
    watch: Arc<Watch>,
}

impl Upstream {
    /// Changes received from another process. Never waits: when the hub's
    /// queue is full they are dropped here, and the stream reads the hole
    /// they leave from history.
    pub(crate) fn offer(&self, changes: Vec<Change>) {
        for (hub, part) in self.hubs.split(changes) {
            if let Err(mpsc::error::TrySendError::Full(_)) = hub.try_send(Command::Changes(part)) {
                tracing::warn!("fan-out queue full; received changes will be read from history");
            }
        }
    }

    /// The broker was away: read what `route` committed meanwhile.
    pub(crate) fn catch_up(&self, route: &'static str) {
        if let Some(hub) = self.hubs.of_route(route) {
            let _ = hub.try_send(Command::CatchUp(route));
        }
    }

    /// Whether any subscription here watches `route`.
    pub(crate) fn watched(&self, route: &str) -> bool {
        self.watch.watched(route)
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// The fan-out of one app: the hub's queue, the broker, and what starting
/// subscriptions need. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Fanout {
    shared: Arc<Shared>,
}

struct Shared {
    hubs: Hubs,
    broker: Arc<dyn Broker>,
    catalog: Arc<Catalog>,
    watch: Arc<Watch>,
    history: Arc<dyn History>,
    epoch: u64,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("routes", &self.shared.catalog.routes().count()).finish()
    }
}

impl Fanout {
    /// Starts the hub for `db` and the routes of `catalog`, with the broker
    /// `broker` builds, and makes `db` hand its commits here.
    pub(crate) fn start(
        db: &Db,
        catalog: Catalog,
        broker: impl FnOnce(Upstream) -> Result<Arc<dyn Broker>, Error>,
    ) -> Result<Fanout, Error> {
        let catalog = Arc::new(catalog);
        let watch = Arc::new(Watch::default());
        let history: Arc<dyn History> = Arc::new(db.clone());
        let (hubs, unstarted) = Hubs::new(&catalog);
        let upstream = Upstream { hubs: hubs.clone(), catalog: catalog.clone(), watch: watch.clone() };
        let broker = broker(upstream)?;
        // With another process writing, a message its broker lost is
        // otherwise noticed only when a later change of its route arrives.
        let sweep = broker.connects_processes().then_some(Duration::from_secs(5));
        unstarted.spawn(&catalog, &history, &watch, sweep);
        let fanout = Fanout {
            shared: Arc::new(Shared {
                hubs,
                broker,
                catalog,
                watch,
                history,
                epoch: db.epoch(),
                next_id: AtomicU64::new(1),
            }),
        };
        db.set_sink(Arc::new(fanout.clone()))?;
        Ok(fanout)
    }

    /// Subscription counts of a route in this process.
    pub(crate) fn stats(&self, route: &str) -> RouteStats {
        self.shared.watch.stats(route)
    }

    /// What the hubs read back from history, and the holes they could not fill.
    pub(crate) fn repairs(&self) -> &Repairs {
        self.shared.watch.repairs()
    }

    /// The broker's link to the other processes, when it has one.
    pub(crate) fn broker_link(&self) -> Option<&LinkStatus> {
        self.shared.broker.link()
    }

    /// The epoch positions are numbered in.
    pub(crate) fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn command(&self, route: &str, command: Command) {
        let Some(hub) = self.shared.hubs.of_route(route) else {
            tracing::error!(route, "no hub for the route");
            return;
        };
        if hub.send(command).await.is_err() {
            tracing::error!(route, "the hub is gone");
        }
    }

    async fn register(&self, sub: Arc<Subscription>, filter: crate::filter::Filter) {
        let (done, registered) = oneshot::channel();
        self.command(sub.route(), Command::Register(sub, filter, done)).await;
        let _ = registered.await;
    }

    async fn start_stream(&self, route: &'static str, after: u64) {
        let (done, started) = oneshot::channel();
        self.command(route, Command::Start(route, after, done)).await;
        let _ = started.await;
    }

    /// Resolves once every change this process committed or received
    /// before the call has been queued to every subscription it concerns.
    pub(crate) async fn settled(&self) {
        let mut answers = Vec::new();
        for hub in self.shared.hubs.all() {
            let (done, settled) = oneshot::channel();
            if hub.send(Command::Settle(done)).await.is_ok() {
                answers.push(settled);
            }
        }
        for settled in answers {
            let _ = settled.await;
        }
    }

    /// Ends a subscription: nothing more is queued for it from now on.
    pub(crate) fn unsubscribe(&self, sub: Arc<Subscription>) {
        sub.close();
        let Some(hub) = self.shared.hubs.of_route(sub.route()) else { return };
        match hub.try_send(Command::Unregister(sub)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let hub = hub.clone();
                tokio::spawn(async move { hub.send(command).await });
            }
        }
    }
}

impl CommitSink for Fanout {
    fn committed(&self, changes: Vec<Change>) {
        self.shared.broker.publish(&changes);
        // On the writer's blocking thread: a full queue holds writes back.
        for (hub, part) in self.shared.hubs.split(changes) {
            if hub.blocking_send(Command::Changes(part)).is_err() {
                tracing::error!("the hub is gone; changes not delivered");
            }
        }
    }
}

/// A fan-out with no hub and no broker, for unit tests of what sits on it.
#[cfg(test)]
impl Fanout {
    pub(crate) fn detached() -> Fanout {
        Fanout {
            shared: Arc::new(Shared {
                hubs: Hubs::default(),
                broker: Arc::new(tests::Quiet),
                catalog: Arc::default(),
                watch: Arc::default(),
                history: Arc::new(tests::NoHistory),
                epoch: 1,
                next_id: AtomicU64::new(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
