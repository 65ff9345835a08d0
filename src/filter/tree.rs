//! The boolean structure of a filter: predicates joined by AND (an object's
//! keys), OR (`{"or": [...]}`) and NOT (`{"not": {...}}`), nested to any
//! depth, as Django's `Q` objects combine with `&`, `|` and `~`.
//!
//! Nodes are built through [`Node::and`], [`Node::or`] and [`Node::not`],
//! which normalize as they go (nested ANDs and ORs are flattened, constants
//! folded, a double negation removed, repeated children dropped), so that
//! equivalent filters mostly share one shape and one canonical key, and the
//! evaluators never meet an empty OR or a NOT of a constant.
//!
//! Logic is two-valued: a predicate on a NULL column is false (except
//! `isnull`), and NOT of it is true. That is what Django does for negation,
//! which adds `AND col IS NOT NULL` to every negated lookup on a nullable
//! column; `crate::sql::render` writes NOT as `(...) IS NOT TRUE` for it.

use super::related::Exists;
use super::{Predicate, Value};
use crate::model::{FieldDef, FieldType};

/// One node of a filter's condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Leaf(Predicate),
    /// All must hold; `And([])` holds for every row.
    And(Vec<Node>),
    /// One must hold; `Or([])` holds for no row.
    Or(Vec<Node>),
    Not(Box<Node>),
    /// A condition on related rows (`list__title`).
    Exists(Box<Exists>),
}

impl Node {
    /// Matches every row.
    pub(crate) const TRUE: Node = Node::And(Vec::new());
    /// Matches no row.
    pub(crate) const FALSE: Node = Node::Or(Vec::new());

    pub(crate) fn is_true(&self) -> bool {
        matches!(self, Node::And(c) if c.is_empty())
    }

    pub(crate) fn is_false(&self) -> bool {
        matches!(self, Node::Or(c) if c.is_empty())
    }

    /// All of `children`, normalized.
    pub(crate) fn and(children: impl IntoIterator<Item = Node>) -> Node {
        let mut flat = Vec::new();
        for child in children {
            match child {
                Node::And(grand) => push_all(&mut flat, grand),
                c if c.is_false() => return Node::FALSE,
                c => push_unique(&mut flat, c),
            }
        }
        single_or(flat, Node::And)
    }

    /// Any of `children`, normalized.
    pub(crate) fn or(children: impl IntoIterator<Item = Node>) -> Node {
        let mut flat = Vec::new();
        for child in children {
            match child {
                Node::Or(grand) => push_all(&mut flat, grand),
                c if c.is_true() => return Node::TRUE,
                c => push_unique(&mut flat, c),
            }
        }
        single_or(flat, Node::Or)
    }

    /// The negation of `child`, normalized.
    pub(crate) fn not(child: Node) -> Node {
        match child {
            Node::Not(inner) => *inner,
            c if c.is_true() => Node::FALSE,
            c if c.is_false() => Node::TRUE,
            c => Node::Not(Box::new(c)),
        }
    }

    /// The plain recursive evaluation, which [`evaluate`] must equal.
    #[cfg(test)]
    pub(crate) fn matches(&self, row: &[Value]) -> bool {
        match self {
            Node::Leaf(p) => p.matches(row),
            Node::And(children) => children.iter().all(|c| c.matches(row)),
            Node::Or(children) => children.iter().any(|c| c.matches(row)),
            Node::Not(child) => !child.matches(row),
            Node::Exists(e) => e.matches(row),
        }
    }

