//! Rendering filters as SQL `WHERE` clauses.
//!
//! Each lookup is written so that SQL decides exactly what `eval.rs` decides
//! in memory, on SQLite and on PostgreSQL alike:
//!
//! - text compares by bytes: an explicit byte collation on the column
//!   (`COLLATE BINARY`, `COLLATE "C"`), so a column declared with another
//!   collation (SQLite's `NOCASE`, a PostgreSQL locale or a nondeterministic
//!   ICU collation) cannot change the answer;
//! - substring tests never use `LIKE`: SQLite's `LIKE` folds ASCII case, and
//!   both treat `%` and `_` as wildcards. On SQLite `contains` is
//!   `instr() > 0`, and prefix and suffix tests compare byte slices of
//!   `CAST(.. AS BLOB)`, because SQLite's text `substr()` and `length()` stop
//!   at a NUL character while blob slicing, `instr()` and `=` do not. On
//!   PostgreSQL (whose text cannot hold NUL) they are `strpos()`,
//!   `starts_with()` and `right()`, under `COLLATE "C"`, since PostgreSQL
//!   refuses substring searches under nondeterministic collations;
//! - case-insensitive tests fold the column with `wyrm_upper`, the SQL face
//!   of [`fold_case`](super::fold::fold_case) that wyrmhole installs on each
//!   backend, and compare with a needle folded at parse time;
//! - every value is bound, never spliced, with the SQL type of its field.
//!
//! Fragments always use `?` placeholders, numbered by position: callers
//! concatenate fragments (a primary key bind, then a scope's), which `$n`
//! numbering would make error-prone. [`Dialect::finish`] turns the whole
//! statement into the dialect's form once, just before it is sent.

use crate::filter::{Cmp, Exists, Filter, Node, Op, TextKind, Transform};
use crate::model::{FieldDef, FieldType, Storage, Value};

use super::{quote_ident, Bind, Dialect, SqlFragment};

mod typed;

/// The filter as the body of a `WHERE` clause: `1 = 1` when it matches
/// everything, `1 = 0` when it matches nothing.
///
/// The keys of an object are joined with `AND`, an `or` with `OR`, each
/// operand parenthesized. A `not` is `(...) IS NOT TRUE`, not `NOT (...)`:
/// a lookup on a NULL column is NULL in SQL, and `NOT NULL` is NULL again,
/// where in-memory evaluation (and Django, which adds `AND col IS NOT NULL`
/// under a negation) says false and then true.
pub fn render(filter: &Filter, dialect: Dialect) -> SqlFragment {
    if filter.root.is_false() {
        return SqlFragment { sql: "1 = 0".into(), binds: Vec::new() };
    }
    if filter.root.is_true() {
        return SqlFragment { sql: "1 = 1".into(), binds: Vec::new() };
    }
    let mut w = Writer { dialect, sql: String::new(), binds: Vec::new(), qualifier: String::new(), depth: 0 };
    w.node(filter.fields, &filter.root);
    SqlFragment { sql: w.sql, binds: w.binds }
}

struct Writer {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
    /// Prefixed to column names: empty for the queried table's own, an
    /// alias and `.` inside an `EXISTS`.
    qualifier: String,
    /// How many relation aliases are in use (each `EXISTS` names its own).
    depth: usize,
}

impl Writer {
    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn bind(&mut self, value: &Value, ty: FieldType) {
        self.binds.push(Bind { value: value.clone(), ty });
        self.sql.push('?');
    }

    fn bind_text(&mut self, text: &str) {
        self.bind(&Value::Text(text.to_owned()), FieldType::Text);
    }

    fn node(&mut self, fields: &[FieldDef], node: &Node) {
        match node {
            Node::Leaf(p) => self.predicate(&fields[p.field], p.transform.as_ref(), &p.op),
            Node::And(children) => self.join(fields, children, " AND "),
            Node::Or(children) => self.join(fields, children, " OR "),
            Node::Not(child) => {
                self.push("(");
                self.node(fields, child);
                self.push(") IS NOT TRUE");
            }
            Node::Exists(e) => self.exists(e),
        }
    }

    /// `EXISTS (SELECT 1 FROM <each hop's table> ... WHERE <joins> AND
    /// (<the condition on the last>))`. The outer row is referred to by
    /// its table's name (queries name their table without an alias), each
    /// hop by an alias of its own, so no column name is ambiguous.
    fn exists(&mut self, e: &Exists) {
        let outer = match self.qualifier.as_str() {
            "" => format!("{}.", quote_ident(e.path.hops[0].from.table)),
            q => q.to_owned(),
        };
        let mut from = Vec::new();
        let mut joins = Vec::new();
        let mut previous = outer;
        for hop in &e.path.hops {
            self.depth += 1;
            let alias = format!("\"wyrm_r{}\"", self.depth);
            from.push(format!("{} AS {alias}", quote_ident(hop.to.table)));
            let here = format!("{alias}.");
            let join = match (hop.key_field(), hop.via()) {
                (Some(key), _) => format!(
                    "{here}{} = {previous}{}",
                    quote_ident(hop.to.fields[hop.to.primary_key].column),
                    quote_ident(hop.from.fields[key].column)
                ),
                (None, Some(via)) => format!(
                    "{here}{} = {previous}{}",
                    quote_ident(hop.to.fields[via].column),
                    quote_ident(hop.from.fields[hop.from.primary_key].column)
                ),
                (None, None) => "1 = 0".to_owned(),
            };
            joins.push(join);
            previous = here;
        }
        let reached = format!("SELECT 1 FROM {} WHERE {}", from.join(", "), joins.join(" AND "));
        if e.null_matches {
            // No related row counts as a row of NULLs (`Exists::matches`).
            self.push(&format!("(NOT EXISTS ({reached}) OR "));
        }
        self.push(&format!("EXISTS ({reached}"));
        if !e.node.is_true() {
            let saved = std::mem::replace(&mut self.qualifier, previous);
            self.push(" AND (");
            self.node(e.path.target().fields, &e.node);
            self.push(")");
            self.qualifier = saved;
        }
        self.push(")");
        if e.null_matches {
            self.push(")");
        }
    }

