//! Contexts and derived changes: how a write publishes what relations make
//! of it (see [`crate::relation`] for the model).
//!
//! Inside the writing transaction, after each statement:
//!
//! - a row of a model with relation paths is published with its *context*:
//!   after its own fields, the rows each path reaches, read now (the rows
//!   it reached before the statement are the same rows, since the statement
//!   wrote only this one, read through the old row's keys);
//! - a row that some registered model's paths reach (a list, a membership)
//!   is also published as a change of every row of that model whose
//!   context it alters, with the context before and after: one query per
//!   changed row and dependent model finds those rows, whatever the number
//!   of subscribers.
//!
//! On PostgreSQL every row a context reads through is locked (`FOR NO KEY
//! UPDATE`), and so is the parent of a `has_many` set before a write to
//! the set is published: a write of an item and a change to its list's
//! members then commit one after the other, so the context each change
//! carries is the one at its position. SQLite's write lock already
//! serializes every write.

use std::collections::HashMap;

use super::conn::Conn;
use super::graph::{Dependent, Graph};
use crate::error::Error;
use crate::model::{Row, Value};
use crate::relation::{paths, Hop, ModelInfo, Path, Paths};
use crate::sql::{quote_ident, Bind, Dialect};

/// A row as it was before the current statement: read in its place.
struct Before<'a> {
    model: &'static ModelInfo,
    pk: &'a Value,
    row: Option<&'a Row>,
}

/// What a write of one row publishes: the row with its context, and the
/// changed rows of the models that reach it.
pub(super) struct Published {
    pub(super) old: Option<Row>,
    pub(super) new: Option<Row>,
    /// `(model, old, new)` of each row whose context the write changed.
    pub(super) derived: Vec<(&'static ModelInfo, Row, Row)>,
}

pub(super) fn publish(
    conn: &mut Conn,
    graph: &Graph,
    model: &'static ModelInfo,
    old: Option<Row>,
    new: Option<Row>,
) -> Result<Published, Error> {
    if graph.is_trivial(model.table) {
        return Ok(Published { old, new, derived: Vec::new() });
    }
    let mut reader = Reader { conn, graph, before: None, memo: HashMap::new() };
    let (old, new) = match graph.roots.get(model.table) {
        Some(all) => {
            reader.lock_first_hops(all, [old.as_deref(), new.as_deref()])?;
            let old = match old {
                // A path may lead back to this model (the other members of a
                // list): before the statement, the set held the old row.
                Some(row) => {
                    let pk = &row[model.primary_key];
                    let mut before = Reader {
                        conn: &mut *reader.conn,
                        graph,
                        before: Some(Before { model, pk, row: Some(&row) }),
                        memo: HashMap::new(),
                    };
                    Some(before.with_context(all, &row)?)
                }
                None => None,
            };
            (old, new.map(|r| reader.with_context(all, &r)).transpose()?)
        }
        None => (old, new),
    };
    let derived = reader.derived(model, old.as_deref(), new.as_deref())?;
    Ok(Published { old, new, derived })
}

struct Reader<'a> {
    conn: &'a mut Conn,
    graph: &'a Graph,
    before: Option<Before<'a>>,
    /// The rows each path reached, by root, path and the value the path starts
    /// from: the 1,000 items of one list share one read of the list and its
    /// members. Valid for one statement's publication (nothing is written
    /// meanwhile).
    memo: HashMap<(&'static str, usize, String), Value>,
}

impl Reader<'_> {
    fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    fn load(&mut self, model: &'static ModelInfo, sql: &str, binds: &[Bind]) -> Result<Vec<Row>, Error> {
        let (_, loader) = self.graph.loaders.get(model.table).ok_or_else(|| {
            Error::Internal(format!("table `{}` is reached by a relation but not registered", model.table))
        })?;
        loader(self.conn, sql, binds)
    }

    fn lock(&self) -> &'static str {
        match self.dialect() {
            Dialect::Postgres => " FOR NO KEY UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// On PostgreSQL, locks the rows the old and new row point at, each
    /// relation's in key order, before any context is read: two writers
    /// moving items between two lists in opposite directions would
    /// otherwise each hold one list and wait for the other.
    fn lock_first_hops(&mut self, all: &'static Paths, rows: [Option<&[Value]>; 2]) -> Result<(), Error> {
        if self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let mut done: Vec<&str> = Vec::new();
        for path in &all.all {
            let hop = &path.hops[0];
            let Some(key) = hop.key_field() else { continue };
            if done.contains(&hop.relation.name) {
                continue;
            }
            done.push(hop.relation.name);
            let mut keys: Vec<&Value> =
                rows.iter().flatten().map(|r| &r[key]).filter(|k| !matches!(k, Value::Null)).collect();
            keys.sort_by(|a, b| key_order(a, b));
            keys.dedup();
            let pk = &hop.to.fields[hop.to.primary_key];
            for key in keys {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = ? FOR NO KEY UPDATE",
                    columns(hop.to, ""),
                    quote_ident(hop.to.table),
                    quote_ident(pk.column)
                );
                self.load(hop.to, &sql, &[Bind { value: key.clone(), ty: pk.ty }])?;
            }
        }
        Ok(())
    }

