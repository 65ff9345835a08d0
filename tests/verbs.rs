//! Every verb over a real WebSocket, and the bad-input classes of each.
mod common;

use common::*;
use serde_json::json;

async fn seed(server: &TestServer) {
    for (list, text, done, priority) in [
        (1, "milk", false, 1),
        (1, "eggs", true, 2),
        (1, "bread", false, 3),
        (2, "paint", false, 1),
        (2, "nails", true, 0),
    ] {
        server
            .insert_item(json!({"list_id": list, "text": text, "done": done, "priority": priority, "secret": "s3cret"}))
            .await;
    }
}

#[tokio::test]
async fn get_single_publishes_only_published_fields() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut c = server.client().await;
    let item = c.ok("todo-item", "get_single", json!({"id": 1})).await;
    assert_eq!(item["text"], "milk");
    assert_eq!(item["done"], false);
    assert!(item.get("secret").is_none(), "skipped field leaked: {item}");
    assert_eq!(item.as_object().unwrap().len(), 8);
    let e = c.err("todo-item", "get_single", json!({"id": 999})).await;
    assert_eq!(e["code"], "not_found");
    let e = c.err("todo-item", "get_single", json!({})).await;
    assert_eq!((e["code"].as_str(), e["fields"]["id"][0].as_str()), (Some("bad_args"), Some("is required")));
    let e = c.err("todo-item", "get_single", json!({"id": "1"})).await;
    assert_eq!(e["code"], "bad_args");
    assert!(e["fields"]["id"][0].as_str().unwrap().contains("must be a 32-bit integer"));
}

#[tokio::test]
async fn get_list_filters_orders_and_pages() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut c = server.client().await;
    let page = c.ok("todo-item", "get_list", json!({"filter": {"list__id": 1}, "order_by": "-priority"})).await;
    let texts: Vec<_> = page["rows"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["bread", "eggs", "milk"]);
    assert_eq!(page["has_more"], false);

    let page = c.ok("todo-item", "get_list", json!({"order_by": ["done", "-text"], "limit": 2, "total": true})).await;
    let texts: Vec<_> = page["rows"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["paint", "milk"]);
    assert_eq!((page["has_more"].as_bool(), page["total"].as_i64()), (Some(true), Some(5)));
    let page = c.ok("todo-item", "get_list", json!({"order_by": ["done", "-text"], "limit": 2, "offset": 4})).await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], false);

    let e = c.err("todo-item", "get_list", json!({"order_by": "secret"})).await;
    assert_eq!(e["code"], "bad_args");
    let e = c.err("todo-item", "get_list", json!({"limit": 0})).await;
    assert_eq!(e["fields"]["limit"][0], "must be from 1 to 1000");
    let e = c.err("todo-item", "get_list", json!({"limit": 5000})).await;
    assert_eq!(e["code"], "bad_args");
    let e = c.err("todo-item", "get_list", json!({"limt": 5})).await;
    assert!(e["fields"]["limt"][0].as_str().unwrap().contains("unknown argument"));
}

#[tokio::test]
async fn bad_filters_name_the_offending_key() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (filter, key) in [
        (json!({"nope": 1}), "nope"),
        (json!({"text__icontanis": "x"}), "text__icontanis"),
        (json!({"done": "yes"}), "done"),
        // Django truncates a fraction for an integer field; wyrmhole refuses it.
        (json!({"priority__gt": 4.5}), "priority__gt"),
        (json!({"text__in": "abc"}), "text__in"),
        (json!({"secret": "s3cret"}), "secret"),
        (json!({"note__isnull": 1}), "note__isnull"),
    ] {
        let e = c.err("todo-item", "get_list", json!({ "filter": filter })).await;
        assert_eq!(e["code"], "bad_filter", "{filter}: {e}");
        assert!(e["fields"].get(key).is_some(), "{filter}: error should name {key}: {e}");
        let e = c.err("todo-item", "subscribe", json!({ "filter": filter })).await;
        assert_eq!(e["code"], "bad_filter", "{filter}: {e}");
    }
}

