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

mod check;
#[doc(hidden)]
pub use check::{check_belongs_to, check_has_many, Problem};

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

/// The rows a path reaches from one row, as the context carries them.
pub fn related(rows: Vec<Row>) -> Value {
    Value::Related(rows.into())
}
