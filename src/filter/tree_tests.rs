//! Unit tests of `crate::filter::tree`.

use super::super::tests::FIELDS;
use super::super::{FieldAccess, Filter};
use super::*;
use crate::model::FieldDef;
use serde_json::json;

fn parse(json: serde_json::Value) -> Filter {
    Filter::parse(FIELDS, &json, FieldAccess::All).unwrap_or_else(|e| panic!("{json}: {e:?}"))
}

fn key(json: serde_json::Value) -> String {
    parse(json).canonical_key()
}

/// id, list_id, text, done, score, note, created_by.
fn row(list: i64, text: &str, done: bool, note: Option<&str>) -> Vec<Value> {
    let note = note.map_or(Value::Null, Value::from);
    vec![Value::Int(1), Value::Int(list), text.into(), done.into(), 0.5.into(), note, Value::Int(3)]
}

#[test]
fn or_and_not_evaluate_with_plain_keys_anded() {
    let mine_or_shared = parse(json!({"done": false, "or": [{"created_by": 3}, {"list_id__in": [7, 8]}]}));
    assert!(mine_or_shared.matches(&row(1, "x", false, None)), "mine");
    assert!(mine_or_shared.matches(&[&row(7, "x", false, None)[..6], &[Value::Int(4)]].concat()), "shared");
    assert!(!mine_or_shared.matches(&[&row(1, "x", false, None)[..6], &[Value::Int(4)]].concat()));
    assert!(!mine_or_shared.matches(&row(1, "x", true, None)), "plain keys still hold");
    let f = parse(json!({"not": {"text__startswith": "a", "done": true}}));
    assert!(f.matches(&row(1, "ab", false, None)));
    assert!(!f.matches(&row(1, "ab", true, None)));
    let f = parse(json!({"and": [{"or": [{"list_id": 1}, {"list_id": 2}]}, {"or": [{"done": true}, {"text": "x"}]}]}));
    assert!(f.matches(&row(2, "x", false, None)));
    assert!(!f.matches(&row(3, "x", true, None)));
    assert!(!f.matches(&row(1, "y", false, None)));
    let deep = parse(json!({"not": {"or": [{"not": {"list_id": 1}}, {"text": "x"}]}}));
    assert!(deep.matches(&row(1, "y", false, None)));
    assert!(!deep.matches(&row(2, "y", false, None)));
    assert!(!deep.matches(&row(1, "x", false, None)));
}

#[test]
fn not_matches_null_as_django_exclude_does() {
    // exclude(note="x") is NOT (note = 'x' AND note IS NOT NULL).
    let null = row(1, "x", false, None);
    for lookup in [json!({"note": "x"}), json!({"note__gt": ""}), json!({"note__icontains": ""})] {
        assert!(!parse(lookup.clone()).matches(&null), "{lookup}");
        assert!(parse(json!({ "not": lookup.clone() })).matches(&null), "not {lookup}");
    }
    assert!(!parse(json!({"not": {"note__isnull": true}})).matches(&null));
    assert!(parse(json!({"not": {"or": [{"note": "x"}, {"text": "y"}]}})).matches(&null));
    assert!(!parse(json!({"not": {"note": "x"}})).matches(&row(1, "x", false, Some("x"))));
}

#[test]
fn constants_fold_as_django_does() {
    let any = row(1, "x", false, None);
    // exclude(id__in=[]) is every row; Q(id__in=[]) | Q(...) is the other branch.
    assert_eq!(key(json!({"not": {"id__in": []}})), "");
    assert_eq!(key(json!({"or": [{"id__in": []}, {"list_id": 1}]})), key(json!({"list_id": 1})));
    assert_eq!(key(json!({"or": [{"id__in": []}, {"list_id__in": []}]})), "!");
    assert!(!parse(json!({"list_id": 1, "not": {"not": {"id__in": []}}})).matches(&any));
    assert_eq!(key(json!({"not": {"not": {"list_id": 1}}})), key(json!({"list_id": 1})));
    assert_eq!(key(json!({"or": [{"list_id": 1}]})), key(json!({"list_id": 1})));
    assert_eq!(key(json!({"and": [{"list_id": 1}, {"done": true}]})), key(json!({"done": true, "list_id": 1})));
    let nested = parse(json!({"or": [{"or": [{"list_id": 1}, {"list_id": 2}]}, {"list_id": 3}]}));
    assert_eq!(nested.root.depth(), 1, "nested ORs flatten: {:?}", nested.root);
}

