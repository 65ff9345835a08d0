//! How a server asks its connections to stop: shut down (close now, 1001)
//! or drain for a restart (stop running requests, flush what is queued,
//! then 1012).
//! One signal shared by every connection's task, so a drain reaches all of
//! them at once; the first way asked for wins.

use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::CloseReason;

/// How connections are asked to stop.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) reason: CloseReason,
    /// `None`: close now, dropping what is queued. `Some`: flush first, until then.
    pub(crate) flush_by: Option<Instant>,
}

impl Stop {
    /// Close now with 1001 (also what a dropped signal means).
    pub(crate) fn now() -> Stop {
        Stop {
            reason: CloseReason { code: CloseReason::GOING_AWAY, reason: "server shutting down".into() },
            flush_by: None,
        }
    }
}

/// The signal: `None` until the server stops.
#[derive(Debug)]
pub(crate) struct StopSignal(watch::Sender<Option<Stop>>);

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal(watch::channel(None).0)
    }
}

impl StopSignal {
    /// Every connection closes now (1001).
    pub(crate) fn shut_down(&self) {
        self.stop(Stop::now());
    }

    /// Every connection stops running requests, sends what it has queued
    /// and the replies of requests in progress (until `flush_by` at the
    /// latest), then closes with 1012 so its client reconnects elsewhere.
    /// A later [`StopSignal::shut_down`] does not cut it short.
    pub(crate) fn drain(&self, flush_by: Instant) {
        let reason = CloseReason { code: CloseReason::SERVICE_RESTART, reason: "server restarting".into() };
        self.stop(Stop { reason, flush_by: Some(flush_by) });
    }

    fn stop(&self, how: Stop) {
        self.0.send_if_modified(|stop| {
            if stop.is_some() {
                return false;
            }
            *stop = Some(how);
            true
        });
    }

    /// Whether the server is draining or shutting down (so not ready).
    pub(crate) fn stopping(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Resolves with how to stop, once the server stops.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = Stop> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            match rx.wait_for(|stop| stop.is_some()).await {
                Ok(stop) => stop.clone().unwrap_or_else(Stop::now),
                Err(_) => Stop::now(),
            }
        }
    }
}
