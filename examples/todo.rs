//! A collaborative to-do app: lists and items synced live between browsers.
//!
//! ```text
//! cargo run --example todo                      # http://127.0.0.1:8000/
//! WYRM_PORT=0 WYRM_DB=/tmp/t.db cargo run --example todo   # any free port
//! WYRM_DB=postgres://me@localhost/todo cargo run --example todo --features postgres
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example todo # with other processes
//! WYRM_METRICS=1 WYRM_LOG_FORMAT=json RUST_LOG=info cargo run --example todo # /metrics, JSON logs
//! ```
//!
//! SIGTERM drains it (clients are sent what is queued, then close code 1012
//! and reconnect elsewhere); Ctrl-C stops it at once. See `docs/operations.md`.
//!
//! `WYRM_DB` is anything [`Db::open`] takes: a SQLite file (created if
//! missing) or a PostgreSQL URL; the tables are created in either.
//!
//! It serves the page (`examples/todo/`), the JS client (served by wyrmhole at
//! `/wyrmhole.js` and `/wyrmhole/*.js`), the WebSocket at `/ws`, and a tiny "admin" HTTP API that
//! writes through [`Db::write`], so edits made by server code show up live in
//! every browser, the way a Django-admin save does in SwampDragon:
//!
//! ```text
//! curl -X POST localhost:8000/admin/items    -d '{"list_id": 1, "text": "milk", "done": false}'
//! curl -X POST localhost:8000/admin/items/3  -d '{"done": true}'
//! ```
//!
//! The page also shows who else views a list and which item they are
//! editing: presence on the topic `todo-list:<id>` (with Redis, across
//! processes). Server code can push to a list's channel or to one user:
//!
//! ```text
//! curl -X POST localhost:8000/admin/publish/todo-list:1 -d '{"note": "hi"}'
//! curl -X POST localhost:8000/admin/push/42             -d '{"note": "hi"}'
//! ```

use std::io::Write;

use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Filter, Reply};
use wyrmhole::{Builder, ChannelAccess, Db, Error, FieldErrors, Identity, Model, Route, Wyrmhole};

diesel::table! {
    todo_lists (id) {
        id -> Integer,
        name -> Text,
    }
}

diesel::table! {
    todo_items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        done -> Bool,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_lists)]
#[wyrm(route = "todo-list")]
struct TodoList {
    id: i32,
    #[wyrm(update)]
    name: String,
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_items)]
#[wyrm(route = "todo-item")]
struct TodoItem {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
}

/// No `ON DELETE CASCADE`: rows deleted by the database behind wyrmhole's back
/// would never be published. Deleting a list that still has items is a
/// `conflict`.
const SCHEMA_SQLITE: &str = "
    CREATE TABLE IF NOT EXISTS todo_lists (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS todo_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS todo_items_list ON todo_items (list_id);
";

/// The same tables in PostgreSQL's SQL.
const SCHEMA_POSTGRES: &str = "
    CREATE TABLE IF NOT EXISTS todo_lists (
        id SERIAL PRIMARY KEY,
        name TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS todo_items (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX IF NOT EXISTS todo_items_list ON todo_items (list_id);
";

const MAX_TEXT: usize = 500;

/// The rules every item obeys, whoever writes it (clients or the admin API).
fn check_item(item: &TodoItem) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if item.text.trim().is_empty() {
        errors.add("text", "may not be empty");
    }
    if item.text.chars().count() > MAX_TEXT {
        errors.add("text", format!("must be at most {MAX_TEXT} characters"));
    }
    errors.into_result()
}

fn check_list(list: &TodoList) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if list.name.trim().is_empty() {
        errors.add("name", "may not be empty");
    }
    if list.name.chars().count() > 100 {
        errors.add("name", "must be at most 100 characters");
    }
    errors.into_result()
}

/// Demo authentication: any `?token=NAME` signs in as NAME (with a user id
/// derived from it); no token is anonymous. A real app checks a session here.
fn authenticate(req: &wyrmhole::UpgradeRequest) -> Result<Identity, wyrmhole::AuthError> {
    Ok(match req.token() {
        Some(name) if !name.is_empty() => Identity::user(user_id(name)).with_name(name),
        _ => Identity::anonymous(),
    })
}

/// A stable positive id for a name (FNV-1a), so a name is the same user across restarts.
fn user_id(name: &str) -> i64 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i64::from(hash & 0x7fff_ffff) + 1
}

