//! A collaborative to-do app: lists and items synced live between browsers.
//!
//! ```text
//! cargo run --example todo                      # http://127.0.0.1:8000/
//! WYRM_PORT=0 WYRM_DB=/tmp/t.db cargo run --example todo   # any free port
//! WYRM_DB=postgres://me@localhost/todo cargo run --example todo --features postgres
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example todo # with other processes
//! cargo run --example todo -- --typescript examples/todo/routes.d.ts  # TypeScript types
//! WYRM_METRICS=1 WYRM_LOG_FORMAT=json RUST_LOG=info cargo run --example todo # /metrics, JSON logs
//! ```
//!
//! SIGTERM drains it (clients are sent what is queued, then close code 1012
//! and reconnect elsewhere); Ctrl-C stops it at once. See `docs/operations.md`.
//!
//! `WYRM_DB` is anything [`Db::open`] takes: a SQLite file (created if
//! missing) or a PostgreSQL URL; the tables are created in either.
//! `WYRM_ORIGINS` (comma-separated, e.g. `http://localhost:5173`) lists the
//! other origins whose pages may load the client and open the socket.
//!
//! Sign-in is a demo: `/?token=alice` signs in as alice (a token is a name
//! of letters, digits, `_`, `-` or `.`, at most 32); any other token is
//! refused (HTTP 401), and no token is the shared guest board. A list is
//! seen by its members: its creator, and whoever the creator shares it with
//! by name (`share {"list_id": 1, "user": "bob"}` on `todo-list`, undone by
//! `unshare`, or by the member with `leave {"list_id": 1}`); every guest is
//! one user (0), so guests share the lists guests create. Sharing shows the
//! list and its items in the other user's page at once, unsharing or leaving
//! takes them away. A real app checks a session in `sign_in`.
//!
//! It serves the page (`examples/todo/`), the JS client (served by wyrmhole at
//! `/wyrmhole.js` and `/wyrmhole/*.js`), the WebSocket at `/ws`, and a tiny "admin" HTTP API that
//! writes through [`Db::write`], so edits made by server code show up live in
//! every browser, the way a Django-admin save does in SwampDragon:
//!
//! ```text
//! curl -X POST localhost:8000/admin/lists    -d '{"name": "Shopping"}'   # a guests' list
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
use warp::Filter;
use wyrmhole::{Builder, ChannelAccess, Db, Error, FieldErrors, Identity, Route, Wyrmhole};

diesel::table! {
    todo_lists (id) {
        id -> Integer,
        name -> Text,
        owner_id -> BigInt,
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

diesel::table! {
    list_members (id) {
        id -> Integer,
        list_id -> Integer,
        user_id -> BigInt,
        name -> Text,
    }
}

/// A list, seen by its members (see [`ListMember`]): the scope follows
/// `members`, so sharing or unsharing it moves it (and its items) into or
/// out of the other user's subscriptions live.
#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_lists)]
#[wyrm(
    route = "todo-list",
    // `siblings`: a membership reaches the other members of its list
    // (list-member's scope, `list__members__user_id`). No `has_many` of
    // items: no filter here asks a list about its items, and one would make
    // every item write carry (and read) its whole list in the list's change.
    has_many(members = ListMember, via = list_id, siblings)
)]
struct TodoList {
    id: i32,
    #[wyrm(update)]
    name: String,
    /// The user who created the list (0: the guests' shared board), set by
    /// the server on create. Published: the page offers sharing, renaming
    /// and deleting to the owner only, and the server checks the same.
    owner_id: i64,
}

/// An item of a list; visible to the list's members (through `list`).
#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_items)]
#[wyrm(route = "todo-item")]
struct TodoItem {
    id: i32,
    #[wyrm(update, belongs_to = TodoList)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
}

/// Who may see a list: one row per member, the owner's included. Written
/// only by the server (on create, `share`, `unshare`); the page shows them.
#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = list_members)]
#[wyrm(route = "list-member")]
struct ListMember {
    id: i32,
    #[wyrm(belongs_to = TodoList)]
    list_id: i32,
    user_id: i64,
    /// The member's sign-in name ("guest" for the guests' board), shown by the page.
    name: String,
}

