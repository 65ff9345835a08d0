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

use std::sync::Arc;
use std::time::Duration;

use super::sink::{Outbound, Sink};
use super::subscription::{Step, Subscription};
use super::{Fanout, RouteInfo};
use crate::filter::Filter;
use crate::protocol;

/// History entries read and streamed per query while catching up.
const CATCH_UP_PAGE: usize = 256;
/// Attempts at a history read that fails (the database restarting) before
/// the subscription is ended with a `gap` frame.
const HISTORY_ATTEMPTS: u32 = 5;

/// A registered subscription that has not announced itself yet.
pub(crate) struct Opening {
    sub: Arc<Subscription>,
    fanout: Fanout,
    started: bool,
}

impl Fanout {
    /// Step 1: registers a subscription to `filter` on `info`'s route,
    /// delivering to `sink`, and listens for other processes' changes.
    pub(crate) async fn open(&self, info: RouteInfo, filter: Filter, sink: Arc<dyn Sink>) -> Opening {
        let sub = Arc::new(Subscription::new(self.next_id(), info, filter, sink));
        // Registered before listening, so the broker never sees the route
        // unwatched in between; listening before the caller's snapshot, so
        // a change committed after it cannot be published before this
        // process hears it.
        self.register(sub.clone()).await;
        self.shared.broker.listen(info.route).await;
        Opening { sub, fanout: self.clone(), started: false }
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
        self.started = true;
        let (sub, fanout) = (self.sub.clone(), self.fanout.clone());
        if !sub.sink.send(Outbound::Frame(reply)).await {
            fanout.unsubscribe(sub);
            return;
        }
        if let Err(reason) = catch_up(&fanout, &sub, through, fence).await {
            tracing::warn!(sub = sub.id, route = sub.route(), %reason, "subscription could not catch up");
            sub.sink.push(Outbound::Frame(protocol::gap_frame(sub.id, &reason)));
            fanout.unsubscribe(sub);
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if !self.started {
            self.fanout.unsubscribe(self.sub.clone());
        }
    }
}

/// Sends the subscription everything after `through` that the client is
/// missing, until it is live. `Err` when history no longer has what it needs.
async fn catch_up(fanout: &Fanout, sub: &Arc<Subscription>, mut through: u64, fence: u64) -> Result<(), String> {
    let mut seq = 0;
    loop {
        match sub.next_step(through, seq) {
            Step::Stop | Step::Live => return Ok(()),
            Step::Baseline => fanout.start_stream(sub.route(), fence).await,
            Step::Send(deliveries) => {
                for d in deliveries {
                    seq += 1;
                    if !send(sub, seq, d.pos, d.action, d.data).await {
                        return Ok(());
                    }
                    through = d.pos;
                }
            }
            Step::History => {
                if !replay_history(fanout, sub, &mut through, &mut seq).await? {
                    return Ok(());
                }
            }
        }
    }
}

async fn send(sub: &Subscription, seq: u64, pos: u64, action: crate::change::Action, data: Arc<str>) -> bool {
    let event = Outbound::Event { sub: sub.id, seq, pos, route: sub.route(), action, data };
    sub.sink.send(event).await
}

/// Streams the history after `through` up to its head, with backpressure.
/// `Ok(false)` if the connection went away meanwhile.
async fn replay_history(fanout: &Fanout, sub: &Arc<Subscription>, through: &mut u64, seq: &mut u64) -> Result<bool, String> {
    loop {
        let page = read_history(fanout, sub.route(), *through).await?;
        let after = *through;
        for (pos, body) in &page.entries {
            let change = fanout
                .shared
                .catalog
                .decode_body(sub.route(), body)
                .map_err(|e| format!("history entry {pos} of {} is unreadable: {e}", sub.route()))?;
            if let Some(d) = sub.delivery_of(&change) {
                *seq += 1;
                if !send(sub, *seq, d.pos, d.action, d.data).await {
                    return Ok(false);
                }
            }
            *through = *pos;
        }
        if page.reaches_head(after) || sub.is_closed() {
            return Ok(true);
        }
    }
}

async fn read_history(fanout: &Fanout, route: &'static str, after: u64) -> Result<crate::store::history::Page, String> {
    let mut attempt = 0;
    loop {
        let history = fanout.shared.history.clone();
        let read = tokio::task::spawn_blocking(move || history.page(route, after, CATCH_UP_PAGE)).await;
        match read {
            Ok(Ok(Some(page))) => return Ok(page),
            Ok(Ok(None)) => return Err(format!("changes of {route} after {after} are no longer kept")),
            Ok(Err(e)) if attempt + 1 < HISTORY_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(route, error = %e, attempt, "reading history failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Ok(Err(e)) => return Err(format!("history of {route} could not be read: {e}")),
            Err(join) => return Err(format!("history read failed: {join}")),
        }
    }
}
