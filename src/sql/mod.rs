//! The SQL layer: dialects, bound values, the filter renderer and the SQL
//! functions wyrmhole installs, shared by the store and the verbs.
//!
//! Everything here is about text sent to a database and the values bound to
//! it; nothing here holds a connection pool, a transaction or a change.
//! Fragments use `?` placeholders, numbered by position: callers concatenate
//! fragments (a primary key bind, then a scope's), which `$n` numbering would
//! make error-prone. [`Dialect::finish`] turns the whole statement into the
//! dialect's form once, just before it is sent.

pub mod fold;
mod render;
pub mod types;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Date, Double, Float, HasSqlType, Integer, Nullable, SmallInt, Text, Timestamp};

use crate::error::{Error, FieldErrors};
use crate::filter::{FieldAccess, Filter};
use crate::model::{FieldType, Storage, Value};

pub use render::render;

/// The PostgreSQL advisory lock key that serializes wyrmhole's own setup
/// (its tables, `wyrm_upper`, and [`Db::execute_batch`](crate::Db::execute_batch))
/// across processes. Arbitrary but fixed: "wyrm" in ASCII.
pub(crate) const SETUP_LOCK: i64 = 2004448621;

/// The SQL dialect a filter is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3.35 or later, with [`register_sqlite_functions`](crate::sql::fold::register_sqlite_functions)
    /// applied to the connection.
    Sqlite,
    /// PostgreSQL 11 or later, in a UTF8 database where wyrmhole has
    /// installed `wyrm_upper` (`Db::open` does).
    Postgres,
}

impl Dialect {
    /// The SQL function that applies `fold_case`.
    fn fold_function(self) -> &'static str {
        "wyrm_upper"
    }

    /// The collation that orders text by its UTF-8 bytes, as `str` does.
    pub fn byte_collation(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BINARY",
            Dialect::Postgres => "\"C\"",
        }
    }

    /// Whether text values may contain NUL characters. PostgreSQL's `text`
    /// cannot hold them; SQLite's can.
    pub fn allows_nul(self) -> bool {
        self == Dialect::Sqlite
    }

    /// The statement as this dialect takes it: on PostgreSQL, the `?`
    /// placeholders of wyrmhole's SQL become `$1`, `$2`, ... in order.
    /// A `?` inside a quoted identifier or a string literal is left alone
    /// (wyrmhole binds every value, so literals only come from callers);
    /// no other syntax is understood, so the statement must not use
    /// PostgreSQL's `?` operators, E'' strings with `\'`, or comments.
    pub fn finish(self, sql: &str) -> Cow<'_, str> {
        if self == Dialect::Sqlite || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut quote = None;
        let mut n = 0;
        for c in sql.chars() {
            match (quote, c) {
                // A doubled quote inside quotes closes and reopens: same state.
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '?') => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        Cow::Owned(out)
    }
}

/// A value to bind, with the type of the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    /// The value.
    pub value: Value,
    /// The field's type, which picks the SQL type it is bound as.
    pub ty: FieldType,
}

/// A piece of SQL with `?` placeholders, and the values for them in order.
/// Send it through [`Dialect::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    /// The SQL text.
    pub sql: String,
    /// The values for its placeholders.
    pub binds: Vec<Bind>,
}

