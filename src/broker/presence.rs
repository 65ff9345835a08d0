//! Presence and channel messages between processes, through Redis: every
//! process publishes to and listens on one channel, [`CHANNEL`], so one
//! channel's messages reach every process in the order Redis received
//! them. A message carries its kind (see [`Wire`]); there are no keys and
//! nothing is stored in Redis.
//!
//! A ticker runs whether Redis is reachable or not: it sends this node's
//! heartbeat and drops the nodes not heard from (see [`crate::presence`]),
//! so while Redis is away the other processes' members leave, and when it
//! is back each listener asks every node for its state and they return.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::redis::{backoff, publish_loop, RedisError, OUTGOING};
use crate::presence::channels::Channels;
use crate::presence::{Link, Presence, Wire};

/// The Redis pub/sub channel of presence and channel messages.
pub(crate) const CHANNEL: &str = "wyrm:live";

/// Publishes presence and channel messages, and knows whether the listener
/// is subscribed (so that a channel message published now comes back).
#[derive(Debug)]
pub(crate) struct RedisLink {
    outgoing: mpsc::Sender<(String, String)>,
    listening: Arc<AtomicBool>,
    dropped: AtomicU64,
}

impl Link for RedisLink {
    fn send(&self, wire: &Wire) -> bool {
        let Ok(text) = serde_json::to_string(wire) else { return false };
        if self.outgoing.try_send((CHANNEL.to_owned(), text)).is_ok() {
            return true;
        }
        // Full or gone: presence repairs itself from states; a channel
        // message is ephemeral, and lost.
        if self.dropped.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
            tracing::warn!(dropped = self.dropped.load(Ordering::Relaxed), "redis presence queue full; dropping");
        }
        false
    }

    fn connected(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// Starts the publisher, the listener and the heartbeat ticker on the
/// current runtime and links both registries to them. The tasks end when
/// the registries are dropped.
pub(crate) fn start(
    url: &str,
    presence: &Arc<Presence>,
    channels: &Arc<Channels>,
    heartbeat: Duration,
    timeout: Duration,
) -> Result<(), RedisError> {
    let client = redis::Client::open(url)?;
    let (outgoing, rx) = mpsc::channel(OUTGOING);
    tokio::spawn(publish_loop(client.clone(), rx));
    let listening = Arc::new(AtomicBool::new(false));
    let link = Arc::new(RedisLink { outgoing, listening: listening.clone(), dropped: AtomicU64::new(0) });
    presence.set_link(link.clone());
    channels.set_link(link);
    tokio::spawn(listen_loop(client, Arc::downgrade(presence), Arc::downgrade(channels), listening));
    let ticked = Arc::downgrade(presence);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(presence) = ticked.upgrade() else { return };
            presence.tick(timeout);
        }
    });
    Ok(())
}

async fn listen_loop(
    client: redis::Client,
    presence: Weak<Presence>,
    channels: Weak<Channels>,
    listening: Arc<AtomicBool>,
) {
    let mut attempt = 0u32;
    loop {
        if presence.strong_count() == 0 {
            return;
        }
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!(error = %e, "redis unavailable; presence of other processes fades until it is back");
                }
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        if pubsub.subscribe(CHANNEL).await.is_err() {
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
            continue;
        }
        listening.store(true, Ordering::Release);
        // Whatever was said while we were away is lost: ask for it all.
        match presence.upgrade() {
            Some(p) => p.resync(),
            None => return,
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let (Some(presence), Some(channels)) = (presence.upgrade(), channels.upgrade()) else { return };
            match serde_json::from_slice::<Wire>(message.get_payload_bytes()) {
                Ok(wire @ (Wire::Message { .. } | Wire::ToUser { .. })) => channels.deliver(wire),
                Ok(wire) => presence.receive(wire),
                Err(e) => tracing::warn!(error = %e, "undecodable presence message"),
            }
        }
        listening.store(false, Ordering::Release);
        tracing::warn!("redis presence listener disconnected; reconnecting");
        attempt = 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}
