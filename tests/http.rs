//! The HTTP layer in front of the WebSocket, attacked over real TCP: foreign
//! pages borrowing a visitor's cookie (cross-site WebSocket hijacking),
//! half-sent requests pinning descriptors, oversized request heads.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::database::TestDb;
use common::{schema, Ping, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use warp::Filter;
use wyrmhole::{AuthError, Db, HttpConfig, Identity, Route, Server, Wyrmhole};

struct App {
    server: Server,
    _db: TestDb,
}

/// An app whose identity comes from `token()` (header, query or the
/// `wyrm_token` cookie), with a `ping.whoami` verb that tells who called,
/// and `GET /peer` (an app route) answering the client's address.
async fn start(http: HttpConfig) -> App {
    let (url, dir) = common::database::fresh();
    let db = Db::open(&url).unwrap();
    db.execute_batch(schema(&db)).await.unwrap();
    let peer = warp::path("peer")
        .and(wyrmhole::remote_addr())
        .map(|addr: Option<SocketAddr>| warp::reply::Reply::into_response(format!("{addr:?}")))
        .boxed();
    let server = Wyrmhole::builder(db)
        .route(Route::<Ping>::new().verb("whoami", |cx, _args| async move { Ok(json!(cx.identity.user_id())) }))
        .authenticate(|req| match req.token() {
            Some("reject") => Err(AuthError::new("bad token")),
            Some(t) => Ok(t.parse().map(Identity::user).unwrap_or_default()),
            None => Ok(Identity::anonymous()),
        })
        .allow_anonymous()
        .http_config(http)
        .build()
        .unwrap()
        .serve_with(peer, ([127, 0, 0, 1], 0))
        .await
        .unwrap();
    App { server, _db: dir }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket handshake with these headers: the socket, or the refusal's
/// HTTP status and body.
async fn handshake(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().append(name, value.parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("no answer to the handshake")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

/// Who the server thinks this socket is.
async fn whoami(ws: &mut Ws) -> Value {
    ws.send(Message::text(json!({"id": 1, "route": "ping", "verb": "whoami"}).to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("no reply").expect("closed").unwrap();
        if let Message::Text(text) = frame {
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(reply["ok"], true, "{reply}");
            return reply["data"].clone();
        }
    }
}

#[tokio::test]
async fn foreign_pages_cannot_use_a_visitors_cookie() {
    let app = start(HttpConfig::default()).await;
    let url = app.server.ws_url();
    let own = format!("http://{}", app.server.addr());
    let cookie = ("cookie", "theme=dark; wyrm_token=7");

    for origin in ["https://evil.example", "null", &format!("http://{}.evil.example", app.server.addr().ip())] {
        let refused = handshake(&url, &[cookie, ("origin", origin)]).await.err();
        assert_eq!(refused, Some((403, "origin not allowed".into())), "Origin: {origin}");
    }
    // The origin is checked before the authenticate hook (whose refusal is a 401).
    let refused = handshake(&url, &[("cookie", "wyrm_token=reject"), ("origin", "https://evil.example")]).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(403));
    let refused = handshake(&url, &[("cookie", "wyrm_token=reject"), ("origin", &own)]).await;
    assert_eq!(refused.err(), Some((401, "authentication failed: bad token".into())));
    // A token sent explicitly from a foreign page is refused as well: the
    // check does not guess which credential the hook will read.
    let refused = handshake(&format!("{url}?token=7"), &[("origin", "https://evil.example")]).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(403));

    // The server's own pages, and clients that are not browsers, get in as the cookie says.
    let mut same_origin = handshake(&url, &[cookie, ("origin", &own)]).await.expect("same origin");
    assert_eq!(whoami(&mut same_origin).await, json!(7));
    let mut no_origin = handshake(&url, &[cookie]).await.expect("no Origin header");
    assert_eq!(whoami(&mut no_origin).await, json!(7));
}

#[tokio::test]
async fn listed_origins_are_allowed() {
    let app = start(HttpConfig {
        origins: wyrmhole::Origins::same_origin().allow("https://app.example").allow("null"),
        ..HttpConfig::default()
    })
    .await;
    let url = app.server.ws_url();
    let cookie = ("cookie", "wyrm_token=7");
    let mut listed = handshake(&url, &[cookie, ("origin", "https://app.example")]).await.expect("listed origin");
    assert_eq!(whoami(&mut listed).await, json!(7));
    handshake(&url, &[cookie, ("origin", "null")]).await.expect("null, listed");
    let refused = handshake(&url, &[cookie, ("origin", "http://app.example")]).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(403), "another scheme is another origin");
    handshake(&url, &[cookie, ("origin", &format!("http://{}", app.server.addr()))]).await.expect("same origin");
}

/// Opens a connection that sends half a request line and stalls.
async fn stalled(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ws HT").await.unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await.expect("the server kept the connection");
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    got
}

#[tokio::test]
async fn half_sent_requests_time_out_and_do_not_lock_clients_out() {
    let app = start(HttpConfig { header_read_timeout: Duration::from_millis(500), ..HttpConfig::default() }).await;
    let mut stalled_ones = Vec::new();
    for _ in 0..200 {
        stalled_ones.push(stalled(app.server.addr()).await);
    }
    // A real client gets in and works meanwhile.
    let mut ws = handshake(&app.server.ws_url(), &[("cookie", "wyrm_token=3")]).await.expect("a real client");
    assert_eq!(whoami(&mut ws).await, json!(3));
    // Each stalled one is closed, without a response.
    for s in &mut stalled_ones {
        assert_eq!(read_to_close(s).await, b"");
    }
    // The upgraded socket has no header deadline.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(whoami(&mut ws).await, json!(3));
}

#[tokio::test]
async fn a_full_set_of_pending_connections_makes_room_from_the_oldest() {
    let app = start(HttpConfig {
        max_pending_connections: 8,
        evict_pending_after: Duration::from_millis(200),
        header_read_timeout: Duration::from_secs(600),
        ..HttpConfig::default()
    })
    .await;
    let mut stalled_ones = Vec::new();
    for _ in 0..8 {
        stalled_ones.push(stalled(app.server.addr()).await);
    }
    // The ninth waits until the oldest has been pending 200 ms, which is then closed.
    let mut ws = handshake(&app.server.ws_url(), &[]).await.expect("a real client");
    assert_eq!(whoami(&mut ws).await, Value::Null);
    assert_eq!(read_to_close(&mut stalled_ones[0]).await, b"");
    // The others stay: a newer one still answers a completed request.
    let last = stalled_ones.last_mut().unwrap();
    last.write_all(b"TP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let response = String::from_utf8(read_to_close(last).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let app = start(HttpConfig { max_request_head_bytes: 16 * 1024, ..HttpConfig::default() }).await;
    let mut s = TcpStream::connect(app.server.addr()).await.unwrap();
    let request = format!("GET /ws HTTP/1.1\r\nhost: x\r\ncookie: {}\r\n\r\n", "a".repeat(20 * 1024));
    s.write_all(request.as_bytes()).await.unwrap();
    let response = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    // A cookie that fits is fine.
    let mut ws = handshake(&app.server.ws_url(), &[("cookie", &format!("pad={}; wyrm_token=5", "a".repeat(8 * 1024)))])
        .await
        .expect("a head under the limit");
    assert_eq!(whoami(&mut ws).await, json!(5));
}

#[tokio::test]
async fn app_routes_see_the_client_address() {
    let app = start(HttpConfig::default()).await;
    let mut s = TcpStream::connect(app.server.addr()).await.unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let response = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert!(response.ends_with(&format!("Some({local})")), "{response}");
}

#[tokio::test]
async fn shutdown_closes_connections_that_have_not_upgraded() {
    let app = start(HttpConfig::default()).await;
    let mut s = stalled(app.server.addr()).await;
    let mut ws = handshake(&app.server.ws_url(), &[]).await.unwrap();
    whoami(&mut ws).await;
    app.server.shutdown().await;
    assert_eq!(read_to_close(&mut s).await, b"");
}

/// `METHOD path` with these headers over raw TCP: the whole response.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    s.write_all(format!("{head}\r\n").as_bytes()).await.unwrap();
    String::from_utf8(read_to_close(&mut s).await).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn client_files_are_shared_with_the_origins_the_socket_accepts() {
    let app = start(HttpConfig {
        origins: wyrmhole::Origins::same_origin().allow("https://app.example"),
        ..HttpConfig::default()
    })
    .await;
    let addr = app.server.addr();
    for path in ["/wyrmhole.js", "/wyrmhole/socket.js"] {
        let allowed = request(addr, "GET", path, &[("origin", "https://app.example")]).await;
        assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
        assert!(allowed.contains("access-control-allow-origin: https://app.example\r\n"), "{allowed}");
        assert!(allowed.contains("vary: origin"), "{allowed}");
        let foreign = request(addr, "GET", path, &[("origin", "https://evil.example")]).await;
        assert!(foreign.starts_with("http/1.1 200"), "the files are public: {foreign}");
        assert!(!foreign.contains("access-control-allow-origin"), "a foreign page may not read them: {foreign}");
        let own = format!("http://{addr}");
        let same = request(addr, "GET", path, &[("origin", &own)]).await;
        assert!(same.contains(&format!("access-control-allow-origin: {own}\r\n")), "{same}");
    }

    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "x-test"),
    ];
    let allowed = request(addr, "OPTIONS", "/wyrmhole.js", &preflight).await;
    assert!(allowed.starts_with("http/1.1 204"), "{allowed}");
    assert!(allowed.contains("access-control-allow-origin: https://app.example\r\n"), "{allowed}");
    assert!(allowed.contains("access-control-allow-methods: get, options"), "{allowed}");
    assert!(allowed.contains("access-control-allow-headers: x-test"), "{allowed}");
    let foreign = request(
        addr,
        "OPTIONS",
        "/wyrmhole/route.js",
        &[("origin", "https://evil.example"), ("access-control-request-method", "GET")],
    )
    .await;
    assert!(foreign.starts_with("http/1.1 403"), "{foreign}");
    assert!(!foreign.contains("access-control-allow-origin"), "{foreign}");
    let missing = request(addr, "GET", "/wyrmhole/nope.js", &[("origin", "https://app.example")]).await;
    assert!(missing.starts_with("http/1.1 404"), "{missing}");
}
