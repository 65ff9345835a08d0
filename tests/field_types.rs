//! Dates, times, UUIDs, JSON, `f32` and an application's own field type,
//! end to end over the WebSocket: written by clients in Django REST
//! framework's forms, published in them, filtered with transforms and key
//! paths in SQL (`get_list`, the subscribe snapshot) and in memory (events),
//! on SQLite and PostgreSQL.
mod common;

use common::*;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::sql_types::BigInt;
use serde_json::{json, Value as Json};
use wyrmhole::sql::Dialect;
use wyrmhole::{Db, FieldType, FieldValue, Route, Storage, Value, ValueRef, Wyrmhole};

diesel::table! {
    notes (id) {
        id -> Integer,
        title -> Text,
        due -> Nullable<Date>,
        remind_at -> Nullable<Timestamp>,
        created_at -> wyrmhole::sql::types::TimestampUtc,
        key -> wyrmhole::sql::types::Uuid,
        settings -> Nullable<wyrmhole::sql::types::Json>,
        weight -> Float,
        price -> BigInt,
    }
}

/// An amount of money in whole cents, written by clients as `"12.50"`:
/// an application's own field type, stored and compared as an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cents(i64);

fn cents_from_json(json: &Json) -> Result<Value, String> {
    let text = json.as_str().ok_or("must be an amount such as \"12.50\"")?;
    let (units, cents) = text.split_once('.').ok_or("must be an amount such as \"12.50\"")?;
    match (units.parse::<i64>(), cents.len(), cents.parse::<i64>()) {
        (Ok(u), 2, Ok(c)) if u >= 0 && !cents.starts_with(['+', '-']) => Ok(Value::Int(u * 100 + c)),
        _ => Err("must be an amount such as \"12.50\"".into()),
    }
}

fn cents_to_json(value: &Value) -> Json {
    match value {
        Value::Int(c) => json!(format!("{}.{:02}", c / 100, c % 100)),
        other => other.to_json(),
    }
}

impl FieldValue for Cents {
    const TYPE: FieldType = FieldType::custom(Storage::I64, "amount", cents_from_json, cents_to_json);
    fn value_ref(&self) -> ValueRef<'_> {
        ValueRef::Int(self.0)
    }
}

impl<DB: Backend> FromSql<BigInt, DB> for Cents
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        i64::from_sql(bytes).map(Cents)
    }
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = notes)]
#[wyrm(route = "note")]
pub struct Note {
    pub id: i32,
    #[wyrm(update)]
    pub title: String,
    #[wyrm(update)]
    pub due: Option<chrono::NaiveDate>,
    #[wyrm(update)]
    pub remind_at: Option<chrono::NaiveDateTime>,
    #[wyrm(update)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[wyrm(update)]
    pub key: uuid::Uuid,
    #[wyrm(update)]
    pub settings: Option<serde_json::Value>,
    #[wyrm(update)]
    pub weight: f32,
    #[wyrm(update)]
    pub price: Cents,
}

const SCHEMA: &str = "
    CREATE TABLE pings (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL);
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        due DATE,
        remind_at TIMESTAMP,
        created_at TIMESTAMPTZ NOT NULL,
        key TEXT NOT NULL,
        settings TEXT,
        weight REAL NOT NULL,
        price BIGINT NOT NULL
    );
";

