//! Fuzzing the frame handler: arbitrary frames through exactly what a
//! connection runs for each (`read_request`, then `run_request`, through
//! `wyrmhole::harness`), on the real app of `tests/common` (scoped routes,
//! validation, custom verbs) over a real database, from three identities
//! whose scopes differ: user 7 (its own lists, every item), user 666 (its
//! own lists, only the items of list 1) and anonymous (no lists at all).
//!
//! Frames are requests for every verb built from live state (existing ids,
//! open subscriptions, seen positions), then often mutated as JSON or as
//! text. After each frame the fuzzer checks:
//!
//! - every frame written is JSON of a protocol shape (reply, event, gap)
//!   whose error code `docs/protocol.md` lists, with no unpublished field;
//! - the request got exactly one reply, carrying its id;
//! - no `internal` error (what a panicking handler becomes);
//! - nothing outside the identity's scope appears in any reply or event,
//!   and a row in scope is never `not_found`;
//! - `get_list` and `subscribe` return exactly the rows that the filter
//!   and scope select in memory (SQL and memory agree through the stack);
//! - events come in order (`seq` 1, 2, 3, ...) and never after `unsubscribe`;
//! - at the end the database holds exactly what the successful writes
//!   replied, and every list belongs to the user who created it.
//!
//! `WYRM_FUZZ_SECS` bounds the run (default 15 s), `WYRM_FUZZ_SEED` replays
//! one. docs/reliability.md ("Fuzzing") has the longer run and its results.

mod common;
#[path = "common/fuzz.rs"]
mod fuzz;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{Ping, TestServer, TodoItem, TodoList};
use fuzz::{arbitrary, mutate, mutate_text, nasty_number, nasty_text, Budget, Rng};
use serde_json::{json, Value as Json};
use wyrmhole::filter::FieldAccess;
use wyrmhole::harness::Connection;
use wyrmhole::protocol::Request;
use wyrmhole::sql::{self, Dialect};
use wyrmhole::{FieldDef, Filter, Identity, Model, Value};

const ROUTES: [&str; 3] = ["todo-item", "todo-list", "ping"];
const VERBS: &[&str] =
    &["get_single", "get_list", "create", "update", "delete", "subscribe", "resume", "unsubscribe", "clear_done"];

fn fields_of(route: &str) -> &'static [FieldDef] {
    model_of(route).fields
}

fn model_of(route: &str) -> &'static wyrmhole::ModelInfo {
    match route {
        "todo-item" => TodoItem::info(),
        "todo-list" => TodoList::info(),
        _ => Ping::info(),
    }
}

/// The error codes docs/protocol.md lists: a code it does not is a finding.
fn documented_codes() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    let table = doc.split("| code | when | fields |").nth(1).expect("the error code table");
    let codes: BTreeSet<String> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect();
    assert!(codes.contains("internal") && codes.contains("bad_filter"), "{codes:?}");
    codes
}

struct Sub {
    route: String,
    seq: u64,
    pos: u64,
}

struct User {
    id: Option<i64>,
    conn: Connection,
    subs: BTreeMap<u64, Sub>,
}

/// What the database must hold, from the replies of successful writes.
struct Expected {
    rows: HashMap<&'static str, BTreeMap<i64, Json>>,
    /// Every list ever created, with its creator.
    owners: HashMap<i64, i64>,
    epoch: u64,
    positions: Vec<u64>,
    dialect: Dialect,
}

impl Expected {
    fn table(&self, route: &str) -> &BTreeMap<i64, Json> {
        static EMPTY: BTreeMap<i64, Json> = BTreeMap::new();
        self.rows.get(route).unwrap_or(&EMPTY)
    }

    fn table_mut(&mut self, route: &str) -> &mut BTreeMap<i64, Json> {
        let route = ROUTES.into_iter().find(|r| *r == route).expect("a known route");
        self.rows.entry(route).or_default()
    }

    /// Whether `user` may see this row: the scopes of tests/common's app.
    fn visible(&self, route: &str, user: Option<i64>, row: &Json) -> bool {
        match route {
            "todo-item" => user != Some(666) || row["list_id"] == 1,
            "todo-list" => user.is_some() && row["id"].as_i64().and_then(|id| self.owners.get(&id)) == user.as_ref(),
            _ => true,
        }
    }

