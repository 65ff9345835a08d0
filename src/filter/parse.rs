//! Parsing filter JSON into predicates: key syntax, field visibility,
//! transforms and lookup applicability. Operands are `operand.rs`'s.
//!
//! Everything that could make memory and SQL disagree is settled here, once:
//! operands get the field's exact type (never a string standing in for a
//! number, never a wrapped integer), case-insensitive needles are folded, and
//! equivalent spellings are normalized so they also share a canonical key.

use std::sync::Arc;

use super::operand::{describe, parse_operand, Answer};
use super::related::{self, Exists};
use super::{FieldAccess, Filter, Lookup, Node, Predicate, Transform};
use crate::error::FieldErrors;
use crate::model::{field_index, json_kind, FieldDef, Storage};
use crate::relation::ModelInfo;

/// What one key contributes.
enum Term {
    Predicate(Predicate),
    /// The key can match no row (an empty `in`, `priority__gt` above the
    /// column's range).
    Never,
    /// The key holds for every row, NULL or not (`priority__lt` above the
    /// column's range, which Django answers with the whole table).
    Always,
}

pub(super) fn parse(
    fields: &'static [FieldDef],
    model: Option<&'static ModelInfo>,
    json: &serde_json::Value,
    access: FieldAccess,
    nul_allowed: bool,
) -> Result<Filter, FieldErrors> {
    let Some(object) = json.as_object() else {
        return Err(FieldErrors::single(
            "filter",
            format!("must be an object of field lookups, not {}", json_kind(json)),
        ));
    };
    let cx = Context { fields, model, access, refuse_nul: !nul_allowed };
    let mut errors = FieldErrors::new();
    let root = cx.object(object, "", &mut errors);
    errors.into_result()?;
    Ok(Filter::new(fields, root))
}

struct Context {
    fields: &'static [FieldDef],
    /// The model, when relations may be followed.
    model: Option<&'static ModelInfo>,
    access: FieldAccess,
    refuse_nul: bool,
}

