//! Channels: ephemeral messages to the connections subscribed to a named
//! channel, and to every connection of one user (server push). No history:
//! a message reaches who is subscribed when it is delivered.
//!
//! With a [`Link`] (Redis) connected, a message is delivered when it comes
//! back from Redis, in every process alike, so every subscriber of a
//! channel sees its messages in one order (Redis's), whichever process
//! published them. While the link is down, a process's messages reach its
//! own subscribers only. Delivery pushes to the outboxes without waiting:
//! a full one closes its connection as a slow consumer (4008).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::wire::{Link, Wire};
use crate::fanout::sink::{Outbound, Sink};
use crate::protocol;

/// Subscribers by channel, and connections by user.
#[derive(Default)]
pub(crate) struct Channels {
    inner: Mutex<Inner>,
    link: OnceLock<Arc<dyn Link>>,
    /// Channel messages and pushes handed to this process's connections
    /// (one count per connection reached), for metrics.
    delivered: AtomicU64,
}

type Sinks = HashMap<u64, Arc<dyn Sink>>;

#[derive(Default)]
struct Inner {
    channels: HashMap<String, Sinks>,
    users: HashMap<i64, Sinks>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").field("channels", &self.inner.lock().channels.len()).finish()
    }
}

/// Adds to or removes from one of the maps, dropping emptied entries.
fn insert<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Sinks>, key: K, conn: u64, sink: Arc<dyn Sink>) -> bool {
    map.entry(key).or_default().insert(conn, sink).is_none()
}

fn remove<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Sinks>, key: &K, conn: u64) -> bool {
    let Some(sinks) = map.get_mut(key) else { return false };
    let removed = sinks.remove(&conn).is_some();
    if sinks.is_empty() {
        map.remove(key);
    }
    removed
}

impl Channels {
    /// Connects the registry to the other processes.
    pub(crate) fn set_link(&self, link: Arc<dyn Link>) {
        let _ = self.link.set(link);
    }

    /// Subscribes connection `conn`; false if it was already.
    pub(crate) fn subscribe(&self, channel: &str, conn: u64, sink: Arc<dyn Sink>) -> bool {
        insert(&mut self.inner.lock().channels, channel.to_owned(), conn, sink)
    }

    /// Unsubscribes `conn`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&self, channel: &str, conn: u64) -> bool {
        remove(&mut self.inner.lock().channels, &channel.to_owned(), conn)
    }

    /// Registers a signed-in user's connection, for [`Channels::to_user`].
    pub(crate) fn connect_user(&self, user: i64, conn: u64, sink: Arc<dyn Sink>) {
        insert(&mut self.inner.lock().users, user, conn, sink);
    }

    /// The connection of `user` ended.
    pub(crate) fn disconnect_user(&self, user: i64, conn: u64) {
        remove(&mut self.inner.lock().users, &user, conn);
    }

    /// Sends a message (`data`: JSON text) to the channel's subscribers in
    /// every process.
    pub(crate) fn publish(&self, channel: &str, data: String) {
        let wire = Wire::Message { channel: channel.to_owned(), data };
        if !self.carried(&wire) {
            self.deliver(wire);
        }
    }

    /// Sends a message (`data`: JSON text) to every connection of `user`.
    pub(crate) fn to_user(&self, user: i64, data: String) {
        let wire = Wire::ToUser { user, data };
        if !self.carried(&wire) {
            self.deliver(wire);
        }
    }

    /// Whether the link took the message, to deliver it on its way back.
    fn carried(&self, wire: &Wire) -> bool {
        self.link.get().is_some_and(|link| link.connected() && link.send(wire))
    }

    /// Delivers a message to this process's subscribers.
    pub(crate) fn deliver(&self, wire: Wire) {
        let inner = self.inner.lock();
        let (sinks, frame) = match &wire {
            Wire::Message { channel, data } => (inner.channels.get(channel), protocol::message_frame(channel, data)),
            Wire::ToUser { user, data } => (inner.users.get(user), protocol::push_frame(data)),
            _ => return,
        };
        let mut reached = 0;
        for sink in sinks.into_iter().flat_map(HashMap::values) {
            sink.push(Outbound::Frame(frame.clone()));
            reached += 1;
        }
        self.delivered.fetch_add(reached, Ordering::Relaxed);
    }

    /// Channels with subscribers here, and messages and pushes delivered
    /// here so far (one per connection reached).
    pub(crate) fn counts(&self) -> (usize, u64) {
        (self.inner.lock().channels.len(), self.delivered.load(Ordering::Relaxed))
    }
}
