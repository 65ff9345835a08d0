//! What one committed write costs, and what of it is wyrmhole's: the same
//! single-row update, committed one transaction after another on one
//! connection, made
//!
//! 1. with plain Diesel: `UPDATE` alone;
//! 2. with plain Diesel: the statements `WriteTx::update` sends for the row
//!    itself (`SELECT ... FOR UPDATE` of the old row, `UPDATE ... RETURNING`);
//! 3. with plain Diesel: (2) plus the statements that number the change and
//!    keep it in history (the position counter's upsert and the history
//!    insert, with a body of the same size), written by hand;
//! 4. through `Db::write` on a bare `Db`: what (3) does, plus wyrmhole's own
//!    work around it (the blocking-pool hop, the pool, encoding the change,
//!    every 256th write a history trim);
//! 5. through `Db::write` of a built app with no subscriber: (4) plus handing
//!    the change to the fan-out.
//!
//! ```text
//! cargo run --release --example write_cost                        # SQLite file in a temp dir
//! cargo run --release --features postgres --example write_cost -- --db postgres://postgres@127.0.0.1:5432/bench
//! ```
//!
//! `--secs N` per phase (default 5). Write throughput over WebSockets, with
//! subscribers and several processes, is `examples/loadgen.rs --writes`.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use serde_json::json;
use wyrmhole::{Db, Error, Route, Wyrmhole};

diesel::table! {
    cost_items (id) {
        id -> Integer,
        n -> Integer,
        text -> Text,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = cost_items)]
#[wyrm(route = "cost-item")]
struct CostItem {
    id: i32,
    #[wyrm(update)]
    n: i32,
    #[wyrm(update)]
    text: String,
}

const ROWS: i32 = 100;

/// Runs `write(k)` for `secs`; returns writes per second.
fn measure(secs: u64, mut write: impl FnMut(i32)) -> f64 {
    for k in 0..200 {
        write(k); // warm-up
    }
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..50 {
            write(k);
            k += 1;
        }
    }
    f64::from(k) / start.elapsed().as_secs_f64()
}

/// Plain Diesel on one connection of the same database, with wyrmhole's
/// SQLite pragmas (WAL, synchronous NORMAL): (UPDATE alone, SELECT + UPDATE
/// RETURNING, the same plus position and history statements).
fn plain_diesel(url: &str, secs: u64) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    macro_rules! phases {
        ($conn:expr, $lock:expr, $mark:expr) => {{
            let conn = $conn;
            let update = format!("UPDATE cost_items SET n = {0}1, text = {0}2 WHERE id = {0}3", $mark);
            let alone = measure(secs, |k| {
                conn.transaction(|c| {
                    diesel::sql_query(&update)
                        .bind::<diesel::sql_types::Integer, _>(k)
                        .bind::<diesel::sql_types::Text, _>(format!("plain {k}"))
                        .bind::<diesel::sql_types::Integer, _>(k % ROWS + 1)
                        .execute(c)
                })
                .unwrap();
            });
            let select = format!("SELECT id, n, text FROM cost_items WHERE id = {0}1{1}", $mark, $lock);
            let returning = format!("{update} RETURNING id, n, text");
            let same_statements = measure(secs, |k| {
                conn.transaction(|c| {
                    let _old: Vec<CostItem> =
                        diesel::sql_query(&select).bind::<diesel::sql_types::Integer, _>(k % ROWS + 1).load(c)?;
                    diesel::sql_query(&returning)
                        .bind::<diesel::sql_types::Integer, _>(k)
                        .bind::<diesel::sql_types::Text, _>(format!("plain {k}"))
                        .bind::<diesel::sql_types::Integer, _>(k % ROWS + 1)
                        .load::<CostItem>(c)
                })
                .unwrap();
            });
            let counter = format!(
                "INSERT INTO wyrm_positions (route, pos) VALUES ('plain-cost', 1) \
                 ON CONFLICT (route) DO UPDATE SET pos = wyrm_positions.pos + excluded.pos RETURNING pos"
            );
            let history =
                format!("INSERT INTO wyrm_changes (route, pos, body) VALUES ('plain-cost', {0}1, {0}2)", $mark);
            #[derive(diesel::QueryableByName)]
            struct Pos {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                pos: i64,
            }
            let with_positions = measure(secs, |k| {
                conn.transaction(|c| {
                    let _old: Vec<CostItem> =
                        diesel::sql_query(&select).bind::<diesel::sql_types::Integer, _>(k % ROWS + 1).load(c)?;
                    let new: Vec<CostItem> = diesel::sql_query(&returning)
                        .bind::<diesel::sql_types::Integer, _>(k)
                        .bind::<diesel::sql_types::Text, _>(format!("plain {k}"))
                        .bind::<diesel::sql_types::Integer, _>(k % ROWS + 1)
                        .load(c)?;
                    let pos: Pos = diesel::sql_query(&counter).get_result(c)?;
                    let body = format!(
                        r#"{{"route":"cost-item","pos":{},"old":[{},{},"plain"],"new":[{},{},"{}"]}}"#,
                        pos.pos, new[0].id, k, new[0].id, k, new[0].text
                    );
                    diesel::sql_query(&history)
                        .bind::<diesel::sql_types::BigInt, _>(pos.pos)
                        .bind::<diesel::sql_types::Text, _>(body)
                        .execute(c)
                })
                .unwrap();
            });
            (alone, same_statements, with_positions)
        }};
    }
    Ok(if url.starts_with("postgres") {
        #[cfg(feature = "postgres")]
        {
            phases!(&mut diesel::PgConnection::establish(url)?, " FOR UPDATE", "$")
        }
        #[cfg(not(feature = "postgres"))]
        return Err("PostgreSQL needs --features postgres".into());
    } else {
        let mut conn = diesel::SqliteConnection::establish(url)?;
        conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        // SQLite numbers `?` itself; `?1` is the same placeholder by number.
        phases!(&mut conn, "", "?")
    })
}

