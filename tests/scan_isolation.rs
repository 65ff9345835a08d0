//! One user's expensive subscriptions must not hold back another user's
//! events: hundreds of `icontains` subscriptions over a large text keep the
//! fan-out's lanes busy for seconds (this is a debug build), while a
//! subscription on an indexed filter still gets its event at once.
//!
//! A test binary of its own: the lanes go on scanning after the test has
//! what it needs, and must not take the CPU from other tests.
mod common;

use std::time::Instant;

use common::{test_config, TestServer};
use serde_json::json;
use wyrmhole::ConnectionConfig;

/// Scanning subscriptions the attacker holds, spread over connections.
const SCANNING: usize = 200;
const CONNECTIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_subscriptions_do_not_delay_other_users_events() {
    // Above the default of 16 scanning subscriptions per connection, which
    // would refuse this many (see the test below).
    let config = ConnectionConfig { max_scanning_subscriptions: SCANNING, ..test_config() };
    let server = TestServer::start_with(config).await;
    let big = server.insert_item(json!({"list_id": 2, "text": "seed"})).await;
    let watched = server.insert_item(json!({"list_id": 1, "text": "milk"})).await;

    // The attacker: SCANNING distinct icontains filters that match nothing,
    // and one probe that matches the big row.
    let mut attackers = Vec::new();
    for c in 0..CONNECTIONS {
        let mut client = server.client_as(7).await;
        for n in (c..SCANNING).step_by(CONNECTIONS) {
            client.ok("todo-item", "subscribe", json!({"filter": {"text__icontains": format!("needle {n}")}})).await;
        }
        attackers.push(client);
    }
    let mut probe = server.client_as(7).await;
    let probe_sub =
        probe.ok("todo-item", "subscribe", json!({"filter": {"text__icontains": "ZZEND"}})).await["sub"].clone();

    let mut victim = server.client_as(8).await;
    let victim_sub = victim.ok("todo-item", "subscribe", json!({"filter": {"list_id": 1}})).await["sub"].clone();

    // Three large updates, then one small one that the victim watches.
    for n in 0..3 {
        let text = format!("{n}{}zzend", "a".repeat(200_000));
        server.db.write(move |tx| tx.update::<common::TodoItem>(big.id, &json!({ "text": text }))).await.unwrap();
    }
    let id = watched.id;
    server.db.write(move |tx| tx.update::<common::TodoItem>(id, &json!({ "done": true }))).await.unwrap();

    let waiting = Instant::now();
    let probe_events = tokio::spawn(async move {
        for _ in 0..3 {
            let event = probe.next_event().await;
            assert_eq!(event["sub"], probe_sub);
        }
        Instant::now()
    });
    let event = victim.next_event().await;
    let victim_at = Instant::now();
    assert_eq!((event["sub"].clone(), event["data"]["done"].clone()), (victim_sub, json!(true)));
    let probe_at = probe_events.await.unwrap();
    eprintln!("victim's event after {:?}, the probe's third after {:?}", victim_at - waiting, probe_at - waiting);
    // Committed after the three large changes, and still first: it did not
    // wait for their evaluation by the scanning groups.
    assert!(victim_at < probe_at, "the victim's event waited for the scanning subscriptions");
    drop(attackers);
}

#[tokio::test]
async fn a_connection_holds_a_bounded_number_of_scanning_subscriptions() {
    let server = TestServer::start().await;
    let limit = ConnectionConfig::default().max_scanning_subscriptions;
    let mut client = server.client_as(7).await;
    let mut subs = Vec::new();
    for n in 0..limit {
        let sub = client.ok("todo-item", "subscribe", json!({"filter": {"text__icontains": format!("n{n}")}})).await;
        subs.push(sub["sub"].clone());
    }
    let e = client.err("todo-item", "subscribe", json!({"filter": {"note__iexact": "x"}})).await;
    assert_eq!(
        (e["code"].as_str(), e["limit"].as_u64(), e["scanning"].as_bool()),
        (Some("too_many_subscriptions"), Some(limit as u64), Some(true)),
        "{e}"
    );
    // Exact filters still have room; an unsubscribe frees a scanning slot.
    client.ok("todo-item", "subscribe", json!({"filter": {"list_id": 1, "text__startswith": "a"}})).await;
    client.ok("todo-item", "unsubscribe", json!({"sub": subs[0]})).await;
    client.ok("todo-item", "subscribe", json!({"filter": {"text__contains": "x"}})).await;
}
