//! The hot paths, each in a function of its own, for counting their
//! instructions with callgrind: a count does not depend on the machine or
//! its neighbours the way seconds do, so it can be checked against a stored
//! baseline on every run (`tests/instructions.sh`, issue 14 item 5).
//!
//! ```text
//! cargo build --release --example hot_paths
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/examples/hot_paths frames 20
//! ```
//!
//! Cases (the argument after the case is how many times it runs):
//! - `matching N`: N changes matched against 10,000 subscriptions whose
//!   filters are `list_id = <one of 1,000>` (the equality index);
//! - `frames N`: N changes delivered to 1,000 live subscriptions of one
//!   list, each behind a real outbox and wire: fan-out, queueing, frame
//!   heads, the `writev` pieces (into a socket that takes everything);
//! - `write N`: N single-row updates through `Db::write`'s transaction
//!   (position, history, encoding) on a SQLite file, on this thread.

use std::hint::black_box;
use std::sync::Arc;

use serde_json::json;
use wyrmhole::bench::{Deliveries, Matcher};
use wyrmhole::change::Change;
use wyrmhole::filter::{FieldAccess, Filter};
use wyrmhole::{Db, Error, FieldDef, Model, Value};

diesel::table! {
    hot_items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        done -> Bool,
    }
}

/// The measured model.
#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = hot_items)]
#[wyrm(route = "hot-item")]
struct HotItem {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
}

const FIELDS: &[FieldDef] = HotItem::FIELDS;

fn filter(list: i64) -> Filter {
    Filter::parse(FIELDS, &json!({ "list_id": list }), FieldAccess::Published).unwrap()
}

/// An update of row 1 in `list` whose text changes; at position `pos`.
fn change(list: i64, pos: u64) -> Arc<Change> {
    let row = |text: String| -> Box<[Value]> {
        vec![Value::Int(1), Value::Int(list), Value::Text(text), Value::Bool(false)].into()
    };
    let mut change =
        Change::new("hot-item", FIELDS, 0, Some(row(format!("old {pos}"))), Some(row(format!("new {pos}"))));
    change.pos = pos;
    Arc::new(change)
}

#[inline(never)]
fn measured_matching(matcher: &Matcher, changes: &[Arc<Change>]) -> usize {
    changes.iter().map(|c| matcher.matching_members(c)).sum()
}

#[inline(never)]
fn measured_frames(deliveries: &mut Deliveries, changes: &[Arc<Change>]) -> usize {
    changes.iter().map(|c| deliveries.deliver(c)).sum()
}

#[inline(never)]
fn measured_write(db: &Db, n: i32) -> usize {
    for k in 0..n {
        wyrmhole::bench::write_blocking(db, move |tx| {
            tx.update::<HotItem>(k % 10 + 1, &json!({"text": format!("write {k}"), "done": k % 2 == 0}))
        })
        .unwrap();
    }
    n as usize
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    match case.as_str() {
        "matching" => {
            let mut matcher = Matcher::new::<HotItem>();
            for i in 0..10_000 {
                matcher.subscribe(filter(i % 1_000));
            }
            let changes: Vec<_> = (0..n as u64).map(|i| change((i * 7 % 1_000) as i64, i + 1)).collect();
            let members = measured_matching(&matcher, black_box(&changes));
            println!("matching: {n} changes, {members} members matched");
        }
        "frames" => {
            let mut deliveries = Deliveries::new::<HotItem>(1_000, filter(1));
            let changes: Vec<_> = (0..n as u64).map(|i| change(1, i + 1)).collect();
            let bytes = measured_frames(&mut deliveries, black_box(&changes));
            println!("frames: {n} changes to 1000 subscribers, {bytes} bytes written");
        }
        "write" => {
            let dir = tempfile::tempdir()?;
            let db = Db::open_sqlite(dir.path().join("hot.db").to_str().unwrap())?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                db.execute_batch(
                    "CREATE TABLE hot_items (id INTEGER PRIMARY KEY AUTOINCREMENT, list_id INTEGER NOT NULL, \
                     text TEXT NOT NULL, done BOOLEAN NOT NULL);",
                )
                .await?;
                db.write(|tx| {
                    for i in 0..10 {
                        tx.insert::<HotItem>(&json!({"list_id": i, "text": "seed", "done": false}))?;
                    }
                    Ok::<_, Error>(())
                })
                .await
            })?;
            let writes = measured_write(&db, n as i32);
            println!("write: {writes} updates");
        }
        other => return Err(format!("unknown case {other:?}: matching | frames | write, then a count").into()),
    }
    Ok(())
}
