//! Commit positions live in the database: dense per route, unchanged by a
//! rollback, and continued (with the same epoch) after a restart.
mod common;

use common::*;
use serde_json::json;
use wyrmhole::{Db, Error};

async fn position(db: &Db) -> u64 {
    db.snapshot("todo-item", |_| Ok(())).await.unwrap().0
}

#[tokio::test]
async fn positions_are_dense_durable_and_skip_nothing_on_rollback() {
    let (url, _guard) = database::fresh();
    let db = Db::open(&url).unwrap();
    db.execute_batch(schema(&db)).await.unwrap();
    assert_eq!(position(&db).await, 0);
    let epoch = db.epoch();
    assert!(epoch > 0 && epoch < 1 << 53);

    db.write(|tx| {
        tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "a", "done": false}))?;
        tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "b", "done": false}))?;
        tx.insert::<Ping>(&json!({"n": 1}))
    })
    .await
    .unwrap();
    assert_eq!(position(&db).await, 2, "positions count per route");
    assert_eq!(db.snapshot("ping", |_| Ok(())).await.unwrap().0, 1);

    let failed: Result<(), Error> = db
        .write(|tx| {
            tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "ghost", "done": false}))?;
            Err(Error::Forbidden("no".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(position(&db).await, 2, "a rollback consumes no position");

    // A restart continues the numbering under the same epoch.
    drop(db);
    let db = Db::open(&url).unwrap();
    assert_eq!((db.epoch(), position(&db).await), (epoch, 2));
    db.write(|tx| tx.delete::<TodoItem>(1)).await.unwrap();
    assert_eq!(position(&db).await, 3);
}

#[tokio::test]
async fn subscribe_replies_carry_the_durable_position() {
    let server = TestServer::start().await;
    for i in 0..3 {
        server.insert_item(json!({"list_id": 1, "text": format!("{i}"), "done": false})).await;
    }
    let mut c = server.client().await;
    let reply = c.ok("todo-item", "subscribe", json!({})).await;
    assert_eq!((reply["pos"].as_u64(), reply["epoch"].as_u64()), (Some(3), Some(server.db.epoch())));
    server.insert_item(json!({"list_id": 1, "text": "next", "done": false})).await;
    let e = c.next_event().await;
    assert_eq!((e["pos"].as_u64(), e["seq"].as_u64()), (Some(4), Some(1)));
}

#[tokio::test]
async fn resume_replays_exactly_what_a_subscription_missed() {
    let server = TestServer::start().await;
    let a = server.insert_item(json!({"list_id": 1, "text": "stays", "done": false})).await;
    let b = server.insert_item(json!({"list_id": 2, "text": "moves in", "done": false})).await;
    let c_item = server.insert_item(json!({"list_id": 1, "text": "goes", "done": false})).await;
    let filter = json!({"list_id": 1});
    let mut client = server.client().await;
    let reply = client.ok("todo-item", "subscribe", json!({ "filter": filter })).await;
    let (epoch, pos) = (reply["epoch"].clone(), reply["pos"].as_u64().unwrap());
    assert_eq!(reply["rows"].as_array().unwrap().len(), 2);
    drop(client);

    // While the client is away.
    server.db.write(move |tx| tx.update::<TodoItem>(a.id, &json!({"text": "stays, edited"}))).await.unwrap();
    server.db.write(move |tx| tx.update::<TodoItem>(b.id, &json!({"list_id": 1}))).await.unwrap();
    server.db.write(move |tx| tx.delete::<TodoItem>(c_item.id)).await.unwrap();
    server.insert_item(json!({"list_id": 2, "text": "elsewhere", "done": false})).await;

    let mut client = server.client().await;
    let reply = client.ok("todo-item", "resume", json!({ "filter": filter, "epoch": epoch, "pos": pos })).await;
    // The reply stands at the client's position; the missed changes follow.
    assert_eq!(reply["pos"].as_u64(), Some(pos));
    let events = [client.next_event().await, client.next_event().await, client.next_event().await];
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (e["seq"].as_u64().unwrap(), e["action"].as_str().unwrap().to_owned(), e["data"]["id"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "updated".into(), a.id as i64),
            (2, "created".into(), b.id as i64),
            (3, "deleted".into(), c_item.id as i64)
        ]
    );
    assert_eq!(events[0]["data"], json!({"id": a.id, "text": "stays, edited"}));
    // Then live, numbered on.
    server.insert_item(json!({"list_id": 1, "text": "live", "done": false})).await;
    let e = client.next_event().await;
    assert_eq!((e["seq"].as_u64(), e["action"].as_str(), e["pos"].as_u64()), (Some(4), Some("created"), Some(pos + 5)));
    client.assert_no_event(&server).await;
}

