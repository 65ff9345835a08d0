//! Parsing filter JSON into predicates: key syntax, field visibility,
//! lookup applicability and operand types.
//!
//! Everything that could make memory and SQL disagree is settled here, once:
//! operands get the field's exact type (never a string standing in for a
//! number, never a wrapped integer), case-insensitive needles are folded, and
//! equivalent spellings are normalized so they also share a canonical key.

use std::cmp::Ordering;

use super::fold::fold_case;
use super::{Cmp, FieldAccess, Filter, Lookup, Node, Op, Predicate, TextKind};
use crate::error::FieldErrors;
use crate::model::{field_index, json_kind, FieldDef, FieldType, Value};

/// The most values one `in` may list. SQLite allows 32766 bound parameters
/// per statement and PostgreSQL 65535; past this a client should be
/// narrowing its query another way.
pub(super) const MAX_IN_VALUES: usize = 1000;

/// What one key contributes.
enum Term {
    Predicate(Predicate),
    /// The key can match no row (an empty `in`).
    Never,
}

pub(super) fn parse(
    fields: &'static [FieldDef],
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
    let cx = Context { fields, access, refuse_nul: !nul_allowed };
    let mut errors = FieldErrors::new();
    let root = cx.object(object, "", &mut errors);
    errors.into_result()?;
    Ok(Filter::new(fields, root))
}

