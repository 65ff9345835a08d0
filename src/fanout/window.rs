//! Ordered, limited live windows: a subscription with `order_by` and
//! `limit` holds the first N matching rows in that order, as Meteor's
//! sort+limit cursors and Firestore's `orderBy().limit()` do.
//!
//! A window is an ordinary subscription to its filter (so it is registered,
//! snapshotted, caught up and ended by gaps exactly as any other, and the
//! index finds it for the changes that concern it) whose events do not go
//! to the client: they go to a [`WindowSink`], which only marks the window
//! dirty. A route's [`Refresher`] then reads, in one read transaction at a
//! position q, the current top N of every dirty window (one statement for
//! many windows, identical windows sharing one query: a refill is batched
//! per route, never one query per subscriber), and sends each client the
//! difference from what it holds as events that say where rows go
//! (`index`), all numbered at q.
//!
//! Why this keeps the subscription guarantees: every change after the
//! snapshot that concerns the filter reaches the window (the subscription
//! sequence guarantees it), and marks it dirty after it was committed; a
//! refresh that starts afterwards reads at a position that includes it. A
//! mark arriving while a refresh runs makes another refresh follow. So
//! once writes stop, every window equals its `ORDER BY ... LIMIT` in the
//! database, and the events in between are in position order. Intermediate
//! states between two refreshes may be skipped (a row entering and leaving
//! between them is never told): a window shows the top N at q, not a
//! history.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::sink::{Outbound, Sink};
use super::subscription::Subscription;
use crate::change::Action;
use crate::error::Error;
use crate::protocol;
use crate::sql::Bind;
use crate::store::{Conn, Db};

/// What a window holds: the rows of `SELECT .. WHERE .. ORDER BY .. LIMIT`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowQuery {
    /// The `WHERE` body (the filter and the scope), with `?` placeholders.
    pub(crate) where_sql: String,
    pub(crate) binds: Vec<Bind>,
    /// `ORDER BY` terms, ending with the primary key (so the order is total).
    pub(crate) order_by: String,
    pub(crate) limit: usize,
}

impl WindowQuery {
    /// Identical windows share one query.
    fn key(&self) -> String {
        format!("{}\u{0}{:?}\u{0}{}\u{0}{}", self.where_sql, self.binds, self.order_by, self.limit)
    }
}

/// One row of a window: its primary key (as JSON text) and its published
/// fields, serialized.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowRow {
    pub(crate) key: String,
    pub(crate) data: Arc<str>,
}

/// Reads the rows of many windows in one read transaction, in order, one
/// list per query; given by the route, which knows the model.
pub(crate) type Loader = dyn Fn(&mut Conn, &[&WindowQuery]) -> Result<Vec<Vec<WindowRow>>, Error> + Send + Sync;

/// One window subscription.
pub(crate) struct Window {
    route: &'static str,
    /// The client's connection.
    sink: Arc<dyn Sink>,
    query: WindowQuery,
    /// The subscription behind it, once opened; closed with it.
    sub: OnceLock<Arc<Subscription>>,
    dirty: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What the client holds, in order.
    rows: Vec<WindowRow>,
    /// The last event's sequence number.
    seq: u64,
    /// The reply went out; later frames of the subscription end it.
    replied: bool,
    closed: bool,
}

impl Window {
    pub(crate) fn new(route: &'static str, sink: Arc<dyn Sink>, query: WindowQuery) -> Arc<Window> {
        Arc::new(Window {
            route,
            sink,
            query,
            sub: OnceLock::new(),
            dirty: AtomicBool::new(false),
            state: Mutex::default(),
        })
    }

    /// The subscription this window is, once `fanout.open` made it.
    pub(crate) fn attach(&self, sub: Arc<Subscription>) {
        let _ = self.sub.set(sub);
    }

    /// The rows the snapshot holds, before its reply is sent.
    pub(crate) fn set_rows(&self, rows: Vec<WindowRow>) {
        self.state.lock().rows = rows;
    }

    fn is_closed(&self) -> bool {
        self.state.lock().closed || self.sub.get().is_some_and(|s| s.is_closed())
    }

