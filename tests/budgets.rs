//! Budgets per connection and per identity, over real sockets: each bound,
//! when exceeded, gets its structured error or close code, for that client
//! alone, while another client is served at the same moment.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{self, Message};
use wyrmhole::{ConnectionConfig, Db, Error, Identity, Limits, Route, Wyrmhole};

/// Holds database connections until the test opens it, counting holders.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    holding: AtomicUsize,
    most: AtomicUsize,
    /// The most holders at once per tag (`args.tag`: which connection).
    most_per_tag: Mutex<std::collections::HashMap<String, (usize, usize)>>,
}

impl Gate {
    /// Runs on a blocking thread with a pooled connection checked out.
    fn hold(&self, tag: &str) {
        let now = self.holding.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        {
            let mut tags = self.most_per_tag.lock().unwrap();
            let (current, most) = tags.entry(tag.to_owned()).or_default();
            *current += 1;
            *most = (*most).max(*current);
        }
        // Bounded, so a failing test ends instead of waiting for its gate.
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_timeout_while(open, Duration::from_secs(60), |open| !*open).unwrap());
        self.most_per_tag.lock().unwrap().get_mut(tag).unwrap().0 -= 1;
        self.holding.fetch_sub(1, Ordering::SeqCst);
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Opens the gate when dropped: when a test fails before it does.
    fn opened_on_drop(self: &Arc<Self>) -> impl Drop {
        struct Release(Arc<Gate>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        Release(self.clone())
    }

    fn most_for(&self, tag: &str) -> usize {
        self.most_per_tag.lock().unwrap().get(tag).map_or(0, |(_, most)| *most)
    }

    /// Waits (up to 20 s) until exactly `n` requests hold a connection.
    async fn wait_for_holders(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.holding.load(Ordering::SeqCst) != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} holders, expected {n}",
                self.holding.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The test routes with two extra verbs on `todo-item`: `hold` (keeps a
/// read connection until the gate opens) and `big` (answers `n` bytes).
async fn start(config: ConnectionConfig, gate: Arc<Gate>) -> TestServer {
    let (url, dir) = database::fresh();
    let db = Db::open(&url).unwrap();
    db.execute_batch(schema(&db)).await.unwrap();
    let app = Wyrmhole::builder(db.clone())
        .route(Route::<Ping>::new())
        .route(
            Route::<TodoItem>::new()
                .limits(Limits {
                    max_order_by: 16,
                    max_filter_terms: 64,
                    max_filter_bytes: 16 * 1024,
                    ..Limits::default()
                })
                .verb("hold", move |cx, args| {
                    let gate = gate.clone();
                    async move {
                        let tag = args["tag"].as_str().unwrap_or_default().to_owned();
                        cx.db
                            .read(move |_conn| {
                                gate.hold(&tag);
                                Ok(())
                            })
                            .await?;
                        Ok(json!("held"))
                    }
                })
                .verb("big", |_cx, args| async move {
                    let n = args["n"].as_u64().ok_or_else(|| Error::bad_arg("n", "is required"))?;
                    Ok(json!("b".repeat(n as usize)))
                }),
        )
        .authenticate(|req| Ok(req.token().and_then(|t| t.parse::<i64>().ok()).map(Identity::user).unwrap_or_default()))
        .allow_anonymous()
        .config(config)
        .build()
        .unwrap();
    let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
    TestServer { server, app, db, db_url: url, _dir: dir }
}

/// Rows of about `bytes` each in list `list`.
async fn seed(server: &TestServer, list: i32, rows: usize, bytes: usize) {
    let text = "t".repeat(bytes);
    server
        .db
        .write(move |tx| {
            for i in 0..rows {
                tx.insert::<TodoItem>(&json!({"list_id": list, "text": format!("{i} {text}"), "done": false}))?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
}

fn request(id: u64, verb: &str, args: Value) -> String {
    json!({"id": id, "route": "todo-item", "verb": verb, "args": args}).to_string()
}

/// Sends requests without reading anything.
async fn pipeline(c: &mut Client, frames: impl IntoIterator<Item = String>) {
    let send = async {
        for frame in frames {
            c.ws.feed(Message::text(frame)).await.unwrap();
        }
        c.ws.flush().await.unwrap();
    };
    tokio::time::timeout(WAIT, send).await.expect("the server stopped reading");
}

/// Reads every frame until the server closes: the replies, and the close
/// code and reason (`None` for a connection that ended without one).
async fn read_until_close(ws: &mut Ws) -> (Vec<Value>, Option<(u16, String)>) {
    let mut replies = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("neither a frame nor a close");
        match next {
            Some(Ok(Message::Text(t))) => replies.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                if code.is_none() {
                    eprintln!("a close frame without a code after {} replies", replies.len());
                }
                return (replies, code);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                eprintln!("read error after {} replies: {e}", replies.len());
                return (replies, None);
            }
            None => return (replies, None),
        }
    }
}

/// No rate limits: tests of other budgets send many requests.
fn unlimited() -> ConnectionConfig {
    ConnectionConfig { requests_per_second: 0, identity_requests_per_second: 0, ..test_config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_pipelining_large_reads_without_reading_are_cut_with_4008_within_the_byte_budget() {
    // The attack, scaled down: replies of ~100 KB against a budget
    // of 256 KiB, far more of them than the socket buffers hold.
    const BUDGET: usize = 256 * 1024;
    let config = ConnectionConfig { queue_bytes: BUDGET, max_reply_bytes: 128 * 1024, ..unlimited() };
    let server = start(config, Arc::default()).await;
    seed(&server, 1, 60, 1500).await;
    let mut victim = server.client_as(99).await;
    for round in 0..2 {
        let mut attackers = Vec::new();
        for _ in 0..3 {
            let mut c = tokio::time::timeout(WAIT, server.client()).await.expect("no connection");
            pipeline(&mut c, (0..400).map(|i| request(i, "get_list", json!({"limit": 60})))).await;
            attackers.push(c);
        }
        // Meanwhile another client is served as usual.
        let rows = victim.ok("todo-item", "get_list", json!({"limit": 5})).await;
        assert_eq!(rows["rows"].as_array().unwrap().len(), 5);
        let reads = attackers.into_iter().map(|mut c| tokio::spawn(async move { read_until_close(&mut c.ws).await }));
        for read in reads {
            let (replies, close) = tokio::time::timeout(Duration::from_secs(60), read).await.expect("hung").unwrap();
            assert!(replies.iter().all(|r| r["ok"] == true), "round {round}: only whole replies arrive");
            assert!(replies.len() < 400, "round {round}: the client was cut before all its replies");
            let (code, reason) = close.unwrap_or_else(|| panic!("round {round}: EOF without a close frame"));
            assert_eq!(code, 4008, "round {round}: {reason}");
            assert!(reason.contains(&format!("{BUDGET} bytes")), "{reason}");
        }
        let peak = server.app.outbox_peak_bytes();
        assert!(peak <= BUDGET, "an outbox held {peak} bytes, over its budget of {BUDGET}");
        assert!(peak > 128 * 1024, "the attack did fill the queue ({peak} bytes)");
    }
    victim.ok("todo-item", "get_list", json!({"limit": 5})).await;
}

#[tokio::test]
async fn replies_over_the_size_bound_are_refused_and_a_refused_subscribe_leaves_nothing() {
    const LIMIT: usize = 32 * 1024;
    let config = ConnectionConfig { max_reply_bytes: LIMIT, ..unlimited() };
    let server = start(config, Arc::default()).await;
    seed(&server, 1, 40, 1500).await;
    let mut other = server.client().await;
    let watched = other.ok("todo-item", "subscribe", json!({"filter": {"list_id": 2}})).await;
    let mut c = server.client().await;

    let e = c.err("todo-item", "get_list", json!({"limit": 40})).await;
    assert_eq!(e["code"], "reply_too_large", "{e}");
    assert_eq!(e["limit"], LIMIT);
    assert!(e["size"].as_u64().unwrap() > LIMIT as u64, "{e}");
    assert!(e["message"].as_str().unwrap().contains("smaller `limit`"), "{e}");
    assert_eq!(c.ok("todo-item", "get_list", json!({"limit": 10})).await["rows"].as_array().unwrap().len(), 10);
    assert_eq!(c.err("todo-item", "big", json!({"n": 40_000})).await["code"], "reply_too_large");
    assert_eq!(c.ok("todo-item", "big", json!({"n": 1000})).await.as_str().unwrap().len(), 1000);

    // A snapshot too large to send: refused, and no subscription stays.
    let e = c.err("todo-item", "subscribe", json!({})).await;
    assert_eq!(e["code"], "reply_too_large", "{e}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.app.stats("todo-item").subscriptions != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the refused subscription was not removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The other client's subscription kept working meanwhile, and a small
    // subscribe on this connection works.
    let small = c.ok("todo-item", "subscribe", json!({"filter": {"list_id": 2}})).await;
    server.insert_item(json!({"list_id": 2, "text": "two", "done": false})).await;
    server.insert_item(json!({"list_id": 1, "text": "one", "done": false})).await;
    let event = other.next_event().await;
    assert_eq!((&event["sub"], &event["data"]["text"]), (&watched["sub"], &json!("two")));
    let event = c.next_event().await;
    assert_eq!((&event["sub"], &event["seq"]), (&small["sub"], &json!(1)), "{event}");
    c.assert_no_event(&server).await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped_and_unsubscribing_frees_a_slot() {
    let config = ConnectionConfig { max_subscriptions: 3, ..unlimited() };
    let server = start(config, Arc::default()).await;
    let mut c = server.client().await;
    let mut subs = Vec::new();
    for list in 0..3 {
        subs.push(c.ok("todo-item", "subscribe", json!({"filter": {"list_id": list}})).await["sub"].clone());
    }
    let e = c.err("todo-item", "subscribe", json!({"filter": {"list_id": 9}})).await;
    assert_eq!((e["code"].as_str(), e["limit"].as_u64()), (Some("too_many_subscriptions"), Some(3)), "{e}");
    assert_eq!(c.err("todo-item", "resume", json!({"epoch": 1, "pos": 0})).await["code"], "cannot_resume");
    // Another connection has slots of its own at the same moment.
    let mut other = server.client().await;
    for list in 0..3 {
        other.ok("todo-item", "subscribe", json!({"filter": {"list_id": list}})).await;
    }
    c.ok("todo-item", "unsubscribe", json!({"sub": subs[0]})).await;
    let again = c.ok("todo-item", "subscribe", json!({"filter": {"list_id": 9}})).await;
    assert_eq!(c.err("todo-item", "subscribe", json!({})).await["code"], "too_many_subscriptions");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.app.stats("todo-item").subscriptions != 6 {
        assert!(tokio::time::Instant::now() < deadline, "refused subscriptions must not be registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.insert_item(json!({"list_id": 9, "text": "nine", "done": false})).await;
    assert_eq!(c.next_event().await["sub"], again["sub"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_and_an_identity_get_their_share_of_the_read_pool_and_others_are_served() {
    let config = ConnectionConfig { max_db_requests: Some(2), max_db_requests_per_identity: Some(3), ..unlimited() };
    let gate = Arc::new(Gate::default());
    let _release = gate.opened_on_drop();
    let server = start(config, gate.clone()).await;
    let item = server.insert_item(json!({"list_id": 1, "text": "x", "done": false})).await;
    let mut a = server.client_as(7).await;
    pipeline(&mut a, (0..8).map(|i| request(i, "hold", json!({"tag": "a"})))).await;
    gate.wait_for_holders(2).await;
    let mut b = server.client_as(7).await;
    pipeline(&mut b, (0..8).map(|i| request(i, "hold", json!({"tag": "b"})))).await;
    gate.wait_for_holders(3).await;
    // 13 of user 7's requests wait for their turn; user 8 is not starved.
    let mut victim = server.client_as(8).await;
    for _ in 0..5 {
        assert_eq!(victim.ok("todo-item", "get_single", json!({"id": item.id})).await["text"], "x");
        victim.ok("todo-item", "get_list", json!({"filter": {"text__icontains": "X"}})).await;
    }
    assert_eq!(gate.holding.load(Ordering::SeqCst), 3, "still only the identity's share");
    gate.release();
    for c in [&mut a, &mut b] {
        for _ in 0..8 {
            assert_eq!(c.next_reply().await["data"], "held");
        }
    }
    assert_eq!(gate.most.load(Ordering::SeqCst), 3, "never more than the identity's share at once");
    assert!(gate.most_for("a") <= 2 && gate.most_for("b") <= 2, "never more than a connection's share");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_checkout_timeout_answers_unavailable() {
    // Shares large enough to take the whole pool (8): what is left over
    // times out waiting for a connection (10 s), which is retryable.
    let config = ConnectionConfig { max_db_requests: Some(16), max_db_requests_per_identity: Some(16), ..unlimited() };
    let gate = Arc::new(Gate::default());
    let _release = gate.opened_on_drop();
    let server = start(config, gate.clone()).await;
    let mut c = server.client().await;
    pipeline(&mut c, (0..11).map(|i| request(i, "hold", json!({})))).await;
    gate.wait_for_holders(8).await;
    let mut refused = Vec::new();
    while refused.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(30), c.ws.next()).await.expect("no reply");
        if let Some(Ok(Message::Text(t))) = next {
            refused.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    for reply in &refused {
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains("retry"), "{reply}");
    }
    gate.release();
    for _ in 0..8 {
        assert_eq!(c.next_reply().await["data"], "held");
    }
}

#[tokio::test]
async fn requests_are_rate_limited_per_connection_and_per_identity_and_not_run() {
    let config = ConnectionConfig {
        requests_per_second: 1,
        request_burst: 10,
        identity_requests_per_second: 1,
        identity_request_burst: 12,
        ..test_config()
    };
    let server = start(config, Arc::default()).await;
    let create = |i: u64, who: &str| {
        request(
            i,
            "create",
            json!({"data": {"list_id": 1, "text": format!("{who} {i}"), "done": false, "priority": 0}}),
        )
    };
    // User 7's first connection: its burst of 10, within the identity's 12.
    let mut a = server.client_as(7).await;
    pipeline(&mut a, (0..10).map(|i| create(i, "a"))).await;
    // Its second connection has a burst of its own, but the identity has
    // (about) 2 left; user 8 and anonymous clients are not affected at all.
    let mut b = server.client_as(7).await;
    pipeline(&mut b, (0..10).map(|i| create(i, "b"))).await;
    let mut c = server.client_as(8).await;
    pipeline(&mut c, (0..10).map(|i| create(i, "c"))).await;
    let mut anonymous = server.client().await;
    for _ in 0..30 {
        anonymous.ws.send(Message::Ping(Default::default())).await.unwrap(); // pings are not requests
    }
    pipeline(&mut anonymous, (0..10).map(|i| create(i, "d"))).await;

    let mut outcomes = std::collections::BTreeMap::new();
    for (who, client) in [("a", &mut a), ("b", &mut b), ("c", &mut c), ("d", &mut anonymous)] {
        let mut limited = 0;
        for _ in 0..10 {
            let reply = client.next_reply().await;
            if reply["ok"] == false {
                let e = &reply["error"];
                assert_eq!(e["code"], "rate_limited", "{reply}");
                assert!(e["retry_after_ms"].as_u64().is_some_and(|ms| (1..=1000).contains(&ms)), "{reply}");
                assert!(reply["id"].is_u64(), "a limited request keeps its id: {reply}");
                limited += 1;
            }
        }
        outcomes.insert(who, limited);
    }
    assert_eq!((outcomes["a"], outcomes["c"], outcomes["d"]), (0, 0, 0), "{outcomes:?}");
    assert!(outcomes["b"] >= 4, "the identity's budget is shared: {outcomes:?}");
    // Refused requests did not run.
    let written = server.all_items().await.iter().filter(|i| i.text.starts_with('b')).count();
    assert_eq!(written, 10 - outcomes["b"]);
    // The connection's own bucket: past its burst, limited.
    pipeline(&mut c, (10..25).map(|i| create(i, "c"))).await;
    let mut limited = 0;
    for _ in 10..25 {
        limited += usize::from(c.next_reply().await["ok"] == false);
    }
    assert!(limited >= 8, "{limited} of 15 over the burst were limited");
}

#[tokio::test]
async fn connections_are_capped_per_identity_and_per_address_at_the_upgrade() {
    let config = ConnectionConfig { max_connections_per_identity: 2, max_connections_per_ip: 4, ..test_config() };
    let server = start(config, Arc::default()).await;
    let refused = |url: String| async move {
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                (response.status().as_u16(), body)
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    };
    let mut first = server.client_as(7).await;
    let _second = server.client_as(7).await;
    let (status, body) = refused(format!("{}?token=7", server.url())).await;
    assert_eq!(status, 429);
    assert!(body.contains("too many connections for this identity"), "{body}");
    // Another identity connects; the address now has 3, then 4.
    let mut other = server.client_as(8).await;
    let _anonymous = server.client().await;
    let (status, body) = refused(server.url()).await;
    assert_eq!(status, 429);
    assert!(body.contains("from this address"), "{body}");
    other.ok("todo-item", "get_list", json!({})).await;
    first.ok("todo-item", "get_list", json!({})).await;
    // A connection that ends frees its place.
    first.ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match tokio_tungstenite::connect_async(format!("{}?token=7", server.url())).await {
            Ok((ws, _)) => break ws,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("the closed connection's place was not freed: {e}"),
        }
    };
    again.send(Message::text(request(1, "get_list", json!({})))).await.unwrap();
    assert!(matches!(again.next().await, Some(Ok(Message::Text(_)))));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_and_protocol_violations_with_1002() {
    let server = start(test_config(), Arc::default()).await;
    let mut other = server.client().await;
    let bad_frames = [
        (Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true), 1007),
        (Frame::message(vec![1, 2], OpCode::Data(Data::Reserved(3)), true), 1002),
        (Frame::message(b"{}".to_vec(), OpCode::Data(Data::Continue), true), 1002),
    ];
    for (frame, expected) in bad_frames {
        let mut c = server.client().await;
        c.ok("todo-item", "get_list", json!({})).await;
        c.ws.send(Message::Frame(frame)).await.unwrap();
        let (code, reason) = c.closed().await.expect("a close frame");
        assert_eq!(code, expected, "{reason}");
        other.ok("todo-item", "get_list", json!({})).await;
    }
    // A client frame without a mask, written by hand.
    let mut tcp = tokio::net::TcpStream::connect(server.server.addr()).await.unwrap();
    let handshake = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    tcp.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let (_, close) = read_until_close(&mut ws).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1002, "{reason}");
    other.ok("todo-item", "get_list", json!({})).await;
}

#[tokio::test]
async fn oversized_arguments_are_bad_args_naming_them_not_internal() {
    let server =
        start(ConnectionConfig { requests_per_second: 0, ..ConnectionConfig::default() }, Arc::default()).await;
    server.insert_item(json!({"list_id": 1, "text": "x", "done": false})).await;
    let mut c = server.client().await;
    let field = |e: &Value, name: &str| e["fields"][name][0].as_str().unwrap_or_default().to_owned();

    let e = c.err("todo-item", "get_list", json!({"offset": 1u64 << 63})).await;
    assert_eq!(e["code"], "bad_args", "{e}");
    assert!(field(&e, "offset").contains("at most 9223372036854775807"), "{e}");
    let rows = c.ok("todo-item", "get_list", json!({"offset": i64::MAX})).await;
    assert_eq!(rows["rows"], json!([]));
    let e = c.err("todo-item", "get_list", json!({"offset": u64::MAX})).await;
    assert_eq!(e["code"], "bad_args", "{e}");

    let order = |n: usize| (0..n).map(|i| if i % 2 == 0 { "-text" } else { "done" }).collect::<Vec<_>>();
    c.ok("todo-item", "get_list", json!({"order_by": order(16)})).await;
    for n in [17, 10_000] {
        let e = c.err("todo-item", "get_list", json!({"order_by": order(n)})).await;
        assert_eq!(e["code"], "bad_args", "{e}");
        assert!(field(&e, "order_by").contains("at most 16"), "{e}");
    }

    let mut filter = serde_json::Map::new();
    for i in 0..65 {
        filter.insert(format!("nope{i}"), json!(1));
    }
    let e = c.err("todo-item", "get_list", json!({"filter": filter})).await;
    assert_eq!(e["code"], "bad_filter", "{e}");
    assert!(field(&e, "filter").contains("at most 64 terms"), "{e}");
    assert_eq!(e["fields"].as_object().unwrap().len(), 1, "one message, not one per key");
    let e = c.err("todo-item", "subscribe", json!({"filter": {"text__contains": "z".repeat(20_000)}})).await;
    assert!(field(&e, "filter").contains("at most 16384 bytes"), "{e}");

    let mut data = serde_json::Map::new();
    for i in 0..10 {
        data.insert(format!("f{i}"), json!(i));
    }
    let e = c.err("todo-item", "create", json!({"data": data})).await;
    assert_eq!(e["code"], "bad_args", "{e}");
    assert!(field(&e, "data").contains("has 10 keys"), "{e}");

    let e = c.err("todo-item", "resume", json!({"epoch": 1, "pos": 1u64 << 63})).await;
    assert!(field(&e, "pos").contains("at most"), "{e}");

    c.send_text(json!({"id": "i".repeat(300), "route": "todo-item", "verb": "get_list"}).to_string()).await;
    let reply = c.next_reply().await;
    assert_eq!((&reply["id"], &reply["error"]["code"]), (&Value::Null, &json!("bad_args")), "{reply}");

    // Nothing of this hurt the connection, or anyone else.
    c.ok("todo-item", "get_list", json!({})).await;
    server.client().await.ok("todo-item", "get_list", json!({})).await;
}
