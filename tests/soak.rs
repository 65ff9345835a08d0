//! A fault-injection soak of the delivery promise: three todo processes on
//! one database (a SQLite file, or PostgreSQL when `DATABASE_URL` is set)
//! sharing commits through a real redis-server; random writers; 50 clients
//! that subscribe, unsubscribe, drop their connection and `resume`, and
//! re-subscribe, on whichever process is up; meanwhile processes are killed
//! with SIGKILL and restarted, redis-server is killed and restarted, and,
//! where `WYRM_PG_RESTART` names a command, PostgreSQL is restarted.
//!
//! The checker replays the database's change history (complete: the run
//! writes far fewer changes than it keeps) and asserts, for every
//! subscription any client ever held, that it received exactly the events
//! its filter should have produced after its snapshot or resume position,
//! in order, once each, with consecutive `seq` — up to wherever it ended —
//! and that every subscription live at the end equals the database. A `gap`
//! frame or `cannot_resume` is a violation here: history holds every
//! position, so either would be spurious. The filter is evaluated by the
//! test itself, not by wyrmhole.
//!
//! `WYRM_SOAK_SECS` sets how long faults are injected (default 40).
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{free_port, redis_server, todo_server, Proc};
use common::{database, Rng};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 50;
const WRITERS: usize = 4;
const PROCESSES: usize = 3;
const LISTS: i64 = 3;

/// The filters clients use, evaluated here on `[id, list_id, text, done]`.
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    All,
    List(i64),
    Done(bool),
    Lists(i64, i64),
}

impl Spec {
    fn random(rng: &mut Rng, lists: &[i64]) -> Spec {
        let list = |rng: &mut Rng| lists[rng.below(lists.len() as u64) as usize];
        match rng.below(4) {
            0 => Spec::All,
            1 => Spec::List(list(rng)),
            2 => Spec::Done(rng.chance(50)),
            _ => Spec::Lists(list(rng), list(rng)),
        }
    }

    fn json(&self) -> Value {
        match self {
            Spec::All => json!({}),
            Spec::List(l) => json!({ "list_id": l }),
            Spec::Done(d) => json!({ "done": d }),
            Spec::Lists(a, b) => json!({ "list_id__in": [a, b] }),
        }
    }

    fn matches(&self, row: &Value) -> bool {
        let (list, done) = (row[1].as_i64().unwrap(), row[3].as_bool().unwrap());
        match self {
            Spec::All => true,
            Spec::List(l) => list == *l,
            Spec::Done(d) => done == *d,
            Spec::Lists(a, b) => list == *a || list == *b,
        }
    }

