//! One WebSocket connection: reading requests, the bounded outbound queue,
//! heartbeats, and closing with a reason.
//!
//! Replies and events reach the socket only through the connection's
//! [`Outbox`], a bounded queue. The fan-out never waits on it: when it is
//! full the connection is closed as a slow consumer (close code 4008), so one
//! slow client cannot hold up anyone else. Each request runs as its own task;
//! a failing or panicking handler becomes an error reply and the connection
//! stays open.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// An upgraded WebSocket.
pub(crate) type WebSocket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

use crate::auth::Identity;
use crate::change::Action;
use crate::error::Error;
use crate::protocol::{self, CloseReason, Request};
use crate::registry::{Registry, Subscription};
use crate::router::RouterCore;
use crate::store::panic_message;

/// Limits and timings of connections.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Frames queued for a client before it is dropped as a slow consumer.
    pub queue_capacity: usize,
    /// Frames larger than this get a `frame_too_large` error reply.
    pub max_frame_bytes: usize,
    /// Frames larger than this close the connection (code 1009), since they
    /// must not even be buffered. At least `max_frame_bytes`.
    pub hard_frame_bytes: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long the client may stay silent (no frame, no pong) before it is
    /// closed (code 4001).
    pub idle_timeout: Duration,
    /// Requests one connection may have in progress; further frames wait.
    pub max_in_flight: usize,
    /// The socket's read buffer. Small keeps idle connections cheap; large
    /// frames are still read, in more system calls.
    pub read_buffer_bytes: usize,
    /// Outgoing bytes buffered before a write to the socket.
    pub write_buffer_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            queue_capacity: 1024,
            max_frame_bytes: 1 << 20,
            hard_frame_bytes: 16 << 20,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            max_in_flight: 32,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
        }
    }
}

/// A frame waiting for the socket.
#[derive(Debug)]
pub enum Outbound {
    /// A finished frame (a reply).
    Frame(String),
    /// A change for one subscription; the frame is written by the
    /// connection's own task around the shared `data`.
    Event {
        /// The subscription.
        sub: u64,
        /// Its sequence number: 1, 2, 3, ... per subscription.
        seq: u64,
        /// The change's commit position.
        pos: u64,
        /// The route.
        route: &'static str,
        /// What happened, relative to the subscription.
        action: Action,
        /// The serialized payload, shared with other subscribers.
        data: Arc<str>,
    },
}

impl Outbound {
    fn into_message(self) -> Message {
        match self {
            Outbound::Frame(text) => Message::text(text),
            Outbound::Event { sub, seq, pos, route, action, data } => {
                Message::text(protocol::event_frame(sub, seq, pos, route, action, &data))
            }
        }
    }
}

/// The bounded queue in front of one socket.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    capacity: usize,
    close: watch::Sender<Option<CloseReason>>,
}

impl Outbox {
    /// A queue of `capacity` frames, and its receiving end.
    pub fn new(capacity: usize) -> (Arc<Outbox>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close, _) = watch::channel(None);
        (Arc::new(Outbox { tx, capacity, close }), rx)
    }

    /// Queues a frame without waiting. A full queue closes the connection as
    /// a slow consumer; returns false if the frame was not queued.
    pub fn push(&self, frame: Outbound) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::slow_consumer(self.capacity));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close with `reason`. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
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
    pub fn is_closing(&self) -> bool {
        self.close.borrow().is_some()
    }

    fn closing(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }
}

/// What a request handler knows about its connection.
#[derive(Debug)]
pub struct Session {
    /// Who is connected.
    pub identity: Identity,
    /// The connection's outbound queue.
    pub outbox: Arc<Outbox>,
    /// `None` once the connection has ended: a subscribe still in flight
    /// then must not leave a subscription behind.
    subs: Mutex<Option<HashMap<u64, Arc<Subscription>>>>,
    registry: Arc<Registry>,
}

impl Session {
    /// A session for `identity` writing to `outbox`.
    pub fn new(identity: Identity, outbox: Arc<Outbox>, registry: Arc<Registry>) -> Self {
        Session { identity, outbox, subs: Mutex::new(Some(HashMap::new())), registry }
    }

    /// Remembers a subscription of this connection; ends it at once if the
    /// connection is already gone.
    pub fn add_subscription(&self, sub: Arc<Subscription>) {
        match &mut *self.subs.lock() {
            Some(subs) => {
                subs.insert(sub.id, sub);
            }
            None => self.registry.unsubscribe(&sub),
        }
    }

    /// Ends one of this connection's subscriptions.
    pub fn remove_subscription(&self, id: u64) -> Result<(), Error> {
        let sub = self.subs.lock().as_mut().and_then(|s| s.remove(&id)).ok_or(Error::UnknownSubscription(id))?;
        self.registry.unsubscribe(&sub);
        Ok(())
    }

