//! One route's stream of committed changes, put in position order.
//!
//! Positions are dense per route (1, 2, 3, ...), taken in the writing
//! transaction, so a hole is a change that has not arrived yet: from a
//! concurrent writer whose hand-off is a moment late, or from another
//! process whose message the broker lost. The stream holds later changes
//! back until the hole fills; the hub asks history to fill holes that stay
//! open too long.
//!
//! A stream exists while the route has subscriptions here. It has no start
//! until a starting subscription asks for one (see
//! [`super::subscription`]): before that, changes wait, at most
//! [`MAX_PENDING`] of them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::change::Change;

/// The most changes one route holds back (waiting for a hole to fill, or
/// for a start). Past it a started stream asks history at once instead of
/// waiting out the timeout; an unstarted one forgets its oldest.
pub(crate) const MAX_PENDING: usize = 10_000;

#[derive(Default)]
pub(crate) struct Stream {
    /// The next position to deliver; `None` until started.
    next: Option<u64>,
    /// Changes that arrived early, by position.
    pending: BTreeMap<u64, Change>,
    /// Since when the stream has been waiting for a hole to fill.
    waiting_since: Option<Instant>,
}

impl Stream {
    /// The last position delivered, once started.
    pub(crate) fn delivered(&self) -> Option<u64> {
        self.next.map(|next| next - 1)
    }

    /// Starts the stream after position `after` unless it has started
    /// already; returns whether it started now.
    pub(crate) fn start(&mut self, after: u64) -> bool {
        if self.next.is_some() {
            return false;
        }
        self.next = Some(after + 1);
        self.pending = self.pending.split_off(&(after + 1));
        true
    }

    /// Goes on after `through`: positions up to it are lost (history no
    /// longer has them), so the stream stops waiting for them.
    pub(crate) fn skip_to(&mut self, through: u64) {
        if self.next.is_some_and(|next| next > through) {
            return;
        }
        self.next = Some(through + 1);
        self.pending = self.pending.split_off(&(through + 1));
        self.waiting_since = None;
    }

    /// A committed change, in any order. Returns false if it was dropped as
    /// already delivered.
    pub(crate) fn offer(&mut self, change: Change) -> bool {
        if self.next.is_some_and(|next| change.pos < next) {
            return false;
        }
        self.pending.insert(change.pos, change);
        if self.next.is_none() && self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        true
    }

    /// The next change in order, if it has arrived.
    pub(crate) fn pop_ready(&mut self) -> Option<Change> {
        let next = self.next?;
        let entry = self.pending.first_entry().filter(|e| *e.key() == next)?;
        self.next = Some(next + 1);
        Some(entry.remove())
    }

    /// After draining: notes since when a hole has been open, at `now`.
    pub(crate) fn settle(&mut self, now: Instant) {
        self.waiting_since = match (self.next.is_some() && !self.pending.is_empty(), self.waiting_since) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
        };
    }

    /// The first hole, `from..=to`, when the stream is waiting for one.
    pub(crate) fn hole(&self) -> Option<(u64, u64)> {
        let next = self.next?;
        let (&first, _) = self.pending.first_key_value()?;
        (first > next).then(|| (next, first - 1))
    }

    /// Whether a hole has stayed open `timeout` long by `now`, or so many
    /// changes wait behind it that history should be asked at once.
    pub(crate) fn needs_repair(&self, now: Instant, timeout: Duration) -> bool {
        self.waiting_since.is_some_and(|since| now.duration_since(since) >= timeout)
            || (self.next.is_some() && self.pending.len() > MAX_PENDING)
    }

    /// Restarts the wait for the hole (after a failed history read), so the
    /// next attempt comes a timeout later.
    pub(crate) fn retry_later(&mut self, now: Instant) {
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
    }

    /// How many changes wait.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    fn change(pos: u64) -> Change {
        let mut c = Change::new("item", &[], 0, None, Some(vec![Value::Int(pos as i64)].into()));
        c.pos = pos;
        c
    }

    fn drain(stream: &mut Stream) -> Vec<u64> {
        std::iter::from_fn(|| stream.pop_ready()).map(|c| c.pos).collect()
    }

    #[test]
    fn delivers_in_order_from_its_start() {
        let mut s = Stream::default();
        for pos in [12, 9, 11] {
            s.offer(change(pos));
        }
        assert!(drain(&mut s).is_empty(), "nothing before a start");
        assert!(s.start(10));
        assert!(!s.start(5), "the first start wins");
        assert_eq!(drain(&mut s), [11, 12]);
        assert!(!s.offer(change(12)), "already delivered");
        s.offer(change(14));
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.hole(), Some((13, 13)));
        s.offer(change(13));
        assert_eq!(drain(&mut s), [13, 14]);
        assert_eq!(s.delivered(), Some(14));
    }

    #[test]
    fn a_hole_is_repaired_after_the_timeout_or_at_once_when_too_much_waits() {
        let mut s = Stream::default();
        s.start(0);
        s.offer(change(2));
        let t0 = Instant::now();
        s.settle(t0);
        let timeout = Duration::from_millis(500);
        assert!(!s.needs_repair(t0, timeout));
        assert!(s.needs_repair(t0 + timeout, timeout));
        s.retry_later(t0 + timeout);
        assert!(!s.needs_repair(t0 + timeout, timeout));
        for pos in 3..=MAX_PENDING as u64 + 2 {
            s.offer(change(pos));
        }
        assert!(s.needs_repair(t0 + timeout, timeout), "over the bound: repair now");
    }

    #[test]
    fn an_unstarted_stream_keeps_only_the_newest() {
        let mut s = Stream::default();
        for pos in 1..=MAX_PENDING as u64 + 5 {
            s.offer(change(pos));
        }
        assert_eq!(s.pending(), MAX_PENDING);
        s.start(5);
        assert_eq!(drain(&mut s).first(), Some(&6));
    }
}