fn app(db: Db) -> Builder {
    Wyrmhole::builder(db)
        .route(
            Route::<TodoList>::new()
                .validate(|v| check_list(v.new))
                // Anonymous visitors may add and rename lists, not delete them.
                .login_required(&["delete"]),
        )
        .route(Route::<TodoItem>::new().validate(|v| check_item(v.new)).verb("clear_done", clear_done))
        // Anyone viewing a list may say so (and what they are editing)...
        .presence("todo-list:*", |_identity, _topic| true)
        // ... listen on its channel, and, signed in, talk on it.
        .channel("todo-list:*", |identity, _channel, access| {
            access == ChannelAccess::Subscribe || !identity.is_anonymous()
        })
        .authenticate(authenticate)
        .allow_anonymous()
}

/// `clear_done {list_id}`: deletes the list's done items in one transaction;
/// each delete is published like any other.
async fn clear_done(cx: wyrmhole::VerbContext, args: serde_json::Value) -> Result<serde_json::Value, Error> {
    let list_id = match &args {
        serde_json::Value::Object(o) if o.len() == 1 => o.get("list_id").and_then(|v| v.as_i64()),
        _ => None,
    };
    let list_id = list_id.ok_or_else(|| Error::bad_arg("list_id", "is required (a list id), and nothing else"))?;
    cx.db
        .write(move |tx| {
            let done = tx.select::<TodoItem>(&json!({ "list_id": list_id, "done": true }))?;
            for item in &done {
                tx.delete::<TodoItem>(item.id)?;
            }
            Ok::<_, Error>(json!({ "deleted": done.len() }))
        })
        .await
}

/// Static files, embedded so the binary runs from anywhere.
fn assets() -> warp::filters::BoxedFilter<(Response,)> {
    const JS: &str = "text/javascript; charset=utf-8";
    let files: &[(&str, &str, &'static str)] = &[
        ("", "text/html; charset=utf-8", include_str!("todo/index.html")),
        ("app.js", JS, include_str!("todo/app.js")),
        ("style.css", "text/css; charset=utf-8", include_str!("todo/style.css")),
    ];
    let files: std::collections::HashMap<String, (&str, &str)> =
        files.iter().map(|(path, ty, body)| (path.to_string(), (*ty, *body))).collect();
    let files = std::sync::Arc::new(files);
    warp::get()
        .and(warp::path::full())
        .and_then(move |path: warp::path::FullPath| {
            let files = files.clone();
            async move {
                let key = path.as_str().trim_start_matches('/');
                match files.get(key) {
                    Some((ty, body)) => {
                        let reply = warp::reply::with_header(*body, "content-type", *ty);
                        // A dev example: never serve a stale client after a rebuild.
                        Ok(warp::reply::with_header(reply, "cache-control", "no-store").into_response())
                    }
                    None => Err(warp::reject::not_found()),
                }
            }
        })
        .boxed()
}

/// `POST /admin/items` creates, `POST /admin/items/<id>` updates: server-side
/// writes through the save API, published to subscribers like client writes.
/// No authentication: the example listens on 127.0.0.1 only.
fn admin(db: Db, app: Wyrmhole) -> warp::filters::BoxedFilter<(Response,)> {
    let with_db = warp::any().map(move || db.clone());
    let body = warp::body::content_length_limit(64 * 1024).and(warp::body::bytes());
    let create = warp::path!("admin" / "items").and(warp::post()).and(body).and(with_db.clone()).then(
        |body: Bytes, db: Db| async move {
            respond(parse(&body).map(|data| async move {
                db.write(move |tx| {
                    let item = tx.insert::<TodoItem>(&data)?;
                    check_item(&item).map_err(Error::ValidationFailed)?;
                    Ok(published(&item))
                })
                .await
            }))
            .await
        },
    );
    let update = warp::path!("admin" / "items" / i32).and(warp::post()).and(body).and(with_db).then(
        |id: i32, body: Bytes, db: Db| async move {
            respond(parse(&body).map(|data| async move {
                db.write(move |tx| {
                    let missing = Error::NotFound { route: TodoItem::ROUTE.into(), id: id.to_string() };
                    let item = tx.update::<TodoItem>(id, &data)?.ok_or(missing)?;
                    check_item(&item).map_err(Error::ValidationFailed)?;
                    Ok(published(&item))
                })
                .await
            }))
            .await
        },
    );
    // Server push: any JSON to a channel's subscribers, or to one user.
    let to_channel = {
        let app = app.clone();
        warp::path!("admin" / "publish" / String).and(warp::post()).and(body).then(
            move |channel: String, body: Bytes| {
                let app = app.clone();
                async move { respond(parse(&body).map(|data| async move { pushed(app.publish(&channel, &data)) })).await }
            },
        )
    };
    let to_user =
        warp::path!("admin" / "push" / i64).and(warp::post()).and(body).then(move |user: i64, body: Bytes| {
            let app = app.clone();
            async move { respond(parse(&body).map(|data| async move { pushed(app.to_user(user, &data)) })).await }
        });
    create.or(update).unify().or(to_channel).unify().or(to_user).unify().boxed()
}

fn pushed(outcome: Result<(), Error>) -> Result<serde_json::Value, Error> {
    outcome.map(|()| json!({ "sent": true }))
}

fn parse(body: &[u8]) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::bad_arg("body", format!("invalid JSON: {e}")))
}

