//! What the fan-out delivers to: a [`Sink`] per connection, fed
//! [`Outbound`] frames. The transport's outbox implements it; the fan-out
//! never sees a socket.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::subscription::Delivery;
#[cfg(test)]
use crate::change::Action;
use crate::protocol;

/// A frame on its way to a client.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A finished frame (a reply, a `gap`).
    Frame(String),
    /// A change for one subscription; the frame is written by the
    /// connection's own task around the shared payload.
    Event {
        /// The subscription.
        sub: u64,
        /// Its sequence number: 1, 2, 3, ... per subscription.
        seq: u64,
        /// The change's position, route, action relative to the
        /// subscription and serialized payload, shared with the other
        /// subscriptions of its group.
        event: Arc<Delivery>,
    },
}

impl Outbound {
    /// The frame's text.
    pub(crate) fn into_text(self) -> String {
        match self {
            Outbound::Frame(text) => text,
            Outbound::Event { sub, seq, event } => {
                protocol::event_frame(sub, seq, event.pos, event.route, event.action, &event.data)
            }
        }
    }
}

#[cfg(test)]
impl Outbound {
    /// An `updated` event of subscription 1, numbered `n`, for tests.
    pub(crate) fn test_event(n: u64) -> Outbound {
        let event = Delivery { pos: n, route: "item", action: Action::Updated, data: Arc::from("{}") };
        Outbound::Event { sub: 1, seq: n, event: Arc::new(event) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_queued_for_a_subscriber_is_half_a_cache_line() {
        // The fan-out thread writes one per subscriber and the connection's
        // task reads it on another core: two to a line halves the misses.
        assert_eq!(std::mem::size_of::<Outbound>(), 32);
    }
}
