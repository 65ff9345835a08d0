//! One WebSocket connection: reading requests, writing what its
//! [`Outbox`] queues, heartbeats, and closing with a reason.
//!
//! Replies and events reach the socket only through the outbox. Each
//! request runs as its own task; a failing or panicking handler becomes an
//! error reply and the connection stays open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// An upgraded WebSocket.
pub(crate) type WebSocket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

use crate::auth::Identity;
use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::outbox::Outbox;
use crate::protocol::{self, CloseReason, Request};
use crate::router::Router;
use crate::session::Session;
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

/// What every connection of an app shares.
pub(crate) struct AppCore {
    pub(crate) router: Router,
    pub(crate) config: ConnectionConfig,
    shutdown: tokio::sync::watch::Sender<bool>,
    connections: AtomicUsize,
}

impl std::fmt::Debug for AppCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCore").field("router", &self.router).field("connections", &self.open_connections()).finish()
    }
}

/// Counts a connection as open while it lives.
pub(crate) struct OpenConnection(Arc<AppCore>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppCore {
    pub(crate) fn new(router: Router, config: ConnectionConfig) -> Self {
        AppCore { router, config, shutdown: tokio::sync::watch::channel(false).0, connections: AtomicUsize::new(0) }
    }

    /// Asks every connection to close (code 1001).
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns `true` when the server shuts down.
    pub(crate) fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Registers an open connection until the guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// How many connections are open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Serves one upgraded socket until either side closes it.
pub(crate) async fn serve(socket: WebSocket, app: Arc<AppCore>, identity: Identity) {
    let _open = app.open();
    let mut shutting_down = app.shutting_down();
    let config = app.config.clone();
    let (outbox, queue) = Outbox::new(config.queue_capacity);
    let session = Arc::new(app.router.session(identity, outbox.clone()));
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
        let request = match read_request(text, config.max_frame_bytes) {
            Ok(request) => request,
            Err(reply) => {
                outbox.push(Outbound::Frame(reply));
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let (app, session) = (app.clone(), session.clone());
        tokio::spawn(async move {
            if let Some(frame) = run_request(&app.router, &session, request).await {
                session.reply(frame);
            }
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

/// The request in one text frame, or the error reply it gets instead.
pub(crate) fn read_request(text: &str, max_frame_bytes: usize) -> Result<Request, String> {
    if text.len() > max_frame_bytes {
        let e = Error::FrameTooLarge { size: text.len(), limit: max_frame_bytes };
        return Err(protocol::error_reply(&Request::peek_id(text), &e));
    }
    Request::parse(text).map_err(|(id, e)| protocol::error_reply(&id, &e))
}

/// Runs one request and gives its reply frame; `None` when the handler
/// queued its reply itself. A failing or panicking handler becomes an
/// error reply.
pub(crate) async fn run_request(router: &Router, session: &Session, request: Request) -> Option<String> {
    let id = request.id.clone();
    let outcome = std::panic::AssertUnwindSafe(router.handle(session, request)).catch_unwind().await;
    Some(match outcome {
        Ok(Ok(Some(data))) => protocol::ok_reply(&id, data),
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            if let Error::Internal(detail) = &e {
                tracing::error!(%detail, "request failed");
            }
            protocol::error_reply(&id, &e)
        }
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "request handler panicked");
            protocol::error_reply(&id, &Error::Internal("handler panicked".into()))
        }
    })
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
            sink.feed(Message::text(batch.into_text())).await?;
            for _ in 0..256 {
                match queue.try_recv() {
                    Ok(frame) => sink.feed(Message::text(frame.into_text())).await?,
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