    /// `row` (own fields only) followed by the rows of each path.
    fn with_context(&mut self, all: &'static Paths, row: &[Value]) -> Result<Row, Error> {
        let own = &row[..all.root.fields.len()];
        let mut out: Vec<Value> = own.to_vec();
        for path in &all.all {
            let first = &path.hops[0];
            let start = &own[first.key_field().unwrap_or(first.from.primary_key)];
            let key = (all.root.table, path.slot, start.to_json().to_string());
            let rows = match self.memo.get(&key) {
                Some(rows) => rows.clone(),
                None => {
                    let rows = Value::Related(self.reach(path, own)?.into());
                    self.memo.insert(key, rows.clone());
                    rows
                }
            };
            out.push(rows);
        }
        Ok(out.into())
    }

    /// The rows `path` reaches from `row`.
    fn reach(&mut self, path: &Path, row: &[Value]) -> Result<Vec<Row>, Error> {
        let mut current: Row = row.into();
        for hop in &path.hops {
            match (hop.key_field(), hop.via()) {
                (Some(key), _) => {
                    let Some(next) = self.one(hop.to, &current[key])? else { return Ok(Vec::new()) };
                    current = next;
                }
                (None, Some(via)) => return self.children(hop, via, &current[hop.from.primary_key]),
                (None, None) => return Ok(Vec::new()),
            }
        }
        Ok(vec![current])
    }

