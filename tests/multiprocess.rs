//! Three real server processes (the todo example) on one database (a SQLite
//! file, or PostgreSQL when `DATABASE_URL` is set) share
//! changes through a real redis-server: every client's view, whichever
//! process it is connected to, ends equal to the database, with no
//! duplicates and no losses, including across a Redis restart mid-run.
//!
//! Needs `redis-server` on the PATH (tests/run-all.sh installs it) and the
//! example binary, built with the same features: plain `cargo test` builds
//! it, but `cargo test --test multiprocess` does not (build it first with
//! `cargo build --example todo`).
mod common;

use std::time::{Duration, Instant};

use common::cluster::{free_port, redis_server, todo_server};
use common::*;
use serde_json::{json, Value};

/// One client: its filter, its view, and its connection.
struct Watcher {
    client: Client,
    filter: Value,
    view: View,
}

async fn random_writes(url: String, lists: Vec<i64>, seed: u64, count: usize) {
    let mut c = Client::connect(&url).await;
    let mut rng = Rng(seed);
    for step in 0..count {
        let list = lists[rng.below(lists.len() as u64) as usize];
        let id = rng.below(60) as i64 + 1;
        let args = match rng.below(4) {
            0 | 1 => ("create", json!({"data": {"list_id": list, "text": format!("s{seed} {step}"), "done": false}})),
            2 => (
                "update",
                json!({"id": id, "data": {"list_id": list, "done": rng.below(2) == 0, "text": format!("u{step}")}}),
            ),
            _ => ("update", json!({"id": id, "data": {"done": rng.below(2) == 0}})),
        };
        // Updates of ids that do not exist answer not_found; that is fine here.
        let _ = c.call("todo-item", args.0, args.1).await;
    }
}

/// Reads each watcher's events until its view equals the database.
async fn converge(watchers: &mut [Watcher], reader: &mut Client) {
    for w in watchers.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let truth: std::collections::BTreeMap<i64, Value> =
                reader.ok("todo-item", "get_list", json!({"filter": w.filter, "limit": 1000})).await["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| (r["id"].as_i64().unwrap(), r.clone()))
                    .collect();
            while let Some(event) = w.client.events.pop_front() {
                w.view.apply(&event);
            }
            if w.view.rows == truth {
                break;
            }
            assert!(Instant::now() < deadline, "view for {} diverged: {:?} vs {:?}", w.filter, w.view.rows, truth);
            // Pull whatever arrived meanwhile.
            let _ = tokio::time::timeout(Duration::from_millis(200), w.client.next_event())
                .await
                .map(|e| w.client.events.push_front(e));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_share_changes_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _database) = database::fresh();
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let mut redis = redis_server(redis_port, dir.path());
    let (first, first_url) = todo_server(&db, &redis_url);
    let mut servers = vec![(first, first_url)];
    for _ in 0..2 {
        servers.push(todo_server(&db, &redis_url));
    }
    let urls: Vec<String> = servers.iter().map(|(_, u)| u.clone()).collect();

    let mut reader = Client::connect(&urls[0]).await;
    let mut lists = Vec::new();
    for name in ["a", "b", "c"] {
        lists.push(reader.ok("todo-list", "create", json!({"data": {"name": name}})).await["id"].as_i64().unwrap());
    }
    let filters = [
        json!({}),
        json!({"list_id": lists[0]}),
        json!({"list_id": lists[1], "done": false}),
        json!({"done": true}),
        json!({"list_id__in": [lists[0], lists[2]]}),
    ];
    let mut watchers = Vec::new();
    for i in 0..30 {
        let mut client = Client::connect(&urls[i % 3]).await;
        let filter = filters[i % filters.len()].clone();
        let reply = client.ok("todo-item", "subscribe", json!({ "filter": filter })).await;
        watchers.push(Watcher { client, filter, view: View::new(&reply) });
    }

    // Writers on all three processes at once.
    let writers: Vec<_> =
        (0..3).map(|i| tokio::spawn(random_writes(urls[i].clone(), lists.clone(), i as u64 + 1, 60))).collect();
    for w in writers {
        w.await.unwrap();
    }
    converge(&mut watchers, &mut reader).await;

    // Redis goes away mid-run and comes back: writes keep working, and the
    // changes published meanwhile are recovered from history.
    drop(redis);
    let writers: Vec<_> =
        (0..3).map(|i| tokio::spawn(random_writes(urls[i].clone(), lists.clone(), i as u64 + 10, 15))).collect();
    for w in writers {
        w.await.unwrap();
    }
    redis = redis_server(redis_port, dir.path());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writers: Vec<_> =
        (0..3).map(|i| tokio::spawn(random_writes(urls[i].clone(), lists.clone(), i as u64 + 20, 10))).collect();
    for w in writers {
        w.await.unwrap();
    }
    converge(&mut watchers, &mut reader).await;
    for w in &watchers {
        assert!(w.view.seq > 0, "every subscription received events");
    }
    // With every subscriber gone, no process listens on the route's channel.
    let conn = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let numsub = || {
        let mut conn = conn.clone();
        async move {
            let (_, n): (String, i64) =
                redis::cmd("PUBSUB").arg("NUMSUB").arg("wyrm:todo-item").query_async(&mut conn).await.unwrap();
            n
        }
    };
    assert_eq!(numsub().await, 3, "each process listens while its clients watch");
    drop(watchers);
    let deadline = Instant::now() + Duration::from_secs(10);
    while numsub().await > 0 {
        assert!(Instant::now() < deadline, "the route's channel was never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(redis);
    drop(servers);
}

/// Processes started together on a database none of them has set up all
/// open it (SQLite's switch to WAL and wyrmhole's own tables race otherwise).
#[test]
fn processes_started_together_on_a_fresh_database_all_open_it() {
    // A PostgreSQL process spends a moment installing `wyrm_upper`: fewer rounds there.
    let rounds = if database::backend() == database::Backend::Postgres { 4 } else { 12 };
    for round in 0..rounds {
        let (db, _database) = database::fresh();
        let go = std::sync::Arc::new(std::sync::Barrier::new(8));
        let starting: Vec<_> = (0..8)
            .map(|_| {
                let (db, go) = (db.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    // No Redis here: an unreachable URL only makes them retry quietly.
                    std::panic::catch_unwind(|| todo_server(&db, "redis://127.0.0.1:1"))
                })
            })
            .collect();
        for (i, process) in starting.into_iter().enumerate() {
            assert!(process.join().unwrap().is_ok(), "round {round}: process {i} failed to open a fresh database");
        }
    }
}
