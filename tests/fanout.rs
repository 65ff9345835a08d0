//! Changes reach exactly the subscriptions they concern, after commit, in order.
mod common;

use common::*;
use serde_json::json;
use wyrmhole::Error;

#[tokio::test]
async fn rows_enter_stay_and_leave_a_filter() {
    let server = TestServer::start().await;
    let mut watcher = server.client().await;
    let mut writer = server.client().await;
    let sub = watcher.ok("todo-item", "subscribe", json!({"filter": {"list__id": 1, "done": false}})).await;
    assert_eq!(sub["rows"], json!([]));
    let sub_id = sub["sub"].clone();

    // Created inside the filter.
    let item = writer
        .ok("todo-item", "create", json!({"data": {"list_id": 1, "text": "milk", "done": false, "priority": 1}}))
        .await;
    let id = item["id"].clone();
    let e = watcher.next_event().await;
    assert_eq!((e["sub"].clone(), e["seq"].as_u64(), e["action"].as_str()), (sub_id.clone(), Some(1), Some("created")));
    assert_eq!(e["data"], item);

    // Stays inside: only the changed field and the id.
    writer.ok("todo-item", "update", json!({"id": id, "data": {"text": "oat milk"}})).await;
    let e = watcher.next_event().await;
    assert_eq!((e["seq"].as_u64(), e["action"].as_str()), (Some(2), Some("updated")));
    assert_eq!(e["data"], json!({"id": id, "text": "oat milk"}));

    // Leaves: deleted, though the row still exists.
    writer.ok("todo-item", "update", json!({"id": id, "data": {"done": true}})).await;
    let e = watcher.next_event().await;
    assert_eq!(
        (e["seq"].as_u64(), e["action"].as_str(), e["data"].clone()),
        (Some(3), Some("deleted"), json!({"id": id}))
    );

    // Changes outside the filter are not told at all.
    writer.ok("todo-item", "update", json!({"id": id, "data": {"text": "still done"}})).await;
    watcher.assert_no_event(&server).await;

    // Comes back: created with the whole row.
    writer.ok("todo-item", "update", json!({"id": id, "data": {"done": false}})).await;
    let e = watcher.next_event().await;
    assert_eq!((e["seq"].as_u64(), e["action"].as_str()), (Some(4), Some("created")));
    assert_eq!(e["data"]["text"], "still done");

    // Moves to another list: deleted here.
    writer.ok("todo-item", "update", json!({"id": id, "data": {"list_id": 2}})).await;
    let e = watcher.next_event().await;
    assert_eq!((e["seq"].as_u64(), e["action"].as_str()), (Some(5), Some("deleted")));

    // Deleted for real while outside: nothing.
    writer.ok("todo-item", "delete", json!({"id": id})).await;
    watcher.assert_no_event(&server).await;
}

#[tokio::test]
async fn moving_a_row_tells_only_the_subscriptions_it_concerns() {
    // SwampDragon sent `deleted` to unrelated subscriptions when a row left one filter.
    let server = TestServer::start().await;
    let mut on_1 = server.client().await;
    let mut on_2 = server.client().await;
    let mut on_3 = server.client().await;
    on_1.ok("todo-item", "subscribe", json!({"filter": {"list_id": 1}})).await;
    on_2.ok("todo-item", "subscribe", json!({"filter": {"list_id": 2}})).await;
    on_3.ok("todo-item", "subscribe", json!({"filter": {"list_id": 3}})).await;
    let item = server.insert_item(json!({"list_id": 1, "text": "a", "done": false})).await;
    assert_eq!(on_1.next_event().await["action"], "created");
    server.db.write(move |tx| tx.update::<TodoItem>(item.id, &json!({"list_id": 2}))).await.unwrap();
    assert_eq!(on_1.next_event().await["action"], "deleted");
    let e = on_2.next_event().await;
    assert_eq!((e["action"].as_str(), e["data"]["list_id"].as_i64()), (Some("created"), Some(2)));
    on_1.assert_no_event(&server).await;
    on_2.assert_no_event(&server).await;
    on_3.assert_no_event(&server).await;
}

