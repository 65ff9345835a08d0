//! What differs between SQLite and PostgreSQL underneath must not show
//! through the protocol: text sorts and compares by code point (whatever the
//! database's locale; PostgreSQL test databases sort linguistically by
//! default), booleans are booleans, case folding is `fold_case` in SQL and in
//! events alike, and a failed write leaves the connection usable. NUL is the
//! one visible difference: SQLite stores it, PostgreSQL cannot, and says so.
mod common;

use common::database::{backend, Backend};
use common::*;
use serde_json::{json, Value};
use wyrmhole::Db;

async fn insert_texts(server: &TestServer, texts: &[&str]) {
    for text in texts {
        server.insert_item(json!({"list_id": 1, "text": text, "done": false})).await;
    }
}

fn texts(page: &Value) -> Vec<String> {
    page["rows"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn text_sorts_and_compares_by_code_point() {
    let server = TestServer::start().await;
    let all = ["b", "B", "a", "A", "é", "Z", "😀", "ab", "aB", "É", "z"];
    insert_texts(&server, &all).await;
    let mut sorted: Vec<String> = all.iter().map(|t| t.to_string()).collect();
    sorted.sort();
    let mut c = server.client().await;
    let page = c.ok("todo-item", "get_list", json!({"order_by": "text"})).await;
    assert_eq!(texts(&page), sorted);
    let page = c.ok("todo-item", "get_list", json!({"order_by": "-text"})).await;
    assert_eq!(texts(&page), sorted.iter().rev().cloned().collect::<Vec<_>>());

    let above_z: Vec<String> = sorted.iter().filter(|t| t.as_str() > "Z").cloned().collect();
    let page = c.ok("todo-item", "get_list", json!({"filter": {"text__gt": "Z"}, "order_by": "text"})).await;
    assert_eq!(texts(&page), above_z);
    let page = c.ok("todo-item", "get_list", json!({"filter": {"text__range": ["B", "b"]}, "order_by": "text"})).await;
    assert_eq!(texts(&page), ["B", "Z", "a", "aB", "ab", "b"]);

    // The subscription's snapshot (SQL) and its events (memory) agree.
    let sub = c.ok("todo-item", "subscribe", json!({"filter": {"text__gt": "Z"}})).await;
    assert_eq!(sub["rows"].as_array().unwrap().len(), above_z.len());
    insert_texts(&server, &["Y", "y", "Ω"]).await;
    let mut created = Vec::new();
    for _ in 0..2 {
        let e = c.next_event().await;
        assert_eq!(e["action"], "created");
        created.push(e["data"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, ["y", "Ω"]);
    c.assert_no_event(&server).await;
}

#[tokio::test]
async fn booleans_filter_and_sort_as_booleans() {
    let server = TestServer::start().await;
    for (text, done) in [("one", true), ("two", false), ("three", true)] {
        server.insert_item(json!({"list_id": 1, "text": text, "done": done})).await;
    }
    let mut c = server.client().await;
    let page = c.ok("todo-item", "get_list", json!({"filter": {"done": true}})).await;
    assert_eq!(texts(&page), ["one", "three"]);
    let page = c.ok("todo-item", "get_list", json!({"filter": {"done__in": [false]}})).await;
    assert_eq!(texts(&page), ["two"]);
    let page = c.ok("todo-item", "get_list", json!({"order_by": "-done"})).await;
    assert_eq!(texts(&page), ["one", "three", "two"]);
    assert_eq!(page["rows"][0]["done"], json!(true), "a boolean, not 1");

    let sub = c.ok("todo-item", "subscribe", json!({"filter": {"done": false}})).await;
    assert_eq!(sub["rows"].as_array().unwrap().len(), 1);
    let id = sub["rows"][0]["id"].clone();
    c.ok("todo-item", "update", json!({"id": id, "data": {"done": true}})).await;
    let e = c.next_event().await;
    assert_eq!((e["action"].as_str(), &e["data"]), (Some("deleted"), &json!({"id": id})));
}

#[tokio::test]
async fn case_folding_is_the_same_in_sql_and_in_events() {
    let server = TestServer::start().await;
    // `ᾳ` folds to itself (its uppercase is two characters) though glibc's
    // upper() makes it `ᾼ`; `ƛ` has had an uppercase only since Unicode 16.
    insert_texts(&server, &["ᾳ", "ᾼ", "straße", "STRASSE", "Éclair", "ƛ", "σς"]).await;
    let mut c = server.client().await;
    for (filter, expected) in [
        (json!({"text__iexact": "ᾳ"}), vec!["ᾳ"]),
        (json!({"text__iexact": "ᾼ"}), vec!["ᾼ"]),
        (json!({"text__icontains": "ss"}), vec!["STRASSE"]),
        (json!({"text__icontains": "ß"}), vec!["straße"]),
        (json!({"text__istartswith": "éCL"}), vec!["Éclair"]),
        (json!({"text__iexact": "Ƛ"}), vec!["ƛ"]),
        (json!({"text__iendswith": "Σ"}), vec!["σς"]),
    ] {
        let page = c.ok("todo-item", "get_list", json!({ "filter": filter })).await;
        assert_eq!(texts(&page), expected, "{filter}");
    }
    let sub = c.ok("todo-item", "subscribe", json!({"filter": {"text__icontains": "ᾳ"}})).await;
    assert_eq!(sub["rows"].as_array().unwrap().len(), 1);
    insert_texts(&server, &["xᾼ", "xᾳ"]).await;
    let e = c.next_event().await;
    assert_eq!((e["action"].as_str(), e["data"]["text"].as_str()), (Some("created"), Some("xᾳ")));
    c.assert_no_event(&server).await;
}

#[tokio::test]
async fn nul_is_stored_by_sqlite_and_refused_by_postgres() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let data = json!({"data": {"list_id": 1, "text": "a\u{0}b", "done": false, "priority": 1}});
    let filter = json!({"filter": {"text__contains": "\u{0}"}});
    match backend() {
        Backend::Sqlite => {
            let item = c.ok("todo-item", "create", data).await;
            assert_eq!(item["text"], "a\u{0}b");
            assert_eq!(texts(&c.ok("todo-item", "get_list", filter).await), ["a\u{0}b"]);
        }
        Backend::Postgres => {
            let e = c.err("todo-item", "create", data).await;
            assert_eq!(e["code"], "invalid_data", "{e}");
            assert!(e["fields"]["text"][0].as_str().unwrap().contains("NUL"), "{e}");
            let e = c.err("todo-item", "get_list", filter.clone()).await;
            assert_eq!(e["code"], "bad_filter", "{e}");
            assert!(e["fields"]["text__contains"][0].as_str().unwrap().contains("NUL"), "{e}");
            assert_eq!(c.err("todo-item", "subscribe", filter).await["code"], "bad_filter");
            let e = server
                .db
                .write(|tx| tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "\u{0}", "done": false})))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "invalid_data");
            let e = server.db.select::<TodoItem>(&json!({"secret": "\u{0}"})).await.unwrap_err();
            assert_eq!(e.code(), "bad_filter");
            assert!(server.all_items().await.is_empty());
        }
    }
}