    /// Every predicate on the model's own fields, at any depth (not those
    /// on related rows: see [`Node::relations`]).
    pub(crate) fn leaves(&self) -> Box<dyn Iterator<Item = &Predicate> + '_> {
        match self {
            Node::Leaf(p) => Box::new(std::iter::once(p)),
            Node::And(children) | Node::Or(children) => Box::new(children.iter().flat_map(Node::leaves)),
            Node::Not(child) => child.leaves(),
            Node::Exists(_) => Box::new(std::iter::empty()),
        }
    }

    /// Every condition on related rows, at any depth.
    pub(crate) fn relations(&self) -> Box<dyn Iterator<Item = &Exists> + '_> {
        match self {
            Node::Exists(e) => Box::new(std::iter::once(&**e)),
            Node::And(children) | Node::Or(children) => Box::new(children.iter().flat_map(Node::relations)),
            Node::Not(child) => child.relations(),
            Node::Leaf(_) => Box::new(std::iter::empty()),
        }
    }

    /// The canonical text of this node (see [`super::Filter::canonical_key`]).
    ///
    /// An AND is its children's keys sorted and joined by `&` (so a filter
    /// of plain keys keeps the key it always had: `""` matches everything);
    /// an OR is `|` and the JSON list of its children's keys, sorted; a NOT
    /// is `~` and its child's key as a JSON string; the empty OR is `!`.
    /// Leaf keys start with a field name, which cannot start with `|`, `~`
    /// or `!`, and every nested key is JSON-quoted, so different structures
    /// cannot give the same text.
    pub(crate) fn key(&self, fields: &[FieldDef]) -> String {
        match self {
            Node::Leaf(p) => p.key(fields),
            Node::And(children) => sorted_keys(children, fields).join("&"),
            Node::Or(children) if children.is_empty() => "!".into(),
            Node::Or(children) => format!("|{}", serde_json::Value::from(sorted_keys(children, fields))),
            Node::Not(child) => format!("~{}", serde_json::Value::from(child.key(fields))),
            Node::Exists(e) => e.key(),
        }
    }

    /// Fields this node pins to a set of values: every row it matches has,
    /// in that field, one of the values. An equality pins its field to one
    /// value, an `in` to its list; an AND pins what any child pins (to the
    /// values they all allow where several do); an OR pins a field only when every
    /// branch does, to the union of their sets; a NOT pins nothing.
    /// Only fields of `indexable` types are reported.
    pub(crate) fn pins<'a>(&'a self, fields: &[FieldDef], indexable: &dyn Fn(FieldType) -> bool) -> Pins<'a> {
        match self {
            // A transform's value (`due__year`) is not the field's.
            Node::Leaf(p) if p.transform.is_none() && indexable(fields[p.field].ty) => match &p.op {
                super::Op::Eq(v) => vec![(p.field, vec![v])],
                super::Op::In(values) => vec![(p.field, values.iter().collect())],
                _ => Vec::new(),
            },
            // Some related row holds one of the values: the change's
            // context rows are looked up by them (`crate::fanout::index`).
            Node::Exists(e) => e
                .node
                .pins(e.path.target().fields, indexable)
                .into_iter()
                .map(|(field, values)| (super::related::related_pin(e.at, field), values))
                .collect(),
            Node::Leaf(_) | Node::Not(_) => Vec::new(),
            Node::And(children) => {
                let mut pins: Pins<'a> = Vec::new();
                for (field, values) in children.iter().flat_map(|c| c.pins(fields, indexable)) {
                    match pins.iter_mut().find(|(f, _)| *f == field) {
                        // Two conditions on related rows may hold in two
                        // different rows (members 3 and 4 of one list):
                        // either's values pin, not their intersection.
                        Some((_, known)) if super::related::split_pin(field).is_some() => {
                            if values.len() < known.len() {
                                *known = values;
                            }
                        }
                        Some((_, known)) => known.retain(|v| values.contains(v)),
                        None => pins.push((field, values)),
                    }
                }
                pins
            }
            Node::Or(children) => {
                let mut branches = children.iter().map(|c| c.pins(fields, indexable));
                let Some(mut pins) = branches.next() else { return Vec::new() };
                for branch in branches {
                    pins.retain_mut(|(field, values)| match branch.iter().find(|(f, _)| f == field) {
                        Some((_, more)) => {
                            for v in more {
                                if !values.contains(v) {
                                    values.push(v);
                                }
                            }
                            true
                        }
                        None => false,
                    });
                }
                pins
            }
        }
    }

    /// Nesting depth of AND/OR/NOT below this node (a leaf is 0).
    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        match self {
            Node::Leaf(_) => 0,
            Node::And(c) | Node::Or(c) => 1 + c.iter().map(Node::depth).max().unwrap_or(0),
            Node::Not(c) => 1 + c.depth(),
            Node::Exists(e) => 1 + e.node.depth(),
        }
    }
}

