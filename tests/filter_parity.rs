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
//! is the classic trap).

#[path = "common/database.rs"]
mod database;
#[path = "common/parity.rs"]
mod parity;

use std::cell::RefCell;

use diesel::QueryableByName;
use parity::{memory_ids, row, setup, sql_ids, Db, FIELDS};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestRunner;
use serde_json::json;
use wyrmhole::filter::fold::fold_case;
use wyrmhole::filter::{FieldAccess, Lookup};
use wyrmhole::sql::{Bind, Dialect};
use wyrmhole::{FieldType, Filter, Value};

/// Where one operand comes from: a fresh value, or an existing row's value
/// (so filters match sometimes), cut and case-changed for text lookups.
#[derive(Debug, Clone)]
struct Pick {
    fresh: Vec<Value>,
    from_row: bool,
    row: Index,
    start: Index,
    len: Index,
    case: u8,
    as_int: bool,
}

#[derive(Debug, Clone)]
struct PredicateSpec {
    field: usize,
    lookup: Index,
    picks: Vec<Pick>,
    null: bool,
    spelled_exact: bool,
}

fn pick() -> impl Strategy<Value = Pick> {
    (row(false), proptest::bool::weighted(0.75), any::<Index>(), any::<Index>(), any::<Index>(), 0u8..4, any::<bool>())
        .prop_map(|(fresh, from_row, row, start, len, case, as_int)| Pick {
            fresh,
            from_row,
            row,
            start,
            len,
            case,
            as_int,
        })
}

fn predicate_spec() -> impl Strategy<Value = PredicateSpec> {
    // Text fields have most lookups and most of the ways to go wrong.
    let field = prop_oneof![1 => 0..FIELDS.len(), 1 => select(&[5usize, 6][..])];
    (field, any::<Index>(), proptest::collection::vec(pick(), 1..=4), proptest::bool::weighted(0.1), any::<bool>())
        .prop_map(|(field, lookup, picks, null, spelled_exact)| PredicateSpec {
            field,
            lookup,
            picks,
            null,
            spelled_exact,
        })
}

impl Pick {
    fn value(&self, field: usize, rows: &[Vec<Value>]) -> Value {
        if self.from_row && !rows.is_empty() {
            rows[self.row.index(rows.len())][field].clone()
        } else {
            self.fresh[field].clone()
        }
    }

    fn non_null(&self, field: usize, rows: &[Vec<Value>]) -> Value {
        match self.value(field, rows) {
            Value::Null => match &self.fresh[field] {
                Value::Null => match FIELDS[field].ty {
                    FieldType::Bool => Value::Bool(false),
                    FieldType::F64 => Value::Float(0.0),
                    FieldType::Text => Value::Text(String::new()),
                    _ => Value::Int(0),
                },
                v => v.clone(),
            },
            v => v,
        }
    }

    /// A piece of a text value, with its case changed.
    fn needle(&self, field: usize, rows: &[Vec<Value>]) -> String {
        let Value::Text(full) = self.non_null(field, rows) else { unreachable!("text field") };
        let chars: Vec<char> = full.chars().collect();
        let start = self.start.index(chars.len() + 1);
        let len = self.len.index(chars.len() - start + 1);
        let piece: String = chars[start..start + len].iter().collect();
        match self.case {
            0 => piece,
            1 => piece.to_lowercase(),
            2 => piece.to_uppercase(),
            _ => piece.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c } else { c.to_ascii_uppercase() }).collect(),
        }
    }

    fn json(&self, value: &Value) -> serde_json::Value {
        match value {
            Value::Float(f) if f.is_infinite() => json!(f64::MAX.copysign(*f)),
            // Integral floats are sometimes sent as JSON integers, as clients do.
            Value::Float(f) if self.as_int && f.fract() == 0.0 && f.abs() < 9e15 => json!(*f as i64),
            v => v.to_json(),
        }
    }
}

