//! One WebSocket connection: reading requests, writing what its
//! [`Outbox`] queues, heartbeats, its budgets (requests per second, reply
//! size; see [`crate::budget`]), and closing with a reason.
//!
//! Replies and events reach the socket only through the outbox, which the
//! connection's one task drains into the socket's [`Wire`](crate::wire).
//! Each request runs as a task of its own; a failing or panicking handler
//! becomes an error reply and the connection stays open.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::Instrument;

/// An upgraded connection's bytes.
pub(crate) type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

pub use crate::config::ConnectionConfig;

pub(crate) use crate::app_core::AppCore;
use crate::auth::Identity;
use crate::budget::{take_tokens, Admission, SessionBudget, TokenBucket};
use crate::coalesce::Coalesce;
use crate::error::Error;
use crate::fanout::sink::{Outbound, Sink};
use crate::metrics::Sent;
use crate::outbox::{wire_size, Outbox};
use crate::protocol::{self, CloseReason, Request};
use crate::router::Router;
use crate::session::Session;
use crate::socket::{close_reason_for, Socket};
use crate::stop::Stop;
use crate::store::panic_message;

/// How long a closing connection keeps reading (and discarding) what the
/// client still sends, waiting for its answer to our close frame.
const DRAIN_GRACE: Duration = Duration::from_secs(12);

/// How long the frames before a close frame, and the close frame itself,
/// may take to go out to a client that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What woke the connection's task.
enum Step {
    Read(Option<Result<Message, tungstenite::Error>>),
    Closing,
    WriteFailed,
    Ping,
    Idle,
    Shutdown(Stop),
    /// Draining, and everything queued and answered was written (or the
    /// flush deadline passed).
    Flushed,
}

/// Serves one upgraded socket until either side closes it. One task does
/// everything: reads requests, writes what the outbox queues, pings, and
/// closes; request handlers run as tasks of their own.
pub(crate) async fn serve(mut socket: Socket<Io>, app: Arc<AppCore>, identity: Identity, admission: Admission) {
    let _open = app.open();
    // Borrowed, not cloned: the connection's task holds what lives across
    // its awaits, for as long as the connection is open.
    let config = &app.config;
    let outbox = Outbox::new(config.queue_capacity, config.queue_bytes, app.outbox_peak.clone());
    let shared = admission.shared().cloned();
    let budget = SessionBudget::new(config.max_subscriptions, app.max_reply_bytes(), app.db_turns, shared.as_deref())
        .scanning(config.max_scanning_subscriptions)
        .live(crate::budget::LiveLimits {
            max_topics: config.max_presence_topics,
            max_channels: config.max_channels,
            max_meta_bytes: config.max_presence_meta_bytes,
        });
    let session = Arc::new(app.router.session(identity, outbox.clone()).with_budget(budget));
    // The span (made by the upgrade, with identity and address) gets the
    // number the presence registry knows the connection by.
    tracing::Span::current().record("conn", session.conn());
    app.metrics.connection_opened();
    let rate = TokenBucket::new(config.requests_per_second, config.request_burst);
    let mut requests = JoinSet::new();
    let max_in_flight = config.max_in_flight.max(1);
    let shutdown = app.stop.stopped();
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    // Draining: the close frame to send once flushed, and the deadline.
    let mut draining: Option<(CloseReason, std::pin::Pin<Box<tokio::time::Sleep>>)> = None;
    let mut sent = Sent::default();
    let mut ping = tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut heard = Instant::now();
    // Frames taken from the outbox and the bytes they hold in its budget
    // until the socket has taken them all.
    let mut batch = VecDeque::new();
    let mut batch_bytes = 0;
    let mut coalesce = Coalesce::new(config.write_coalesce);

    loop {
        let step = std::future::poll_fn(|cx| {
            if !shutdown_seen {
                if let Poll::Ready(stop) = shutdown.as_mut().poll(cx) {
                    shutdown_seen = true;
                    return Poll::Ready(Step::Shutdown(stop));
                }
            }
            // Registered before looking, so a frame pushed meanwhile wakes us.
            outbox.register(cx.waker());
            if outbox.is_closing() {
                return Poll::Ready(Step::Closing);
            }
            let mut flushed = false;
            loop {
                if socket.wire().is_empty() {
                    outbox.release(std::mem::take(&mut batch_bytes));
                    if draining.is_none() && coalesce.hold(cx, &outbox) {
                        break;
                    }
                    outbox.take(&mut batch);
                    if batch.is_empty() {
                        flushed = true;
                        break;
                    }
                    coalesce.took(batch.len());
                    sent.frames += batch.len() as u64;
                    for frame in batch.drain(..) {
                        batch_bytes += wire_size(&frame);
                        match frame {
                            Outbound::Frame(text) => socket.wire().text(text),
                            Outbound::Event { sub, seq, event } => {
                                sent.events += 1;
                                socket.wire().event(sub, seq, event.pos, event.route, event.action, &event.data)
                            }
                        }
                    }
                    sent.bytes += batch_bytes as u64;
                    app.metrics.add_sent(&mut sent);
                }
                match socket.poll_write(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "websocket write failed");
                        return Poll::Ready(Step::WriteFailed);
                    }
                    Poll::Pending => break,
                }
            }
            // Reaped as they finish: a finished request's task would
            // otherwise stay allocated until the client's next frame.
            while let Poll::Ready(Some(_)) = requests.poll_join_next(cx) {}
            if let Some((_, deadline)) = &mut draining {
                if (flushed && requests.is_empty()) || deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Step::Flushed);
                }
            }
            // At most `max_in_flight` requests run; until one ends, what the
            // client sends waits in its socket.
            if requests.len() < max_in_flight {
                if let Poll::Ready(read) = socket.poll_read(cx) {
                    return Poll::Ready(Step::Read(read));
                }
            }
            if ping.poll_tick(cx).is_ready() {
                return Poll::Ready(Step::Ping);
            }
            if idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Step::Idle);
            }
            Poll::Pending
        })
        .await;
        let message = match step {
            Step::Closing | Step::WriteFailed => break,
            Step::Shutdown(Stop { reason, flush_by: Some(by) }) => {
                draining = Some((reason, Box::pin(tokio::time::sleep_until(by))));
                continue;
            }
            Step::Shutdown(Stop { reason, flush_by: None }) => {
                outbox.close(reason);
                continue;
            }
            Step::Flushed => {
                if let Some((reason, _)) = draining.take() {
                    outbox.close(reason);
                }
                continue;
            }
            Step::Ping => {
                outbox.shrink_idle(&mut batch);
                coalesce.shrink_idle();
                socket.wire().ping();
                continue;
            }
            Step::Idle if heard.elapsed() >= config.idle_timeout => {
                outbox.close(CloseReason::heartbeat_timeout(config.idle_timeout.as_secs_f64()));
                continue;
            }
            Step::Idle => {
                idle.as_mut().reset(heard + config.idle_timeout);
                continue;
            }
            Step::Read(None) => break,
            Step::Read(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket read failed");
                if let Some(reason) = close_reason_for(&e) {
                    outbox.close(reason);
                }
                break;
            }
            Step::Read(Some(Ok(message))) => message,
        };
        heard = Instant::now();
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
        if draining.is_some() {
            // Not run, and said so: the client may send it again to the next server.
            let e = Error::Unavailable("server restarting; send it again after reconnecting".into());
            outbox.push(Outbound::Frame(protocol::error_reply(&request.id, &e)));
            continue;
        }
        // The order of writes is fixed here, in arrival order, not by
        // which task runs first (see `crate::write_order`).
        let ticket = session.ticket(app.router.is_ordered(&request));
        let (app, session) = (app.clone(), session.clone());
        let span = tracing::info_span!("request", route = %request.route, verb = %request.verb, id = %request.id);
        requests.spawn(
            async move {
                let started = Instant::now();
                let _turn = ticket.turn().await;
                let (route, verb) = (request.route.clone(), request.verb.clone());
                let (frame, code) = answer(&app.router, &session, request).await;
                if let Some(frame) = frame {
                    session.reply(frame);
                }
                app.metrics.request(&app.router, &route, &verb, code, started.elapsed());
            }
            .instrument(span),
        );
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
    outbox.discard();
    outbox.release(batch_bytes);
    let reason = outbox.close_reason().filter(|_| server_closed);
    app.metrics.connection_closed(reason.as_ref().map_or(CloseReason::NORMAL, |r| r.code));
    if let Some(reason) = reason {
        socket.close(&reason);
    }
    close(&mut socket, server_closed).await;
}

