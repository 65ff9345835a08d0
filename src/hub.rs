//! The hub puts each route's committed changes in position order before they
//! reach the registry, and notices when one is missing.
//!
//! Positions are dense per route (1, 2, 3, ...), taken in the writing
//! transaction, so any gap is a change that has not arrived yet: from a
//! concurrent writer whose publish is a moment late, or from another process
//! whose message the broker lost. The hub holds later changes back until the
//! gap fills; if it stays open past a timeout it asks the history for the
//! missing positions, and when history no longer has them it tells every
//! subscription of the route that its stream has a hole (a `gap` frame),
//! so clients take a fresh snapshot instead of silently missing a change.
//!
//! A route's ordering starts at the first subscription's snapshot position
//! (its *baseline*) and is dropped when the route has no subscriptions, so a
//! process tracks only the routes its own clients watch.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::change::Change;
use crate::error::Error;
use crate::registry::Registry;

/// Where missing changes can be read back from (the store's change history).
pub trait History: Send + Sync + 'static {
    /// The changes of `route` at positions `from..=to` (as many as exist
    /// when `to` is `u64::MAX`), in order, or `None` if history no longer
    /// reaches back to `from`.
    fn range(&self, route: &'static str, from: u64, to: u64) -> Result<Option<Vec<Change>>, Error>;
}

enum Command {
    Changes(Vec<Change>),
    Baseline(&'static str, u64),
    CatchUp(&'static str),
    CatchUpEvery(Duration),
}

/// Orders changes and hands them to the registry, on a thread of its own.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
}

impl Hub {
    /// How long a gap may stay open before history is asked.
    pub const GAP_TIMEOUT: Duration = Duration::from_millis(500);

    /// Starts the hub thread for `registry`. It ends when every handle is dropped.
    pub fn new(registry: Arc<Registry>, history: Option<Arc<dyn History>>) -> Hub {
        let (tx, rx) = mpsc::channel();
        let mut state = State { registry, history, routes: HashMap::new(), sweep: None };
        std::thread::Builder::new()
            .name("wyrm-hub".into())
            .spawn(move || loop {
                match rx.recv_timeout(Self::GAP_TIMEOUT / 4) {
                    Ok(Command::Changes(changes)) => changes.into_iter().for_each(|c| state.push(c)),
                    Ok(Command::Baseline(route, pos)) => state.baseline(route, pos),
                    Ok(Command::CatchUp(route)) => state.catch_up(route),
                    Ok(Command::CatchUpEvery(every)) => state.sweep = Some((every, Instant::now())),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                state.repair_stale_gaps();
                state.sweep_if_due();
            })
            .expect("spawn the hub thread");
        Hub { tx }
    }

    /// Committed changes, from this process or another, in any order.
    pub fn push(&self, changes: Vec<Change>) {
        if self.tx.send(Command::Changes(changes)).is_err() {
            tracing::error!("hub thread is gone; changes not delivered");
        }
    }

    /// A subscription of `route` read its snapshot at `pos`: changes up to
    /// `pos` are in it, so the route's stream continues at `pos + 1` if it
    /// was not already being followed.
    pub fn baseline(&self, route: &'static str, pos: u64) {
        let _ = self.tx.send(Command::Baseline(route, pos));
    }

    /// Reads whatever `route` committed that this process has not seen from
    /// history (after a broker outage, when nothing else would reveal a gap).
    pub fn catch_up(&self, route: &'static str) {
        let _ = self.tx.send(Command::CatchUp(route));
    }

    /// Catches every followed route up from history this often. With other
    /// processes writing, a lost message is otherwise noticed only when a
    /// later change of its route arrives; this bounds how long that takes.
    pub fn catch_up_every(&self, every: Duration) {
        let _ = self.tx.send(Command::CatchUpEvery(every));
    }
}

struct State {
    registry: Arc<Registry>,
    history: Option<Arc<dyn History>>,
    routes: HashMap<&'static str, Stream>,
    /// How often to catch every followed route up, and when it last was.
    sweep: Option<(Duration, Instant)>,
}

/// The ordering state of one route.
#[derive(Default)]
struct Stream {
    /// The next position to deliver; `None` until a baseline is known.
    next: Option<u64>,
    /// Changes that arrived early, by position.
    pending: BTreeMap<u64, Change>,
    /// Since when the oldest pending change has been waiting for a gap.
    waiting_since: Option<Instant>,
}

impl State {
    fn push(&mut self, change: Change) {
        let route = change.route;
        if !self.registry.has_subscriptions(route) {
            // Nobody here watches the route: forget it, so a later first
            // subscription starts from its own snapshot.
            self.routes.remove(route);
            return;
        }
        let stream = self.routes.entry(route).or_default();
        if stream.next.is_some_and(|next| change.pos < next) {
            return; // already delivered (a local change echoed back, say)
        }
        stream.pending.insert(change.pos, change);
        self.drain(route);
    }

