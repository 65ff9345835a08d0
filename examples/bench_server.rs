//! The server side of the fan-out benchmark (`examples/loadgen.rs` starts it).
//!
//! ```text
//! cargo build --release --example bench_server
//! target/release/examples/bench_server --port 0 --queue 65536
//! ```
//!
//! One model, `item` (id, list_id, text, done, sent_at_us), on a SQLite file in
//! a temp dir, with the in-process broker. With `--db PATH` it uses that file
//! instead (created and seeded if it has no `items` table yet, left as it is
//! otherwise), or a `postgres://` URL (built with `--features postgres`), so
//! several processes can share one database; with
//! `--redis URL` (or `REDIS_URL`) it builds the app with `.redis(url)`, so they share
//! their commits through Redis. It prints
//! `bench_server listening on ws://ADDR/ws pid PID` and serves until stdin
//! closes, Ctrl-C, or `--max-secs` pass (so a forgotten server ends by itself).
//!
//! The write driver is a custom verb, `bump {"id": 1, "n": 17}`: it runs
//! [`Db::write`] (the save API server code uses) to set `text` to `"bump 17"`
//! and `sent_at_us` to the wall clock in microseconds, read inside the write
//! transaction just before commit. Subscribers compute save→receipt latency
//! from `sent_at_us`, so the figure covers commit, publish, fan-out, the
//! outbound queue, the socket and the client, but not the writer's request
//! getting to the server. The standard `update` verb also works
//! (`sent_at_us` is client-writable); then the client stamps the time itself.
//!
//! Options: `--port N` (or `WYRM_PORT`; 0 = any free port), `--queue N`
//! (outbound frames per connection before a slow-consumer close; the default
//! is large so a benchmark never trips it), `--workers N` (tokio worker
//! threads; default one per core), `--rows N` (extra rows in other lists),
//! `--hot N` (rows in list 1, ids 1 to N, default 1: what the load generator
//! updates),
//! `--max-secs N` (default 1800), `--db PATH` (a SQLite file to share with
//! other processes), `--redis URL` (or `REDIS_URL`: `redis://127.0.0.1:6379`).

#[path = "loadgen/os.rs"]
mod os;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wyrmhole::{Builder, ConnectionConfig, Db, Error, Route, Wyrmhole};

diesel::table! {
    items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        done -> Bool,
        sent_at_us -> BigInt,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = items)]
