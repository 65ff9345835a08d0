//! Presence and channels: who is connected to a topic right now, and
//! ephemeral messages to the connections subscribed to a channel or
//! signed in as one user. Both live in memory only; nothing is stored.
//!
//! A presence member is one connection joined to one topic, with a small
//! meta object. Every member of a topic is told the whole member list when
//! it joins, then each `join`, `leave` and `update` as it happens. Members
//! of other processes arrive through a [`Link`] (Redis, see
//! `crate::broker::presence`), modelled on Phoenix's tracker but with Redis
//! pub/sub instead of a mesh:
//!
//! - each process (a *node*, a random id per start) numbers the messages
//!   about its own members; a receiver that sees a number skipped (a message
//!   lost while Redis was away) ignores that node's messages and asks it for
//!   its whole [`Wire::State`] instead, then replaces what it had of it;
//! - each node sends a heartbeat with its latest number every
//!   [`HEARTBEAT`]; a node not heard from for [`TIMEOUT`] is dead, and its
//!   members leave (a SIGKILLed process, or Redis away: when it comes back,
//!   the heartbeats bring the states back).
//!
//! Frames are pushed to the members' outboxes under the registry's lock, so
//! every member sees one topic's changes in the order they were applied
//! here, and a joiner's member list is followed by exactly the changes
//! after it. A full outbox closes its connection as a slow consumer (4008),
//! as for model events.

pub(crate) mod channels;
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::protocol;
pub(crate) use wire::{Link, Member, Wire};

/// How often a node tells the others it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is taken for dead: its members leave.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// The presence registry of one process.
pub(crate) struct Presence {
    node: u64,
    next_member: AtomicU64,
    inner: Mutex<Inner>,
    link: OnceLock<Arc<dyn Link>>,
}

#[derive(Default)]
struct Inner {
    topics: HashMap<String, Topic>,
    /// Presence messages this node has sent about its own members.
    seq: u64,
    remotes: HashMap<u64, Remote>,
}

#[derive(Default)]
struct Topic {
    /// This process's members: connection → (presence id, its outbox).
    local: HashMap<u64, (String, Arc<dyn Sink>)>,
    /// Every member, of every node, by presence id.
    members: BTreeMap<String, Member>,
}

/// What this node knows of another.
struct Remote {
    /// The last of its messages applied.
    seq: u64,
    heard: Instant,
    /// Since when its state was asked for; its messages are ignored until
    /// the state arrives.
    syncing: Option<Instant>,
    /// Its members: (topic, presence id).
    members: HashSet<(String, String)>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("node", &self.node).finish()
    }
}

/// A random id for this process's registry, new at each start.
fn random_node() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    // Below 2^53 so JavaScript reads it exactly, should it ever see one.
    h.finish() >> 11
}

impl Topic {
    /// Pushes one presence frame to this process's members, but `except`.
    fn notify(&self, topic: &str, event: &str, member: &Member, except: Option<u64>) {
        let frame = protocol::presence_frame(topic, event, member);
        for (conn, (_, sink)) in &self.local {
            if Some(*conn) != except {
                sink.push(Outbound::Frame(frame.clone()));
            }
        }
    }
}

impl Inner {
    fn add(&mut self, topic: &str, member: Member) {
        let t = self.topics.entry(topic.to_owned()).or_default();
        let event = match t.members.get(&member.id) {
            None => "join",
            Some(old) if *old == member => return,
            Some(_) => "update",
        };
        t.notify(topic, event, &member, None);
        t.members.insert(member.id.clone(), member);
    }

    fn remove(&mut self, topic: &str, id: &str) {
        let Some(t) = self.topics.get_mut(topic) else { return };
        if let Some(member) = t.members.remove(id) {
            t.notify(topic, "leave", &member, None);
        }
        if t.members.is_empty() && t.local.is_empty() {
            self.topics.remove(topic);
        }
    }

    /// Every member of `node` leaves, and it is forgotten.
    fn drop_node(&mut self, node: u64) {
        if let Some(remote) = self.remotes.remove(&node) {
            for (topic, id) in remote.members {
                self.remove(&topic, &id);
            }
        }
    }

    /// This node's own members, for a state message.
    fn own_members(&self) -> Vec<(String, Member)> {
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for (id, _) in topic.local.values() {
                if let Some(member) = topic.members.get(id) {
                    out.push((name.clone(), member.clone()));
                }
            }
        }
        out
    }
}

