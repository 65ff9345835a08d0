//! The verbs that read and write rows: `get_single`, `get_list`, `create`,
//! `update`, `delete`. Each applies the caller's scope in SQL before it
//! reads or writes, so a row outside the scope is `not_found` whatever the
//! verb, and nothing about it (not even a constraint it would violate)
//! reaches the caller.

use super::args::Args;
use super::keyed;
use super::{Route, ValidateFn, Validation};
use crate::auth::Identity;
use crate::error::Error;
use crate::filter::Filter;
use crate::model::Model;
use crate::record::{self, Patch, WriteAccess};
use crate::sql::{self, quote_ident, Bind};
use crate::store::{columns, get_by_id, load, Conn, Db, KeyClaim, Lock, Persist};

impl<M: Persist> Route<M> {
    pub(super) async fn get_single(&self, db: &Db, scope: Filter, args: &Args<'_>) -> Result<serde_json::Value, Error> {
        let id = args.id::<M>()?;
        args.reject_others(&["id"])?;
        let found = db.read(move |conn| get_by_id::<M>(conn, &id, Some(&scope), Lock::No)).await?;
        let row = found.ok_or_else(|| not_found::<M>(args.raw("id")))?;
        Ok(record::published(M::FIELDS, &row.to_row()))
    }

    pub(super) async fn get_list(&self, db: &Db, scope: Filter, args: &Args<'_>) -> Result<serde_json::Value, Error> {
        args.reject_others(&["filter", "order_by", "limit", "offset", "total"])?;
        let dialect = db.dialect();
        let filter = args.filter::<M>(dialect, &self.limits)?.and(scope);
        let order = args.order_by::<M>(dialect, self.limits.max_order_by)?;
        let limit = args.count("limit")?.unwrap_or(self.limits.default_page);
        if limit == 0 || limit > self.limits.max_page {
            return Err(Error::bad_arg("limit", format!("must be from 1 to {}", self.limits.max_page)));
        }
        let offset = args.sql_count("offset")?.unwrap_or(0);
        let want_total = args.flag("total")?;
        let (rows, total) = db
            .read(move |conn| {
                let fragment = sql::render(&filter, dialect);
                let table = quote_ident(M::TABLE);
                let sql = format!(
                    "SELECT {} FROM {table} WHERE {} ORDER BY {order} LIMIT {} OFFSET {offset}",
                    columns::<M>(),
                    fragment.sql,
                    limit + 1
                );
                let rows = load::<M>(conn, &sql, &fragment.binds)?;
                let total = if want_total { Some(count(conn, &table, &fragment.sql, &fragment.binds)?) } else { None };
                Ok((rows, total))
            })
            .await?;
        let has_more = rows.len() > limit;
        let rows: Vec<_> = rows.iter().take(limit).map(|r| record::published(M::FIELDS, &r.to_row())).collect();
        let mut reply = serde_json::json!({ "rows": rows, "has_more": has_more, "limit": limit, "offset": offset });
        if let Some(total) = total {
            reply["total"] = total.into();
        }
        Ok(reply)
    }

    pub(super) async fn create(
        &self,
        db: &Db,
        identity: &Identity,
        scope: Filter,
        args: &Args<'_>,
        key: Option<KeyClaim>,
    ) -> Result<serde_json::Value, Error> {
        args.reject_others(&["data"])?;
        let mut patch = Patch::parse(M::FIELDS, args.data::<M>()?, WriteAccess::Client)?;
        patch.check_required(M::FIELDS)?;
        if let Some(initial) = self.initial_for(identity)? {
            patch.merge(initial);
        }
        let (validate, identity, on_create) = (self.validate.clone(), identity.clone(), self.on_create.clone());
        keyed::write(db, key, move |tx| {
            let new: M = tx.insert_patch(&patch)?;
            if let Some(on_create) = &on_create {
                on_create(tx, &identity, &new)?;
            }
            let row = new.to_row();
            if !tx.in_scope(&new, &scope)? {
                return Err(Error::Forbidden("the new object would be outside your scope".into()));
            }
            run_validation(&validate, &Validation { identity: &identity, old: None, new: &new })?;
            Ok(record::published(M::FIELDS, &row))
        })
        .await
    }

    pub(super) async fn update(
        &self,
        db: &Db,
        identity: &Identity,
        scope: Filter,
        args: &Args<'_>,
        key: Option<KeyClaim>,
    ) -> Result<serde_json::Value, Error> {
        args.reject_others(&["id", "data"])?;
        let id = args.id::<M>()?;
        let patch = Patch::parse(M::FIELDS, args.data::<M>()?, WriteAccess::Client)?;
        let (validate, identity) = (self.validate.clone(), identity.clone());
        let missing = not_found::<M>(args.raw("id"));
        keyed::write(db, key, move |tx| {
            // Scope first, locked: a row outside it is `not_found` before
            // anything is written, whatever the write would have run into.
            let Some(old) = tx.get_in_scope::<M>(&id, &scope)? else { return Err(missing) };
            let (old, new) = tx.update_locked(old, &patch)?;
            let row = new.to_row();
            if !tx.in_scope(&new, &scope)? {
                return Err(Error::Forbidden("the change would move the object outside your scope".into()));
            }
            run_validation(&validate, &Validation { identity: &identity, old: Some(&old), new: &new })?;
            Ok(record::published(M::FIELDS, &row))
        })
        .await
    }

    pub(super) async fn delete(
        &self,
        db: &Db,
        identity: &Identity,
        scope: Filter,
        args: &Args<'_>,
        key: Option<KeyClaim>,
    ) -> Result<serde_json::Value, Error> {
        args.reject_others(&["id"])?;
        let id = args.id::<M>()?;
        let missing = not_found::<M>(args.raw("id"));
        let (identity, on_delete) = (identity.clone(), self.on_delete.clone());
        keyed::write(db, key, move |tx| {
            // Locked on PostgreSQL, so the row cannot leave the scope between
            // this check and the delete.
            let Some(found) = tx.get_in_scope::<M>(&id, &scope)? else { return Err(missing) };
            if let Some(on_delete) = &on_delete {
                on_delete(tx, &identity, &found)?;
            }
            let old: M = tx.delete(id)?.ok_or(missing)?;
            Ok(record::id_only(M::FIELDS, M::PRIMARY_KEY, &old.to_row()))
        })
        .await
    }
}

pub(super) fn run_validation<M>(validate: &Option<ValidateFn<M>>, v: &Validation<'_, M>) -> Result<(), Error> {
    match validate {
        Some(f) => f(v).map_err(Error::ValidationFailed),
        None => Ok(()),
    }
}

pub(super) fn not_found<M: Model>(id: &serde_json::Value) -> Error {
    Error::NotFound { route: M::ROUTE.to_owned(), id: id.to_string() }
}

fn count(conn: &mut Conn, table: &str, filter: &str, binds: &[Bind]) -> Result<i64, Error> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
    let counted = load::<Count>(conn, &sql, binds)?.pop();
    Ok(counted.ok_or_else(|| Error::Internal("COUNT(*) returned no row".into()))?.n)
}
