//! Relations between models: what `#[wyrm(belongs_to = ..)]` and
//! `#[wyrm(has_many(..))]` declare, and the paths a filter may follow
//! through them (`list__title`, `list__members__user_id`, `items__done`).
//!
//! A route's filters and scopes may reach through relations, and a filter is
//! evaluated in two places that must agree: in SQL (an `EXISTS` subquery per
//! path) and in memory, on every committed change. For the second, a change
//! of a model with relations carries, after its own fields, the rows each of
//! the model's [`Paths`] reaches (its *context*, one [`Value::Related`] per
//! path), read in the writing transaction. A write to a row that some path
//! reaches (a list's title, a membership) is published to the routes whose
//! paths reach it as changes of their own rows whose context changed, so a
//! row entering or leaving a filter through a relation is an ordinary
//! `created` or `deleted` event, in the route's order, kept in its history
//! and replayed by `resume` like any other.
//!
//! Which paths a model has is fixed by its declarations, so every process
//! of an app numbers them alike:
//!
//! - at most [`MAX_HOPS`] relations long;
//! - never visiting a model twice (`list__items__...` from an item is refused);
//! - a `has_many` only as the last relation: a path reaches one row through
//!   `belongs_to`s, then possibly that row's related set, so a context stays
//!   small whatever the data.
//!
//! This module is part of wyrmhole's pure core: no database, no runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::model::{FieldDef, Row, Value};

/// The longest path a filter may follow, in relations.
pub const MAX_HOPS: usize = 3;

/// A model as relations see it: what [`crate::Model`] says of itself,
/// reachable at run time from another model's [`Relation`].
#[derive(Debug)]
pub struct ModelInfo {
    /// The route clients address.
    pub route: &'static str,
    /// The SQL table.
    pub table: &'static str,
    /// Every field, in declaration order.
    pub fields: &'static [FieldDef],
    /// The index of the primary key in `fields`.
    pub primary_key: usize,
    /// The relations it declares.
    pub relations: &'static [Relation],
}

/// One declared relation.
#[derive(Debug)]
pub struct Relation {
    /// The name filters use (`list` in `list__title`).
    pub name: &'static str,
    /// Which side holds the key.
    pub kind: RelationKind,
    /// The related model (a function, so that two models may name each other).
    pub target: fn() -> &'static ModelInfo,
}

/// Which side of a relation holds the foreign key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// This model's field (an index into its fields) holds the target's
    /// primary key: one related row, or none when the key is NULL.
    BelongsTo {
        /// The foreign key field.
        field: usize,
    },
    /// The target's field named `via` holds this model's primary key: any
    /// number of related rows.
    HasMany {
        /// The target's foreign key field.
        via: &'static str,
    },
}

impl ModelInfo {
    /// The relation called `name`.
    pub fn relation(&self, name: &str) -> Option<&'static Relation> {
        self.relations.iter().find(|r| r.name == name)
    }

    /// Whether two infos describe the same model (one table each).
    pub fn same(&self, other: &ModelInfo) -> bool {
        self.table == other.table
    }
}

/// One step of a [`Path`].
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    /// The model the step leaves.
    pub from: &'static ModelInfo,
    /// The model it reaches.
    pub to: &'static ModelInfo,
    /// The relation, declared on `from`.
    pub relation: &'static Relation,
}

impl Hop {
    /// `Some(via field index in to)` for a `has_many`, `None` for a `belongs_to`.
    pub fn via(&self) -> Option<usize> {
        match self.relation.kind {
            RelationKind::HasMany { via } => self.to.fields.iter().position(|f| f.name == via),
            RelationKind::BelongsTo { .. } => None,
        }
    }

    /// For a `belongs_to`, the foreign key's index in `from`.
    pub fn key_field(&self) -> Option<usize> {
        match self.relation.kind {
            RelationKind::BelongsTo { field } => Some(field),
            RelationKind::HasMany { .. } => None,
        }
    }

    /// Whether one row of `from` reaches at most one row of `to`.
    pub fn single(&self) -> bool {
        matches!(self.relation.kind, RelationKind::BelongsTo { .. })
    }
}

/// A chain of relations from a model.
#[derive(Debug)]
pub struct Path {
    /// The relations' names joined by `__`, as filters write them (`list__members`).
    pub name: String,
    /// The steps, in order; at least one.
    pub hops: Vec<Hop>,
    /// Its index among its root's [`Paths`]: the context value at
    /// `root.fields.len() + slot` holds the rows it reaches.
    pub slot: usize,
}

impl Path {
    /// The model the path ends at.
    pub fn target(&self) -> &'static ModelInfo {
        self.hops.last().expect("a path has a hop").to
    }

    /// Whether it ends in a `has_many` (reaches any number of rows).
    pub fn many(&self) -> bool {
        !self.hops.last().expect("a path has a hop").single()
    }
}

