//! Every lookup end to end, alone and joined by `or`, `and` and `not`:
//! `get_list` (SQL), the `subscribe` snapshot (SQL) and the events of later
//! writes (in memory) select the same rows.
mod common;

use common::*;
use serde_json::{json, Value};

/// (text, note, priority, score, done) of one seeded row.
type Seed = (&'static str, Option<&'static str>, i16, Option<f64>, bool);

/// The seeded rows; their ids are 1..=7.
const ROWS: &[Seed] = &[
    ("Éclair au café", None, 1, Some(1.5), false),
    ("ÉCLAIR", Some(""), 2, None, true),
    ("100% a_b\\c", Some("x"), 3, Some(-2.0), false),
    ("σοφία", Some("ΣΟΦΊΑ"), -4, Some(0.0), true),
    ("milk", Some("Milk"), 0, Some(1e300), false),
    ("A_B", None, 5, Some(-0.5), false),
    ("", Some("%"), -32768, None, true),
];

fn row_json((text, note, priority, score, done): Seed) -> Value {
    json!({"list_id": 1, "text": text, "note": note, "priority": priority, "score": score, "done": done})
}

/// 10^20, beyond 64 bits: Django answers it instead of refusing it.
fn huge() -> Value {
    serde_json::from_str("99999999999999999999").unwrap()
}

