//! Issue 11's benchmarks: what relations cost (figures in BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example relation_bench -- matching   # matching cost per change
//! cargo run --release --example relation_bench -- share      # a share reaching a client
//! cargo run --release --example relation_bench -- rename     # CPU per related change
//! ```
//!
//! - `matching`: one item change matched against 1,000 and 100,000
//!   subscriptions, each a user's membership scope
//!   (`list__members__user_id`, lists of 10 members), against the same
//!   number scoped by a copied owner column (`owner_id`: what an app did
//!   without relations). Nanoseconds per change, median of 5 rounds.
//! - `share`: a list of 1,000 items is shared with a user whose client (a
//!   real WebSocket) subscribes to items: milliseconds from the write to
//!   the 1,000th `created` event, and for the unshare to the 1,000th
//!   `deleted`; 5 rounds.
//! - `rename`: 10,000 users, each a member of one of 1,000 lists of 10
//!   items, each with a subscription to `{"list__title__startswith": "hot"}`
//!   under their membership scope (connections without sockets, as the
//!   frame fuzzer's); lists are renamed hot/cold in turn, each rename moving
//!   its 10 items in or out of its 10 members' subscriptions (100 events).
//!   Server CPU (user + system, the whole process) per rename.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use wyrmhole::bench::Matcher;
use wyrmhole::change::Change;
use wyrmhole::filter::{FieldAccess, Filter};
use wyrmhole::{Db, Error, Identity, Model, Route, Value, Wyrmhole};

diesel::table! { bench_lists (id) { id -> Integer, title -> Text } }
diesel::table! { bench_items (id) { id -> Integer, list_id -> Integer, text -> Text, owner_id -> BigInt } }
diesel::table! { bench_members (id) { id -> Integer, list_id -> Integer, user_id -> BigInt } }

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = bench_lists)]
#[wyrm(route = "list", has_many(members = Member, via = list_id))]
struct List {
    id: i32,
    #[wyrm(update)]
    title: String,
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = bench_items)]
#[wyrm(route = "item")]
struct Item {
    id: i32,
    #[wyrm(update, belongs_to = List)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    /// The owner copied onto the item: the scope without relations.
    #[wyrm(skip)]
    owner_id: i64,
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = bench_members)]
#[wyrm(route = "member")]
struct Member {
    id: i32,
    #[wyrm(belongs_to = List)]
    list_id: i32,
    user_id: i64,
}

const SCHEMA: &str = "
    CREATE TABLE bench_lists (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL);
    CREATE TABLE bench_items (id INTEGER PRIMARY KEY AUTOINCREMENT, list_id INTEGER NOT NULL,
        text TEXT NOT NULL, owner_id BIGINT NOT NULL DEFAULT 0);
    CREATE INDEX bench_items_list ON bench_items (list_id);
    CREATE TABLE bench_members (id INTEGER PRIMARY KEY AUTOINCREMENT, list_id INTEGER NOT NULL, user_id BIGINT NOT NULL);
    CREATE INDEX bench_members_list ON bench_members (list_id);
";

const MEMBERS: i64 = 10;

#[tokio::main]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("matching") => matching(),
        Some("share") => share().await,
        Some("rename") => rename().await,
        _ => eprintln!("usage: relation_bench matching|share|rename"),
    }
}

fn parse(json: serde_json::Value) -> Filter {
    Filter::parse_model(Item::info(), &json, FieldAccess::All, true).unwrap()
}

/// An item of `list` whose context says who the list's members are.
fn item_change(list: i64, members: &[i64]) -> Change {
    let list_row: wyrmhole::Row = vec![Value::Int(list), Value::Text(format!("list {list}"))].into();
    let member_rows: Vec<wyrmhole::Row> = members
        .iter()
        .enumerate()
        .map(|(i, u)| vec![Value::Int(i as i64), Value::Int(list), Value::Int(*u)].into())
        .collect();
    let row = |text: &str| -> wyrmhole::Row {
        vec![
            Value::Int(1),
            Value::Int(list),
            Value::Text(text.into()),
            Value::Int(members[0]),
            wyrmhole::relation::related(vec![list_row.clone()]),
            wyrmhole::relation::related(member_rows.clone()),
        ]
        .into()
    };
    Change::new(Item::ROUTE, Item::FIELDS, Item::PRIMARY_KEY, Some(row("a")), Some(row("b")))
}

fn matching() {
    let slots: Vec<&str> = wyrmhole::relation::paths(Item::info()).all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(slots, ["list", "list__members"], "the context layout item_change builds");
    for users in [1_000i64, 100_000] {
        let lists = users / MEMBERS;
        let mut related = Matcher::new::<Item>();
        let mut copied = Matcher::new::<Item>();
        for u in 0..users {
            related.subscribe(parse(json!({"list__members__user_id": u})));
            copied.subscribe(parse(json!({"owner_id": u})));
        }
        let changes: Vec<Change> = (0..1000)
            .map(|i| {
                let list = (i * 7919) % lists;
                let members: Vec<i64> = (0..MEMBERS).map(|m| list * MEMBERS + m).collect();
                item_change(list, &members)
            })
            .collect();
        for (name, matcher, per_change) in
            [("membership scope", &related, MEMBERS as usize), ("copied owner", &copied, 1)]
        {
            let mut rounds = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let mut found = 0;
                for change in &changes {
                    found += matcher.matching_groups(change);
                }
                rounds.push(started.elapsed().as_nanos() as f64 / changes.len() as f64);
                assert_eq!(found, changes.len() * per_change, "every member's subscription, and only those");
            }
            rounds.sort_by(f64::total_cmp);
            println!("{users} subscriptions, {name}: {:.0} ns per change ({per_change} matching)", rounds[2]);
        }
    }
}