fn published<M: Model>(row: &M) -> serde_json::Value {
    wyrmhole::record::published(M::FIELDS, &row.to_row())
}

/// Runs the write (if the body parsed) and answers with the row or the error.
async fn respond<F>(write: Result<F, Error>) -> Response
where
    F: std::future::Future<Output = Result<serde_json::Value, Error>>,
{
    let outcome = match write {
        Ok(write) => write.await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(row) => warp::reply::json(&row).into_response(),
        Err(e) => {
            let status = match e.code() {
                "not_found" => StatusCode::NOT_FOUND,
                "conflict" => StatusCode::CONFLICT,
                "internal" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            warp::reply::with_status(warp::reply::json(&e.to_json()), status).into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `WYRM_LOG_FORMAT=json`: one JSON object per line, with the fields of
    // the connection and request spans, for a log collector.
    let logs = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env());
    if std::env::var("WYRM_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().with_current_span(false).init();
    } else {
        logs.init();
    }
    let port: u16 = std::env::var("WYRM_PORT").ok().map(|p| p.parse()).transpose()?.unwrap_or(8000);
    let url = std::env::var("WYRM_DB").unwrap_or_else(|_| "todo.db".into());

    let db = Db::open(&url)?;
    let schema = match db.dialect() {
        wyrmhole::sql::Dialect::Sqlite => SCHEMA_SQLITE,
        wyrmhole::sql::Dialect::Postgres => SCHEMA_POSTGRES,
    };
    db.execute_batch(schema).await?;
    let mut app = app(db.clone());
    // Prometheus metrics, for an operator's scraper (not for the internet).
    if std::env::var("WYRM_METRICS").is_ok_and(|v| v == "1") {
        app = app.metrics_path("/metrics");
    }
    // Several processes on one database stay in sync through Redis.
    if let Ok(redis) = std::env::var("REDIS_URL") {
        app = app.redis(&redis);
        println!("changes shared with other processes through {redis}");
    }
    let app = app.build()?;
    let extra = assets().or(admin(db, app.clone())).unify().boxed();
    let server = app.serve_with(extra, ([127, 0, 0, 1], port)).await?;

    // Tests and scripts parse this line for the port; flush so they see it at once.
    println!("wyrmhole todo example at http://{}/", server.addr());
    std::io::stdout().flush()?;

    // Ctrl-C stops at once (1001); SIGTERM, what an orchestrator sends
    // before a restart, drains: clients get what was queued for them, then
    // 1012, and reconnect to another process.
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let terminated = terminate.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminated => {
            let left = server.drain(std::time::Duration::from_secs(10)).await;
            tracing::info!(left, "drained");
        }
    }
    server.shutdown().await;
    Ok(())
}