const SCHEMA_POSTGRES: &str = "
    CREATE TABLE pings (id SERIAL PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TABLE notes (
        id SERIAL PRIMARY KEY,
        title TEXT NOT NULL,
        due DATE,
        remind_at TIMESTAMP,
        created_at TIMESTAMPTZ NOT NULL,
        key UUID NOT NULL,
        settings JSONB,
        weight REAL NOT NULL,
        price BIGINT NOT NULL
    );
";

async fn start() -> TestServer {
    let (url, dir) = database::fresh();
    let db = Db::open(&url).unwrap();
    let schema = if db.dialect() == Dialect::Sqlite { SCHEMA } else { SCHEMA_POSTGRES };
    db.execute_batch(schema).await.unwrap();
    let app = Wyrmhole::builder(db.clone())
        .route(Route::<Ping>::new())
        .route(Route::<Note>::new())
        .allow_anonymous()
        .config(test_config())
        .build()
        .unwrap();
    let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
    TestServer { server, app, db, db_url: url, _dir: dir }
}

fn note(title: &str, due: Option<&str>, created_at: &str, theme: Option<&str>, price: &str) -> Json {
    json!({
        "title": title,
        "due": due,
        "remind_at": due.map(|d| format!("{d} 9:30")),
        "created_at": created_at,
        "key": format!("{:032X}", title.len() as u128 * 0x1111),
        "settings": theme.map(|t| json!({"theme": t, "font": {"size": 12}})),
        "weight": 0.1,
        "price": price,
    })
}

fn ids(rows: &Json) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn written_published_and_filtered_as_values() {
    let server = start().await;
    let mut c = server.client().await;
    // 2024-02-29 was a Thursday (week_day 5); the created_at offsets are
    // converted to UTC.
    let first = c
        .ok(
            "note",
            "create",
            json!({"data": note("a", Some("2024-2-29"), "2024-02-29T13:05:00.5+01:00", Some("dark"), "12.50")}),
        )
        .await;
    assert_eq!(first["due"], "2024-02-29");
    assert_eq!(first["remind_at"], "2024-02-29T09:30:00");
    assert_eq!(first["created_at"], "2024-02-29T12:05:00.500000Z");
    assert_eq!(first["key"], "00000000-0000-0000-0000-000000001111");
    assert_eq!(first["settings"], json!({"theme": "dark", "font": {"size": 12}}));
    assert_eq!(first["weight"], json!(0.1), "rounded to f32 once, and written as that f32");
    assert_eq!(first["price"], "12.50");
    c.ok(
        "note",
        "create",
        json!({"data": note("bb", Some("2023-12-31"), "2023-12-31T23:59:59Z", Some("light"), "9.99")}),
    )
    .await;
    c.ok("note", "create", json!({"data": note("ccc", None, "2024-03-03T00:00:00Z", None, "100.00")})).await;
    c.ok(
        "note",
        "create",
        json!({"data": note("dddd", Some("2024-10-05"), "2024-10-05T18:00:00Z", Some("dark"), "0.05")}),
    )
    .await;

    let cases: Vec<(Json, Vec<i64>)> = vec![
        (json!({"due": "2024-02-29"}), vec![1]),
        (json!({"due__gt": "2024-1-5"}), vec![1, 4]),
        (json!({"due__year": 2024}), vec![1, 4]),
        (json!({"due__year__gte": 2024, "due__month__lt": 10}), vec![1]),
        (json!({"due__week_day": 5}), vec![1]),
        (json!({"due__quarter__in": [4, null]}), vec![2, 4]),
        (json!({"created_at__date": "2024-02-29"}), vec![1]),
        (json!({"created_at__hour__gte": 18}), vec![2, 4]),
        (json!({"created_at__lt": "2024-01-01T01:00:00+01:00"}), vec![2]),
        (json!({"remind_at__range": ["2024-01-01", "2024-12-31T23:59"]}), vec![1, 4]),
        (json!({"key": "00000000000000000000000000002222"}), vec![2]),
        (json!({"key__gt": "00000000-0000-0000-0000-000000002222"}), vec![3, 4]),
        // Text lookups read the hyphenated lowercase text, as Django on PostgreSQL.
        (json!({"key__endswith": "0000-000000003333"}), vec![3]),
        (json!({"key__icontains": "0-00000000444"}), vec![4]),
        (json!({"key__contains": "0000-0000-0000-0000"}), vec![1, 2, 3, 4]),
        (json!({"key__contains": "00000000000000000000"}), vec![]),
        (json!({"settings__theme": "dark"}), vec![1, 4]),
        (json!({"settings__theme__in": ["dark", null, 1]}), vec![1, 4]),
        (json!({"settings__in": ["dark", 1]}), vec![]),
        (json!({"settings__font__size": 12.0}), vec![1, 2, 4]),
        (json!({"settings__has_key": "font"}), vec![1, 2, 4]),
        // Missing, or no document at all (PostgreSQL's `-> 'theme' IS NULL`).
        (json!({"settings__theme__isnull": true}), vec![3]),
        (json!({"settings__font__isnull": false}), vec![1, 2, 4]),
        (json!({"settings__isnull": true}), vec![3]),
        (json!({"price__gt": "10.00"}), vec![1, 3]),
        (json!({"pk__lt": 99999999999999999999.0}), vec![1, 2, 3, 4]),
        (json!({"weight": 0.1}), vec![1, 2, 3, 4]),
        (json!({"pk__in": [1, 3]}), vec![1, 3]),
    ];
    let mut views = Vec::new();
    for (filter, want) in &cases {
        let list = c.ok("note", "get_list", json!({ "filter": filter, "order_by": ["-due", "pk"] })).await;
        assert_eq!(&ids(&list["rows"]), want, "get_list {filter}");
        let snapshot = c.ok("note", "subscribe", json!({ "filter": filter })).await;
        assert_eq!(&ids(&snapshot["rows"]), want, "subscribe {filter}");
        views.push((filter.clone(), View::new(&snapshot)));
    }

    // Move rows in and out of every filter; the events (matched in memory)
    // must leave each subscription holding what SQL now selects.
    c.ok("note", "update", json!({"id": 1, "data": {"due": "2025-02-28", "settings": {"theme": "light"}}})).await;
    c.ok("note", "update", json!({"id": 2, "data": {"created_at": "2024-02-29T18:30:00Z", "price": "10.01"}})).await;
    c.ok("note", "update", json!({"id": 3, "data": {"due": "2024-02-29", "settings": {"theme": null}}})).await;
    c.ok(
        "note",
        "create",
        json!({"data": note("eeeee", Some("2024-12-28"), "2024-12-28T23:00:00Z", Some("dark"), "3.00")}),
    )
    .await;
    c.ok("note", "delete", json!({"id": 4})).await;
    c.settle(&server).await;
    for event in c.events.drain(..).collect::<Vec<_>>() {
        let view = views.iter_mut().find(|(_, v)| v.sub == event["sub"]).map(|(_, v)| v).unwrap();
        view.apply(&event);
    }
    for (filter, view) in &views {
        let list = c.ok("note", "get_list", json!({ "filter": filter })).await;
        let rows: Vec<&Json> = list["rows"].as_array().unwrap().iter().collect();
        let held: Vec<&Json> = view.rows.values().collect();
        assert_eq!(held, rows, "subscription to {filter} after the writes");
    }
}

#[tokio::test]
async fn malformed_operands_are_bad_filters_naming_the_key() {
    let server = start().await;
    let mut c = server.client().await;
    for (filter, key, needle) in [
        (json!({"due__gt": "2024-02-30"}), "due__gt", "must be a date"),
        (json!({"due": "yesterday"}), "due", "must be a date"),
        (json!({"due__hour": 3}), "due__hour", "unknown lookup `hour`"),
        (json!({"remind_at": "2024-02-29T10:00Z"}), "remind_at", "without a time zone offset"),
        (json!({"created_at__year": "2024"}), "created_at__year", "must be a 32-bit integer, not a string"),
        (json!({"key": "not-a-uuid"}), "key", "must be a UUID"),
        (json!({"key__contains": 1}), "key__contains", "must be a string"),
        (json!({"settings__theme": {"a": 1}}), "settings__theme", "compare an object's keys"),
        (json!({"settings__gt": 1}), "settings__gt", "does not apply"),
        (json!({"settings__0": 1}), "settings__0", "array indexes"),
        (json!({"price": "12.5"}), "price", "must be an amount"),
        (json!({"weight": 1e39}), "weight", "32-bit number"),
    ] {
        let error = c.err("note", "get_list", json!({ "filter": filter })).await;
        assert_eq!(error["code"], "bad_filter", "{filter}: {error}");
        let message = error["fields"][key].to_string();
        assert!(message.contains(needle), "{filter}: {error}");
    }
    let error = c.err("note", "get_list", json!({"order_by": "settings"})).await;
    assert_eq!(error["code"], "bad_args", "{error}");
    let error = c.err("note", "create", json!({"data": note("x", Some("2024-02-30"), "now", None, "1")})).await;
    assert_eq!(error["code"], "invalid_data", "{error}");
    for key in ["due", "created_at", "price"] {
        assert!(error["fields"][key].is_array(), "{key}: {error}");
    }
}
