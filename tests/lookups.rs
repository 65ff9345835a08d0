//! Every lookup end to end: `get_list` (SQL), the `subscribe` snapshot (SQL)
//! and the events of later writes (in memory) select the same rows.
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
