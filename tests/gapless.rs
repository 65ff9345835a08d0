//! Subscribing while writers run loses nothing and doubles nothing.
mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};
use wyrmhole::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribing_during_concurrent_writes_is_gapless() {
    let server = TestServer::start().await;
    for i in 0..20 {
        server.insert_item(json!({"list_id": i % 3, "text": format!("seed {i}"), "done": i % 2 == 0})).await;
    }
    // Writers: inserts, updates that move rows between lists and in and out
    // of `done`, and deletes, from several tasks at once.
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let db = server.db.clone();
        writers.push(tokio::spawn(async move {
            let mut state = w * 7919 + 1;
            for step in 0..150u64 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = state >> 33;
                let id = (r % 40) as i32 + 1;
                let list = (r / 40 % 3) as i32;
                let result = db
                    .write(move |tx| {
                        match r % 4 {
                            0 => {
                                tx.insert::<TodoItem>(
                                    &json!({"list_id": list, "text": format!("w{w} s{step}"), "done": false}),
                                )?;
                            }
                            1 => {
                                tx.update::<TodoItem>(id, &json!({"list_id": list}))?;
                            }
                            2 => {
                                tx.update::<TodoItem>(id, &json!({"done": r % 8 < 4, "text": format!("t{step}")}))?;
                            }
                            _ => {
                                tx.delete::<TodoItem>(id)?;
                            }
                        }
                        Ok::<_, Error>(())
                    })
                    .await;
                result.unwrap();
                if step % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    // Subscribers join while the writers run.
    let filters =
        [json!({}), json!({"list_id": 1}), json!({"done": false}), json!({"list__id__in": [0, 2], "done": true})];
    let mut clients = Vec::new();
    for round in 0..8 {
        let filter = filters[round % filters.len()].clone();
        let mut c = server.client().await;
        let reply = c.ok("todo-item", "subscribe", json!({ "filter": filter })).await;
        clients.push((c, filter, View::new(&reply)));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    for (c, filter, view) in &mut clients {
        c.settle(&server).await;
        while let Some(event) = c.events.pop_front() {
            assert_eq!(event["sub"], view.sub);
            view.apply(&event);
        }
        let truth: BTreeMap<i64, Value> = server
            .db
            .select::<TodoItem>(filter)
            .await
            .unwrap()
            .into_iter()
            .map(|item| {
                let mut row = json!({"id": item.id, "list_id": item.list_id, "text": item.text, "done": item.done,
                    "priority": item.priority, "score": item.score, "note": item.note, "created_by": item.created_by});
                row["id"] = item.id.into();
                (item.id as i64, row)
            })
            .collect();
        assert_eq!(view.rows, truth, "client view diverged from the database for filter {filter}");
    }
}
