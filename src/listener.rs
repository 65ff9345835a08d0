//! Accepting TCP connections and speaking HTTP/1.1 on them until they
//! upgrade to a WebSocket: wyrmhole's own accept loop, because warp's gives
//! no hold on what an unfinished request may cost.
//!
//! A connection is *pending* from its accept until it upgrades or closes.
//! Pending connections are bounded three ways: a deadline for each request
//! head, a cap on how large a head may grow, and a cap on how many may be
//! pending at once. Every accepted socket gets `TCP_NODELAY`, so a reply
//! followed by an event on one socket is not held back by Nagle's
//! algorithm waiting for the client's delayed ACK (~40 ms).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::origin::Origins;

/// Settings of the HTTP layer in front of the WebSocket: which pages may
/// connect, and what a connection may cost before it has upgraded. Set with
/// [`crate::Builder::http_config`]; the defaults suit an app on the open
/// internet.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Which web pages may open a socket (checked at the upgrade, before
    /// authentication; refused with HTTP 403). Default:
    /// [`Origins::same_origin`]. [`crate::Builder::allowed_origins`] adds to it.
    pub origins: Origins,
    /// How long a client has to send a complete request head (request line
    /// and headers): from the accept for the first request, from the end of
    /// the previous response for the next one on a kept-alive connection.
    /// A client that takes longer is disconnected without a response.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// The largest request head accepted; a larger one is answered with
    /// HTTP 431. It also bounds the memory an unfinished head can hold.
    /// Default 32 KiB (at least 8 KiB is used).
    pub max_request_head_bytes: usize,
    /// Connections accepted but not yet upgraded (or closed) at once. When
    /// they are this many, the oldest one that has been pending for at
    /// least [`HttpConfig::evict_pending_after`] is closed to make room
    /// for the next; when none has, accepting waits (new connections queue
    /// in the kernel's backlog) until one upgrades or closes. Connections
    /// serving an app's own routes count too. Default 1024.
    pub max_pending_connections: usize,
    /// How long a connection must have been pending before it may be closed
    /// to make room (see [`HttpConfig::max_pending_connections`]), so that
    /// in a burst of reconnects no handshake in progress is cut. Also what
    /// running out of file descriptors does: it closes one such connection.
    /// Default 1 s.
    pub evict_pending_after: Duration,
    /// Whether accepted sockets get `TCP_NODELAY`. Default `true`: with it
    /// off, an event written right after a reply can wait ~40 ms for the
    /// client's delayed ACK.
    pub tcp_nodelay: bool,
    /// Where the Prometheus metrics are served (`"/metrics"`), or `None`
    /// (the default): nowhere. Anyone who can reach the server's port can
    /// read them, so keep the path off the public internet (a proxy that
    /// does not forward it, or a firewall). Also set by
    /// [`crate::Builder::metrics_path`]. See `docs/operations.md`.
    pub metrics_path: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            origins: Origins::default(),
            header_read_timeout: Duration::from_secs(10),
            max_request_head_bytes: 32 * 1024,
            max_pending_connections: 1024,
            evict_pending_after: Duration::from_secs(1),
            tcp_nodelay: true,
            metrics_path: None,
        }
    }
}

/// The client's address, put into every request's extensions (warp's
/// `warp::addr::remote()` sees only what warp's own server puts there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// The pending connections, oldest first, each with the sender whose drop
/// closes it.
#[derive(Debug)]
pub(crate) struct Pending {
    cap: usize,
    evict_after: Duration,
    state: Mutex<PendingState>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct PendingState {
    next_id: u64,
    open: BTreeMap<u64, (Instant, oneshot::Sender<()>)>,
}

/// A connection's place among the pending; leaving it (drop) frees the place.
pub(crate) struct Slot {
    pending: Arc<Pending>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.pending.state.lock().open.remove(&self.id).is_some() {
            self.pending.freed.notify_one();
        }
    }
}

impl Pending {
    pub(crate) fn new(config: &HttpConfig) -> Arc<Self> {
        Arc::new(Pending {
            cap: config.max_pending_connections.max(1),
            evict_after: config.evict_pending_after,
            state: Mutex::new(PendingState::default()),
            freed: Notify::new(),
        })
    }