/// A tree laid out in one allocation, in preorder, for evaluation: the
/// fan-out evaluates the filters of the candidate groups of every change,
/// and with each node of a tree in its own heap block, every level was
/// another cache miss.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Leaf(Predicate),
    /// All of the steps up to (not including) this index, which hold the children.
    And(u32),
    /// Any of the steps up to this index.
    Or(u32),
    /// The negation of the next step's subtree.
    Not,
    /// A condition on related rows, with its own steps.
    Exists(Box<Exists>),
}

/// `node` as [`Step`]s.
pub(crate) fn flatten(node: &Node) -> Box<[Step]> {
    fn push(node: &Node, out: &mut Vec<Step>) {
        match node {
            Node::Leaf(p) => out.push(Step::Leaf(p.clone())),
            Node::And(children) | Node::Or(children) => {
                let at = out.len();
                out.push(Step::Not); // replaced once the children's end is known
                children.iter().for_each(|c| push(c, out));
                let end = u32::try_from(out.len()).expect("a filter has far fewer than 2^32 nodes");
                out[at] = if matches!(node, Node::And(_)) { Step::And(end) } else { Step::Or(end) };
            }
            Node::Not(child) => {
                out.push(Step::Not);
                push(child, out);
            }
            Node::Exists(e) => out.push(Step::Exists(e.clone())),
        }
    }
    let mut out = Vec::new();
    push(node, &mut out);
    out.into_boxed_slice()
}

/// Whether `row` passes the flattened filter.
pub(crate) fn evaluate(steps: &[Step], row: &[Value]) -> bool {
    /// The answer of the subtree at `i`, and the index after it.
    fn at(steps: &[Step], i: usize, row: &[Value]) -> (bool, usize) {
        match &steps[i] {
            Step::Leaf(p) => (p.matches(row), i + 1),
            Step::And(end) | Step::Or(end) => {
                // An AND is decided by its first false child, an OR by its first true one.
                let decisive = matches!(steps[i], Step::Or(_));
                let end = *end as usize;
                let mut next = i + 1;
                while next < end {
                    let (answer, after) = at(steps, next, row);
                    if answer == decisive {
                        return (decisive, end);
                    }
                    next = after;
                }
                (!decisive, end)
            }
            Step::Not => {
                let (answer, after) = at(steps, i + 1, row);
                (!answer, after)
            }
            Step::Exists(e) => (e.matches(row), i + 1),
        }
    }
    at(steps, 0, row).0
}

/// `(field, values)` pairs of [`Node::pins`].
pub(crate) type Pins<'a> = Vec<(usize, Vec<&'a Value>)>;

fn push_unique(into: &mut Vec<Node>, node: Node) {
    if !into.contains(&node) {
        into.push(node);
    }
}

fn push_all(into: &mut Vec<Node>, nodes: Vec<Node>) {
    nodes.into_iter().for_each(|n| push_unique(into, n));
}

/// The one child itself, or the children under `make`.
fn single_or(mut children: Vec<Node>, make: fn(Vec<Node>) -> Node) -> Node {
    if children.len() == 1 {
        children.pop().expect("one child")
    } else {
        make(children)
    }
}

fn sorted_keys(children: &[Node], fields: &[FieldDef]) -> Vec<String> {
    let mut keys: Vec<String> = children.iter().map(|c| c.key(fields)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
