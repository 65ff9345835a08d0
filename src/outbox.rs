//! The bounded queue in front of one socket: the [`Sink`] the fan-out and
//! the request handlers deliver to.
//!
//! It is bounded twice: in frames, and in bytes (what the client has yet to
//! receive), since a frame count alone lets a client that does not read
//! hold a thousand large replies in server memory. Bytes are counted when a
//! frame is queued and released when the writer hands it to the socket.
//!
//! The live fan-out never waits on it: when it is full the connection is
//! closed as a slow consumer (close code 4008), so one slow client cannot
//! hold up anyone else. A subscription catching up from history waits for
//! room instead, so a large replay is streamed at the client's pace.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch, Notify};

use crate::fanout::sink::{Outbound, Sink};
use crate::protocol::CloseReason;

/// The bounded queue in front of one socket.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Outbound>,
    capacity: usize,
    budget: usize,
    /// Bytes queued and not yet handed to the socket.
    queued: AtomicUsize,
    /// Woken when bytes are released, for senders waiting for room.
    room: Notify,
    /// The most bytes this outbox ever held, folded into `peak` too.
    peak: Arc<AtomicUsize>,
    closed: AtomicBool,
    close: watch::Sender<Option<CloseReason>>,
}

/// The bytes a frame will take on the wire (an event's header is written
/// around its shared data only when it is sent).
pub(crate) fn wire_size(frame: &Outbound) -> usize {
    match frame {
        Outbound::Frame(text) => text.len(),
        Outbound::Event { route, data, .. } => 128 + route.len() + data.len(),
    }
}

