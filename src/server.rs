//! Putting an app on warp: the WebSocket endpoint at `/ws`, the bundled JS
//! client at `/wyrmhole.js` (so a plain HTML page needs no build step), and
//! a small server handle for apps and tests.
//!
//! An upgrade is checked in this order: an allowed origin (else 403, so the
//! app's authenticate hook never sees a cookie a foreign page sent),
//! authentication (else 401), then a well-formed WebSocket handshake (else
//! 400: a plain GET tells a browser's client whether its token is refused).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::UpgradeRequest;
use crate::connection::AppCore;
use crate::cors;
use crate::listener::{self, HttpConfig, PeerAddr, Pending};
use crate::origin::Origins;
use crate::socket::Socket;

/// The client's address, for the connection caps per address.
type Remote = Option<SocketAddr>;

/// `GET /ws` (the WebSocket endpoint) and the JS client.
pub(crate) fn filter(core: Arc<AppCore>, http: Arc<HttpConfig>) -> BoxedFilter<(Response,)> {
    let core_for_ops = core.clone();
    let core = warp::any().map(move || core.clone());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let socket = warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(warp::ext::optional::<OnUpgrade>())
        .and(remote_addr())
        .and(core)
        .map(|headers: HeaderMap, query: String, upgrade: Option<OnUpgrade>, remote: Remote, core: Arc<AppCore>| {
            let accept = websocket_key(&headers).map(|key| derive_accept_key(key.as_bytes()));
            let query: HashMap<String, String> = url_decode_pairs(&query).into_iter().collect();
            let handshake = (accept, upgrade);
            // Authenticated even without a handshake: a browser cannot see
            // why its upgrade failed, so its client asks with a plain GET
            // (401 and the reason, or 400 when the credentials are fine).
            let identity = match core.router.authenticate(&UpgradeRequest::new(headers, query)) {
                Ok(identity) => identity,
                Err(e) => return warp::reply::with_status(e.to_string(), StatusCode::UNAUTHORIZED).into_response(),
            };
            if core.stop.stopping() {
                // Draining: a kept-alive HTTP connection may still ask; the client goes elsewhere.
                core.metrics.refuse_upgrade();
                return warp::reply::with_status("server draining", StatusCode::SERVICE_UNAVAILABLE).into_response();
            }
            let (Some(accept), Some(upgrade)) = handshake else {
                return warp::reply::with_status("expected a WebSocket upgrade", StatusCode::BAD_REQUEST)
                    .into_response();
            };
            let admission = match core.admit(&identity, remote) {
                Ok(admission) => admission,
                Err(e) => {
                    core.metrics.refuse_upgrade();
                    return warp::reply::with_status(e.to_string(), StatusCode::TOO_MANY_REQUESTS).into_response();
                }
            };
            let span = tracing::info_span!(
                "connection",
                conn = tracing::field::Empty,
                user = identity.user_id(),
                remote = remote.map(tracing::field::display),
            );
            tokio::spawn(
                async move {
                    match upgrade.await {
                        Ok(upgraded) => {
                            let config = socket_config(&core.config);
                            let socket = Socket::new(TokioIo::new(upgraded), config, core.config.write_buffer_bytes);
                            crate::connection::serve(socket, core, identity, admission).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                    }
                }
                .instrument(span),
            );
            let mut response = Response::new(Default::default());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert("connection", HeaderValue::from_static("upgrade"));
            headers.insert("upgrade", HeaderValue::from_static("websocket"));
            headers.insert("sec-websocket-accept", HeaderValue::from_str(&accept).expect("base64 is a valid header"));
            response
        });
    let files = client_files(http.origins.clone());
    let ops = crate::health::filter(core_for_ops, http.metrics_path.clone());
    foreign_origin(http).or(socket).unify().or(files).unify().or(ops).unify().boxed()
}

/// `GET /ws` from a page whose origin is not allowed: 403, before the
/// handshake is looked at or the authenticate hook sees a cookie. Any other
/// request is passed on (rejected as not found).
fn foreign_origin(http: Arc<HttpConfig>) -> BoxedFilter<(Response,)> {
    warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(remote_addr())
        .and_then(move |headers: HeaderMap, peer: Option<SocketAddr>| {
            let allowed = http.origins.admits(&headers);
            async move {
                if allowed {
                    return Err(warp::reject::not_found());
                }
                tracing::debug!(origin = ?headers.get("origin"), ?peer, "upgrade refused: origin not allowed");
                Ok(warp::reply::with_status("origin not allowed", StatusCode::FORBIDDEN).into_response())
            }
        })
        .boxed()
}

/// The client's address, in an app's own warp routes too: served by
/// [`crate::Wyrmhole::serve`] (whose accept loop is not warp's, so
/// `warp::addr::remote()` sees nothing there) or by `warp::serve`.
pub fn remote_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>()
        .and(warp::addr::remote())
        .map(|ours: Option<PeerAddr>, warps: Option<SocketAddr>| ours.map(|PeerAddr(addr)| addr).or(warps))
}