    /// The row of `model` with primary key `key`, locked.
    fn one(&mut self, model: &'static ModelInfo, key: &Value) -> Result<Option<Row>, Error> {
        if matches!(key, Value::Null) {
            return Ok(None);
        }
        if let Some(before) = &self.before {
            if before.model.same(model) && before.pk == key {
                return Ok(before.row.cloned());
            }
        }
        let pk = &model.fields[model.primary_key];
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ?{}",
            columns(model, ""),
            quote_ident(model.table),
            quote_ident(pk.column),
            self.lock()
        );
        Ok(self.load(model, &sql, &[Bind { value: key.clone(), ty: pk.ty }])?.pop())
    }

    /// The rows of `hop.to` whose `via` holds `parent`, in key order.
    fn children(&mut self, hop: &Hop, via: usize, parent: &Value) -> Result<Vec<Row>, Error> {
        let model = hop.to;
        let field = &model.fields[via];
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ? ORDER BY {}",
            columns(model, ""),
            quote_ident(model.table),
            quote_ident(field.column),
            quote_ident(model.fields[model.primary_key].column)
        );
        let mut rows = self.load(model, &sql, &[Bind { value: parent.clone(), ty: field.ty }])?;
        if let Some(before) = &self.before {
            if before.model.same(model) {
                let pk = model.primary_key;
                rows.retain(|r| &r[pk] != before.pk);
                if let Some(row) = before.row.filter(|r| &r[via] == parent) {
                    rows.push(row.clone());
                    rows.sort_by(|a, b| key_order(&a[pk], &b[pk]));
                }
            }
        }
        Ok(rows)
    }

    /// The rows of other models whose context the write of `model`'s row
    /// (`old` → `new`, with their contexts if `model` has paths) changed.
    fn derived(
        &mut self,
        model: &'static ModelInfo,
        old: Option<&[Value]>,
        new: Option<&[Value]>,
    ) -> Result<Vec<(&'static ModelInfo, Row, Row)>, Error> {
        let Some(dependents) = self.graph.dependents.get(model.table) else { return Ok(Vec::new()) };
        let width = model.fields.len();
        let (old, new) = (old.map(|r| &r[..width]), new.map(|r| &r[..width]));
        // The roots in a fixed order, each with every row any of its paths finds.
        let mut affected: Vec<(&'static ModelInfo, Vec<Row>)> = Vec::new();
        for dependent in dependents.iter() {
            let rows = self.affected(dependent, old, new)?;
            let slot = match affected.iter().position(|(m, _)| m.same(dependent.root)) {
                Some(i) => i,
                None => {
                    affected.push((dependent.root, Vec::new()));
                    affected.len() - 1
                }
            };
            let known = &mut affected[slot].1;
            let pk = dependent.root.primary_key;
            for row in rows {
                if !known.iter().any(|k| k[pk] == row[pk]) {
                    known.push(row);
                }
            }
        }
        let pk_value = old.or(new).map(|r| r[model.primary_key].clone()).unwrap_or(Value::Null);
        let old_row: Option<Row> = old.map(Into::into);
        let mut out = Vec::new();
        for (root, mut rows) in affected {
            rows.sort_by(|a, b| key_order(&a[root.primary_key], &b[root.primary_key]));
            let all = paths(root);
            for row in rows {
                // The written row itself, reached by a path back to its own
                // model: its own change already carries both contexts.
                if root.same(model) && row[root.primary_key] == pk_value {
                    continue;
                }
                let after = self.with_context(all, &row)?;
                let before = Reader {
                    conn: &mut *self.conn,
                    graph: self.graph,
                    before: Some(Before { model, pk: &pk_value, row: old_row.as_ref() }),
                    memo: HashMap::new(),
                }
                .with_context(all, &row)?;
                if before != after {
                    out.push((root, before, after));
                }
            }
        }
        Ok(out)
    }

    /// The rows of `dependent.root` whose path reaches `old` or `new` at
    /// the dependent's hop: one query.
    fn affected(
        &mut self,
        dependent: &Dependent,
        old: Option<&[Value]>,
        new: Option<&[Value]>,
    ) -> Result<Vec<Row>, Error> {
        let path = &dependent.path;
        let hop = &path.hops[dependent.hop];
        let at = hop.from;
        // What the rows of `at` (the hop's start) must hold to reach the row.
        let (column, ty, keys): (&str, _, Vec<Value>) = match (hop.key_field(), hop.via()) {
            (Some(key), _) => {
                let pk = hop.to.primary_key;
                (
                    at.fields[key].column,
                    at.fields[key].ty,
                    [old, new].into_iter().flatten().map(|r| r[pk].clone()).collect(),
                )
            }
            (None, Some(via)) => {
                let pk = &at.fields[at.primary_key];
                (pk.column, pk.ty, [old, new].into_iter().flatten().map(|r| r[via].clone()).collect())
            }
            (None, None) => return Ok(Vec::new()),
        };
        let mut keys: Vec<Value> = keys.into_iter().filter(|k| !matches!(k, Value::Null)).collect();
        keys.dedup();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; keys.len()].join(", ");
        let binds: Vec<Bind> = keys.iter().map(|k| Bind { value: k.clone(), ty }).collect();
        let alias = |i: usize| format!("\"wyrm_a{i}\"");
        if hop.via().is_some() && self.dialect() == Dialect::Postgres {
            // A write to a has_many set waits for, and holds back, writers
            // that read the set through its parent (see the module's doc).
            let sql = format!(
                "SELECT {} FROM {} WHERE {} IN ({marks}) FOR NO KEY UPDATE",
                columns(at, ""),
                quote_ident(at.table),
                quote_ident(column)
            );
            self.load(at, &sql, &binds)?;
        }
        let root = dependent.root;
        let mut sql = format!("SELECT {} FROM {} AS {}", columns(root, &alias(0)), quote_ident(root.table), alias(0));
        for (i, step) in path.hops[..dependent.hop].iter().enumerate() {
            let key = step.key_field().expect("only the last hop is a has_many");
            sql.push_str(&format!(
                " JOIN {} AS {} ON {}.{} = {}.{}",
                quote_ident(step.to.table),
                alias(i + 1),
                alias(i + 1),
                quote_ident(step.to.fields[step.to.primary_key].column),
                alias(i),
                quote_ident(step.from.fields[key].column),
            ));
        }
        sql.push_str(&format!(" WHERE {}.{} IN ({marks})", alias(dependent.hop), quote_ident(column)));
        self.load(root, &sql, &binds)
    }
}

/// `a."id", a."list_id", ...`, named as the columns themselves.
fn columns(model: &ModelInfo, alias: &str) -> String {
    let prefix = if alias.is_empty() { String::new() } else { format!("{alias}.") };
    model
        .fields
        .iter()
        .map(|f| format!("{prefix}{} AS {}", quote_ident(f.column), quote_ident(f.column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Primary keys in the order SQL sorts them: integers as numbers.
fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => a.to_json().to_string().cmp(&b.to_json().to_string()),
    }
}