    /// The row as the filter evaluator takes it (unpublished `owner_id` from `owners`).
    fn values(&self, route: &str, row: &Json) -> Vec<Value> {
        let id = row["id"].as_i64().unwrap_or_default();
        fields_of(route)
            .iter()
            .map(|f| match f.name {
                "owner_id" => self.owners.get(&id).map_or(Value::Null, |o| Value::Int(*o)),
                name => f.ty.value_from_json(&row[name], true).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// The ids a filter selects for `user`, evaluated in memory.
    fn select(&self, route: &str, user: Option<i64>, filter: &Json) -> Result<BTreeSet<i64>, String> {
        let filter = match filter {
            Json::Null => Filter::all(),
            f => sql::parse_filter(model_of(route), f, FieldAccess::Published, self.dialect)
                .map_err(|e| format!("the server accepted a filter the evaluator refuses: {e:?}"))?,
        };
        Ok(self
            .table(route)
            .iter()
            .filter(|(_, row)| self.visible(route, user, row) && filter.matches(&self.values(route, row)))
            .map(|(id, _)| *id)
            .collect())
    }
}

/// A frame's JSON, or why it is not of a protocol shape.
fn shape(text: &str, codes: &BTreeSet<String>) -> Result<Json, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let keys: BTreeSet<&str> = v.as_object().ok_or("not an object")?.keys().map(String::as_str).collect();
    let is = |want: &[&str]| keys == want.iter().copied().collect();
    let ok = match v["type"].as_str() {
        Some("reply") if v["ok"] == true => is(&["type", "id", "ok", "data"]),
        Some("reply") => {
            let e = &v["error"];
            let fields_ok = e.get("fields").is_none_or(|f| {
                f.as_object()
                    .is_some_and(|f| f.values().all(|m| m.as_array().is_some_and(|m| m.iter().all(Json::is_string))))
            });
            is(&["type", "id", "ok", "error"])
                && v["ok"] == false
                && e["message"].is_string()
                && e["code"].as_str().is_some_and(|c| codes.contains(c))
                && fields_ok
        }
        Some("event") => {
            is(&["type", "sub", "seq", "pos", "route", "action", "data"])
                && v["sub"].is_u64()
                && v["seq"].is_u64()
                && v["pos"].is_u64()
                && ROUTES.contains(&v["route"].as_str().unwrap_or(""))
                && ["created", "updated", "deleted"].contains(&v["action"].as_str().unwrap_or(""))
                && v["data"]["id"].is_i64()
        }
        Some("gap") => is(&["type", "sub", "reason"]) && v["sub"].is_u64() && v["reason"].is_string(),
        _ => false,
    };
    ok.then_some(v).ok_or_else(|| "not a protocol shape".into())
}

/// The id the reply to this text must carry.
fn expected_id(text: &str, max_frame: usize) -> Json {
    // A number, or a string of at most MAX_NAME_BYTES; anything else is
    // echoed as null (docs/protocol.md).
    let echoable = |id: Json| match &id {
        Json::Number(_) => id,
        Json::String(s) if s.len() <= wyrmhole::protocol::MAX_NAME_BYTES => id,
        _ => Json::Null,
    };
    if text.len() > max_frame {
        #[derive(serde::Deserialize)]
        struct IdOnly {
            #[serde(default)]
            id: Json,
        }
        return echoable(serde_json::from_str::<IdOnly>(text).map(|r| r.id).unwrap_or_default());
    }
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(o)) => echoable(o.get("id").cloned().unwrap_or(Json::Null)),
        _ => Json::Null,
    }
}

/// A row as clients receive it: published fields only, and no others.
fn check_row(model: &Expected, route: &str, user: Option<i64>, row: &Json) -> Result<(), String> {
    let published: BTreeSet<&str> = fields_of(route).iter().filter(|f| f.published).map(|f| f.name).collect();
    let object = row.as_object().ok_or("a row that is not an object")?;
    if let Some(key) = object.keys().find(|k| !published.contains(k.as_str())) {
        return Err(format!("{route} row has field {key:?}, which is not published"));
    }
    if !model.visible(route, user, row) {
        return Err(format!("{route} row outside the scope of user {user:?}"));
    }
    Ok(())
}

