//! One subscription's state, shared by the hub (which feeds it changes in
//! position order) and the task that starts it (which sends its reply,
//! catches it up from history and the buffer, and turns it live).
//!
//! A subscription starts *registered but not live*: the hub buffers the
//! changes it concerns. The starting task knows the position its snapshot
//! (or the client's resume point) accounts for, `through`; the hub knows
//! from which position on it has fed the subscription every change, the
//! *feed*. [`Subscription::next_step`] compares the two under the
//! subscription's lock and says what is missing: positions before the feed
//! come from history, positions after it from the buffer; when neither has
//! anything left the subscription goes live, and from then on the hub
//! queues its events directly. Nothing depends on the order in which
//! snapshots, registrations and baselines happen to arrive.
//!
//! The buffer is bounded ([`START_BUFFER`]); when it overflows it is
//! dropped and the missing positions are read from history again, which
//! holds every one of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::sink::{Outbound, Sink};
use crate::change::Action;
use crate::protocol;

/// How many changes a starting subscription buffers before it falls back
/// to reading history.
pub(crate) const START_BUFFER: usize = 1024;

/// One client subscription.
pub(crate) struct Subscription {
    /// Unique in this process; the client names it in `unsubscribe`.
    pub(crate) id: u64,
    route: &'static str,
    pub(crate) sink: Arc<dyn Sink>,
    /// The registry group it is in (0: none); the hub's to read and write.
    /// The filter lives in the group (and, while starting, in its catch-up).
    group: AtomicU64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).field("route", &self.route).finish()
    }
}

/// A change as one subscription is told it: made once per change and
/// group and shared, behind an `Arc`, by the event frames of every
/// subscription in the group, so an event queued for one subscriber is its
/// two numbers and a pointer (32 bytes: two to a cache line, where the
/// fan-out thread writes and the connection's task reads them).
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) pos: u64,
    pub(crate) route: &'static str,
    pub(crate) action: Action,
    pub(crate) data: Arc<str>,
}

enum State {
    /// Boxed: a subscription is live far longer than it is starting, and a
    /// live one should cost little.
    Starting(Box<Start>),
    /// Events go straight to the sink, numbered by `seq`, except those at
    /// or before `through`, which the client already has (the hub may be
    /// behind the history the subscription caught up from).
    Live { seq: u64, through: u64 },
    /// Unsubscribed, disconnected, or ended by a gap.
    Closed,
}

#[derive(Default)]
struct Start {
    /// The hub has buffered every change after this position that concerns
    /// the subscription; `None` while the route's stream has no start yet.
    feed: Option<u64>,
    buffer: Vec<Arc<Delivery>>,
    /// The buffer overflowed and was dropped.
    overflowed: bool,
}

/// What the starting task does next (see the module docs).
#[derive(Debug)]
pub(crate) enum Step {
    /// The subscription was closed: stop.
    Stop,
    /// The route's stream has no start yet: ask the hub to start it at a
    /// position after which every change reaches the hub (the snapshot's).
    Baseline,
    /// Positions after `through` may be in neither the buffer nor the
    /// stream: read them from history, up to its head.
    History,
    /// Send these buffered changes (all after `through`, in order), then ask again.
    Send(Vec<Arc<Delivery>>),
    /// The subscription is live; everything it needed was sent.
    Live,
}

impl Subscription {
    pub(crate) fn new(id: u64, route: &'static str, sink: Arc<dyn Sink>) -> Self {
        Subscription { id, route, sink, group: AtomicU64::new(0), state: Mutex::new(State::Starting(Box::default())) }
    }

    /// The registry group it is in, 0 if none.
    pub(crate) fn group(&self) -> u64 {
        self.group.load(Ordering::Relaxed)
    }

    pub(crate) fn set_group(&self, group: u64) {
        self.group.store(group, Ordering::Relaxed);
    }