impl Context {
    /// One filter object: its keys ANDed. `path` prefixes error keys inside
    /// `or`/`and`/`not` (`or.1.`), so each names where it is. Those three
    /// keys always join filters; a model field with one of these names is
    /// filtered as `or__exact`, `not__in`, ...
    fn object(
        &self,
        object: &serde_json::Map<String, serde_json::Value>,
        path: &str,
        errors: &mut FieldErrors,
    ) -> Node {
        let mut children = Vec::with_capacity(object.len());
        // The keys through each relation path, to join into one `Exists`.
        let mut related: Vec<(Arc<crate::relation::Path>, Vec<Node>)> = Vec::new();
        for (key, operand) in object {
            let at = format!("{path}{key}");
            let node = match key.as_str() {
                "or" | "and" => self.list(key, operand, &at, errors),
                "not" => self.nested(operand, &at, errors).map(Node::not),
                _ => match self.model.map(|m| related::through(m, key)).transpose() {
                    // A client may not follow a relation whose key it may
                    // not read: the key reads as a missing field, as the
                    // key column's own spellings (`list`, `list__id`) do.
                    Ok(Some(Some(through))) if self.access == FieldAccess::Published && through.path.hidden_key() => {
                        self.leaf(key, operand, &at, errors, None)
                    }
                    Ok(Some(Some(through))) => {
                        let node = self.leaf(key, operand, &at, errors, Some(&through));
                        match related.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &through.path)) {
                            Some((_, nodes)) => nodes.extend(node),
                            None => related.push((through.path, node.into_iter().collect())),
                        }
                        None
                    }
                    Ok(_) => self.leaf(key, operand, &at, errors, None),
                    Err(message) => {
                        errors.add(&at, message);
                        None
                    }
                },
            };
            children.extend(node);
        }
        for (path, nodes) in related {
            // No related row satisfies a condition that is false
            // (`list__id__in: []`): then nor does the `Exists`, which SQL
            // could not even render (`AND ()`).
            let node = Node::and(nodes);
            children.push(if node.is_false() { Node::FALSE } else { Node::Exists(Box::new(Exists::new(path, node))) });
        }
        Node::and(children)
    }

    /// The filters of an `or` or `and`: a non-empty list of them.
    fn list(&self, key: &str, operand: &serde_json::Value, at: &str, errors: &mut FieldErrors) -> Option<Node> {
        let items = match operand.as_array() {
            Some(items) if !items.is_empty() => items,
            // Django has no empty OR to follow: `Q(_connector=OR)` is an
            // empty Q, matching everything, where an empty OR is false.
            Some(_) => {
                errors.add(at, "must list at least one filter: an empty list is ambiguous");
                return None;
            }
            None => {
                errors.add(at, format!("must be a list of filter objects, not {}", describe(operand)));
                return None;
            }
        };
        let children: Vec<Option<Node>> =
            items.iter().enumerate().map(|(i, item)| self.nested(item, &format!("{at}.{i}"), errors)).collect();
        let children: Option<Vec<Node>> = children.into_iter().collect();
        Some(if key == "or" { Node::or(children?) } else { Node::and(children?) })
    }

    /// A filter object nested in `or`, `and` or `not`, which may not be
    /// empty: Django drops an empty `Q()` from `|` and `~` (so `~Q()` and
    /// `Q() | Q(x=1)` do not mean what logic says), which would make `{}`
    /// mean one thing here and another in a Django port of the query.
    fn nested(&self, json: &serde_json::Value, at: &str, errors: &mut FieldErrors) -> Option<Node> {
        match json.as_object() {
            Some(object) if object.is_empty() => {
                errors.add(at, "must not be empty: an empty filter inside or, and or not is ambiguous");
                None
            }
            Some(object) => Some(self.object(object, &format!("{at}."), errors)),
            None => {
                errors.add(at, format!("must be an object of field lookups, not {}", json_kind(json)));
                None
            }
        }
    }

    /// One key: a lookup on one of the model's fields, or, `through` a
    /// relation path, on the path's target's (errors then name the relation).
    fn leaf(
        &self,
        key: &str,
        operand: &serde_json::Value,
        at: &str,
        errors: &mut FieldErrors,
        through: Option<&related::Through>,
    ) -> Option<Node> {
        if self.refuse_nul && contains_nul(key, operand) {
            // Reported as a bad filter, not left to fail as an internal
            // error when the database refuses the bound text.
            errors.add(at, "may not contain the NUL character (\\u0000) on PostgreSQL");
        }
        let (fields, key) = match through {
            Some(t) => (t.path.target().fields, t.rest.as_str()),
            None => (self.fields, key),
        };
        match parse_key(fields, key, operand, self.access) {
            Ok(Term::Predicate(p)) => Some(Node::Leaf(p)),
            Ok(Term::Never) => Some(Node::FALSE),
            Ok(Term::Always) => Some(Node::TRUE),
            Err(messages) => {
                for m in messages {
                    match through {
                        Some(t) => errors
                            .add(at, format!("through relation `{}` ({}): {m}", t.path.name, t.path.target().route)),
                        None => errors.add(at, m),
                    }
                }
                None
            }
        }
    }
}

fn parse_key(
    fields: &'static [FieldDef],
    key: &str,
    operand: &serde_json::Value,
    access: FieldAccess,
) -> Result<Term, Vec<String>> {
    let (index, transform, lookup) = resolve(fields, key, access).map_err(|m| vec![m])?;
    let field = &fields[index];
    // A JSON field itself is the value at the empty key path: one way to
    // evaluate it (`isnull` on it is SQL NULL, which no path is missing from).
    let transform = match transform {
        None if field.ty.storage() == Storage::Json => Some(Transform::Key(Vec::new())),
        other => other,
    };
    // After a transform, the lookup applies to the transform's value.
    let ty = transform.as_ref().map_or(field.ty, Transform::output);
    if !lookup.applies_to(ty.storage()) {
        let what = match &transform {
            Some(Transform::Key(path)) if path.is_empty() => "a JSON field".to_owned(),
            Some(Transform::Key(_)) => "a JSON key".to_owned(),
            Some(t) => format!("`{}` of a {} field", t.key_text(), field.ty.name()),
            None => format!("a {} field", ty.name()),
        };
        return Err(vec![format!(
            "lookup `{}` does not apply to {what}; expected one of {}",
            lookup.name(),
            lookups_for(ty.storage())
        )]);
    }
    let op = match parse_operand(ty, lookup, operand)? {
        Answer::Op(op) => op,
        Answer::Never => return Ok(Term::Never),
        Answer::Always => return Ok(Term::Always),
    };
    Ok(Term::Predicate(Predicate { field: index, transform, op }))
}