/// Finishes a closing socket: writes what it holds (the close frame last)
/// and, when the server closed first, keeps reading (and discarding) until
/// the client answers: a socket dropped with unread input is reset, and a
/// reset makes the client's system discard what it has not read yet, our
/// close frame included (a slow consumer would see a bare EOF instead of
/// 4008). When the client closed first, or broke the protocol, there is
/// nothing more worth reading.
async fn close(socket: &mut Socket<Io>, server_closed: bool) {
    let write_by = tokio::time::sleep(CLOSE_GRACE);
    let drain_by = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(write_by, drain_by);
    let mut written = false;
    std::future::poll_fn(|cx| {
        if !written {
            written = socket.poll_write(cx).is_ready() || write_by.as_mut().poll(cx).is_ready();
        }
        while server_closed && !socket.read_done() {
            match socket.poll_read(cx) {
                Poll::Ready(_) => {}
                Poll::Pending => break,
            }
        }
        let done = written && (!server_closed || socket.read_done());
        if done || drain_by.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
    let _ = tokio::time::timeout(CLOSE_GRACE, std::future::poll_fn(|cx| socket.poll_shutdown(cx))).await;
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
    answer(router, session, request).await.0
}

/// [`run_request`], with the reply's code (`"ok"`, or the error's) for metrics.
async fn answer(router: &Router, session: &Session, request: Request) -> (Option<String>, &'static str) {
    let id = request.id.clone();
    let outcome = std::panic::AssertUnwindSafe(router.handle(session, request)).catch_unwind().await;
    let (frame, code) = match outcome {
        Ok(Ok(Some(data))) => (protocol::ok_reply(&id, data), "ok"),
        Ok(Ok(None)) => return (None, "ok"),
        Ok(Err(e)) => {
            match &e {
                Error::Internal(detail) => tracing::error!(%detail, "request failed"),
                Error::Unavailable(detail) => tracing::warn!(%detail, "request failed; the client may retry"),
                _ => {}
            }
            (protocol::error_reply(&id, &e), e.code())
        }
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "request handler panicked");
            let e = Error::Internal("handler panicked".into());
            (protocol::error_reply(&id, &e), e.code())
        }
    };
    let limit = session.max_reply_bytes();
    if frame.len() > limit {
        let e = Error::ReplyTooLarge { size: frame.len(), limit };
        return (Some(protocol::error_reply(&id, &e)), e.code());
    }
    (Some(frame), code)
}
