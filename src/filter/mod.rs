//! TEMPORARY placeholder with the agreed API, replaced when the filter module lands.
#![allow(missing_docs, unused_variables)]
use crate::model::{FieldDef, FieldType, Value};
use crate::FieldErrors;
pub enum FieldAccess {
    Published,
    All,
}
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    fields: &'static [FieldDef],
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
}
pub struct Bind {
    pub value: Value,
    pub ty: FieldType,
}
pub struct SqlFragment {
    pub sql: String,
    pub binds: Vec<Bind>,
}
impl Filter {
    pub fn all() -> Filter {
        todo!()
    }
    pub fn nothing() -> Filter {
        todo!()
    }
    pub fn parse(
        fields: &'static [FieldDef],
        json: &serde_json::Value,
        access: FieldAccess,
    ) -> Result<Filter, FieldErrors> {
        todo!()
    }
    pub fn and(self, other: Filter) -> Filter {
        todo!()
    }
    pub fn matches(&self, row: &[Value]) -> bool {
        todo!()
    }
    pub fn to_sql(&self, dialect: Dialect) -> SqlFragment {
        todo!()
    }
    pub fn canonical_key(&self) -> String {
        todo!()
    }
    pub fn equalities(&self) -> impl Iterator<Item = (usize, &Value)> {
        std::iter::empty()
    }
    pub fn fields(&self) -> &'static [FieldDef] {
        self.fields
    }
}
pub mod sql {
    pub use super::{Bind, Dialect, SqlFragment};
    pub fn bind_all<'f>(
        query: diesel::query_builder::BoxedSqlQuery<'f, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery>,
        binds: &[Bind],
    ) -> diesel::query_builder::BoxedSqlQuery<'f, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery> {
        todo!()
    }
    pub fn quote_ident(name: &str) -> String {
        todo!()
    }
}
pub mod fold {
    pub fn register_sqlite_functions(conn: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
        todo!()
    }
}