/// The checks of one event, for the connection that received it.
fn check_event(model: &Expected, user: &mut User, event: &Json) -> Result<(), String> {
    let sub_id = event["sub"].as_u64().unwrap_or_default();
    let sub = user.subs.get_mut(&sub_id).ok_or("an event for a subscription this connection does not hold")?;
    let (seq, pos) = (event["seq"].as_u64().unwrap_or_default(), event["pos"].as_u64().unwrap_or_default());
    if event["route"] != sub.route.as_str() || seq != sub.seq + 1 || pos <= sub.pos {
        return Err(format!("event out of order: after seq {} pos {} of {}", sub.seq, sub.pos, sub.route));
    }
    (sub.seq, sub.pos) = (seq, pos);
    let route = sub.route.clone();
    let data = &event["data"];
    let published: BTreeSet<&str> = fields_of(&route).iter().filter(|f| f.published).map(|f| f.name).collect();
    if let Some(key) = data.as_object().into_iter().flat_map(|o| o.keys()).find(|k| !published.contains(k.as_str())) {
        return Err(format!("event data has field {key:?}, which is not published"));
    }
    let leaks = match route.as_str() {
        "todo-item" => {
            user.id == Some(666)
                && (data.get("list_id").is_some_and(|l| *l != 1)
                    || (event["action"] == "created" && data["list_id"] != 1))
        }
        "todo-list" => model.owners.get(&data["id"].as_i64().unwrap_or_default()) != user.id.as_ref(),
        _ => false,
    };
    if leaks {
        return Err(format!("event outside the scope of user {:?}", user.id));
    }
    Ok(())
}