#[test]
fn canonical_keys_ignore_branch_order_and_keep_structure_apart() {
    let a = key(json!({"or": [{"list_id": 1, "done": true}, {"text": "x"}], "id": 1}));
    let b = key(json!({"id": 1, "or": [{"text": "x"}, {"done": true, "list_id": 1}]}));
    assert_eq!(a, b);
    assert_eq!(key(json!({"or": [{"id": 1}, {"id": 1}, {"id": 2}]})), key(json!({"or": [{"id": 2}, {"id": 1}]})));
    let distinct = [
        json!({"id": 1, "list_id": 2}),
        json!({"or": [{"id": 1}, {"list_id": 2}]}),
        json!({"not": {"id": 1, "list_id": 2}}),
        json!({"not": {"id": 1}, "list_id": 2}),
        json!({"or": [{"not": {"id": 1}}, {"list_id": 2}]}),
        json!({"or": [{"id": 1, "list_id": 2}, {"done": true}]}),
        json!({"or": [{"id": 1}, {"list_id": 2, "done": true}]}),
        json!({"or": [{"id": 1}, {"list_id": 2}], "done": true}),
        json!({"text": "|[\"id__exact=1\",\"list_id__exact=2\"]"}),
        json!({"text": "a\"&id__exact=1"}),
        json!({"text": "a", "id": 1}),
    ];
    let keys: Vec<String> = distinct.iter().map(|j| key(j.clone())).collect();
    for (i, k) in keys.iter().enumerate() {
        for (j, other) in keys.iter().enumerate().skip(i + 1) {
            assert_ne!(k, other, "{} and {} share a key", distinct[i], distinct[j]);
        }
    }
}

#[test]
fn a_field_named_like_an_operator_is_reached_with_exact() {
    static ODD: &[FieldDef] =
        &[FieldDef { name: "or", column: "or", ..FIELDS[0] }, FieldDef { name: "not", column: "not", ..FIELDS[3] }];
    let f = Filter::parse(ODD, &json!({"or__exact": 1, "not__in": [true]}), FieldAccess::All).unwrap();
    assert!(f.matches(&[Value::Int(1), Value::Bool(true)]));
    assert!(!f.matches(&[Value::Int(1), Value::Bool(false)]));
    let e = Filter::parse(ODD, &json!({"or": 1}), FieldAccess::All).unwrap_err();
    assert!(e.0["or"][0].contains("must be a list of filter objects"), "{e:?}");
}

#[test]
fn malformed_nesting_is_refused_by_path() {
    let errors = |json: serde_json::Value| Filter::parse(FIELDS, &json, FieldAccess::Published).unwrap_err().0;
    let e = errors(json!({"or": []}));
    assert!(e["or"][0].contains("at least one filter"), "{e:?}");
    let e = errors(json!({"or": [{}, {"id": 1}]}));
    assert!(e["or.0"][0].contains("must not be empty"), "{e:?}");
    let e = errors(json!({"not": {}}));
    assert!(e["not"][0].contains("must not be empty"), "{e:?}");
    let e = errors(json!({"not": [{"id": 1}]}));
    assert!(e["not"][0].contains("must be an object"), "{e:?}");
    let e = errors(json!({"and": "x"}));
    assert!(e["and"][0].contains("must be a list of filter objects, not a string"), "{e:?}");
    let e = errors(json!({"or": [{"id": 1}, 5]}));
    assert!(e["or.1"][0].contains("must be an object"), "{e:?}");
    let e = errors(json!({"id": "1", "or": [{"not": {"text__icontanis": "x", "created_by": 1}}, {"nope": 1}]}));
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        vec!["id", "or.0.not.created_by", "or.0.not.text__icontanis", "or.1.nope"],
        "every error, by path; unpublished fields stay unknown: {e:?}"
    );
    let nul = Filter::parse_checked(FIELDS, &json!({"not": {"text": "\0"}}), FieldAccess::All, false).unwrap_err();
    assert!(nul.0["not.text"][0].contains("NUL"), "{nul:?}");
}