    /// Tells the client how the window went from what it holds to `rows`
    /// (read at position `pos`).
    fn refreshed(&self, pos: u64, rows: Vec<WindowRow>) {
        let sub = match self.sub.get() {
            Some(sub) if !sub.is_closed() => sub.id,
            _ => return,
        };
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        let state = &mut *state;
        for (action, index, row) in diff(&state.rows, &rows) {
            state.seq += 1;
            let frame = protocol::window_event_frame(sub, state.seq, pos, self.route, action, index, &row.data);
            if !self.sink.push(Outbound::Frame(frame)) {
                state.closed = true;
                return;
            }
        }
        state.rows = rows;
    }
}

/// The events that take a client from `old` to `new`: first `deleted` for
/// each row that left, then, in the new order, `created` for each row that
/// entered and `updated` for each row that changed or moved, each with the
/// index it takes. A client applies each by removing the row (if it holds
/// it) and inserting it at `index`; this simulates exactly that, so every
/// index is right when its event is applied, and untouched rows are not
/// mentioned.
pub(crate) fn diff<'a>(old: &'a [WindowRow], new: &'a [WindowRow]) -> Vec<(Action, Option<usize>, &'a WindowRow)> {
    let staying: HashSet<&str> = new.iter().map(|r| r.key.as_str()).collect();
    let mut events: Vec<(Action, Option<usize>, &WindowRow)> = Vec::new();
    let mut held: Vec<&WindowRow> = Vec::with_capacity(new.len());
    for row in old {
        if staying.contains(row.key.as_str()) {
            held.push(row);
        } else {
            events.push((Action::Deleted, None, row));
        }
    }
    for (i, row) in new.iter().enumerate() {
        if held.get(i).is_some_and(|h| h.key == row.key && h.data == row.data) {
            continue;
        }
        let action = match held.iter().position(|h| h.key == row.key) {
            Some(at) => {
                held.remove(at);
                Action::Updated
            }
            None => Action::Created,
        };
        events.push((action, Some(i), row));
        held.insert(i, row);
    }
    events
}

/// Where a window's subscription delivers: events only mark the window
/// dirty for its route's [`Refresher`]; the reply goes to the client, and a
/// frame after it (a `gap`) goes to the client and ends the window.
pub(crate) struct WindowSink {
    window: Arc<Window>,
    refresher: Arc<Refresher>,
}

impl WindowSink {
    pub(crate) fn new(window: Arc<Window>, refresher: Arc<Refresher>) -> Arc<WindowSink> {
        Arc::new(WindowSink { window, refresher })
    }

    /// A frame of the subscription itself: its reply, then at most an end.
    fn frame(&self) {
        let mut state = self.window.state.lock();
        state.closed |= state.replied;
        state.replied = true;
    }
}

impl Sink for WindowSink {
    fn push(&self, frame: Outbound) -> bool {
        match frame {
            // Called under the subscription's lock: must not ask it anything.
            Outbound::Event { .. } => {
                self.refresher.mark(&self.window);
                !self.window.state.lock().closed
            }
            Outbound::Frame(text) => {
                self.frame();
                self.window.sink.push(Outbound::Frame(text))
            }
        }
    }

    /// Waits for a refresh that is sending this window's events (it holds
    /// the window's lock), then stops the next: the `unsubscribe` reply
    /// that follows is the last frame of it.
    fn closed(&self) {
        self.window.state.lock().closed = true;
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        match frame {
            Outbound::Event { .. } => Box::pin(std::future::ready(self.push(frame))),
            Outbound::Frame(text) => {
                self.frame();
                self.window.sink.send(Outbound::Frame(text))
            }
        }
    }
}

/// A route's window refresher: one task that reads the dirty windows' rows
/// in one read transaction per round and tells their clients.
pub(crate) struct Refresher {
    dirty: Mutex<Vec<Arc<Window>>>,
    wake: Notify,
}

impl Refresher {
    /// Starts the route's refresher on the current runtime.
    pub(crate) fn start(db: Db, route: &'static str, loader: Arc<Loader>) -> Arc<Refresher> {
        let refresher = Arc::new(Refresher { dirty: Mutex::default(), wake: Notify::new() });
        let this = refresher.clone();
        // Lives as long as the runtime that serves the route.
        tokio::spawn(async move {
            loop {
                let batch = std::mem::take(&mut *this.dirty.lock());
                if batch.is_empty() {
                    // A mark since the take left a permit: no wake-up is lost.
                    this.wake.notified().await;
                    continue;
                }
                this.refresh(&db, route, &loader, batch).await;
            }
        });
        refresher
    }