    fn baseline(&mut self, route: &'static str, pos: u64) {
        let stream = self.routes.entry(route).or_default();
        if stream.next.is_none() {
            stream.next = Some(pos + 1);
            stream.pending = stream.pending.split_off(&(pos + 1));
        }
        self.drain(route);
    }

    /// Delivers the pending changes that continue the stream without a gap.
    fn drain(&mut self, route: &'static str) {
        let Some(stream) = self.routes.get_mut(route) else { return };
        let Some(mut next) = stream.next else { return };
        while let Some(entry) = stream.pending.first_entry() {
            if *entry.key() != next {
                break;
            }
            let change = entry.remove();
            self.registry.fan_out(&change);
            next += 1;
        }
        stream.next = Some(next);
        stream.waiting_since = match (stream.pending.is_empty(), stream.waiting_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
    }

    fn repair_stale_gaps(&mut self) {
        let stale: Vec<&'static str> = self
            .routes
            .iter()
            .filter(|(_, s)| s.waiting_since.is_some_and(|t| t.elapsed() >= Hub::GAP_TIMEOUT))
            .map(|(route, _)| *route)
            .collect();
        for route in stale {
            self.repair(route);
        }
    }

    fn sweep_if_due(&mut self) {
        let Some((every, last)) = self.sweep else { return };
        if last.elapsed() < every {
            return;
        }
        self.sweep = Some((every, Instant::now()));
        let followed: Vec<&'static str> =
            self.routes.iter().filter(|(_, s)| s.next.is_some()).map(|(route, _)| *route).collect();
        for route in followed {
            self.catch_up(route);
        }
    }

    fn catch_up(&mut self, route: &'static str) {
        let (Some(history), Some(next)) = (&self.history, self.routes.get(route).and_then(|s| s.next)) else { return };
        match history.range(route, next, u64::MAX) {
            Ok(Some(changes)) => changes.into_iter().for_each(|c| self.push(c)),
            Ok(None) => {
                self.routes.remove(route);
                self.registry.gap(route, &format!("changes of {route} after {} are no longer kept", next - 1));
            }
            Err(e) => tracing::warn!(route, error = %e, "catching up from history failed"),
        }
    }

    /// Fills a gap from history, or, failing that, tells the route's
    /// subscriptions their stream has a hole and starts over.
    fn repair(&mut self, route: &'static str) {
        let Some(stream) = self.routes.get_mut(route) else { return };
        let (Some(next), Some((&first, _))) = (stream.next, stream.pending.first_key_value()) else { return };
        let found = match &self.history {
            Some(history) => history.range(route, next, first - 1).unwrap_or_else(|e| {
                tracing::warn!(route, error = %e, "reading change history failed");
                None
            }),
            None => None,
        };
        match found {
            Some(missing) if missing.len() as u64 == first - next => {
                for change in missing {
                    stream.pending.insert(change.pos, change);
                }
                self.drain(route);
            }
            _ => {
                tracing::warn!(route, from = next, to = first - 1, "changes lost; subscribers must resync");
                self.routes.remove(route);
                self.registry.gap(route, &format!("changes {next} to {} of {route} were lost", first - 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Outbound, Outbox};
    use crate::filter::Filter;
    use crate::model::{Model, Value};
    use parking_lot::Mutex;

    #[allow(dead_code)]
    #[derive(crate::Model)]
    #[wyrm(route = "item")]
    struct Item {
        id: i32,
        n: i32,
    }

    fn change(pos: u64) -> Change {
        let row: crate::model::Row = vec![Value::Int(pos as i64), Value::Int(0)].into();
        let mut c = Change::new(Item::ROUTE, Item::FIELDS, Item::PRIMARY_KEY, None, Some(row));
        c.pos = pos;
        c
    }

    /// Keeps some positions, as a history with a horizon would.
    struct Kept(Mutex<Vec<u64>>);

    impl History for Kept {
        fn range(&self, _: &'static str, from: u64, to: u64) -> Result<Option<Vec<Change>>, Error> {
            let kept = self.0.lock();
            // `to` may be u64::MAX: "everything there is".
            let to = to.min(kept.iter().copied().max().unwrap_or(0));
            Ok((from..=to).map(|p| kept.contains(&p).then(|| change(p))).collect())
        }
    }

    /// The positions (or a gap) the subscription receives, waiting up to `wait` for `n` frames.
    fn received_within(rx: &mut tokio::sync::mpsc::Receiver<Outbound>, n: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            match rx.try_recv() {
                Ok(Outbound::Event { pos, seq, .. }) => got.push(format!("pos {pos} seq {seq}")),
                Ok(Outbound::Frame(text)) if text.contains("\"gap\"") => got.push("gap".into()),
                Ok(Outbound::Frame(text)) => got.push(text),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        got
    }

    fn received(rx: &mut tokio::sync::mpsc::Receiver<Outbound>, n: usize) -> Vec<String> {
        received_within(rx, n, Duration::from_secs(5))
    }

    type Setup = (Hub, tokio::sync::mpsc::Receiver<Outbound>, Arc<crate::registry::Subscription>);

    fn setup(history: Option<Arc<dyn History>>) -> Setup {
        let registry = Arc::new(Registry::new());
        let (outbox, rx) = Outbox::new(64);
        let sub = registry.subscribe(Item::ROUTE, Filter::all(), outbox);
        assert!(sub.start(10, "reply".into()));
        (Hub::new(registry, history), rx, sub)
    }

    #[test]
    fn out_of_order_changes_are_delivered_in_position_order() {
        let (hub, mut rx, _sub) = setup(None);
        assert_eq!(received(&mut rx, 1), ["reply"]);
        hub.push(vec![change(9), change(12)]);
        hub.baseline(Item::ROUTE, 10);
        hub.push(vec![change(13), change(11), change(12)]);
        assert_eq!(received(&mut rx, 3), ["pos 11 seq 1", "pos 12 seq 2", "pos 13 seq 3"]);
    }

    #[test]
    fn a_gap_is_filled_from_history() {
        let (hub, mut rx, _sub) = setup(Some(Arc::new(Kept(Mutex::new(vec![11, 12])))));
        received(&mut rx, 1);
        hub.baseline(Item::ROUTE, 10);
        hub.push(vec![change(13)]);
        assert_eq!(received(&mut rx, 3), ["pos 11 seq 1", "pos 12 seq 2", "pos 13 seq 3"]);
    }

    #[test]
    fn a_periodic_catch_up_finds_changes_no_message_announced() {
        let (hub, mut rx, _sub) = setup(Some(Arc::new(Kept(Mutex::new(vec![11, 12])))));
        received(&mut rx, 1);
        hub.baseline(Item::ROUTE, 10);
        // Nothing is pushed: 11 and 12 exist only in history.
        assert!(received_within(&mut rx, 1, Duration::from_millis(300)).is_empty());
        hub.catch_up_every(Duration::from_millis(100));
        assert_eq!(received(&mut rx, 2), ["pos 11 seq 1", "pos 12 seq 2"]);
    }

    #[test]
    fn a_gap_history_cannot_fill_ends_the_subscriptions_with_a_gap_frame() {
        let (hub, mut rx, _sub) = setup(Some(Arc::new(Kept(Mutex::new(vec![12])))));
        received(&mut rx, 1);
        hub.baseline(Item::ROUTE, 10);
        hub.push(vec![change(13)]);
        assert_eq!(received(&mut rx, 1), ["gap"]);
        hub.push(vec![change(14)]);
        // Past the gap timeout twice over: nothing arrives for a closed subscription.
        assert!(received_within(&mut rx, 1, Hub::GAP_TIMEOUT * 2).is_empty(), "nothing after the gap");
    }
}