fn ids(rows: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_lookup_selects_the_same_rows_in_sql_and_in_memory() {
    let server = TestServer::start().await;
    for row in ROWS {
        server.insert_item(row_json(*row)).await;
    }
    let cases: Vec<(Value, Vec<i64>)> = vec![
        (json!({"text": "milk"}), vec![5]),
        (json!({"text__exact": "ÉCLAIR"}), vec![2]),
        (json!({"note": null}), vec![1, 6]),
        (json!({"note__exact": ""}), vec![2]),
        (json!({"text__iexact": "éclair"}), vec![2]),
        (json!({"note__iexact": "σοφία"}), vec![4]),
        (json!({"text__contains": "a_b"}), vec![3]),
        (json!({"text__contains": "%"}), vec![3]),
        (json!({"text__contains": "\\"}), vec![3]),
        (json!({"text__icontains": "a_b"}), vec![3, 6]),
        (json!({"text__icontains": "ΣΟΦ"}), vec![4]),
        // σ, ς and Σ all fold to Σ.
        (json!({"text__icontains": "ς"}), vec![4]),
        (json!({"text__in": ["milk", "A_B", "nope"]}), vec![5, 6]),
        (json!({"priority__in": []}), vec![]),
        (json!({"priority__gt": 2}), vec![3, 6]),
        (json!({"priority__gte": 2}), vec![2, 3, 6]),
        (json!({"priority__lt": 0}), vec![4, 7]),
        (json!({"priority__lte": -32768}), vec![7]),
        (json!({"score__gt": 0}), vec![1, 5]),
        (json!({"score__lte": 0}), vec![3, 4, 6]),
        (json!({"text__lt": "B"}), vec![3, 6, 7]),
        (json!({"text__startswith": "É"}), vec![1, 2]),
        (json!({"text__startswith": "é"}), vec![]),
        (json!({"text__istartswith": "éc"}), vec![1, 2]),
        (json!({"text__endswith": "café"}), vec![1]),
        (json!({"text__iendswith": "CAFÉ"}), vec![1]),
        (json!({"text__endswith": ""}), vec![1, 2, 3, 4, 5, 6, 7]),
        (json!({"priority__range": [0, 3]}), vec![1, 2, 3, 5]),
        (json!({"priority__range": [3, 0]}), vec![]),
        (json!({"score__range": [-2.0, 0.0]}), vec![3, 4, 6]),
        (json!({"score__isnull": true}), vec![2, 7]),
        (json!({"score__isnull": false}), vec![1, 3, 4, 5, 6]),
        (json!({"done": false}), vec![1, 3, 5, 6]),
        (json!({"done": true, "note__isnull": false}), vec![2, 4, 7]),
        (json!({"list__id": 1, "priority__gte": 5}), vec![6]),
        (json!({"list": 1, "text__contains": "milk"}), vec![5]),
        (json!({"list_id__in": [2, 3]}), vec![]),
        (json!({"id__in": [1, 3, 99]}), vec![1, 3]),
        // Django's lossless coercions: `pk` is the primary key, a whole
        // float an integer, `null` in `in` is skipped, and an integer beyond
        // the column (here 16 bits; 64 bits alike) answers all or nothing.
        (json!({"pk": 2}), vec![2]),
        (json!({"pk__in": [2, 4]}), vec![2, 4]),
        (json!({"priority": 5.0}), vec![6]),
        (json!({"note__in": [null, "x"]}), vec![3]),
        (json!({"note__in": [null]}), vec![]),
        (json!({"priority": huge()}), vec![]),
        (json!({"priority__lt": huge()}), vec![1, 2, 3, 4, 5, 6, 7]),
        (json!({"priority__gt": huge()}), vec![]),
        (json!({"priority__gte": -40000}), vec![1, 2, 3, 4, 5, 6, 7]),
        (json!({"priority__lte": -40000}), vec![]),
        (json!({"priority__range": [3, 40000]}), vec![3, 6]),
        (json!({"priority__in": [40000, 5]}), vec![6]),
        (json!({"or": [{"text": "milk"}, {"priority__lt": 0}]}), vec![4, 5, 7]),
        // exclude(note="x"): rows whose note is NULL are in, as in Django.
        (json!({"not": {"note": "x"}}), vec![1, 2, 4, 5, 6, 7]),
        (json!({"not": {"note__icontains": "MILK"}}), vec![1, 2, 3, 4, 6, 7]),
        (json!({"not": {"score__gt": 0}}), vec![2, 3, 4, 6, 7]),
        (json!({"done": false, "or": [{"note": null}, {"not": {"score__lt": 1}}]}), vec![1, 5, 6]),
        (json!({"or": [{"list_id": 1}, {"list_id": 2}], "text__startswith": "É"}), vec![1, 2]),
        (json!({"and": [{"or": [{"priority": 1}, {"priority": 2}]}, {"not": {"note": ""}}]}), vec![1]),
        (json!({"not": {"or": [{"id__in": []}, {"done": true}]}}), vec![1, 3, 5, 6]),
    ];
    let mut c = server.client().await;
    let mut subs = Vec::new();
    for (filter, want) in &cases {
        let list = c.ok("todo-item", "get_list", json!({ "filter": filter })).await;
        assert_eq!(&ids(&list["rows"]), want, "get_list {filter}");
        let snapshot = c.ok("todo-item", "subscribe", json!({ "filter": filter })).await;
        assert_eq!(&ids(&snapshot["rows"]), want, "subscribe {filter}");
        subs.push(snapshot["sub"].clone());
    }
    // The same rows again, written after the subscriptions: each subscription
    // must be told of exactly the copies its filter matches, in memory.
    for row in ROWS {
        server.insert_item(row_json(*row)).await;
    }
    c.settle(&server).await;
    let offset = ROWS.len() as i64;
    for ((filter, want), sub) in cases.iter().zip(&subs) {
        let mut got: Vec<i64> = c
            .events
            .iter()
            .filter(|e| &e["sub"] == sub)
            .map(|e| {
                assert_eq!(e["action"], "created");
                e["data"]["id"].as_i64().unwrap() - offset
            })
            .collect();
        got.sort();
        // `id__in` and `pk` name fixed ids, so the new copies never match them.
        let fixed = ["id__in", "pk", "pk__in"].iter().any(|k| filter.get(*k).is_some());
        let want: Vec<i64> = if fixed { vec![] } else { want.clone() };
        assert_eq!(got, want, "events for {filter}");
    }
}

/// "My items, or items in the lists shared with me": an `or` subscription
/// hears rows enter and leave as they are moved between lists and owners,
/// a `not` one as a nullable field goes to and from the excluded value, and
/// a route's scope still confines both.
#[tokio::test]
async fn or_and_not_subscriptions_follow_rows_in_and_out() {
    let server = TestServer::start().await;
    let mine_or_shared = json!({"or": [{"created_by": 7}, {"list_id__in": [10, 11]}]});
    let mut me = server.client_as(7).await;
    let mut other = server.client_as(8).await;
    let mut confined = server.client_as(666).await;
    let before = other
        .ok("todo-item", "create", json!({"data": {"list_id": 10, "text": "shared", "done": false, "priority": 0}}))
        .await;
    other
        .ok("todo-item", "create", json!({"data": {"list_id": 12, "text": "private", "done": false, "priority": 0}}))
        .await;

    let snapshot = me.ok("todo-item", "subscribe", json!({"filter": mine_or_shared})).await;
    assert_eq!(ids(&snapshot["rows"]), vec![before["id"].as_i64().unwrap()]);
    let mut mine = View::new(&snapshot);
    let not_secret = me.ok("todo-item", "subscribe", json!({"filter": {"not": {"note": "secret"}}})).await;
    assert_eq!(not_secret["rows"].as_array().unwrap().len(), 2, "NULL notes are not 'secret'");
    let mut visible = View::new(&not_secret);
    let scoped =
        confined.ok("todo-item", "subscribe", json!({"filter": {"or": [{"list_id": 1}, {"list_id": 10}]}})).await;
    assert_eq!(ids(&scoped["rows"]), Vec::<i64>::new(), "the scope (list 1) still holds inside an or");
    let mut in_scope = View::new(&scoped);

    let own = me
        .ok("todo-item", "create", json!({"data": {"list_id": 12, "text": "mine", "done": false, "priority": 0}}))
        .await;
    let moved = other
        .ok("todo-item", "create", json!({"data": {"list_id": 13, "text": "moved", "done": false, "priority": 0}}))
        .await;
    let (own, moved) = (own["id"].clone(), moved["id"].clone());
    for (list, note) in [(11, Value::Null), (13, json!("secret")), (10, json!("secret")), (1, Value::Null)] {
        other.ok("todo-item", "update", json!({"id": moved, "data": {"list_id": list, "note": note}})).await;
        me.settle(&server).await;
        for event in std::mem::take(&mut me.events) {
            if event["sub"] == mine.sub {
                mine.apply(&event);
            } else {
                visible.apply(&event);
            }
        }
        let has = |view: &View, id: &Value| view.rows.contains_key(&id.as_i64().unwrap());
        assert!(has(&mine, &own), "my own item, in an unshared list");
        assert_eq!(has(&mine, &moved), [10, 11].contains(&list), "moved to list {list}");
        assert_eq!(has(&visible, &moved), note.is_null(), "note {note}");
        assert!(has(&visible, &own));
        confined.settle(&server).await;
        for event in std::mem::take(&mut confined.events) {
            in_scope.apply(&event);
        }
        assert_eq!(has(&in_scope, &moved), list == 1, "confined to list 1, moved to {list}");
    }
    // Equal snapshots: what the subscriptions hold is what get_list reads now.
    for (view, filter) in [(&mine, mine_or_shared), (&visible, json!({"not": {"note": "secret"}}))] {
        let list = me.ok("todo-item", "get_list", json!({"filter": filter})).await;
        assert_eq!(view.rows.keys().copied().collect::<Vec<_>>(), ids(&list["rows"]), "{filter}");
    }
}

/// Nesting is bounded like the rest of a filter: every nested key counts
/// towards `max_filter_terms`, and `or`/`and`/`not` nest at most 8 deep.
#[tokio::test]
async fn nested_filters_are_bounded() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut deep = json!({"id": 1});
    for _ in 0..8 {
        deep = json!({"not": deep});
    }
    c.ok("todo-item", "get_list", json!({"filter": deep})).await;
    let error = c.err("todo-item", "subscribe", json!({"filter": {"not": deep}})).await;
    assert_eq!(error["code"], "bad_filter");
    assert!(error["fields"]["filter"][0].as_str().unwrap().contains("at most 8 deep, not 9"), "{error}");
    let wide: Vec<Value> = (0..32).map(|i| json!({"id": i, "done": true})).collect();
    let error = c.err("todo-item", "get_list", json!({"filter": {"or": wide}})).await;
    assert!(error["fields"]["filter"][0].as_str().unwrap().contains("at most 64 terms, not 65"), "{error}");
    let error = c.err("todo-item", "get_list", json!({"filter": {"or": [{"text__icontanis": "x"}, {}]}})).await;
    assert_eq!(error["code"], "bad_filter");
    let fields = error["fields"].as_object().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), vec!["or.0.text__icontanis", "or.1"], "{error}");
}
