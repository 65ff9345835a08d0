//! A restart without losses: two todo processes share one database through
//! Redis; clients watch through process A while process B takes writes;
//! A gets SIGTERM, drains (what was queued for its clients reaches them,
//! then close code 1012) and exits; the clients resume on B from their last
//! position, and every view ends equal to the database.
//!
//! Needs `redis-server` and the example binary (see tests/multiprocess.rs).
mod common;

use std::time::{Duration, Instant};

use common::cluster::{free_port, redis_server, todo_server};
use common::*;
use serde_json::{json, Value};

struct Watcher {
    client: Client,
    view: View,
    epoch: Value,
    pos: u64,
}

impl Watcher {
    fn apply(&mut self, event: &Value) {
        self.view.apply(event);
        self.pos = event["pos"].as_u64().unwrap();
    }
}

/// The rows of the database, read through a client.
async fn truth(reader: &mut Client) -> std::collections::BTreeMap<i64, Value> {
    reader.ok("todo-item", "get_list", json!({"filter": {}, "limit": 1000})).await["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_and_clients_resume_on_the_other_process_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _database) = database::fresh();
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let _redis = redis_server(redis_port, dir.path());
    let (mut a, a_url) = todo_server(&db, &redis_url);
    let (_b, b_url) = todo_server(&db, &redis_url);

    let mut reader = Client::connect(&b_url).await;
    let list = reader.ok("todo-list", "create", json!({"data": {"name": "drain"}})).await["id"].as_i64().unwrap();
    // B listens to the route on Redis, so it receives what A commits.
    let mut listener = Client::connect(&b_url).await;
    listener.ok("todo-item", "subscribe", json!({"filter": {"text": "from A"}})).await;
    let mut watchers = Vec::new();
    for _ in 0..8 {
        let mut client = Client::connect(&a_url).await;
        let reply = client.ok("todo-item", "subscribe", json!({"filter": {}})).await;
        let pos = reply["pos"].as_u64().unwrap();
        watchers.push(Watcher { client, view: View::new(&reply), epoch: reply["epoch"].clone(), pos });
    }

    // Writes on B before, during and after A's drain.
    let writer = tokio::spawn({
        let b_url = b_url.clone();
        async move {
            let mut c = Client::connect(&b_url).await;
            // Its own rows: on PostgreSQL an id is taken when a row is
            // inserted, not when it commits, so "from A" may hold an id
            // below the writer's that is not visible yet.
            let mut created = Vec::new();
            for i in 0..150 {
                let data = json!({"list_id": list, "text": format!("w{i}"), "done": false});
                created.push(c.ok("todo-item", "create", json!({ "data": data })).await["id"].clone());
                if i % 3 == 0 {
                    c.ok("todo-item", "update", json!({"id": created[i / 3], "data": {"done": true}})).await;
                }
            }
        }
    });
    // Some changes reach the watchers through A first, one written on A.
    let data = json!({"list_id": list, "text": "from A", "done": false});
    watchers[0].client.ok("todo-item", "create", json!({ "data": data })).await;
    assert_eq!(listener.next_event().await["data"]["text"], "from A");
    for w in &mut watchers {
        let event = w.client.next_event().await;
        w.apply(&event);
    }
    let status = std::process::Command::new("kill").args(["-TERM", &a.0.id().to_string()]).status().unwrap();
    assert!(status.success());

    for (i, w) in watchers.iter_mut().enumerate() {
        // Events the client already read (while waiting for a reply) come
        // first; the socket is read directly below, for the close frame.
        while let Some(event) = w.client.events.pop_front() {
            w.apply(&event);
        }
        // Everything A queued arrives, then its close frame.
        let code = loop {
            match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut w.client.ws)).await.expect("no close") {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(frame["type"], "event", "{frame}");
                    w.apply(&frame);
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    break frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                other => panic!("watcher {i}: the connection ended without a close frame: {other:?}"),
            }
        };
        assert_eq!(code, Some(1012), "watcher {i}");
        // The JS client's move: at once to the next server, resuming.
        w.client = Client::connect(&b_url).await;
        let reply = w.client.ok("todo-item", "resume", json!({"filter": {}, "epoch": w.epoch, "pos": w.pos})).await;
        assert_eq!(reply["pos"].as_u64(), Some(w.pos), "watcher {i}: {reply}");
        w.view.seq = 0;
        w.view.sub = reply["sub"].clone();
    }
    // A exits by itself once drained.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = a.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the drained process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");

    writer.await.unwrap();
    // B is ready, Redis included, and its metrics say so.
    let b_addr: std::net::SocketAddr = b_url.trim_start_matches("ws://").trim_end_matches("/ws").parse().unwrap();
    let (status, body) = http_get(b_addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
    let (status, body) = http_get(b_addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let metrics = metrics_of(&body);
    assert_eq!(metrics["wyrmhole_redis_connected"], 1.0, "{body}");
    // A's commit reached B through Redis (B's own are skipped).
    assert_eq!(metrics["wyrmhole_redis_receive_lag_seconds_count"], 1.0, "{body}");
    assert_eq!(metrics["wyrmhole_write_transactions_total{outcome=\"committed\"}"], 1.0 + 150.0 + 50.0, "{body}");
    let truth = truth(&mut reader).await;
    assert_eq!(truth.len(), 151);
    for (i, w) in watchers.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.view.rows != truth {
            assert!(Instant::now() < deadline, "watcher {i} diverged: {} rows of {}", w.view.rows.len(), truth.len());
            if let Ok(event) = tokio::time::timeout(Duration::from_millis(200), w.client.next_event()).await {
                w.apply(&event);
            }
        }
    }
}
