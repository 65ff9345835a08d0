//! A real server on an ephemeral port and a real WebSocket client, shared by
//! the integration tests, on a fresh SQLite or PostgreSQL database (see
//! [`database`]).
#![allow(dead_code)]

pub mod cluster;
pub mod database;

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wyrmhole::sql::Dialect;
use wyrmhole::{ConnectionConfig, Db, Error, FieldErrors, Identity, Route, Server, Wyrmhole};

diesel::table! {
    todo_lists (id) {
        id -> Integer,
        name -> Text,
        owner_id -> Integer,
    }
}

diesel::table! {
    todo_items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        done -> Bool,
        priority -> SmallInt,
        score -> Nullable<Double>,
        note -> Nullable<Text>,
        created_by -> Integer,
        secret -> Text,
    }
}

diesel::table! {
    pings (id) {
        id -> Integer,
        n -> Integer,
    }
}

/// Rows written only to prove that the fan-out has caught up (see [`Client::settle`]).
#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = pings)]
#[wyrm(route = "ping")]
pub struct Ping {
    pub id: i32,
    pub n: i32,
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_lists)]
#[wyrm(route = "todo-list")]
pub struct TodoList {
    pub id: i32,
    #[wyrm(update)]
    pub name: String,
    #[wyrm(skip)]
    pub owner_id: i32,
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_items)]
#[wyrm(route = "todo-item")]
pub struct TodoItem {
    pub id: i32,
    #[wyrm(update)]
    pub list_id: i32,
    #[wyrm(update)]
    pub text: String,
    #[wyrm(update)]
    pub done: bool,
    #[wyrm(update)]
    pub priority: i16,
    #[wyrm(update)]
    pub score: Option<f64>,
    #[wyrm(update)]
    pub note: Option<String>,
    pub created_by: i32,
    #[wyrm(skip)]
    pub secret: String,
}

/// The test tables on SQLite.
pub const SCHEMA: &str = "
    CREATE TABLE pings (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL);
    CREATE TABLE todo_lists (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, owner_id INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE todo_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT 0,
        priority SMALLINT NOT NULL DEFAULT 0,
        score DOUBLE,
        note TEXT,
        created_by INTEGER NOT NULL DEFAULT 0,
        secret TEXT NOT NULL DEFAULT ''
    );
";