#[tokio::test]
async fn resume_refuses_what_it_cannot_replay() {
    let server = TestServer::start().await;
    server.insert_item(json!({"list_id": 1, "text": "x", "done": false})).await;
    let mut c = server.client().await;
    let epoch = server.db.epoch();
    let e = c.err("todo-item", "resume", json!({"epoch": epoch + 1, "pos": 0})).await;
    assert_eq!(e["code"], "cannot_resume");
    let e = c.err("todo-item", "resume", json!({"epoch": epoch, "pos": 99})).await;
    assert_eq!(e["code"], "cannot_resume");
    let e = c.err("todo-item", "resume", json!({"epoch": epoch})).await;
    assert_eq!(e["code"], "bad_args");
    // History trimmed past the client's position.
    server.db.execute_batch("DELETE FROM wyrm_changes").await.unwrap();
    let e = c.err("todo-item", "resume", json!({"epoch": epoch, "pos": 0})).await;
    assert_eq!(e["code"], "cannot_resume");
    assert!(e["message"].as_str().unwrap().contains("history"), "{e}");
    // Up to date: nothing to replay, and no history needed.
    let reply = c.ok("todo-item", "resume", json!({"epoch": epoch, "pos": 1})).await;
    assert_eq!(reply["pos"], 1);
    assert_eq!(server.app.stats("todo-item").subscriptions, 1, "refused resumes leave no subscription behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_streams_a_replay_larger_than_the_outbound_queue() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let reply = c.ok("todo-item", "subscribe", json!({})).await;
    let (epoch, pos) = (reply["epoch"].clone(), reply["pos"].as_u64().unwrap());
    drop(c);
    // Three times the outbound queue (1024 frames) while the client is away,
    // large enough (12 MB) that the socket's buffers cannot absorb them.
    const MISSED: u64 = 3 * 1024;
    let filler = "x".repeat(4096);
    for batch in 0..MISSED / 128 {
        let filler = filler.clone();
        server
            .db
            .write(move |tx| {
                for i in 0..128 {
                    let text = format!("{batch}.{i} {filler}");
                    tx.insert::<TodoItem>(&json!({"list_id": 1, "text": text, "done": false}))?;
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
    }
    let mut c = server.client().await;
    c.send_text(
        json!({"id": 1, "route": "todo-item", "verb": "resume", "args": {"epoch": epoch, "pos": pos}}).to_string(),
    )
    .await;
    // Not reading for a while: the replay must wait for room, not overflow.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reply = c.next_reply().await;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut view = View::new(&json!({"sub": reply["data"]["sub"], "rows": []}));
    for _ in 0..MISSED {
        let e = c.next_event().await;
        view.apply(&e);
    }
    assert_eq!(view.rows.len() as u64, MISSED);
    // Then live, numbered on.
    server.insert_item(json!({"list_id": 1, "text": "live", "done": false})).await;
    let e = c.next_event().await;
    assert_eq!((e["seq"].as_u64(), e["pos"].as_u64()), (Some(MISSED + 1), Some(pos + MISSED + 1)));
}
