//! Lanes: where the subscription groups whose filters scan text are
//! evaluated, off the hub thread, so that an expensive group delays only
//! itself.
//!
//! Most filters cost the same whatever the row holds (`list_id = 3`,
//! `priority__gt`, `text__startswith`). A filter that scans (`icontains`,
//! `contains`, `iexact`, `istartswith`, `iendswith`) costs as much as the
//! text it reads, and two thousand of them over a 900 KB row would keep the
//! hub busy for seconds, holding back every other subscription's events.
//! So each such group gets a [`Lane`]: the hub only queues the change in it
//! (an `Arc`, no evaluation), and a small pool of worker threads evaluates
//! the group's filter and delivers to its members.
//!
//! A lane is the hub for its members: everything the hub would have done to
//! them (feed them a change, tell them where they joined, that the stream
//! started or skipped positions) is queued in the lane in the hub's order
//! and applied in that order, so a member cannot tell how far behind its
//! lane runs — the proof in `docs/design/delivery.md` holds unchanged. Lanes
//! are run round-robin, one item per turn, so many busy lanes share the
//! workers fairly.
//!
//! A lane that falls too far behind (more than [`LANE_ITEMS`] changes, or
//! [`LANE_BYTES`] of rows, waiting) drops the changes it holds, leaving a
//! marker in their place: a live member that reaches the marker ends with a
//! `gap` frame (its filter costs more than this server can evaluate at the
//! rate its route changes), a starting one reads what was dropped from
//! history, as when its own buffer overflows.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::subscription::{Delivery, Subscription};
use crate::change::Change;
use crate::filter::Filter;

/// Changes a lane may hold before it drops them.
pub(crate) const LANE_ITEMS: usize = 4096;
/// Bytes of rows a lane may hold before it drops them.
pub(crate) const LANE_BYTES: usize = 64 << 20;

/// How much a lane may hold before it drops its changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) changes: usize,
    pub(crate) bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { changes: LANE_ITEMS, bytes: LANE_BYTES }
    }
}

/// What the hub asks a lane to do, in the hub's order.
pub(crate) enum Item {
    /// A change of the route, in position order.
    Change(Arc<Change>),
    /// A subscription joins; the stream had fed everything up to the
    /// position (see [`Subscription::fed_after`]). Answered once done.
    Join(Arc<Subscription>, Option<u64>, oneshot::Sender<()>),
    /// The route's stream started after the position; the sender is
    /// dropped (answering the start) once every lane applied it.
    Started(u64, Arc<oneshot::Sender<()>>),
    /// The route's stream skipped positions up to this one.
    Skipped(u64, Arc<str>),
    /// Changes were dropped here because the lane fell behind.
    Dropped,
    /// Dropped once applied: everything queued before it was.
    Settle(Arc<oneshot::Sender<()>>),
}

/// Runs lanes that have work.
pub(crate) trait Scheduler: Send + Sync {
    /// `lane` has items and is not scheduled yet: run it.
    fn schedule(&self, lane: Arc<Lane>);
}

/// One scanning group's queue and members.
pub(crate) struct Lane {
    filter: Filter,
    scheduler: Arc<dyn Scheduler>,
    limits: Limits,
    queue: Mutex<Queue>,
    /// Only the worker running the lane touches them.
    members: Mutex<Vec<Arc<Subscription>>>,
    /// Members the lane ended (a skip, or falling behind), for the hub to
    /// unregister.
    ended: Arc<Mutex<Vec<Arc<Subscription>>>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Changes among the items, and their rows' size.
    changes: usize,
    bytes: usize,
    scheduled: bool,
}

impl Lane {
    pub(crate) fn new(
        filter: Filter,
        scheduler: Arc<dyn Scheduler>,
        limits: Limits,
        ended: Arc<Mutex<Vec<Arc<Subscription>>>>,
    ) -> Arc<Lane> {
        Arc::new(Lane { filter, scheduler, limits, queue: Mutex::default(), members: Mutex::default(), ended })
    }

    /// Queues an item; schedules the lane if it was idle.
    pub(crate) fn push(self: &Arc<Self>, item: Item) {
        let mut queue = self.queue.lock();
        if let Item::Change(change) = &item {
            queue.changes += 1;
            queue.bytes += change.approx_bytes();
        }
        queue.items.push_back(item);
        if queue.changes > self.limits.changes || queue.bytes > self.limits.bytes {
            tracing::warn!(
                changes = queue.changes,
                bytes = queue.bytes,
                "a scanning subscription group fell behind; its live subscriptions end with a gap"
            );
            queue.drop_changes();
        }
        if !queue.scheduled {
            queue.scheduled = true;
            drop(queue);
            self.scheduler.schedule(self.clone());
        }
    }

