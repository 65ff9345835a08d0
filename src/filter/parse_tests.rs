//! Unit tests of `crate::filter::parse`.

use super::super::operand::MAX_IN_VALUES;
use super::super::tests::FIELDS;
use super::super::{Op, TextKind};
use super::*;
use crate::model::Value;
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
    // Django ignores null in `in`: NULL equals nothing.
    let with_null = Filter::parse(FIELDS, &json!({"id__in": [1, null]}), FieldAccess::All).unwrap();
    assert_eq!(
        with_null.canonical_key(),
        Filter::parse(FIELDS, &json!({"id": 1}), FieldAccess::All).unwrap().canonical_key()
    );
    assert!(!Filter::parse(FIELDS, &json!({"note__in": [null]}), FieldAccess::All).unwrap().matches(&[]));
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
    for filter in [json!({"note": null}), json!({"text": null}), json!({"note__iexact": null}), json!({"done": null})] {
        assert!(Filter::parse(FIELDS, &filter, FieldAccess::All).is_ok(), "{filter}");
    }
}

#[test]
fn answers_out_of_range_integers_as_django() {
    let key = |j: serde_json::Value| Filter::parse(FIELDS, &j, FieldAccess::All).unwrap().canonical_key();
    let huge: serde_json::Value = serde_json::from_str("99999999999999999999").unwrap();
    let tiny: serde_json::Value = serde_json::from_str("-99999999999999999999").unwrap();
    let (nothing, everything) = (key(json!({"id__in": []})), key(json!({})));
    // Beyond the column's range (here 32 bits), not only beyond 64.
    for never in [
        json!({"id": 2147483648i64}),
        json!({"id__gt": huge}),
        json!({"id__gte": 2147483648i64}),
        json!({"id__lt": tiny}),
        json!({"id__lte": -2147483649i64}),
        json!({"created_by": 9223372036854775808u64}),
        json!({"id__range": [huge, huge]}),
        json!({"id__in": [huge, 2147483648i64]}),
    ] {
        assert_eq!(key(never.clone()), nothing, "{never}");
    }
    for always in [json!({"id__lt": huge}), json!({"id__gt": -2147483649i64}), json!({"created_by__lte": 1e20})] {
        assert_eq!(key(always.clone()), everything, "{always}");
    }
    assert_eq!(key(json!({"id__range": [0, 4294967296i64]})), key(json!({"id__range": [0, 2147483647]})));
    assert_eq!(key(json!({"id__in": [1, 2147483648i64]})), key(json!({"id": 1})));
    assert_eq!(key(json!({"id": 5.0, "list_id__gt": -0.0})), key(json!({"id": 5, "list_id__gt": 0})));
    // A fraction is not an integer: Django would truncate it (`id=4.5`
    // finds 4), which is a guess, so it is refused.
    assert_error(json!({"id": 4.5}), "id", &["must be a whole number (32-bit integer)"]);
    assert_error(json!({"id__gt": 4.5}), "id__gt", &["must be a whole number"]);
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
    assert_eq!(errors.0["id__in"].len(), 1, "the null is skipped, the string refused");
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
