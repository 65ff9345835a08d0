//! `subscribe` with `limit` (and usually `order_by`): an ordered, limited
//! live window (see [`crate::fanout::window`] for how it stays current).
//! This is the model's side: the SQL that reads many windows at once, and
//! decoding its rows.

use std::sync::Arc;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, QueryableByName};
use diesel::row::NamedRow;
use diesel::sql_types::BigInt;

use super::Route;
use crate::error::Error;
use crate::fanout::window::{Loader, Refresher, Window, WindowQuery, WindowRow, WindowSink};
use crate::fanout::{Fanout, RouteInfo};
use crate::filter::Filter;
use crate::protocol::{self, Request};
use crate::record;
use crate::session::Session;
use crate::sql::{self, quote_ident};
use crate::store::{columns, load, Conn, Db, Persist};

/// Windows per statement: SQLite allows 500 terms in a compound `SELECT`.
const WINDOWS_PER_STATEMENT: usize = 200;

/// A row of one window in a batched read: which window, where in it, and
/// the model's row.
struct Tagged<M> {
    window: i64,
    rank: i64,
    row: M,
}

impl<DB, M> QueryableByName<DB> for Tagged<M>
where
    DB: Backend,
    M: QueryableByName<DB>,
    i64: FromSql<BigInt, DB>,
{
    fn build<'a>(row: &impl NamedRow<'a, DB>) -> diesel::deserialize::Result<Self> {
        Ok(Tagged {
            window: NamedRow::get::<BigInt, i64>(row, "wyrm_window")?,
            rank: NamedRow::get::<BigInt, i64>(row, "wyrm_rank")?,
            row: M::build(row)?,
        })
    }
}

/// Reads every query's rows, in order: a `UNION ALL` of one limited
/// subquery per window (numbered, and ranked in its own order, since a
/// union keeps no order), a few hundred windows per statement, all in the
/// caller's one read transaction.
pub(crate) fn load_windows<M: Persist>(
    conn: &mut Conn,
    queries: &[&WindowQuery],
) -> Result<Vec<Vec<WindowRow>>, Error> {
    let (table, cols) = (quote_ident(M::TABLE), columns::<M>());
    let mut windows: Vec<Vec<(i64, WindowRow)>> = vec![Vec::new(); queries.len()];
    for (chunk_at, chunk) in queries.chunks(WINDOWS_PER_STATEMENT).enumerate() {
        let mut sql = String::new();
        let mut binds = Vec::new();
        for (i, q) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            let n = chunk_at * WINDOWS_PER_STATEMENT + i;
            sql.push_str(&format!(
                "SELECT * FROM (SELECT CAST({n} AS BIGINT) AS wyrm_window, \
                 CAST(ROW_NUMBER() OVER (ORDER BY {order}) AS BIGINT) AS wyrm_rank, {cols} \
                 FROM {table} WHERE {filter} ORDER BY {order} LIMIT {limit}) AS wyrm_w{n}",
                order = q.order_by,
                filter = q.where_sql,
                limit = q.limit,
            ));
            binds.extend(q.binds.iter().cloned());
        }
        for tagged in load::<Tagged<M>>(conn, &sql, &binds)? {
            let row = tagged.row.to_row();
            let key = row[M::PRIMARY_KEY].to_json().to_string();
            let data: Arc<str> = record::published(M::FIELDS, &row).to_string().into();
            windows[tagged.window as usize].push((tagged.rank, WindowRow { key, data }));
        }
    }
    Ok(windows
        .into_iter()
        .map(|mut rows| {
            rows.sort_by_key(|(rank, _)| *rank);
            rows.into_iter().map(|(_, row)| row).collect()
        })
        .collect())
}

impl<M: Persist> Route<M> {
    /// A window's subscribe (`ORDER BY` terms and limit): the same sequence
    /// as any subscription (open, snapshot, start), with the window's sink
    /// in between.
    pub(super) async fn subscribe_window(
        &self,
        db: &Db,
        fanout: &Fanout,
        session: &Session,
        filter: Filter,
        request: &Request,
        (order_by, limit): (String, usize),
    ) -> Result<(), Error> {
        let fragment = sql::render(&filter, db.dialect());
        let query = WindowQuery { where_sql: fragment.sql, binds: fragment.binds, order_by, limit };
        session.check_room(&filter)?;
        let refresher = self.windows.get_or_init(|| {
            let loader: Arc<Loader> = Arc::new(|conn, queries| load_windows::<M>(conn, queries));
            Refresher::start(db.clone(), M::ROUTE, loader)
        });
        let window = Window::new(M::ROUTE, session.sink(), query.clone());
        let sink = WindowSink::new(window.clone(), refresher.clone());
        let opening = fanout.open(RouteInfo::of::<M>(), filter.clone(), sink).await;
        window.attach(opening.subscription().clone());
        // From here on, every early return drops `opening`, which ends the
        // subscription and with it the window.
        let Some(sub) = session.track(opening.subscription(), &filter)? else { return Ok(()) };
        let turn = session.db_turn().await;
        let snapshot = db.snapshot(M::ROUTE, move |conn| load_windows::<M>(conn, &[&query])).await;
        drop(turn);
        let (pos, rows) = match snapshot {
            Ok((pos, mut windows)) => (pos, windows.pop().unwrap_or_default()),
            Err(e) => {
                session.forget(sub);
                return Err(e);
            }
        };
        let json: Vec<serde_json::Value> =
            rows.iter().map(|r| serde_json::from_str(&r.data).expect("a row serialized here")).collect();
        window.set_rows(rows);
        let reply = protocol::ok_reply(
            &request.id,
            serde_json::json!({ "sub": sub, "epoch": fanout.epoch(), "pos": pos, "rows": json, "limit": limit }),
        );
        let max = session.max_reply_bytes();
        if reply.len() > max {
            session.forget(sub);
            return Err(Error::ReplyTooLarge { size: reply.len(), limit: max });
        }
        opening.start(reply, pos, pos).await;
        Ok(())
    }
}
