//! What presence and channels send between processes, and the [`Link`]
//! that carries it (Redis, in `crate::broker::presence`). Without a link
//! everything stays in the process.

use serde::{Deserialize, Serialize};

/// One presence member: a connection's identity, its presence id and the
/// meta object it joined with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Member {
    /// Unique across the cluster: `<node in hex>.<n>`.
    pub(crate) id: String,
    /// The identity's user id, unless anonymous.
    pub(crate) user: Option<i64>,
    /// The identity's display name, if it has one.
    pub(crate) name: Option<String>,
    /// What the client joined (or last updated) with; bounded in bytes.
    pub(crate) meta: serde_json::Value,
}

/// A message between processes. Presence messages carry the sending node
/// and its sequence number, so a receiver notices one it missed and asks
/// that node for its whole state instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Wire {
    /// A member joined a topic on `node`.
    Join { node: u64, seq: u64, topic: String, member: Member },
    /// A member of `node` changed its meta.
    Update { node: u64, seq: u64, topic: String, member: Member },
    /// A member of `node` left.
    Leave { node: u64, seq: u64, topic: String, id: String },
    /// `node` is alive and has sent `seq` presence messages.
    Heartbeat { node: u64, seq: u64 },
    /// `node` asks `target` (every node when `None`) for its whole state.
    Sync { node: u64, target: Option<u64> },
    /// Every member `node` has, as of its message `seq`.
    State { node: u64, seq: u64, members: Vec<(String, Member)> },
    /// `node` is shutting down: its members leave now.
    Down { node: u64 },
    /// A channel message (`data` is JSON text).
    Message { channel: String, data: String },
    /// A message to every connection of one user (`data` is JSON text).
    ToUser { user: i64, data: String },
}

/// Carries [`Wire`] messages to every process, this one included.
pub(crate) trait Link: Send + Sync + 'static {
    /// Queues a message without waiting; false when it was not queued.
    fn send(&self, wire: &Wire) -> bool;

    /// Whether messages sent now come back to this process: channel
    /// messages are delivered on their way back (so every process sees one
    /// channel's messages in the same order), and locally instead while
    /// the link is down.
    fn connected(&self) -> bool;
}