#[wyrm(route = "item")]
struct Item {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
    /// Wall-clock microseconds of the save, set by the writer.
    #[wyrm(update)]
    sent_at_us: i64,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT 0,
        sent_at_us BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS items_list ON items (list_id);
";

const SCHEMA_POSTGRES: &str = "
    CREATE TABLE IF NOT EXISTS items (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false,
        sent_at_us BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS items_list ON items (list_id);
";

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

struct Options {
    port: u16,
    queue: usize,
    workers: Option<usize>,
    rows: usize,
    hot: usize,
    max_secs: u64,
    db: Option<String>,
    redis: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        port: std::env::var("WYRM_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(0),
        queue: 1 << 16,
        workers: None,
        rows: 1000,
        hot: 1,
        max_secs: 1800,
        db: None,
        redis: std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--port" => o.port = number(value()?)? as u16,
            "--queue" => o.queue = number(value()?)? as usize,
            "--workers" => o.workers = Some(number(value()?)? as usize),
            "--rows" => o.rows = number(value()?)? as usize,
            "--hot" => o.hot = number(value()?)?.max(1) as usize,
            "--max-secs" => o.max_secs = number(value()?)?,
            "--db" => o.db = Some(value()?),
            "--redis" => o.redis = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn app(db: Db, queue: usize) -> Builder {
    let route = Route::<Item>::new().verb("bump", |cx, args| async move {
        let id = args["id"].as_i64().ok_or_else(|| Error::bad_arg("id", "is required"))?;
        let n = args["n"].as_i64().unwrap_or(0);
        cx.db
            .write(move |tx| {
                let text = format!("bump {n}");
                // Stamped inside the transaction, just before commit: "save time".
                let sent_at_us = now_us();
                let data = json!({ "text": text, "sent_at_us": sent_at_us });
                tx.update::<Item>(id, &data)?.ok_or(Error::NotFound { route: "item".into(), id: id.to_string() })?;
                Ok::<_, Error>(json!({ "sent_at_us": sent_at_us }))
            })
            .await
    });
    // Presence topics and channels `bench:*`, open to anyone (clients may
    // publish): `loadgen --driver channel` and `presence_bench --urls`.
    Wyrmhole::builder(db)
        .route(route)
        .presence("bench:*", |_, _| true)
        .channel("bench:*", |_, _, _| true)
        .allow_anonymous()
        .config(ConnectionConfig {
            queue_capacity: queue,
            // The load generator is one client with thousands of sockets
            // and writers far above a person's pace: no rate limits, no
            // per-address cap, and each writer may keep all its requests
            // at the database (the figures are throughput, not fairness).
            max_db_requests: Some(64),
            max_db_requests_per_identity: Some(1024),
            requests_per_second: 0,
            identity_requests_per_second: 0,
            max_connections_per_ip: usize::MAX,
            max_connections_per_identity: usize::MAX,
            ..ConnectionConfig::default()
        })
}

async fn run(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = match &o.db {
        Some(path) => path.clone(),
        None => dir.path().join("bench.db").to_str().ok_or("temp path is not UTF-8")?.to_owned(),
    };
    let db = Db::open(&path)?;
    // Rows 1..=hot (list 1) are the ones the load generator updates; the
    // rest sit in other lists so the table and the index are not trivially
    // small. A shared database is seeded once: by whichever process finds
    // `items` empty (`execute_batch` runs in one transaction, serialized
    // across processes).
    let (hot, rows) = (o.hot, o.rows);
    let seed = match db.dialect() {
        wyrmhole::sql::Dialect::Sqlite => format!(
            "{SCHEMA}
            CREATE TEMP TABLE seed_needed AS SELECT NOT EXISTS (SELECT 1 FROM items) AS yes;
            INSERT INTO items (list_id, text)
                SELECT 1, 'the benchmark row ' || i
                FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {hot}) SELECT i FROM c)
                WHERE (SELECT yes FROM seed_needed);
            INSERT INTO items (list_id, text)
                SELECT 2 + i % 100, 'row ' || i
                FROM (WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {rows}) SELECT i FROM c)
                WHERE i < {rows} AND (SELECT yes FROM seed_needed);
            DROP TABLE seed_needed;"
        ),
        wyrmhole::sql::Dialect::Postgres => format!(
            "{SCHEMA_POSTGRES}
            CREATE TEMP TABLE seed_needed AS SELECT NOT EXISTS (SELECT 1 FROM items) AS yes;
            INSERT INTO items (list_id, text)
                SELECT 1, 'the benchmark row ' || i FROM generate_series(1, {hot}) i WHERE (SELECT yes FROM seed_needed);
            INSERT INTO items (list_id, text)
                SELECT 2 + i % 100, 'row ' || i FROM generate_series(0, {rows} - 1) i WHERE (SELECT yes FROM seed_needed);
            DROP TABLE seed_needed;"
        ),
    };
    db.execute_batch(&seed).await?;

    let mut app = app(db, o.queue);
    if let Some(url) = &o.redis {
        app = app.redis(url);
    }
    let server = app.build()?.serve(([127, 0, 0, 1], o.port)).await?;
    println!("bench_server listening on {} pid {}", server.ws_url(), std::process::id());
    std::io::stdout().flush()?;

    // Ends when stdin closes (the load generator exited), on Ctrl-C, or after max_secs.
    let eof_rx = os::stdin_closed();
    tokio::select! {
        _ = eof_rx => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(o.max_secs)) => eprintln!("bench_server: --max-secs reached"),
    }
    server.shutdown().await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options().map_err(|e| {
        format!("{e}\nusage: bench_server [--port N] [--queue N] [--workers N] [--rows N] [--hot N] [--max-secs N] [--db PATH|URL] [--redis URL]")
    })?;
    let nofile = os::raise_nofile_limit();
    if nofile < 12_000 {
        eprintln!("bench_server: open files limit is {nofile}; 10k connections will not fit");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(w) = o.workers {
        rt.worker_threads(w);
    }
    rt.build()?.block_on(run(o))
}
