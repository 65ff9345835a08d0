//! One WebSocket connection: reading requests, writing what its
//! [`Outbox`] queues, heartbeats, its budgets (requests per second, reply
//! size; see [`crate::budget`]), and closing with a reason.
//!
//! Replies and events reach the socket only through the outbox. Each
//! request runs as its own task; a failing or panicking handler becomes an
//! error reply and the connection stays open.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// An upgraded WebSocket.
pub(crate) type WebSocket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

pub use crate::config::ConnectionConfig;

use crate::auth::Identity;
use crate::budget::{take_tokens, Admission, Budgets, Refusal, SessionBudget, SharedLimits, TokenBucket};
use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::outbox::{wire_size, Outbox};
use crate::protocol::{self, CloseReason, Request};
use crate::router::Router;
use crate::session::Session;
use crate::store::panic_message;

/// What every connection of an app shares.
pub(crate) struct AppCore {
    pub(crate) router: Router,
    pub(crate) config: ConnectionConfig,
    shutdown: tokio::sync::watch::Sender<bool>,
    connections: AtomicUsize,
    budgets: Arc<Budgets>,
    /// Database turns per connection (see `ConnectionConfig::max_db_requests`).
    db_turns: usize,
    /// The most bytes any one outbox of the app held.
    outbox_peak: Arc<AtomicUsize>,
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
        let pool = router.db.read_pool_size();
        let db_turns = config.max_db_requests.unwrap_or((pool / 4).max(1)).max(1);
        let budgets = Arc::new(Budgets::new(SharedLimits {
            connections_per_identity: config.max_connections_per_identity,
            connections_per_ip: config.max_connections_per_ip,
            identity_per_second: config.identity_requests_per_second,
            identity_burst: config.identity_request_burst,
            identity_db_turns: config.max_db_requests_per_identity.unwrap_or((pool / 2).max(1)),
        }));
        AppCore {
            router,
            config,
            shutdown: tokio::sync::watch::channel(false).0,
            connections: AtomicUsize::new(0),
            budgets,
            db_turns,
            outbox_peak: Arc::default(),
        }
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

    /// Counts a connection of `identity` from `remote` against the caps per
    /// identity and per address; called at the upgrade, after
    /// authentication. The place is held until the admission drops (when
    /// [`serve`] returns).
    pub(crate) fn admit(&self, identity: &Identity, remote: Option<SocketAddr>) -> Result<Admission, Refusal> {
        self.budgets.admit(identity, remote.map(|a| a.ip()))
    }

    /// The largest reply a connection may be sent: it must fit its queue.
    fn max_reply_bytes(&self) -> usize {
        self.config.max_reply_bytes.min(self.config.queue_bytes)
    }

    /// The most bytes any one connection's outbound queue has held.
    pub(crate) fn outbox_peak_bytes(&self) -> usize {
        self.outbox_peak.load(Ordering::Relaxed)
    }
}

/// How long a closing connection keeps reading (and discarding) what the
/// client still sends, waiting for its close frame. Longer than the writer
/// may take to deliver ours (see [`write_loop`]).
const DRAIN_GRACE: Duration = Duration::from_secs(12);