/// `Db::write` updates, one after another; returns writes per second.
async fn through_db(db: &Db, secs: u64) -> f64 {
    let start_at = Instant::now();
    let mut k = 0;
    let mut warm = 0;
    let mut start = Instant::now();
    loop {
        let id = k % ROWS + 1;
        db.write(move |tx| tx.update::<CostItem>(id, &json!({"n": k, "text": format!("db {k}")})))
            .await
            .unwrap()
            .unwrap();
        k += 1;
        if warm < 200 {
            warm += 1;
            if warm == 200 {
                start = Instant::now();
                k = 0;
            }
            continue;
        }
        if start.elapsed() >= Duration::from_secs(secs) || start_at.elapsed() > Duration::from_secs(secs * 10) {
            return f64::from(k) / start.elapsed().as_secs_f64();
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut secs) = (None, 5u64);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => url = args.next(),
            "--secs" => secs = args.next().ok_or("--secs N")?.parse()?,
            other => return Err(format!("unknown option {other}; usage: write_cost [--db URL] [--secs N]").into()),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = url.unwrap_or_else(|| dir.path().join("cost.db").to_str().unwrap().to_owned());
    let db = Db::open(&url)?;
    let serial = match db.dialect() {
        wyrmhole::sql::Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        wyrmhole::sql::Dialect::Postgres => "SERIAL PRIMARY KEY",
    };
    db.execute_batch(&format!(
        "DROP TABLE IF EXISTS cost_items; CREATE TABLE cost_items (id {serial}, n INTEGER NOT NULL, text TEXT NOT NULL);"
    ))
    .await?;
    db.write(|tx| {
        for i in 0..ROWS {
            tx.insert::<CostItem>(&json!({"n": i, "text": "seed"}))?;
        }
        Ok::<_, Error>(())
    })
    .await?;

    let (alone, same, positions) = { tokio::task::block_in_place(|| plain_diesel(&url, secs))? };
    let bare = through_db(&db, secs).await;
    let app = Wyrmhole::builder(db.clone()).route(Route::<CostItem>::new()).build()?;
    let with_app = through_db(app.db(), secs).await;
    let us = |per_sec: f64| 1e6 / per_sec;
    println!("write_cost on {:?}, {secs} s per phase, one writer, single-row update per transaction", db.dialect());
    println!("| writes made with | writes/s | µs per write |");
    println!("|---|---|---|");
    println!("| plain Diesel, UPDATE alone | {alone:.0} | {:.1} |", us(alone));
    println!("| plain Diesel, SELECT FOR UPDATE + UPDATE RETURNING | {same:.0} | {:.1} |", us(same));
    println!("| plain Diesel, the same + position upsert + history insert | {positions:.0} | {:.1} |", us(positions));
    println!("| Db::write (+ blocking-pool hop, pool, encoding, trims) | {bare:.0} | {:.1} |", us(bare));
    println!("| Db::write of a built app, no subscriber (+ fan-out hand-off) | {with_app:.0} | {:.1} |", us(with_app));
    println!(
        "position and history statements: {:.1} µs per write; wyrmhole's work around them: {:.1} µs; the fan-out hand-off: {:.1} µs",
        us(positions) - us(same),
        us(bare) - us(positions),
        us(with_app) - us(bare)
    );
    Ok(())
}
