//! The statements wyrmhole itself sends for a model: select by filter, one
//! row by primary key, and the typed loading of any `?`-placeholder query.

use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

#[cfg(feature = "postgres")]
use diesel::pg::Pg;

use std::any::TypeId;

use super::conn::{ByName, Conn, Persist};
use super::statements::{self, Shape, Statement};
use crate::error::Error;
use crate::filter::{FieldAccess, Filter};
use crate::model::{Model, Value};
use crate::sql::{self, bind_all, quote_ident, Bind, Dialect, SqlFragment};

/// A filter written by server code: any field may be named.
pub fn server_filter<M: Model>(json: &serde_json::Value) -> Result<Filter, Error> {
    Filter::parse_model(M::info(), json, FieldAccess::All, true).map_err(Error::BadFilter)
}

/// [`server_filter`], refusing operands the database cannot take.
pub(crate) fn server_filter_for<M: Model>(json: &serde_json::Value, dialect: Dialect) -> Result<Filter, Error> {
    sql::parse_filter(M::info(), json, FieldAccess::All, dialect).map_err(Error::BadFilter)
}

/// The rows of `M` matching `filter`, ordered by primary key.
pub(crate) fn select<M: Persist>(conn: &mut Conn, filter: &Filter) -> Result<Vec<M>, Error> {
    let fragment = sql::render(filter, conn.dialect());
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {}",
        columns::<M>(),
        quote_ident(M::TABLE),
        fragment.sql,
        quote_ident(M::FIELDS[M::PRIMARY_KEY].column)
    );
    load::<M>(conn, &sql, &fragment.binds)
}

/// `"id", "list_id", ...`: every column of a model, in field order.
pub(crate) fn columns<M: Model>() -> String {
    M::FIELDS.iter().map(|f| quote_ident(f.column)).collect::<Vec<_>>().join(", ")
}

/// Runs a query with `?` placeholders and binds, and decodes the rows.
pub(crate) fn load<T: ByName + 'static>(conn: &mut Conn, sql: &str, binds: &[Bind]) -> Result<Vec<T>, Error> {
    let sql = conn.dialect().finish(sql).into_owned();
    match conn {
        Conn::Sqlite(c) => Ok(bind_all(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).load::<T>(c)?),
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => Ok(bind_all(diesel::sql_query(sql).into_boxed::<Pg>(), binds).load::<T>(c)?),
    }
}

/// Runs one of the statements of [`statements`](super::statements): kept
/// prepared by the connection when it is one of the bounded set.
pub(crate) fn load_statement<T: ByName + 'static>(
    conn: &mut Conn,
    statement: &Statement,
    binds: &[Bind],
) -> Result<Vec<T>, Error> {
    if !statement.keep {
        return load(conn, &statement.sql, binds);
    }
    let sql = String::from(&*statement.sql);
    match conn {
        Conn::Sqlite(c) => Ok(Kept(bind_all(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds)).load::<T>(c)?),
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => Ok(Kept(bind_all(diesel::sql_query(sql).into_boxed::<Pg>(), binds)).load::<T>(c)?),
    }
}

/// A query Diesel may keep prepared, cached by its text: `sql_query` says
/// it may not, since its text could be anything; ours is one of a bounded
/// set ([`statements`](super::statements)).
struct Kept<Q>(Q);

impl<Q> diesel::query_builder::QueryId for Kept<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Kept<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Kept<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, C> RunQueryDsl<C> for Kept<Q> {}

/// Whether a read inside a write transaction locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    No,
    /// `FOR UPDATE` on PostgreSQL. SQLite has no row locks and needs none:
    /// its write transaction holds the whole database from `BEGIN IMMEDIATE`.
    ForUpdate,
}

/// One row by primary key, optionally within a filter (a scope).
pub(crate) fn get_by_id<M: Persist>(
    conn: &mut Conn,
    id: &Value,
    within: Option<&Filter>,
    lock: Lock,
) -> Result<Option<M>, Error> {
    let dialect = conn.dialect();
    let pk = &M::FIELDS[M::PRIMARY_KEY];
    let scope =
        within.map(|f| sql::render(f, dialect)).unwrap_or(SqlFragment { sql: "1 = 1".into(), binds: Vec::new() });
    let lock = match (lock, dialect) {
        (Lock::ForUpdate, Dialect::Postgres) => " FOR UPDATE",
        _ => "",
    };
    // Without a scope the text is the model's; a scope's is not kept.
    let shape = within.is_none().then_some(Shape::Get { lock: !lock.is_empty() });
    let statement = statements::statement(TypeId::of::<M>(), dialect, shape, || {
        format!(
            "SELECT {} FROM {} WHERE {} = ? AND ({}){lock}",
            columns::<M>(),
            quote_ident(M::TABLE),
            quote_ident(pk.column),
            scope.sql
        )
    });
    let mut binds = vec![Bind { value: id.clone(), ty: pk.ty }];
    binds.extend(scope.binds);
    Ok(load_statement::<M>(conn, &statement, &binds)?.pop())
}
