//! The relations proof (issue 11): nothing of a list is ever delivered to a
//! user outside their scope at that position, nothing they should see is
//! missed, and every view ends equal to the database.
//!
//! Two processes of `examples/relations_server.rs` on one database (a
//! SQLite file, or PostgreSQL when `DATABASE_URL` is set) share changes
//! through a real redis-server. Three users, each with clients on both
//! processes watching every item and every list in their scope, while six
//! writers (each user on each process, all at once) create, edit, move and
//! delete items and share and unshare lists; each process in turn is
//! killed (SIGKILL) mid-run and restarted, and its clients reconnect and
//! resume.
//!
//! The oracle is the history the servers commit (`wyrm_changes`): each
//! change of an item or a list carries its context, the members of its list
//! at that position. So, per user and position, whether the row was in the
//! user's scope before and after is known, hence exactly which events a
//! subscription must get (`created` when it enters, `updated` while it
//! stays and a published field changes, `deleted` when it leaves) and what
//! a snapshot taken at a position must hold. Delivered events must equal
//! those, one for one, and every final view must equal both the database
//! read with plain SQL and `get_list`.
//!
//! Needs `redis-server` on the PATH and the example binary built with the
//! same features: plain `cargo test` builds it; with `--test relations_proof`
//! build it first (`cargo build --example relations_server`).
mod common;

#[path = "../examples/relations/models.rs"]
mod models;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{example_server, free_port, redis_server};
use common::*;
use futures_util::StreamExt;
use models::{Item, List};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wyrmhole::{Db, Model};

#[path = "relations_proof/oracle.rs"]
mod oracle;
use oracle::{in_scope, History};

const USERS: [i64; 3] = [1, 2, 3];
/// Writes per writer; there are six writers (each user on each process).
const STEPS: usize = 200;
/// Generous bounds for a loaded machine: only a stuck run reaches them.
const PATIENCE: Duration = Duration::from_secs(60);