/// Checks a reply against the model and applies a successful write to it.
/// Returns the subscription an `unsubscribe` ended, if any.
fn apply(model: &mut Expected, user: &mut User, request: &Request, reply: &Json) -> Result<Option<u64>, String> {
    let (route, verb, args) = (request.route.as_str(), request.verb.as_str(), &request.args);
    let ok = reply["ok"] == true;
    let code = reply["error"]["code"].as_str().unwrap_or("");
    if code == "internal" {
        return Err("an internal error (a panic or a failing dependency, see the log)".into());
    }
    if !ROUTES.contains(&route) {
        return if ok { Err("ok from an unknown route".into()) } else { Ok(None) };
    }
    // The row an `id` argument names, and whether the caller may see it.
    let target = args.get("id").and_then(Json::as_i64).and_then(|id| model.table(route).get(&id).cloned());
    let in_scope = target.as_ref().is_some_and(|row| model.visible(route, user.id, row));
    if !ok {
        if code == "not_found" && in_scope {
            return Err(format!("not_found for a row in scope: {target:?}"));
        }
        return Ok(None);
    }
    let data = &reply["data"];
    let id = data["id"].as_i64();
    let same_as_model = |model: &Expected, row: &Json| {
        let id = row["id"].as_i64().unwrap_or_default();
        match model.table(route).get(&id) {
            Some(known) if known == row => Ok(()),
            known => Err(format!("{route} row {row} differs from what was written: {known:?}")),
        }
    };
    let rows_selected = |model: &Expected, rows: &Json| -> Result<BTreeSet<i64>, String> {
        let rows = rows.as_array().ok_or("rows is not a list")?;
        for row in rows {
            check_row(model, route, user.id, row)?;
            same_as_model(model, row)?;
        }
        Ok(rows.iter().filter_map(|r| r["id"].as_i64()).collect())
    };
    match verb {
        "get_single" => {
            check_row(model, route, user.id, data)?;
            same_as_model(model, data)?;
        }
        "get_list" => {
            let got = rows_selected(model, &data["rows"])?;
            let expected = model.select(route, user.id, args.get("filter").unwrap_or(&Json::Null))?;
            let complete = data["offset"] == 0 && data["has_more"] == false;
            if !got.is_subset(&expected) || (complete && got != expected) {
                let rows: Vec<&Json> = expected.iter().filter_map(|id| model.table(route).get(id)).collect();
                return Err(format!("get_list returned {got:?}; the filter selects {expected:?} in memory: {rows:?}"));
            }
            if data.get("total").is_some_and(|t| *t != expected.len()) {
                return Err(format!("total {} but the filter selects {expected:?} in memory", data["total"]));
            }
        }
        "subscribe" | "resume" => {
            if verb == "subscribe" {
                let got = rows_selected(model, &data["rows"])?;
                let expected = model.select(route, user.id, args.get("filter").unwrap_or(&Json::Null))?;
                if got != expected {
                    let rows: Vec<&Json> = expected.iter().filter_map(|id| model.table(route).get(id)).collect();
                    return Err(format!("snapshot of {got:?}; the filter selects {expected:?} in memory: {rows:?}"));
                }
            }
            let (sub, pos) = (data["sub"].as_u64().ok_or("no sub")?, data["pos"].as_u64().ok_or("no pos")?);
            model.positions.push(pos);
            if user.subs.insert(sub, Sub { route: route.into(), seq: 0, pos }).is_some() {
                return Err(format!("subscription {sub} handed out twice"));
            }
        }
        "create" => {
            let id = id.ok_or("a created row without an id")?;
            if route == "todo-list" {
                model.owners.insert(id, user.id.ok_or("an anonymous user created a list")?);
            }
            check_row(model, route, user.id, data)?;
            if route == "todo-item" && data["created_by"] != user.id.unwrap_or(0) {
                return Err("created_by is not the creator".into());
            }
            if model.table_mut(route).insert(id, data.clone()).is_some() {
                return Err(format!("created {route} {id}, which existed"));
            }
        }
        "update" | "delete" if !in_scope => return Err(format!("{verb} of a row out of scope or unknown: {target:?}")),
        "update" => {
            check_row(model, route, user.id, data)?;
            model.table_mut(route).insert(id.ok_or("no id")?, data.clone());
        }
        "delete" => {
            if *data != json!({ "id": args["id"] }) {
                return Err("delete replied something else than the id".into());
            }
            model.table_mut(route).remove(&id.ok_or("no id")?);
        }
        "unsubscribe" => {
            let sub = data["sub"].as_u64().ok_or("no sub")?;
            return match user.subs.contains_key(&sub) {
                true => Ok(Some(sub)),
                false => Err(format!("unsubscribed {sub}, which this connection does not hold")),
            };
        }
        "clear_done" => {
            let list = args["list_id"].as_i64();
            let items = model.table_mut(route);
            let done: Vec<i64> = items
                .iter()
                .filter(|(_, i)| i["list_id"].as_i64() == list && i["done"] == true)
                .map(|(id, _)| *id)
                .collect();
            for id in &done {
                items.remove(id);
            }
            if data["deleted"] != done.len() {
                return Err(format!("clear_done deleted {}, the model {}", data["deleted"], done.len()));
            }
        }
        _ => return Err(format!("ok for verb {verb:?}")),
    }
    Ok(None)
}

// Findings, all fixed: `get_list` with an `offset` above `i64::MAX` reached
// SQL and answered `internal` (now `bad_args`); serde_json's default float
// parsing was not correctly rounded (a client's `23531.100000000002` was
// stored as `23531.1`, a float id came back as another float, a float read
// from a row could miss the row in a filter), fixed by its `float_roundtrip`
// feature, so ids are compared exactly and floats from rows are operands.

#[derive(Default, Debug)]
struct Counts {
    frames: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    events: u64,
    gaps: u64,
}

