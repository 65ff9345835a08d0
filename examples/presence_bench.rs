//! Presence and channel figures across two wyrmhole nodes sharing a real
//! Redis: two apps in this one OS process (separate registries, separate
//! Redis connections: what two processes do, minus the second process's
//! own CPU), with WebSocket clients split between them.
//!
//! ```text
//! redis-server --port 6390 --save '' &
//! cargo run --release --example presence_bench -- --redis redis://127.0.0.1:6390 --members 2000 --subscribers 1000
//! ```
//!
//! With `--urls ws://A/ws,ws://B/ws` it uses running servers instead of
//! the two in-process apps: two `bench_server` processes sharing a Redis
//! (they open `bench:*` topics and channels), so each process pays its own
//! CPU; the channel messages are then published by a client
//! (`$channel publish`) on the first:
//!
//! ```text
//! cargo build --release --example bench_server --example presence_bench
//! redis-server --port 6390 --save '' &
//! target/release/examples/bench_server --redis redis://127.0.0.1:6390 &   # prints its ws:// URL
//! target/release/examples/bench_server --redis redis://127.0.0.1:6390 &
//! target/release/examples/presence_bench --urls ws://A/ws,ws://B/ws --members 10000 --storm-secs 900
//! ```
//!
//! `--storm-secs N` (default 600) bounds the join storm: if the lists are
//! not complete by then it prints how far they got and stops.
//!
//! It prints:
//! - the time for `--members` clients to join one topic (64 joining at a
//!   time) until every client's list holds all of them, and the bytes of
//!   a join reply per member;
//! - for `--probes` more joins (on alternating nodes): the time from
//!   sending the join until the last of the members, on both nodes, has
//!   received its `join` frame (median and worst);
//! - channel fan-out: `--subscribers` clients on one channel, `--messages`
//!   messages published by server code on one node, all delivered (through
//!   Redis) to every subscriber: deliveries per second, and the time to the
//!   last delivery.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use wyrmhole::{ConnectionConfig, Db, Wyrmhole};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn node(dir: &std::path::Path, redis: &str) -> (Wyrmhole, String) {
    let db = Db::open(dir.join("bench.db").to_str().unwrap()).unwrap();
    let config = ConnectionConfig {
        max_connections_per_ip: usize::MAX,
        requests_per_second: 0,
        queue_capacity: 1 << 16,
        queue_bytes: 256 << 20,
        ..ConnectionConfig::default()
    };
    let app = Wyrmhole::builder(db)
        .presence("bench:*", |_, _| true)
        .channel("bench:*", |_, _, _| true)
        .allow_anonymous()
        .config(config)
        .redis(redis)
        .build()
        .unwrap();
    let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
    let url = server.ws_url();
    std::mem::forget(server); // serves until the process ends
    (app, url)
}

async fn request(ws: &mut Ws, verb_route: (&str, &str), args: Value) -> Value {
    let frame = json!({"id": 1, "route": verb_route.0, "verb": verb_route.1, "args": args});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("connection lost") };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "reply" {
            assert_eq!(v["ok"], true, "{v}");
            return v["data"].clone();
        }
    }
}

/// One member: joins, then reports (probe, when) for every probe's join
/// (-1 for the others') and leave (2,000,000 + probe), and every channel
/// message it sees (1,000,000 + m). The join storm sends every member a
/// frame per later member, so frames are read with a scan, not a parse,
/// unless they carry a probe or a message.
async fn member(url: String, n: usize, seen: mpsc::UnboundedSender<(i64, Instant)>) -> usize {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let reply = request(&mut ws, ("$presence", "join"), json!({"topic": "bench:1", "meta": {"n": n}})).await;
    let bytes = reply.to_string().len();
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else { continue };
            let at = Instant::now();
            let text = text.as_str();
            let is_join = text.contains(r#""event":"join""#);
            let tag = if is_join && !text.contains(r#""probe":"#) {
                Some(-1)
            } else if text.contains(r#""probe":"#) || text.contains(r#""type":"message""#) {
                let v: Value = serde_json::from_str(text).unwrap();
                match (v["type"].as_str(), v["event"].as_str()) {
                    (Some("presence"), Some("join")) => v["member"]["meta"]["probe"].as_i64(),
                    (Some("presence"), Some("leave")) => v["member"]["meta"]["probe"].as_i64().map(|p| 2_000_000 + p),
                    (Some("message"), _) => v["data"]["m"].as_i64().map(|m| 1_000_000 + m),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(tag) = tag {
                if seen.send((tag, at)).is_err() {
                    return;
                }
            }
        }
    });
    bytes
}

