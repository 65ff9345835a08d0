//! The issue-9 fan-out attack, measured: one client holds 2,000 distinct
//! `icontains` subscriptions (over 125 connections, 16 each: the default
//! budget) while a writer keeps rewriting a 900 KB text; another user's
//! subscription on an indexed filter measures how long its events take,
//! from the save to the event, in three phases: quiet; with the large
//! writes and the scanning subscriptions; with the large writes alone
//! (they share the database's one writer with the victim's saves, so what
//! the subscriptions add is the difference between the last two).
//!
//! ```text
//! cargo run --release --example scan_attack [-- --events 300 --scanning 2000 --text-kb 900 --every-ms 500]
//! ```
//!
//! The server runs in this process (SQLite file in a temp dir, default
//! settings), on the same cores as the clients.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wyrmhole::{Db, Route, Wyrmhole};

diesel::table! {
    notes (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = notes)]
#[wyrm(route = "note")]
struct Note {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn call(ws: &mut Ws, id: u64, verb: &str, args: Value) -> Value {
    let frame = json!({"id": id, "route": "note", "verb": verb, "args": args}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("connection lost") };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "reply" && v["id"] == id {
            assert_eq!(v["ok"], true, "{v}");
            return v["data"].clone();
        }
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

/// Save-to-event latencies of `events` updates of the victim's row, one
/// every 10 ms.
async fn victim_latencies(db: &Db, url: &str, events: usize) -> Vec<Duration> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    call(&mut ws, 1, "subscribe", json!({"filter": {"list_id": 1}})).await;
    let mut latencies = Vec::with_capacity(events);
    for n in 0..events {
        let saved = Instant::now();
        db.write(move |tx| tx.update::<Note>(1, &json!({ "text": format!("victim {n}") }))).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("victim lost its connection") };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["type"] == "event" && v["data"]["text"] == format!("victim {n}") {
                break;
            }
        }
        latencies.push(saved.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies
}

fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", at(0.5), at(0.99), at(1.0))
}

#[tokio::main]
async fn main() {
    let (events, scanning, text_kb) = (arg("--events", 300), arg("--scanning", 2000), arg("--text-kb", 900));
    let every_ms = arg("--every-ms", 500);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("attack.db").to_str().unwrap()).unwrap();
    db.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, list_id INTEGER NOT NULL, text TEXT NOT NULL);")
        .await
        .unwrap();
    db.execute_batch("INSERT INTO notes VALUES (1, 1, 'victim'), (2, 2, 'big');").await.unwrap();
    let app = Wyrmhole::builder(db.clone()).route(Route::<Note>::new()).allow_anonymous().build().unwrap();
    let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
    let url = server.ws_url();

    let mut quiet = victim_latencies(&db, &url, events).await;
    println!("victim, no attack:   {}", summary(&mut quiet));

    // The attacker: `scanning` distinct icontains filters, 16 per connection.
    // Nobody reads the attackers' sockets: their filters match nothing, so
    // they get no events, only the cost of evaluating them.
    let mut attackers = Vec::new();
    let started = Instant::now();
    for c in 0..scanning.div_ceil(16) {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        for n in (c * 16..scanning).take(16) {
            call(&mut ws, n as u64, "subscribe", json!({"filter": {"text__icontains": format!("needle {n}")}})).await;
        }
        attackers.push(ws);
    }
    println!(
        "attacker: {scanning} icontains subscriptions on {} connections in {:?}",
        attackers.len(),
        started.elapsed()
    );

    // The large writes, from now on: every change keeps the lanes busy
    // scanning 2,000 times its text.
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let text = format!("{n}{}", "a".repeat(text_kb * 1024));
                db.write(move |tx| tx.update::<Note>(2, &json!({ "text": text }))).await.unwrap();
                tokio::time::sleep(Duration::from_millis(every_ms as u64)).await;
            }
        })
    };
    let mut attacked = victim_latencies(&db, &url, events).await;
    println!(
        "victim, {text_kb} KB writes every {every_ms} ms and {scanning} scanning subscriptions: {} \
         ({} subscriptions still live at the end)",
        summary(&mut attacked),
        app.stats("note").subscriptions
    );
    drop(attackers);
    while app.stats("note").subscriptions > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut writes_only = victim_latencies(&db, &url, events).await;
    println!("victim, the same writes alone: {}", summary(&mut writes_only));
    writer.abort();
    server.shutdown().await;
}
