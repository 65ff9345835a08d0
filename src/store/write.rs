//! Write transactions: [`WriteTx`], the save API of verbs and server code
//! alike, which records every row it changes so the commit can publish it.

use std::any::TypeId;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::conn::{Conn, Persist};
use super::graph::Graph;
use super::keys::{self, KeyClaim};
use super::positions;
use super::query::{columns, get_by_id, load_statement, select, server_filter_for, Lock};
use super::related;
use super::statements::{self, Shape};
use crate::change::Change;
use crate::error::Error;
use crate::model::{Model, Value};
use crate::record::{Patch, WriteAccess};
use crate::sql::{quote_ident, Bind, Dialect};

/// A write transaction. Every write made through it is published after
/// commit; writes made with raw SQL on [`WriteTx::connection`] are not.
pub struct WriteTx<'a> {
    conn: &'a mut Conn,
    graph: &'a Graph,
    changes: Vec<Change>,
}

/// Opens a write transaction on `conn`, for [`transaction`].
pub(super) fn begin(conn: &mut Conn) -> Result<(), Error> {
    // SQLite: take the write lock now, not at the first write, so a reader's
    // snapshot cannot make this transaction fail with BUSY halfway.
    // PostgreSQL locks rows as it writes them.
    let begin = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    conn.begin(begin).map_err(Error::from)
}