/// Every path of one model, in a fixed order.
#[derive(Debug)]
pub struct Paths {
    /// The model they start from.
    pub root: &'static ModelInfo,
    /// Depth first, in declaration order.
    pub all: Vec<Arc<Path>>,
}

impl Paths {
    /// The path called `name` (`list__members`).
    pub fn get(&self, name: &str) -> Option<&Arc<Path>> {
        self.all.iter().find(|p| p.name == name)
    }
}

/// The paths of a model, computed once per model and kept for the process.
pub fn paths(root: &'static ModelInfo) -> &'static Paths {
    static ALL: OnceLock<Mutex<HashMap<&'static str, &'static Paths>>> = OnceLock::new();
    let mut known = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    known.entry(root.table).or_insert_with(|| Box::leak(Box::new(compute(root))))
}

fn compute(root: &'static ModelInfo) -> Paths {
    fn walk(
        at: &'static ModelInfo,
        hops: &mut Vec<Hop>,
        visited: &mut Vec<&'static str>,
        names: &mut Vec<&'static str>,
        out: &mut Vec<Arc<Path>>,
    ) {
        if hops.len() == MAX_HOPS {
            return;
        }
        for relation in at.relations {
            let to = (relation.target)();
            if visited.contains(&to.table) {
                continue;
            }
            let hop = Hop { from: at, to, relation };
            hops.push(hop);
            names.push(relation.name);
            visited.push(to.table);
            out.push(Arc::new(Path { name: names.join("__"), hops: hops.clone(), slot: out.len() }));
            if hop.single() {
                walk(to, hops, visited, names, out);
            }
            hops.pop();
            names.pop();
            visited.pop();
        }
    }
    let mut all = Vec::new();
    walk(root, &mut Vec::new(), &mut vec![root.table], &mut Vec::new(), &mut all);
    Paths { root, all }
}

/// Why a relation path in a filter key is refused, said so that the reader
/// knows which relation and which field.
pub(crate) fn explain_missing(root: &'static ModelInfo, segments: &[&str]) -> Option<String> {
    let mut at = root;
    let mut walked: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let Some(relation) = at.relation(segment) else {
            if walked.is_empty() {
                return None;
            }
            let fields: Vec<&str> = at.fields.iter().filter(|f| f.published).map(|f| f.name).collect();
            let relations: Vec<&str> = at.relations.iter().map(|r| r.name).collect();
            let mut expected = fields.join(", ");
            if !relations.is_empty() {
                expected.push_str("; relations ");
                expected.push_str(&relations.join(", "));
            }
            return Some(format!(
                "relation `{}` reaches {}, which has no field or relation `{segment}`; expected one of {expected}",
                walked.join("__"),
                at.route
            ));
        };
        let to = (relation.target)();
        walked.push(segment);
        if i + 1 == segments.len() {
            break;
        }
        at = to;
    }
    None
}

/// Why a declared relation cannot work, found at compile time. A `const fn`
/// cannot allocate, so the message is written into a fixed buffer; the
/// derive's `const` item panics with it, and the compiler reports that panic
/// at the user's attribute (not in this file).
#[doc(hidden)]
pub struct Problem {
    bytes: [u8; PROBLEM_LEN],
    len: usize,
    /// Whether a piece did not fit: the message ends there.
    cut: bool,
}

const PROBLEM_LEN: usize = 600;

impl Problem {
    const fn new() -> Problem {
        Problem { bytes: [0; PROBLEM_LEN], len: 0, cut: false }
    }

    /// Appends whole pieces only (so the text stays UTF-8); a piece that no
    /// longer fits ends the message with `...`.
    const fn push(mut self, piece: &str) -> Problem {
        const ELLIPSIS: &[u8] = b"...";
        let piece = piece.as_bytes();
        if self.cut {
            return self;
        }
        if self.len + piece.len() + ELLIPSIS.len() > PROBLEM_LEN {
            self.cut = true;
            return self.append(ELLIPSIS);
        }
        self.append(piece)
    }

    const fn append(mut self, piece: &[u8]) -> Problem {
        let mut i = 0;
        while i < piece.len() && self.len < PROBLEM_LEN {
            self.bytes[self.len] = piece[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        match std::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(text) => text,
            Err(_) => "invalid relation",
        }
    }
}

impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a type is stored, as Rust spells the built-in type of that family
/// (an application's own type is stored as one of them).
const fn stored_as(ty: crate::FieldType) -> &'static str {
    use crate::model::Storage;
    match ty.storage() {
        Storage::Bool => "bool",
        Storage::I16 => "i16",
        Storage::I32 => "i32",
        Storage::I64 => "i64",
        Storage::F32 => "f32",
        Storage::F64 => "f64",
        Storage::Text => "String",
        Storage::Date => "chrono::NaiveDate",
        Storage::DateTime => "chrono::NaiveDateTime",
        Storage::DateTimeUtc => "chrono::DateTime<Utc>",
        Storage::Uuid => "uuid::Uuid",
        Storage::Json => "serde_json::Value",
    }
}