/// No `ON DELETE CASCADE`: rows deleted by the database behind wyrmhole's back
/// would never be published. Deleting a list that still has items is a
/// `conflict`; its memberships go with it (`Route::on_delete`).
///
/// `todo_items.owner_id` of databases made by earlier versions of the
/// example is left in place and no longer read: a list's members decide.
const SCHEMA_SQLITE: &str = "
    CREATE TABLE IF NOT EXISTS todo_lists (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        owner_id INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS todo_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS todo_items_list ON todo_items (list_id);
    CREATE TABLE IF NOT EXISTS list_members (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        user_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (list_id, user_id)
    );
    CREATE INDEX IF NOT EXISTS list_members_user ON list_members (user_id);
";

/// The same tables in PostgreSQL's SQL.
const SCHEMA_POSTGRES: &str = "
    CREATE TABLE IF NOT EXISTS todo_lists (
        id SERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS todo_items (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX IF NOT EXISTS todo_items_list ON todo_items (list_id);
    ALTER TABLE todo_lists ADD COLUMN IF NOT EXISTS owner_id BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS list_members (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL REFERENCES todo_lists (id),
        user_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (list_id, user_id)
    );
    CREATE INDEX IF NOT EXISTS list_members_user ON list_members (user_id);
";

/// Lists of databases made before memberships existed get their owner as
/// their member (the guests, for the lists of the oldest ones), so that
/// nobody loses a list. Idempotent, so it runs at every start; `ON
/// CONFLICT` (both databases) lets processes starting together race.
const MEMBERS_OF_OLD_LISTS: &str = "
    INSERT INTO list_members (list_id, user_id, name)
    SELECT id, owner_id, CASE WHEN owner_id = 0 THEN 'guest' ELSE 'owner' END FROM todo_lists l
    WHERE NOT EXISTS (SELECT 1 FROM list_members m WHERE m.list_id = l.id AND m.user_id = l.owner_id)
    ON CONFLICT DO NOTHING;
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

/// A list's checks for a client's create or rename: the members it is
/// shared with may edit its items, but only its owner renames it.
fn validate_list(v: &wyrmhole::Validation<'_, TodoList>) -> Result<(), FieldErrors> {
    check_list(v.new)?;
    match v.old {
        Some(old) if old.owner_id != uid(v.identity) => {
            let mut errors = FieldErrors::new();
            errors.add("name", "only the list's owner may rename it");
            errors.into_result()
        }
        _ => Ok(()),
    }
}

/// Whether `name` can be a sign-in name: letters, digits, `_`, `-`, `.`, at most 32.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// Demo sign-in: a token that is a plain name ([`valid_name`]) signs in as
/// that name, with a user id derived from it; any other token is refused;
/// no token is a guest. A real app looks the token up in its sessions here.
fn sign_in(token: Option<&str>) -> Result<Identity, wyrmhole::AuthError> {
    let Some(name) = token.filter(|t| !t.is_empty()) else { return Ok(Identity::anonymous()) };
    if !valid_name(name) {
        return Err(wyrmhole::AuthError::new("unknown token: sign in again"));
    }
    Ok(Identity::user(user_id(name)).with_name(name))
}

fn authenticate(req: &wyrmhole::UpgradeRequest) -> Result<Identity, wyrmhole::AuthError> {
    sign_in(req.token())
}

/// Which user an identity is: its id, or 0 for every guest (so guests
/// share the lists guests create: the guests' board).
fn uid(identity: &Identity) -> i64 {
    identity.user_id().unwrap_or(0)
}

/// The name a member is shown under.
fn member_name(identity: &Identity) -> String {
    identity.name().unwrap_or("guest").to_owned()
}

/// A stable positive id for a name (FNV-1a), so a name is the same user across restarts.
fn user_id(name: &str) -> i64 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i64::from(hash & 0x7fff_ffff) + 1
}

/// The routes' TypeScript declarations (`examples/todo/routes.d.ts`).
fn typescript() -> wyrmhole::TypeScript {
    wyrmhole::TypeScript::new().route::<TodoList>().route::<TodoItem>().route::<ListMember>()
}

fn app(db: Db) -> Builder {
    Wyrmhole::builder(db)
        .route(
            Route::<TodoList>::new()
                // The lists the caller is a member of.
                .scope(|who| Some(json!({ "members__user_id": uid(who) })))
                .initial(|who| json!({ "owner_id": uid(who) }))
                // The creator's membership, in the create's transaction:
                // without it the new list would be outside their scope.
                .on_create(|tx, who, list| add_member(tx, list.id, uid(who), &member_name(who)).map(drop))
                .on_delete(|tx, who, list| {
                    owner_only(list, who, "delete")?;
                    remove_members(tx, list.id)
                })
                .validate(validate_list)
                .verb("delete_with_items", delete_with_items)
                .write_verb("share", share)
                .write_verb("unshare", unshare)
                .write_verb("leave", leave)
                // Guests may add and rename lists of their board, not delete,
                // share or leave them.
                .login_required(&["delete", "delete_with_items", "share", "unshare", "leave"]),
        )
        .route(
            Route::<TodoItem>::new()
                .scope(|who| Some(json!({ "list__members__user_id": uid(who) })))
                .validate(|v| check_item(v.new))
                .verb("clear_done", clear_done),
        )
        .route(
            Route::<ListMember>::new()
                // The members of the caller's lists.
                .scope(|who| Some(json!({ "list__members__user_id": uid(who) })))
                .permission(|_who, verb| match verb {
                    "create" | "update" | "delete" => {
                        Err(Error::Forbidden("members change through todo-list's share and unshare".into()))
                    }
                    _ => Ok(()),
                }),
        )
        // Anyone viewing a list may say so (and what they are editing)...
        .presence("todo-list:*", |_identity, _topic| true)
        // ... listen on its channel, and, signed in, talk on it.
        .channel("todo-list:*", |identity, _channel, access| {
            access == ChannelAccess::Subscribe || !identity.is_anonymous()
        })
        .authenticate(authenticate)
        .allow_anonymous()
}

#[path = "todo/verbs.rs"]
mod verbs;
use verbs::{add_member, clear_done, delete_with_items, leave, owner_only, remove_members, share, unshare};

#[path = "todo/http.rs"]
mod http;

/// Why the example could not start, said so that the reader knows what to change.
fn startup_error(what: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    what.to_string().into()
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("todo example: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // `WYRM_LOG_FORMAT=json`: one JSON object per line, with the fields of
    // the connection and request spans, for a log collector.
    let logs = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env());
    if std::env::var("WYRM_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().with_current_span(false).init();
    } else {
        logs.init();
    }
    // `--typescript PATH`: write the routes' TypeScript declarations and exit.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice() {
        if flag == "--typescript" {
            typescript().write(path).map_err(|e| startup_error(format!("cannot write {path}: {e}")))?;
            return Ok(());
        }
    }
    let port: u16 = match std::env::var("WYRM_PORT") {
        Ok(p) => p.parse().map_err(|_| {
            startup_error(format!("WYRM_PORT={p:?} is not a port number: give 1-65535, or 0 for any free port"))
        })?,
        Err(_) => 8000,
    };
    let url = std::env::var("WYRM_DB").unwrap_or_else(|_| "todo.db".into());

    let db = Db::open(&url).map_err(|e| {
        startup_error(format!(
            "cannot open the database WYRM_DB={url:?}: {e}. Set WYRM_DB to a SQLite file in a writable \
             directory, or to a postgres:// URL (with --features postgres)"
        ))
    })?;
    let cannot_set_up = |e: Error| startup_error(format!("cannot create the tables in WYRM_DB={url:?}: {e}"));
    match db.dialect() {
        wyrmhole::sql::Dialect::Sqlite => {
            db.execute_batch(SCHEMA_SQLITE).await.map_err(cannot_set_up)?;
            // Databases of an earlier version of the example have no owners:
            // their lists become the guests' board. (SQLite has no `ADD
            // COLUMN IF NOT EXISTS`; the error says the column is there.)
            let add = "ALTER TABLE todo_lists ADD COLUMN owner_id INTEGER NOT NULL DEFAULT 0";
            if let Err(e) = db.execute_batch(add).await {
                if !e.to_string().contains("duplicate column") {
                    return Err(cannot_set_up(e));
                }
            }
            db.execute_batch(MEMBERS_OF_OLD_LISTS).await.map_err(cannot_set_up)?;
        }
        wyrmhole::sql::Dialect::Postgres => {
            // Other processes of the app may be writing meanwhile, and
            // PostgreSQL can pick this DDL as a deadlock's victim: a
            // transient refusal, so try again.
            let mut attempt = 0;
            loop {
                let setup = format!("{SCHEMA_POSTGRES}{MEMBERS_OF_OLD_LISTS}");
                match db.execute_batch(&setup).await {
                    Ok(()) => break,
                    Err(e) if attempt < 10 && e.to_string().contains("deadlock detected") => attempt += 1,
                    Err(e) => return Err(cannot_set_up(e)),
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
        }
    }
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
    if let Ok(origins) = std::env::var("WYRM_ORIGINS") {
        let origins: Vec<&str> = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
        for origin in &origins {
            if std::panic::catch_unwind(|| wyrmhole::Origins::listed().allow(origin)).is_err() {
                return Err(startup_error(format!(
                    "WYRM_ORIGINS: {origin:?} is not an origin: give scheme://host[:port], comma-separated"
                )));
            }
        }
        app = app.allowed_origins(origins);
    }
    let app = app.build()?;
    let extra = http::assets().or(http::whoami()).unify().or(http::admin(db, app.clone())).unify().boxed();
    let server = app.serve_with(extra, ([127, 0, 0, 1], port)).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => startup_error(format!(
            "port {port} is in use (another todo example?): stop it, or set WYRM_PORT to another port (WYRM_PORT=0 picks a free one)"
        )),
        _ => startup_error(format!("cannot listen on 127.0.0.1:{port}: {e}")),
    })?;

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
