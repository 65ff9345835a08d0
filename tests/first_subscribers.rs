//! Many clients subscribe at the same instant to a route nobody here follows
//! yet, while writers run: every subscription must end equal to the
//! database, with consecutive `seq` and strictly increasing positions after
//! its snapshot. Repeated after every subscriber has left, so the route goes
//! from unfollowed to followed again each round.
//!
//! This is the race that lost changes when the fan-out started a route's
//! stream at whichever snapshot position reached it first: a subscription
//! whose snapshot was older (a larger filter, a slower read) silently missed
//! the positions in between.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use wyrmhole::Error;

const ROUNDS: usize = 6;
const SUBSCRIBERS: usize = 30;

/// Writes until told to stop: inserts, moves between lists, toggles, deletes.
async fn writer(db: wyrmhole::Db, seed: u64, stop: Arc<AtomicBool>) -> usize {
    let mut state = seed;
    let mut writes = 0;
    while !stop.load(Ordering::Relaxed) {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let r = state >> 33;
        let id = (r % 200) as i32 + 1;
        let list = (r / 200 % 4) as i32;
        db.write(move |tx| {
            match r % 5 {
                0 | 1 => {
                    tx.insert::<TodoItem>(&json!({"list_id": list, "text": format!("w{seed} {r}"), "done": false}))?;
                }
                2 => {
                    tx.update::<TodoItem>(id, &json!({"list_id": list}))?;
                }
                3 => {
                    tx.update::<TodoItem>(id, &json!({"done": r % 2 == 0, "text": format!("t{r}")}))?;
                }
                _ => {
                    tx.delete::<TodoItem>(id)?;
                }
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        writes += 1;
    }
    writes
}

fn truth_of(items: &[TodoItem]) -> BTreeMap<i64, Value> {
    items
        .iter()
        .map(|item| {
            let row = json!({"id": item.id, "list_id": item.list_id, "text": item.text, "done": item.done,
                "priority": item.priority, "score": item.score, "note": item.note, "created_by": item.created_by});
            (item.id as i64, row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_first_subscribers_lose_nothing() {
    let server = TestServer::start().await;
    // Enough rows that a snapshot of everything takes noticeably longer
    // than a snapshot of one list.
    server
        .db
        .write(|tx| {
            for i in 0..1500 {
                tx.insert::<TodoItem>(
                    &json!({"list_id": 4 + i % 50, "text": format!("seed {i} {}", "x".repeat(100)), "done": false}),
                )?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let filters = [json!({}), json!({"list__id": 1}), json!({"list_id__in": [0, 2]}), json!({"done": false})];
    let mut checked = 0;
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| tokio::spawn(writer(server.db.clone(), (round * 10 + w) as u64 + 1, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Everyone subscribes at once; the larger filters come first, so
        // their (slower) snapshots tend to finish last.
        let mut clients = Vec::new();
        for i in 0..SUBSCRIBERS {
            clients.push((server.client().await, filters[i % filters.len()].clone()));
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(SUBSCRIBERS));
        let subscribing: Vec<_> = clients
            .into_iter()
            .map(|(mut c, filter)| {
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let reply = c.ok("todo-item", "subscribe", json!({ "filter": filter })).await;
                    (c, filter, reply)
                })
            })
            .collect();
        let mut watchers = Vec::new();
        for s in subscribing {
            let (c, filter, reply) = s.await.unwrap();
            let pos = reply["pos"].as_u64().unwrap();
            watchers.push((c, filter, View::new(&reply), pos));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        for (c, filter, view, pos) in &mut watchers {
            c.settle(&server).await;
            let mut last = *pos;
            while let Some(event) = c.events.pop_front() {
                let at = event["pos"].as_u64().unwrap();
                assert!(at > last, "round {round}, {filter}: position {at} after {last} (snapshot at {pos})");
                last = at;
                view.apply(&event);
            }
            let truth = truth_of(&server.db.select::<TodoItem>(filter).await.unwrap());
            assert_eq!(
                view.rows.len(),
                truth.len(),
                "round {round}: the view of {filter} (snapshot at {pos}, last event {last}) lost changes"
            );
            assert_eq!(view.rows, truth, "round {round}: the view of {filter} diverged from the database");
            checked += 1;
        }
        // Everyone leaves: the route is unfollowed before the next round.
        drop(watchers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(checked, ROUNDS * SUBSCRIBERS);
}
