//! Two tenants attack each other at the same time, on every verb, with ids
//! of each other's rows, ids that never existed, and writes that would run
//! into the other tenant's unique values or into missing foreign keys.
//!
//! What must hold, checked on every reply and event:
//! - a foreign id answers exactly what a missing id answers (`not_found`),
//!   whatever the write would have run into: no existence oracle;
//! - a constraint error names no table, column or constraint;
//! - no reply or event carries a row of the other tenant, or an
//!   unpublished field;
//! - at the end every subscription's view equals its rows in the database.
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{database, Client, Rng, View};
use serde_json::{json, Value};
use wyrmhole::sql::Dialect;
use wyrmhole::{Db, Filter, Identity, Route, Wyrmhole};

diesel::table! {
    folders (id) {
        id -> Integer,
        team_id -> Integer,
    }
}

diesel::table! {
    docs (id) {
        id -> Integer,
        team_id -> Integer,
        folder_id -> Integer,
        slug -> Text,
        title -> Text,
        secret -> Text,
    }
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = docs)]
#[wyrm(route = "doc")]
struct Doc {
    id: i32,
    team_id: i32,
    #[wyrm(update)]
    folder_id: i32,
    #[wyrm(update)]
    slug: String,
    #[wyrm(update)]
    title: String,
    #[wyrm(skip)]
    secret: String,
}

const SCHEMA_SQLITE: &str = "
    CREATE TABLE folders (id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL);
    CREATE TABLE docs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id INTEGER NOT NULL,
        folder_id INTEGER NOT NULL REFERENCES folders(id),
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        secret TEXT NOT NULL DEFAULT 'classified'
    );
";

const SCHEMA_POSTGRES: &str = "
    CREATE TABLE folders (id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL);
    CREATE TABLE docs (
        id SERIAL PRIMARY KEY,
        team_id INTEGER NOT NULL,
        folder_id INTEGER NOT NULL REFERENCES folders(id),
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        secret TEXT NOT NULL DEFAULT 'classified'
    );
";

/// Users 1 and 2 are tenants 1 and 2; folders 10 + t and 20 + t belong to tenant t.
fn team_folders(team: i64) -> [i64; 2] {
    [10 + team, 20 + team]
}

/// Ids that never exist.
const MISSING: i64 = 1_000_000;

async fn start() -> (wyrmhole::Server, Db, database::TestDb) {
    let (url, keep) = database::fresh();
    let db = Db::open(&url).unwrap();
    let schema = match db.dialect() {
        Dialect::Sqlite => SCHEMA_SQLITE,
        Dialect::Postgres => SCHEMA_POSTGRES,
    };
    db.execute_batch(schema).await.unwrap();
    db.execute_batch("INSERT INTO folders (id, team_id) VALUES (11, 1), (21, 1), (12, 2), (22, 2);").await.unwrap();
    let app = Wyrmhole::builder(db.clone())
        .route(
            Route::<Doc>::new()
                .scope(|who: &Identity| who.user_id().map(|team| json!({ "team_id": team })))
                .initial(|who: &Identity| json!({ "team_id": who.user_id().unwrap_or(0) })),
        )
        .authenticate(|req| {
            let user = req.token().and_then(|t| t.parse().ok()).ok_or_else(|| wyrmhole::AuthError::new("no token"))?;
            Ok(Identity::user(user))
        })
        .build()
        .unwrap();
    let server = app.serve(([127, 0, 0, 1], 0)).await.unwrap();
    (server, db, keep)
}

/// What one tenant's client knows and checks.
struct Tenant {
    team: i64,
    client: Client,
    views: Vec<(Value, View)>,
}

/// The ids and slugs of each tenant, as of now (from the database).
async fn rows_by_team(db: &Db) -> BTreeMap<i64, Vec<Doc>> {
    let mut by_team: BTreeMap<i64, Vec<Doc>> = BTreeMap::new();
    for doc in db.load::<Doc>(Filter::all()).await.unwrap() {
        by_team.entry(doc.team_id as i64).or_default().push(doc);
    }
    by_team
}

