//! Ordered writes per connection: a connection's writes apply in the order
//! the client sent them, while its reads still run side by side.
//!
//! Each request runs as a task of its own, and tasks run in whatever order
//! the scheduler picks, so the order is fixed before any of them runs: the
//! connection's loop takes a [`Ticket`] for every request as it reads it
//! (one loop, in arrival order), and a write's ticket waits for the write
//! before it to finish (its reply queued) before it starts. A chain of
//! one-shot channels: each write holds the receiver of the one before and
//! the sender the next one waits on, which it drops when done (finished,
//! failed, panicked or aborted alike).

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The end of a connection's chain of writes.
#[derive(Debug, Default)]
pub(crate) struct WriteOrder {
    last: Mutex<Option<oneshot::Receiver<()>>>,
}

impl WriteOrder {
    /// The ticket of the next request read: a write goes after every write
    /// read before it; a read (`write == false`) waits for nothing.
    pub(crate) fn ticket(&self, write: bool) -> Ticket {
        if !write {
            return Ticket { after: None, done: None };
        }
        let (done, next) = oneshot::channel();
        let after = self.last.lock().replace(next);
        Ticket { after, done: Some(done) }
    }
}

/// A request's place in its connection's order of writes.
#[derive(Debug)]
pub(crate) struct Ticket {
    after: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Ticket {
    /// Waits until the writes before this one are done; hold the turn
    /// while the request runs and its reply is queued.
    pub(crate) async fn turn(self) -> Turn {
        if let Some(after) = self.after {
            // An error means the one before is done (its sender dropped).
            let _ = after.await;
        }
        Turn { _done: self.done }
    }
}

/// Held while a write runs; dropping it lets the next write start.
#[derive(Debug)]
pub(crate) struct Turn {
    _done: Option<oneshot::Sender<()>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn writes_wait_for_the_ones_before_and_reads_for_nothing() {
        let order = WriteOrder::default();
        let first = order.ticket(true);
        let read = order.ticket(false);
        let second = order.ticket(true);
        let mut second = Box::pin(second.turn());
        assert!(second.as_mut().now_or_never().is_none(), "the second write waits for the first");
        let _read = read.turn().await;
        let first = first.turn().await;
        assert!(second.as_mut().now_or_never().is_none());
        drop(first);
        second.await;
    }
}
