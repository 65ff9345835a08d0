//! The operations surface on a real server: the metrics endpoint after a
//! workload, the health and readiness endpoints, and draining.

mod common;

use std::time::Duration;

use common::{http_get, metrics_of, test_config, TestServer};
use serde_json::{json, Value};
use wyrmhole::ConnectionConfig;

async fn scrape(server: &TestServer) -> std::collections::HashMap<String, f64> {
    let (status, body) = http_get(server.server.addr(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    metrics_of(&body)
}

fn value(metrics: &std::collections::HashMap<String, f64>, key: &str) -> f64 {
    *metrics.get(key).unwrap_or_else(|| {
        let mut keys: Vec<_> = metrics.keys().collect();
        keys.sort();
        panic!("no sample {key} among {keys:#?}")
    })
}

#[tokio::test]
async fn metrics_count_a_workload() {
    let config = ConnectionConfig { queue_capacity: 8, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut user = server.client_as(1).await;
    let mut anonymous = server.client().await;
    user.ok("todo-item", "subscribe", json!({"filter": {"list_id": 2}})).await;
    user.ok("todo-item", "create", json!({"data": {"list_id": 2, "text": "a", "done": false, "priority": 0}})).await;
    assert_eq!(user.next_event().await["action"], "created");
    let refused = anonymous.err("todo-list", "create", json!({"data": {"name": "x"}})).await;
    assert_eq!(refused["code"], "login_required");
    assert_eq!(user.err("todo-item", "boom", json!({})).await["code"], "internal");
    // A verb the route does not have is counted without its (client-chosen) names.
    assert_eq!(user.err("todo-item", "no-such-verb", json!({})).await["code"], "unknown_verb");
    assert_eq!(user.err("no-such-route", "get", json!({})).await["code"], "unknown_route");
    user.ok("$presence", "join", json!({"topic": "room:1", "meta": {}})).await;
    anonymous.ok("$channel", "subscribe", json!({"channel": "news:1"})).await;
    server.app.publish("news:1", &json!({"n": 1})).unwrap();
    assert_eq!(anonymous.next_push().await["data"], json!({"n": 1}));

    let m = scrape(&server).await;
    let requests = |route: &str, verb: &str, code: &str| {
        value(&m, &format!("wyrmhole_requests_total{{route=\"{route}\",verb=\"{verb}\",code=\"{code}\"}}"))
    };
    assert_eq!(requests("todo-item", "subscribe", "ok"), 1.0);
    assert_eq!(requests("todo-item", "create", "ok"), 1.0);
    assert_eq!(requests("todo-list", "create", "login_required"), 1.0);
    assert_eq!(requests("todo-item", "boom", "internal"), 1.0);
    assert_eq!(requests("", "", "unknown_verb"), 1.0);
    assert_eq!(requests("", "", "unknown_route"), 1.0);
    assert_eq!(requests("$presence", "join", "ok"), 1.0);
    assert_eq!(value(&m, "wyrmhole_presence_members"), 1.0);
    assert_eq!(value(&m, "wyrmhole_presence_topics"), 1.0);
    assert_eq!(value(&m, "wyrmhole_channels"), 1.0);
    assert_eq!(value(&m, "wyrmhole_channel_messages_delivered_total"), 1.0);
    assert_eq!(value(&m, "wyrmhole_write_transactions_total{outcome=\"committed\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_write_duration_seconds_count"), 1.0);
    assert_eq!(value(&m, "wyrmhole_hub_gaps_total"), 0.0);
    assert_eq!(value(&m, "wyrmhole_hub_changes_from_history_total"), 0.0);
    assert!(!m.keys().any(|k| k.contains("no-such")), "client-chosen names became labels");
    let latency = "wyrmhole_request_duration_seconds_count{route=\"todo-item\",verb=\"create\"}";
    assert_eq!(value(&m, latency), 1.0);
    assert_eq!(value(&m, "wyrmhole_connections_open"), 2.0);
    assert_eq!(value(&m, "wyrmhole_connections_opened_total"), 2.0);
    assert_eq!(value(&m, "wyrmhole_subscriptions{route=\"todo-item\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_filter_groups{route=\"todo-item\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_subscriptions{route=\"todo-list\"}"), 0.0);
    // One event, one message, and one reply per request (6 of the user's, 2 of the other's).
    assert_eq!(value(&m, "wyrmhole_events_sent_total"), 1.0);
    assert_eq!(value(&m, "wyrmhole_frames_sent_total"), 10.0);
    assert!(value(&m, "wyrmhole_sent_bytes_total") > 100.0);
    assert_eq!(value(&m, "wyrmhole_draining"), 0.0);

    // A slow consumer is closed with 4008, and counted.
    let mut slow = server.client().await;
    slow.ok("todo-item", "subscribe", json!({})).await;
    let text = "y".repeat(48 * 1024);
    let mut sent = 0;
    while server.app.stats("todo-item").subscriptions == 2 {
        assert!(sent < 2000, "the slow client was never dropped");
        server.insert_item(json!({"list_id": 1, "text": format!("{sent} {text}"), "done": false})).await;
        sent += 1;
    }
    let (code, _) = slow.closed().await.expect("a close frame");
    assert_eq!(code, 4008);
    // Reading on answers the close, which the server waits for before it counts the connection closed.
    let _ = futures_util::StreamExt::next(&mut slow.ws).await;
    anonymous.ws.close(None).await.unwrap();
    assert!(anonymous.closed().await.is_none());
    let m = loop {
        // The server counts a close once its side of the handshake is done.
        let m = scrape(&server).await;
        if value(&m, "wyrmhole_connections_open") == 1.0 {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(value(&m, "wyrmhole_connection_closes_total{code=\"4008\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_connection_closes_total{code=\"1000\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_subscriptions{route=\"todo-item\"}"), 1.0);
}

#[tokio::test]
async fn metrics_are_off_unless_asked_for() {
    let server = TestServer::start().await;
    // TestServer asks for /metrics; any other path is not served.
    assert_eq!(http_get(server.server.addr(), "/metricsx").await.0, 404);
    assert_eq!(http_get(server.server.addr(), "/metrics/").await.0, 404);
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.server.addr(), "/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = http_get(server.server.addr(), "/readyz").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ready": true, "checks": {"database": "ok", "draining": "ok"}}));
}

#[tokio::test]
async fn draining_flushes_then_closes_with_1012_and_is_not_ready() {
    const N: usize = 300;
    let server = TestServer::start_with(ConnectionConfig { queue_bytes: 64 << 20, ..test_config() }).await;
    let mut client = server.client_as(1).await;
    let sub = client.ok("todo-item", "subscribe", json!({})).await;
    // Queued before the drain, more than the socket buffers hold while the
    // client does not read: they must reach it before its close frame.
    let text = "z".repeat(48 * 1024);
    for i in 0..N {
        server.insert_item(json!({"list_id": 1, "text": format!("item {i} {text}")})).await;
    }
    server.app.settled().await;
    // The client reads meanwhile, as a real one would (and answers the close).
    let read = async {
        // Sent once the drain began: answered without running.
        let refused = client.call("todo-item", "get_list", json!({"limit": 1})).await;
        assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
        let mut events = Vec::new();
        for _ in 0..N {
            events.push(client.next_event().await);
        }
        let closed = client.closed().await;
        // Reading on sends the answer to the close frame the server waits for.
        let _ = futures_util::StreamExt::next(&mut client.ws).await;
        (events, closed)
    };
    let (left, (events, closed)) = tokio::join!(server.server.drain(Duration::from_secs(10)), read);
    assert_eq!(left, 0, "a connection did not flush within the deadline");
    for (i, event) in events.iter().enumerate() {
        assert_eq!((&event["sub"], &event["data"]["text"]), (&sub["sub"], &json!(format!("item {i} {text}"))));
    }
    let (code, reason) = closed.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1012, "server restarting"));

    let (status, body) = http_get(server.server.addr(), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["checks"]["draining"], "draining");
    assert_eq!(body["checks"]["database"], "ok");
    let refused = tokio_tungstenite::connect_async(server.url()).await.expect_err("upgraded while draining");
    assert!(refused.to_string().contains("503"), "{refused}");
    let m = scrape(&server).await;
    assert_eq!(value(&m, "wyrmhole_draining"), 1.0);
    assert_eq!(value(&m, "wyrmhole_connection_closes_total{code=\"1012\"}"), 1.0);
    assert_eq!(value(&m, "wyrmhole_upgrades_refused_total"), 1.0);
    server.server.shutdown().await;
}