    /// What a subscription to this filter is told of a history entry.
    fn action(&self, old: &Value, new: &Value) -> Option<&'static str> {
        let before = !old.is_null() && self.matches(old);
        let after = !new.is_null() && self.matches(new);
        match (before, after) {
            (false, true) => Some("created"),
            (true, false) => Some("deleted"),
            // Every field of the example's items is published.
            (true, true) if old != new => Some("updated"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Live,
    Unsubscribed,
    Cut,
    Gap,
}

/// One subscription's life, as its client saw it.
#[derive(Debug)]
struct Record {
    client: usize,
    spec: Spec,
    resumed: bool,
    /// The position its reply stood at.
    start: u64,
    events: Vec<(u64, String)>,
    end: End,
    /// Sequence numbers that did not follow on.
    bad_seq: usize,
    view: BTreeMap<i64, Value>,
}

#[derive(Default)]
struct Counters {
    subscribes: AtomicUsize,
    resumes: AtomicUsize,
    cannot_resume: AtomicUsize,
    unsubscribes: AtomicUsize,
    cuts: AtomicUsize,
    gaps: AtomicUsize,
    events: AtomicUsize,
    writes: AtomicUsize,
    failed_writes: AtomicUsize,
    /// `internal` or `unavailable` answers: the database was restarting.
    internal: AtomicUsize,
    process_kills: AtomicUsize,
    redis_restarts: AtomicUsize,
    postgres_restarts: AtomicUsize,
}

struct Shared {
    /// Set once the faults have stopped and every process is up.
    quiet: std::sync::atomic::AtomicBool,
    urls: Mutex<Vec<Option<String>>>,
    records: Mutex<Vec<Record>>,
    counters: Counters,
    lists: Vec<i64>,
}

impl Shared {
    fn url(&self, rng: &mut Rng) -> Option<String> {
        let up: Vec<String> = self.urls.lock().iter().flatten().cloned().collect();
        (!up.is_empty()).then(|| up[rng.below(up.len() as u64) as usize].clone())
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connection that reports a dead server as `None` instead of panicking.
struct Conn {
    ws: Ws,
    next_id: u64,
    frames: std::collections::VecDeque<Value>,
}

impl Conn {
    async fn open(url: &str) -> Option<Conn> {
        let connect = tokio_tungstenite::connect_async(url);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(2), connect).await.ok()?.ok()?;
        Some(Conn { ws, next_id: 0, frames: Default::default() })
    }

    async fn send(&mut self, route: &str, verb: &str, args: Value) -> Option<u64> {
        self.next_id += 1;
        let frame = json!({"id": self.next_id, "route": route, "verb": verb, "args": args}).to_string();
        self.ws.send(Message::text(frame)).await.ok()?;
        Some(self.next_id)
    }

    /// The next frame within `wait`: `Some(None)` on timeout, `None` when closed.
    async fn next(&mut self, wait: Duration) -> Option<Option<Value>> {
        if let Some(frame) = self.frames.pop_front() {
            return Some(Some(frame));
        }
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => Some(None),
            Ok(Some(Ok(Message::Text(text)))) => Some(Some(serde_json::from_str(text.as_str()).unwrap())),
            Ok(Some(Ok(Message::Close(_)) | Err(_))) | Ok(None) => None,
            Ok(Some(Ok(_))) => Some(None),
        }
    }

    /// Sends a request and waits for its reply, keeping other frames. A
    /// request refused with `rate_limited` did not run: it is sent again
    /// after the wait the server asks for, as the JS client does.
    async fn call(&mut self, route: &str, verb: &str, args: Value) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.send(route, verb, args.clone()).await?;
            let mut kept = Vec::new();
            let reply = loop {
                if Instant::now() > deadline {
                    return None;
                }
                match self.next(Duration::from_millis(200)).await? {
                    Some(frame) if frame["type"] == "reply" && frame["id"] == id => break frame,
                    Some(frame) => kept.push(frame),
                    None => {}
                }
            };
            self.frames.extend(kept);
            match reply["error"]["retry_after_ms"].as_u64() {
                Some(ms) if reply["error"]["code"] == "rate_limited" => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => return Some(reply),
            }
        }
    }
}

/// The database could not answer (it was restarting): `internal`, or
/// `unavailable` when no pooled connection came back in time.
fn unavailable(reply: &Value) -> bool {
    matches!(reply["error"]["code"].as_str(), Some("internal" | "unavailable"))
}

/// Where a client's view stands, so it can resume from there.
struct Resumable {
    spec: Spec,
    epoch: Value,
    pos: u64,
    view: BTreeMap<i64, Value>,
}

/// A subscription being read.
struct Live {
    sub: Value,
    record: Record,
    seq: u64,
}

impl Live {
    fn apply(&mut self, frame: &Value, counters: &Counters) -> Result<(), End> {
        if frame["sub"] != self.sub {
            return Ok(()); // a reply, or an old subscription's late frame
        }
        if frame["type"] == "gap" {
            counters.gaps.fetch_add(1, Ordering::Relaxed);
            return Err(End::Gap);
        }
        if frame["type"] != "event" {
            return Ok(());
        }
        counters.events.fetch_add(1, Ordering::Relaxed);
        let seq = frame["seq"].as_u64().unwrap();
        if seq != self.seq + 1 {
            self.record.bad_seq += 1;
        }
        self.seq = seq;
        let action = frame["action"].as_str().unwrap().to_owned();
        let data = &frame["data"];
        let id = data["id"].as_i64().unwrap();
        match action.as_str() {
            "created" => {
                self.record.view.insert(id, data.clone());
            }
            "updated" => {
                let row = self.record.view.entry(id).or_insert_with(|| json!({}));
                for (k, v) in data.as_object().unwrap() {
                    row[k] = v.clone();
                }
            }
            _ => {
                self.record.view.remove(&id);
            }
        }
        self.record.events.push((frame["pos"].as_u64().unwrap(), action));
        Ok(())
    }
}