/// Checks everything written after one frame of user `u`.
fn check_step(
    model: &mut Expected,
    users: &mut [User],
    u: usize,
    text: &str,
    codes: &BTreeSet<String>,
    max_frame: usize,
    counts: &mut Counts,
) -> Result<(), String> {
    let mut written = Vec::new();
    for (i, user) in users.iter().enumerate() {
        for frame in user.conn.take() {
            let v = shape(&frame, codes).map_err(|e| format!("{e}: {frame}"))?;
            written.push((i, v));
        }
    }
    let mut replies = written.iter().enumerate().filter(|(_, (_, v))| v["type"] == "reply");
    let (at, (i, reply)) = replies.next().ok_or("no reply")?;
    if *i != u || replies.next().is_some() {
        return Err("a reply too many, or on another connection".into());
    }
    let want = expected_id(text, max_frame);
    if reply["id"] != want {
        return Err(format!("the reply's id is not the request's: {reply}"));
    }
    match reply["error"]["code"].as_str() {
        Some(code) => *counts.errors.entry(code.into()).or_default() += 1,
        None => counts.ok += 1,
    }
    let code = reply["error"]["code"].as_str().unwrap_or("ok");
    let unsubscribed = if text.len() > max_frame {
        if code != "frame_too_large" {
            return Err(format!("{code} for a frame over the limit"));
        }
        None
    } else {
        match Request::parse(text) {
            Err(_) if ["malformed_frame", "bad_args"].contains(&code) => None,
            Err(_) => return Err(format!("{code} for a frame that is not a request")),
            Ok(request) => apply(model, &mut users[u], &request, reply)?,
        }
    };
    for (n, (i, v)) in written.iter().enumerate() {
        let user = &mut users[*i];
        match v["type"].as_str() {
            Some("event") => {
                counts.events += 1;
                if *i == u && n > at && unsubscribed == v["sub"].as_u64() {
                    return Err(format!("an event after unsubscribe: {v}"));
                }
                check_event(model, user, v).map_err(|e| format!("{e}: {v}"))?;
            }
            Some("gap") => {
                counts.gaps += 1;
                user.subs.remove(&v["sub"].as_u64().unwrap_or_default());
            }
            _ => {}
        }
    }
    if let Some(sub) = unsubscribed {
        users[u].subs.remove(&sub);
    }
    Ok(())
}

/// An id argument: mostly a row that exists (in scope or not), else not.
fn pick_id(rng: &mut Rng, model: &Expected, route: &str) -> Json {
    let table = model.table(route);
    match rng.below(20) {
        0 => arbitrary(rng, 1),
        1 => nasty_number(rng),
        2 => json!(100_000 + rng.below(10)),
        _ if table.is_empty() => json!(1),
        _ => json!(*table.keys().nth(rng.below(table.len())).unwrap_or(&1)),
    }
}

/// Filter operands from the model's rows, so that filters match sometimes.
fn sample<'a>(model: &'a Expected, route: &'a str) -> impl FnMut(&mut Rng, usize) -> Option<Value> + 'a {
    move |rng, field| {
        let table = model.table(route);
        let row = table.values().nth(rng.below(table.len()))?;
        model.values(route, row).into_iter().nth(field)
    }
}

/// A row's data for `create`, or a part of it for `update`, with the odd
/// field that clients may not write.
fn gen_data(rng: &mut Rng, route: &str, partial: bool) -> Json {
    let text = |rng: &mut Rng| match rng.below(6) {
        0 => json!(nasty_text(rng)),
        1 => json!(" "),
        _ => json!(*rng.pick(&["milk", "eggs", "Straße", "ΣΑΣ"])),
    };
    let number = |rng: &mut Rng, n: usize| if rng.chance(5) { nasty_number(rng) } else { json!(rng.below(n)) };
    let mut data: Vec<(&str, Json)> = match route {
        "todo-item" => vec![
            ("list_id", number(rng, 4)),
            ("text", text(rng)),
            ("done", json!(rng.chance(50))),
            ("priority", number(rng, 7)),
            ("score", if rng.chance(30) { Json::Null } else { nasty_number(rng) }),
            ("note", if rng.chance(30) { Json::Null } else { text(rng) }),
        ],
        "todo-list" => {
            vec![("name", if rng.chance(80) { json!(format!("list {}", rng.below(500))) } else { text(rng) })]
        }
        _ => vec![("n", number(rng, 100))],
    };
    if partial || rng.chance(5) {
        data.retain(|_| rng.chance(40));
    }
    let mut data: serde_json::Map<String, Json> = data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if rng.chance(8) {
        let key = *rng.pick(&["secret", "owner_id", "created_by", "id", "nope"]);
        data.insert(key.into(), arbitrary(rng, 1));
    }
    Json::Object(data)
}