/// A client of `user` on the server at `url`, once that server takes it
/// (it may be restarting, or dying: a connection the kernel accepted just
/// before the kill is reset).
async fn connect(url: &str, user: i64) -> Client {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::try_connect(&format!("{url}?token={user}")).await {
            Ok(client) => return client,
            Err(e) => assert!(Instant::now() < deadline, "the server at {url} never came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One subscription to every row of a route in scope, and all it got.
struct Sub {
    route: &'static str,
    view: View,
    /// The subscribe reply's position: events follow from there.
    start: u64,
    /// The last position applied (what a resume continues from).
    last: u64,
    /// Every event delivered, across reconnections: `(pos, action, data)`.
    log: Vec<(u64, String, Value)>,
}

/// A user's client on one process, watching items and lists.
struct Watcher {
    user: i64,
    url: String,
    epoch: Value,
    client: Client,
    subs: [Sub; 2],
    resumes: usize,
}

impl Watcher {
    async fn start(url: &str, user: i64) -> Watcher {
        let mut client = connect(url, user).await;
        let mut subscribe = async |route: &'static str| {
            let reply = client.ok(route, "subscribe", json!({"filter": {}})).await;
            let start = reply["pos"].as_u64().unwrap();
            (reply["epoch"].clone(), Sub { route, view: View::new(&reply), start, last: start, log: Vec::new() })
        };
        let (epoch, items) = subscribe(Item::ROUTE).await;
        let (_, lists) = subscribe(List::ROUTE).await;
        Watcher { user, url: url.to_owned(), epoch, client, subs: [items, lists], resumes: 0 }
    }

    fn apply(&mut self, event: &Value) {
        assert_eq!(event["type"], "event", "a watcher gets only events: {event}");
        let sub = self.subs.iter_mut().find(|s| s.view.sub == event["sub"]).expect("an event of a known sub");
        sub.view.apply(event);
        let pos = event["pos"].as_u64().unwrap();
        assert!(pos > sub.last, "positions go forward: {event}");
        sub.last = pos;
        sub.log.push((pos, event["action"].as_str().unwrap().to_owned(), event["data"].clone()));
    }

    /// The process went away: connect again and resume both subscriptions
    /// from the last position each applied.
    async fn reconnect(&mut self) {
        'again: loop {
            self.client = connect(&self.url, self.user).await;
            for sub in &mut self.subs {
                let args = json!({"filter": {}, "epoch": self.epoch, "pos": sub.last});
                // Events queued on a connection that dies are not applied:
                // the next resume starts before them.
                let Some(reply) = self.client.try_call(sub.route, "resume", args).await else { continue 'again };
                assert_eq!(reply["ok"], true, "{} resume: {reply}", sub.route);
                sub.view.sub = reply["data"]["sub"].clone();
                sub.view.seq = 0;
            }
            self.resumes += 1;
            return;
        }
    }

    /// Reads events until this user's sentinel list and item (written after
    /// every other write) are in the views: then every earlier position has
    /// been delivered.
    async fn run(mut self, sentinels: Arc<Mutex<HashMap<i64, (i64, i64)>>>) -> Watcher {
        let mut deadline = None;
        loop {
            while let Some(event) = self.client.events.pop_front() {
                self.apply(&event);
            }
            if let Some(&(list, item)) = sentinels.lock().unwrap().get(&self.user) {
                if self.subs[0].view.rows.contains_key(&item) && self.subs[1].view.rows.contains_key(&list) {
                    return self;
                }
                let by = *deadline.get_or_insert_with(|| Instant::now() + PATIENCE);
                assert!(Instant::now() < by, "user {}'s watcher never got its sentinel", self.user);
            }
            match tokio::time::timeout(Duration::from_millis(100), self.client.ws.next()).await {
                Err(_) => {}
                Ok(Some(Ok(Message::Text(text)))) => self.apply(&serde_json::from_str(text.as_str()).unwrap()),
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => self.reconnect().await,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// What one writer did.
#[derive(Default)]
struct Outcome {
    ok: usize,
    refused: usize,
    /// Writes whose reply the killed process never sent.
    lost: usize,
}

/// A snapshot a user took: `(route, user, pos, rows by id)`.
type Snapshot = (&'static str, i64, u64, BTreeMap<i64, Value>);

/// A subscribe reply's position and rows (the subscription is dropped at
/// once), or `None` when the connection died meanwhile.
async fn snapshot(c: &mut Client, route: &'static str) -> Option<(u64, BTreeMap<i64, Value>)> {
    let reply = c.try_call(route, "subscribe", json!({"filter": {}})).await?;
    assert_eq!(reply["ok"], true, "{route} subscribe: {reply}");
    let data = &reply["data"];
    let rows = data["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
    c.try_call(route, "unsubscribe", json!({"sub": data["sub"]})).await?;
    c.events.clear();
    Some((data["pos"].as_u64().unwrap(), rows))
}

/// Takes snapshots of `user`'s items and lists, on both processes in turn,
/// until `done`: positions all along the run where the database itself
/// (SQL, in a transaction pinned to the position) says what the user sees,
/// which the history's contexts must agree with.
async fn prober(urls: [String; 2], user: i64, done: Arc<AtomicBool>) -> Vec<Snapshot> {
    let mut out = Vec::new();
    let mut clients = [connect(&urls[0], user).await, connect(&urls[1], user).await];
    for round in 0.. {
        if done.load(Ordering::Relaxed) {
            break;
        }
        let k = round % 2;
        for route in [Item::ROUTE, List::ROUTE] {
            match snapshot(&mut clients[k], route).await {
                Some((pos, rows)) => out.push((route, user, pos, rows)),
                None => clients[k] = connect(&urls[k], user).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

/// Shared by the writers: the lists, the highest item id seen, and the
/// number of steps done (the kills wait for a third, then two thirds).
struct Shared {
    lists: Vec<i64>,
    max_item: AtomicI64,
    steps: AtomicUsize,
}

async fn writer(url: String, user: i64, seed: u64, shared: Arc<Shared>) -> Outcome {
    let mut rng = Rng(seed);
    let mut c = connect(&url, user).await;
    let mut out = Outcome::default();
    for step in 0..STEPS {
        let list = shared.lists[rng.below(shared.lists.len() as u64) as usize];
        let item = 1 + rng.below(shared.max_item.load(Ordering::Relaxed) as u64 + 3) as i64;
        let other = USERS[rng.below(3) as usize];
        let text = format!("u{user} s{seed} #{step}");
        let (route, verb, args) = match rng.below(100) {
            0..30 => (Item::ROUTE, "create", json!({"data": {"list_id": list, "text": text, "done": false}})),
            30..48 => (Item::ROUTE, "update", json!({"id": item, "data": {"text": text, "done": rng.chance(50)}})),
            48..58 => (Item::ROUTE, "update", json!({"id": item, "data": {"list_id": list}})),
            58..66 => (Item::ROUTE, "delete", json!({"id": item})),
            66..80 => (List::ROUTE, "share", json!({"id": list, "user": other})),
            80..92 => (List::ROUTE, "unshare", json!({"id": list, "user": other})),
            _ => (List::ROUTE, "update", json!({"id": list, "data": {"title": text}})),
        };
        let Some(reply) = c.try_call(route, verb, args.clone()).await else {
            out.lost += 1;
            c = connect(&url, user).await;
            continue;
        };
        c.events.clear();
        let data = &reply["data"];
        match reply["error"]["code"].as_str() {
            None => {
                if verb == "create" {
                    shared.max_item.fetch_max(data["id"].as_i64().unwrap(), Ordering::Relaxed);
                }
                out.ok += 1;
            }
            // Rows outside the writer's scope, and the owner's membership.
            Some("not_found" | "forbidden" | "conflict") => out.refused += 1,
            Some(_) => panic!("{route}.{verb}({args}) by user {user}: {reply}"),
        }
        shared.steps.fetch_add(1, Ordering::Relaxed);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_of_a_list_reaches_a_user_outside_their_scope() {
    let seed: u64 = std::env::var("WYRM_PROOF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _database) = database::fresh();
    let redis_port = free_port();
    let redis = format!("redis://127.0.0.1:{redis_port}");
    let _redis = redis_server(redis_port, dir.path());
    let ports = [free_port(), free_port()];
    let start = |port: u16| example_server("relations_server", &db_url, &redis, port);
    let (a, a_url) = start(ports[0]);
    let (b, b_url) = start(ports[1]);
    let mut servers = [Some(a), Some(b)];
    let urls = [a_url, b_url];

    // Four lists (owners 1, 2, 3, 1), some shared at the start.
    let mut lists = Vec::new();
    for (i, owner) in [1, 2, 3, 1].into_iter().enumerate() {
        let mut c = connect(&urls[i % 2], owner).await;
        let id = c.ok(List::ROUTE, "create", json!({"data": {"title": format!("list {i}")}})).await["id"].as_i64();
        let id = id.unwrap();
        c.ok(List::ROUTE, "share", json!({"id": id, "user": USERS[(i + 1) % 3]})).await;
        lists.push(id);
    }
    let mut watchers = Vec::new();
    for user in USERS {
        for url in &urls {
            watchers.push(Watcher::start(url, user).await);
        }
    }
    let sentinels = Arc::new(Mutex::new(HashMap::new()));
    let watching: Vec<_> = watchers.into_iter().map(|w| tokio::spawn(w.run(sentinels.clone()))).collect();

    // Six writers at once. A third of the way through, the second process
    // is killed and started again on its port; two thirds through, the first.
    let shared = Arc::new(Shared { lists, max_item: AtomicI64::new(0), steps: AtomicUsize::new(0) });
    let done = Arc::new(AtomicBool::new(false));
    let probing: Vec<_> = USERS.map(|user| tokio::spawn(prober(urls.clone(), user, done.clone()))).into();
    let writing: Vec<_> = (0..6)
        .map(|i| tokio::spawn(writer(urls[i % 2].clone(), USERS[i / 2], seed * 100 + i as u64, shared.clone())))
        .collect();
    for (third, victim) in [(1, 1), (2, 0)] {
        let deadline = Instant::now() + PATIENCE;
        while shared.steps.load(Ordering::Relaxed) < 6 * STEPS * third / 3 {
            assert!(Instant::now() < deadline, "the writers are stuck");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(servers[victim].take());
        let (db, redis) = (db_url.clone(), redis.clone());
        let port = ports[victim];
        let restarted = tokio::task::spawn_blocking(move || example_server("relations_server", &db, &redis, port).0);
        servers[victim] = Some(restarted.await.unwrap());
    }
    let mut outcomes = Vec::new();
    for w in writing {
        outcomes.push(w.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    let mut snapshots = Vec::new();
    for p in probing {
        snapshots.extend(p.await.unwrap());
    }

    // Each user's sentinel: a list (with its creator's membership) and an
    // item in it, written last.
    for user in USERS {
        let mut c = connect(&urls[user as usize % 2], user).await;
        let list = c.ok(List::ROUTE, "create", json!({"data": {"title": "end"}})).await["id"].as_i64().unwrap();
        let args = json!({"data": {"list_id": list, "text": "end", "done": false}});
        let item = c.ok(Item::ROUTE, "create", args).await["id"].as_i64().unwrap();
        sentinels.lock().unwrap().insert(user, (list, item));
    }
    let mut watchers = Vec::new();
    for w in watching {
        watchers.push(w.await.unwrap());
    }

    // The oracle: both routes' histories, complete (far below the 10,000 kept).
    let db = Db::open(&db_url).unwrap();
    let items = History::read(&db, Item::info(), "list__members").await;
    let lists = History::read(&db, List::info(), "members").await;
    let mut checked = 0;
    for w in &mut watchers {
        for (sub, history) in w.subs.iter().zip([&items, &lists]) {
            checked += history.check(w.user, sub.start, &sub.log);
            assert_eq!(sub.view.rows, history.state_at(w.user, history.head()), "user {} {}", w.user, sub.route);
        }
        let truth_items = in_scope::<Item>(&db, "rel_items", "list_id", w.user).await;
        let truth_lists = in_scope::<List>(&db, "rel_lists", "id", w.user).await;
        assert_eq!(w.subs[0].view.rows, truth_items, "user {}: items vs SQL", w.user);
        assert_eq!(w.subs[1].view.rows, truth_lists, "user {}: lists vs SQL", w.user);
        for (sub, truth) in w.subs.iter().zip([&truth_items, &truth_lists]) {
            let rows = w.client.ok(sub.route, "get_list", json!({"filter": {}, "limit": 1000})).await["rows"].clone();
            let rows: BTreeMap<i64, Value> =
                rows.as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
            assert_eq!(&rows, truth, "user {}: {} get_list vs SQL", w.user, sub.route);
        }
    }
    for (route, user, pos, rows) in &snapshots {
        let history = if *route == Item::ROUTE { &items } else { &lists };
        assert_eq!(rows, &history.state_at(*user, *pos), "user {user}'s {route} snapshot at {pos}");
    }
    let (ok, refused, lost) = outcomes.iter().fold((0, 0, 0), |(a, b, c), o| (a + o.ok, b + o.refused, c + o.lost));
    let resumes: usize = watchers.iter().map(|w| w.resumes).sum();
    let (entered, left) = (items.moved_by_membership(true), items.moved_by_membership(false));
    eprintln!(
        "relations proof (seed {seed}): {} item and {} list positions ({entered} items entered and {left} left \
         a scope by membership alone), {checked} events checked over {} subscriptions, {} snapshots; \
         writes {ok} ok, {refused} refused, {lost} lost in the kills; {resumes} resumes",
        items.head(),
        lists.head(),
        2 * watchers.len(),
        snapshots.len()
    );
    // The run must have exercised what it claims to.
    assert!(resumes >= watchers.len(), "every watcher resumed once its process was killed");
    assert!(entered > 0 && left > 0, "membership moved items in and out");
    drop(servers);
}