#[tokio::test]
async fn a_failed_statement_rolls_back_and_the_next_write_works() {
    let server = TestServer::start().await;
    let item = server.insert_item(json!({"list_id": 1, "text": "first", "done": false})).await;
    let mut c = server.client().await;
    c.ok("todo-item", "subscribe", json!({})).await;
    // The database refuses the duplicate key after a write in the same
    // transaction; on PostgreSQL that aborts the transaction.
    let e = server
        .db
        .write(move |tx| {
            tx.insert::<TodoItem>(&json!({"list_id": 1, "text": "second", "done": false}))?;
            tx.insert::<TodoItem>(&json!({"id": item.id, "list_id": 1, "text": "dup", "done": false}))
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    let texts_now: Vec<String> = server.all_items().await.into_iter().map(|i| i.text).collect();
    assert_eq!(texts_now, ["first"], "the whole transaction rolled back");
    c.assert_no_event(&server).await;
    server.insert_item(json!({"list_id": 1, "text": "third", "done": false})).await;
    let e = c.next_event().await;
    assert_eq!((e["action"].as_str(), e["data"]["text"].as_str()), (Some("created"), Some("third")));
}

#[tokio::test]
async fn a_float_changing_sign_at_zero_reaches_subscribers() {
    let server = TestServer::start().await;
    let item = server.insert_item(json!({"list_id": 1, "text": "x", "done": false, "score": 0.0})).await;
    let mut c = server.client().await;
    c.ok("todo-item", "subscribe", json!({})).await;
    let stored = |v: &Value| v["score"].to_string();
    let mut last = stored(&c.ok("todo-item", "get_single", json!({"id": item.id})).await);
    let mut events = 0;
    for score in [-0.0, 0.0, -0.0] {
        c.ok("todo-item", "update", json!({"id": item.id, "data": {"score": score}})).await;
        let now = stored(&c.ok("todo-item", "get_single", json!({"id": item.id})).await);
        // Subscribers are told exactly when what get_single reads changes
        // (SQLite stores a zero without its sign; PostgreSQL keeps it).
        if now != last {
            let e = c.next_event().await;
            assert_eq!(stored(&e["data"]), now, "{e}");
            events += 1;
        } else {
            c.assert_no_event(&server).await;
        }
        last = now;
    }
    if backend() == Backend::Postgres {
        assert_eq!(events, 3, "PostgreSQL keeps the sign, so every update is a change");
    }
}

#[tokio::test]
async fn processes_opening_a_fresh_database_at_once_all_succeed() {
    let (url, _guard) = database::fresh();
    let openers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Db::open(&url).map(|db| db.epoch()))
        })
        .collect();
    let epochs: Vec<u64> = openers.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert!(epochs.windows(2).all(|w| w[0] == w[1]), "one epoch: {epochs:?}");
    // Their schema setup is serialized too.
    let dbs: Vec<Db> = (0..4).map(|_| Db::open(&url).unwrap()).collect();
    let setups = dbs.iter().map(|db| {
        let db = db.clone();
        async move { db.execute_batch("CREATE TABLE IF NOT EXISTS shared (id INTEGER PRIMARY KEY)").await }
    });
    for result in futures_util::future::join_all(setups).await {
        result.unwrap();
    }
}

