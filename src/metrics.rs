//! The Prometheus endpoint: what an operator needs to see how a running
//! server is doing, in the text exposition format (OpenMetrics, written by
//! `prometheus-client`), served at the path given to
//! [`crate::Builder::metrics_path`] and nowhere by default.
//!
//! Counting must not slow down what it counts. Requests are counted once
//! each (a request costs far more than a labelled counter). Frames and
//! bytes sent are summed by each connection's task over a batch and added
//! once per batch, never per delivery and never on the fan-out's threads.
//! Everything that is a level rather than a count (connections open,
//! subscriptions and groups per route, presence members, Redis connected)
//! is read from the live state at scrape time, so it costs nothing between
//! scrapes. `docs/operations.md` lists every metric with its labels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::router::Router;

/// The content type of the exposition format `prometheus-client` writes.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    verb: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    route: String,
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type Latencies = Family<VerbLabels, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s, doubling: a cached read to a stuck transaction.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The counters kept between scrapes (the levels are read at scrape time).
#[derive(Debug)]
pub(crate) struct Metrics {
    connections: Counter,
    requests: Family<RequestLabels, Counter>,
    latency: Latencies,
    closes: Family<CloseLabels, Counter>,
    frames_sent: Counter,
    events_sent: Counter,
    bytes_sent: Counter,
    /// Set by [`Metrics::refuse_upgrade`]: upgrades refused at admission (HTTP 429/503).
    upgrades_refused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Counter::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            closes: Family::default(),
            frames_sent: Counter::default(),
            events_sent: Counter::default(),
            bytes_sent: Counter::default(),
            upgrades_refused: AtomicU64::new(0),
        }
    }
}

/// The connections' levels at scrape time, from the transport that holds them.
#[derive(Debug)]
pub(crate) struct Levels {
    pub(crate) connections_open: usize,
    pub(crate) outbox_peak_bytes: usize,
    pub(crate) draining: bool,
}

/// What one connection's task sent since it last reported, kept in the task
/// (no sharing) and added to the app's counters once per batch.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub(crate) frames: u64,
    pub(crate) events: u64,
    pub(crate) bytes: u64,
}

impl Metrics {
    /// A connection was opened (upgraded and admitted).
    pub(crate) fn connection_opened(&self) {
        self.connections.inc();
    }

    /// An upgrade was refused after authentication (a cap, or draining).
    pub(crate) fn refuse_upgrade(&self) {
        self.upgrades_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed with `code` (1000 when the client closed first).
    pub(crate) fn connection_closed(&self, code: u16) {
        self.closes.get_or_create(&CloseLabels { code }).inc();
    }

    /// Adds what a batch sent, and empties it.
    pub(crate) fn add_sent(&self, sent: &mut Sent) {
        if sent.frames == 0 {
            return;
        }
        self.frames_sent.inc_by(sent.frames);
        self.events_sent.inc_by(sent.events);
        self.bytes_sent.inc_by(sent.bytes);
        *sent = Sent::default();
    }

    /// One request ended with `code` (`"ok"` or an error code) after
    /// `took`. A route or verb the app does not have is counted with empty
    /// names: a client must not grow the label sets without end.
    pub(crate) fn request(&self, router: &Router, route: &str, verb: &str, code: &'static str, took: Duration) {
        let known = router.knows_route(route) && code != "unknown_verb";
        let (route, verb) = if known { (route.to_owned(), verb.to_owned()) } else { (String::new(), String::new()) };
        self.latency
            .get_or_create(&VerbLabels { route: route.clone(), verb: verb.clone() })
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { route, verb, code }).inc();
    }

    /// The exposition text: the counters, and the levels read now.
    pub(crate) fn render(&self, router: &Router, levels: &Levels) -> String {
        let mut registry = Registry::with_prefix("wyrmhole");
        registry.register("connections_opened", "Connections admitted since start", self.connections.clone());
        registry.register(
            "upgrades_refused",
            "Upgrades refused after authentication (connection caps, draining)",
            counter(self.upgrades_refused.load(Ordering::Relaxed)),
        );
        registry.register(
            "connection_closes",
            "Connections closed, by close code (4008: slow consumer, 4001: heartbeat, 1012: drain)",
            self.closes.clone(),
        );
        registry.register("requests", "Requests answered, by route, verb and reply code", self.requests.clone());
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its reply, by route and verb",
            prometheus_client::registry::Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "frames_sent",
            "Frames handed to sockets (replies, events, pushes)",
            self.frames_sent.clone(),
        );
        registry.register("events_sent", "Change events handed to sockets", self.events_sent.clone());
        registry.register_with_unit(
            "sent",
            "Bytes of frames handed to sockets",
            prometheus_client::registry::Unit::Bytes,
            self.bytes_sent.clone(),
        );
        registry.register("connections_open", "Connections open now", gauge(levels.connections_open));
        registry.register(
            "outbox_peak_bytes",
            "The most bytes any one connection's outbound queue has held",
            gauge(levels.outbox_peak_bytes),
        );
        registry.register("draining", "1 while the server drains (not ready)", gauge(usize::from(levels.draining)));
        let subscriptions = Family::<RouteLabels, Gauge>::default();
        let groups = Family::<RouteLabels, Gauge>::default();
        for route in router.route_names() {
            let stats = router.fanout.stats(route);
            subscriptions.get_or_create(&RouteLabels { route }).set(stats.subscriptions as i64);
            groups.get_or_create(&RouteLabels { route }).set(stats.groups as i64);
        }
        registry.register("subscriptions", "Subscriptions held in this process, by route", subscriptions);
        registry.register("filter_groups", "Distinct effective filters among them, by route", groups);
        let (topics, members) = router.live.presence.counts();
        registry.register("presence_topics", "Presence topics with members", gauge(topics));
        registry.register("presence_members", "Presence members, of every process", gauge(members));
        let (channels, delivered) = router.live.channels.counts();
        registry.register("channels", "Channels with subscribers in this process", gauge(channels));
        registry.register(
            "channel_messages_delivered",
            "Channel messages and pushes handed to this process's connections, one per connection reached",
            counter(delivered),
        );
        let repairs = router.fanout.repairs();
        registry.register(
            "hub_changes_from_history",
            "Changes the hubs read back from history (a lost or late message, Redis away)",
            counter(repairs.from_history.load(Ordering::Relaxed)),
        );
        registry.register(
            "hub_gaps",
            "Holes history could not fill (their subscribers were sent a gap frame)",
            counter(repairs.gaps.load(Ordering::Relaxed)),
        );
        let writes = router.db.write_stats();
        registry.register("write_transactions", "Write transactions, by outcome", writes.outcomes.clone());
        registry.register_with_unit(
            "write_duration",
            "Time a write transaction took, its wait for the write connection included",
            prometheus_client::registry::Unit::Seconds,
            writes.seconds.clone(),
        );
        if let Some(link) = router.fanout.broker_link() {
            registry.register(
                "redis_connected",
                "1 while the Redis listener is connected",
                gauge(link.connected() as usize),
            );
            registry.register("redis_reconnects", "Times the Redis listener reconnected", counter(link.reconnects()));
            registry.register_with_unit(
                "redis_receive_lag",
                "From another process handing a commit to Redis to this one receiving it",
                prometheus_client::registry::Unit::Seconds,
                link.lag().clone(),
            );
            registry.register(
                "redis_publish_dropped",
                "Commits not published because Redis was slower (other processes read them from history)",
                counter(link.dropped()),
            );
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

fn gauge(value: usize) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}