const fn same_storage(a: crate::FieldType, b: crate::FieldType) -> bool {
    a.storage() as u8 == b.storage() as u8
}

/// Compile-time check of `#[wyrm(belongs_to = Target)]` on `model`'s field
/// `field` (called by the derive in a `const`): the key must be stored like
/// the target's primary key, or no row could ever match.
#[doc(hidden)]
pub const fn check_belongs_to(
    model: &str,
    field: &str,
    key: crate::FieldType,
    target: &str,
    target_fields: &[FieldDef],
    target_pk: usize,
) -> Option<Problem> {
    let pk = &target_fields[target_pk];
    if same_storage(key, pk.ty) {
        return None;
    }
    Some(
        Problem::new()
            .push("`belongs_to = ")
            .push(target)
            .push("` on `")
            .push(model)
            .push("::")
            .push(field)
            .push("`: the foreign key is stored as ")
            .push(stored_as(key))
            .push(" but `")
            .push(target)
            .push("`'s primary key `")
            .push(pk.name)
            .push("` is stored as ")
            .push(stored_as(pk.ty))
            .push("; declare `")
            .push(field)
            .push("` with the type of the key it holds"),
    )
}

/// Compile-time check of `#[wyrm(has_many(relation = Target, via = field))]`
/// on `model`: `Target` has the field `via`, stored like `model`'s primary key.
#[doc(hidden)]
pub const fn check_has_many(
    model: &str,
    relation: &str,
    target: &str,
    target_fields: &[FieldDef],
    via: &str,
    fields: &[FieldDef],
    pk: usize,
) -> Option<Problem> {
    let head = Problem::new()
        .push("`has_many(")
        .push(relation)
        .push(" = ")
        .push(target)
        .push(", via = ")
        .push(via)
        .push(")` on `")
        .push(model)
        .push("`: ");
    let mut i = 0;
    while i < target_fields.len() {
        let found = &target_fields[i];
        if same_str(found.name, via) {
            if same_storage(found.ty, fields[pk].ty) {
                return None;
            }
            return Some(
                head.push("`")
                    .push(target)
                    .push("::")
                    .push(via)
                    .push("` is stored as ")
                    .push(stored_as(found.ty))
                    .push(" but `")
                    .push(model)
                    .push("`'s primary key `")
                    .push(fields[pk].name)
                    .push("` is stored as ")
                    .push(stored_as(fields[pk].ty))
                    .push("; `via` must hold this model's primary key"),
            );
        }
        i += 1;
    }
    let mut problem = head
        .push("`")
        .push(target)
        .push("` has no field `")
        .push(via)
        .push("`; `via` names the field of `")
        .push(target)
        .push("` that holds `")
        .push(model)
        .push("`'s primary key (its fields: ");
    let mut i = 0;
    while i < target_fields.len() {
        if i > 0 {
            problem = problem.push(", ");
        }
        problem = problem.push(target_fields[i].name);
        i += 1;
    }
    Some(problem.push(")"))
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The rows a path reaches from one row, as the context carries them.
pub fn related(rows: Vec<Row>) -> Value {
    Value::Related(rows.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::FIELDS as ITEMS;
    use crate::FieldType;

    #[test]
    fn checks_pass_when_the_types_agree() {
        // Items: `id` and `list_id`, both i32.
        assert!(check_belongs_to("Item", "list_id", FieldType::I32, "Item", ITEMS, 0).is_none());
        assert!(check_has_many("Item", "items", "Item", ITEMS, "list_id", ITEMS, 0).is_none());
        assert!(check_belongs_to("Item", "list_id", FieldType::Text, "Item", ITEMS, 0).is_some());
        assert!(check_has_many("Item", "items", "Item", ITEMS, "text", ITEMS, 0).is_some());
    }

    #[test]
    fn a_long_message_is_cut_whole_and_marked() {
        let many: Vec<FieldDef> = (0..100)
            .map(|i| FieldDef { name: Box::leak(format!("field_number_{i}").into_boxed_str()), ..ITEMS[0] })
            .collect();
        let problem = check_has_many("List", "items", "Item", &many, "list_id", ITEMS, 0).expect("no `list_id`");
        let text = problem.as_str();
        assert!(text.starts_with("`has_many(items = Item, via = list_id)` on `List`: `Item` has no field `list_id`"));
        assert!(text.ends_with(", ...") && !text.ends_with(", ..., ..."), "{text}");
        assert!(text.len() <= PROBLEM_LEN);
    }
}