#[tokio::main]
async fn main() {
    let redis = arg("--redis", "redis://127.0.0.1:6379");
    let members: usize = arg("--members", "1000").parse().unwrap();
    let probes: i64 = arg("--probes", "10").parse().unwrap();
    let subscribers: usize = arg("--subscribers", "1000").parse().unwrap();
    let messages: i64 = arg("--messages", "200").parse().unwrap();
    let storm_secs: u64 = arg("--storm-secs", "600").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The publisher: an in-process app, or a client of the first external server.
    let (a, urls): (Option<Wyrmhole>, Vec<String>) = match arg("--urls", "").as_str() {
        "" => {
            let (a, url_a) = node(dir.path(), &redis).await;
            let (_b, url_b) = node(dir.path(), &redis).await;
            tokio::time::sleep(Duration::from_secs(2)).await; // both listeners subscribed, nodes know each other
            (Some(a), vec![url_a, url_b])
        }
        list => (None, list.split(',').map(str::to_owned).collect()),
    };

    // Members join, 64 at a time, alternating nodes.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut reply_bytes = 0;
    let mut joined = 0;
    while joined < members {
        let batch: Vec<_> = (joined..(joined + 64).min(members))
            .map(|n| tokio::spawn(member(urls[n % 2].clone(), n, seen_tx.clone())))
            .collect();
        joined += batch.len();
        for b in batch {
            reply_bytes = b.await.unwrap();
        }
    }
    // Every member's list is whole once it has seen the joins of all who
    // came after it (the rest were in its reply): members*(members-1)/2 joins.
    let joined_at = started.elapsed();
    println!("presence: {members} join replies received in {joined_at:.2?}");
    let expected = members * (members - 1) / 2;
    let mut joins = 0;
    let storm_deadline = started + Duration::from_secs(storm_secs);
    while joins < expected {
        let next = tokio::time::timeout_at(storm_deadline.into(), seen.recv()).await;
        let Ok(Some((tag, _))) = next else {
            println!(
                "presence: join storm time-boxed at {storm_secs}s: {joins} of {expected} join frames received ({:.1}%)",
                joins as f64 * 100.0 / expected as f64
            );
            std::process::exit(0);
        };
        if tag == -1 {
            joins += 1;
            if joins % 5_000_000 == 0 {
                eprintln!("  {joins} of {expected} join frames at {:.1?}", started.elapsed());
            }
        }
    }
    println!(
        "presence: {members} members on two nodes joined and every list complete in {:.2?}; \
         the last join reply was {reply_bytes} bytes ({} bytes per member)",
        started.elapsed(),
        reply_bytes / members
    );

    let mut latencies = Vec::new();
    let mut leaves = Vec::new();
    for probe in 0..probes {
        let url = urls[probe as usize % urls.len()].clone();
        let sent = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        request(&mut ws, ("$presence", "join"), json!({"topic": "bench:1", "meta": {"probe": probe}})).await;
        let mut got = 0;
        let mut last = sent;
        while got < members {
            let (tag, at) = tokio::time::timeout(Duration::from_secs(60), seen.recv()).await.expect("stalled").unwrap();
            if tag == probe {
                got += 1;
                last = at;
            }
        }
        latencies.push(last - sent);
        let closed = Instant::now();
        drop(ws); // leaves: the time until every member saw its leave frame
        let mut got = 0;
        let mut last = closed;
        while got < members {
            let (tag, at) = tokio::time::timeout(Duration::from_secs(60), seen.recv()).await.expect("stalled").unwrap();
            if tag == 2_000_000 + probe {
                got += 1;
                last = at;
            }
        }
        leaves.push(last - closed);
    }
    latencies.sort();
    leaves.sort();
    println!(
        "presence: a join (connect + join) reached all {members} members on both nodes in median {:.2?}, worst {:.2?} ({probes} probes)",
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    println!(
        "presence: a leave (the socket dropped) reached all {members} members in median {:.2?}, worst {:.2?}",
        leaves[leaves.len() / 2],
        leaves.last().unwrap()
    );
    if subscribers == 0 {
        std::process::exit(0);
    }

    // Channel fan-out: the members subscribe too (subscribers of them).
    let (sub_tx, mut delivered) = mpsc::unbounded_channel();
    let mut subs = Vec::new();
    for n in 0..subscribers {
        let (mut ws, _) = tokio_tungstenite::connect_async(urls[n % urls.len()].clone()).await.unwrap();
        request(&mut ws, ("$channel", "subscribe"), json!({"channel": "bench:news"})).await;
        let tx = sub_tx.clone();
        subs.push(tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = ws.next().await {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["type"] == "message" && tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        }));
    }
    let total = subscribers * messages as usize;
    let mut publisher = match a {
        Some(_) => None,
        None => Some(tokio_tungstenite::connect_async(urls[0].clone()).await.unwrap().0),
    };
    let sent = Instant::now();
    for m in 0..messages {
        let data = json!({"m": m, "pad": "x".repeat(64)});
        match (&a, &mut publisher) {
            (Some(a), _) => a.publish("bench:news", &data).unwrap(),
            (None, Some(ws)) => {
                request(ws, ("$channel", "publish"), json!({"channel": "bench:news", "data": data})).await;
            }
            (None, None) => unreachable!(),
        }
    }
    let mut got = 0;
    let mut last = sent;
    while got < total {
        last = tokio::time::timeout(Duration::from_secs(60), delivered.recv()).await.expect("stalled").unwrap();
        got += 1;
    }
    let took = last - sent;
    println!(
        "channels: {messages} messages x {subscribers} subscribers on two nodes = {total} deliveries in {took:.2?} \
         ({:.0} deliveries/s)",
        total as f64 / took.as_secs_f64()
    );
    std::process::exit(0);
}
