//! The one way a subscription starts, for `subscribe` and `resume` alike:
//!
//! 1. [`Fanout::open`]: register with the hub, which from now on buffers
//!    the changes the subscription concerns, and listen on the broker, so
//!    changes other processes commit from now on reach this process;
//! 2. the caller reads what the client gets first at a known position
//!    (a snapshot of rows, or nothing but a check that history reaches back
//!    to the client's position) and builds the reply;
//! 3. [`Opening::start`]: queue the reply (waiting for room), then catch up
//!    from that position, from history for whatever the stream did not
//!    feed the subscription and from its buffer for the rest, streamed with
//!    backpressure, and go live (see [`super::subscription`]).
//!
//! Whatever the order in which snapshots, registrations and stream starts
//! happen across concurrent subscriptions, each one receives every change
//! after its own position exactly once, or, when history no longer holds
//! what it needs, a `gap` frame after its reply. Dropping an [`Opening`]
//! before it starts (the snapshot failed, the request was refused) removes
//! the subscription.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::sink::{Outbound, Sink};
use super::subscription::{Delivery, Step, Subscription};
use super::{Catalog, Fanout, RouteInfo};
use crate::filter::Filter;
use crate::protocol;
use crate::store::history::Page;

/// History entries read and streamed per query while catching up.
const CATCH_UP_PAGE: usize = 256;
/// How long a catching-up subscription keeps retrying a history read that
/// fails (the database restarting) before it is ended with a `gap` frame.
const HISTORY_PATIENCE: Duration = Duration::from_secs(20);

/// A registered subscription that has not announced itself yet.
pub(crate) struct Opening {
    sub: Arc<Subscription>,
    /// The effective filter, for matching what it catches up on; taken
    /// when it starts (so a drop before that ends the subscription).
    filter: Option<Filter>,
    fanout: Fanout,
}

impl Fanout {
    /// Step 1: registers a subscription to `filter` on `info`'s route,
    /// delivering to `sink`, and listens for other processes' changes.
    pub(crate) async fn open(&self, info: RouteInfo, filter: Filter, sink: Arc<dyn Sink>) -> Opening {
        let sub = Arc::new(Subscription::new(self.next_id(), info.route, sink));
        // Registered before listening, so the broker never sees the route
        // unwatched in between; listening before the caller's snapshot, so
        // a change committed after it cannot be published before this
        // process hears it.
        self.register(sub.clone(), filter.clone()).await;
        self.shared.broker.listen(info.route).await;
        Opening { sub, filter: Some(filter), fanout: self.clone() }
    }
}

impl Opening {
    /// The subscription, for the connection to track (and end on close).
    pub(crate) fn subscription(&self) -> &Arc<Subscription> {
        &self.sub
    }

