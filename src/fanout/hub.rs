//! A hub: the thread that owns a route's [`Stream`] and [`Registry`], and
//! does its fan-out (one hub per route: [`super::hubs`]; the groups whose
//! filters scan text are evaluated in lanes: [`super::lane`]).
//!
//! Committed changes (this process's, from the store; other processes',
//! from the broker), subscriptions coming and going, and starting
//! subscriptions asking for a stream's start all arrive as [`Command`]s on
//! one bounded queue and are applied one at a time, so each decision about
//! the route sees one consistent state. (The state is kept by route, so a
//! hub could serve several; the simulation drives one over one route.) The hub fills holes in a stream from
//! history after [`GAP_TIMEOUT`]; what history no longer has is skipped, and
//! the live subscriptions that needed it end with a `gap` frame.
//!
//! The queue holds [`HUB_QUEUE`] commands. At the bound, the writer that
//! commits waits (backpressure on writes), a subscription waits, and the
//! broker drops what it received: the stream notices the hole and reads it
//! from history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::lane::Item;
use super::registry::{Lanes, Registry};
use super::stream::Stream;
use super::subscription::Subscription;
use super::{Catalog, History, Watch};
use crate::change::Change;
use crate::filter::Filter;

/// How long a hole in a stream may stay open before history is asked.
pub(crate) const GAP_TIMEOUT: Duration = Duration::from_millis(500);
/// Commands the hub's queue holds.
pub(crate) const HUB_QUEUE: usize = 8192;
/// History entries read per query when filling a hole or catching up.
pub(crate) const HISTORY_PAGE: usize = 1024;

/// History read back: the changes, and the last position history no
/// longer has, if it skipped any.
struct Read {
    changes: Vec<Change>,
    lost: Option<u64>,
}

