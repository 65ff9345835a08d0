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
//! - never visiting a model twice, except that the last relation may lead
//!   back to the model the path starts from: a card's `parent` or
//!   `children`, and, through a `has_many(.., siblings)`, the rows of the
//!   same parent (`list__members` from a membership);
//! - a `has_many` only as the last relation: a path reaches one row through
//!   `belongs_to`s, then possibly that row's related set, so a context stays
//!   small whatever the data.
//!
//! This module is part of wyrmhole's pure core: no database, no runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::model::{FieldDef, Row, Value};
pub use crate::model::{ModelInfo, Relation, RelationKind};

mod check;
#[doc(hidden)]
pub use check::{check_belongs_to, check_has_many, Problem};

/// The longest path a filter may follow, in relations.
pub const MAX_HOPS: usize = 3;

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
            RelationKind::HasMany { via, .. } => self.to.fields.iter().position(|f| f.name == via),
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

    /// Whether a relation of the path is keyed by an unpublished field (a
    /// `belongs_to`'s foreign key, a `has_many`'s `via` field): a client may
    /// not follow it, since the rows it reaches would tell the hidden key.
    pub fn hidden_key(&self) -> bool {
        self.hops.iter().any(|hop| match (hop.key_field(), hop.via()) {
            (Some(key), _) => !hop.from.fields[key].published,
            (None, Some(via)) => !hop.to.fields[via].published,
            (None, None) => true,
        })
    }
}

/// Every path of one model, in a fixed order.
#[derive(Debug)]
pub struct Paths {
    /// The model they start from.
    pub root: &'static ModelInfo,
    /// Depth first, in declaration order.
    pub all: Vec<Arc<Path>>,
    /// The fields of each path's target, in the same order.
    pub targets: Vec<&'static [FieldDef]>,
}

impl Paths {
    /// The path called `name` (`list__members`).
    pub fn get(&self, name: &str) -> Option<&Arc<Path>> {
        self.all.iter().find(|p| p.name == name)
    }
}

/// The paths of a model, computed once per model and kept for the process.
/// Models are told apart by route, table, fields and relations (two
/// structs may read one table).
pub fn paths(root: &'static ModelInfo) -> &'static Paths {
    static ALL: OnceLock<Mutex<HashMap<String, &'static Paths>>> = OnceLock::new();
    let mut key = format!("{}\0{}", root.route, root.table);
    for f in root.fields {
        key.push('\0');
        key.push_str(f.name);
    }
    for r in root.relations {
        key.push_str("\0@");
        key.push_str(r.name);
        key.push_str((r.target)().table);
    }
    let mut known = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    known.entry(key).or_insert_with(|| Box::leak(Box::new(compute(root))))
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
            // Back to the model the path starts from, as its last step: a
            // card's `parent` or `children`, and, where the has_many says
            // `siblings`, the rows of the same parent (`list__members`).
            let home = to.table == visited[0]
                && match relation.kind {
                    RelationKind::BelongsTo { .. } => true,
                    RelationKind::HasMany { siblings, .. } => siblings || hops.is_empty(),
                };
            if visited.contains(&to.table) && !home {
                continue;
            }
            let hop = Hop { from: at, to, relation };
            hops.push(hop);
            names.push(relation.name);
            visited.push(to.table);
            out.push(Arc::new(Path { name: names.join("__"), hops: hops.clone(), slot: out.len() }));
            if hop.single() && !home {
                walk(to, hops, visited, names, out);
            }
            hops.pop();
            names.pop();
            visited.pop();
        }
    }
    let mut all = Vec::new();
    walk(root, &mut Vec::new(), &mut vec![root.table], &mut Vec::new(), &mut all);
    let targets = all.iter().map(|p| p.target().fields).collect();
    Paths { root, all, targets }
}

/// The rows a path reaches from one row, as the context carries them.
pub fn related(rows: Vec<Row>) -> Value {
    Value::Related(rows.into())
}