/// The JSON filter a spec describes, given the rows in the table.
fn build(specs: &[PredicateSpec], rows: &[Vec<Value>]) -> serde_json::Value {
    let mut filter = serde_json::Map::new();
    for spec in specs {
        let f = &FIELDS[spec.field];
        let lookups: Vec<Lookup> = Lookup::ALL.into_iter().filter(|l| l.applies_to(f.ty)).collect();
        let lookup = lookups[spec.lookup.index(lookups.len())];
        let first = &spec.picks[0];
        let second = &spec.picks[1 % spec.picks.len()];
        let operand = match lookup {
            Lookup::Exact if spec.null => json!(null),
            Lookup::Exact => first.json(&first.value(spec.field, rows)),
            Lookup::IExact if spec.null => json!(null),
            Lookup::IExact
            | Lookup::Contains
            | Lookup::IContains
            | Lookup::StartsWith
            | Lookup::IStartsWith
            | Lookup::EndsWith
            | Lookup::IEndsWith => json!(first.needle(spec.field, rows)),
            Lookup::In => serde_json::Value::Array(
                spec.picks.iter().skip(usize::from(spec.null)).map(|p| p.json(&p.non_null(spec.field, rows))).collect(),
            ),
            Lookup::Gt | Lookup::Gte | Lookup::Lt | Lookup::Lte => first.json(&first.non_null(spec.field, rows)),
            Lookup::Range => {
                json!([first.json(&first.non_null(spec.field, rows)), second.json(&second.non_null(spec.field, rows))])
            }
            Lookup::IsNull => json!(first.as_int),
        };
        let key = if lookup == Lookup::Exact && !spec.spelled_exact {
            f.name.to_owned()
        } else {
            format!("{}__{}", f.name, lookup.name())
        };
        filter.insert(key, operand);
    }
    serde_json::Value::Object(filter)
}

/// A filter's shape: plain keys, and `or`, `and` and `not` nested in it
/// (to depth 3), which `build_shape` fills in against the rows.
#[derive(Debug, Clone)]
enum Shape {
    Keys(Vec<PredicateSpec>),
    /// `{"or": [...]}` or `{"and": [...]}`, alongside plain keys.
    List {
        or: bool,
        keys: Vec<PredicateSpec>,
        items: Vec<Shape>,
    },
    /// `{"not": {...}}`, alongside plain keys.
    Not {
        keys: Vec<PredicateSpec>,
        inner: Box<Shape>,
    },
}

fn shape() -> impl Strategy<Value = Shape> {
    let keys = |min| proptest::collection::vec(predicate_spec(), min..=2);
    keys(1).prop_map(Shape::Keys).prop_recursive(3, 12, 3, move |inner| {
        prop_oneof![
            (any::<bool>(), keys(0), proptest::collection::vec(inner.clone(), 1..=3))
                .prop_map(|(or, keys, items)| Shape::List { or, keys, items }),
            (keys(0), inner).prop_map(|(keys, inner)| Shape::Not { keys, inner: Box::new(inner) }),
        ]
    })
}

/// The JSON filter a shape describes. Its plain keys are built first, so a
/// generated `or`/`and`/`not` key is never overwritten by a plain one.
fn build_shape(shape: &Shape, rows: &[Vec<Value>]) -> serde_json::Value {
    match shape {
        Shape::Keys(specs) => build(specs, rows),
        Shape::List { or, keys, items } => {
            let mut json = build(keys, rows);
            let items = items.iter().map(|item| build_shape(item, rows)).collect();
            json[if *or { "or" } else { "and" }] = serde_json::Value::Array(items);
            json
        }
        Shape::Not { keys, inner } => {
            let mut json = build(keys, rows);
            json["not"] = build_shape(inner, rows);
            json
        }
    }
}

/// The property, run through proptest's runner directly (rather than the
/// `proptest!` macro) so one PostgreSQL database serves all cases.
#[test]
fn sql_and_memory_agree() {
    let db = RefCell::new(Db::open());
    let config = ProptestConfig { cases: 256, source_file: Some(file!()), ..ProptestConfig::default() };
    let rows = proptest::collection::vec(row(true), 0..12);
    let filters = proptest::collection::vec(shape(), 1..=24);
    let outcome = TestRunner::new(config).run(&(rows, filters), |(mut rows, filters)| {
        let db = &mut *db.borrow_mut();
        setup(db, &mut rows);
        for shape in &filters {
            let json = build_shape(shape, &rows);
            let filter = Filter::parse(FIELDS, &json, FieldAccess::All)
                .unwrap_or_else(|e| panic!("generated filter {json} is invalid: {e:?}"));
            let in_sql = sql_ids(db, &filter).map_err(TestCaseError::fail)?;
            let in_memory = memory_ids(&rows, &filter);
            prop_assert_eq!(
                &in_sql,
                &in_memory,
                "filter {} as SQL {:?}",
                json,
                wyrmhole::sql::render(&filter, db.dialect()).sql
            );
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Hand-picked cases the generators reach only by luck.
#[test]
fn known_hard_cases() {
    let text = |s: &str| {
        let mut row: Vec<Value> = FIELDS
            .iter()
            .map(|f| match (f.nullable, f.ty) {
                (true, _) => Value::Null,
                (false, FieldType::Bool) => Value::Bool(false),
                (false, FieldType::F64) => Value::Float(0.0),
                (false, FieldType::Text) => Value::Text(String::new()),
                (false, _) => Value::Int(0),
            })
            .collect();
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
            let refused = wyrmhole::sql::parse_filter(FIELDS, &json, FieldAccess::All, db.dialect()).unwrap_err();
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
