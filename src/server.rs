//! Putting a [`Router`] on warp: the WebSocket endpoint at `/ws`, and a
//! small server handle for apps and tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::UpgradeRequest;
use crate::router::{Router, RouterCore};

/// The warp filter serving `GET /ws` (the WebSocket endpoint). Combine it
/// with the app's own filters.
pub fn filter(router: Router) -> BoxedFilter<(Response,)> {
    let core = router.into_core();
    let core = warp::any().map(move || core.clone());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("ws")
        .and(warp::path::end())
        .and(warp::ws())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(core)
        .map(|ws: warp::ws::Ws, headers, query: String, core: Arc<RouterCore>| {
            let query: HashMap<String, String> = url_decode_pairs(&query).into_iter().collect();
            match core.authenticate(&UpgradeRequest::new(headers, query)) {
                Err(e) => warp::reply::with_status(e.to_string(), StatusCode::UNAUTHORIZED).into_response(),
                Ok(identity) => {
                    let config = &core.config;
                    let limit = config.hard_frame_bytes.max(config.max_frame_bytes);
                    let core = core.clone();
                    ws.max_message_size(limit)
                        .max_frame_size(limit)
                        .on_upgrade(move |socket| crate::connection::serve(socket, core, identity))
                        .into_response()
                }
            }
        })
        .boxed()
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

    /// Stops accepting and ends the server.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves `router` at `/ws`, plus any extra warp filter the
/// app adds with [`serve_with`].
pub async fn serve(router: Router, addr: impl Into<SocketAddr>) -> std::io::Result<Server> {
    serve_filter(filter(router), addr).await
}

/// Like [`serve`], with the app's own routes tried after wyrmhole's.
pub async fn serve_with(
    router: Router,
    extra: BoxedFilter<(Response,)>,
    addr: impl Into<SocketAddr>,
) -> std::io::Result<Server> {
    serve_filter(filter(router).or(extra).unify().boxed(), addr).await
}

async fn serve_filter(filter: BoxedFilter<(Response,)>, addr: impl Into<SocketAddr>) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr.into()).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        warp::serve(filter)
            .incoming(listener)
            .graceful(async {
                let _ = rx.await;
            })
            .run(),
    );
    Ok(Server { addr, shutdown: Some(tx), task })
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
}