#[tokio::test]
async fn open_errors_say_why() {
    let e = Db::open("mysql://localhost/app").unwrap_err();
    assert!(e.to_string().contains("`mysql://`"), "{e}");
    match backend() {
        Backend::Sqlite => {
            let e = Db::open("/nonexistent-dir/wyrm/test.db").unwrap_err();
            assert!(e.to_string().starts_with("cannot open database"), "{e}");
        }
        Backend::Postgres => {
            // Nothing listens on port 1.
            let e = Db::open("postgres://postgres@127.0.0.1:1/postgres").unwrap_err();
            assert!(e.to_string().starts_with("cannot open database"), "{e}");
            let (url, _keep) = common::database::fresh();
            let e = Db::open(&format!("{url}_missing")).unwrap_err();
            assert!(e.to_string().contains("does not exist"), "{e}");
        }
    }
}

#[tokio::test]
async fn connections_the_server_drops_are_replaced() {
    let server = TestServer::start().await;
    server.insert_item(json!({"list_id": 1, "text": "before", "done": false})).await;
    if backend() == Backend::Postgres {
        // From a reader: ends the writer and every other reader (a server
        // restart or an idle timeout looks the same to the pools).
        server
            .db
            .read(|conn| {
                use diesel::connection::SimpleConnection;
                Ok(conn.batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )?)
            })
            .await
            .unwrap();
    }
    server.insert_item(json!({"list_id": 1, "text": "after", "done": false})).await;
    let mut c = server.client().await;
    for _ in 0..4 {
        let page = c.ok("todo-item", "get_list", json!({})).await;
        assert_eq!(texts(&page), ["before", "after"]);
    }
}
