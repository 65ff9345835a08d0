//! What refilling ordered windows costs: 1,000 window subscriptions, each
//! the top 50 of its own list (`{"list_id": n}`, `order_by: ["-priority",
//! "text"]`, `limit: 50`) over 60,000 rows, read as one round of a route's
//! window refresher reads them (one read transaction, one `UNION ALL`
//! statement per 200 windows), while a writer commits updates to random
//! rows as fast as it can.
//!
//! A round reads the windows that changes marked since the last one: after
//! a single write, the windows of one list; under a heavy load, up to all
//! of them. Each line times rounds of k dirty windows.
//!
//! ```text
//! cargo run --release --example window_refill            # SQLite file in a temp dir
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wyrmhole::bench::window_round;
use wyrmhole::Db;

diesel::table! {
    window_items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        priority -> Integer,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = window_items)]
#[wyrm(route = "window-item")]
struct WindowItem {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    priority: i32,
}

const LISTS: i64 = 1000;
const ROWS: i64 = 60_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("windows.db").to_str().ok_or("temp path")?)?;
    db.execute_batch(&format!(
        "CREATE TABLE window_items (id INTEGER PRIMARY KEY, list_id INTEGER NOT NULL, text TEXT NOT NULL, priority INTEGER NOT NULL);
         CREATE INDEX window_items_list ON window_items (list_id, priority);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS})
         INSERT INTO window_items (list_id, text, priority) SELECT x % {LISTS}, 't' || x, x % 7 FROM n;"
    ))
    .await?;
    let windows: Vec<(Value, Value, usize)> =
        (0..LISTS).map(|list| (json!({ "list_id": list }), json!(["-priority", "text"]), 50)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, writes) = (db.clone(), stop.clone(), writes.clone());
        tokio::spawn(async move {
            let mut k: i64 = 1;
            while !stop.load(Ordering::Relaxed) {
                k = (k * 48271) % 2147483647;
                let id = 1 + k % ROWS;
                let data = json!({ "priority": k % 7, "list_id": k % LISTS });
                db.write(move |tx| tx.update::<WindowItem>(id as i32, &data)).await.expect("update");
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    println!("dirty windows | rounds | ms per round | rows per round | writes/s meanwhile");
    for dirty in [1usize, 10, 100, 1000] {
        let (before, start) = (writes.load(Ordering::Relaxed), Instant::now());
        let mut rounds = 0;
        let mut rows = 0;
        while start.elapsed() < Duration::from_secs(5) {
            let at = (rounds * 37) % windows.len();
            let batch: Vec<_> = windows.iter().cycle().skip(at).take(dirty).cloned().collect();
            rows = window_round::<WindowItem>(&db, &batch).await?;
            rounds += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let written = writes.load(Ordering::Relaxed) - before;
        println!(
            "{dirty:>13} | {rounds:>6} | {:>12.2} | {rows:>14} | {:>8.0}",
            secs * 1000.0 / rounds as f64,
            written as f64 / secs
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    Ok(())
}
