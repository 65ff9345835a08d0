//! Property test: a filter's SQL selects exactly the rows its in-memory
//! evaluation accepts, on SQLite, or on PostgreSQL when `DATABASE_URL` names
//! a server (see `tests/common/database.rs`).
//!
//! The two evaluations serve the same subscription: the snapshot comes from
//! SQL, every later change is routed in memory. Any disagreement is a row a
//! client sees but never hears change (or hears about but never saw), so this
//! throws random rows and random filters at both and compares the id sets.
//! The generators lean on the cases that broke SwampDragon-style
//! implementations: text that folds differently per character, LIKE
//! metacharacters, empty strings, NULLs, numbers at the edges of their types,
//! and `or`, `and` and `not` nested around them (where NULL under a `not`
//! is the classic trap). The same runs through relations (belongs_to with
//! a nullable and a non-null key, two in a row, has_many), memory reading
//! contexts built by plain loops (`tests/common/parity_related.rs`).

#[path = "common/database.rs"]
mod database;
#[path = "common/filter_gen.rs"]
mod filter_gen;
#[path = "common/parity.rs"]
mod parity;
#[path = "common/parity_related.rs"]
mod parity_related;

use std::cell::RefCell;

use diesel::QueryableByName;
use filter_gen::{build_shape, shape, Target};
use parity::{memory_ids, plain, row, setup, sql_ids, Db, FIELDS};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::json;
use wyrmhole::filter::fold::fold_case;
use wyrmhole::filter::FieldAccess;
use wyrmhole::sql::{Bind, Dialect};
use wyrmhole::{FieldType, Filter, Value};