    /// The route subscribed to.
    pub(crate) fn route(&self) -> &'static str {
        self.route
    }

    // ---- the hub's side, on the hub thread

    /// Registered with the route's stream, which has delivered everything
    /// up to `feed` already (`None`: the stream has not started).
    pub(crate) fn fed_after(&self, feed: Option<u64>) {
        if let State::Starting(start) = &mut *self.state.lock() {
            start.feed = feed;
        }
    }

    /// The route's stream started after `at`: a starting subscription that
    /// was waiting for a start is fed from there on.
    pub(crate) fn stream_started(&self, at: u64) {
        if let State::Starting(start) = &mut *self.state.lock() {
            if start.feed.is_none() {
                start.feed = Some(at);
            }
        }
    }

    /// The route's stream skipped positions up to `through`: they were lost
    /// on their way here and history no longer has them. A live
    /// subscription that needed them ends with a `gap` frame (its client
    /// re-subscribes); a starting one has announced nothing it cannot keep,
    /// so it just knows it is fed from there on, and fails only if it
    /// needs what was lost. Returns whether it is closed now.
    pub(crate) fn stream_skipped(&self, through: u64, reason: &str) -> bool {
        let mut state = self.state.lock();
        match &mut *state {
            State::Starting(start) => {
                start.feed = start.feed.map(|feed| feed.max(through));
                start.buffer.retain(|d| d.pos > through);
                false
            }
            State::Live { through: had, .. } if *had >= through => false,
            State::Live { .. } => {
                self.sink.push(Outbound::Frame(protocol::gap_frame(self.id, reason)));
                *state = State::Closed;
                true
            }
            State::Closed => true,
        }
    }

    /// Changes it needed were dropped before they reached it (its lane
    /// fell behind). A live subscription ends with a `gap` frame; a starting
    /// one reads them from history, as when its own buffer overflows.
    /// Returns whether it is closed now.
    pub(crate) fn fell_behind(&self, reason: &str) -> bool {
        let mut state = self.state.lock();
        match &mut *state {
            State::Starting(start) => {
                start.buffer = Vec::new();
                start.overflowed = true;
                false
            }
            State::Live { .. } => {
                self.sink.push(Outbound::Frame(protocol::gap_frame(self.id, reason)));
                *state = State::Closed;
                true
            }
            State::Closed => true,
        }
    }

    /// A change, in position order, that concerns the subscription.
    pub(crate) fn deliver(&self, delivery: &Arc<Delivery>) {
        let mut state = self.state.lock();
        match &mut *state {
            State::Starting(start) if start.overflowed => {}
            State::Starting(start) if start.buffer.len() >= START_BUFFER => {
                start.buffer = Vec::new();
                start.overflowed = true;
            }
            State::Starting(start) => start.buffer.push(delivery.clone()),
            State::Live { through, .. } if delivery.pos <= *through => {}
            State::Live { seq, .. } => {
                *seq += 1;
                let event = Outbound::Event { sub: self.id, seq: *seq, event: delivery.clone() };
                if !self.sink.push(event) {
                    *state = State::Closed;
                }
            }
            State::Closed => {}
        }
    }

    // ---- either side

    /// Ends the subscription; nothing more is queued for it.
    pub(crate) fn close(&self) {
        *self.state.lock() = State::Closed;
        // After our lock is released: a sink that sends frames of its own
        // for the subscription (a window) may ask it whether it is closed.
        self.sink.closed();
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.state.lock(), State::Closed)
    }

    #[cfg(test)]
    pub(crate) fn is_live(&self) -> bool {
        matches!(*self.state.lock(), State::Live { .. })
    }

    // ---- the starting task's side

    /// What to do next, for a task that has sent the client everything up
    /// to position `through` (its snapshot, its resume point, or the last
    /// change it sent), numbering events up to `seq`. Turns the
    /// subscription live when nothing is missing.
    pub(crate) fn next_step(&self, through: u64, seq: u64) -> Step {
        let mut state = self.state.lock();
        let State::Starting(start) = &mut *state else {
            return match *state {
                State::Closed => Step::Stop,
                // Only the starting task turns a subscription live.
                State::Live { .. } => Step::Live,
                State::Starting(_) => unreachable!(),
            };
        };
        let Some(feed) = start.feed else { return Step::Baseline };
        if start.overflowed {
            // Whatever the dropped buffer held is in history; what arrives
            // from now on is buffered again.
            start.overflowed = false;
            return Step::History;
        }
        if feed > through {
            return Step::History;
        }
        start.buffer.retain(|d| d.pos > through);
        if start.buffer.is_empty() {
            *state = State::Live { seq, through };
            return Step::Live;
        }
        Step::Send(std::mem::take(&mut start.buffer))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures_util::future::BoxFuture;

    /// A sink that keeps everything, and can be told to refuse.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub(crate) frames: Mutex<Vec<String>>,
        pub(crate) closed: std::sync::atomic::AtomicBool,
    }

    impl Recorder {
        /// `pos N seq M` for events, `gap` for gap frames, the text otherwise.
        pub(crate) fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.frames.lock())
        }
    }

    impl Sink for Recorder {
        fn push(&self, frame: Outbound) -> bool {
            if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            let text = match frame {
                Outbound::Event { seq, event, .. } => format!("pos {} seq {seq} {}", event.pos, event.action.as_str()),
                Outbound::Frame(text) if text.contains("\"gap\"") => "gap".into(),
                Outbound::Frame(text) => text,
            };
            self.frames.lock().push(text);
            true
        }

        fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
            let queued = self.push(frame);
            Box::pin(async move { queued })
        }
    }

    fn delivery(pos: u64) -> Arc<Delivery> {
        Arc::new(Delivery { pos, route: "item", action: Action::Created, data: Arc::from("{}") })
    }

    fn subscription(sink: Arc<Recorder>) -> Subscription {
        Subscription::new(1, "item", sink)
    }

    #[test]
    fn waits_for_a_start_then_reads_history_up_to_the_feed() {
        let sub = subscription(Arc::default());
        sub.fed_after(None);
        assert!(matches!(sub.next_step(5, 0), Step::Baseline));
        sub.stream_started(8);
        // 6..=8 were never fed: history.
        assert!(matches!(sub.next_step(5, 0), Step::History));
        sub.deliver(&delivery(9));
        let Step::Send(sent) = sub.next_step(8, 0) else { panic!("expected the buffer") };
        assert_eq!(sent.iter().map(|d| d.pos).collect::<Vec<_>>(), [9]);
        assert!(matches!(sub.next_step(9, 1), Step::Live));
        assert!(sub.is_live());
    }

    #[test]
    fn drops_buffered_changes_the_client_already_has() {
        let sink = Arc::new(Recorder::default());
        let sub = subscription(sink.clone());
        sub.fed_after(Some(3));
        for pos in 4..=7 {
            sub.deliver(&delivery(pos));
        }
        let Step::Send(sent) = sub.next_step(5, 0) else { panic!("expected the buffer") };
        assert_eq!(sent.iter().map(|d| d.pos).collect::<Vec<_>>(), [6, 7]);
        assert!(matches!(sub.next_step(7, 2), Step::Live));
        // Live now, and behind the position it went live at: dropped.
        sub.deliver(&delivery(7));
        sub.deliver(&delivery(8));
        assert_eq!(sink.take(), ["pos 8 seq 3 created"]);
    }

    #[test]
    fn an_overflowing_buffer_falls_back_to_history() {
        let sub = subscription(Arc::default());
        sub.fed_after(Some(0));
        for pos in 1..=START_BUFFER as u64 + 1 {
            sub.deliver(&delivery(pos));
        }
        assert!(matches!(sub.next_step(0, 0), Step::History));
        // Buffering again after the overflow was noticed.
        sub.deliver(&delivery(START_BUFFER as u64 + 2));
        let Step::Send(sent) = sub.next_step(START_BUFFER as u64 + 1, 0) else { panic!("expected the buffer") };
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn a_skip_ends_live_subscriptions_that_needed_it_and_moves_starting_ones_on() {
        let sink = Arc::new(Recorder::default());
        let live = subscription(sink.clone());
        live.fed_after(Some(0));
        assert!(matches!(live.next_step(0, 0), Step::Live));
        assert!(live.stream_skipped(3, "lost"));
        assert_eq!(sink.take(), ["gap"]);
        live.deliver(&delivery(4));
        assert!(sink.take().is_empty(), "nothing after the gap");

        // Live past the skipped positions already (it read them from history).
        let ahead = subscription(Arc::default());
        ahead.fed_after(Some(0));
        assert!(matches!(ahead.next_step(5, 0), Step::Live));
        assert!(!ahead.stream_skipped(3, "lost"));

        let quiet = Arc::new(Recorder::default());
        let starting = subscription(quiet.clone());
        starting.fed_after(Some(0));
        starting.deliver(&delivery(1));
        assert!(!starting.stream_skipped(3, "lost"));
        assert!(quiet.take().is_empty(), "no gap frame before the subscription is live");
        // Fed from 3 on: what it needs before that comes from history (and
        // fails there if it is gone).
        assert!(matches!(starting.next_step(0, 0), Step::History));
        assert!(matches!(starting.next_step(3, 0), Step::Live));
    }
}
