//! The bounded queue in front of one socket: the [`Sink`] the fan-out and
//! the request handlers deliver to.
//!
//! The live fan-out never waits on it: when it is full the connection is
//! closed as a slow consumer (close code 4008), so one slow client cannot
//! hold up anyone else. A subscription catching up from history waits for
//! room instead, so a large replay is streamed at the client's pace.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::fanout::sink::{Outbound, Sink};
use crate::protocol::CloseReason;

/// The bounded queue in front of one socket.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Outbound>,
    capacity: usize,
    close: watch::Sender<Option<CloseReason>>,
}

impl Outbox {
    /// A queue of `capacity` frames, and its receiving end.
    pub(crate) fn new(capacity: usize) -> (Arc<Outbox>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close, _) = watch::channel(None);
        (Arc::new(Outbox { tx, capacity, close }), rx)
    }

    /// Asks the connection to close with `reason`. The first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
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
        self.close.borrow().is_some()
    }

    /// Turns `Some` when a close is asked for.
    pub(crate) fn closing(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }
}

impl Sink for Outbox {
    fn push(&self, frame: Outbound) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::slow_consumer(self.capacity));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut closing = self.closing();
            if closing.borrow().is_some() {
                return false;
            }
            tokio::select! {
                sent = self.tx.send(frame) => sent.is_ok(),
                _ = closing.wait_for(Option::is_some) => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Outbound {
        Outbound::Frame(n.to_string())
    }

    #[tokio::test]
    async fn pushing_into_a_full_queue_closes_it_as_a_slow_consumer() {
        let (outbox, mut rx) = Outbox::new(2);
        assert!(outbox.push(frame(1)) && outbox.push(frame(2)));
        assert!(!outbox.push(frame(3)));
        assert_eq!(outbox.closing().borrow().as_ref().map(|r| r.code), Some(CloseReason::SLOW_CONSUMER));
        assert_eq!(rx.recv().await.unwrap().into_text(), "1");
    }

    #[tokio::test]
    async fn sending_waits_for_room_instead() {
        let (outbox, mut rx) = Outbox::new(2);
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
        let (outbox, _rx) = Outbox::new(1);
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