struct Context {
    fields: &'static [FieldDef],
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
        for (key, operand) in object {
            let at = format!("{path}{key}");
            let node = match key.as_str() {
                "or" | "and" => self.list(key, operand, &at, errors),
                "not" => self.nested(operand, &at, errors).map(Node::not),
                _ => self.leaf(key, operand, &at, errors),
            };
            children.extend(node);
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

    fn leaf(&self, key: &str, operand: &serde_json::Value, at: &str, errors: &mut FieldErrors) -> Option<Node> {
        if self.refuse_nul && contains_nul(operand) {
            // Reported as a bad filter, not left to fail as an internal
            // error when the database refuses the bound text.
            errors.add(at, "may not contain the NUL character (\\u0000) on PostgreSQL");
        }
        match parse_key(self.fields, key, operand, self.access) {
            Ok(Term::Predicate(p)) => Some(Node::Leaf(p)),
            Ok(Term::Never) => Some(Node::FALSE),
            Err(messages) => {
                messages.into_iter().for_each(|m| errors.add(at, m));
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
    let (index, lookup) = resolve(fields, key, access).map_err(|m| vec![m])?;
    let field = &fields[index];
    if !lookup.applies_to(field.ty) {
        return Err(vec![format!(
            "lookup `{}` does not apply to a {} field; expected one of {}",
            lookup.name(),
            field.ty.name(),
            lookups_for(field.ty)
        )]);
    }
    let op = match parse_operand(field.ty, lookup, operand)? {
        Some(op) => op,
        None => return Ok(Term::Never),
    };
    Ok(Term::Predicate(Predicate { field: index, op }))
}

/// Whether a string in the operand (or in its list) holds a NUL character.
fn contains_nul(operand: &serde_json::Value) -> bool {
    match operand {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        _ => false,
    }
}

/// Splits a key into field and lookup. The part after the last `__` is a
/// lookup only if it names one; otherwise the whole key is a field name (so
/// `list__id` is the relation spelling of `list_id`, and `list__id__in` is
/// that field with `in`).
fn resolve(fields: &[FieldDef], key: &str, access: FieldAccess) -> Result<(usize, Lookup), String> {
    // An unpublished field must be indistinguishable from a missing one.
    let find = |name: &str| field_index(fields, name).filter(|&i| access == FieldAccess::All || fields[i].published);
    let split = key.rsplit_once("__");
    if let Some((name, suffix)) = split {
        if let Some(lookup) = Lookup::from_name(suffix) {
            return find(name).map(|i| (i, lookup)).ok_or_else(|| unknown_field(fields, name, access));
        }
    }
    if let Some(i) = find(key) {
        return Ok((i, Lookup::Exact));
    }
    if let Some((name, suffix)) = split {
        if let Some(i) = find(name) {
            return Err(format!("unknown lookup `{suffix}`; expected one of {}", lookups_for(fields[i].ty)));
        }
    }
    Err(unknown_field(fields, key, access))
}

fn unknown_field(fields: &[FieldDef], name: &str, access: FieldAccess) -> String {
    let visible: Vec<&str> =
        fields.iter().filter(|f| access == FieldAccess::All || f.published).map(|f| f.name).collect();
    format!("unknown field `{name}`; expected one of {}", visible.join(", "))
}

fn lookups_for(ty: FieldType) -> String {
    Lookup::ALL.iter().filter(|l| l.applies_to(ty)).map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

/// The test for `lookup` with `operand`; `None` when it can match nothing.
fn parse_operand(ty: FieldType, lookup: Lookup, operand: &serde_json::Value) -> Result<Option<Op>, Vec<String>> {
    use serde_json::Value as J;
    let one = |m: String| vec![m];
    let op = match lookup {
        Lookup::Exact => match operand {
            J::Null => Op::IsNull(true),
            _ => Op::Eq(value(ty, operand).map_err(one)?),
        },
        Lookup::IExact => match operand {
            J::Null => Op::IsNull(true),
            _ => Op::IExact(fold_case(text(operand).map_err(one)?).into_owned()),
        },
        Lookup::Contains | Lookup::IContains => text_op(TextKind::Contains, lookup == Lookup::IContains, operand)?,
        Lookup::StartsWith | Lookup::IStartsWith => {
            text_op(TextKind::StartsWith, lookup == Lookup::IStartsWith, operand)?
        }
        Lookup::EndsWith | Lookup::IEndsWith => text_op(TextKind::EndsWith, lookup == Lookup::IEndsWith, operand)?,
        Lookup::In => return parse_in(ty, operand),
        Lookup::Gt => Op::Cmp(Cmp::Gt, ordered(ty, operand).map_err(one)?),
        Lookup::Gte => Op::Cmp(Cmp::Gte, ordered(ty, operand).map_err(one)?),
        Lookup::Lt => Op::Cmp(Cmp::Lt, ordered(ty, operand).map_err(one)?),
        Lookup::Lte => Op::Cmp(Cmp::Lte, ordered(ty, operand).map_err(one)?),
        Lookup::Range => {
            let [low, high] = match operand.as_array().map(Vec::as_slice) {
                Some([low, high]) => [low, high],
                _ => return Err(one(format!("must be a list of two values [low, high], not {}", describe(operand)))),
            };
            let (low, high) = (ordered(ty, low), ordered(ty, high));
            match (low, high) {
                (Ok(low), Ok(high)) => Op::Range(low, high),
                (low, high) => {
                    let low = low.err().map(|m| format!("low bound {m}"));
                    let high = high.err().map(|m| format!("high bound {m}"));
                    return Err(low.into_iter().chain(high).collect());
                }
            }
        }
        Lookup::IsNull => match operand {
            J::Bool(is) => Op::IsNull(*is),
            other => return Err(one(format!("must be true or false, not {}", json_kind(other)))),
        },
    };
    Ok(Some(op))
}

fn text_op(kind: TextKind, fold: bool, operand: &serde_json::Value) -> Result<Op, Vec<String>> {
    if operand.is_null() {
        return Err(vec!["cannot be null; use isnull to match null".into()]);
    }
    let needle = text(operand).map_err(|m| vec![m])?;
    let needle = if fold { fold_case(needle).into_owned() } else { needle.to_owned() };
    Ok(Op::Text { kind, fold, needle })
}

fn text(operand: &serde_json::Value) -> Result<&str, String> {
    match operand {
        serde_json::Value::String(s) => Ok(s),
        other => Err(format!("must be a {}, not {}", FieldType::Text.name(), json_kind(other))),
    }
}

fn parse_in(ty: FieldType, operand: &serde_json::Value) -> Result<Option<Op>, Vec<String>> {
    let Some(items) = operand.as_array() else {
        return Err(vec![format!("must be a list of values, not {}", describe(operand))]);
    };
    if items.len() > MAX_IN_VALUES {
        return Err(vec![format!("may list at most {MAX_IN_VALUES} values, not {}", items.len())]);
    }
    let mut values = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.is_null() {
            errors.push(format!("item {i}: in cannot match null; use isnull"));
            continue;
        }
        match value(ty, item) {
            Ok(v) => values.push(v),
            Err(m) => errors.push(format!("item {i} {m}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    values.sort_by(total_order);
    values.dedup();
    Ok(match values.len() {
        0 => None,
        1 => values.pop().map(Op::Eq),
        _ => Some(Op::In(values)),
    })
}

/// A non-null operand of the field's type, with `-0.0` made `0.0` (they
/// compare equal everywhere; one spelling keeps canonical keys equal).
fn value(ty: FieldType, operand: &serde_json::Value) -> Result<Value, String> {
    match ty.value_from_json(operand, false)? {
        // Float patterns compare with `==`, so this arm also takes -0.0.
        Value::Float(0.0) => Ok(Value::Float(0.0)),
        v => Ok(v),
    }
}

/// An operand of an ordered comparison, which cannot be null.
fn ordered(ty: FieldType, operand: &serde_json::Value) -> Result<Value, String> {
    if operand.is_null() {
        return Err("cannot be compared with null; use isnull to match null".into());
    }
    value(ty, operand)
}

/// A total order on the operands of one `in` (all of one type, floats
/// finite and without `-0.0`), consistent with how rows compare to them.
pub(super) fn total_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(_) => 3,
        Value::Text(_) => 4,
    }
}

/// The JSON kind, and the value itself for scalars, so "must be a list, not
/// the string \"abc\"" says what was sent.
fn describe(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::String(_) | serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
            format!("{} ({json})", json_kind(json))
        }
        serde_json::Value::Array(items) => format!("a list of {} values", items.len()),
        other => json_kind(other).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::FIELDS;
    use super::*;
    use serde_json::json;

    fn errors(filter: serde_json::Value, access: FieldAccess) -> FieldErrors {
        Filter::parse(FIELDS, &filter, access).expect_err("should not parse")
    }

    /// The messages for `key`, asserting that no other key has any.
    fn only(errors: &FieldErrors, key: &str) -> Vec<String> {
        assert_eq!(errors.0.keys().collect::<Vec<_>>(), vec![key], "{errors:?}");
        errors.0[key].clone()
    }

    fn assert_error(filter: serde_json::Value, key: &str, needles: &[&str]) {
        let errors = errors(filter.clone(), FieldAccess::All);
        let messages = only(&errors, key).join(" | ");
        for needle in needles {
            assert!(messages.contains(needle), "{filter}: {messages:?} lacks {needle:?}");
        }
    }

    fn field_of(filter: serde_json::Value) -> &'static str {
        let f = Filter::parse(FIELDS, &filter, FieldAccess::Published).unwrap();
        let field = f.root.leaves().next().unwrap().field;
        FIELDS[field].name
    }

    #[test]
    fn resolves_keys() {
        assert_eq!(field_of(json!({"list_id": 1})), "list_id");
        assert_eq!(field_of(json!({"list__id": 1})), "list_id");
        assert_eq!(field_of(json!({"list__pk": 1})), "list_id");
        assert_eq!(field_of(json!({"list": 1})), "list_id");
        assert_eq!(field_of(json!({"list__id__in": [1, 2]})), "list_id");
        assert_eq!(field_of(json!({"list__id__gt": 1})), "list_id");
        assert_eq!(field_of(json!({"text__exact": "x"})), "text");
        let f = Filter::parse(FIELDS, &json!({"list__id__in": [1, 2]}), FieldAccess::All).unwrap();
        assert_eq!(f.root.leaves().next().unwrap().op, Op::In(vec![Value::Int(1), Value::Int(2)]));
    }

    #[test]
    fn rejects_non_objects() {
        for json in [json!([]), json!("text"), json!(1), json!(true)] {
            let errors = errors(json.clone(), FieldAccess::Published);
            assert!(only(&errors, "filter")[0].starts_with("must be an object"), "{json}: {errors:?}");
        }
        assert!(Filter::parse(FIELDS, &json!({}), FieldAccess::Published).unwrap().matches(&[]));
    }

    #[test]
    fn rejects_unknown_fields() {
        assert_error(json!({"nope": 1}), "nope", &["unknown field `nope`", "expected one of id, list_id, text"]);
        assert_error(json!({"nope__in": [1]}), "nope__in", &["unknown field `nope`"]);
        assert_error(json!({"nope__foo": 1}), "nope__foo", &["unknown field `nope__foo`"]);
        assert_error(json!({"other__id": 1}), "other__id", &["unknown field `other__id`"]);
    }

    #[test]
    fn unpublished_fields_look_unknown_to_clients() {
        let hidden = errors(json!({"created_by": 1}), FieldAccess::Published);
        let missing = errors(json!({"created_bx": 1}), FieldAccess::Published);
        assert_eq!(
            only(&hidden, "created_by")[0].replace("created_by", "NAME"),
            only(&missing, "created_bx")[0].replace("created_bx", "NAME")
        );
        assert!(!hidden.0["created_by"][0].contains("expected one of id, list_id, text, done, score, note, created_by"));
        // Not even the lookup error, which would confirm the field exists.
        let hidden = errors(json!({"created_by__bogus": 1}), FieldAccess::Published);
        assert!(only(&hidden, "created_by__bogus")[0].starts_with("unknown field `created_by__bogus`"));
        let hidden = errors(json!({"created_by__in": [1]}), FieldAccess::Published);
        assert!(only(&hidden, "created_by__in")[0].starts_with("unknown field `created_by`"));
        // The server's scope may use them.
        assert!(Filter::parse(FIELDS, &json!({"created_by__in": [1]}), FieldAccess::All).is_ok());
    }

    #[test]
    fn rejects_unknown_lookups() {
        assert_error(
            json!({"text__icontanis": "milk"}),
            "text__icontanis",
            &["unknown lookup `icontanis`; expected one of exact, iexact, contains, icontains, in, gt"],
        );
        assert_error(json!({"done__contains": true}), "done__contains", &["lookup `contains` does not apply"]);
        assert_error(json!({"list__id__like": 1}), "list__id__like", &["unknown lookup `like`"]);
        assert_error(
            json!({"done__bogus": 1}),
            "done__bogus",
            &["unknown lookup `bogus`; expected one of exact, in, isnull"],
        );
    }

    #[test]
    fn rejects_lookups_that_do_not_apply() {
        for lookup in ["iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"] {
            for field in ["id", "done", "score"] {
                let key = format!("{field}__{lookup}");
                assert_error(json!({ key.clone(): "x" }), &key, &[&format!("lookup `{lookup}` does not apply to a")]);
            }
        }
        for lookup in ["gt", "gte", "lt", "lte", "range"] {
            let key = format!("done__{lookup}");
            assert_error(
                json!({ key.clone(): true }),
                &key,
                &[&format!("lookup `{lookup}` does not apply to a boolean field; expected one of exact, in, isnull")],
            );
        }
    }

    #[test]
    fn rejects_wrong_operand_types_for_every_lookup_class() {
        // Equality and ordering: the field's type, never coerced.
        for lookup in ["exact", "gt", "gte", "lt", "lte"] {
            let key = format!("list_id__{lookup}");
            assert_error(json!({ key.clone(): "1" }), &key, &["must be a 32-bit integer, not a string"]);
            assert_error(json!({ key.clone(): 1.5 }), &key, &["must be a whole number"]);
            assert_error(json!({ key.clone(): true }), &key, &["must be a 32-bit integer, not a boolean"]);
            let key = format!("text__{lookup}");
            assert_error(json!({ key.clone(): 1 }), &key, &["must be a string, not a number"]);
            let key = format!("score__{lookup}");
            assert_error(json!({ key.clone(): "1.5" }), &key, &["must be a number, not a string"]);
        }
        assert_error(json!({"done": "false"}), "done", &["must be a boolean, not a string"]);
        assert_error(json!({"done": 0}), "done", &["must be a boolean, not a number"]);
        // Text lookups: a string.
        for lookup in ["iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"] {
            let key = format!("text__{lookup}");
            assert_error(json!({ key.clone(): 5 }), &key, &["must be a string, not a number"]);
            assert_error(json!({ key.clone(): ["a"] }), &key, &["must be a string, not a list"]);
        }
        // `in`: a list of the field's type.
        assert_error(json!({"id__in": "abc"}), "id__in", &["must be a list of values, not a string (\"abc\")"]);
        assert_error(json!({"id__in": 1}), "id__in", &["must be a list of values, not a number (1)"]);
        assert_error(json!({"text__in": {"a": 1}}), "text__in", &["must be a list of values, not an object"]);
        assert_error(
            json!({"id__in": [1, "2", 3.5]}),
            "id__in",
            &["item 1 must be a 32-bit integer", "item 2 must be a whole"],
        );
        assert_error(json!({"done__in": [true, 1]}), "done__in", &["item 1 must be a boolean, not a number"]);
        // `range`: two values of the field's type.
        assert_error(
            json!({"id__range": [1]}),
            "id__range",
            &["must be a list of two values [low, high], not a list of 1"],
        );
        assert_error(json!({"id__range": [1, 2, 3]}), "id__range", &["list of two values"]);
        assert_error(json!({"id__range": "1,2"}), "id__range", &["list of two values", "a string"]);
        assert_error(json!({"id__range": ["1", 2]}), "id__range", &["low bound must be a 32-bit integer"]);
        assert_error(json!({"text__range": ["a", 2]}), "text__range", &["high bound must be a string"]);
        // `isnull`: a boolean.
        assert_error(json!({"note__isnull": 1}), "note__isnull", &["must be true or false, not a number"]);
        assert_error(json!({"note__isnull": "true"}), "note__isnull", &["must be true or false, not a string"]);
        assert_error(json!({"note__isnull": null}), "note__isnull", &["must be true or false, not null"]);
    }

    #[test]
    fn rejects_nulls_where_they_cannot_match() {
        assert_error(json!({"id__in": [1, null]}), "id__in", &["item 1: in cannot match null; use isnull"]);
        for lookup in ["gt", "gte", "lt", "lte"] {
            let key = format!("note__{lookup}");
            assert_error(json!({ key.clone(): null }), &key, &["cannot be compared with null; use isnull"]);
        }
        assert_error(json!({"note__range": [null, "b"]}), "note__range", &["low bound cannot be compared with null"]);
        for lookup in ["contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"] {
            let key = format!("note__{lookup}");
            assert_error(json!({ key.clone(): null }), &key, &["cannot be null; use isnull"]);
        }
        // `exact` and `iexact` take null as IS NULL, on any field.
        for filter in
            [json!({"note": null}), json!({"text": null}), json!({"note__iexact": null}), json!({"done": null})]
        {
            assert!(Filter::parse(FIELDS, &filter, FieldAccess::All).is_ok(), "{filter}");
        }
    }

    #[test]
    fn rejects_out_of_range_integers() {
        assert_error(json!({"id": 2147483648i64}), "id", &["out of range for a 32-bit integer"]);
        assert_error(json!({"id__gt": -2147483649i64}), "id__gt", &["out of range"]);
        assert_error(json!({"id__in": [1, 2147483648i64]}), "id__in", &["item 1 is out of range"]);
        assert_error(json!({"id__range": [0, 4294967296i64]}), "id__range", &["high bound is out of range"]);
        assert_error(
            json!({"created_by": 9223372036854775808u64}),
            "created_by",
            &["out of range for a 64-bit integer"],
        );
        assert!(Filter::parse(FIELDS, &json!({"id": 2147483647, "created_by": i64::MIN}), FieldAccess::All).is_ok());
    }

    #[test]
    fn rejects_oversized_in_lists() {
        let many: Vec<i32> = (0..=MAX_IN_VALUES as i32).collect();
        assert_error(json!({"id__in": many}), "id__in", &["at most 1000 values"]);
        let enough: Vec<i32> = (0..MAX_IN_VALUES as i32).collect();
        assert!(Filter::parse(FIELDS, &json!({"id__in": enough}), FieldAccess::All).is_ok());
    }

    #[test]
    fn collects_every_error() {
        let errors = errors(
            json!({"nope": 1, "text__icontanis": "x", "id": "1", "id__in": [null, "a"], "done": true}),
            FieldAccess::Published,
        );
        assert_eq!(errors.0.keys().collect::<Vec<_>>(), vec!["id", "id__in", "nope", "text__icontanis"]);
        assert_eq!(errors.0["id__in"].len(), 2);
    }

    #[test]
    fn refuses_nul_only_when_asked() {
        let json = json!({"text__contains": "a\0b", "text__in": ["x", "\0"], "note": "ok", "id__in": "\0"});
        assert!(Filter::parse_checked(FIELDS, &json!({"text__contains": "a\0b"}), FieldAccess::All, true).is_ok());
        let errors = Filter::parse_checked(FIELDS, &json, FieldAccess::All, false).unwrap_err();
        assert_eq!(errors.0.keys().collect::<Vec<_>>(), vec!["id__in", "text__contains", "text__in"]);
        assert!(errors.0["text__contains"][0].contains("NUL character"), "{errors:?}");
        assert_eq!(errors.0["id__in"].len(), 2, "the NUL and the type error are both reported: {errors:?}");
    }

    #[test]
    fn normalizes_operands() {
        let f = Filter::parse(
            FIELDS,
            &json!({"score__in": [1, -0.0, 0.0, 1.0], "text__in": ["b", "a", "b"], "id__in": [5, 5], "text__icontains": "straße"}),
            FieldAccess::All,
        )
        .unwrap();
        let ops: Vec<_> = f.root.leaves().map(|p| (FIELDS[p.field].name, p.op.clone())).collect();
        assert!(ops.contains(&("score", Op::In(vec![Value::Float(0.0), Value::Float(1.0)]))));
        assert!(ops.contains(&("text", Op::In(vec!["a".into(), "b".into()]))));
        assert!(ops.contains(&("id", Op::Eq(Value::Int(5)))));
        assert!(ops.contains(&("text", Op::Text { kind: TextKind::Contains, fold: true, needle: "STRAßE".into() })));
        let f = Filter::parse(FIELDS, &json!({"score": -0.0}), FieldAccess::All).unwrap();
        assert!(matches!(f.root.leaves().next().unwrap().op, Op::Eq(Value::Float(z)) if z.is_sign_positive()));
    }
}
