//! The Redis broker: committed changes reach every process serving the same
//! database, through Redis pub/sub.
//!
//! Each process publishes its own commits to one channel per route
//! (`wyrm:<route>`) and subscribes only to the channels of routes its own
//! clients watch (never `PUBSUB CHANNELS`, never a scan of channel names).
//! A message carries the whole rows before and after, so receivers match
//! locally with no database read. A route nobody here watches any more is
//! unsubscribed within a second.
//!
//! Redis is a fast path, not the record: positions and history live in the
//! database. When Redis goes away, local clients keep being served, the
//! broker reconnects with backoff, and on reconnect the hub catches up from
//! history, so no change is lost while history holds it; when history cannot
//! fill a hole, subscribers get a `gap` frame (see [`crate::hub`]).

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

pub use redis::RedisError;

use super::Broker;
use crate::change::Change;
use crate::hub::Hub;
use crate::registry::Registry;

/// Publishes to and listens on Redis.
#[derive(Debug)]
pub struct RedisBroker {
    outgoing: mpsc::UnboundedSender<(String, String)>,
    control: mpsc::UnboundedSender<(&'static str, oneshot::Sender<()>)>,
    origin: u64,
}

/// Names this process in its messages, so it can skip its own.
fn rand_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// The pub/sub channel of a route.
fn channel(route: &str) -> String {
    format!("wyrm:{route}")
}

impl RedisBroker {
    /// Starts the publisher and listener tasks for `url` (`redis://host:port`)
    /// on the current tokio runtime. Connection failures are retried forever
    /// with backoff; they never fail this call.
    pub fn start(url: &str, hub: Hub, registry: std::sync::Arc<Registry>) -> Result<RedisBroker, RedisError> {
        let client = redis::Client::open(url)?;
        let origin = rand_origin();
        let (outgoing, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(client.clone(), rx));
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(listen_loop(client, control_rx, hub, registry, origin));
        Ok(RedisBroker { outgoing, control, origin })
    }
}

impl Broker for RedisBroker {
    fn publish(&self, changes: &[Change]) {
        // One message per route and transaction keeps a transaction's changes together.
        let mut routes: Vec<&'static str> = changes.iter().map(|c| c.route).collect();
        routes.dedup();
        for route in routes {
            let batch: Vec<_> = changes.iter().filter(|c| c.route == route).map(Change::to_wire).collect();
            let message = serde_json::json!({ "origin": self.origin, "changes": batch }).to_string();
            let _ = self.outgoing.send((channel(route), message));
        }
    }

    fn listen(&self, route: &'static str) -> futures_util::future::BoxFuture<'static, ()> {
        let (done, confirmed) = oneshot::channel();
        let _ = self.control.send((route, done));
        Box::pin(async move {
            // Listening is confirmed once Redis acknowledged the SUBSCRIBE; if
            // Redis is away, go on: the hub catches up from history later.
            let _ = tokio::time::timeout(Duration::from_secs(2), confirmed).await;
        })
    }
}

/// Backoff between reconnect attempts: 100 ms doubling to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// Publishes in batches: everything queued goes out as one pipeline, so a
/// busy runtime costs one round trip per batch, not per commit (one at a
/// time fell ~1 s behind under load).
async fn publish_loop(client: redis::Client, mut rx: mpsc::UnboundedReceiver<(String, String)>) {
    const BATCH: usize = 512;
    let mut attempt = 0;
    let mut conn = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    if attempt > 0 {
                        tracing::info!("redis publisher reconnected");
                    }
                    attempt = 0;
                    conn = Some(c);
                }
                Err(e) => {
                    // Dropped here, recovered by receivers from history.
                    if attempt == 0 {
                        tracing::warn!(error = %e, "redis unavailable; changes reach other processes through history");
                    }
                    attempt += 1;
                    batch.clear();
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut pipe = redis::pipe();
        for (channel, message) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(c).await {
            tracing::warn!(error = %e, "redis publish failed; reconnecting");
            conn = None;
        }
    }
}

async fn listen_loop(
    client: redis::Client,
    mut control: mpsc::UnboundedReceiver<(&'static str, oneshot::Sender<()>)>,
    hub: Hub,
    registry: std::sync::Arc<Registry>,
    origin: u64,
) {
    let mut routes: HashSet<&'static str> = HashSet::new();
    let mut attempt = 0u32;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!(error = %e, "redis unavailable; retrying with backoff");
                }
                attempt += 1;
                // Keep accepting listen requests while away, so subscribes never wait on Redis.
                let wait = tokio::time::sleep(backoff(attempt));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        request = control.recv() => match request {
                            Some((route, done)) => { routes.insert(route); let _ = done.send(()); }
                            None => return,
                        },
                    }
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let resubscribed: Vec<String> = routes.iter().map(|r| channel(r)).collect();
        if !resubscribed.is_empty() && sink.subscribe(&resubscribed).await.is_err() {
            continue;
        }
        if attempt > 0 {
            tracing::info!("redis listener reconnected; catching up from history");
            for route in &routes {
                hub.catch_up(route);
            }
        }
        // Routes nobody here watches any more are released now and then.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    let idle: Vec<&'static str> =
                        routes.iter().copied().filter(|r| !registry.has_subscriptions(r)).collect();
                    let mut failed = false;
                    for route in idle {
                        routes.remove(route);
                        failed |= sink.unsubscribe(channel(route)).await.is_err();
                    }
                    if failed {
                        break; // the connection is broken: reconnect
                    }
                }
                message = stream.next() => match message {
                    Some(message) => receive(&message, origin, &hub, &registry),
                    None => break,
                },
                request = control.recv() => match request {
                    Some((route, done)) => {
                        if routes.insert(route) && sink.subscribe(channel(route)).await.is_err() {
                            break;
                        }
                        let _ = done.send(());
                    }
                    None => return,
                },
            }
        }
        tracing::warn!("redis listener disconnected; reconnecting");
        // Counts as a failed attempt, so the next connection catches up.
        attempt = 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Decodes one message and hands its changes to the hub.
fn receive(message: &redis::Msg, origin: u64, hub: &Hub, registry: &Registry) {
    let decoded = serde_json::from_slice::<serde_json::Value>(message.get_payload_bytes());
    let Ok(body) = decoded else {
        tracing::warn!(channel = message.get_channel_name(), "undecodable message");
        return;
    };
    if body["origin"].as_u64() == Some(origin) {
        return; // our own commit: the hub already has it
    }
    let mut changes = Vec::new();
    for wire in body["changes"].as_array().into_iter().flatten() {
        let Some(info) = wire["route"].as_str().and_then(|r| registry.route_info(r)) else { continue };
        match Change::from_wire(wire, info.route, info.fields, info.pk) {
            Ok(change) => changes.push(change),
            Err(e) => tracing::warn!(route = info.route, error = %e, "undecodable change"),
        }
    }
    if !changes.is_empty() {
        hub.push(changes);
    }
}
