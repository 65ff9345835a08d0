//! `subscribe` and `resume`: two ways into the one subscription sequence of
//! [`crate::fanout::sequence`]. They differ only in what the client gets
//! first: `subscribe` a snapshot of the rows at position P, then every
//! change after P; `resume` nothing but the changes after the position the
//! client already holds. With `limit` (and `order_by`), `subscribe` opens
//! an ordered window instead (`window.rs`), which `resume` refuses.

use super::args::Args;
use super::Route;
use crate::error::Error;
use crate::fanout::{Fanout, RouteInfo};
use crate::filter::Filter;
use crate::protocol::{self, Request};
use crate::record;
use crate::session::Session;
use crate::sql::{self, quote_ident};
use crate::store::{columns, history, load, Db, Persist};

impl<M: Persist> Route<M> {
    /// Snapshot at a known position, then every change after it: no change
    /// is lost or doubled, whatever else subscribes meanwhile.
    pub(super) async fn subscribe(
        &self,
        db: &Db,
        fanout: &Fanout,
        session: &Session,
        scope: Filter,
        request: &Request,
    ) -> Result<(), Error> {
        let args = Args(&request.args);
        args.reject_others(&["filter", "order_by", "limit"])?;
        let dialect = db.dialect();
        let filter = args.filter::<M>(dialect, &self.limits)?.and(scope);
        let order_by = args.order_by::<M>(dialect, self.limits.max_order_by)?;
        match args.count("limit")? {
            Some(limit) if limit == 0 || limit > self.limits.max_page => {
                return Err(Error::bad_arg("limit", format!("must be from 1 to {}", self.limits.max_page)));
            }
            Some(limit) => return self.subscribe_window(db, fanout, session, filter, request, (order_by, limit)).await,
            None if args.0.get("order_by").is_some_and(|o| !o.is_null()) => {
                return Err(Error::bad_arg("order_by", "orders a window: give a limit too"));
            }
            None => {}
        }
        session.check_room(&filter)?;
        let opening = fanout.open(RouteInfo::of::<M>(), filter.clone(), session.sink()).await;
        // From here on, every early return drops `opening`, which ends the
        // subscription: a refused subscribe leaves nothing behind.
        let Some(sub) = session.track(opening.subscription(), &filter)? else { return Ok(()) };
        let cap = self.limits.max_snapshot;
        let turn = session.db_turn().await;
        let snapshot = db
            .snapshot(M::ROUTE, move |conn| {
                let fragment = sql::render(&filter, dialect);
                let pk = quote_ident(M::FIELDS[M::PRIMARY_KEY].column);
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} ORDER BY {pk} LIMIT {}",
                    columns::<M>(),
                    quote_ident(M::TABLE),
                    fragment.sql,
                    cap + 1
                );
                load::<M>(conn, &sql, &fragment.binds)
            })
            .await;
        drop(turn);
        let (pos, rows) = match snapshot {
            Ok((_, rows)) if rows.len() > cap => {
                session.forget(sub);
                return Err(Error::TooManyRows(format!("the filter matches more than {cap} rows; narrow it")));
            }
            Ok(found) => found,
            Err(e) => {
                session.forget(sub);
                return Err(e);
            }
        };
        let rows: Vec<_> = rows.iter().map(|r| record::published(M::FIELDS, &r.to_row())).collect();
        let reply = protocol::ok_reply(
            &request.id,
            serde_json::json!({ "sub": sub, "epoch": fanout.epoch(), "pos": pos, "rows": rows }),
        );
        // Measured before it is queued: a snapshot too large to send is
        // refused like any other reply, and the subscription goes with it.
        let limit = session.max_reply_bytes();
        if reply.len() > limit {
            session.forget(sub);
            return Err(Error::ReplyTooLarge { size: reply.len(), limit });
        }
        opening.start(reply, pos, pos).await;
        Ok(())
    }

    /// Picks a subscription up where a client left it: every change after
    /// its position `pos` that concerns its filter, streamed from history
    /// with backpressure, then live. `cannot_resume` when the epoch differs,
    /// the position is ahead of the route, or history no longer reaches back
    /// to it; the client then subscribes afresh.
    pub(super) async fn resume(
        &self,
        db: &Db,
        fanout: &Fanout,
        session: &Session,
        scope: Filter,
        request: &Request,
    ) -> Result<(), Error> {
        let args = Args(&request.args);
        args.reject_others(&["filter", "epoch", "pos", "order_by", "limit"])?;
        if args.count("limit")?.is_some() {
            // A window's events say where rows go in what the client holds,
            // which a replay of the changes since its position cannot.
            return Err(Error::CannotResume("a window (a subscription with a limit) restarts with subscribe".into()));
        }
        let filter = args.filter::<M>(db.dialect(), &self.limits)?.and(scope);
        let epoch = args.count("epoch")?.ok_or_else(|| Error::bad_arg("epoch", "is required"))? as u64;
        let after = args.sql_count("pos")?.ok_or_else(|| Error::bad_arg("pos", "is required"))?;
        if epoch != fanout.epoch() {
            return Err(Error::CannotResume("the position belongs to another epoch (the database was reset)".into()));
        }
        session.check_room(&filter)?;
        let opening = fanout.open(RouteInfo::of::<M>(), filter.clone(), session.sink()).await;
        let Some(sub) = session.track(opening.subscription(), &filter)? else { return Ok(()) };
        let turn = session.db_turn().await;
        let checked = db.snapshot(M::ROUTE, move |conn| history::reaches(conn, M::ROUTE, after)).await;
        drop(turn);
        let head = match checked {
            Ok((head, _)) if after > head => Err(Error::CannotResume(format!("position {after} is ahead of {head}"))),
            Ok((_, false)) => Err(Error::CannotResume(format!("history no longer reaches back to {}", after + 1))),
            Ok((head, true)) => Ok(head),
            Err(e) => Err(e),
        };
        let head = head.inspect_err(|_| session.forget(sub))?;
        let reply = protocol::ok_reply(&request.id, serde_json::json!({ "sub": sub, "epoch": epoch, "pos": after }));
        opening.start(reply, after, head).await;
        Ok(())
    }
}