#[tokio::test]
async fn create_update_delete() {
    let server = TestServer::start().await;
    let mut c = server.client_as(7).await;
    let item = c
        .ok("todo-item", "create", json!({"data": {"list_id": 1, "text": "milk", "done": false, "priority": 2}}))
        .await;
    assert_eq!(item["created_by"], 7, "initial value from the identity");
    assert_eq!(item["note"], json!(null));
    let id = item["id"].clone();

    let updated = c.ok("todo-item", "update", json!({"id": id, "data": {"done": true}})).await;
    assert_eq!((updated["done"].as_bool(), updated["text"].as_str()), (Some(true), Some("milk")));

    let deleted = c.ok("todo-item", "delete", json!({"id": id})).await;
    assert_eq!(deleted, json!({"id": id}));
    assert_eq!(c.err("todo-item", "delete", json!({"id": id})).await["code"], "not_found");
    assert_eq!(c.err("todo-item", "update", json!({"id": id, "data": {"done": false}})).await["code"], "not_found");
    assert!(server.all_items().await.is_empty());
}

#[tokio::test]
async fn writes_that_fail_write_nothing() {
    let server = TestServer::start().await;
    seed(&server).await;
    let before = format!("{:?}", server.all_items().await);
    let mut c = server.client().await;
    let cases = [
        (
            "create",
            json!({"data": {"list_id": 1, "text": "x", "done": false, "priority": 1, "created_by": 3}}),
            "read_only_field",
            "created_by",
        ),
        (
            "create",
            json!({"data": {"list_id": 1, "text": "x", "done": false, "priority": 1, "secret": "x"}}),
            "unknown_field",
            "secret",
        ),
        (
            "create",
            json!({"data": {"list_id": 1, "text": "x", "done": false, "priority": 1, "bogus": 1}}),
            "unknown_field",
            "bogus",
        ),
        ("create", json!({"data": {"list_id": 1, "done": false, "priority": 1}}), "invalid_data", "text"),
        ("create", json!({"data": {"list_id": 1, "text": "x", "done": 1, "priority": 1}}), "invalid_data", "done"),
        (
            "create",
            json!({"data": {"list_id": 1, "text": "x", "done": false, "priority": 70000}}),
            "invalid_data",
            "priority",
        ),
        (
            "create",
            json!({"data": {"list_id": 1, "text": "  ", "done": false, "priority": 1}}),
            "validation_failed",
            "text",
        ),
        (
            "create",
            json!({"data": {"list_id": 1, "text": "x", "done": false, "priority": 9}}),
            "validation_failed",
            "priority",
        ),
        ("create", json!({"data": [1]}), "bad_args", "data"),
        ("update", json!({"id": 1, "data": {"id": 5}}), "read_only_field", "id"),
        ("update", json!({"id": 1, "data": {"text": ""}}), "validation_failed", "text"),
        ("update", json!({"id": 1, "data": {"score": "high"}}), "invalid_data", "score"),
        ("update", json!({"id": 1, "data": {"done": true}, "extra": 1}), "bad_args", "extra"),
    ];
    for (verb, args, code, field) in cases {
        let e = c.err("todo-item", verb, args.clone()).await;
        assert_eq!(e["code"], code, "{verb} {args}: {e}");
        assert!(e["fields"].get(field).is_some(), "{verb} {args}: should name {field}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(format!("{:?}", server.all_items().await), before, "a failed write changed the database");
}

#[tokio::test]
async fn custom_verbs_and_unknown_verbs() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut c = server.client().await;
    let data = c.ok("todo-item", "clear_done", json!({"list_id": 1})).await;
    assert_eq!(data, json!({"deleted": 1}));
    assert_eq!(server.all_items().await.len(), 4);
    let e = c.err("todo-item", "clear_done", json!({})).await;
    assert_eq!(e["code"], "bad_args");
    let e = c.err("todo-item", "frobnicate", json!({})).await;
    assert_eq!(e["code"], "unknown_verb");
    let e = c.err("no-such-route", "get_list", json!({})).await;
    assert_eq!(e["code"], "unknown_route");
}

#[tokio::test]
async fn scopes_hold_for_every_verb() {
    let server = TestServer::start().await;
    let mut alice = server.client_as(1).await;
    let mut bob = server.client_as(2).await;
    let mut anon = server.client().await;
    let list = alice.ok("todo-list", "create", json!({"data": {"name": "alice's"}})).await;
    assert!(list.get("owner_id").is_none(), "skipped field leaked");
    let id = list["id"].clone();
    bob.ok("todo-list", "create", json!({"data": {"name": "bob's"}})).await;

    let mine = alice.ok("todo-list", "get_list", json!({})).await;
    assert_eq!(mine["rows"], json!([{"id": id, "name": "alice's"}]));
    assert_eq!(bob.err("todo-list", "get_single", json!({"id": id})).await["code"], "not_found");
    assert_eq!(bob.err("todo-list", "update", json!({"id": id, "data": {"name": "pwned"}})).await["code"], "not_found");
    // Not even a constraint the write would break tells bob the row exists
    // (list names are unique): the scope is checked before the write.
    let e = bob.err("todo-list", "update", json!({"id": id, "data": {"name": "bob's"}})).await;
    assert_eq!(e["code"], "not_found", "{e}");
    let missing = bob.err("todo-list", "update", json!({"id": 9999, "data": {"name": "bob's"}})).await;
    assert_eq!(missing["message"].as_str().unwrap().replace("9999", &id.to_string()), e["message"].as_str().unwrap());
    assert_eq!(bob.err("todo-list", "delete", json!({"id": id})).await["code"], "not_found");
    let snapshot = bob.ok("todo-list", "subscribe", json!({})).await;
    assert_eq!(snapshot["rows"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["rows"][0]["name"], "bob's");
    // A client filter cannot widen the scope, nor probe the hidden field.
    let e = bob.err("todo-list", "get_list", json!({"filter": {"owner_id": 1}})).await;
    assert_eq!(e["code"], "bad_filter");

    assert_eq!(anon.err("todo-list", "create", json!({"data": {"name": "x"}})).await["code"], "login_required");
    assert_eq!(anon.err("todo-list", "get_list", json!({})).await["code"], "forbidden");
    assert_eq!(alice.ok("todo-list", "get_single", json!({"id": id})).await["name"], "alice's");
}

#[tokio::test]
async fn unauthenticated_upgrades_are_refused() {
    let server = TestServer::start().await;
    let err = tokio_tungstenite::connect_async(format!("{}?token=reject", server.url())).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
}

#[tokio::test]
async fn floats_keep_every_bit_through_writes_filters_and_ids() {
    // Not correctly rounded by serde_json's default parser: it read this
    // as 23531.1, so the row held another number than the client sent.
    const SCORE: f64 = 23531.100000000002;
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let data = json!({"list_id": 1, "text": "x", "done": false, "priority": 1, "score": SCORE});
    let created = c.ok("todo-item", "create", json!({ "data": data })).await;
    assert_eq!(created["score"].as_f64(), Some(SCORE));
    let stored = server.all_items().await;
    assert_eq!(stored[0].score, Some(SCORE), "the database holds what the client sent");
    let found = c.ok("todo-item", "get_list", json!({"filter": {"score": SCORE}})).await;
    assert_eq!(found["rows"].as_array().unwrap().len(), 1, "a float read from a row finds the row");
    c.send_text(r#"{"id": 0.30000000000000004, "route": "ping", "verb": "get_list"}"#.into()).await;
    let reply = c.next_reply().await;
    assert_eq!(reply["id"].as_f64(), Some(0.30000000000000004), "{reply}");
}