/// Runs `f` in the write transaction [`begin`] opened on `conn`; on
/// success, numbers its changes, keeps them in the history and commits.
/// Returns the value and the committed changes (for the caller to
/// publish); on failure or panic, rolls back and returns the error.
pub(super) fn transaction<T, E, F>(conn: &mut Conn, graph: &Graph, f: F) -> Result<(T, Vec<Change>), E>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    E: From<Error>,
{
    let mut tx = WriteTx { conn, graph, changes: Vec::new() };
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
    let WriteTx { conn, mut changes, .. } = tx;
    let value = match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            conn.rollback();
            return Err(e);
        }
        Err(panic) => {
            conn.rollback();
            let what = panic_message(&*panic);
            tracing::error!(panic = %what, "write transaction panicked; rolled back");
            return Err(Error::Internal(format!("panic in write transaction: {what}")).into());
        }
    };
    // Number the changes and keep them in history inside the transaction,
    // so positions follow commit order per route and a rollback consumes none.
    if let Err(e) = positions::number(conn, &mut changes) {
        conn.rollback();
        return Err(e.into());
    }
    if let Err(e) = conn.commit() {
        conn.rollback();
        return Err(Error::from(e).into());
    }
    Ok((value, changes))
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl WriteTx<'_> {
    /// The transaction's connection, for queries wyrmhole does not know
    /// about: match on the [`Conn`] to reach Diesel's SQLite or PostgreSQL
    /// connection. Changes made this way are not published.
    pub fn connection(&mut self) -> &mut Conn {
        self.conn
    }

    /// The SQL dialect of the transaction's database.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Reads the rows matching a filter (in the client filter syntax, free
    /// to name unpublished fields), ordered by primary key.
    pub fn select<M: Persist>(&mut self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        let filter = server_filter_for::<M>(filter, self.dialect())?;
        select::<M>(self.conn, &filter)
    }

    /// Reads one row by primary key.
    pub fn get<M: Persist>(&mut self, id: impl Into<Value>) -> Result<Option<M>, Error> {
        get_by_id::<M>(self.conn, &id.into(), None, Lock::No)
    }

    /// Inserts a row from JSON field values. Server code may set any field.
    pub fn insert<M: Persist>(&mut self, data: &serde_json::Value) -> Result<M, Error> {
        let patch = Patch::parse(M::FIELDS, data, WriteAccess::Server)?;
        self.insert_patch(&patch)
    }

    /// Inserts a row from checked values.
    pub fn insert_patch<M: Persist>(&mut self, patch: &Patch) -> Result<M, Error> {
        self.check_storable::<M>(patch)?;
        let binds = bind_patch::<M>(patch);
        let shape = Shape::fields(patch.values().iter().map(|(i, _)| *i)).map(Shape::Insert);
        let statement = statements::statement(TypeId::of::<M>(), self.dialect(), shape, || {
            if binds.is_empty() {
                return format!("INSERT INTO {} DEFAULT VALUES RETURNING {}", quote_ident(M::TABLE), columns::<M>());
            }
            let marks = vec!["?"; binds.len()].join(", ");
            format!(
                "INSERT INTO {} ({}) VALUES ({marks}) RETURNING {}",
                quote_ident(M::TABLE),
                set_columns::<M>(patch).join(", "),
                columns::<M>()
            )
        });
        let new = one::<M>(load_statement(self.conn, &statement, &binds)?)?;
        self.record::<M>(None, Some(&new))?;
        Ok(new)
    }

    /// Updates some fields of a row from JSON. `Ok(None)` if there is no such row.
    pub fn update<M: Persist>(&mut self, id: impl Into<Value>, data: &serde_json::Value) -> Result<Option<M>, Error> {
        let patch = Patch::parse(M::FIELDS, data, WriteAccess::Server)?;
        Ok(self.update_patch::<M>(&id.into(), &patch)?.map(|(_, new)| new))
    }

    /// Writes every field of `item` to its row (by primary key).
    pub fn save<M: Persist>(&mut self, item: &M) -> Result<Option<M>, Error> {
        let id = item.field(M::PRIMARY_KEY).to_owned();
        let patch = Patch::from_row(M::FIELDS, &item.to_row());
        Ok(self.update_patch::<M>(&id, &patch)?.map(|(_, new)| new))
    }

    /// Applies checked values to a row; returns the row before and after.
    pub fn update_patch<M: Persist>(&mut self, id: &Value, patch: &Patch) -> Result<Option<(M, M)>, Error> {
        // Locked, so the row published as "before" is the one this update
        // replaces even if a writer outside wyrmhole changes it meanwhile.
        let Some(old) = get_by_id::<M>(self.conn, id, None, Lock::ForUpdate)? else { return Ok(None) };
        self.update_locked(old, patch).map(Some)
    }

    /// Applies checked values to a row the caller read, locked, in this
    /// transaction (a verb that checked its scope first).
    pub(crate) fn update_locked<M: Persist>(&mut self, old: M, patch: &Patch) -> Result<(M, M), Error> {
        self.check_storable::<M>(patch)?;
        let id = old.field(M::PRIMARY_KEY).to_owned();
        if patch.is_empty() {
            let same = get_by_id::<M>(self.conn, &id, None, Lock::No)?.ok_or_else(vanished)?;
            return Ok((old, same));
        }
        let mut binds = bind_patch::<M>(patch);
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        binds.push(Bind { value: id, ty: pk.ty });
        let shape = Shape::fields(patch.values().iter().map(|(i, _)| *i)).map(Shape::Update);
        let statement = statements::statement(TypeId::of::<M>(), self.dialect(), shape, || {
            let sets = set_columns::<M>(patch).iter().map(|n| format!("{n} = ?")).collect::<Vec<_>>().join(", ");
            format!(
                "UPDATE {} SET {sets} WHERE {} = ? RETURNING {}",
                quote_ident(M::TABLE),
                quote_ident(pk.column),
                columns::<M>()
            )
        });
        let new = one::<M>(load_statement(self.conn, &statement, &binds)?)?;
        self.record::<M>(Some(&old), Some(&new))?;
        Ok((old, new))
    }

    /// Deletes a row by primary key; returns it, or `None` if there was none.
    pub fn delete<M: Persist>(&mut self, id: impl Into<Value>) -> Result<Option<M>, Error> {
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        let statement = statements::statement(TypeId::of::<M>(), self.dialect(), Some(Shape::Delete), || {
            format!(
                "DELETE FROM {} WHERE {} = ? RETURNING {}",
                quote_ident(M::TABLE),
                quote_ident(pk.column),
                columns::<M>()
            )
        });
        let old = load_statement::<M>(self.conn, &statement, &[Bind { value: id.into(), ty: pk.ty }])?.pop();
        if let Some(old) = &old {
            self.record::<M>(Some(old), None)?;
        }
        Ok(old)
    }

    /// Reads one row by primary key within `scope`, locked for the rest of
    /// the transaction: what a verb checks before it writes.
    pub(crate) fn get_in_scope<M: Persist>(
        &mut self,
        id: &Value,
        scope: &crate::filter::Filter,
    ) -> Result<Option<M>, Error> {
        get_by_id::<M>(self.conn, id, Some(scope), Lock::ForUpdate)
    }

    /// Whether a row this transaction wrote is within `scope`: in memory,
    /// or, for a scope that reaches through relations, as the database
    /// now holds it (its related rows included).
    pub(crate) fn in_scope<M: Persist>(&mut self, row: &M, scope: &crate::filter::Filter) -> Result<bool, Error> {
        if !scope.has_relations() {
            return Ok(scope.matches(&row.to_row()));
        }
        let id = row.field(M::PRIMARY_KEY).to_owned();
        Ok(get_by_id::<M>(self.conn, &id, Some(scope), Lock::No)?.is_some())
    }

    /// Claims a write's idempotency key in this transaction, before it
    /// writes: `Some(reply)` if a committed write already holds the key
    /// (the caller answers with it and writes nothing). See [`keys`].
    pub(crate) fn claim_key(&mut self, claim: &KeyClaim) -> Result<Option<serde_json::Value>, Error> {
        keys::claim(self.conn, claim)
    }

    /// Stores the reply of the write that claimed `claim`, to commit with it.
    pub(crate) fn remember_reply(&mut self, claim: &KeyClaim, reply: &serde_json::Value) -> Result<(), Error> {
        keys::remember(self.conn, claim, reply)
    }

    /// Refuses values this database cannot store (NUL in PostgreSQL text).
    fn check_storable<M: Model>(&self, patch: &Patch) -> Result<(), Error> {
        if self.dialect().allows_nul() {
            return Ok(());
        }
        patch.check_no_nul(M::FIELDS)
    }

    /// Publishes a written row: with its context if its model has
    /// relation paths, and followed by the rows of other models whose
    /// context it changed (see [`related`]).
    fn record<M: Model>(&mut self, old: Option<&M>, new: Option<&M>) -> Result<(), Error> {
        let published = related::publish(self.conn, self.graph, M::info(), old.map(M::to_row), new.map(M::to_row))?;
        self.changes.push(Change::new(M::ROUTE, M::FIELDS, M::PRIMARY_KEY, published.old, published.new));
        for (model, old, new) in published.derived {
            self.changes.push(Change::new(model.route, model.fields, model.primary_key, Some(old), Some(new)));
        }
        Ok(())
    }
}

fn vanished() -> Error {
    Error::Internal("row vanished inside its own transaction".into())
}

fn one<M>(mut rows: Vec<M>) -> Result<M, Error> {
    rows.pop().ok_or_else(vanished)
}

/// The values a patch sets, bound in its order.
fn bind_patch<M: Model>(patch: &Patch) -> Vec<Bind> {
    patch.values().iter().map(|(i, v)| Bind { value: v.clone(), ty: M::FIELDS[*i].ty }).collect()
}

/// The columns a patch sets, in its order (that of [`bind_patch`]).
fn set_columns<M: Model>(patch: &Patch) -> Vec<String> {
    patch.values().iter().map(|(i, _)| quote_ident(M::FIELDS[*i].column)).collect()
}