    /// Applies one item. Returns whether more are waiting (the caller
    /// schedules the lane again, behind the others).
    pub(crate) fn run_one(&self) -> bool {
        let item = {
            let mut queue = self.queue.lock();
            let Some(item) = queue.items.pop_front() else {
                queue.scheduled = false;
                return false;
            };
            if let Item::Change(change) = &item {
                queue.changes -= 1;
                queue.bytes -= change.approx_bytes();
            }
            item
        };
        self.apply(item);
        true
    }

    fn apply(&self, item: Item) {
        let mut members = self.members.lock();
        let mut ended = Vec::new();
        match item {
            Item::Change(change) => {
                members.retain(|m| !m.is_closed());
                if members.is_empty() {
                    return;
                }
                let Some(action) = change.action_for(&self.filter) else { return };
                let Some(data) = change.payload(action) else { return };
                let delivery = Arc::new(Delivery { pos: change.pos, route: change.route, action, data });
                for member in members.iter() {
                    member.deliver(&delivery);
                }
            }
            Item::Join(sub, feed, done) => {
                sub.fed_after(feed);
                members.push(sub);
                let _ = done.send(());
            }
            Item::Started(at, _done) => members.iter().for_each(|m| m.stream_started(at)),
            Item::Settle(_done) => {}
            Item::Skipped(through, reason) => {
                members.retain(|m| {
                    let keep = !m.stream_skipped(through, &reason);
                    if !keep {
                        ended.push(m.clone());
                    }
                    keep
                });
            }
            Item::Dropped => {
                const REASON: &str = "this subscription's filter could not keep up with its route; subscribe again";
                members.retain(|m| {
                    let keep = !m.fell_behind(REASON);
                    if !keep {
                        ended.push(m.clone());
                    }
                    keep
                });
            }
        }
        if !ended.is_empty() {
            self.ended.lock().append(&mut ended);
        }
    }
}

impl Queue {
    /// Replaces every queued change with a [`Item::Dropped`] marker in its
    /// place (one per run of changes), keeping the other items' order.
    fn drop_changes(&mut self) {
        let mut kept = VecDeque::with_capacity(self.items.len() - self.changes);
        for item in self.items.drain(..) {
            match item {
                Item::Change(_) | Item::Dropped if matches!(kept.back(), Some(Item::Dropped)) => {}
                Item::Change(_) => kept.push_back(Item::Dropped),
                other => kept.push_back(other),
            }
        }
        self.items = kept;
        (self.changes, self.bytes) = (0, 0);
    }
}

/// Worker threads that run lanes round-robin.
pub(crate) struct Pool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    ready: Mutex<VecDeque<Arc<Lane>>>,
    wake: Condvar,
}

impl Pool {
    /// The process's pool: half the cores (at least one), so scanning
    /// filters never take every core from the hub and the connections.
    pub(crate) fn shared() -> Arc<Pool> {
        static POOL: std::sync::OnceLock<Arc<Pool>> = std::sync::OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Pool::start((cores / 2).max(1))
        })
        .clone()
    }

    /// Starts `workers` threads. They live as long as the process.
    fn start(workers: usize) -> Arc<Pool> {
        let shared = Arc::new(PoolShared { ready: Mutex::default(), wake: Condvar::new() });
        for n in 0..workers.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("wyrm-lane-{n}"))
                .spawn(move || loop {
                    let lane = {
                        let mut ready = shared.ready.lock();
                        loop {
                            if let Some(lane) = ready.pop_front() {
                                break lane;
                            }
                            shared.wake.wait(&mut ready);
                        }
                    };
                    let more = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lane.run_one()))
                        .unwrap_or_else(|panic| {
                            let panic = crate::store::panic_message(&*panic);
                            tracing::error!(%panic, "a lane panicked applying an item");
                            true
                        });
                    if more {
                        shared.ready.lock().push_back(lane);
                        shared.wake.notify_one();
                    }
                })
                .expect("spawn a lane worker");
        }
        Arc::new(Pool { shared })
    }
}

impl Scheduler for Pool {
    fn schedule(&self, lane: Arc<Lane>) {
        self.shared.ready.lock().push_back(lane);
        self.shared.wake.notify_one();
    }
}