/// The same tables on PostgreSQL, whose column types must match the models'
/// exactly (`SMALLINT` for `i16`, `DOUBLE PRECISION` for `f64`).
pub const SCHEMA_POSTGRES: &str = "
    CREATE TABLE pings (id SERIAL PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TABLE todo_lists (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner_id INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE todo_items (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false,
        priority SMALLINT NOT NULL DEFAULT 0,
        score DOUBLE PRECISION,
        note TEXT,
        created_by INTEGER NOT NULL DEFAULT 0,
        secret TEXT NOT NULL DEFAULT ''
    );
";

/// The test schema in the database's own SQL.
pub fn schema(db: &Db) -> &'static str {
    match db.dialect() {
        Dialect::Sqlite => SCHEMA,
        Dialect::Postgres => SCHEMA_POSTGRES,
    }
}

/// A running server with the test routes, on a fresh database.
pub struct TestServer {
    pub server: Server,
    pub app: Wyrmhole,
    pub db: Db,
    /// Where the database is, for [`TestServer::another_process`].
    pub db_url: String,
    /// Keeps the database (a temp SQLite file or a PostgreSQL database).
    pub _dir: database::TestDb,
}

/// Connection settings small enough to exercise limits quickly.
pub fn test_config() -> ConnectionConfig {
    ConnectionConfig { max_frame_bytes: 64 * 1024, ..ConnectionConfig::default() }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(config: ConnectionConfig) -> TestServer {
        let (url, dir) = database::fresh();
        let db = Db::open(&url).unwrap();
        db.execute_batch(schema(&db)).await.unwrap();
        let (server, app) = Self::serve(db.clone(), config).await;
        TestServer { server, app, db, db_url: url, _dir: dir }
    }

    /// Another server on the same database, with handles of its own (its
    /// own writer connection, its own fan-out): what a second process is
    /// to the database.
    pub async fn another_process(&self) -> (Server, Wyrmhole) {
        Self::serve(Db::open(&self.db_url).unwrap(), test_config()).await
    }

    async fn serve(db: Db, config: ConnectionConfig) -> (Server, Wyrmhole) {
        let app = Wyrmhole::builder(db)
            .route(Route::<Ping>::new())
            .route(
                // Lists are private: each user sees only their own.
                Route::<TodoList>::new()
                    .scope(|id: &Identity| id.user_id().map(|u| json!({ "owner_id": u })))
                    .initial(|id: &Identity| json!({ "owner_id": id.user_id().unwrap_or(0) }))
                    .login_required(&["create", "update", "delete"]),
            )
            .route(
                Route::<TodoItem>::new()
                    // User 666 is confined to list 1; everyone else sees everything.
                    .scope(|id: &Identity| {
                        Some(if id.user_id() == Some(666) { json!({"list_id": 1}) } else { json!({}) })
                    })
                    .initial(|id: &Identity| json!({ "created_by": id.user_id().unwrap_or(0) }))
                    .validate(|v| {
                        let mut errors = FieldErrors::new();
                        if v.new.text.trim().is_empty() {
                            errors.add("text", "may not be blank");
                        }
                        if v.new.priority > 5 {
                            errors.add("priority", "must be at most 5");
                        }
                        errors.into_result()
                    })
                    .verb("clear_done", |cx, args| async move {
                        let list_id =
                            args["list_id"].as_i64().ok_or_else(|| Error::bad_arg("list_id", "is required"))?;
                        cx.db
                            .write(move |tx| {
                                let ids: Vec<i32> = tx
                                    .select::<TodoItem>(&json!({"list_id": list_id, "done": true}))?
                                    .into_iter()
                                    .map(|i| i.id)
                                    .collect();
                                for id in &ids {
                                    tx.delete::<TodoItem>(*id)?;
                                }
                                Ok::<_, Error>(json!({ "deleted": ids.len() }))
                            })
                            .await
                    })
                    // A custom write: two items in one transaction, keyed.
                    .write_verb("add_pair", |cx, args| async move {
                        let text = args["text"].as_str().unwrap_or("pair").to_owned();
                        cx.write(move |tx| {
                            let a = tx.insert::<TodoItem>(&json!({"list_id": 1, "text": format!("{text} a")}))?;
                            let b = tx.insert::<TodoItem>(&json!({"list_id": 1, "text": format!("{text} b")}))?;
                            Ok(json!({ "ids": [a.id, b.id] }))
                        })
                        .await
                    })
                    .verb("boom", |_cx, _args| async move {
                        if true {
                            panic!("handler exploded");
                        }
                        Ok(json!(null))
                    }),
            )
            // Presence: `room:*` for everyone, `staff:*` for user 1 only.
            .presence("room:*", |_, _| true)
            .presence("staff:*", |id, _| id.user_id() == Some(1))
            // Channels: everyone may listen to `news:*`, only user 1 may speak.
            .channel("news:*", |id, _, access| access == wyrmhole::ChannelAccess::Subscribe || id.user_id() == Some(1))
            .authenticate(|req| match req.token() {
                Some("reject") => Err(wyrmhole::AuthError::new("bad token")),
                Some(t) => Ok(t.parse::<i64>().map(Identity::user).unwrap_or_default()),
                None => Ok(Identity::anonymous()),
            })
            .allow_anonymous()
            .config(config)
            .metrics_path("/metrics")
            .build()
            .unwrap();
        let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
        (server, app)
    }

    pub fn url(&self) -> String {
        self.server.ws_url()
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url()).await
    }

    pub async fn client_as(&self, user: i64) -> Client {
        Client::connect(&format!("{}?token={user}", self.url())).await
    }

    /// Inserts an item through the save API (as server code would).
    pub async fn insert_item(&self, data: Value) -> TodoItem {
        self.db.write(move |tx| tx.insert::<TodoItem>(&data)).await.unwrap()
    }

    /// All items, straight from the database.
    pub async fn all_items(&self) -> Vec<TodoItem> {
        self.db.load::<TodoItem>(wyrmhole::Filter::all()).await.unwrap()
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A test client: requests wait for their reply; events are kept in order.
pub struct Client {
    pub ws: Ws,
    next_id: u64,
    pub events: VecDeque<Value>,
    pub replies: VecDeque<Value>,
    /// Presence, channel message and push frames, in order.
    pub pushes: VecDeque<Value>,
    ping_sub: Option<Value>,
}

/// A small deterministic random sequence (no extra dependency), so a
/// failing run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration from `from` to `to` milliseconds.
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(url: &str) -> Client {
        Self::try_connect(url).await.expect("connect")
    }

    /// [`Client::connect`], or why it failed (a server process may be
    /// restarting).
    pub async fn try_connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client {
            ws,
            next_id: 0,
            events: VecDeque::new(),
            replies: VecDeque::new(),
            pushes: VecDeque::new(),
            ping_sub: None,
        })
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Reads one frame into `events`/`replies`; returns false on close.
    async fn read_one(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for a frame")?;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("server sent invalid JSON")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next reply frame, whatever its id.
    pub async fn next_reply(&mut self) -> Value {
        loop {
            if let Some(r) = self.replies.pop_front() {
                return r;
            }
            let frame = self.read_one().await.expect("connection closed");
            self.file(frame);
        }
    }

    fn file(&mut self, frame: Value) {
        match frame["type"].as_str() {
            Some("event") => self.events.push_back(frame),
            Some("reply") => self.replies.push_back(frame),
            Some("presence" | "message" | "push") => self.pushes.push_back(frame),
            other => panic!("unexpected frame type {other:?}: {frame}"),
        }
    }

    /// Sends a request and returns the whole reply frame. A request refused
    /// with `rate_limited` did not run: it is sent again after the wait the
    /// server asks for, as the JS client does (tests of the rate limit
    /// pipeline their requests and read the replies themselves).
    pub async fn call(&mut self, route: &str, verb: &str, args: Value) -> Value {
        self.try_call(route, verb, args).await.expect("connection closed")
    }

    /// [`Client::call`], or `None` when the connection is gone before the
    /// reply (a test that kills server processes reconnects then).
    pub async fn try_call(&mut self, route: &str, verb: &str, args: Value) -> Option<Value> {
        loop {
            self.next_id += 1;
            let id = self.next_id;
            let text = json!({"id": id, "route": route, "verb": verb, "args": args}).to_string();
            self.ws.send(Message::text(text)).await.ok()?;
            let reply = loop {
                if let Some(at) = self.replies.iter().position(|r| r["id"] == id) {
                    break self.replies.remove(at).unwrap();
                }
                let frame = self.read_one().await?;
                self.file(frame);
            };
            match reply["error"]["retry_after_ms"].as_u64() {
                Some(ms) if reply["error"]["code"] == "rate_limited" => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => return Some(reply),
            }
        }
    }

    /// A request that must succeed; returns its `data`.
    pub async fn ok(&mut self, route: &str, verb: &str, args: Value) -> Value {
        let reply = self.call(route, verb, args.clone()).await;
        assert_eq!(reply["ok"], true, "{route}.{verb}({args}) failed: {reply}");
        reply["data"].clone()
    }

    /// A request that must fail; returns its `error`.
    pub async fn err(&mut self, route: &str, verb: &str, args: Value) -> Value {
        let reply = self.call(route, verb, args.clone()).await;
        assert_eq!(reply["ok"], false, "{route}.{verb}({args}) should fail: {reply}");
        reply["error"].clone()
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Value {
        loop {
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            let frame = self.read_one().await.expect("connection closed");
            self.file(frame);
        }
    }

    /// The next presence, channel message or push frame.
    pub async fn next_push(&mut self) -> Value {
        loop {
            if let Some(p) = self.pushes.pop_front() {
                return p;
            }
            let frame = self.read_one().await.expect("connection closed");
            self.file(frame);
        }
    }

    /// Waits until the fan-out has delivered every change committed so far:
    /// once the fan-out has settled, their events are in this connection's
    /// queue, and a ping row written after that arrives after them.
    pub async fn settle(&mut self, server: &TestServer) {
        self.settle_with(&server.app, &server.db).await
    }

    /// [`Client::settle`] for any app with the `ping` route.
    pub async fn settle_with(&mut self, app: &Wyrmhole, db: &Db) {
        if self.ping_sub.is_none() {
            let data = self.ok("ping", "subscribe", json!({})).await;
            self.ping_sub = Some(data["sub"].clone());
        }
        app.settled().await;
        let ping = db.write(|tx| tx.insert::<Ping>(&json!({"n": 0}))).await.unwrap();
        loop {
            let frame = self.read_one().await.expect("connection closed");
            if frame["type"] == "event" && Some(&frame["sub"]) == self.ping_sub.as_ref() {
                if frame["data"]["id"] == ping.id {
                    return;
                }
                continue;
            }
            self.file(frame);
        }
    }

    /// Asserts that no event is pending or on its way.
    pub async fn assert_no_event(&mut self, server: &TestServer) {
        self.assert_no_event_with(&server.app, &server.db).await
    }

    /// [`Client::assert_no_event`] for any app with the `ping` route.
    pub async fn assert_no_event_with(&mut self, app: &Wyrmhole, db: &Db) {
        self.settle_with(app, db).await;
        assert!(self.events.is_empty(), "unexpected events: {:?}", self.events);
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await.expect("no close")?;
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// A client's view of one subscription, built from the snapshot and events.
pub struct View {
    pub sub: Value,
    pub seq: u64,
    pub rows: std::collections::BTreeMap<i64, Value>,
}

impl View {
    pub fn new(reply: &Value) -> View {
        let rows = reply["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
        View { sub: reply["sub"].clone(), seq: 0, rows }
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["seq"].as_u64().unwrap(), self.seq + 1, "sequence gap or repeat: {event}");
        self.seq += 1;
        let id = event["data"]["id"].as_i64().unwrap();
        match event["action"].as_str().unwrap() {
            "created" => assert!(self.rows.insert(id, event["data"].clone()).is_none(), "duplicate create: {event}"),
            "updated" => {
                let row = self.rows.get_mut(&id).unwrap_or_else(|| panic!("update of a row never seen: {event}"));
                for (k, v) in event["data"].as_object().unwrap() {
                    row[k] = v.clone();
                }
            }
            "deleted" => assert!(self.rows.remove(&id).is_some(), "delete of a row never seen: {event}"),
            other => panic!("unknown action {other}"),
        }
    }
}

/// `GET path` on a fresh HTTP/1.1 connection: the status and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut response)).await.expect("no response").unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{response}"));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The samples of a Prometheus text page, `name{labels}` → value.
pub fn metrics_of(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}
