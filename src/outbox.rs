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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::fanout::sink::{Outbound, Sink};
use crate::protocol::CloseReason;

/// The bounded queue in front of one socket.
///
/// A plain locked deque rather than a channel: the fan-out pushes into a
/// thousand of them per change, and the connection's task takes everything
/// queued at once, so a push is a short uncontended lock and the task is
/// woken only when its queue goes from empty to not (issue 14 measured a
/// channel's push, permits and wakes at 15% of the fan-out).
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// The connection's task, woken when frames arrive or a close is asked.
    task: AtomicWaker,
    capacity: usize,
    budget: usize,
    /// Woken when bytes are released or the outbox closes, for senders
    /// waiting for room.
    room: Notify,
    /// Senders waiting for room: releases skip `room` when there are none.
    waiting: AtomicUsize,
    /// The most bytes any outbox of the app held (shared).
    peak: Arc<AtomicUsize>,
    closed: AtomicBool,
    reason: Mutex<Option<CloseReason>>,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Outbound>,
    /// Of `frames`, those that are not events (replies, gaps, presence,
    /// channel messages): a connection never holds its write back for them.
    urgent: usize,
    /// Bytes queued or taken by the writer and not yet on the socket.
    bytes: usize,
    /// The most bytes this outbox held, folded into the shared peak when it grows.
    peak: usize,
}

/// The bytes a frame will take on the wire (an event's head is written
/// around its shared data only when it is sent).
pub(crate) fn wire_size(frame: &Outbound) -> usize {
    match frame {
        Outbound::Frame(text) => text.len(),
        Outbound::Event { event, .. } => crate::protocol::EVENT_HEAD_BYTES + event.route.len() + event.data.len(),
    }
}

