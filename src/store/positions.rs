//! Commit positions and the change history, kept in the database itself.
//!
//! Each route's changes are numbered 1, 2, 3, ... by a counter row that the
//! writing transaction increments just before it commits. The row stays
//! locked until then (on PostgreSQL; SQLite's write lock covers everything),
//! so positions follow commit order even with several writer processes, a
//! rolled-back transaction consumes none, and a snapshot that reads the
//! counter first learns exactly which position it holds. Every change is also
//! kept, encoded, in a bounded history, from which a client that was away
//! can be replayed what it missed.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use super::conn::Conn;
use super::query::load;
use crate::change::Change;
use crate::error::Error;
use crate::model::{FieldType, Value};
use crate::sql::{Bind, Dialect};

/// How many changes of each route the history keeps.
pub const HISTORY_LEN: u64 = 10_000;

/// The tables, the same SQL on SQLite and PostgreSQL.
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS wyrm_positions (route TEXT PRIMARY KEY, pos BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS wyrm_changes (
        route TEXT NOT NULL, pos BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (route, pos));
    CREATE TABLE IF NOT EXISTS wyrm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    pos: i64,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

pub(super) fn text(s: &str) -> Bind {
    Bind { value: Value::Text(s.to_owned()), ty: FieldType::Text }
}

pub(super) fn int(i: u64) -> Bind {
    Bind { value: Value::Int(i as i64), ty: FieldType::I64 }
}

/// Runs `f` in a write transaction that no other process's setup runs
/// beside: on PostgreSQL under a transaction-scoped advisory lock (two
/// processes opening a fresh database at once would otherwise race in
/// `CREATE TABLE IF NOT EXISTS`), on SQLite under its write lock.
pub(super) fn serialized_setup<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, Error>) -> Result<T, Error> {
    use diesel::connection::SimpleConnection;
    match conn.dialect() {
        Dialect::Sqlite => conn.begin("BEGIN IMMEDIATE")?,
        Dialect::Postgres => {
            conn.begin("BEGIN")?;
            let locked = conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({})", crate::sql::SETUP_LOCK));
            if let Err(e) = locked {
                conn.rollback();
                return Err(e.into());
            }
        }
    }
    match f(conn) {
        Ok(value) => {
            conn.commit()?;
            Ok(value)
        }
        Err(e) => {
            conn.rollback();
            Err(e)
        }
    }
}

/// Creates the tables if missing; returns the epoch, created on first use.
/// Safe when several processes open a fresh database at once.
pub(super) fn setup(conn: &mut Conn) -> Result<u64, Error> {
    serialized_setup(conn, setup_tables)
}

fn setup_tables(conn: &mut Conn) -> Result<u64, Error> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(TABLES)?;
    conn.batch_execute(super::keys::TABLE)?;
    let fresh = random_epoch().to_string();
    load::<Setting>(
        conn,
        "INSERT INTO wyrm_meta (key, value) VALUES ('epoch', ?) ON CONFLICT (key) DO NOTHING RETURNING value",
        &[text(&fresh)],
    )?;
    let epoch = load::<Setting>(conn, "SELECT value FROM wyrm_meta WHERE key = 'epoch'", &[])?;
    epoch
        .first()
        .and_then(|s| s.value.parse().ok())
        .ok_or_else(|| Error::Internal("wyrm_meta has no valid epoch".into()))
}

/// A random epoch below 2^53, so JavaScript clients compare it exactly.
fn random_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (h.finish() & ((1 << 53) - 1)).max(1)
}

/// The route's last committed position, as the current transaction sees it.
pub(super) fn current(conn: &mut Conn, route: &str) -> Result<u64, Error> {
    let rows = load::<Position>(conn, "SELECT pos FROM wyrm_positions WHERE route = ?", &[text(route)])?;
    Ok(rows.first().map_or(0, |p| p.pos as u64))
}

diesel::table! {
    wyrm_changes (route, pos) {
        route -> Text,
        pos -> BigInt,
        body -> Text,
    }
}

/// Runs the same Diesel query on either backend's connection.
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            Conn::Pg($c) => $body,
        }
    };
}

/// Adds `n` to the route's counter; returns the new end. Not SQL text
/// through `sql_query` (which Diesel prepares anew each time) nor Diesel's
/// upsert (which it never caches): a fragment of fixed text whose prepared
/// form the connection keeps. Preparing this and the history insert was
/// about a third of a one-row write's instructions on SQLite (issue 14,
/// item 3).
fn advance(conn: &mut Conn, route: &str, n: u64) -> Result<i64, Error> {
    use diesel::RunQueryDsl;
    let query = Advance { route, n: n as i64 };
    Ok(on_conn!(conn, |c| query.get_result::<i64>(c))?)
}

/// `INSERT .. ON CONFLICT DO UPDATE .. RETURNING pos` for [`advance`].
#[derive(Clone, Copy)]
struct Advance<'a> {
    route: &'a str,
    n: i64,
}

impl diesel::query_builder::QueryId for Advance<'_> {
    type QueryId = ();
    // Cached by its text, which never changes.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Advance<'_> {
    type SqlType = BigInt;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for Advance<'_>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<Text> + diesel::sql_types::HasSqlType<BigInt>,
    str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        out.push_sql("INSERT INTO wyrm_positions (route, pos) VALUES (");
        out.push_bind_param::<Text, str>(self.route)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, i64>(&self.n)?;
        out.push_sql(") ON CONFLICT (route) DO UPDATE SET pos = wyrm_positions.pos + excluded.pos RETURNING pos");
        Ok(())
    }
}

impl<C> diesel::RunQueryDsl<C> for Advance<'_> {}

/// Keeps one change in the route's history (prepared once, as [`advance`]).
fn keep(conn: &mut Conn, route: &str, pos: i64, body: &str) -> Result<(), Error> {
    use diesel::prelude::*;
    use wyrm_changes::dsl;
    on_conn!(conn, |c| diesel::insert_into(dsl::wyrm_changes)
        .values((dsl::route.eq(route), dsl::pos.eq(pos), dsl::body.eq(body)))
        .execute(c))?;
    Ok(())
}

/// Numbers a transaction's changes and writes them to history. Counters are
/// taken last and in route order, so a transaction holding one never waits
/// for a row another holds: no deadlock between writers.
pub(super) fn number(conn: &mut Conn, changes: &mut [Change]) -> Result<(), Error> {
    let mut routes: Vec<&'static str> = changes.iter().map(|c| c.route).collect();
    routes.sort_unstable();
    routes.dedup();
    for route in routes {
        let n = changes.iter().filter(|c| c.route == route).count() as u64;
        let end = advance(conn, route, n)? as u64;
        let mut pos = end - n;
        for change in changes.iter_mut().filter(|c| c.route == route) {
            pos += 1;
            change.pos = pos;
            keep(conn, route, pos as i64, &change.to_wire().to_string())?;
        }
        // Trim now and then rather than on every write.
        if end / 256 != (end - n) / 256 && end > HISTORY_LEN {
            load::<Position>(
                conn,
                "DELETE FROM wyrm_changes WHERE route = ? AND pos <= ? RETURNING pos",
                &[text(route), int(end - HISTORY_LEN)],
            )?;
        }
    }
    Ok(())
}
