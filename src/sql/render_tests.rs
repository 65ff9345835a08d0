//! Unit tests of `crate::sql::render`.

use super::*;
use crate::filter::tests::FIELDS;
use crate::filter::FieldAccess;
use serde_json::json;

fn sql(filter: serde_json::Value) -> SqlFragment {
    render(&Filter::parse(FIELDS, &filter, FieldAccess::All).unwrap(), Dialect::Sqlite)
}

#[test]
fn all_and_nothing() {
    assert_eq!(render(&Filter::all(), Dialect::Sqlite), SqlFragment { sql: "1 = 1".into(), binds: vec![] });
    assert_eq!(render(&Filter::nothing(), Dialect::Sqlite), SqlFragment { sql: "1 = 0".into(), binds: vec![] });
    assert_eq!(sql(json!({"list_id__in": [], "text": "x"})).sql, "1 = 0");
}

#[test]
fn renders_each_lookup() {
    let cases = [
        (json!({"list_id": 3}), "\"list_id\" = ?"),
        (json!({"text": "a"}), "\"text\" COLLATE BINARY = ?"),
        (json!({"note": null}), "\"note\" IS NULL"),
        (json!({"note__isnull": false}), "\"note\" IS NOT NULL"),
        (json!({"text__iexact": "a"}), "wyrm_upper(\"text\") = ?"),
        (json!({"text__contains": "a"}), "instr(\"text\", ?) > 0"),
        (json!({"text__icontains": "a"}), "instr(wyrm_upper(\"text\"), ?) > 0"),
        (json!({"id__in": [1, 2]}), "\"id\" IN (?, ?)"),
        (json!({"score__gte": 1}), "\"score\" >= ?"),
        (json!({"text__range": ["a", "b"]}), "\"text\" COLLATE BINARY BETWEEN ? AND ?"),
        (json!({"text__startswith": ""}), "\"text\" IS NOT NULL"),
        (
            json!({"text__istartswith": "a"}),
            "substr(CAST(wyrm_upper(\"text\") AS BLOB), 1, length(CAST(? AS BLOB))) = CAST(? AS BLOB)",
        ),
        (json!({"text__endswith": "a"}), "substr(CAST(\"text\" AS BLOB), -length(CAST(? AS BLOB))) = CAST(? AS BLOB)"),
    ];
    for (filter, expected) in cases {
        assert_eq!(sql(filter.clone()).sql, expected, "{filter}");
    }
}

#[test]
fn renders_each_lookup_for_postgres() {
    let pg = |filter: serde_json::Value| {
        render(&Filter::parse(FIELDS, &filter, FieldAccess::All).unwrap(), Dialect::Postgres).sql
    };
    let cases = [
        (json!({"list_id": 3}), "\"list_id\" = ?"),
        (json!({"done": true}), "\"done\" = ?"),
        (json!({"text": "a"}), "\"text\" COLLATE \"C\" = ?"),
        (json!({"text__lt": "a"}), "\"text\" COLLATE \"C\" < ?"),
        (json!({"note": null}), "\"note\" IS NULL"),
        (json!({"text__iexact": "a"}), "wyrm_upper(\"text\") COLLATE \"C\" = ?"),
        (json!({"text__contains": "a"}), "strpos(\"text\" COLLATE \"C\", ?) > 0"),
        (json!({"text__icontains": "a"}), "strpos(wyrm_upper(\"text\") COLLATE \"C\", ?) > 0"),
        (json!({"text__startswith": ""}), "starts_with(\"text\" COLLATE \"C\", ?)"),
        (json!({"text__istartswith": "a"}), "starts_with(wyrm_upper(\"text\") COLLATE \"C\", ?)"),
        (json!({"text__endswith": "a"}), "right(\"text\", char_length(?)) COLLATE \"C\" = ?"),
        (json!({"text__in": ["a", "b"]}), "\"text\" COLLATE \"C\" IN (?, ?)"),
    ];
    for (filter, expected) in cases {
        assert_eq!(pg(filter.clone()), expected, "{filter}");
    }
}

#[test]
fn renders_or_and_not() {
    let cases = [
        (json!({"or": [{"list_id": 1}, {"done": true}]}), "(\"list_id\" = ?) OR (\"done\" = ?)"),
        (json!({"not": {"note": "x"}}), "(\"note\" COLLATE BINARY = ?) IS NOT TRUE"),
        (
            json!({"id": 1, "not": {"or": [{"note": "x"}, {"text": "y", "done": true}]}}),
            "(\"id\" = ?) AND (((\"note\" COLLATE BINARY = ?) OR ((\"done\" = ?) AND (\"text\" COLLATE BINARY = ?))) IS NOT TRUE)",
        ),
        (json!({"or": [{"id__in": []}, {"id__in": []}]}), "1 = 0"),
        (json!({"not": {"id__in": []}}), "1 = 1"),
    ];
    for (filter, expected) in cases {
        let fragment = sql(filter.clone());
        assert_eq!(fragment.sql, expected, "{filter}");
        assert_eq!(fragment.sql.matches('?').count(), fragment.binds.len());
    }
}

#[test]
fn binds_typed_and_folded_values() {
    let fragment = sql(json!({"list_id": 3, "text__icontains": "milk", "done": true}));
    assert_eq!(fragment.sql.matches('?').count(), fragment.binds.len());
    assert!(fragment.sql.starts_with('(') && fragment.sql.contains(") AND ("));
    let mut binds: Vec<_> = fragment.binds.into_iter().map(|b| (b.value, b.ty)).collect();
    binds.sort_by_key(|(_, ty)| ty.storage() as u8);
    assert_eq!(
        binds,
        vec![
            (Value::Bool(true), FieldType::Bool),
            (Value::Int(3), FieldType::I32),
            (Value::Text("MILK".into()), FieldType::Text),
        ]
    );
}