impl Outbox {
    /// A queue of `capacity` frames and `budget` bytes. `peak` records the
    /// most bytes it held (shared by an app's outboxes, for tests and stats).
    pub(crate) fn new(capacity: usize, budget: usize, peak: Arc<AtomicUsize>) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::default(),
            task: AtomicWaker::new(),
            capacity: capacity.max(1),
            budget,
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            peak,
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
        })
    }

    /// Asks the connection to close with `reason`. The first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
        {
            let mut current = self.reason.lock();
            if current.is_some() {
                return;
            }
            tracing::debug!(code = reason.code, reason = %reason.reason, "closing connection");
            *current = Some(reason);
        }
        // Set before anyone is woken: a woken task asks `is_closing`.
        self.closed.store(true, Ordering::Release);
        self.task.wake();
        self.room.notify_waiters();
    }

    /// Whether a close was asked for.
    pub(crate) fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Why the connection is closing, once a close was asked for.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.reason.lock().clone()
    }

    /// Wakes the connection's task (`waker`) when frames arrive or a close
    /// is asked for. Register before [`Outbox::take`], so nothing pushed in
    /// between goes unnoticed.
    pub(crate) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Moves every queued frame to `into` (which should be empty). Their
    /// bytes stay counted until [`Outbox::release`].
    ///
    /// The two deques trade places, so a busy connection reuses both
    /// buffers instead of growing a new one per batch (freeing them whenever
    /// the queue ran dry cost a busy socket 5% of the server's time in
    /// regrowing them: issue 14's profile). [`Outbox::shrink_idle`] frees
    /// them once the connection is quiet.
    pub(crate) fn take(&self, into: &mut VecDeque<Outbound>) {
        let mut queue = self.queue.lock();
        if !queue.frames.is_empty() {
            std::mem::swap(&mut queue.frames, into);
            queue.urgent = 0;
        }
    }

    /// Whether the connection may hold back its next write to gather more
    /// events (see `ConnectionConfig::write_coalesce`): only events are
    /// queued, and less than a quarter of the queue's frames and bytes, so
    /// holding never brings it near a slow-consumer close.
    pub(crate) fn may_hold(&self) -> bool {
        let queue = self.queue.lock();
        !queue.frames.is_empty()
            && queue.urgent == 0
            && queue.frames.len() < self.capacity / 4
            && queue.bytes < self.budget / 4
    }

    /// Frees the queue's buffer and `batch` (the connection's, empty) if
    /// they grew beyond a few frames and nothing is queued: what the
    /// connection calls at each ping, so a burst's buffers do not stay with
    /// an idle connection for longer than a ping interval.
    pub(crate) fn shrink_idle(&self, batch: &mut VecDeque<Outbound>) {
        const IDLE_CAPACITY: usize = 16;
        let mut queue = self.queue.lock();
        if queue.frames.is_empty() && queue.frames.capacity() > IDLE_CAPACITY {
            queue.frames = VecDeque::new();
        }
        drop(queue);
        if batch.is_empty() && batch.capacity() > IDLE_CAPACITY {
            *batch = VecDeque::new();
        }
    }

    /// Drops every queued frame (a closing connection sends none of them).
    pub(crate) fn discard(&self) {
        let mut queue = self.queue.lock();
        let dropped: usize = queue.frames.iter().map(wire_size).sum();
        queue.frames = VecDeque::new();
        queue.urgent = 0;
        queue.bytes -= dropped;
    }

    /// Bytes queued and not yet handed to the socket.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// The writer handed `size` bytes to the socket.
    pub(crate) fn release(&self, size: usize) {
        self.queue.lock().bytes -= size;
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Queues `frame` if it fits: `Err(true)` when it does not fit the
    /// budget, `Err(false)` when the frame count is at capacity. A frame
    /// larger than the whole budget is let into an empty queue, so it is not
    /// refused forever (replies are bounded below the budget; a huge event
    /// is not).
    fn try_queue(&self, frame: Outbound, size: usize) -> Result<(), (Outbound, bool)> {
        let mut queue = self.queue.lock();
        if queue.bytes != 0 && queue.bytes + size > self.budget {
            return Err((frame, true));
        }
        if queue.frames.len() >= self.capacity {
            return Err((frame, false));
        }
        let urgent = !matches!(frame, Outbound::Event { .. });
        queue.urgent += usize::from(urgent);
        queue.frames.push_back(frame);
        queue.bytes += size;
        // A task holding its write back (`crate::coalesce`) has frames
        // queued already: a reply must wake it all the same, and so must a
        // queue reaching a quarter of its frames or bytes, where holding
        // ends (see `may_hold`).
        let quarter = queue.frames.len() == self.capacity / 4
            || (queue.bytes >= self.budget / 4 && queue.bytes - size < self.budget / 4);
        let wake = urgent || quarter || queue.frames.len() == 1;
        if queue.bytes > queue.peak {
            queue.peak = queue.bytes;
            self.peak.fetch_max(queue.bytes, Ordering::Relaxed);
        }
        drop(queue);
        if wake {
            self.task.wake();
        }
        Ok(())
    }
}

impl Sink for Outbox {
    fn push(&self, frame: Outbound) -> bool {
        if self.is_closing() {
            return false;
        }
        let size = wire_size(&frame);
        match self.try_queue(frame, size) {
            Ok(()) => true,
            Err((_, true)) => {
                self.close(CloseReason::slow_consumer_bytes(self.budget));
                false
            }
            Err((_, false)) => {
                self.close(CloseReason::slow_consumer(self.capacity));
                false
            }
        }
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let size = wire_size(&frame);
            let mut frame = Some(frame);
            self.waiting.fetch_add(1, Ordering::AcqRel);
            let queued = loop {
                // Registered before trying, so a release in between is not missed.
                let room = self.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if self.is_closing() {
                    break false;
                }
                match self.try_queue(frame.take().expect("a frame to send"), size) {
                    Ok(()) => break true,
                    Err((back, _)) => frame = Some(back),
                }
                room.await;
            };
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            queued
        })
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
