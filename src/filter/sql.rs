//! Rendering filters as SQL, and binding values to Diesel queries.
//!
//! Each lookup is written so that SQL decides exactly what `eval.rs` decides
//! in memory:
//!
//! - text compares by bytes: an explicit `COLLATE BINARY` on the column, so a
//!   table declared with `COLLATE NOCASE` cannot change the answer;
//! - substring tests never use `LIKE`: SQLite's `LIKE` folds ASCII case and
//!   treats `%` and `_` as wildcards. `contains` is `instr() > 0`; prefix and
//!   suffix tests compare byte slices of `CAST(.. AS BLOB)`, because SQLite's
//!   text `substr()` and `length()` stop at a NUL character while blob
//!   slicing, `instr()` and `=` do not;
//! - case-insensitive tests fold the column with `wyrm_upper`, the SQL face
//!   of [`fold_case`](super::fold::fold_case), and compare with a needle
//!   folded at parse time;
//! - every value is bound, never spliced, with the SQL type of its field.
//!
//! Dialect differences (placeholders, function names, the byte collation)
//! go through [`Dialect`], so PostgreSQL is one more variant and one more
//! arm in the few `match`es below.

use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sqlite::Sqlite;

use super::{Cmp, Filter, Op, TextKind};
use crate::model::{FieldDef, FieldType, Value};

/// The SQL dialect a filter is rendered for.
///
/// A `Postgres` variant would use `$n` placeholders (numbered from the
/// fragment's first bind, so callers that put binds before the fragment
/// would need an offset), `upper()` under a UTF-8 libc locale for folding,
/// `COLLATE "C"` for byte order, and `strpos`/`left`/`right` for the
/// substring tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35 or later, with [`register_sqlite_functions`](super::fold::register_sqlite_functions)
    /// applied to the connection.
    Sqlite,
}

impl Dialect {
    /// The placeholder for the bind at `_position` (1-based).
    fn placeholder(self, _position: usize) -> &'static str {
        match self {
            Dialect::Sqlite => "?",
        }
    }

    /// The SQL function that applies `fold_case`.
    fn fold_function(self) -> &'static str {
        match self {
            Dialect::Sqlite => "wyrm_upper",
        }
    }

    /// The collation that orders text by its UTF-8 bytes, as `str` does.
    fn byte_collation(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BINARY",
        }
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

/// A piece of SQL with placeholders, and the values for them in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    /// The SQL text.
    pub sql: String,
    /// The values for its placeholders.
    pub binds: Vec<Bind>,
}

/// Binds every value with its Diesel SQL type (Integer/SmallInt/BigInt/Double/Text/Bool, Nullable where null).
pub fn bind_all<'f>(query: BoxedSqlQuery<'f, Sqlite, SqlQuery>, binds: &[Bind]) -> BoxedSqlQuery<'f, Sqlite, SqlQuery> {
    use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, SmallInt, Text};
    binds.iter().fold(query, |query, bind| match (&bind.value, bind.ty) {
        (Value::Null, FieldType::Bool) => query.bind::<Nullable<Bool>, Option<bool>>(None),
        (Value::Null, FieldType::I16) => query.bind::<Nullable<SmallInt>, Option<i16>>(None),
        (Value::Null, FieldType::I32) => query.bind::<Nullable<Integer>, Option<i32>>(None),
        (Value::Null, FieldType::I64) => query.bind::<Nullable<BigInt>, Option<i64>>(None),
        (Value::Null, FieldType::F64) => query.bind::<Nullable<Double>, Option<f64>>(None),
        (Value::Null, FieldType::Text) => query.bind::<Nullable<Text>, Option<String>>(None),
        (Value::Bool(b), _) => query.bind::<Bool, _>(*b),
        // A value that does not fit its field's width (only possible for
        // binds built outside `Filter::parse`) is bound whole rather than
        // wrapped: the database then rejects it or compares it correctly.
        (Value::Int(i), FieldType::I16) => match i16::try_from(*i) {
            Ok(small) => query.bind::<SmallInt, _>(small),
            Err(_) => query.bind::<BigInt, _>(*i),
        },
        (Value::Int(i), FieldType::I32) => match i32::try_from(*i) {
            Ok(int) => query.bind::<Integer, _>(int),
            Err(_) => query.bind::<BigInt, _>(*i),
        },
        (Value::Int(i), _) => query.bind::<BigInt, _>(*i),
        (Value::Float(f), _) => query.bind::<Double, _>(*f),
        (Value::Text(s), _) => query.bind::<Text, _>(s.clone()),
    })
}