#[tokio::test]
async fn unpublished_changes_send_nothing_and_never_leak() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.ok("todo-item", "subscribe", json!({})).await;
    let item = server.insert_item(json!({"list_id": 1, "text": "a", "done": false, "secret": "one"})).await;
    let e = c.next_event().await;
    assert!(e["data"].get("secret").is_none(), "{e}");
    server.db.write(move |tx| tx.update::<TodoItem>(item.id, &json!({"secret": "two"}))).await.unwrap();
    c.assert_no_event(&server).await;
}

#[tokio::test]
async fn scopes_hold_for_every_delivered_change() {
    let server = TestServer::start().await;
    let mut alice = server.client_as(1).await;
    let mut bob = server.client_as(2).await;
    alice.ok("todo-list", "subscribe", json!({})).await;
    bob.ok("todo-list", "subscribe", json!({})).await;
    let list = alice.ok("todo-list", "create", json!({"data": {"name": "mine"}})).await;
    assert_eq!(alice.next_event().await["action"], "created");
    bob.assert_no_event(&server).await;
    // Server code hands the list to bob: it leaves alice's scope and enters bob's.
    let id = list["id"].as_i64().unwrap() as i32;
    server.db.write(move |tx| tx.update::<TodoList>(id, &json!({"owner_id": 2}))).await.unwrap();
    assert_eq!(alice.next_event().await["action"], "deleted");
    let e = bob.next_event().await;
    assert_eq!((e["action"].as_str(), e["data"]["name"].as_str()), (Some("created"), Some("mine")));
    assert!(e["data"].get("owner_id").is_none());
    // The scope field is hidden: writing it is writing an unknown field.
    let e = bob.err("todo-list", "update", json!({"id": id, "data": {"owner_id": 1}})).await;
    assert_eq!(e["code"], "unknown_field");
}

#[tokio::test]
async fn writes_cannot_leave_the_scope_and_events_outside_it_never_arrive() {
    let server = TestServer::start().await;
    let inside = server.insert_item(json!({"list_id": 1, "text": "visible", "done": false})).await;
    let outside = server.insert_item(json!({"list_id": 2, "text": "hidden", "done": false})).await;
    // User 666 is confined to list 1 (see the test router).
    let mut confined = server.client_as(666).await;
    let snapshot = confined.ok("todo-item", "subscribe", json!({})).await;
    assert_eq!(snapshot["rows"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["rows"][0]["text"], "visible");
    assert_eq!(confined.err("todo-item", "get_single", json!({"id": outside.id})).await["code"], "not_found");
    let e = confined.err("todo-item", "update", json!({"id": inside.id, "data": {"list_id": 2}})).await;
    assert_eq!(e["code"], "forbidden");
    let e = confined
        .err("todo-item", "create", json!({"data": {"list_id": 2, "text": "x", "done": false, "priority": 0}}))
        .await;
    assert_eq!(e["code"], "forbidden");
    let e = confined.err("todo-item", "update", json!({"id": outside.id, "data": {"list_id": 1}})).await;
    assert_eq!(e["code"], "not_found");
    // Even a filter naming list 2 sees nothing of it.
    let list = confined.ok("todo-item", "get_list", json!({"filter": {"list_id": 2}})).await;
    assert_eq!(list["rows"], json!([]));
    confined.assert_no_event(&server).await;
    // Changes to rows outside the scope are never delivered; rows entering it are.
    server.db.write(move |tx| tx.update::<TodoItem>(outside.id, &json!({"text": "still hidden"}))).await.unwrap();
    confined.assert_no_event(&server).await;
    server.db.write(move |tx| tx.update::<TodoItem>(outside.id, &json!({"list_id": 1}))).await.unwrap();
    let e = confined.next_event().await;
    assert_eq!((e["action"].as_str(), e["data"]["text"].as_str()), (Some("created"), Some("still hidden")));
    assert_eq!(server.all_items().await.iter().filter(|i| i.list_id == 1).count(), 2);
}

#[tokio::test]
async fn nothing_is_published_before_commit_or_after_rollback() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.ok("todo-item", "subscribe", json!({})).await;
    // Server code fails after writing: rolled back, nothing published.
    let result: Result<(), Error> = server
        .db
        .write(|tx| {
            tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "ghost", "done": false}))?;
            Err(Error::Forbidden("changed my mind".into()))
        })
        .await;
    assert!(result.is_err());
    // A panic inside the transaction rolls back too.
    let result: Result<(), Error> = server
        .db
        .write(|tx| {
            tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "ghost", "done": false}))?;
            panic!("job crashed mid-write");
        })
        .await;
    assert_eq!(result.unwrap_err().code(), "internal");
    c.assert_no_event(&server).await;
    assert!(server.all_items().await.is_empty());

    // A committed transaction publishes all of its changes, in order.
    let (a, b) = server
        .db
        .write(|tx| {
            let a = tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "a", "done": false}))?;
            let b = tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "b", "done": false}))?;
            tx.delete::<TodoItem>(a.id)?;
            Ok::<_, Error>((a.id, b.id))
        })
        .await
        .unwrap();
    let events: Vec<_> = [c.next_event().await, c.next_event().await, c.next_event().await].into();
    let seen: Vec<_> =
        events.iter().map(|e| (e["action"].as_str().unwrap(), e["data"]["id"].as_i64().unwrap())).collect();
    assert_eq!(seen, [("created", a as i64), ("created", b as i64), ("deleted", a as i64)]);
    let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let pos: Vec<_> = events.iter().map(|e| e["pos"].as_u64().unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[1] == w[0] + 1), "positions follow commit order: {pos:?}");
}

