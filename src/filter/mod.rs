//! The filter language: Django-style lookups (`{"list__id": 1, "text__icontains": "milk"}`)
//! parsed once and then evaluated in two places that must agree exactly.
//!
//! [`Filter::matches`] runs in memory on every committed change, to decide
//! which subscriptions hear about it; [`crate::sql::render`] makes it the `WHERE`
//! clause of `get_list` reads and subscription snapshots. A row that one of
//! them accepts and the other rejects would be a row a client sees in its
//! snapshot but never hears change, or the reverse, so every lookup is
//! defined once here in terms both sides can implement without guesswork:
//! numbers compare as numbers, text by bytes, case folding through the single
//! [`fold::fold_case`]. `tests/filter_parity.rs` checks the agreement on random
//! rows and filters.
//!
//! - [`parse`](Filter::parse) (in `parse.rs`) checks keys and operand types;
//! - `tree.rs` joins predicates with AND, OR and NOT;
//! - `eval.rs` evaluates a predicate in memory;
//! - [`crate::sql`] renders SQL for each database;
//! - [`fold`] is the case folding shared by both.
//!
//! This module is part of wyrmhole's pure core: no database, no runtime.

mod eval;
pub mod fold;
mod json;
mod lookup;
mod operand;
mod parse;
mod related;
mod transform;
mod tree;

pub use lookup::Lookup;
pub(crate) use related::{split_pin, Exists};
pub(crate) use transform::{Part, Transform};
pub(crate) use tree::Node;
use tree::Step;

use crate::error::FieldErrors;
use crate::model::{FieldDef, Storage, Value};

/// Which fields a filter may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAccess {
    /// Client filters: only published fields. Naming another field is
    /// reported exactly like naming one that does not exist.
    Published,
    /// Server-side filters (a route's scope): any field.
    All,
}

/// A parsed filter: predicates joined by AND, OR and NOT.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Empty for [`Filter::all`] and [`Filter::nothing`], which fit any model.
    pub(crate) fields: &'static [FieldDef],
    /// The condition, normalized (see `tree.rs`): [`Node::TRUE`] for
    /// [`Filter::all`], [`Node::FALSE`] for [`Filter::nothing`].
    pub(crate) root: Node,
    /// `root` laid out for evaluation ([`Filter::matches`]).
    steps: Box<[Step]>,
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Predicate {
    /// Index into the filter's fields.
    pub(crate) field: usize,
    /// Applied to the field's value before `op` (`due__year`, `settings__theme`).
    pub(crate) transform: Option<Transform>,
    pub(crate) op: Op,
}

impl Predicate {
    /// Whether a row passes.
    pub(crate) fn matches(&self, row: &[Value]) -> bool {
        let value = &row[self.field];
        match &self.transform {
            None => self.op.matches(value),
            Some(Transform::Key(path)) => json::matches(value, path, &self.op),
            Some(transform) => self.op.matches(&transform.apply(value)),
        }
    }

    /// Its text in [`Filter::canonical_key`]: field, transform, lookup and
    /// the normalized operand.
    pub(crate) fn key(&self, fields: &[FieldDef]) -> String {
        let (lookup, operand) = self.op.key_parts();
        let name = fields[self.field].name;
        match &self.transform {
            // Key paths may hold any character: JSON-quote them.
            Some(Transform::Key(path)) => format!("{name}__{}__{lookup}={operand}", serde_json::json!(path)),
            Some(t) => format!("{name}__{}__{lookup}={operand}", t.key_text()),
            None => format!("{name}__{lookup}={operand}"),
        }
    }
}