    /// How many connections are pending.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Waits until there is room for one more, closing the oldest stale
    /// connection if that makes it.
    async fn make_room(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock();
                if state.open.len() < self.cap {
                    return;
                }
                match self.stale_wait(&mut state) {
                    None => return,
                    Some(wait) => wait,
                }
            };
            tokio::select! {
                _ = self.freed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Closes the oldest connection if it is stale, else says how long until
    /// it will be (`None`: one was closed, or there is none).
    fn stale_wait(&self, state: &mut PendingState) -> Option<Duration> {
        let (_, (since, _)) = state.open.first_key_value()?;
        let age = since.elapsed();
        if age >= self.evict_after {
            // Dropping the sender is what closes the connection.
            state.open.pop_first();
            tracing::debug!(pending = state.open.len(), "closed a stale pending connection to make room");
            return None;
        }
        Some(self.evict_after.saturating_sub(age))
    }

    /// Closes the oldest pending connection if it is stale; true if one was closed.
    fn evict_stale(&self) -> bool {
        let mut state = self.state.lock();
        !state.open.is_empty() && self.stale_wait(&mut state).is_none()
    }

    /// Takes a place; the receiver fails when the connection must close.
    fn admit(self: &Arc<Self>) -> (Slot, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, (Instant::now(), tx));
        (Slot { pending: self.clone(), id }, rx)
    }

    /// Closes every pending connection (the server is going away).
    pub(crate) fn close_all(&self) {
        self.state.lock().open.clear();
    }
}

/// Accepts one connection and prepares its socket.
async fn accept(listener: &TcpListener, config: &HttpConfig) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if config.tcp_nodelay {
        if let Err(e) = stream.set_nodelay(true) {
            // Only a socket already reset by its peer fails here; it will fail its first read too.
            tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
        }
    }
    Ok((stream, peer))
}

/// Serves `routes` on `listener` until `stop` fires (or its sender is
/// dropped); then stops accepting and lets pending connections finish the
/// request they are on.
pub(crate) async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    config: Arc<HttpConfig>,
    pending: Arc<Pending>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_request_head_bytes.max(8192))
        .max_header_size(config.max_request_head_bytes);
    let service = TowerToHyperService::new(warp::service(routes));
    let (draining_tx, draining) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = async {
                pending.make_room().await;
                accept(&listener, &config).await
            } => accepted,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e, &pending).await;
                continue;
            }
        };
        let (slot, evicted) = pending.admit();
        let service = service.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            hyper::service::Service::call(&service, request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut draining = draining.clone();
        // Runs until the connection upgrades (hyper then hands the socket
        // to the upgrade's task), closes, or is closed to make room.
        tokio::spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let mut evicted = evicted;
            let mut drained = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %peer, "http connection ended");
                        }
                        return;
                    }
                    _ = &mut evicted => return,
                    _ = draining.wait_for(|d| *d), if !drained => {
                        drained = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    draining_tx.send_replace(true);
}

/// A failed accept: a connection reset before it was accepted is nothing;
/// running out of descriptors (or memory) closes a stale pending
/// connection, or, if there is none, pauses accepting for a moment instead
/// of spinning.
async fn accept_failed(e: std::io::Error, pending: &Pending) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    if pending.evict_stale() {
        tracing::warn!(error = %e, "accept failed; closed a stale pending connection");
    } else {
        tracing::error!(error = %e, "accept failed; pausing accepts for 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for nodelay in [true, false] {
            let config = HttpConfig { tcp_nodelay: nodelay, ..HttpConfig::default() };
            let _client = TcpStream::connect(addr).await.unwrap();
            let (accepted, _) = accept(&listener, &config).await.unwrap();
            assert_eq!(accepted.nodelay().unwrap(), nodelay);
        }
    }

    #[tokio::test]
    async fn full_pending_set_closes_the_oldest_stale_connection() {
        let config = HttpConfig {
            max_pending_connections: 2,
            evict_pending_after: Duration::from_millis(50),
            ..HttpConfig::default()
        };
        let pending = Pending::new(&config);
        let (_a, mut a_closed) = pending.admit();
        let (_b, mut b_closed) = pending.admit();
        // Full: making room waits until `a` is stale, then closes it (and only it).
        let started = Instant::now();
        pending.make_room().await;
        assert!(started.elapsed() >= Duration::from_millis(45), "a connection pending for less was closed");
        assert_eq!(a_closed.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(b_closed.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(pending.len(), 1);
    }

    #[tokio::test]
    async fn a_freed_place_wakes_the_accept_loop() {
        let config = HttpConfig {
            max_pending_connections: 1,
            evict_pending_after: Duration::from_secs(3600),
            ..HttpConfig::default()
        };
        let pending = Pending::new(&config);
        let (slot, _closed) = pending.admit();
        let waiter = tokio::spawn({
            let pending = pending.clone();
            async move { pending.make_room().await }
        });
        tokio::task::yield_now().await;
        drop(slot);
        // Without the wake-up it would wait an hour for the connection to go stale.
        tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("not woken").unwrap();
        assert_eq!(pending.len(), 0);
    }
}