/// Quotes an identifier: `"col"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Renders a filter; see [`Filter::to_sql`].
pub(super) fn render(filter: &Filter, dialect: Dialect) -> SqlFragment {
    if filter.never {
        return SqlFragment { sql: "1 = 0".into(), binds: Vec::new() };
    }
    if filter.predicates.is_empty() {
        return SqlFragment { sql: "1 = 1".into(), binds: Vec::new() };
    }
    let mut w = Writer { dialect, sql: String::new(), binds: Vec::new() };
    let parenthesize = filter.predicates.len() > 1;
    for (i, p) in filter.predicates.iter().enumerate() {
        if i > 0 {
            w.sql.push_str(" AND ");
        }
        if parenthesize {
            w.sql.push('(');
        }
        w.predicate(&filter.fields[p.field], &p.op);
        if parenthesize {
            w.sql.push(')');
        }
    }
    SqlFragment { sql: w.sql, binds: w.binds }
}

struct Writer {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
}

impl Writer {
    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn bind(&mut self, value: &Value, ty: FieldType) {
        self.binds.push(Bind { value: value.clone(), ty });
        let placeholder = self.dialect.placeholder(self.binds.len());
        self.sql.push_str(placeholder);
    }

    fn bind_text(&mut self, text: &str) {
        self.bind(&Value::Text(text.to_owned()), FieldType::Text);
    }