/// The next frame for `user`: a request built from the live state, often mutated.
fn gen_frame(rng: &mut Rng, model: &Expected, user: &User, all_subs: &[u64], case: u64) -> String {
    let route = match rng.below(20) {
        0 => *rng.pick(&["nope", "", "todo_items", "TODO-ITEM"]),
        1..=3 => "ping",
        4..=9 => "todo-list",
        _ => "todo-item",
    };
    let mut verb = *rng.pick(VERBS);
    if verb == "subscribe" && user.subs.len() >= 12 {
        verb = "unsubscribe";
    }
    let filter = |rng: &mut Rng| fuzz::filter(rng, fields_of(route), &mut sample(model, route));
    let args = match verb {
        "get_single" | "delete" => json!({ "id": pick_id(rng, model, route) }),
        "get_list" => {
            let mut args = serde_json::Map::new();
            let order = [
                json!("id"),
                json!("-id"),
                json!("text"),
                json!("-done"),
                json!(["-priority", "text"]),
                json!("secret"),
                json!("nope"),
                json!(5),
            ];
            let options: [(&str, Json); 5] = [
                ("filter", filter(rng)),
                ("order_by", rng.pick(&order).clone()),
                ("limit", if rng.chance(80) { json!(1 + rng.below(20)) } else { nasty_number(rng) }),
                ("offset", if rng.chance(80) { json!(rng.below(4)) } else { nasty_number(rng) }),
                ("total", json!(rng.chance(50))),
            ];
            for (i, (key, value)) in options.into_iter().enumerate() {
                if rng.chance([70, 30, 30, 20, 30][i]) {
                    args.insert(key.into(), value);
                }
            }
            Json::Object(args)
        }
        "create" => json!({ "data": gen_data(rng, route, false) }),
        "update" => json!({ "id": pick_id(rng, model, route), "data": gen_data(rng, route, true) }),
        "subscribe" if rng.chance(80) => json!({ "filter": filter(rng) }),
        "subscribe" => json!({}),
        "resume" => {
            let epoch = if rng.chance(90) { json!(model.epoch) } else { nasty_number(rng) };
            let pos = json!(*rng.pick(&model.positions) + rng.below(2) as u64);
            json!({ "filter": filter(rng), "epoch": epoch, "pos": pos })
        }
        "unsubscribe" => {
            let own: Vec<u64> = user.subs.keys().copied().collect();
            let sub = match rng.below(10) {
                0..=6 if !own.is_empty() => json!(*rng.pick(&own)),
                7 if !all_subs.is_empty() => json!(*rng.pick(all_subs)),
                _ => nasty_number(rng),
            };
            json!({ "sub": sub })
        }
        _ => json!({ "list_id": if rng.chance(90) { json!(1 + rng.below(3)) } else { nasty_number(rng) } }),
    };
    let mut args = args;
    if let Some(args) = args.as_object_mut().filter(|a| !a.is_empty() && rng.chance(15)) {
        // A known argument of the wrong type (or of the right one, differently).
        let keys: Vec<String> = args.keys().cloned().collect();
        args.insert(rng.pick(&keys).clone(), arbitrary(rng, 1));
    }
    let id = if rng.chance(75) { json!(case) } else { json!(format!("r{case}")) };
    let mut frame = json!({ "id": id, "route": route, "verb": verb, "args": args });
    if rng.chance(1) {
        frame["args"]["pad"] = json!("x".repeat(70_000));
    }
    match rng.below(100) {
        0..=54 => frame.to_string(),
        55..=84 => {
            for _ in 0..1 + rng.below(3) {
                mutate(rng, &mut frame, &mut |rng| arbitrary(rng, 1));
            }
            frame.to_string()
        }
        _ => mutate_text(rng, &frame.to_string()),
    }
}

/// The test app's data to start from: lists of three owners, items in them.
async fn seed(ts: &TestServer) {
    ts.db
        .write(|tx| {
            for (name, owner) in [("seven", 7), ("six-six-six", 666), ("eight", 8), ("seven too", 7)] {
                tx.insert::<TodoList>(&json!({ "name": name, "owner_id": owner }))?;
            }
            for (i, list) in [1, 1, 2, 3, 4, 2].into_iter().enumerate() {
                let data = json!({ "list_id": list, "text": format!("item {i}"), "done": i % 2 == 0, "secret": "s" });
                tx.insert::<TodoItem>(&data)?;
            }
            Ok::<_, wyrmhole::Error>(())
        })
        .await
        .unwrap();
}