/// The `Sec-WebSocket-Key` of a well-formed WebSocket upgrade request (RFC 6455 §4.2.1).
fn websocket_key(headers: &HeaderMap) -> Option<&str> {
    let has = |name: &str, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let version = headers.get("sec-websocket-version").and_then(|v| v.to_str().ok());
    (has("connection", "upgrade") && has("upgrade", "websocket") && version == Some("13"))
        .then(|| headers.get("sec-websocket-key")?.to_str().ok())
        .flatten()
}

/// Small socket buffers: tungstenite's defaults (128 KiB each) would cost
/// that much memory per idle connection, since the read buffer is filled on
/// the first read.
fn socket_config(config: &crate::connection::ConnectionConfig) -> WebSocketConfig {
    let limit = config.hard_frame_bytes.max(config.max_frame_bytes);
    WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// The JS client's modules, embedded at build time.
const CLIENT_FILES: &[(&str, &str)] = &[
    ("wyrmhole.js", include_str!("../js-client/src/wyrmhole.js")),
    ("socket.js", include_str!("../js-client/src/socket.js")),
    ("request.js", include_str!("../js-client/src/request.js")),
    ("subscription.js", include_str!("../js-client/src/subscription.js")),
    ("live-collection.js", include_str!("../js-client/src/live-collection.js")),
    ("route.js", include_str!("../js-client/src/route.js")),
    ("presence.js", include_str!("../js-client/src/presence.js")),
    ("channel.js", include_str!("../js-client/src/channel.js")),
    ("outbox.js", include_str!("../js-client/src/outbox.js")),
    ("outbox-storage.js", include_str!("../js-client/src/outbox-storage.js")),
];

/// `GET /wyrmhole/<module>.js`, and `GET /wyrmhole.js`, which re-exports the
/// entry module so pages can `import { connect } from "/wyrmhole.js"`. Pages
/// of the origins the socket accepts may load them from another origin
/// (CORS, preflight included); see `crate::cors`.
fn client_files(origins: Origins) -> BoxedFilter<(Response,)> {
    fn javascript(body: &'static str) -> Response {
        let reply = warp::reply::with_header(body, "content-type", "text/javascript; charset=utf-8");
        warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
    }
    // `None`: `/wyrmhole.js`, which re-exports the entry module.
    let entry = warp::path("wyrmhole.js").and(warp::path::end()).map(|| None);
    let module = warp::path!("wyrmhole" / String).map(Some);
    let file = entry.or(module).unify();
    let get = {
        let origins = origins.clone();
        warp::get().and(file).and(warp::header::headers_cloned()).and_then(
            move |name: Option<String>, headers: HeaderMap| {
                let origins = origins.clone();
                async move {
                    let body = match name {
                        None => Some("export * from \"./wyrmhole/wyrmhole.js\";\n"),
                        Some(name) => CLIENT_FILES.iter().find(|(file, _)| *file == name).map(|(_, body)| *body),
                    };
                    // An explicit 404: a rejection here would be outranked by
                    // the preflight branch's and answered 405.
                    let reply = match body {
                        Some(body) => javascript(body),
                        None => warp::reply::with_status("no such client file", StatusCode::NOT_FOUND).into_response(),
                    };
                    Ok::<_, warp::Rejection>(cors::allow(&origins, &headers, reply))
                }
            },
        )
    };
    let preflight = file.and(cors::preflight(origins)).map(|_name: Option<String>, reply: Response| reply);
    get.or(preflight).unify().boxed()
}

/// `a=1&b=two%20words` → pairs, with `+` and `%XX` decoded.
fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                (b'+', ..) => out.push(b' '),
                (b, ..) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    core: Arc<AppCore>,
    pending: Arc<Pending>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The address it listens on (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL, `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Runs until the task ends (it does not end on its own).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Drains the server for a restart or deploy; then call
    /// [`Server::shutdown`] to end it. `/readyz` answers 503 at once and new
    /// upgrades are refused (503), while the listener still answers HTTP,
    /// so a load balancer sees the process leave rather than vanish. Every
    /// connection stops running requests, sends what it has queued and the
    /// replies of requests in progress, and closes with code 1012 ("service
    /// restart": the JS client reconnects at once, to the next of its
    /// URLs); a request that arrives meanwhile is answered `unavailable`
    /// without running. Presence members leave in the other processes. A connection
    /// still flushing at `deadline` is closed all the same (1012, what it
    /// had not sent dropped). Resolves once every connection has closed, or
    /// at the deadline; returns how many were still open then (0: all
    /// flushed in time).
    ///
    /// ```no_run
    /// # async fn f(server: wyrmhole::Server) {
    /// server.drain(std::time::Duration::from_secs(10)).await;
    /// server.shutdown().await;
    /// # }
    /// ```
    pub async fn drain(&self, deadline: std::time::Duration) -> usize {
        let started = tokio::time::Instant::now();
        self.core.stop.drain(started + deadline);
        self.core.router.live.presence.shut_down();
        while self.core.open_connections() > 0 && started.elapsed() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let left = self.core.open_connections();
        if left > 0 {
            tracing::warn!(left, "drain deadline passed; the connections still flushing are closed");
        }
        left
    }

    /// Stops accepting, closes every open socket with code 1001 ("server
    /// shutting down", so clients reconnect elsewhere or later), tells the
    /// other processes its presence members are gone, waits a
    /// moment for them to go, and ends the server; HTTP connections that
    /// have not upgraded are closed at the end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.core.stop.shut_down();
        // The other processes drop this one's presence members now, not
        // after the heartbeat timeout.
        self.core.router.live.presence.shut_down();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while self.core.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.task.abort();
        let _ = self.task.await;
        self.pending.close_all();
    }
}

/// Binds `addr` and serves the app, with `extra` routes tried after wyrmhole's.
pub(crate) async fn serve(
    core: Arc<AppCore>,
    http: Arc<HttpConfig>,
    extra: Option<BoxedFilter<(Response,)>>,
    addr: SocketAddr,
) -> std::io::Result<Server> {
    let routes = match extra {
        Some(extra) => filter(core.clone(), http.clone()).or(extra).unify().boxed(),
        None => filter(core.clone(), http.clone()),
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let pending = Pending::new(&http);
    let task = tokio::spawn(listener::run(listener, routes, http, pending.clone(), rx));
    Ok(Server { addr, core, pending, shutdown: Some(tx), task })
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_query_pairs() {
        let pairs = super::url_decode_pairs("token=a%2Bb+c&x&bad=%zz%4");
        assert_eq!(
            pairs,
            [("token".into(), "a+b c".into()), ("x".into(), String::new()), ("bad".into(), "%zz%4".into())]
        );
    }

    #[test]
    fn every_module_of_the_js_client_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js-client/src");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(super::CLIENT_FILES.iter().any(|(served, _)| *served == name), "{name} is not served");
        }
    }
}