    fn predicate(&mut self, field: &FieldDef, op: &Op) {
        let column = quote_ident(field.column);
        // Ordering and equality of text go by bytes whatever the column's
        // declared collation, as `str` comparison does in memory.
        let compared = match field.ty {
            FieldType::Text => format!("{column} COLLATE {}", self.dialect.byte_collation()),
            _ => column.clone(),
        };
        match op {
            Op::IsNull(true) => self.push(&format!("{column} IS NULL")),
            Op::IsNull(false) => self.push(&format!("{column} IS NOT NULL")),
            Op::Eq(value) => {
                self.push(&format!("{compared} = "));
                self.bind(value, field.ty);
            }
            Op::In(values) => {
                self.push(&format!("{compared} IN ("));
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.bind(value, field.ty);
                }
                self.push(")");
            }
            Op::Cmp(cmp, value) => {
                let operator = match cmp {
                    Cmp::Gt => ">",
                    Cmp::Gte => ">=",
                    Cmp::Lt => "<",
                    Cmp::Lte => "<=",
                };
                self.push(&format!("{compared} {operator} "));
                self.bind(value, field.ty);
            }
            Op::Range(low, high) => {
                self.push(&format!("{compared} BETWEEN "));
                self.bind(low, field.ty);
                self.push(" AND ");
                self.bind(high, field.ty);
            }
            Op::IExact(folded) => {
                self.push(&format!("{}({column}) = ", self.dialect.fold_function()));
                self.bind_text(folded);
            }
            Op::Text { kind, fold, needle } => {
                let subject =
                    if *fold { format!("{}({column})", self.dialect.fold_function()) } else { column.clone() };
                self.text_test(*kind, &subject, &column, needle);
            }
        }
    }

    /// `subject` (the column, folded or not) contains, starts or ends with
    /// `needle`.
    fn text_test(&mut self, kind: TextKind, subject: &str, column: &str, needle: &str) {
        match (self.dialect, kind) {
            (Dialect::Sqlite, TextKind::Contains) => {
                // instr() of an empty needle is 1, so "" matches all non-NULL text.
                self.push(&format!("instr({subject}, "));
                self.bind_text(needle);
                self.push(") > 0");
            }
            // Every text starts and ends with "", and the slices below would
            // need a length of 0, which substr() reads as "the rest".
            (Dialect::Sqlite, TextKind::StartsWith | TextKind::EndsWith) if needle.is_empty() => {
                self.push(&format!("{column} IS NOT NULL"));
            }
            (Dialect::Sqlite, TextKind::StartsWith) => {
                self.push(&format!("substr(CAST({subject} AS BLOB), 1, length(CAST("));
                self.bind_text(needle);
                self.push(" AS BLOB))) = CAST(");
                self.bind_text(needle);
                self.push(" AS BLOB)");
            }
            (Dialect::Sqlite, TextKind::EndsWith) => {
                // A needle longer than the text makes substr() return all of
                // the text, which then differs from the needle.
                self.push(&format!("substr(CAST({subject} AS BLOB), -length(CAST("));
                self.bind_text(needle);
                self.push(" AS BLOB))) = CAST(");
                self.bind_text(needle);
                self.push(" AS BLOB)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::FIELDS;
    use super::super::{FieldAccess, Filter};
    use super::*;
    use serde_json::json;

    fn sql(filter: serde_json::Value) -> SqlFragment {
        Filter::parse(FIELDS, &filter, FieldAccess::All).unwrap().to_sql(Dialect::Sqlite)
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("list_id"), "\"list_id\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn all_and_nothing() {
        assert_eq!(Filter::all().to_sql(Dialect::Sqlite), SqlFragment { sql: "1 = 1".into(), binds: vec![] });
        assert_eq!(Filter::nothing().to_sql(Dialect::Sqlite), SqlFragment { sql: "1 = 0".into(), binds: vec![] });
        assert_eq!(sql(json!({"list_id__in": [], "text": "x"})).sql, "1 = 0");
    }

    #[test]
    fn renders_each_lookup() {
        let cases = [
            (json!({"list_id": 3}), "\"list_id\" = ?"),
            (json!({"text": "a"}), "\"text\" COLLATE BINARY = ?"),
            (json!({"note": null}), "\"note\" IS NULL"),
            (json!({"note__isnull": false}), "\"note\" IS NOT NULL"),
            (json!({"text__iexact": "a"}), "wyrm_upper(\"text\") = ?"),
            (json!({"text__contains": "a"}), "instr(\"text\", ?) > 0"),
            (json!({"text__icontains": "a"}), "instr(wyrm_upper(\"text\"), ?) > 0"),
            (json!({"id__in": [1, 2]}), "\"id\" IN (?, ?)"),
            (json!({"score__gte": 1}), "\"score\" >= ?"),
            (json!({"text__range": ["a", "b"]}), "\"text\" COLLATE BINARY BETWEEN ? AND ?"),
            (json!({"text__startswith": ""}), "\"text\" IS NOT NULL"),
            (
                json!({"text__istartswith": "a"}),
                "substr(CAST(wyrm_upper(\"text\") AS BLOB), 1, length(CAST(? AS BLOB))) = CAST(? AS BLOB)",
            ),
            (
                json!({"text__endswith": "a"}),
                "substr(CAST(\"text\" AS BLOB), -length(CAST(? AS BLOB))) = CAST(? AS BLOB)",
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(sql(filter.clone()).sql, expected, "{filter}");
        }
    }

    #[test]
    fn binds_typed_and_folded_values() {
        let fragment = sql(json!({"list_id": 3, "text__icontains": "milk", "done": true}));
        assert_eq!(fragment.sql.matches('?').count(), fragment.binds.len());
        assert!(fragment.sql.starts_with('(') && fragment.sql.contains(") AND ("));
        let mut binds: Vec<_> = fragment.binds.into_iter().map(|b| (b.value, b.ty)).collect();
        binds.sort_by_key(|(_, ty)| *ty as u8);
        assert_eq!(
            binds,
            vec![
                (Value::Bool(true), FieldType::Bool),
                (Value::Int(3), FieldType::I32),
                (Value::Text("MILK".into()), FieldType::Text),
            ]
        );
    }
}
