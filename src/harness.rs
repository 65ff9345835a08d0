//! A connection without a socket, for the frame fuzzer
//! (`tests/fuzz_frames.rs`). Not part of the API: no stability promised.
//!
//! It runs each text frame through exactly what a real connection runs for
//! one (`connection::read_request`, then `connection::run_request`) on a
//! real app's router and session,
//! and keeps every frame the connection would have written, replies and
//! events alike, in order. Requests run one at a time, so a run is
//! reproducible from its inputs; the socket, the outbox and the heartbeat
//! are left out, they are not what a frame's content can reach.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::auth::Identity;
use crate::builder::Wyrmhole;
use crate::connection::{read_request, run_request, AppCore};
use crate::fanout::sink::{Outbound, Sink};
use crate::session::Session;

/// One client of an app, connected as `identity`.
pub struct Connection {
    app: Arc<AppCore>,
    session: Session,
    out: Arc<Capture>,
}

/// Keeps what a connection would have written, as the frames' text.
#[derive(Default)]
struct Capture(Mutex<Vec<String>>);

impl Sink for Capture {
    fn push(&self, frame: Outbound) -> bool {
        self.0.lock().push(frame.into_text());
        true
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.push(frame)))
    }
}

impl Connection {
    /// Connects to `app` as `identity` (authentication is the caller's).
    pub fn new(app: &Wyrmhole, identity: Identity) -> Self {
        let app = app.core().clone();
        let out = Arc::new(Capture::default());
        let session = app.router.session(identity, out.clone());
        Connection { app, session, out }
    }

    /// Handles one text frame as a connection does, to the end: when this
    /// returns, its reply has been written (a subscription's events may
    /// follow at any time).
    pub async fn frame(&self, text: &str) {
        let reply = match read_request(text, self.app.config.max_frame_bytes) {
            Ok(request) => run_request(&self.app.router, &self.session, request).await,
            Err(reply) => Some(reply),
        };
        if let Some(reply) = reply {
            self.session.reply(reply);
        }
    }

    /// Everything written since the last call, oldest first.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.out.0.lock())
    }
}

impl Drop for Connection {
    /// Ends the subscriptions, as a closing connection does.
    fn drop(&mut self) {
        self.session.close();
    }
}