impl Presence {
    pub(crate) fn new() -> Arc<Presence> {
        Arc::new(Presence {
            node: random_node(),
            next_member: AtomicU64::new(1),
            inner: Mutex::default(),
            link: OnceLock::new(),
        })
    }

    /// Connects the registry to the other processes.
    pub(crate) fn set_link(&self, link: Arc<dyn Link>) {
        let _ = self.link.set(link);
    }

    fn send(&self, wire: &Wire) {
        if let Some(link) = self.link.get() {
            link.send(wire);
        }
    }

    /// Sends a message about this node's own members, numbered.
    fn announce(&self, inner: &mut Inner, message: impl FnOnce(u64, u64) -> Wire) {
        inner.seq += 1;
        self.send(&message(self.node, inner.seq));
    }

    /// Topics with members, and members across them (this process's and,
    /// with Redis, the others'), for metrics: one pass under the lock, at
    /// scrape time only.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.topics.len(), inner.topics.values().map(|t| t.members.len()).sum())
    }

    /// A new presence id, unique across processes.
    pub(crate) fn member_id(&self) -> String {
        format!("{:x}.{}", self.node, self.next_member.fetch_add(1, Ordering::Relaxed))
    }

    /// Joins connection `conn` to `topic`: `reply` gets the member list (the
    /// joiner included) and makes the frame queued to `sink` before any
    /// later change (or refuses, and nothing changes); the other members
    /// are told `join`.
    pub(crate) fn join(
        &self,
        conn: u64,
        sink: Arc<dyn Sink>,
        topic: &str,
        member: Member,
        reply: impl FnOnce(&[&Member]) -> Result<String, Error>,
    ) -> Result<(), Error> {
        let mut inner = self.inner.lock();
        let t = inner.topics.entry(topic.to_owned()).or_default();
        if t.local.contains_key(&conn) {
            return Err(Error::bad_arg("topic", "this connection has joined it already; update or leave it"));
        }
        // The reply first: if it cannot be sent (too large), nothing changes.
        let frame = reply(&t.members.values().chain([&member]).collect::<Vec<_>>());
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                if t.members.is_empty() && t.local.is_empty() {
                    inner.topics.remove(topic);
                }
                return Err(e);
            }
        };
        t.notify(topic, "join", &member, None);
        t.members.insert(member.id.clone(), member.clone());
        sink.push(Outbound::Frame(frame));
        t.local.insert(conn, (member.id.clone(), sink));
        let topic = topic.to_owned();
        self.announce(&mut inner, |node, seq| Wire::Join { node, seq, topic, member });
        Ok(())
    }

    /// Replaces the meta of `conn`'s member of `topic`; every member (this
    /// one too) is told `update`. Gives the member, or `None` if `conn` is
    /// not a member.
    pub(crate) fn update(&self, conn: u64, topic: &str, meta: serde_json::Value) -> Option<Member> {
        let mut inner = self.inner.lock();
        let t = inner.topics.get_mut(topic)?;
        let (id, _) = t.local.get(&conn)?;
        let member = t.members.get_mut(id)?;
        member.meta = meta;
        let member = member.clone();
        t.notify(topic, "update", &member, None);
        let (topic, sent) = (topic.to_owned(), member.clone());
        self.announce(&mut inner, |node, seq| Wire::Update { node, seq, topic, member: sent });
        Some(member)
    }

    /// `conn` leaves `topic`; the other members are told. False if it was
    /// not a member.
    pub(crate) fn leave(&self, conn: u64, topic: &str) -> bool {
        let mut inner = self.inner.lock();
        let Some((id, _)) = inner.topics.get_mut(topic).and_then(|t| t.local.remove(&conn)) else { return false };
        inner.remove(topic, &id);
        let topic = topic.to_owned();
        self.announce(&mut inner, |node, seq| Wire::Leave { node, seq, topic, id });
        true
    }

    /// The members of `topic` known here, by presence id.
    pub(crate) fn members(&self, topic: &str) -> Vec<Member> {
        self.inner.lock().topics.get(topic).map(|t| t.members.values().cloned().collect()).unwrap_or_default()
    }

    /// A presence message from a node (this one's are skipped).
    pub(crate) fn receive(&self, wire: Wire) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match wire {
            Wire::Join { node, seq, topic, member } | Wire::Update { node, seq, topic, member }
                if self.in_step(&mut inner, node, seq, now) =>
            {
                if let Some(remote) = inner.remotes.get_mut(&node) {
                    remote.members.insert((topic.clone(), member.id.clone()));
                }
                inner.add(&topic, member);
            }
            Wire::Leave { node, seq, topic, id } if self.in_step(&mut inner, node, seq, now) => {
                if let Some(remote) = inner.remotes.get_mut(&node) {
                    remote.members.remove(&(topic.clone(), id.clone()));
                }
                inner.remove(&topic, &id);
            }
            Wire::Heartbeat { node, seq } if node != self.node => {
                let remote = self.remote(&mut inner, node, now);
                remote.heard = now;
                if remote.syncing.is_none() && remote.seq != seq {
                    remote.syncing = Some(now);
                    self.send(&Wire::Sync { node: self.node, target: Some(node) });
                }
            }
            Wire::Sync { node, target } if node != self.node && target.is_none_or(|t| t == self.node) => {
                let members = inner.own_members();
                self.send(&Wire::State { node: self.node, seq: inner.seq, members });
            }
            Wire::State { node, seq, members } if node != self.node => {
                self.replace(&mut inner, node, seq, members, now)
            }
            Wire::Down { node } if node != self.node => inner.drop_node(node),
            _ => {}
        }
    }

    /// The entry of `node`, new ones asking for its state.
    fn remote<'a>(&self, inner: &'a mut Inner, node: u64, now: Instant) -> &'a mut Remote {
        inner.remotes.entry(node).or_insert_with(|| {
            self.send(&Wire::Sync { node: self.node, target: Some(node) });
            Remote { seq: 0, heard: now, syncing: Some(now), members: HashSet::new() }
        })
    }

    /// Whether message `seq` of `node` is the next one, to apply; after a
    /// skipped one, asks for the node's state and ignores it meanwhile.
    fn in_step(&self, inner: &mut Inner, node: u64, seq: u64, now: Instant) -> bool {
        if node == self.node {
            return false;
        }
        let remote = self.remote(inner, node, now);
        remote.heard = now;
        if remote.syncing.is_some() || seq <= remote.seq {
            return false;
        }
        if seq == remote.seq + 1 {
            remote.seq = seq;
            return true;
        }
        remote.syncing = Some(now);
        self.send(&Wire::Sync { node: self.node, target: Some(node) });
        false
    }

    /// Takes `node`'s whole state, as of its message `seq`.
    fn replace(&self, inner: &mut Inner, node: u64, seq: u64, members: Vec<(String, Member)>, now: Instant) {
        let remote = self.remote(inner, node, now);
        remote.heard = now;
        if remote.syncing.is_none() && seq <= remote.seq {
            return; // asked by another node; nothing new to us
        }
        remote.seq = seq;
        remote.syncing = None;
        let now_held: HashSet<(String, String)> = members.iter().map(|(t, m)| (t.clone(), m.id.clone())).collect();
        let gone: Vec<_> = remote.members.difference(&now_held).cloned().collect();
        remote.members = now_held;
        for (topic, id) in gone {
            inner.remove(&topic, &id);
        }
        for (topic, member) in members {
            inner.add(&topic, member);
        }
    }

    /// Every [`HEARTBEAT`]: tells the others this node is alive, drops
    /// the nodes not heard from for `timeout`, and asks again for states
    /// that have not come.
    pub(crate) fn tick(&self, timeout: Duration) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        self.send(&Wire::Heartbeat { node: self.node, seq: inner.seq });
        let dead: Vec<u64> =
            inner.remotes.iter().filter(|(_, r)| now.duration_since(r.heard) > timeout).map(|(n, _)| *n).collect();
        for node in dead {
            inner.drop_node(node);
        }
        for (node, remote) in &mut inner.remotes {
            if remote.syncing.is_some_and(|since| now.duration_since(since) >= HEARTBEAT) {
                remote.syncing = Some(now);
                self.send(&Wire::Sync { node: self.node, target: Some(*node) });
            }
        }
    }

    /// After the link reconnected: asks every node for its state.
    pub(crate) fn resync(&self) {
        self.send(&Wire::Sync { node: self.node, target: None });
    }

    /// This process stops: the others drop its members at once.
    pub(crate) fn shut_down(&self) {
        self.send(&Wire::Down { node: self.node });
    }
}

#[cfg(test)]
mod tests;