    /// Ends every subscription, for good.
    fn close(&self) {
        let subs = self.subs.lock().take().unwrap_or_default();
        for sub in subs.values() {
            self.registry.unsubscribe(sub);
        }
    }
}

/// Serves one upgraded socket until either side closes it.
pub(crate) async fn serve(socket: WebSocket, router: Arc<RouterCore>, identity: Identity) {
    let _open = router.open();
    let mut shutting_down = router.shutting_down();
    let config = router.config.clone();
    let (outbox, queue) = Outbox::new(config.queue_capacity);
    let session = Arc::new(Session::new(identity, outbox.clone(), router.db.registry().clone()));
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, queue, outbox.clone(), config.ping_interval));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut closing = outbox.closing();

    loop {
        let next = tokio::select! {
            biased;
            _ = closing.changed() => break,
            _ = shutting_down.wait_for(|down| *down) => {
                outbox.close(CloseReason { code: CloseReason::GOING_AWAY, reason: "server shutting down".into() });
                break;
            }
            next = tokio::time::timeout(config.idle_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                outbox.close(CloseReason::heartbeat_timeout(config.idle_timeout.as_secs_f64()));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket read failed");
                if matches!(e, tungstenite::Error::Capacity(_)) {
                    outbox.close(CloseReason {
                        code: CloseReason::TOO_BIG,
                        reason: "frame over the hard size limit".into(),
                    });
                }
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                let e = Error::MalformedFrame("binary frames are not supported; send JSON text".into());
                outbox.push(Outbound::Frame(protocol::error_reply(&serde_json::Value::Null, &e)));
                continue;
            }
        };
        if text.len() > config.max_frame_bytes {
            let e = Error::FrameTooLarge { size: text.len(), limit: config.max_frame_bytes };
            outbox.push(Outbound::Frame(protocol::error_reply(&Request::peek_id(text), &e)));
            continue;
        }
        let request = match Request::parse(text) {
            Ok(request) => request,
            Err((id, e)) => {
                outbox.push(Outbound::Frame(protocol::error_reply(&id, &e)));
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let (router, session) = (router.clone(), session.clone());
        tokio::spawn(async move {
            let id = request.id.clone();
            let outcome = std::panic::AssertUnwindSafe(router.handle(&session, request)).catch_unwind().await;
            let frame = match outcome {
                Ok(Ok(Some(data))) => protocol::ok_reply(&id, data),
                Ok(Ok(None)) => return, // the handler queued its own reply
                Ok(Err(e)) => {
                    if let Error::Internal(detail) = &e {
                        tracing::error!(%detail, "request failed");
                    }
                    protocol::error_reply(&id, &e)
                }
                Err(panic) => {
                    tracing::error!(panic = %panic_message(&panic), "request handler panicked");
                    protocol::error_reply(&id, &Error::Internal("handler panicked".into()))
                }
            };
            session.outbox.push(Outbound::Frame(frame));
            drop(permit);
        });
    }

    session.close();
    let server_closed = outbox.is_closing();
    outbox.close(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
    if server_closed {
        // Closing handshake: keep reading until the client answers our close
        // frame, so the socket is not torn down before the client has read
        // the close code (a client still answering pings would otherwise hit
        // a broken pipe and never see why it was closed).
        let drain = async {
            while let Some(Ok(message)) = stream.next().await {
                if message.is_close() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
    let _ = writer.await;
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    outbox: Arc<Outbox>,
    ping_interval: Duration,
) {
    // How long a close frame may take to go out to a client that is not reading.
    const CLOSE_GRACE: Duration = Duration::from_secs(5);
    let mut closing = outbox.closing();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let sent = loop {
        let batch = tokio::select! {
            biased;
            _ = closing.changed() => break true,
            frame = queue.recv() => match frame {
                Some(frame) => frame,
                None => break true,
            },
            _ = ping.tick() => Outbound::Frame(String::new()),
        };
        let write = async {
            if let Outbound::Frame(text) = &batch {
                if text.is_empty() {
                    return sink.send(Message::Ping(Default::default())).await;
                }
            }
            // Write whatever else is queued before one flush: one syscall for a burst.
            sink.feed(batch.into_message()).await?;
            for _ in 0..256 {
                match queue.try_recv() {
                    Ok(frame) => sink.feed(frame.into_message()).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        tokio::select! {
            biased;
            _ = closing.changed() => break true,
            result = write => if result.is_err() { break false },
        }
    };
    if sent {
        let reason = outbox.closing().borrow().clone();
        let reason = reason.unwrap_or(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
        let frame = CloseFrame { code: CloseCode::from(reason.code), reason: reason.reason.into() };
        let close = sink.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}
