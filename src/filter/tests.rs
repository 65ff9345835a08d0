//! Unit tests of `crate::filter`.

use super::*;
use crate::model::FieldType;
use serde_json::json;

pub(crate) static FIELDS: &[FieldDef] = &[
    field("id", FieldType::I32, false, true),
    FieldDef { relation: Some("list"), ..field("list_id", FieldType::I32, false, true) },
    field("text", FieldType::Text, false, true),
    field("done", FieldType::Bool, false, true),
    field("score", FieldType::F64, false, true),
    field("note", FieldType::Text, true, true),
    field("created_by", FieldType::I64, false, false),
];

const fn field(name: &'static str, ty: FieldType, nullable: bool, published: bool) -> FieldDef {
    FieldDef { name, column: name, ty, nullable, published, updatable: false, primary_key: false, relation: None }
}

fn parse(json: serde_json::Value) -> Filter {
    Filter::parse(FIELDS, &json, FieldAccess::All).unwrap()
}

#[test]
fn lookup_names_round_trip() {
    for lookup in Lookup::ALL {
        assert_eq!(Lookup::from_name(lookup.name()), Some(lookup));
    }
    assert_eq!(Lookup::from_name("icontanis"), None);
}

#[test]
fn all_and_nothing() {
    let row = [Value::Int(1), Value::Int(2), "x".into(), false.into(), 0.5.into(), Value::Null, Value::Int(3)];
    assert!(Filter::all().matches(&row));
    assert!(!Filter::nothing().matches(&row));
    assert!(!parse(json!({"id": 1})).and(Filter::nothing()).matches(&row));
    assert!(!Filter::nothing().and(parse(json!({"id": 1}))).matches(&row));
    assert!(Filter::all().and(parse(json!({"id": 1}))).matches(&row));
    assert_eq!(Filter::all().and(parse(json!({"id": 1}))).fields(), FIELDS);
    assert_eq!(Filter::all().canonical_key(), "");
    assert_eq!(Filter::nothing().canonical_key(), parse(json!({"id__in": []})).canonical_key());
    assert_ne!(Filter::nothing().canonical_key(), Filter::all().canonical_key());
    assert_eq!(Filter::nothing().equalities().count(), 0);
}

#[test]
fn and_combines_predicates() {
    let f = parse(json!({"list_id": 2})).and(parse(json!({"done": false})));
    let row = |list: i64, done: bool| {
        [Value::Int(1), Value::Int(list), "x".into(), done.into(), 0.5.into(), Value::Null, Value::Int(3)]
    };
    assert!(f.matches(&row(2, false)));
    assert!(!f.matches(&row(2, true)));
    assert!(!f.matches(&row(3, false)));
    assert_eq!(f.canonical_key(), parse(json!({"done": false, "list_id": 2})).canonical_key());
}

#[test]
#[should_panic(expected = "different models")]
fn and_refuses_mixing_models() {
    static OTHER: &[FieldDef] = &[field("id", FieldType::I64, false, true)];
    let other = Filter::parse(OTHER, &json!({"id": 1}), FieldAccess::All).unwrap();
    let _ = parse(json!({"id": 1})).and(other);
}

#[test]
fn canonical_key_ignores_order_and_normalizes() {
    let a = parse(json!({"text__icontains": "milk", "list_id": 1, "score__in": [2.5, -0.0, 0.0]}));
    let b = parse(json!({"list_id__in": [1], "score__in": [0.0, 2.5], "text__icontains": "MILK"}));
    assert_eq!(a.canonical_key(), b.canonical_key());
    assert_eq!(parse(json!({"note": null})).canonical_key(), parse(json!({"note__isnull": true})).canonical_key());
    assert_ne!(parse(json!({"text": "a"})).canonical_key(), parse(json!({"text__iexact": "a"})).canonical_key());
    assert_ne!(parse(json!({"list_id": 1})).canonical_key(), parse(json!({"list_id": 2})).canonical_key());
    assert_ne!(parse(json!({"id__gt": 1})).canonical_key(), parse(json!({"id__gte": 1})).canonical_key());
    let dup = parse(json!({"id": 1})).and(parse(json!({"id": 1})));
    assert_eq!(dup.canonical_key(), parse(json!({"id": 1})).canonical_key());
}

#[test]
fn equalities_of_new_types_key_on_values_not_transforms() {
    static TYPED: &[FieldDef] = &[
        field("id", FieldType::I32, false, true),
        field("due", FieldType::Date, true, true),
        field("key", FieldType::Uuid, false, true),
        field("doc", FieldType::Json, true, true),
        field("weight", FieldType::F32, false, true),
    ];
    let f = Filter::parse(
        TYPED,
        &json!({"due": "2024-2-29", "key": "00000000000000000000000000000001", "doc": 1, "weight": 0.5,
                "due__year": 2024, "doc__a": "x"}),
        FieldAccess::All,
    )
    .unwrap();
    let eq: Vec<_> = f.equalities().map(|(i, v)| (TYPED[i].name, v.to_json())).collect();
    // JSON equality is not that of its text (1 is 1.0), floats' not of
    // their bits, and a transform's value is not the field's.
    assert_eq!(eq, vec![("due", json!("2024-02-29")), ("key", json!("00000000-0000-0000-0000-000000000001"))]);
    let a = Filter::parse(TYPED, &json!({"due__year": 2024}), FieldAccess::All).unwrap();
    let b = Filter::parse(TYPED, &json!({"due__month": 2024}), FieldAccess::All).unwrap();
    assert_ne!(a.canonical_key(), b.canonical_key());
    let a = Filter::parse(TYPED, &json!({"doc__a__b": 1}), FieldAccess::All).unwrap();
    let b = Filter::parse(TYPED, &json!({"doc__a": 1}), FieldAccess::All).unwrap();
    assert_ne!(a.canonical_key(), b.canonical_key());
    assert_eq!(
        a.canonical_key(),
        Filter::parse(TYPED, &json!({"doc__a__b": 1}), FieldAccess::All).unwrap().canonical_key()
    );
}

#[test]
fn equalities_are_exact_non_null_non_float() {
    let f = parse(json!({
        "list_id": 7,
        "text": "milk",
        "done": true,
        "score": 1.5,
        "note": null,
        "id__in": [4],
        "created_by__in": [1, 2],
        "text__iexact": "x",
    }));
    let mut eq: Vec<_> = f.equalities().map(|(i, v)| (FIELDS[i].name, v.clone())).collect();
    eq.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        eq,
        vec![("done", Value::Bool(true)), ("id", Value::Int(4)), ("list_id", Value::Int(7)), ("text", "milk".into())]
    );
}