/// Every table as clients would see it, with each list's owner.
async fn database(ts: &TestServer) -> (HashMap<&'static str, BTreeMap<i64, Json>>, HashMap<i64, i64>) {
    fn published<M: Model>(rows: Vec<M>, id: impl Fn(&M) -> i32) -> BTreeMap<i64, Json> {
        // Through text, as replies are read, so floats compare alike.
        let json = |row: &M| serde_json::from_str(&wyrmhole::record::published(M::FIELDS, &row.to_row()).to_string());
        rows.iter().map(|row| (i64::from(id(row)), json(row).unwrap())).collect()
    }
    let lists = ts.db.load::<TodoList>(Filter::all()).await.unwrap();
    let owners = lists.iter().map(|l| (i64::from(l.id), i64::from(l.owner_id))).collect();
    let mut tables = HashMap::new();
    tables.insert("todo-item", published(ts.db.load::<TodoItem>(Filter::all()).await.unwrap(), |r| r.id));
    tables.insert("todo-list", published(lists, |r| r.id));
    tables.insert("ping", published(ts.db.load::<Ping>(Filter::all()).await.unwrap(), |r| r.id));
    (tables, owners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_never_panic_and_keep_scopes() {
    let budget = Budget::from_env("fuzz_frames", 15.0);
    let codes = documented_codes();
    let ts = TestServer::start().await;
    let max_frame = common::test_config().max_frame_bytes;
    seed(&ts).await;
    let (rows, owners) = database(&ts).await;
    let mut model = Expected { rows, owners, epoch: ts.db.epoch(), positions: vec![0], dialect: ts.db.dialect() };
    let mut users: Vec<User> = [Some(7), Some(666), None]
        .into_iter()
        .map(|id| {
            let identity = id.map_or_else(Identity::anonymous, Identity::user);
            User { id, conn: Connection::new(&ts.app, identity), subs: BTreeMap::new() }
        })
        .collect();
    let mut counts = Counts::default();
    let mut trace = std::collections::VecDeque::new();
    let started = std::time::Instant::now();
    while budget.go_on(counts.frames) {
        let case = counts.frames;
        counts.frames += 1;
        // A generator of its own per frame, so a frame does not depend on
        // how much randomness the ones before it drew.
        let mut rng = Rng::new(budget.seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let u = rng.below(users.len());
        let all_subs: Vec<u64> = users.iter().flat_map(|u| u.subs.keys().copied()).collect();
        let text = gen_frame(&mut rng, &model, &users[u], &all_subs, case);
        if trace.len() == 8 {
            trace.pop_front();
        }
        trace.push_back(format!("user {:?}: {}", users[u].id, text.chars().take(600).collect::<String>()));
        users[u].conn.frame(&text).await;
        if let Err(mut why) = check_step(&mut model, &mut users, u, &text, &codes, max_frame, &mut counts) {
            if why.len() > 4000 {
                why = format!("{}...", why.chars().take(4000).collect::<String>());
            }
            panic!(
                "frame fuzzer finding at frame {case} (replay: WYRM_FUZZ_SEED={} WYRM_FUZZ_CASES={})\nwhy: {why}\n\
                 the frame and the ones before it, last first:\n{}",
                budget.seed,
                case + 1,
                trace.iter().rev().cloned().collect::<Vec<_>>().join("\n")
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (rows, owners) = database(&ts).await;
    for route in ROUTES {
        assert_eq!(rows[route], *model.table(route), "the database's {route} rows are not what the writes replied");
    }
    for (list, owner) in owners {
        assert_eq!(model.owners.get(&list), Some(&owner), "list {list} does not belong to its creator");
    }
    eprintln!(
        "fuzz_frames ({:?}): {} frames in {secs:.1} s ({:.0}/s), {} ok, errors {:?}, {} events checked, {} gaps; \
         0 new findings (panics, scope leaks, disagreements)",
        model.dialect,
        counts.frames,
        counts.frames as f64 / secs,
        counts.ok,
        counts.errors,
        counts.events,
        counts.gaps
    );
}
