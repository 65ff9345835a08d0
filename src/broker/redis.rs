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
//! fill a hole, subscribers get a `gap` frame (see [`crate::fanout::hub`]).
//!
//! Both queues are bounded. Outgoing messages: [`OUTGOING`]; when Redis is
//! slower than the commits, later messages are dropped (and counted in the
//! log) and the other processes read those changes from history. Listen
//! requests: [`CONTROL`]; a subscription waits for room.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

pub(crate) use redis::RedisError;

use crate::change::Change;
use crate::fanout::{Broker, LinkStatus, Upstream};

/// Messages waiting to be published.
pub(crate) const OUTGOING: usize = 4096;
/// Listen requests waiting for the listener.
pub(crate) const CONTROL: usize = 1024;

/// Publishes to and listens on Redis.
#[derive(Debug)]
pub(crate) struct RedisBroker {
    outgoing: mpsc::Sender<(String, String)>,
    control: mpsc::Sender<(&'static str, oneshot::Sender<()>)>,
    origin: u64,
    status: Arc<LinkStatus>,
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
    pub(crate) fn start(url: &str, upstream: Upstream) -> Result<RedisBroker, RedisError> {
        let client = redis::Client::open(url)?;
        let origin = rand_origin();
        let (outgoing, rx) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_loop(client.clone(), rx));
        let (control, control_rx) = mpsc::channel(CONTROL);
        let status = Arc::new(LinkStatus::default());
        tokio::spawn(listen_loop(client, control_rx, upstream, origin, status.clone()));
        Ok(RedisBroker { outgoing, control, origin, status })
    }
}

/// The messages of one transaction: one per route it touched, in the order
/// the routes first appear, each with that route's changes in order.
fn messages(origin: u64, changes: &[Change]) -> Vec<(&'static str, String)> {
    let mut routes: Vec<&'static str> = Vec::new();
    for change in changes {
        if !routes.contains(&change.route) {
            routes.push(change.route);
        }
    }
    routes
        .into_iter()
        .map(|route| {
            let batch: Vec<_> = changes.iter().filter(|c| c.route == route).map(Change::to_wire).collect();
            let sent_us = unix_micros();
            (route, serde_json::json!({ "origin": origin, "sent_us": sent_us, "changes": batch }).to_string())
        })
        .collect()
}

impl Broker for RedisBroker {
    fn publish(&self, changes: &[Change]) {
        for (route, message) in messages(self.origin, changes) {
            if self.outgoing.try_send((channel(route), message)).is_err() {
                // Full (Redis slower than the commits) or gone: the other
                // processes read these changes from history.
                let dropped = self.status.drop_message();
                if dropped % 1000 == 1 {
                    tracing::warn!(
                        dropped,
                        "redis publish queue full; other processes read these changes from history"
                    );
                }
            }
        }
    }

    fn listen(&self, route: &'static str) -> futures_util::future::BoxFuture<'static, ()> {
        let control = self.control.clone();
        Box::pin(async move {
            let (done, confirmed) = oneshot::channel();
            if control.send((route, done)).await.is_err() {
                return;
            }
            // Listening is confirmed once Redis acknowledged the SUBSCRIBE; if
            // Redis is away, go on: the hub catches up from history later.
            let _ = tokio::time::timeout(Duration::from_secs(2), confirmed).await;
        })
    }

    fn link(&self) -> Option<&LinkStatus> {
        Some(&self.status)
    }
}

/// Backoff between reconnect attempts: 100 ms doubling to 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// Publishes in batches: everything queued goes out as one pipeline, so a
/// busy runtime costs one round trip per batch, not per commit (one at a
/// time fell ~1 s behind under load).
pub(crate) async fn publish_loop(client: redis::Client, mut rx: mpsc::Receiver<(String, String)>) {
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
    mut control: mpsc::Receiver<(&'static str, oneshot::Sender<()>)>,
    upstream: Upstream,
    origin: u64,
    status: Arc<LinkStatus>,
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
        status.set_connected(true);
        if attempt > 0 {
            status.reconnected();
            tracing::info!("redis listener reconnected; catching up from history");
            for route in &routes {
                upstream.catch_up(route);
            }
        }
        // Routes nobody here watches any more are released now and then.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    let idle: Vec<&'static str> =
                        routes.iter().copied().filter(|r| !upstream.watched(r)).collect();
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
                    Some(message) => receive(&message, origin, &upstream, &status),
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
        status.set_connected(false);
        tracing::warn!("redis listener disconnected; reconnecting");
        // Counts as a failed attempt, so the next connection catches up.
        attempt = 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Decodes one message and hands its changes to the hub.
/// Microseconds since the Unix epoch: when a message was published, for the
/// receiver's lag (0 if the clock is before 1970).
fn unix_micros() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

fn receive(message: &redis::Msg, origin: u64, upstream: &Upstream, status: &LinkStatus) {
    let decoded = serde_json::from_slice::<serde_json::Value>(message.get_payload_bytes());
    let Ok(body) = decoded else {
        tracing::warn!(channel = message.get_channel_name(), "undecodable message");
        return;
    };
    if body["origin"].as_u64() == Some(origin) {
        return; // our own commit: the hub already has it
    }
    if let Some(sent_us) = body["sent_us"].as_u64() {
        status.received(Duration::from_micros(unix_micros().saturating_sub(sent_us)));
    }
    let mut changes = Vec::new();
    for wire in body["changes"].as_array().into_iter().flatten() {
        match upstream.catalog().decode(wire) {
            Some(Ok(change)) => changes.push(change),
            Some(Err(e)) => tracing::warn!(error = %e, "undecodable change"),
            None => {} // a route this process does not serve
        }
    }
    if !changes.is_empty() {
        upstream.offer(changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, Value};

    #[allow(dead_code)]
    #[derive(crate::Model)]
    #[wyrm(route = "a")]
    struct A {
        id: i32,
    }

    #[allow(dead_code)]
    #[derive(crate::Model)]
    #[wyrm(route = "b")]
    struct B {
        id: i32,
    }

    fn change<M: Model>(id: i64) -> Change {
        Change::new(M::ROUTE, M::FIELDS, 0, None, Some(vec![Value::Int(id)].into()))
    }

    #[test]
    fn a_full_publish_queue_drops_messages_instead_of_waiting() {
        let (outgoing, mut queued) = mpsc::channel(1);
        let (control, _control) = mpsc::channel(1);
        let broker = RedisBroker { outgoing, control, origin: 1, status: Arc::default() };
        for id in 0..3 {
            broker.publish(&[change::<A>(id)]);
        }
        assert_eq!(broker.status.dropped(), 2);
        assert!(queued.try_recv().is_ok());
        assert!(queued.try_recv().is_err());
    }

    #[test]
    fn one_message_per_route_of_a_transaction_even_when_routes_interleave() {
        let sent = messages(7, &[change::<A>(1), change::<B>(2), change::<A>(3)]);
        let routes: Vec<_> = sent.iter().map(|(route, _)| *route).collect();
        assert_eq!(routes, ["a", "b"]);
        let a: serde_json::Value = serde_json::from_str(&sent[0].1).unwrap();
        let ids: Vec<_> = a["changes"].as_array().unwrap().iter().map(|c| c["new"][0].clone()).collect();
        assert_eq!(ids, [1, 3], "the route's changes, in transaction order");
    }
}
