//! Conditions on related rows: `list__title__icontains`,
//! `list__members__user_id`, `items__done` (see [`crate::relation`]).
//!
//! The keys of one filter object that go through the same relation path
//! become one [`Exists`]: "some row the path reaches satisfies all of
//! them". That is Django's rule for multi-valued relations within one
//! `filter()` call (the same related row must satisfy every condition on
//! it); for a path that reaches one row it is simply that row's test.
//! In memory the rows come from the change's context; in SQL it is an
//! `EXISTS` subquery (`crate::sql::render`).

use std::sync::Arc;

use super::tree::{self, Node, Step};
use super::Lookup;
use crate::model::{field_index, Value};
use crate::relation::{paths, ModelInfo, Path, RelationKind};

/// Some row reached through `path` satisfies `node` (over the path's
/// target's fields).
#[derive(Debug, Clone)]
pub(crate) struct Exists {
    pub(crate) path: Arc<Path>,
    /// Where the row holds the path's rows: its model's field count plus
    /// the path's slot.
    pub(crate) at: usize,
    pub(crate) node: Node,
    steps: Box<[Step]>,
    /// Whether the condition holds of a row of NULLs: what it says of a
    /// row that reaches no related row (see [`Exists::matches`]).
    pub(crate) null_matches: bool,
}

impl PartialEq for Exists {
    fn eq(&self, other: &Exists) -> bool {
        self.at == other.at && self.path.name == other.path.name && self.node == other.node
    }
}

impl Exists {
    pub(crate) fn new(path: Arc<Path>, node: Node) -> Exists {
        let at = path.hops[0].from.fields.len() + path.slot;
        let steps = tree::flatten(&node);
        let nulls = vec![Value::Null; path.target().fields.len()];
        let null_matches = tree::evaluate(&steps, &nulls);
        Exists { path, at, node, steps, null_matches }
    }

    /// Whether one of the rows the path reaches from `row` passes; when it
    /// reaches none, whether a row of NULLs would: Django's outer join
    /// counts a missing related row as NULLs, so `{"children__isnull":
    /// true}` is "no children" and `{"parent__name__isnull": true}` holds
    /// where there is no parent. A row without its context (not from a
    /// change) is not judged here: it never matches.
    pub(crate) fn matches(&self, row: &[Value]) -> bool {
        match row.get(self.at) {
            Some(Value::Related(rows)) if rows.is_empty() => self.null_matches,
            Some(Value::Related(rows)) => rows.iter().any(|r| tree::evaluate(&self.steps, r)),
            _ => false,
        }
    }

    /// Its text in a canonical key: `@`, the path, and its condition's key
    /// as a JSON string (no field name starts with `@`).
    pub(crate) fn key(&self) -> String {
        let inner = self.node.key(self.path.target().fields);
        format!("@{}{}", self.path.name, serde_json::Value::from(inner))
    }
}

/// The index of a pin through a relation ("some row at `at` holds one of
/// these values in `field`"), packed into the pin's field index (own
/// fields are far below 2^16), so the subscription index files relation
/// pins like any other.
pub(crate) fn related_pin(at: usize, field: usize) -> usize {
    ((at + 1) << 16) | field
}

/// `(at, field)` of a pin made by [`related_pin`]; `None` for an own field.
pub(crate) fn split_pin(pin: usize) -> Option<(usize, usize)> {
    (pin >= 1 << 16).then(|| ((pin >> 16) - 1, pin & 0xffff))
}

/// How a key goes through relations: the path and what is left of the key
/// for the path's target (`title__icontains`).
pub(super) struct Through {
    pub(super) path: Arc<Path>,
    pub(super) rest: String,
}

/// Whether `key` starts with relations of `root` (and not with one of
/// `root`'s own fields, or a foreign key's own spellings `list`,
/// `list__id`, `list__pk`, `list__in`); `Err` says why a relation path is
/// not one the filter may follow.
pub(super) fn through(root: &'static ModelInfo, key: &str) -> Result<Option<Through>, String> {
    let segments: Vec<&str> = key.split("__").collect();
    let mut at = root;
    let mut names: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let Some(relation) = at.relation(segments[i]) else { break };
        // A field of this name comes first (as in Django, a field shadows).
        if field_index(at.fields, segments[i]).is_some_and(|f| at.fields[f].name == segments[i]) {
            break;
        }
        let to = (relation.target)();
        if let RelationKind::BelongsTo { .. } = relation.kind {
            // `list`, `list__id`, `list__pk`, `list__<lookup>`: the key itself.
            let next = segments.get(i + 1).copied();
            let own = match next {
                None => true,
                Some(n) => n == "pk" || n == to.fields[to.primary_key].name || Lookup::from_name(n).is_some(),
            };
            if own {
                break;
            }
        }
        names.push(segments[i]);
        at = to;
        i += 1;
    }
    if names.is_empty() {
        return Ok(None);
    }
    let name = names.join("__");
    let Some(path) = paths(root).get(&name) else {
        return Err(format!(
            "relation path `{name}` cannot be followed: a filter follows at most {} relations, never reaches \
             a model twice (except back to its own model, as its last step), and crosses a has_many \
             relation only as its last step",
            crate::relation::MAX_HOPS
        ));
    };
    let mut rest = segments[i..].join("__");
    // `items` and `items__in` name the related rows' primary key.
    let target = path.target();
    if rest.is_empty() || Lookup::from_name(&rest).is_some() {
        let pk = target.fields[target.primary_key].name;
        rest = if rest.is_empty() { pk.to_owned() } else { format!("{pk}__{rest}") };
    }
    Ok(Some(Through { path: path.clone(), rest }))
}

#[cfg(test)]
#[path = "related_tests.rs"]
mod tests;