/// Binds every value with the Diesel SQL type of its field's storage
/// (`Integer`, `Double`, `Date`, [`types::Uuid`], ...; `Nullable` for null),
/// for SQLite or PostgreSQL.
pub fn bind_all<'f, DB>(query: BoxedSqlQuery<'f, DB, SqlQuery>, binds: &[Bind]) -> BoxedSqlQuery<'f, DB, SqlQuery>
where
    DB: Backend
        + HasSqlType<Bool>
        + HasSqlType<SmallInt>
        + HasSqlType<Integer>
        + HasSqlType<BigInt>
        + HasSqlType<Float>
        + HasSqlType<Double>
        + HasSqlType<Text>
        + HasSqlType<Date>
        + HasSqlType<Timestamp>
        + HasSqlType<types::TimestampUtc>
        + HasSqlType<types::Uuid>
        + HasSqlType<types::Json>,
    bool: ToSql<Bool, DB>,
    i16: ToSql<SmallInt, DB>,
    i32: ToSql<Integer, DB>,
    i64: ToSql<BigInt, DB>,
    f32: ToSql<Float, DB>,
    f64: ToSql<Double, DB>,
    String: ToSql<Text, DB>,
    NaiveDate: ToSql<Date, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    DateTime<Utc>: ToSql<types::TimestampUtc, DB>,
    uuid::Uuid: ToSql<types::Uuid, DB>,
    serde_json::Value: ToSql<types::Json, DB>,
{
    binds.iter().fold(query, |query, bind| match (&bind.value, bind.ty.storage()) {
        (Value::Null, Storage::Bool) => query.bind::<Nullable<Bool>, Option<bool>>(None),
        (Value::Null, Storage::I16) => query.bind::<Nullable<SmallInt>, Option<i16>>(None),
        (Value::Null, Storage::I32) => query.bind::<Nullable<Integer>, Option<i32>>(None),
        (Value::Null, Storage::I64) => query.bind::<Nullable<BigInt>, Option<i64>>(None),
        (Value::Null, Storage::F32) => query.bind::<Nullable<Float>, Option<f32>>(None),
        (Value::Null, Storage::F64) => query.bind::<Nullable<Double>, Option<f64>>(None),
        (Value::Null, Storage::Text) => query.bind::<Nullable<Text>, Option<String>>(None),
        (Value::Null, Storage::Date) => query.bind::<Nullable<Date>, Option<NaiveDate>>(None),
        (Value::Null, Storage::DateTime) => query.bind::<Nullable<Timestamp>, Option<NaiveDateTime>>(None),
        (Value::Null, Storage::DateTimeUtc) => query.bind::<Nullable<types::TimestampUtc>, Option<DateTime<Utc>>>(None),
        (Value::Null, Storage::Uuid) => query.bind::<Nullable<types::Uuid>, Option<uuid::Uuid>>(None),
        (Value::Null, Storage::Json) => query.bind::<Nullable<types::Json>, Option<serde_json::Value>>(None),
        (Value::Bool(b), _) => query.bind::<Bool, _>(*b),
        // A value that does not fit its field's width (only possible for
        // binds built outside `Filter::parse`) is bound whole rather than
        // wrapped: the database then rejects it or compares it correctly.
        (Value::Int(i), Storage::I16) => match i16::try_from(*i) {
            Ok(small) => query.bind::<SmallInt, _>(small),
            Err(_) => query.bind::<BigInt, _>(*i),
        },
        (Value::Int(i), Storage::I32) => match i32::try_from(*i) {
            Ok(int) => query.bind::<Integer, _>(int),
            Err(_) => query.bind::<BigInt, _>(*i),
        },
        (Value::Int(i), _) => query.bind::<BigInt, _>(*i),
        // SQLite stores a NaN as NULL, and the in-memory filters treat it as
        // one; PostgreSQL would keep a NaN that sorts above every number.
        // Binding NULL makes both databases hold what the filters expect.
        (Value::Float(f), _) if f.is_nan() => query.bind::<Nullable<Double>, Option<f64>>(None),
        // An `f32` field's values are rounded to `f32` when parsed, so this
        // loses nothing; filter operands are bound as `F64` (see render.rs).
        (Value::Float(f), Storage::F32) => query.bind::<Float, _>(*f as f32),
        (Value::Float(f), _) => query.bind::<Double, _>(*f),
        (Value::Text(s), _) => query.bind::<Text, _>(s.clone()),
        (Value::Date(d), _) => query.bind::<Date, _>(*d),
        (Value::DateTime(d), _) => query.bind::<Timestamp, _>(*d),
        (Value::DateTimeUtc(d), _) => query.bind::<types::TimestampUtc, _>(*d),
        (Value::Uuid(u), _) => query.bind::<types::Uuid, _>(*u),
        (Value::Json(j), _) => query.bind::<types::Json, _>((**j).clone()),
        // Never a bind: contexts live in changes only. NULL keeps the statement's shape.
        (Value::Related(_), _) => query.bind::<Nullable<Text>, Option<String>>(None),
    })
}

/// Quotes an identifier: `"col"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parses a filter and refuses operands this dialect cannot store (text
/// with NUL on PostgreSQL), reported under the key like any other operand.
/// Keys may go through the model's relations.
pub fn parse_filter(
    model: &'static crate::relation::ModelInfo,
    json: &serde_json::Value,
    access: FieldAccess,
    dialect: Dialect,
) -> Result<Filter, FieldErrors> {
    Filter::parse_model(model, json, access, dialect.allows_nul())
}

/// Database failures map to `conflict` for constraint violations and
/// `internal` for everything else. A conflict says which kind of
/// constraint refused the write, never which table, column or constraint:
/// those are the schema's, not the client's (the detail goes to the log).
impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match &e {
            D::DatabaseError(
                kind @ (K::UniqueViolation | K::ForeignKeyViolation | K::NotNullViolation | K::CheckViolation),
                info,
            ) => {
                tracing::info!(detail = info.message(), constraint = ?info.constraint_name(), "a constraint refused a write");
                Error::Conflict(
                    match kind {
                        K::UniqueViolation => "a value that must be unique is already taken",
                        K::ForeignKeyViolation => {
                            "the write refers to an object that does not exist, or removes one still referred to"
                        }
                        K::NotNullViolation => "a required value is missing",
                        _ => "a value breaks a rule of the database",
                    }
                    .into(),
                )
            }
            D::NotFound => Error::Internal("row vanished during the request".into()),
            _ => Error::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("list_id"), "\"list_id\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn finish_numbers_placeholders_for_postgres_only() {
        let sql = "SELECT \"a?\" FROM t WHERE x = ? AND (y = 'it''s ?' OR z IN (?, ?)) AND \"q\"\"?\" = ?";
        assert_eq!(Dialect::Sqlite.finish(sql), sql);
        assert_eq!(
            Dialect::Postgres.finish(sql),
            "SELECT \"a?\" FROM t WHERE x = $1 AND (y = 'it''s ?' OR z IN ($2, $3)) AND \"q\"\"?\" = $4"
        );
        assert!(matches!(Dialect::Postgres.finish("SELECT 1"), Cow::Borrowed(_)));
        let many = ["?"; 12].join(", ");
        assert!(Dialect::Postgres.finish(&many).ends_with("$11, $12"));
    }
}