#[tokio::test]
async fn saves_from_server_code_reach_subscribers() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.ok("todo-item", "subscribe", json!({"filter": {"done": false}})).await;
    let item = server.insert_item(json!({"list_id": 1, "text": "from a job", "done": false})).await;
    assert_eq!(c.next_event().await["data"]["text"], "from a job");
    // `save` writes a whole typed struct, as an admin endpoint would.
    let mut edited = item.clone();
    edited.text = "edited in admin".into();
    server.db.write(move |tx| tx.save(&edited)).await.unwrap();
    let e = c.next_event().await;
    assert_eq!(e["data"], json!({"id": item.id, "text": "edited in admin"}));
    server.db.write(move |tx| tx.delete::<TodoItem>(item.id)).await.unwrap();
    assert_eq!(c.next_event().await["action"], "deleted");
}

#[tokio::test]
async fn unsubscribe_stops_events() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let sub = c.ok("todo-item", "subscribe", json!({})).await["sub"].clone();
    let other = c.ok("todo-item", "subscribe", json!({"filter": {"list_id": 1}})).await["sub"].clone();
    server.insert_item(json!({"list_id": 1, "text": "a", "done": false})).await;
    let subs = [c.next_event().await["sub"].clone(), c.next_event().await["sub"].clone()];
    assert!(subs.contains(&sub) && subs.contains(&other));
    assert_eq!(c.ok("todo-item", "unsubscribe", json!({"sub": sub})).await, json!({"sub": sub}));
    server.insert_item(json!({"list_id": 1, "text": "b", "done": false})).await;
    let e = c.next_event().await;
    assert_eq!(e["sub"], other);
    c.assert_no_event(&server).await;
    let e = c.err("todo-item", "unsubscribe", json!({"sub": sub})).await;
    assert_eq!(e["code"], "unknown_subscription");
    assert_eq!(server.app.stats("todo-item"), wyrmhole::RouteStats { subscriptions: 1, groups: 1 });
    drop(c);
}

#[tokio::test]
async fn identical_filters_share_one_group_and_disconnects_release_them() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = server.client().await;
        c.ok("todo-item", "subscribe", json!({"filter": {"done": false, "list_id": 4}})).await;
        c.ok("todo-item", "subscribe", json!({"filter": {"list_id": 4, "done": false}})).await;
        clients.push(c);
    }
    assert_eq!(server.app.stats("todo-item"), wyrmhole::RouteStats { subscriptions: 10, groups: 1 });
    server.insert_item(json!({"list_id": 4, "text": "x", "done": false})).await;
    for c in &mut clients {
        let (a, b) = (c.next_event().await, c.next_event().await);
        assert_ne!(a["sub"], b["sub"]);
        assert_eq!(a["data"], b["data"]);
    }
    drop(clients);
    for _ in 0..100 {
        if server.app.stats("todo-item") == wyrmhole::RouteStats::default() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("subscriptions not released: {:?}", server.app.stats("todo-item"));
}
