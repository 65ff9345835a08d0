//! What the fan-out delivers to: a [`Sink`] per connection, fed
//! [`Outbound`] frames. The transport's outbox implements it; the fan-out
//! never sees a socket.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::change::Action;
use crate::protocol;

/// A frame on its way to a client.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A finished frame (a reply, a `gap`).
    Frame(String),
    /// A change for one subscription; the frame is written by the
    /// connection's own task around the shared `data`.
    Event {
        /// The subscription.
        sub: u64,
        /// Its sequence number: 1, 2, 3, ... per subscription.
        seq: u64,
        /// The change's commit position.
        pos: u64,
        /// The route.
        route: &'static str,
        /// What happened, relative to the subscription.
        action: Action,
        /// The serialized payload, shared with other subscribers.
        data: Arc<str>,
    },
}

impl Outbound {
    /// The frame's text.
    pub(crate) fn into_text(self) -> String {
        match self {
            Outbound::Frame(text) => text,
            Outbound::Event { sub, seq, pos, route, action, data } => {
                protocol::event_frame(sub, seq, pos, route, action, &data)
            }
        }
    }
}

#[cfg(test)]
impl Outbound {
    /// An `updated` event of subscription 1, numbered `n`, for tests.
    pub(crate) fn test_event(n: u64) -> Outbound {
        Outbound::Event { sub: 1, seq: n, pos: n, route: "item", action: Action::Updated, data: Arc::from("{}") }
    }
}

/// One connection's outbound queue, as the fan-out sees it.
pub(crate) trait Sink: Send + Sync + 'static {
    /// Queues a frame without waiting; the live fan-out uses this, so one
    /// slow client never holds up the others. When the queue is full the
    /// sink closes its connection as a slow consumer. Returns whether the
    /// frame was queued.
    fn push(&self, frame: Outbound) -> bool;

    /// Queues a frame once there is room: how a catching-up subscription
    /// streams its history with backpressure instead of overflowing the
    /// queue. Resolves to false if the connection is closing.
    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool>;

    /// The subscription that delivers here ended (unsubscribed, or cut by
    /// a gap). A sink that sends frames of its own for it stops doing so
    /// before this returns, so nothing of it follows what its owner sends
    /// next (an `unsubscribe` reply). A connection's outbox, shared by all
    /// its subscriptions, has nothing to do.
    fn closed(&self) {}
}

/// Takes every frame and keeps none: a sink for what only matches or
/// counts (the benches, unit tests).
pub(crate) struct Nowhere;

impl Sink for Nowhere {
    fn push(&self, _frame: Outbound) -> bool {
        true
    }

    fn send(&self, _frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}