    /// Called on the hub's thread: the window's rows may have changed.
    fn mark(&self, window: &Arc<Window>) {
        if !window.dirty.swap(true, Ordering::AcqRel) {
            self.dirty.lock().push(window.clone());
            self.wake.notify_one();
        }
    }

    async fn refresh(&self, db: &Db, route: &'static str, loader: &Arc<Loader>, batch: Vec<Arc<Window>>) {
        // Cleared before the read: a change marked from now on is either
        // in the read or triggers the next round.
        for window in &batch {
            window.dirty.store(false, Ordering::Release);
        }
        let batch: Vec<Arc<Window>> = batch.into_iter().filter(|w| !w.is_closed()).collect();
        let mut queries: Vec<WindowQuery> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let slots: Vec<usize> = batch
            .iter()
            .map(|w| {
                *by_key.entry(w.query.key()).or_insert_with(|| {
                    queries.push(w.query.clone());
                    queries.len() - 1
                })
            })
            .collect();
        if queries.is_empty() {
            return;
        }
        let loader = loader.clone();
        let read = db
            .snapshot(route, move |conn| {
                let refs: Vec<&WindowQuery> = queries.iter().collect();
                loader(conn, &refs)
            })
            .await;
        match read {
            Ok((pos, rows)) => {
                for (window, slot) in batch.iter().zip(slots) {
                    window.refreshed(pos, rows[slot].clone());
                }
            }
            Err(error) => {
                // Tried again on the next round (a database that is away
                // comes back); nothing is lost while the windows stay dirty.
                tracing::warn!(route, %error, "window refresh failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                for window in &batch {
                    self.mark(window);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &[(&str, &str)]) -> Vec<WindowRow> {
        spec.iter().map(|(k, d)| WindowRow { key: (*k).into(), data: Arc::from(*d) }).collect()
    }

    /// Applies events as a client does: remove the row if held, insert at index.
    fn apply(held: &[WindowRow], events: &[(Action, Option<usize>, &WindowRow)]) -> Vec<WindowRow> {
        let mut held = held.to_vec();
        for (action, index, row) in events {
            held.retain(|h| h.key != row.key);
            match (action, index) {
                (Action::Deleted, None) => {}
                (Action::Created | Action::Updated, Some(i)) => held.insert(*i, (*row).clone()),
                other => panic!("malformed event {other:?}"),
            }
        }
        held
    }

    #[test]
    fn diff_takes_the_client_to_the_new_window_saying_only_what_changed() {
        let cases = [
            (vec![], vec![("1", "a"), ("2", "b")]),
            (vec![("1", "a"), ("2", "b")], vec![]),
            (vec![("1", "a"), ("2", "b"), ("3", "c")], vec![("0", "z"), ("1", "a"), ("2", "b")]),
            (vec![("1", "a"), ("2", "b"), ("3", "c")], vec![("2", "b"), ("3", "c"), ("4", "d")]),
            (vec![("1", "a"), ("2", "b"), ("3", "c")], vec![("3", "c2"), ("1", "a"), ("2", "b")]),
            (vec![("1", "a"), ("2", "b"), ("3", "c")], vec![("2", "b"), ("3", "c"), ("1", "a2")]),
            (
                vec![("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")],
                vec![("4", "d"), ("3", "c"), ("2", "b"), ("1", "a")],
            ),
            (vec![("1", "a"), ("2", "b")], vec![("1", "a"), ("2", "b2")]),
        ];
        for (old, new) in cases {
            let (old, new) = (rows(&old), rows(&new));
            let events = diff(&old, &new);
            assert_eq!(apply(&old, &events), new, "{old:?} -> {new:?}: {events:?}");
        }
        let old = rows(&[("1", "a"), ("2", "b"), ("3", "c")]);
        let new = rows(&[("0", "z"), ("1", "a"), ("2", "b")]);
        let events: Vec<_> = diff(&old, &new).into_iter().map(|(a, i, r)| (a, i, r.key.clone())).collect();
        assert_eq!(
            events,
            vec![(Action::Deleted, None, "3".into()), (Action::Created, Some(0), "0".into())],
            "a row sorting first pushes the last out; the rest are not mentioned"
        );
        assert!(diff(&old, &old).is_empty());
    }
}