async fn app(db: &Db) -> Wyrmhole {
    Wyrmhole::builder(db.clone())
        .route(Route::<List>::new().scope(|who| Some(json!({"members__user_id": who.user_id().unwrap_or(0)}))))
        .route(Route::<Item>::new().scope(|who| Some(json!({"list__members__user_id": who.user_id().unwrap_or(0)}))))
        .route(Route::<Member>::new())
        .authenticate(|req| Ok(req.token().and_then(|t| t.parse().ok()).map(Identity::user).unwrap_or_default()))
        .build()
        .unwrap()
}

async fn fresh_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("bench.db").to_str().unwrap()).unwrap();
    db.execute_batch(SCHEMA).await.unwrap();
    (db, dir)
}

async fn share() {
    let (db, _dir) = fresh_db().await;
    let app = app(&db).await;
    let list = db
        .write(|tx| {
            let list = tx.insert::<List>(&json!({"title": "big"}))?;
            tx.insert::<Member>(&json!({"list_id": list.id, "user_id": 1}))?;
            for i in 0..1000 {
                tx.insert::<Item>(&json!({"list_id": list.id, "text": format!("item {i}")}))?;
            }
            Ok::<_, Error>(list.id)
        })
        .await
        .unwrap();
    let server = app.clone().serve(([127, 0, 0, 1], 0)).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?token=2", server.ws_url())).await.unwrap();
    let subscribe = json!({"id": 1, "route": "item", "verb": "subscribe", "args": {"filter": {}}});
    ws.send(tokio_tungstenite::tungstenite::Message::text(subscribe.to_string())).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("\"rows\":[]"), "{reply:?}");
    for round in 1..=5 {
        let mut times = Vec::new();
        for (action, share) in [("created", true), ("deleted", false)] {
            let started = Instant::now();
            db.write(move |tx| {
                if share {
                    tx.insert::<Member>(&json!({"list_id": list, "user_id": 2}))?;
                } else {
                    let mine = tx.select::<Member>(&json!({"list_id": list, "user_id": 2}))?;
                    tx.delete::<Member>(mine[0].id)?;
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
            let written = started.elapsed();
            let mut seen = 0;
            while seen < 1000 {
                let frame = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.unwrap().unwrap().unwrap();
                let frame: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
                assert_eq!(frame["action"], action, "{frame}");
                seen += 1;
            }
            times.push((written, started.elapsed()));
        }
        println!(
            "round {round}: share {:.1} ms (write {:.1}), unshare {:.1} ms (write {:.1})",
            ms(times[0].1),
            ms(times[0].0),
            ms(times[1].1),
            ms(times[1].0)
        );
    }
    server.shutdown().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// User plus system CPU of this process so far.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn rename() {
    const LISTS: i64 = 1000;
    let (db, _dir) = fresh_db().await;
    let app = app(&db).await;
    db.write(|tx| {
        for l in 0..LISTS {
            let list = tx.insert::<List>(&json!({"title": format!("cold {l}")}))?;
            for m in 0..MEMBERS {
                tx.insert::<Member>(&json!({"list_id": list.id, "user_id": l * MEMBERS + m + 1}))?;
                tx.insert::<Item>(&json!({"list_id": list.id, "text": format!("item {m}")}))?;
            }
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let mut clients = Vec::new();
    for user in 1..=LISTS * MEMBERS {
        let client = wyrmhole::harness::Connection::new(&app, Identity::user(user));
        let request = json!({"id": 1, "route": "item", "verb": "subscribe",
            "args": {"filter": {"list__title__startswith": "hot"}}});
        client.frame(&request.to_string()).await;
        clients.push(client);
    }
    app.settled().await;
    clients.iter().for_each(|c| drop(c.take()));
    const RENAMES: i64 = 2000;
    let before = cpu();
    let started = Instant::now();
    for r in 0..RENAMES {
        let list = (r * 7919) % LISTS + 1;
        let title = if (r / LISTS) % 2 == 0 { format!("hot {list}") } else { format!("cold {list}") };
        db.write(move |tx| tx.update::<List>(list, &json!({ "title": title }))).await.unwrap();
    }
    app.settled().await;
    let elapsed = started.elapsed();
    let used = cpu() - before;
    let events: usize =
        clients.iter().map(|c| c.take().iter().filter(|f| f.contains("\"type\":\"event\"")).count()).sum();
    assert_eq!(events as i64, RENAMES * MEMBERS * MEMBERS, "each rename moves 10 items for 10 members");
    println!(
        "{} subscriptions over {LISTS} lists: {RENAMES} renames in {:.2} s, {:.0} µs CPU per rename ({} events each)",
        LISTS * MEMBERS,
        elapsed.as_secs_f64(),
        used.as_secs_f64() * 1e6 / RENAMES as f64,
        MEMBERS * MEMBERS
    );
}
