//! Bad input never kills a connection; slow and silent clients are closed
//! with a clear code; panics become `internal` errors.
mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use wyrmhole::ConnectionConfig;

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (frame, code) in [
        ("{not json", "malformed_frame"),
        ("[1, 2, 3]", "malformed_frame"),
        ("\"hello\"", "malformed_frame"),
        (r#"{"id": 1}"#, "bad_args"),
        (r#"{"id": {"x": 1}, "route": "todo-item", "verb": "get_list"}"#, "bad_args"),
        (r#"{"id": 2, "route": "todo-item", "verb": "get_list", "args": [1]}"#, "bad_args"),
        (r#"{"id": 3, "route": "todo-item", "verb": "get_list", "extra": true}"#, "bad_args"),
    ] {
        c.send_text(frame.to_string()).await;
        let reply = c.next_reply().await;
        assert_eq!(reply["ok"], false, "{frame}");
        assert_eq!(reply["error"]["code"], code, "{frame}: {reply}");
    }
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(c.next_reply().await["error"]["code"], "malformed_frame");
    // The request id survives when the frame is readable.
    c.send_text(r#"{"id": "abc", "route": 7, "verb": "get_list"}"#.into()).await;
    let reply = c.next_reply().await;
    assert_eq!((reply["id"].as_str(), reply["error"]["fields"]["route"].is_array()), (Some("abc"), true));
    // Still serving.
    c.ok("todo-item", "get_list", json!({})).await;
}

#[tokio::test]
async fn oversized_frames_are_refused_and_the_connection_lives() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let big = "x".repeat(100 * 1024);
    c.send_text(json!({"id": 9, "route": "todo-item", "verb": "create", "args": {"data": {"list_id": 1, "text": big, "done": false}}}).to_string()).await;
    let reply = c.next_reply().await;
    assert_eq!((reply["id"].as_i64(), reply["error"]["code"].as_str()), (Some(9), Some("frame_too_large")));
    assert!(server.all_items().await.is_empty());
    c.ok("todo-item", "get_list", json!({})).await;
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_error() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let e = c.err("todo-item", "boom", json!({})).await;
    assert_eq!((e["code"].as_str(), e["message"].as_str()), (Some("internal"), Some("internal error")));
    c.ok("todo-item", "get_list", json!({})).await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_without_slowing_others() {
    let config = ConnectionConfig { queue_capacity: 8, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut slow = server.client().await;
    let mut fast = server.client().await;
    slow.ok("todo-item", "subscribe", json!({})).await;
    fast.ok("todo-item", "subscribe", json!({})).await;
    // Big rows fill the socket buffers and then the slow client's queue;
    // the fast client keeps receiving every one of them meanwhile.
    let text = "y".repeat(48 * 1024);
    let mut sent = 0;
    while server.app.stats("todo-item").subscriptions == 2 {
        assert!(sent < 2000, "the slow client was never dropped");
        server.insert_item(json!({"list_id": 1, "text": format!("{sent} {text}"), "done": false})).await;
        sent += 1;
        let e = fast.next_event().await;
        assert_eq!(e["seq"].as_u64(), Some(sent));
    }
    server.insert_item(json!({"list_id": 1, "text": "after", "done": false})).await;
    assert_eq!(fast.next_event().await["data"]["text"], "after");
    let (code, reason) = slow.closed().await.expect("a close frame");
    assert_eq!(code, 4008, "{reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
}

#[tokio::test]
async fn a_silent_client_is_closed_by_the_heartbeat() {
    let config = ConnectionConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    // A raw TCP client that completes the handshake and then never reads or
    // writes, so it cannot answer pings.
    let (mut silent, _) = tokio_tungstenite::connect_async(server.url()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut close = None;
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut silent)).await
    {
        if let Ok(Message::Close(Some(frame))) = msg {
            close = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(close, Some(4001));
    // A client that keeps reading answers pings and stays connected.
    let mut live = server.client().await;
    for _ in 0..6 {
        live.ok("todo-item", "get_list", json!({})).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away() {
    let TestServer { server, app: _app, db: _db, _dir, .. } = TestServer::start().await;
    let mut c = Client::connect(&server.ws_url()).await;
    let reply = c.ok("todo-item", "subscribe", json!({})).await;
    assert!(reply["epoch"].as_u64().is_some_and(|e| e > 0 && e < 1 << 53), "{reply}");
    let closing = tokio::spawn(async move { c.closed().await });
    server.shutdown().await;
    let (code, reason) = closing.await.unwrap().expect("a close frame");
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
}

#[tokio::test]
async fn the_js_client_is_served() {
    let server = TestServer::start().await;
    let get = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let addr = server.server.addr();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let entry = get("/wyrmhole.js").await;
    assert!(entry.starts_with("HTTP/1.1 200"), "{entry}");
    assert!(entry.contains("text/javascript") && entry.contains("./wyrmhole/wyrmhole.js"));
    let module = get("/wyrmhole/socket.js").await;
    assert!(module.starts_with("HTTP/1.1 200") && module.contains("export"), "{module}");
    assert!(get("/wyrmhole/nope.js").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn frames_over_the_hard_limit_close_with_1009() {
    let config = ConnectionConfig { hard_frame_bytes: 128 * 1024, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut c = server.client().await;
    c.send_text(format!(
        r#"{{"id": 1, "route": "todo-item", "verb": "get_list", "args": {{"x": "{}"}}}}"#,
        "z".repeat(200 * 1024)
    ))
    .await;
    let (code, reason) = c.closed().await.expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
    // Other clients are unaffected.
    server.client().await.ok("todo-item", "get_list", json!({})).await;
}

/// Write coalescing (`ConnectionConfig::write_coalesce`) holds back the
/// writes of a connection behind its stream of events, never a reply or a
/// channel message: with a window of two seconds, after a burst, a channel
/// message and a reply reach the client at once, and every event arrives,
/// in order, within the window.
#[tokio::test]
async fn a_connection_behind_its_stream_never_holds_a_reply_or_a_message() {
    let window = Duration::from_secs(2);
    let config = ConnectionConfig { write_coalesce: window, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut c = server.client_as(1).await;
    let mut speaker = server.client_as(1).await;
    c.ok("todo-item", "subscribe", json!({})).await;
    c.ok("$channel", "subscribe", json!({"channel": "news:1"})).await;
    let mut seq = 0;
    for round in 0..5 {
        // A burst: 500 rows in one transaction, pushed faster than one
        // socket writes them, so the connection takes them in batches.
        server
            .db
            .write(move |tx| {
                for n in 0..500 {
                    tx.insert::<TodoItem>(&json!({"list_id": 1, "text": format!("{round} {n}"), "done": false}))?;
                }
                Ok::<_, wyrmhole::Error>(())
            })
            .await
            .unwrap();
        // And a single row after it: a write a held connection keeps back.
        server.insert_item(json!({"list_id": 1, "text": format!("{round} after"), "done": false})).await;
        let started = std::time::Instant::now();
        speaker.ok("$channel", "publish", json!({"channel": "news:1", "data": {"round": round}})).await;
        let message = tokio::time::timeout(window / 2, c.next_push()).await.expect("a message held back");
        assert_eq!(message["data"]["round"], round, "{message}");
        let reply = tokio::time::timeout(window / 2, c.call("todo-item", "get_list", json!({})))
            .await
            .expect("a reply held back");
        assert_eq!(reply["ok"], true, "{reply}");
        for n in 0..501 {
            let e = tokio::time::timeout(window * 2, c.next_event()).await.expect("an event held past its window");
            seq += 1;
            assert_eq!(e["seq"].as_u64(), Some(seq), "round {round}, event {n}: {e}");
        }
        assert!(started.elapsed() < window * 2, "round {round}: {:?}", started.elapsed());
    }
}