/// Subscribes (or resumes) on `conn`; `Err(resumable)` hands the resume
/// point back when the connection died first.
async fn attach(
    conn: &mut Conn,
    client: usize,
    resumable: Option<Resumable>,
    rng: &mut Rng,
    shared: &Shared,
) -> Result<Live, Option<Resumable>> {
    if let Some(r) = resumable {
        let args = json!({"filter": r.spec.json(), "epoch": r.epoch, "pos": r.pos});
        let Some(reply) = conn.call("todo-item", "resume", args).await else { return Err(Some(r)) };
        if reply["ok"] == true {
            shared.counters.resumes.fetch_add(1, Ordering::Relaxed);
            let data = &reply["data"];
            assert_eq!(data["pos"].as_u64(), Some(r.pos), "a resume's reply stands at the client's position");
            let record = Record {
                client,
                spec: r.spec,
                resumed: true,
                start: r.pos,
                events: Vec::new(),
                end: End::Live,
                bad_seq: 0,
                view: r.view,
            };
            return Ok(Live { sub: data["sub"].clone(), record, seq: 0 });
        }
        if unavailable(&reply) {
            shared.counters.internal.fetch_add(1, Ordering::Relaxed);
            return Err(Some(r));
        }
        assert_eq!(reply["error"]["code"], "cannot_resume", "{reply}");
        shared.counters.cannot_resume.fetch_add(1, Ordering::Relaxed);
    }
    let spec = Spec::random(rng, &shared.lists);
    let reply = conn.call("todo-item", "subscribe", json!({ "filter": spec.json() })).await.ok_or(None)?;
    if unavailable(&reply) {
        shared.counters.internal.fetch_add(1, Ordering::Relaxed);
        return Err(None);
    }
    assert_eq!(reply["ok"], true, "{reply}");
    shared.counters.subscribes.fetch_add(1, Ordering::Relaxed);
    let data = &reply["data"];
    let view = data["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
    let record = Record {
        client,
        spec,
        resumed: false,
        start: data["pos"].as_u64().unwrap(),
        events: Vec::new(),
        end: End::Live,
        bad_seq: 0,
        view,
    };
    Ok(Live { sub: data["sub"].clone(), record, seq: 0 })
}

fn resumable(live: &Live, epoch: &Value) -> Resumable {
    let pos = live.record.events.last().map_or(live.record.start, |(p, _)| *p);
    Resumable { spec: live.record.spec.clone(), epoch: epoch.clone(), pos, view: live.record.view.clone() }
}

/// One client until `deadline`; then it attaches once more and returns its
/// final, live subscription with its connection.
async fn client(index: usize, shared: Arc<Shared>, epoch: Value, deadline: Instant) -> (Conn, Live) {
    let mut rng = Rng(index as u64 * 7919 + 17);
    let mut resume: Option<Resumable> = None;
    loop {
        if resume.is_some() {
            // Offline for a while: the resume has changes to catch up on.
            tokio::time::sleep(rng.millis(0, 1500)).await;
        }
        // The final subscription is taken once the faults are over.
        while Instant::now() > deadline && !shared.quiet.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(url) = shared.url(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(mut conn) = Conn::open(&url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut live = match attach(&mut conn, index, resume.take(), &mut rng, &shared).await {
            Ok(live) => live,
            Err(back) => {
                resume = back;
                continue;
            }
        };
        if shared.quiet.load(Ordering::Relaxed) {
            return (conn, live);
        }
        // Read for a while, then leave one way or another.
        loop {
            let until = Instant::now() + rng.millis(200, 2500);
            let mut closed = false;
            while Instant::now() < until {
                match conn.next(Duration::from_millis(100)).await {
                    None => {
                        closed = true;
                        break;
                    }
                    Some(None) => {}
                    Some(Some(frame)) => {
                        if let Err(end) = live.apply(&frame, &shared.counters) {
                            live.record.end = end;
                            break;
                        }
                    }
                }
            }
            if live.record.end == End::Gap {
                shared.records.lock().push(live.record);
                break;
            }
            if closed {
                // The server went away (killed): resume elsewhere.
                shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
                resume = Some(resumable(&live, &epoch));
                live.record.end = End::Cut;
                shared.records.lock().push(live.record);
                break;
            }
            let choice = if Instant::now() > deadline { 3 } else { rng.below(10) };
            match choice {
                0..=2 => {
                    // Unsubscribe; events before the reply still count.
                    let sub = live.sub.clone();
                    if let Some(id) = conn.send("todo-item", "unsubscribe", json!({ "sub": sub })).await {
                        loop {
                            match conn.next(Duration::from_secs(5)).await {
                                Some(Some(frame)) if frame["type"] == "reply" && frame["id"] == id => break,
                                Some(Some(frame)) => {
                                    let _ = live.apply(&frame, &shared.counters);
                                }
                                _ => break,
                            }
                        }
                    }
                    shared.counters.unsubscribes.fetch_add(1, Ordering::Relaxed);
                    live.record.end = End::Unsubscribed;
                    shared.records.lock().push(live.record);
                    break;
                }
                3..=5 => {
                    // Drop the connection without a word, and resume (past
                    // the deadline too: the final subscription is a resume).
                    shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
                    resume = Some(resumable(&live, &epoch));
                    live.record.end = End::Cut;
                    shared.records.lock().push(live.record);
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Random writes until `deadline`, through whichever process is up.
async fn writer(index: usize, shared: Arc<Shared>, deadline: Instant) {
    let mut rng = Rng(index as u64 * 104729 + 3);
    let mut conn: Option<Conn> = None;
    let mut step = 0u64;
    // Ids this writer created, newest last: what it updates and deletes.
    let mut mine: Vec<i64> = Vec::new();
    while Instant::now() < deadline {
        // About 40 writes a second each: a run stays well inside the history kept.
        tokio::time::sleep(rng.millis(10, 40)).await;
        if conn.is_none() {
            conn = match shared.url(&mut rng) {
                Some(url) => Conn::open(&url).await,
                None => None,
            };
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        step += 1;
        let list = shared.lists[rng.below(LISTS as u64) as usize];
        let id = match mine.len() {
            0 => 1,
            n => mine[n - 1 - rng.below(n.min(40) as u64) as usize],
        };
        let (verb, args) = match rng.below(10) {
            0..=3 => (
                "create",
                json!({"data": {"list_id": list, "text": format!("w{index} {step}"), "done": rng.chance(30)}}),
            ),
            4..=5 => ("update", json!({"id": id, "data": {"done": rng.chance(50)}})),
            6 => ("update", json!({"id": id, "data": {"list_id": list, "text": format!("moved {step}")}})),
            7..=8 => ("delete", json!({ "id": id })),
            _ => ("clear_done", json!({ "list_id": list })),
        };
        let route = "todo-item";
        match conn.as_mut().unwrap().call(route, verb, args).await {
            Some(reply) if reply["ok"] == true => {
                if verb == "create" {
                    mine.push(reply["data"]["id"].as_i64().unwrap());
                }
                shared.counters.writes.fetch_add(1, Ordering::Relaxed)
            }
            Some(reply) if unavailable(&reply) => shared.counters.internal.fetch_add(1, Ordering::Relaxed),
            Some(reply) => {
                // A missing id is fine; anything else is not.
                assert_eq!(reply["error"]["code"], "not_found", "{verb}: {reply}");
                shared.counters.failed_writes.fetch_add(1, Ordering::Relaxed)
            }
            None => {
                conn = None; // the process died; its outcome is whatever the database says
                shared.counters.failed_writes.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The cluster under test: the todo processes and redis-server.
struct Cluster {
    db: String,
    redis_url: String,
    redis_port: u16,
    dir: tempfile::TempDir,
    redis: Option<Proc>,
    servers: Vec<Option<Proc>>,
}

impl Cluster {
    fn start(db: String) -> (Cluster, Vec<Option<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let redis_port = free_port();
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        let redis = Some(redis_server(redis_port, dir.path()));
        // All at once, on a database none of them has set up yet.
        let started: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let (db, redis_url) = (db.clone(), redis_url.clone());
                std::thread::spawn(move || todo_server(&db, &redis_url))
            })
            .collect();
        let (servers, urls): (Vec<_>, Vec<_>) =
            started.into_iter().map(|t| t.join().unwrap()).map(|(p, u)| (Some(p), Some(u))).unzip();
        (Cluster { db, redis_url, redis_port, dir, redis, servers }, urls)
    }
}

/// Kills and restarts processes, Redis and (when it can) PostgreSQL until `deadline`.
async fn faults(cluster: Arc<Mutex<Cluster>>, shared: Arc<Shared>, deadline: Instant) {
    let mut rng = Rng(99);
    let pg_restart =
        std::env::var("WYRM_PG_RESTART").ok().filter(|_| database::backend() == database::Backend::Postgres);
    let mut round = 0;
    loop {
        tokio::time::sleep(rng.millis(2000, 4000)).await;
        if Instant::now() >= deadline {
            break;
        }
        round += 1;
        match round % 4 {
            0 | 2 => {
                let i = rng.below(PROCESSES as u64) as usize;
                shared.urls.lock()[i] = None;
                cluster.lock().servers[i] = None; // SIGKILL
                shared.counters.process_kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(rng.millis(300, 1500)).await;
                let (db, redis) = {
                    let c = cluster.lock();
                    (c.db.clone(), c.redis_url.clone())
                };
                let (proc, url) = tokio::task::spawn_blocking(move || todo_server(&db, &redis)).await.unwrap();
                cluster.lock().servers[i] = Some(proc);
                shared.urls.lock()[i] = Some(url);
            }
            1 => {
                cluster.lock().redis = None;
                shared.counters.redis_restarts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(rng.millis(500, 2500)).await;
                let mut c = cluster.lock();
                let proc = redis_server(c.redis_port, c.dir.path());
                c.redis = Some(proc);
            }
            _ => {
                if let Some(command) = &pg_restart {
                    let status = std::process::Command::new("sh").arg("-c").arg(command).status().unwrap();
                    assert!(status.success(), "{command} failed");
                    shared.counters.postgres_restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The route's history, complete from position 1: `(pos, old, new)`.
async fn history(db: &wyrmhole::Db) -> Vec<(u64, Value, Value)> {
    #[derive(diesel::QueryableByName)]
    struct Entry {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pos: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        body: String,
    }
    let entries: Vec<Entry> = db
        .read(|conn| {
            let sql = "SELECT pos, body FROM wyrm_changes WHERE route = 'todo-item' ORDER BY pos";
            let rows = match conn {
                wyrmhole::Conn::Sqlite(c) => diesel::RunQueryDsl::load(diesel::sql_query(sql), c),
                #[cfg(feature = "postgres")]
                wyrmhole::Conn::Pg(c) => diesel::RunQueryDsl::load(diesel::sql_query(sql), c),
                #[allow(unreachable_patterns)]
                _ => unreachable!(),
            };
            Ok(rows.unwrap())
        })
        .await
        .unwrap();
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e.pos as usize, i + 1, "history is complete from position 1");
            let body: Value = serde_json::from_str(&e.body).unwrap();
            (e.pos as u64, body["old"].clone(), body["new"].clone())
        })
        .collect()
}

/// The rows of the database's `todo_items` matching `spec`, as clients see them.
fn truth(history: &[(u64, Value, Value)], spec: &Spec) -> BTreeMap<i64, Value> {
    let mut rows = BTreeMap::new();
    for (_, old, new) in history {
        if !old.is_null() {
            rows.remove(&old[0].as_i64().unwrap());
        }
        if !new.is_null() {
            rows.insert(new[0].as_i64().unwrap(), new.clone());
        }
    }
    rows.into_iter()
        .filter(|(_, row)| spec.matches(row))
        .map(|(id, r)| (id, json!({"id": r[0], "list_id": r[1], "text": r[2], "done": r[3]})))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_under_concurrency_and_faults() {
    let secs: u64 = std::env::var("WYRM_SOAK_SECS").ok().map_or(40, |s| s.parse().unwrap());
    let (db_url, _database) = database::fresh();
    let (cluster, urls) = Cluster::start(db_url.clone());
    let cluster = Arc::new(Mutex::new(cluster));
    let mut setup = Conn::open(urls[0].as_ref().unwrap()).await.unwrap();
    let mut lists = Vec::new();
    for i in 0..LISTS {
        let reply = setup.call("todo-list", "create", json!({"data": {"name": format!("list {i}")}})).await.unwrap();
        lists.push(reply["data"]["id"].as_i64().unwrap());
    }
    let epoch = setup.call("todo-item", "subscribe", json!({})).await.unwrap()["data"]["epoch"].clone();
    drop(setup);
    let shared = Arc::new(Shared {
        quiet: Default::default(),
        urls: Mutex::new(urls),
        records: Mutex::default(),
        counters: Counters::default(),
        lists,
    });

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let writers: Vec<_> = (0..WRITERS).map(|i| tokio::spawn(writer(i, shared.clone(), deadline))).collect();
    let clients: Vec<_> =
        (0..CLIENTS).map(|i| tokio::spawn(client(i, shared.clone(), epoch.clone(), deadline))).collect();
    let fault_task = tokio::spawn(faults(cluster.clone(), shared.clone(), deadline));
    for w in writers {
        w.await.unwrap();
    }
    fault_task.await.unwrap();
    shared.quiet.store(true, Ordering::Relaxed);
    let mut finals = Vec::new();
    for c in clients {
        finals.push(c.await.unwrap());
    }

    // Every final subscription converges on the database.
    let db = wyrmhole::Db::open(&db_url).unwrap();
    let converge_deadline = Instant::now() + Duration::from_secs(30);
    let mut diverged = Vec::new();
    let history = loop {
        let history = history(&db).await;
        diverged.clear();
        for (conn, live) in &mut finals {
            while let Some(Some(frame)) = conn.next(Duration::from_millis(1)).await {
                if let Err(end) = live.apply(&frame, &shared.counters) {
                    live.record.end = end;
                }
            }
            let truth = truth(&history, &live.record.spec);
            if live.record.view != truth {
                let missing: Vec<_> = truth.keys().filter(|id| live.record.view.get(id) != truth.get(id)).collect();
                let extra: Vec<_> = live.record.view.keys().filter(|id| !truth.contains_key(id)).collect();
                diverged.push(format!(
                    "client {} {:?} from {}: differs at {missing:?}, holds deleted {extra:?}",
                    live.record.client, live.record.spec, live.record.start
                ));
            }
        }
        if diverged.is_empty() || Instant::now() > converge_deadline {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut records = std::mem::take(&mut *shared.records.lock());
    records.extend(finals.into_iter().map(|(_, live)| live.record));
    let mut violations = Vec::new();
    for r in &records {
        let expected: Vec<(u64, String)> = history
            .iter()
            .filter(|(pos, ..)| *pos > r.start)
            .filter_map(|(pos, old, new)| Some((*pos, r.spec.action(old, new)?.to_owned())))
            .collect();
        let complete = r.end == End::Live;
        let ok = if complete { r.events == expected } else { expected.starts_with(&r.events) };
        if !ok || r.bad_seq > 0 {
            let first_wrong = r.events.iter().zip(&expected).position(|(a, b)| a != b);
            violations.push(format!(
                "client {} {:?} from {} ({}, ended {:?}): {} events, {} expected, first difference at {first_wrong:?}, {} bad seq",
                r.client,
                r.spec,
                r.start,
                if r.resumed { "resumed" } else { "subscribed" },
                r.end,
                r.events.len(),
                expected.len(),
                r.bad_seq
            ));
        }
    }
    let c = &shared.counters;
    let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    let report = format!(
        "{:?} backend, {} s of faults: {} writes ({} refused or cut), {} positions; {} subscriptions ({} subscribe, {} resume), \
         {} unsubscribes, {} dropped connections, {} events checked; {} process kills, {} redis restarts, \
         {} postgres restarts ({} internal errors meanwhile); {} gaps, {} cannot_resume, {} violations",
        database::backend(),
        secs,
        n(&c.writes),
        n(&c.failed_writes),
        history.len(),
        records.len(),
        n(&c.subscribes),
        n(&c.resumes),
        n(&c.unsubscribes),
        n(&c.cuts),
        n(&c.events),
        n(&c.process_kills),
        n(&c.redis_restarts),
        n(&c.postgres_restarts),
        n(&c.internal),
        n(&c.gaps),
        n(&c.cannot_resume),
        violations.len()
    );
    println!("soak: {report}");
    assert!(violations.is_empty(), "{report}\n{}", violations.join("\n"));
    assert!(diverged.is_empty(), "final views differ from the database: {report}\n{}", diverged.join("\n"));
    assert_eq!(n(&c.gaps), 0, "spurious gaps (history held every position): {report}");
    assert_eq!(n(&c.cannot_resume), 0, "spurious cannot_resume: {report}");
    // The run must have attacked something for its pass to mean anything.
    assert!(n(&c.process_kills) >= 2 && n(&c.redis_restarts) >= 1, "{report}");
    assert!(n(&c.resumes) >= CLIENTS && n(&c.events) > 1000 && history.len() > 300, "{report}");
}