/// A predicate's test, normalized so that equivalent lookups look the same:
/// `exact: null` and `isnull: true` are both `IsNull(true)`, a one-value `in`
/// is `Eq`, `in` lists are sorted and deduplicated, `-0.0` is `0.0`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// Equal to a non-null value.
    Eq(Value),
    /// `IS NULL` (true) or `IS NOT NULL` (false).
    IsNull(bool),
    /// Equal to one of at least two non-null values of one type, sorted.
    In(Vec<Value>),
    /// Ordered comparison with a non-null value.
    Cmp(Cmp, Value),
    /// `low <= v <= high`.
    Range(Value, Value),
    /// Text equal after folding; holds the folded operand.
    IExact(String),
    /// Substring tests; with `fold`, the needle is already folded and the
    /// column is folded at evaluation.
    Text { kind: TextKind, fold: bool, needle: String },
    /// A JSON object has the key.
    HasKey(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKind {
    Contains,
    StartsWith,
    EndsWith,
}

impl Filter {
    /// Matches every row.
    pub fn all() -> Filter {
        Filter::new(&[], Node::TRUE)
    }

    /// Matches no row.
    pub fn nothing() -> Filter {
        Filter::new(&[], Node::FALSE)
    }

    pub(crate) fn new(fields: &'static [FieldDef], root: Node) -> Filter {
        let steps = tree::flatten(&root);
        Filter { fields, root, steps }
    }

    /// Parses a filter object against a model's fields. Errors are keyed by
    /// the filter key as written (`"filter"` when the JSON is not an object;
    /// a key inside `or`/`and`/`not` by its path, as `or.1.text__contains`),
    /// and all of them are reported, not just the first.
    pub fn parse(
        fields: &'static [FieldDef],
        json: &serde_json::Value,
        access: FieldAccess,
    ) -> Result<Filter, FieldErrors> {
        parse::parse(fields, None, json, access, true)
    }

    /// Parses a filter of a model, whose keys may also go through its
    /// relations (`list__title`, `list__members__user_id`; see
    /// [`crate::relation`]).
    pub fn parse_model(
        model: &'static crate::relation::ModelInfo,
        json: &serde_json::Value,
        access: FieldAccess,
        nul_allowed: bool,
    ) -> Result<Filter, FieldErrors> {
        parse::parse(model.fields, Some(model), json, access, nul_allowed)
    }

    /// Parses like [`Filter::parse`], and, unless `nul_allowed`, also
    /// refuses text operands with a NUL character (PostgreSQL's `text` cannot
    /// hold one), reported under the key like any other operand error.
    /// [`crate::sql::parse_filter`] picks `nul_allowed` for a database.
    pub fn parse_checked(
        fields: &'static [FieldDef],
        json: &serde_json::Value,
        access: FieldAccess,
        nul_allowed: bool,
    ) -> Result<Filter, FieldErrors> {
        parse::parse(fields, None, json, access, nul_allowed)
    }

    /// Both filters must hold (a route's scope and a client's filter).
    ///
    /// # Panics
    ///
    /// If the filters belong to different models (a bug in the caller).
    pub fn and(mut self, other: Filter) -> Filter {
        if self.fields.is_empty() {
            self.fields = other.fields;
        } else {
            assert!(
                other.fields.is_empty() || std::ptr::eq(other.fields, self.fields) || other.fields == self.fields,
                "Filter::and on filters of different models"
            );
        }
        Filter::new(self.fields, Node::and([self.root, other.root]))
    }

    /// Whether a row (values in field order) passes the filter.
    pub fn matches(&self, row: &[Value]) -> bool {
        match &self.root {
            // The commonest filter, one equality: no step to fetch.
            Node::Leaf(p) => p.matches(row),
            _ => tree::evaluate(&self.steps, row),
        }
    }

    /// Whether evaluating it may read a whole text value: `contains`, and
    /// every case-insensitive lookup (the value is folded first), in any
    /// branch. Its cost then grows with the row, not with the filter, which
    /// is why the fan-out evaluates such filters off its main thread.
    pub fn scans(&self) -> bool {
        fn scanning(node: &Node) -> bool {
            node.leaves().any(|p| match &p.op {
                Op::IExact(_) => true,
                Op::Text { kind, fold, .. } => *fold || *kind == TextKind::Contains,
                _ => false,
            }) || node.relations().any(|e| scanning(&e.node))
        }
        scanning(&self.root)
    }

    /// A text that is the same for filters with the same predicates, in
    /// whatever order their keys (or the branches of an `or`) were written,
    /// so identical subscriptions can share one evaluation. `or`, `and` and
    /// `not` are encoded so that no structure reads as another, nor as
    /// plain keys.
    pub fn canonical_key(&self) -> String {
        self.root.key(self.fields)
    }

    /// `(field index, value)` of every field the filter pins to one non-null
    /// value (see [`Filter::pins`]): every row the filter matches has
    /// exactly this value in that field.
    pub fn equalities(&self) -> impl Iterator<Item = (usize, &Value)> {
        self.pins().into_iter().filter_map(|(field, values)| match values.as_slice() {
            [one] => Some((field, *one)),
            _ => None,
        })
    }

    /// `(field index, values)` of every field the filter pins to a set of
    /// non-null values, except float fields (where `0.0` and `-0.0` are
    /// equal but hash apart): what the subscription index files groups
    /// under. Every row the filter matches has one of these values in that
    /// field. Equalities and `in` pin; an `or` pins a field when each of
    /// its branches does (`{"or": [{"list_id": 1}, {"list_id": 2}]}` pins
    /// `list_id` to 1 or 2); nothing under a `not` pins.
    pub fn pins(&self) -> Vec<(usize, Vec<&Value>)> {
        // Floats (`0.0` and `-0.0` are equal but hash apart) and JSON (`1`
        // and `1.0` are equal) are never index keys.
        self.root.pins(self.fields, &|ty| !matches!(ty.storage(), Storage::F32 | Storage::F64 | Storage::Json))
    }

    /// Whether it reaches through relations: it then needs a change's
    /// context in memory, and a database read to test a row it has not
    /// seen in a change.
    pub fn has_relations(&self) -> bool {
        self.root.relations().next().is_some()
    }

    /// The model fields the filter refers to (empty for [`Filter::all`] and
    /// [`Filter::nothing`] on their own).
    pub fn fields(&self) -> &'static [FieldDef] {
        self.fields
    }
}

impl Op {
    /// The lookup name and operand JSON that identify the test in
    /// [`Filter::canonical_key`]. Operands are normalized at parse time, so
    /// equal tests give equal text.
    pub(super) fn key_parts(&self) -> (&'static str, serde_json::Value) {
        let list = |values: &mut dyn Iterator<Item = &Value>| values.map(Value::to_json).collect();
        match self {
            Op::Eq(v) => ("exact", v.to_json()),
            Op::IsNull(is) => ("isnull", (*is).into()),
            Op::In(values) => ("in", list(&mut values.iter())),
            Op::Cmp(cmp, v) => {
                let name = match cmp {
                    Cmp::Gt => "gt",
                    Cmp::Gte => "gte",
                    Cmp::Lt => "lt",
                    Cmp::Lte => "lte",
                };
                (name, v.to_json())
            }
            Op::Range(low, high) => ("range", list(&mut [low, high].into_iter())),
            Op::IExact(folded) => ("iexact", folded.as_str().into()),
            Op::Text { kind, fold, needle } => {
                let name = match (kind, fold) {
                    (TextKind::Contains, false) => "contains",
                    (TextKind::Contains, true) => "icontains",
                    (TextKind::StartsWith, false) => "startswith",
                    (TextKind::StartsWith, true) => "istartswith",
                    (TextKind::EndsWith, false) => "endswith",
                    (TextKind::EndsWith, true) => "iendswith",
                };
                (name, needle.as_str().into())
            }
            Op::HasKey(key) => ("has_key", key.as_str().into()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