impl Outbox {
    /// A queue of `capacity` frames and `budget` bytes, and its receiving
    /// end. `peak` records the most bytes it held (shared by an app's
    /// outboxes, for tests and stats).
    pub(crate) fn new(
        capacity: usize,
        budget: usize,
        peak: Arc<AtomicUsize>,
    ) -> (Arc<Outbox>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close, _) = watch::channel(None);
        let outbox = Outbox {
            tx,
            capacity,
            budget,
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            peak,
            closed: AtomicBool::new(false),
            close,
        };
        (Arc::new(outbox), rx)
    }

    /// Asks the connection to close with `reason`. The first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
        // Set before anyone is woken: a woken reader asks `is_closing`.
        self.closed.store(true, Ordering::Release);
        self.close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            tracing::debug!(code = reason.code, reason = %reason.reason, "closing connection");
            *current = Some(reason);
            true
        });
    }

    /// Whether a close was asked for.
    pub(crate) fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Turns `Some` when a close is asked for.
    pub(crate) fn closing(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }

    /// Bytes queued and not yet handed to the socket.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Counts `size` more bytes if they fit the budget. A frame larger than
    /// the whole budget is let into an empty queue, so it is not refused
    /// forever (replies are bounded below the budget; a huge event is not).
    fn reserve(&self, size: usize) -> bool {
        let reserved = self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
            (queued == 0 || queued + size <= self.budget).then_some(queued + size)
        });
        match reserved {
            Ok(before) => {
                self.peak.fetch_max(before + size, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// The writer handed `size` bytes to the socket.
    pub(crate) fn release(&self, size: usize) {
        self.queued.fetch_sub(size, Ordering::AcqRel);
        self.room.notify_waiters();
    }
}

impl Sink for Outbox {
    fn push(&self, frame: Outbound) -> bool {
        if self.is_closing() {
            return false;
        }
        let size = wire_size(&frame);
        if !self.reserve(size) {
            self.close(CloseReason::slow_consumer_bytes(self.budget));
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.release(size);
                self.close(CloseReason::slow_consumer(self.capacity));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.release(size);
                false
            }
        }
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut closing = self.closing();
            let size = wire_size(&frame);
            loop {
                if closing.borrow().is_some() {
                    return false;
                }
                // Registered before trying, so a release in between is not missed.
                let room = self.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if self.reserve(size) {
                    break;
                }
                tokio::select! {
                    _ = room => {}
                    _ = closing.wait_for(Option::is_some) => return false,
                }
            }
            let sent = tokio::select! {
                sent = self.tx.send(frame) => sent.is_ok(),
                _ = closing.wait_for(Option::is_some) => false,
            };
            if !sent {
                self.release(size);
            }
            sent
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Outbound {
        Outbound::Frame(n.to_string())
    }

    fn outbox(capacity: usize, budget: usize) -> (Arc<Outbox>, mpsc::Receiver<Outbound>) {
        Outbox::new(capacity, budget, Arc::default())
    }

    /// What the writer does with a frame.
    async fn write(outbox: &Outbox, rx: &mut mpsc::Receiver<Outbound>) -> String {
        let frame = rx.recv().await.unwrap();
        outbox.release(wire_size(&frame));
        frame.into_text()
    }

    #[tokio::test]
    async fn pushing_into_a_full_queue_closes_it_as_a_slow_consumer() {
        let (outbox, mut rx) = outbox(2, 1 << 20);
        assert!(outbox.push(frame(1)) && outbox.push(frame(2)));
        assert!(!outbox.push(frame(3)));
        assert_eq!(outbox.closing().borrow().as_ref().map(|r| r.code), Some(CloseReason::SLOW_CONSUMER));
        assert_eq!(rx.recv().await.unwrap().into_text(), "1");
    }

    #[tokio::test]
    async fn pushing_past_the_byte_budget_closes_it_and_queues_nothing_more() {
        let (outbox, mut rx) = outbox(100, 10);
        assert!(outbox.push(Outbound::Frame("12345".into())) && outbox.push(Outbound::Frame("6789".into())));
        assert!(!outbox.push(Outbound::Frame("ab".into())), "11 bytes do not fit 10");
        assert_eq!(outbox.queued_bytes(), 9);
        let reason = outbox.closing().borrow().clone().unwrap();
        assert_eq!(reason.code, CloseReason::SLOW_CONSUMER);
        assert!(reason.reason.contains("10 bytes"), "{}", reason.reason);
        assert!(!outbox.push(Outbound::Frame("x".into())), "closing: nothing more is queued");
        assert_eq!(write(&outbox, &mut rx).await, "12345");
        assert_eq!(outbox.queued_bytes(), 4);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_gets_into_an_empty_queue_only() {
        let (outbox, mut rx) = outbox(100, 4);
        assert!(outbox.push(Outbound::Frame("123456".into())));
        write(&outbox, &mut rx).await;
        assert!(outbox.push(Outbound::Frame("1".into())));
        assert!(!outbox.push(Outbound::Frame("123456".into())));
    }

    #[tokio::test]
    async fn sending_waits_for_byte_room_and_the_peak_stays_within_the_budget() {
        let peak = Arc::new(AtomicUsize::new(0));
        let (outbox, mut rx) = Outbox::new(100, 25, peak.clone());
        let sender = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    assert!(outbox.send(Outbound::Frame(format!("{n:010}"))).await);
                }
            })
        };
        for n in 0..50 {
            assert_eq!(write(&outbox, &mut rx).await, format!("{n:010}"));
        }
        sender.await.unwrap();
        assert!(!outbox.is_closing(), "waiting is not overflowing");
        assert_eq!(peak.load(Ordering::Relaxed), 20, "two 10-byte frames fit 25 bytes, three do not");
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn sending_waits_for_room_instead() {
        let (outbox, mut rx) = outbox(2, 1 << 20);
        let sender = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    assert!(outbox.send(frame(n)).await);
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(rx.recv().await.unwrap().into_text());
        }
        sender.await.unwrap();
        assert_eq!(got, (0..10).map(|n| n.to_string()).collect::<Vec<_>>());
        assert!(!outbox.is_closing(), "waiting is not overflowing");
    }

    #[tokio::test]
    async fn a_waiting_send_gives_up_when_the_connection_closes() {
        let (outbox, _rx) = outbox(1, 1 << 20);
        assert!(outbox.send(frame(0)).await);
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.send(frame(1)).await })
        };
        tokio::task::yield_now().await;
        outbox.close(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
        assert!(!waiting.await.unwrap());
    }
}