/// The property, run through proptest's runner directly (rather than the
/// `proptest!` macro) so one PostgreSQL database serves all cases.
#[test]
fn sql_and_memory_agree() {
    let db = RefCell::new(Db::open());
    let config = ProptestConfig { cases: 256, source_file: Some(file!()), ..ProptestConfig::default() };
    let rows = proptest::collection::vec(row(true), 0..12);
    let filters = proptest::collection::vec(shape(2), 1..=24);
    let outcome = TestRunner::new(config).run(&(rows, filters), |(mut rows, filters)| {
        let db = &mut *db.borrow_mut();
        setup(db, &mut rows);
        for shape in &filters {
            let json = build_shape(shape, &[Target { prefix: "", rows: &rows }]);
            let filter = Filter::parse(FIELDS, &json, FieldAccess::All)
                .unwrap_or_else(|e| panic!("generated filter {json} is invalid: {e:?}"));
            agree(db, &rows, &json, &filter)?;
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The property itself: `filter` (parsed from `json`) selects the same ids
/// in SQL as in memory over `rows`.
fn agree(db: &mut Db, rows: &[Vec<Value>], json: &serde_json::Value, filter: &Filter) -> Result<(), TestCaseError> {
    let in_sql = sql_ids(db, filter).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
    let in_memory = memory_ids(rows, filter);
    prop_assert_eq!(
        &in_sql,
        &in_memory,
        "filter {} as SQL {:?}",
        json,
        wyrmhole::sql::render(filter, db.dialect()).sql
    );
    Ok(())
}

/// The same property for a model with relations: keys through a
/// belongs_to with a nullable and a non-null key, two of them in a row,
/// and a has_many, mixed with own keys and nested in `or`, `and` and `not`.
/// Memory reads each item's context, built by plain loops in
/// `parity_related`.
#[test]
fn sql_and_memory_agree_through_relations() {
    let db = RefCell::new(Db::open());
    let config = ProptestConfig { cases: 128, source_file: Some(file!()), ..ProptestConfig::default() };
    let filters = proptest::collection::vec(shape(2), 1..=16);
    let outcome = TestRunner::new(config).run(&(parity_related::tables(), filters), |(tables, filters)| {
        let db = &mut *db.borrow_mut();
        parity_related::setup(db, &tables);
        let rows = tables.contexts();
        let targets = tables.targets();
        for shape in &filters {
            let json = build_shape(shape, &targets);
            let filter =
                Filter::parse_model(parity_related::items(), &json, FieldAccess::All, db.dialect().allows_nul())
                    .unwrap_or_else(|e| panic!("generated filter {json} is invalid: {e:?}"));
            agree(db, &rows, &json, &filter)?;
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Relation filters on tables small enough to know the answers: the same
/// child for keys of one object, separate ones across `and` entries, NULL
/// keys under `not`, the foreign key's own spellings.
#[test]
fn relation_cases_with_known_answers() {
    let row = |t: &str, b: i64, keys: &[Option<i64>]| {
        let mut row: Vec<Value> =
            FIELDS.iter().map(|f| if f.nullable { Value::Null } else { plain(f.ty.storage()) }).collect();
        row[2] = Value::Int(b);
        row[5] = Value::Text(t.into());
        row.extend(keys.iter().map(|k| k.map_or(Value::Null, Value::Int)));
        row
    };
    let numbered = |rows: Vec<Vec<Value>>| -> Vec<Vec<Value>> {
        rows.into_iter()
            .zip(1..)
            .map(|(mut r, id)| {
                r[0] = Value::Int(id);
                r
            })
            .collect()
    };
    let tables = parity_related::Tables {
        grands: numbered(vec![row("Ω", 1, &[])]),
        // The third parent is nobody's.
        parents: numbered(vec![row("éclair", 1, &[Some(1)]), row("ÉCLAIR", 2, &[None]), row("x", 3, &[Some(1)])]),
        // Parent, owner, boss (the fourth is its own boss).
        items: numbered(vec![
            row("", 10, &[Some(1), Some(2), None]),
            row("", 20, &[None, Some(1), Some(1)]),
            row("", 30, &[Some(2), Some(2), Some(1)]),
            row("", 40, &[None, Some(2), Some(4)]),
        ]),
        // The fourth child is nobody's.
        children: numbered(vec![
            row("a", 1, &[Some(1)]),
            row("b", 2, &[Some(1)]),
            row("a", 2, &[Some(3)]),
            row("a", 2, &[None]),
        ]),
    };
    let mut db = Db::open();
    parity_related::setup(&mut db, &tables);
    let rows = tables.contexts();
    let cases = [
        (json!({"children__t": "a", "children__b": 2}), vec![3]),
        (json!({"and": [{"children__t": "a"}, {"children__b": 2}]}), vec![1, 3]),
        (json!({"not": {"children__t": "a"}}), vec![2, 4]),
        (json!({"not": {"children__t": "a", "children__b": 1}}), vec![2, 3, 4]),
        (json!({"parent__t__iexact": "ÉCLAIR"}), vec![1, 3]),
        (json!({"parent__t": "éclair"}), vec![1]),
        (json!({"not": {"parent__b": 1}}), vec![2, 3, 4]),
        (json!({"parent__grand__t": "Ω"}), vec![1]),
        (json!({"owner__grand__t": "Ω"}), vec![2]),
        (json!({"owner__grand__isnull": true}), vec![1, 3, 4]),
        (json!({"parent__grand__isnull": false}), vec![1]),
        (json!({"parent__isnull": true}), vec![2, 4]),
        (json!({"parent": 2}), vec![3]),
        (json!({"parent__id__in": [1, 3]}), vec![1]),
        (json!({"owner__pk__gt": 1}), vec![1, 3, 4]),
        (json!({"children": 2}), vec![1]),
        (json!({"children__in": [3, 99]}), vec![3]),
        (json!({"children__in": [4, 99]}), vec![]),
        (json!({"children__id__gte": 1}), vec![1, 3]),
        (json!({"or": [{"parent__b": 2}, {"children__b__gt": 1}]}), vec![1, 3]),
        (json!({"parent__b": 1, "owner__b": 2}), vec![1]),
        (json!({"boss__b": 10}), vec![2, 3]),
        (json!({"boss": 4}), vec![4]),
        (json!({"reports__b__gte": 20}), vec![1, 4]),
        (json!({"reports__isnull": false}), vec![1, 4]),
        (json!({"not": {"reports__id__gt": 0}}), vec![2, 3]),
        (json!({"boss__b": 40, "reports__b": 40}), vec![4]),
        (json!({"or": [{"boss__isnull": true}, {"boss__b__gt": 20}]}), vec![1, 4]),
        (json!({"id__gt": 1, "children__t__in": ["a", "b"]}), vec![3]),
        (json!({"not": {"or": [{"parent__isnull": true}, {"children__b": 2}]}}), vec![]),
        // A missing related row counts as NULLs, as Django's LEFT JOIN does.
        (json!({"children__isnull": true}), vec![2, 4]),
        (json!({"parent__grand__b__isnull": true}), vec![2, 3, 4]),
        (json!({"not": {"children__isnull": false}}), vec![2, 4]),
        // A false condition on related rows: no row (SQL once rendered `AND ()`).
        (json!({"parent__a__in": [null]}), vec![]),
        (json!({"not": {"children__in": [], "children__t": "a"}}), vec![1, 2, 3, 4]),
    ];
    for (json, expected) in cases {
        let filter = Filter::parse_model(parity_related::items(), &json, FieldAccess::All, true).unwrap();
        assert_eq!(memory_ids(&rows, &filter), expected, "in memory: {json}");
        assert_eq!(sql_ids(&mut db, &filter).unwrap(), expected, "in SQL: {json}");
    }
}

/// Hand-picked cases the generators reach only by luck.
#[test]
fn known_hard_cases() {
    let text = |s: &str| {
        let mut row: Vec<Value> =
            FIELDS.iter().map(|f| if f.nullable { Value::Null } else { plain(f.ty.storage()) }).collect();
        row[5] = Value::Text(s.into());
        row
    };
    let mut rows = vec![
        text("éclair"),
        text("ÉCLAIR"),
        text("σς"),
        text("ΣΣ"),
        text("straße"),
        text("STRASSE"),
        text("100%"),
        text("100x"),
        text("a_c"),
        text("abc"),
        text("back\\slash"),
        text(""),
        text("nul\0after"),
        text("nul"),
        text("İı"),
        text("II"),
        text("ᾳ"),
        text("ᾼ"),
        text("ƛ"),
    ];
    let mut db = Db::open();
    if !db.dialect().allows_nul() {
        // Not storable there; the filters naming NUL are refused below.
        rows.retain(|row| !matches!(&row[5], Value::Text(t) if t.contains('\0')));
    }
    setup(&mut db, &mut rows);
    let filters = [
        json!({"t__iexact": "Éclair"}),
        json!({"t__iexact": "σΣ"}),
        json!({"t__iexact": "STRAßE"}),
        json!({"t__icontains": "SS"}),
        json!({"t__contains": "%"}),
        json!({"t__contains": "_"}),
        json!({"t__startswith": "a_"}),
        json!({"t__endswith": "0%"}),
        json!({"t__contains": "\\"}),
        json!({"t__contains": ""}),
        json!({"t__endswith": ""}),
        json!({"t__endswith": "after"}),
        json!({"t__startswith": "nul\0"}),
        json!({"t__iendswith": "\0AFTER"}),
        json!({"t__istartswith": "nul"}),
        json!({"t__icontains": "i"}),
        json!({"t__iexact": "İI"}),
        json!({"t": "ABC"}),
        json!({"t__gt": "a", "t__lt": "b"}),
        json!({"t__range": ["A", "Z"]}),
        json!({"t__in": ["ABC", "abc", ""]}),
        json!({"u__isnull": true, "t__startswith": "éc"}),
        json!({"t__iexact": "ᾳ"}),
        json!({"t__icontains": "ᾼ"}),
        json!({"t__iendswith": "Ƛ"}),
        // NOT of a lookup on a NULL column holds, as Django's exclude():
        // `u` is NULL in every row here.
        json!({"not": {"u": "x"}}),
        json!({"not": {"u__gt": ""}}),
        json!({"not": {"or": [{"u__icontains": "a"}, {"n__gt": 0}]}}),
        json!({"or": [{"u": null}, {"not": {"u__startswith": ""}}]}),
        json!({"not": {"not": {"u__contains": ""}}}),
        json!({"t__icontains": "s", "not": {"or": [{"t__iexact": "ss"}, {"and": [{"u__isnull": true}, {"t": ""}]}]}}),
    ];
    for json in filters {
        let filter = Filter::parse(FIELDS, &json, FieldAccess::All).unwrap();
        if !db.dialect().allows_nul() && json.to_string().contains("\\u0000") {
            let refused = wyrmhole::sql::parse_filter(parity::model_of(FIELDS), &json, FieldAccess::All, db.dialect())
                .unwrap_err();
            assert!(refused.summary().contains("NUL character"), "{json}: {refused:?}");
            continue;
        }
        assert_eq!(sql_ids(&mut db, &filter).unwrap(), memory_ids(&rows, &filter), "{json}");
    }
}

#[derive(QueryableByName, Debug)]
struct Folded {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    code: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    folded: String,
}

/// `wyrm_upper` in SQL is `fold_case`, for every character alone (on
/// PostgreSQL, each character takes the branch of `wyrm_upper` that its own
/// text would) and in runs of consecutive characters.
#[test]
fn wyrm_upper_is_fold_case_for_every_character() {
    let mut db = Db::open();
    let all: Vec<char> =
        (0..=char::MAX as u32).filter_map(char::from_u32).filter(|&c| c != '\0' || db.dialect().allows_nul()).collect();
    if db.dialect() == Dialect::Postgres {
        let changed: Vec<Folded> = db
            .load(
                "SELECT g AS code, wyrm_upper(chr(g)) AS folded FROM generate_series(1, 1114111) g \
                 WHERE (g < 55296 OR g > 57343) AND wyrm_upper(chr(g)) COLLATE \"C\" <> chr(g)",
                &[],
            )
            .unwrap();
        let changed: std::collections::HashMap<u32, String> =
            changed.into_iter().map(|f| (f.code as u32, f.folded)).collect();
        for &c in &all {
            let expected = fold_case(c.encode_utf8(&mut [0; 4])).into_owned();
            let got = changed.get(&(c as u32)).cloned().unwrap_or_else(|| c.to_string());
            assert_eq!(got, expected, "wyrm_upper(U+{:04X})", c as u32);
        }
    }
    #[derive(QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        folded: String,
    }
    for chunk in all.chunks(509) {
        let text: String = chunk.iter().collect();
        let bind = Bind { value: Value::Text(text.clone()), ty: FieldType::Text };
        let got: Vec<Text> = db.load("SELECT wyrm_upper(?) AS folded", &[bind]).unwrap();
        assert_eq!(got[0].folded, fold_case(&text), "from U+{:04X}", chunk[0] as u32);
    }
}

#[test]
fn test_database_urls_keep_everything_but_the_name() {
    use database::with_database;
    assert_eq!(with_database("postgres://u@h:5/postgres", "x"), "postgres://u@h:5/x");
    assert_eq!(with_database("postgresql://h/db?sslmode=disable", "x"), "postgresql://h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    assert_eq!(with_database("postgres://h?a=b", "x"), "postgres://h/x?a=b");
}