/// Whether a string in the key's JSON path or in the operand (or in its
/// list) holds a NUL character.
fn contains_nul(key: &str, operand: &serde_json::Value) -> bool {
    fn operand_nul(operand: &serde_json::Value) -> bool {
        match operand {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(operand_nul),
            _ => false,
        }
    }
    key.contains('\0') || operand_nul(operand)
}

/// Splits a key into field, transform and lookup. The part after the last
/// `__` is a lookup only if it names one; otherwise the whole key is a field
/// name (so `list__id` is the relation spelling of `list_id`, and
/// `list__id__in` is that field with `in`), a date field and a transform
/// (`due__year`), or a JSON field and a key path (`settings__theme__font`).
fn resolve(fields: &[FieldDef], key: &str, access: FieldAccess) -> Result<(usize, Option<Transform>, Lookup), String> {
    // An unpublished field must be indistinguishable from a missing one.
    let find = |name: &str| field_index(fields, name).filter(|&i| access == FieldAccess::All || fields[i].published);
    let split = key.rsplit_once("__");
    let (name, lookup) = match split {
        Some((name, suffix)) if Lookup::from_name(suffix).is_some() => (name, Lookup::from_name(suffix)),
        _ => (key, None),
    };
    if let Some(i) = find(name) {
        return Ok((i, None, lookup.unwrap_or(Lookup::Exact)));
    }
    if let Some((i, transform)) = transformed(fields, name, &find)? {
        return Ok((i, Some(transform), lookup.unwrap_or(Lookup::Exact)));
    }
    if lookup.is_some() {
        return Err(unknown_field(fields, name, access));
    }
    if let Some((name, suffix)) = split {
        if let Some(i) = find(name) {
            let ty = fields[i].ty.storage();
            let mut expected = lookups_for(ty);
            for t in Transform::names_for(ty) {
                expected.push_str(", ");
                expected.push_str(t);
            }
            return Err(format!("unknown lookup `{suffix}`; expected one of {expected}"));
        }
    }
    Err(unknown_field(fields, key, access))
}

/// `field__transform` for a date field, or `field__key__...` for a JSON field.
fn transformed(
    fields: &[FieldDef],
    name: &str,
    find: &dyn Fn(&str) -> Option<usize>,
) -> Result<Option<(usize, Transform)>, String> {
    if let Some((field, suffix)) = name.rsplit_once("__") {
        if let Some(i) = find(field) {
            if let Some(t) = Transform::temporal(suffix, fields[i].ty.storage()) {
                return Ok(Some((i, t)));
            }
        }
    }
    // The longest prefix that is a JSON field; the rest is its key path.
    let mut at = name.len();
    while let Some(split) = name[..at].rfind("__") {
        at = split;
        let Some(i) = find(&name[..at]).filter(|&i| fields[i].ty.storage() == Storage::Json) else { continue };
        let path: Vec<String> = name[at + 2..].split("__").map(str::to_owned).collect();
        for key in &path {
            if !json_key_spellable(key) {
                return Err(format!("key `{key}` of a JSON path {JSON_KEY_RULE}"));
            }
            if key.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("key `{key}`: array indexes in JSON paths are not supported"));
            }
        }
        return Ok(Some((i, Transform::Key(path))));
    }
    Ok(None)
}

/// What a JSON key must be so that SQLite's path syntax (`$."key"`) can
/// spell it: not empty, no `"`, no `\`, no control characters.
fn json_key_spellable(key: &str) -> bool {
    !key.is_empty() && !key.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

const JSON_KEY_RULE: &str = "must be non-empty, without `\"`, `\\` or control characters";

fn unknown_field(fields: &[FieldDef], name: &str, access: FieldAccess) -> String {
    let visible: Vec<&str> =
        fields.iter().filter(|f| access == FieldAccess::All || f.published).map(|f| f.name).collect();
    format!("unknown field `{name}`; expected one of {}", visible.join(", "))
}

fn lookups_for(storage: Storage) -> String {
    Lookup::ALL.iter().filter(|l| l.applies_to(storage)).map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