    /// Step 3: queues `reply`, which accounts for every change of the route
    /// up to position `through`, then catches up and goes live. `fence` is
    /// a position read after step 1 (the caller's snapshot position): every
    /// later one was committed after the subscription registered, so the
    /// hub sees it, and a stream may start there. Returns when the
    /// subscription is live, or ended (closed, or a `gap`).
    pub(crate) async fn start(mut self, reply: String, through: u64, fence: u64) {
        let filter = self.filter.take().expect("an opening starts once");
        let (sub, fanout) = (self.sub.clone(), self.fanout.clone());
        if !sub.sink.send(Outbound::Frame(reply)).await {
            fanout.unsubscribe(sub);
            return;
        }
        let catching = CatchUp::new(through, fence, filter);
        if let Err(reason) = catch_up(&fanout, &sub, catching).await {
            tracing::warn!(sub = sub.id, route = sub.route(), %reason, "subscription could not catch up");
            sub.sink.push(Outbound::Frame(protocol::gap_frame(sub.id, &reason)));
            fanout.unsubscribe(sub);
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.filter.is_some() {
            self.fanout.unsubscribe(self.sub.clone());
        }
    }
}

/// Sends the subscription everything after `through` that the client is
/// missing, until it is live. `Err` when history no longer has what it needs.
async fn catch_up(fanout: &Fanout, sub: &Arc<Subscription>, mut catching: CatchUp) -> Result<(), String> {
    loop {
        match catching.next(sub) {
            Action::Done => return Ok(()),
            Action::Send(seq, d) => {
                let event = Outbound::Event { sub: sub.id, seq, event: d };
                if !sub.sink.send(event).await {
                    return Ok(());
                }
            }
            Action::StartStream(fence) => fanout.start_stream(sub.route(), fence).await,
            Action::ReadHistory(after) => {
                let page = read_history(fanout, sub.route(), after).await?;
                catching.history(sub, &fanout.shared.catalog, after, &page)?;
            }
        }
    }
}

/// The catching-up of one subscription as a state machine without I/O:
/// [`CatchUp::next`] says what to do, the caller does it (and hands history
/// pages back through [`CatchUp::history`]). The async driver above and the
/// deterministic simulation in the tests run the same machine.
pub(crate) struct CatchUp {
    /// Everything up to here is accounted for (sent, or queued below).
    through: u64,
    /// Where the route's stream may start (see [`Opening::start`]).
    fence: u64,
    /// The subscription's effective filter.
    filter: Filter,
    /// The last sequence number used.
    seq: u64,
    /// Events to send, and positions accounted for without one.
    queue: VecDeque<Queued>,
    /// A history read stopped short of the head: read on before asking the
    /// subscription again.
    more_history: bool,
}

enum Queued {
    Event(Arc<Delivery>),
    Through(u64),
}

/// What the catching-up task does next.
#[derive(Debug)]
pub(crate) enum Action {
    /// Queue this event (sequence number, change) with backpressure.
    Send(u64, Arc<Delivery>),
    /// Ask the hub to start the route's stream after this position.
    StartStream(u64),
    /// Read history after this position and hand it to [`CatchUp::history`].
    ReadHistory(u64),
    /// Live, or closed: nothing more to do.
    Done,
}

impl CatchUp {
    pub(crate) fn new(through: u64, fence: u64, filter: Filter) -> Self {
        CatchUp { through, fence, filter, seq: 0, queue: VecDeque::new(), more_history: false }
    }

    pub(crate) fn next(&mut self, sub: &Subscription) -> Action {
        loop {
            match self.queue.pop_front() {
                Some(Queued::Event(d)) => {
                    self.seq += 1;
                    self.through = d.pos;
                    return Action::Send(self.seq, d);
                }
                Some(Queued::Through(pos)) => {
                    self.through = pos;
                    continue;
                }
                None if self.more_history => return Action::ReadHistory(self.through),
                None => {}
            }
            match sub.next_step(self.through, self.seq) {
                Step::Stop | Step::Live => return Action::Done,
                Step::Baseline => return Action::StartStream(self.fence),
                Step::History => {
                    self.more_history = true;
                    return Action::ReadHistory(self.through);
                }
                Step::Send(deliveries) => self.queue.extend(deliveries.into_iter().map(Queued::Event)),
            }
        }
    }

    /// A page of history read after `after`: queues what concerns the
    /// subscription. `Err` if an entry cannot be decoded.
    pub(crate) fn history(
        &mut self,
        sub: &Subscription,
        catalog: &Catalog,
        after: u64,
        page: &Page,
    ) -> Result<(), String> {
        for (pos, body) in &page.entries {
            let change = catalog
                .decode_body(sub.route(), body)
                .map_err(|e| format!("history entry {pos} of {} is unreadable: {e}", sub.route()))?;
            let delivery = change.action_for(&self.filter).and_then(|action| {
                let data = change.payload(action)?;
                Some(Arc::new(Delivery { pos: change.pos, route: change.route, action, data }))
            });
            self.queue.push_back(match delivery {
                Some(d) => Queued::Event(d),
                None => Queued::Through(*pos),
            });
        }
        self.more_history = !page.reaches_head(after);
        Ok(())
    }
}

async fn read_history(fanout: &Fanout, route: &'static str, after: u64) -> Result<Page, String> {
    let give_up = tokio::time::Instant::now() + HISTORY_PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        let history = fanout.shared.history.clone();
        let read = tokio::task::spawn_blocking(move || history.page(route, after, CATCH_UP_PAGE)).await;
        match read {
            Ok(Ok(page)) if page.continues(after) => return Ok(page),
            Ok(Ok(_)) => return Err(format!("changes of {route} after {after} are no longer kept")),
            Ok(Err(e)) if tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(route, error = %e, "reading history failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Ok(Err(e)) => return Err(format!("history of {route} could not be read: {e}")),
            Err(join) => return Err(format!("history read failed: {join}")),
        }
    }
}