/// Fails if a reply or event shows anything outside `team`.
fn assert_confined(team: i64, frame: &Value) {
    let text = frame.to_string();
    assert!(!text.contains("secret") && !text.contains("classified"), "an unpublished field leaked: {frame}");
    let rows: Vec<&Value> = match (&frame["type"], &frame["data"]) {
        (t, data) if t == "event" => vec![data],
        (_, Value::Object(data)) if data.contains_key("rows") => data["rows"].as_array().unwrap().iter().collect(),
        (_, data @ Value::Object(_)) => vec![data],
        _ => vec![],
    };
    for row in rows {
        if let Some(t) = row.get("team_id") {
            assert_eq!(t.as_i64(), Some(team), "tenant {team} saw another tenant's row: {frame}");
        }
    }
}

/// A constraint error may say what kind of rule refused the write, never
/// where in the schema.
fn assert_no_schema_names(error: &Value) {
    let message = error["message"].as_str().unwrap().to_lowercase();
    for name in ["docs", "slug", "folder", "team", "constraint failed", "violates", "fkey", "_key"] {
        assert!(!message.contains(name), "error names the schema ({name}): {error}");
    }
}

async fn attack(mut tenant: Tenant, db: Db, seed: u64, rounds: usize) -> Tenant {
    let mut rng = Rng(seed);
    let team = tenant.team;
    let other = 3 - team;
    for round in 0..rounds {
        let rows = rows_by_team(&db).await;
        let foreign = rows.get(&other).cloned().unwrap_or_default();
        let own = rows.get(&team).cloned().unwrap_or_default();
        // The data a write carries: harmless, another tenant's unique slug,
        // a folder that does not exist, or a folder of the other tenant.
        let data = match rng.below(4) {
            0 => json!({ "title": format!("t{team}-{round}") }),
            1 => match foreign.get(rng.below(foreign.len().max(1) as u64) as usize) {
                Some(doc) => json!({ "slug": doc.slug }),
                None => json!({ "slug": "nobody" }),
            },
            2 => json!({ "folder_id": 999 }),
            _ => json!({ "folder_id": team_folders(other)[rng.below(2) as usize] }),
        };
        // Whose id: another tenant's (existing now), or one that never existed.
        let target = match foreign.get(rng.below(foreign.len().max(1) as u64) as usize) {
            Some(doc) if rng.chance(60) => doc.id as i64,
            _ => MISSING + rng.below(1000) as i64,
        };
        let verb = ["get_single", "update", "delete"][rng.below(3) as usize];
        let args = match verb {
            "update" => json!({ "id": target, "data": data }),
            _ => json!({ "id": target }),
        };
        let reply = tenant.client.call("doc", verb, args.clone()).await;
        assert_confined(team, &reply);
        assert_eq!(reply["ok"], false, "tenant {team} reached {target} with {verb}({args}): {reply}");
        assert_eq!(
            reply["error"]["code"], "not_found",
            "a foreign or missing id must answer not_found, whatever the write runs into: {verb}({args}) -> {reply}"
        );
        assert_eq!(reply["error"]["message"], format!("doc {target} not found"), "{reply}");

        // And the tenant's own traffic, which may run into constraints.
        let pick = own.get(rng.below(own.len().max(1) as u64) as usize).map(|d| d.id as i64);
        let reply = match (rng.below(3), pick) {
            (0, Some(id)) => tenant.client.call("doc", "update", json!({ "id": id, "data": data })).await,
            (1, Some(id)) if own.len() > 3 => tenant.client.call("doc", "delete", json!({ "id": id })).await,
            _ => {
                let slug = if rng.chance(30) && !foreign.is_empty() {
                    foreign[0].slug.clone()
                } else {
                    format!("t{team}-s{round}")
                };
                let folder = if rng.chance(20) { 999 } else { team_folders(team)[rng.below(2) as usize] };
                let data = json!({ "slug": slug, "title": "new", "folder_id": folder });
                tenant.client.call("doc", "create", json!({ "data": data })).await
            }
        };
        assert_confined(team, &reply);
        if reply["ok"] == false {
            let code = reply["error"]["code"].as_str().unwrap();
            assert!(matches!(code, "conflict" | "not_found"), "unexpected error on own data: {reply}");
            assert_no_schema_names(&reply["error"]);
        }
        if round % 8 == 0 {
            let list = tenant.client.call("doc", "get_list", json!({ "filter": {}, "limit": 1000 })).await;
            assert_confined(team, &list);
        }
    }
    tenant
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_cannot_see_or_probe_each_other() {
    let (server, db, _keep) = start().await;
    for team in [1, 2] {
        for n in 0..6 {
            let folder = team_folders(team)[n % 2];
            let sql = format!(
                "INSERT INTO docs (team_id, folder_id, slug, title) VALUES ({team}, {folder}, 't{team}-seed{n}', 'seed')"
            );
            db.execute_batch(&sql).await.unwrap();
        }
    }
    let seed = std::env::var("WYRM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0009);
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for (k, team) in [1i64, 2, 1, 2].into_iter().enumerate() {
        let url = format!("{}?token={team}", server.ws_url());
        let db = (*db).clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&url).await;
            let mut views = Vec::new();
            let [a, _] = team_folders(team);
            let other = team_folders(3 - team)[0];
            // A broad subscription, a narrow one, and one naming the other
            // tenant's folder (which must stay empty).
            for filter in [json!({}), json!({ "folder_id": a }), json!({ "folder_id": other })] {
                let reply = client.ok("doc", "subscribe", json!({ "filter": filter })).await;
                assert_confined(team, &json!({ "type": "reply", "data": reply }));
                views.push((filter, View::new(&reply)));
            }
            attack(Tenant { team, client, views }, db, seed + k as u64, 150).await
        }));
    }
    let mut tenants = Vec::new();
    for task in tasks {
        tenants.push(task.await.unwrap());
    }

    // One last write per client, in folder a of its tenant: once a client's
    // views that concern folder a hold every marker of its tenant, they hold
    // every earlier change too (changes reach a subscription in commit order).
    let mut markers: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for (k, tenant) in tenants.iter_mut().enumerate() {
        let data = json!({ "slug": format!("marker-{k}"), "title": "m", "folder_id": team_folders(tenant.team)[0] });
        let created = tenant.client.ok("doc", "create", json!({ "data": data })).await;
        markers.entry(tenant.team).or_default().push(created["id"].clone());
    }
    for tenant in &mut tenants {
        let team_markers = &markers[&tenant.team];
        let has_all = |view: &View| team_markers.iter().all(|id| view.rows.contains_key(&id.as_i64().unwrap()));
        while !(has_all(&tenant.views[0].1) && has_all(&tenant.views[1].1)) {
            let event = tenant.client.next_event().await;
            assert_confined(tenant.team, &event);
            let view = tenant.views.iter_mut().find(|(_, v)| v.sub == event["sub"]).expect("an event of a known sub");
            view.1.apply(&event);
        }
        assert!(tenant.client.events.is_empty(), "events for the other tenant's folder: {:?}", tenant.client.events);
        let rows = rows_by_team(&db).await;
        let mine = rows.get(&tenant.team).cloned().unwrap_or_default();
        for (filter, view) in &tenant.views {
            let want: Vec<i64> = mine
                .iter()
                .filter(|d| filter.get("folder_id").is_none_or(|f| f.as_i64() == Some(d.folder_id as i64)))
                .map(|d| d.id as i64)
                .collect();
            let got: Vec<i64> = view.rows.keys().copied().collect();
            assert_eq!(got, want, "tenant {} view {filter} differs from the database", tenant.team);
            for (id, row) in &view.rows {
                let doc = mine.iter().find(|d| d.id as i64 == *id).unwrap();
                assert_eq!(row["slug"], doc.slug, "stale row in view {filter}");
                assert_eq!(row["folder_id"], doc.folder_id, "stale row in view {filter}");
            }
        }
    }
}