#[test]
fn pins_see_through_or_but_not_through_not() {
    let pins = |json: serde_json::Value| -> Vec<(&'static str, Vec<Value>)> {
        let f = parse(json);
        let mut pins: Vec<_> = f
            .pins()
            .into_iter()
            .map(|(i, vs)| {
                let mut vs: Vec<Value> = vs.into_iter().cloned().collect();
                vs.sort_by(super::super::operand::total_order);
                (FIELDS[i].name, vs)
            })
            .collect();
        pins.sort_by_key(|p| p.0);
        pins
    };
    let (one, two) = (Value::Int(1), Value::Int(2));
    assert_eq!(
        pins(json!({"or": [{"list_id": 1}, {"list_id": 2}]})),
        vec![("list_id", vec![one.clone(), two.clone()])]
    );
    assert_eq!(
        pins(json!({"or": [{"list_id": 1, "done": true}, {"list_id": 1}]})),
        vec![("list_id", vec![one.clone()])]
    );
    assert_eq!(
        pins(json!({"or": [{"list_id__in": [1, 2]}, {"list_id": 2}]})),
        vec![("list_id", vec![one.clone(), two.clone()])]
    );
    assert_eq!(pins(json!({"or": [{"list_id": 1}, {"text": "x"}]})), vec![]);
    assert_eq!(pins(json!({"not": {"list_id": 1}})), vec![]);
    assert_eq!(pins(json!({"or": [{"list_id": 1}, {"not": {"list_id": 2}}]})), vec![]);
    assert_eq!(pins(json!({"or": [{"score": 1.0}, {"score": 2.0}]})), vec![], "floats never pin");
    assert_eq!(
        pins(json!({"id": 4, "list_id__in": [1, 2], "or": [{"list_id": 2}, {"list_id": 3}]})),
        vec![("id", vec![Value::Int(4)]), ("list_id", vec![two.clone()])],
        "an AND keeps the values all its children allow"
    );
    let f = parse(json!({"or": [{"list_id": 1}, {"list_id": 2}]}));
    assert_eq!(f.equalities().count(), 0, "two values are no equality");
    let f = parse(json!({"or": [{"list_id": 1, "done": true}, {"list_id": 1, "text": "x"}]}));
    assert_eq!(f.equalities().map(|(i, v)| (FIELDS[i].name, v.clone())).collect::<Vec<_>>(), vec![("list_id", one)]);
}

#[test]
fn flattened_evaluation_is_the_tree_s() {
    let filters = [
        json!({}),
        json!({"id__in": []}),
        json!({"list_id": 1, "or": [{"done": true}, {"not": {"text": "x", "note": null}}]}),
        json!({"not": {"or": [{"not": {"list_id": 1}}, {"and": [{"text": "x"}, {"done": false}]}]}}),
        json!({"or": [{"or": [{"list_id": 2}, {"not": {"note__isnull": true}}]}, {"text__startswith": "y"}]}),
    ];
    let rows = [
        row(1, "x", false, None),
        row(1, "y", true, Some("n")),
        row(2, "x", true, None),
        row(3, "z", false, Some("x")),
    ];
    for json in filters {
        let f = parse(json.clone());
        assert_eq!(f.steps, flatten(&f.root));
        for r in &rows {
            assert_eq!(evaluate(&f.steps, r), f.root.matches(r), "{json} on {r:?}");
            assert_eq!(f.matches(r), f.root.matches(r), "{json} on {r:?}");
        }
    }
}

#[test]
fn scans_and_scopes_see_into_branches() {
    assert!(parse(json!({"or": [{"id": 1}, {"not": {"text__icontains": "x"}}]})).scans());
    assert!(!parse(json!({"or": [{"id": 1}, {"not": {"text__startswith": "x"}}]})).scans());
    let scope = parse(json!({"created_by": 3}));
    let f = parse(json!({"or": [{"list_id": 1}, {"done": true}]})).and(scope.clone());
    assert!(f.matches(&row(1, "x", false, None)));
    assert!(!f.matches(&[&row(1, "x", false, None)[..6], &[Value::Int(4)]].concat()));
    assert_eq!(f.canonical_key(), scope.and(parse(json!({"or": [{"done": true}, {"list_id": 1}]}))).canonical_key());
    assert!(!Filter::nothing().and(f.clone()).matches(&row(1, "x", false, None)));
    assert_eq!(Filter::all().and(f.clone()), f);
}
