//! Write coalescing: a connection that has fallen behind its stream of
//! events writes them in fewer, larger writes.
//!
//! Each write to a socket is a system call, and on the client's side a
//! wake-up and a read; their cost is per write, not per byte. A connection
//! that keeps up takes one or two frames at a time and writes them at once:
//! nothing here delays it. One that took a burst (at least [`BURST`] frames
//! in one batch) is behind: more are on their way, and writing each as it
//! comes would spend the CPU both sides need to catch up. Its next write
//! waits until `window` after that burst's, so what arrives meanwhile goes
//! out together (issue 14: at 1,000 subscribers in open loop, a 20 ms
//! window cut the server's CPU per delivery by a fifth to a third). The wait
//! ends early, and is skipped, when anything but an event is queued (a
//! reply is never held) or the queue passes a quarter of its limits (a held
//! connection must never be closed as a slow consumer for it).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::outbox::Outbox;

/// Frames taken at once that mark a connection as behind its stream.
pub(crate) const BURST: usize = 8;

/// One connection's coalescing state.
#[derive(Debug)]
pub(crate) struct Coalesce {
    window: Duration,
    /// When the last batch was taken, if it was a burst.
    burst_at: Option<Instant>,
    /// Made at the first hold: a connection that never falls behind holds no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Coalesce {
    /// Holds writes for `window` after a burst; zero never holds.
    pub(crate) fn new(window: Duration) -> Self {
        Coalesce { window, burst_at: None, timer: None }
    }

    /// The connection took a batch of `frames` frames.
    pub(crate) fn took(&mut self, frames: usize) {
        self.burst_at = (frames >= BURST && !self.window.is_zero()).then(Instant::now);
    }

    /// Whether to hold the next write back now. When it does, the task is
    /// woken at the window's end (or earlier, by a reply: see
    /// [`Outbox::may_hold`]).
    pub(crate) fn hold(&mut self, cx: &mut Context<'_>, outbox: &Outbox) -> bool {
        let Some(at) = self.burst_at else { return false };
        if !outbox.may_hold() {
            return false;
        }
        let until = at + self.window;
        if Instant::now() >= until {
            self.burst_at = None;
            return false;
        }
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if timer.deadline() != until {
            timer.as_mut().reset(until);
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.burst_at = None;
            return false;
        }
        true
    }

    /// Frees the timer of a connection that is no longer behind.
    pub(crate) fn shrink_idle(&mut self) {
        if self.burst_at.is_none() {
            self.timer = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::sink::{Outbound, Sink};
    use std::sync::Arc;

    fn event(n: u64) -> Outbound {
        Outbound::test_event(n)
    }

    fn noop() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    #[tokio::test]
    async fn only_a_connection_behind_is_held_and_only_for_the_window() {
        let outbox = Outbox::new(1024, 1 << 20, Arc::default());
        // Long enough that the checks right after a burst fall inside it on any machine.
        let window = Duration::from_millis(300);
        let mut coalesce = Coalesce::new(window);
        let mut cx = noop();
        // Keeping up: a frame or two at a time is never held.
        coalesce.took(2);
        assert!(outbox.push(event(1)));
        assert!(!coalesce.hold(&mut cx, &outbox));
        // Behind: the next write waits for the window.
        coalesce.took(BURST);
        assert!(coalesce.hold(&mut cx, &outbox));
        assert!(coalesce.hold(&mut cx, &outbox));
        tokio::time::sleep(window).await;
        assert!(!coalesce.hold(&mut cx, &outbox), "the window ended");
        assert!(!coalesce.hold(&mut cx, &outbox), "and stays ended until the next burst");
    }

    #[tokio::test]
    async fn replies_an_empty_queue_and_a_filling_one_are_not_held() {
        let outbox = Outbox::new(40, 1 << 20, Arc::default());
        let mut coalesce = Coalesce::new(Duration::from_secs(60));
        let mut cx = noop();
        coalesce.took(BURST);
        assert!(!coalesce.hold(&mut cx, &outbox), "nothing to hold");
        assert!(outbox.push(Outbound::Frame("reply".into())));
        assert!(outbox.push(event(1)));
        assert!(!coalesce.hold(&mut cx, &outbox), "a reply goes out now");
        let mut batch = std::collections::VecDeque::new();
        outbox.take(&mut batch);
        for n in 0..9 {
            assert!(outbox.push(event(n)));
        }
        assert!(coalesce.hold(&mut cx, &outbox), "9 of 40 frames");
        assert!(outbox.push(event(9)));
        assert!(!coalesce.hold(&mut cx, &outbox), "a quarter full");
    }

    #[test]
    fn a_zero_window_never_holds() {
        let outbox = Outbox::new(1024, 1 << 20, Arc::default());
        let mut coalesce = Coalesce::new(Duration::ZERO);
        coalesce.took(1000);
        assert!(outbox.push(event(1)));
        assert!(!coalesce.hold(&mut noop(), &outbox));
    }
}
