//! Column types for the field types Diesel spells differently on SQLite and
//! PostgreSQL, so that one model struct loads from both.
//!
//! Diesel's `Date` and `Timestamp` already work on both; for the others it
//! has a PostgreSQL type that SQLite lacks (`Uuid`), or two types
//! (`Timestamptz` and `TimestamptzSqlite`; `Jsonb` is binary on SQLite). In a
//! `diesel::table!`, name these instead:
//!
//! ```
//! diesel::table! {
//!     notes (id) {
//!         id -> Integer,
//!         due -> Nullable<Date>,
//!         created_at -> wyrmhole::sql::types::TimestampUtc,
//!         key -> wyrmhole::sql::types::Uuid,
//!         settings -> wyrmhole::sql::types::Json,
//!     }
//! }
//! ```
//!
//! (`TimestampUtc` is not called `Timestamptz` because `diesel::table!`
//! expects date arithmetic of a column type of that name.)
//!
//! On PostgreSQL they are `timestamptz`, `uuid` and `jsonb`; on SQLite, text
//! in the forms Diesel writes (`2024-02-29 13:05:00+00:00`), hyphenated
//! lowercase UUIDs (which sort as PostgreSQL sorts `uuid`: by bytes) and JSON
//! text. wyrmhole binds filter operands in the same forms, so that SQLite's
//! text comparison is the comparison of values.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};

#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgValue};

/// `chrono::DateTime<Utc>`: `timestamptz` on PostgreSQL, text on SQLite.
#[derive(Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
pub struct TimestampUtc;

/// `uuid::Uuid`: `uuid` on PostgreSQL, hyphenated lowercase text on SQLite.
#[derive(Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
pub struct Uuid;

/// `serde_json::Value`: `jsonb` on PostgreSQL, JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
#[diesel(sqlite_type(name = "Text"))]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
pub struct Json;

impl FromSql<TimestampUtc, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <Self as FromSql<diesel::sql_types::TimestamptzSqlite, Sqlite>>::from_sql(value)
    }
}

impl ToSql<TimestampUtc, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <Self as ToSql<diesel::sql_types::TimestamptzSqlite, Sqlite>>::to_sql(self, out)
    }
}

impl FromSql<Uuid, Sqlite> for uuid::Uuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        uuid::Uuid::try_parse(&text).map_err(Into::into)
    }
}

impl ToSql<Uuid, Sqlite> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Json, Sqlite> for serde_json::Value {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <Self as FromSql<diesel::sql_types::Json, Sqlite>>::from_sql(value)
    }
}

impl ToSql<Json, Sqlite> for serde_json::Value {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <Self as ToSql<diesel::sql_types::Json, Sqlite>>::to_sql(self, out)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<TimestampUtc, Pg> for DateTime<Utc> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<TimestampUtc, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Self as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(self, out)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<Uuid, Pg> for uuid::Uuid {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(value)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<Uuid, Pg> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Self as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(self, out)
    }
}

#[cfg(feature = "postgres")]
impl FromSql<Json, Pg> for serde_json::Value {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(value)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<Json, Pg> for serde_json::Value {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Self as ToSql<diesel::sql_types::Jsonb, Pg>>::to_sql(self, out)
    }
}