/// What the hub is asked to do.
pub(crate) enum Command {
    /// Committed changes, from this process or another, in any order.
    Changes(Vec<Change>),
    /// A new, starting subscription and its effective filter; answered
    /// once it is in the registry.
    Register(Arc<Subscription>, Filter, oneshot::Sender<()>),
    /// A subscription ended.
    Unregister(Arc<Subscription>),
    /// A starting subscription accounts for everything of `route` up to the
    /// position: start the route's stream there unless it has a start.
    Start(&'static str, u64, oneshot::Sender<()>),
    /// Read whatever the route committed that has not arrived (the broker
    /// was away).
    CatchUp(&'static str),
    /// Answered (dropped) once every change received before it has been
    /// queued to its subscriptions, lanes included.
    Settle(oneshot::Sender<()>),
}

/// The hub's state, driven by [`HubState::apply`] and [`HubState::tick`].
pub(crate) struct HubState {
    registry: Registry,
    /// Subscriptions lanes ended, to unregister.
    ended: Arc<parking_lot::Mutex<Vec<Arc<Subscription>>>>,
    streams: HashMap<&'static str, Stream>,
    history: Arc<dyn History>,
    catalog: Arc<Catalog>,
    watch: Arc<Watch>,
    /// With a broker, every started stream is caught up from history this
    /// often, so a message lost while both ends stayed connected is found
    /// even when no later change reveals the hole.
    sweep: Option<(Duration, Instant)>,
}

impl HubState {
    pub(crate) fn new(
        history: Arc<dyn History>,
        catalog: Arc<Catalog>,
        watch: Arc<Watch>,
        sweep: Option<Duration>,
        lanes: Lanes,
    ) -> Self {
        HubState {
            ended: lanes.ended.clone(),
            registry: Registry::with_lanes(lanes),
            streams: HashMap::new(),
            history,
            catalog,
            watch,
            sweep: sweep.map(|every| (every, Instant::now())),
        }
    }

    pub(crate) fn apply(&mut self, command: Command) {
        match command {
            Command::Changes(changes) => self.changes(changes),
            Command::Register(sub, filter, done) => self.register(sub, filter, done),
            Command::Unregister(sub) => self.unregister(&sub),
            Command::Start(route, after, done) => self.start(route, after, done),
            Command::CatchUp(route) => self.catch_up(route, usize::MAX),
            Command::Settle(done) => {
                let done = Arc::new(done);
                for lane in self.registry.every_lane() {
                    lane.push(Item::Settle(done.clone()));
                }
            }
        }
        self.unregister_ended();
    }

    /// Unregisters the subscriptions lanes ended.
    fn unregister_ended(&mut self) {
        let ended = std::mem::take(&mut *self.ended.lock());
        for sub in ended {
            self.unregister(&sub);
        }
    }

    fn changes(&mut self, changes: Vec<Change>) {
        let mut touched: Vec<&'static str> = Vec::new();
        for change in changes {
            let route = change.route;
            let Some(stream) = self.streams.get_mut(route) else { continue };
            if stream.offer(change) && !touched.contains(&route) {
                touched.push(route);
            }
        }
        for route in touched {
            self.drain(route);
        }
    }

    fn register(&mut self, sub: Arc<Subscription>, filter: Filter, done: oneshot::Sender<()>) {
        if sub.is_closed() {
            return; // unsubscribed (or disconnected) before it got here
        }
        let route = sub.route();
        let delivered = self.streams.entry(route).or_default().delivered();
        match self.registry.add(sub.clone(), filter) {
            // Told where it joined by its lane, in the lane's order.
            Some(lane) => lane.push(Item::Join(sub, delivered, done)),
            None => {
                sub.fed_after(delivered);
                let _ = done.send(());
            }
        }
        self.publish_stats(route);
    }

    fn unregister(&mut self, sub: &Subscription) {
        sub.close();
        if self.registry.remove(sub) {
            self.forget_if_unwatched(sub.route());
            self.publish_stats(sub.route());
        }
    }

    /// Starts the route's stream after `after` unless it has a start;
    /// `done` is answered (dropped) once every lane has told its members.
    fn start(&mut self, route: &'static str, after: u64, done: oneshot::Sender<()>) {
        let Some(stream) = self.streams.get_mut(route) else { return };
        if stream.start(after) {
            for sub in self.registry.inline_members(route) {
                sub.stream_started(after);
            }
            let done = Arc::new(done);
            for lane in self.registry.lanes(route) {
                lane.push(Item::Started(after, done.clone()));
            }
            self.drain(route);
        }
    }

    /// Delivers what continues the stream without a hole; repairs at once
    /// if too much waits behind one.
    fn drain(&mut self, route: &'static str) {
        let Some(stream) = self.streams.get_mut(route) else { return };
        while let Some(change) = stream.pop_ready() {
            self.registry.fan_out(&Arc::new(change));
        }
        stream.settle(Instant::now());
        if stream.delivered().is_some() && stream.pending() > super::stream::MAX_PENDING {
            self.repair(route);
        }
    }

    /// Repairs holes that stayed open too long; catches streams up when a
    /// sweep is due.
    pub(crate) fn tick(&mut self, now: Instant) {
        self.unregister_ended();
        let stale: Vec<&'static str> =
            self.streams.iter().filter(|(_, s)| s.needs_repair(now, GAP_TIMEOUT)).map(|(r, _)| *r).collect();
        for route in stale {
            self.repair(route);
        }
        if let Some((every, last)) = self.sweep {
            if now.duration_since(last) >= every {
                self.sweep = Some((every, now));
                let started: Vec<&'static str> =
                    self.streams.iter().filter(|(_, s)| s.delivered().is_some()).map(|(r, _)| *r).collect();
                for route in started {
                    self.catch_up(route, 1);
                }
            }
        }
    }

    /// Fills the route's holes from history; what history no longer has
    /// is skipped (see [`HubState::skip`]).
    fn repair(&mut self, route: &'static str) {
        while let Some((from, to)) = self.streams.get(route).and_then(Stream::hole) {
            let limit = usize::try_from(to - from + 1).unwrap_or(usize::MAX).min(HISTORY_PAGE);
            let read = match self.read(route, from - 1, limit) {
                Ok(read) => read,
                Err(e) => {
                    // Not a loss: the database may be restarting. Try again later.
                    tracing::warn!(route, error = %e, "reading change history failed; retrying");
                    if let Some(stream) = self.streams.get_mut(route) {
                        stream.retry_later(Instant::now());
                    }
                    return;
                }
            };
            let filled = read.changes.first().is_some_and(|c| c.pos == from);
            self.count_from_history(read.changes.len());
            if let Some(lost) = read.lost {
                self.skip(route, lost.min(to), &format!("changes {from} to {} of {route} were lost", lost.min(to)));
            } else if !filled {
                // History ends before changes this process holds: the
                // database is not the one they were numbered in.
                self.skip(route, to, &format!("changes {from} to {to} of {route} are not in this database"));
            }
            let Some(stream) = self.streams.get_mut(route) else { return };
            read.changes.into_iter().filter(|c| c.pos <= to).for_each(|c| {
                stream.offer(c);
            });
            self.drain(route);
        }
    }

    /// Reads what `route` committed after the stream's last delivered
    /// position, up to `pages` pages.
    fn catch_up(&mut self, route: &'static str, pages: usize) {
        for _ in 0..pages {
            let Some(after) = self.streams.get(route).and_then(Stream::delivered) else { return };
            match self.read(route, after, HISTORY_PAGE) {
                Ok(read) => {
                    let full = read.changes.len() == HISTORY_PAGE;
                    self.count_from_history(read.changes.len());
                    if let Some(lost) = read.lost {
                        self.skip(route, lost, &format!("changes of {route} after {after} are no longer kept"));
                    }
                    self.changes(read.changes);
                    if !full {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(route, error = %e, "catching up from history failed; retrying later");
                    return;
                }
            }
        }
    }

    /// History after `after`, decoded, and the last position it no longer
    /// has (or holds something this process cannot decode), if any.
    fn read(&self, route: &'static str, after: u64, limit: usize) -> Result<Read, crate::Error> {
        let page = self.history.page(route, after, limit)?;
        let mut read = Read { changes: Vec::with_capacity(page.entries.len()), lost: page.lost_after(after) };
        for (pos, body) in &page.entries {
            match self.catalog.decode_body(route, body) {
                Ok(change) => read.changes.push(change),
                Err(e) => {
                    tracing::error!(route, pos, error = %e, "undecodable history entry");
                    read.changes.clear();
                    read.lost = Some(*pos);
                    break;
                }
            }
        }
        Ok(read)
    }

    /// Changes of `route` up to `through` were lost on their way here and
    /// history no longer has them: the stream goes on after them, live
    /// subscriptions that needed them end with a `gap` frame (their clients
    /// re-subscribe), starting ones go on (see [`Subscription::stream_skipped`]).
    fn skip(&mut self, route: &'static str, through: u64, reason: &str) {
        let Some(stream) = self.streams.get_mut(route) else { return };
        tracing::warn!(route, through, reason, "changes lost; subscribers that needed them must resync");
        self.watch.repairs().gaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stream.skip_to(through);
        let ended: Vec<Arc<Subscription>> =
            self.registry.inline_members(route).filter(|sub| sub.stream_skipped(through, reason)).cloned().collect();
        for sub in ended {
            self.registry.remove(&sub);
        }
        let reason: Arc<str> = reason.into();
        for lane in self.registry.lanes(route) {
            lane.push(Item::Skipped(through, reason.clone()));
        }
        self.forget_if_unwatched(route);
        self.publish_stats(route);
        self.drain(route);
    }

    fn count_from_history(&self, changes: usize) {
        if changes > 0 {
            self.watch.repairs().from_history.fetch_add(changes as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn forget_if_unwatched(&mut self, route: &'static str) {
        if !self.registry.watches(route) {
            self.streams.remove(route);
        }
    }

    fn publish_stats(&self, route: &'static str) {
        self.watch.set(route, self.registry.stats(route));
    }
}

/// Runs the hub of `route` on a thread of its own until every sender is gone.
pub(crate) fn spawn(route: &str, mut state: HubState, mut commands: mpsc::Receiver<Command>) {
    std::thread::Builder::new()
        .name(format!("wyrm-hub-{route}"))
        .spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_time().build().expect("the hub's timer runtime");
            runtime.block_on(async move {
                // One timer for the thread, not one per command.
                let mut tick = tokio::time::interval(GAP_TIMEOUT / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        // The clock first: it is ready only every tick, and
                        // a steady stream of commands must not starve repairs.
                        biased;
                        _ = tick.tick() => state.tick(Instant::now()),
                        command = commands.recv() => {
                            let Some(command) = command else { return };
                            apply_guarded(&mut state, command);
                            // Whatever else is queued, in one go.
                            for _ in 0..1024 {
                                let Ok(command) = commands.try_recv() else { break };
                                apply_guarded(&mut state, command);
                            }
                        }
                    }
                }
            })
        })
        .expect("spawn the hub thread");
}

/// A panic in one command is a bug, but it must not stop delivery for everyone.
fn apply_guarded(state: &mut HubState, command: Command) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.apply(command))) {
        tracing::error!(panic = %crate::store::panic_message(&*panic), "the hub panicked applying a command");
    }
}