    /// Children joined by `AND` or `OR`, each in parentheses. Normalized
    /// trees have no empty AND or OR below the root.
    fn join(&mut self, fields: &[FieldDef], children: &[Node], operator: &str) {
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                self.push(operator);
            }
            self.push("(");
            self.node(fields, child);
            self.push(")");
        }
    }

    fn predicate(&mut self, field: &FieldDef, transform: Option<&Transform>, op: &Op) {
        let column = format!("{}{}", self.qualifier, quote_ident(field.column));
        let (column, ty) = match transform {
            // A JSON field is always read through a key path (the empty
            // one for the field itself).
            Some(Transform::Key(path)) => return self.json(&column, path, op),
            Some(transform) => (self.transform(&column, field.ty.storage(), transform), transform.output()),
            None => (column, field.ty),
        };
        // An `f32` column compares with the operand as `f64`, as the row's
        // value widened to `f64` does in memory (PostgreSQL widens `real`).
        let ty = if ty.storage() == Storage::F32 { FieldType::F64 } else { ty };
        // Ordering and equality of text go by bytes whatever the column's
        // declared collation, as `str` comparison does in memory; so do
        // UUIDs kept as text on SQLite.
        // Text lookups on a UUID read its text: already so on SQLite, and
        // `uuid::text` (hyphenated, lowercase) on PostgreSQL.
        let column = match (ty.storage(), self.dialect, op) {
            (Storage::Uuid, Dialect::Postgres, Op::IExact(_) | Op::Text { .. }) => format!("CAST({column} AS TEXT)"),
            _ => column,
        };
        let compared = match (ty.storage(), self.dialect) {
            (Storage::Text, _) | (Storage::Uuid, Dialect::Sqlite) => {
                format!("{column} COLLATE {}", self.dialect.byte_collation())
            }
            _ => column.clone(),
        };
        match op {
            Op::IsNull(true) => self.push(&format!("{column} IS NULL")),
            Op::IsNull(false) => self.push(&format!("{column} IS NOT NULL")),
            Op::Eq(value) => {
                self.push(&format!("{compared} = "));
                self.bind(value, ty);
            }
            Op::In(values) => {
                self.push(&format!("{compared} IN ("));
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.bind(value, ty);
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
                self.bind(value, ty);
            }
            Op::Range(low, high) => {
                self.push(&format!("{compared} BETWEEN "));
                self.bind(low, ty);
                self.push(" AND ");
                self.bind(high, ty);
            }
            Op::IExact(folded) => {
                let folded_column = format!("{}({column})", self.dialect.fold_function());
                self.push(&format!("{} = ", self.bytewise(&folded_column)));
                self.bind_text(folded);
            }
            Op::Text { kind, fold, needle } => {
                let subject =
                    if *fold { format!("{}({column})", self.dialect.fold_function()) } else { column.clone() };
                self.text_test(*kind, &subject, &column, needle);
            }
            Op::HasKey(_) => unreachable!("has_key applies to JSON only"),
        }
    }

    /// A text expression compared by bytes. SQLite compares function
    /// results with BINARY already (and the rendering of its tests is kept
    /// as it was); on PostgreSQL a function result carries its argument's
    /// collation, which may be case-insensitive or nondeterministic.
    fn bytewise(&self, text: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => text.to_owned(),
            Dialect::Postgres => format!("{text} COLLATE \"C\""),
        }
    }

    /// `subject` (the column, folded or not) contains, starts or ends with
    /// `needle`.
    fn text_test(&mut self, kind: TextKind, subject: &str, column: &str, needle: &str) {
        match (self.dialect, kind) {
            (Dialect::Postgres, TextKind::Contains) => {
                // strpos() of an empty needle is 1, as instr() is on SQLite.
                self.push(&format!("strpos({}, ", self.bytewise(subject)));
                self.bind_text(needle);
                self.push(") > 0");
            }
            (Dialect::Postgres, TextKind::StartsWith) => {
                self.push(&format!("starts_with({}, ", self.bytewise(subject)));
                self.bind_text(needle);
                self.push(")");
            }
            (Dialect::Postgres, TextKind::EndsWith) => {
                // Folding maps each character to one character, so the
                // folded text's last n characters are the folded last n. A
                // needle longer than the text makes right() return the whole
                // text, which then differs from the needle; right(t, 0) is ''.
                self.push(&format!("right({subject}, char_length("));
                self.bind_text(needle);
                self.push(")) COLLATE \"C\" = ");
                self.bind_text(needle);
            }
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
#[path = "render_tests.rs"]
mod tests;