/// Serves one upgraded socket until either side closes it.
pub(crate) async fn serve(socket: WebSocket, app: Arc<AppCore>, identity: Identity, admission: Admission) {
    let _open = app.open();
    let mut shutting_down = app.shutting_down();
    // Borrowed, not cloned: the connection's task holds what lives across
    // its awaits, for as long as the connection is open.
    let config = &app.config;
    let (outbox, queue) = Outbox::new(config.queue_capacity, config.queue_bytes, app.outbox_peak.clone());
    let shared = admission.shared().cloned();
    let budget = SessionBudget::new(config.max_subscriptions, app.max_reply_bytes(), app.db_turns, shared.as_deref())
        .scanning(config.max_scanning_subscriptions)
        .live(crate::budget::LiveLimits {
            max_topics: config.max_presence_topics,
            max_channels: config.max_channels,
            max_meta_bytes: config.max_presence_meta_bytes,
        });
    let session = Arc::new(app.router.session(identity, outbox.clone()).with_budget(budget));
    let rate = TokenBucket::new(config.requests_per_second, config.request_burst);
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, queue, outbox.clone(), config.ping_interval));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut requests = JoinSet::new();
    let mut closing = outbox.closing();

    loop {
        let next = tokio::select! {
            biased;
            _ = closing.changed() => break,
            // Reaped as they finish: a finished request's task would
            // otherwise stay allocated until the client's next frame
            // (about 1 KB per idle connection after its subscribe).
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
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
                if let Some(reason) = close_reason_for(&e) {
                    outbox.close(reason);
                }
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let text = match &message {
            Message::Text(text) => Some(text.as_str()),
            Message::Binary(_) => None,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        // Every data frame is a request, answered or not: the rate check
        // comes before any parsing.
        if let Err(e) = take_tokens(&rate, shared.as_ref().map(|s| &s.rate)) {
            let id = text.filter(|t| t.len() <= config.max_frame_bytes).map(Request::peek_id).unwrap_or_default();
            outbox.push(Outbound::Frame(protocol::error_reply(&id, &e)));
            continue;
        }
        let Some(text) = text else {
            let e = Error::MalformedFrame("binary frames are not supported; send JSON text".into());
            outbox.push(Outbound::Frame(protocol::error_reply(&serde_json::Value::Null, &e)));
            continue;
        };
        let request = match read_request(text, config.max_frame_bytes) {
            Ok(request) => request,
            Err(reply) => {
                outbox.push(Outbound::Frame(reply));
                continue;
            }
        };
        let permit = tokio::select! {
            biased;
            _ = closing.changed() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (app, session) = (app.clone(), session.clone());
        requests.spawn(async move {
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
        // Nobody will read their replies: requests still waiting for their
        // turn are dropped instead of taking the database from others (one
        // already at the database finishes; a write is never cut halfway).
        requests.abort_all();
    } else {
        // The client closed: what it sent before still runs.
        requests.detach_all();
    }
    // Keep reading while the writer delivers our close frame, until the
    // client answers it: a socket dropped with unread input is reset, and
    // a reset makes the client's system discard what it has not read yet,
    // our close frame included (a slow consumer would see a bare EOF
    // instead of 4008). When the client closed first, or broke the
    // protocol, there is nothing more worth reading.
    let mut writer_done = false;
    let mut client_done = !server_closed;
    let grace = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(grace);
    while !(writer_done && client_done) {
        tokio::select! {
            _ = &mut grace => break,
            _ = &mut writer, if !writer_done => writer_done = true,
            message = stream.next(), if !client_done => {
                client_done = !matches!(message, Some(Ok(ref m)) if !m.is_close());
            }
        }
    }
    if !writer_done {
        writer.abort();
        let _ = writer.await;
    }
}

/// The close frame a read error deserves, if the client can still get one.
fn close_reason_for(e: &tungstenite::Error) -> Option<CloseReason> {
    use tungstenite::error::ProtocolError;
    let (code, reason) = match e {
        tungstenite::Error::Capacity(_) => (CloseReason::TOO_BIG, "frame over the hard size limit".to_owned()),
        tungstenite::Error::Utf8(_) => (CloseReason::INVALID_PAYLOAD, "text frame is not valid UTF-8".to_owned()),
        // The client went away without closing: nobody to tell.
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        tungstenite::Error::Protocol(p) => (CloseReason::PROTOCOL_ERROR, format!("protocol error: {p}")),
        _ => return None,
    };
    // A close reason may hold at most 123 bytes.
    let mut reason = reason;
    while reason.len() > 123 {
        reason.pop();
    }
    Some(CloseReason { code, reason })
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
/// error reply, and so does a reply over the session's size limit.
pub(crate) async fn run_request(router: &Router, session: &Session, request: Request) -> Option<String> {
    let id = request.id.clone();
    let outcome = std::panic::AssertUnwindSafe(router.handle(session, request)).catch_unwind().await;
    let frame = match outcome {
        Ok(Ok(Some(data))) => protocol::ok_reply(&id, data),
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            match &e {
                Error::Internal(detail) => tracing::error!(%detail, "request failed"),
                Error::Unavailable(detail) => tracing::warn!(%detail, "request failed; the client may retry"),
                _ => {}
            }
            protocol::error_reply(&id, &e)
        }
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "request handler panicked");
            protocol::error_reply(&id, &Error::Internal("handler panicked".into()))
        }
    };
    let limit = session.max_reply_bytes();
    if frame.len() > limit {
        return Some(protocol::error_reply(&id, &Error::ReplyTooLarge { size: frame.len(), limit }));
    }
    Some(frame)
}

/// What the writer sends next.
enum Next {
    Frame(Outbound),
    Ping,
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
        let next = tokio::select! {
            biased;
            _ = closing.changed() => break true,
            frame = queue.recv() => match frame {
                Some(frame) => Next::Frame(frame),
                None => break true,
            },
            _ = ping.tick() => Next::Ping,
        };
        let write = async {
            let first = match next {
                Next::Ping => return sink.send(Message::Ping(Default::default())).await,
                Next::Frame(first) => first,
            };
            // Write whatever else is queued before one flush: one syscall for a burst.
            feed(&mut sink, &outbox, first).await?;
            for _ in 0..256 {
                match queue.try_recv() {
                    Ok(frame) => feed(&mut sink, &outbox, frame).await?,
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
        // Whatever is still queued is dropped; the close frame goes out
        // after what the socket already took, and is flushed.
        let reason = outbox.closing().borrow().clone();
        let reason = reason.unwrap_or(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
        let frame = CloseFrame { code: CloseCode::from(reason.code), reason: reason.reason.into() };
        let close = sink.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

/// Hands one frame to the socket, and its bytes back to the outbox's budget.
async fn feed(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    outbox: &Outbox,
    frame: Outbound,
) -> Result<(), tungstenite::Error> {
    let size = wire_size(&frame);
    let fed = sink.feed(Message::text(frame.into_text())).await;
    outbox.release(size);
    fed
}
