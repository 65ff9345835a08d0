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

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::QueryableByName;
use parity::{memory_ids, plain, row, setup, sql_ids, Db, FIELDS, JSON_KEYS, JSON_SCALARS};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestRunner;
use serde_json::json;
use wyrmhole::filter::fold::fold_case;
use wyrmhole::filter::{FieldAccess, Lookup};
use wyrmhole::sql::{Bind, Dialect};
use wyrmhole::{FieldType, Filter, Storage, Value};

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
    /// Below 4 on a date field: a transform; below 6 on JSON: a key path.
    shape: u8,
    /// The transform, or the keys of the path.
    names: Vec<Index>,
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
    (
        field,
        any::<Index>(),
        proptest::collection::vec(pick(), 1..=4),
        proptest::bool::weighted(0.1),
        any::<bool>(),
        0u8..10,
        proptest::collection::vec(any::<Index>(), 1..=2),
    )
        .prop_map(|(field, lookup, picks, null, spelled_exact, shape, names)| PredicateSpec {
            field,
            lookup,
            picks,
            null,
            spelled_exact,
            shape,
            names,
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
                Value::Null => plain(FIELDS[field].ty.storage()),
                v => v.clone(),
            },
            v => v,
        }
    }

    /// A piece of a text value, with its case changed.
    fn needle(&self, field: usize, rows: &[Vec<Value>]) -> String {
        let full = match self.non_null(field, rows) {
            Value::Text(full) => full,
            // Text lookups on a UUID read its hyphenated lowercase text.
            Value::Uuid(u) => u.hyphenated().to_string(),
            other => unreachable!("text lookups on {other:?}"),
        };
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

/// Django's date transforms, computed here independently of wyrmhole's.
fn transformed(name: &str, value: &Value) -> Value {
    let t: NaiveDateTime = match value {
        Value::Date(d) => (*d).into(),
        Value::DateTime(t) => *t,
        Value::DateTimeUtc(t) => t.naive_utc(),
        _ => return Value::Null,
    };
    let n = match name {
        "date" => return Value::Date(t.date()),
        "year" => t.year() as u32,
        "month" => t.month(),
        "day" => t.day(),
        "week_day" => t.weekday().num_days_from_sunday() + 1,
        "quarter" => t.month().div_ceil(3),
        "hour" => t.hour(),
        _ => unreachable!("{name}"),
    };
    Value::Int(n.into())
}

/// The value at a key path of a JSON row value, if it is a scalar.
fn at_path(value: &Value, path: &[&str]) -> Option<serde_json::Value> {
    let Value::Json(j) = value else { return None };
    let mut j: &serde_json::Value = j;
    for key in path {
        j = j.as_object()?.get(*key)?;
    }
    (!j.is_object() && !j.is_array()).then(|| j.clone())
}

/// The JSON filter a spec describes, given the rows in the table.
fn build(specs: &[PredicateSpec], rows: &[Vec<Value>]) -> serde_json::Value {
    let mut filter = serde_json::Map::new();
    for spec in specs {
        let f = &FIELDS[spec.field];
        let storage = f.ty.storage();
        let timed = matches!(storage, Storage::DateTime | Storage::DateTimeUtc);
        let transforms: &[&str] = if timed {
            &["year", "month", "day", "week_day", "quarter", "hour", "date"]
        } else {
            &["year", "month", "day", "week_day", "quarter"]
        };
        let transform =
            (storage.is_temporal() && spec.shape < 4).then(|| transforms[spec.names[0].index(transforms.len())]);
        let path: Option<Vec<&str>> = (storage == Storage::Json && spec.shape < 6)
            .then(|| spec.names.iter().map(|i| JSON_KEYS[i.index(JSON_KEYS.len())]).collect());
        // The type the lookup sees, and each pick's value of it.
        let ty = match transform {
            Some("date") => Storage::Date,
            Some(_) => Storage::I32,
            None => storage,
        };
        let value = |p: &Pick| match transform {
            Some(name) => transformed(name, &p.non_null(spec.field, rows)),
            None => p.non_null(spec.field, rows),
        };
        let lookups: Vec<Lookup> = Lookup::ALL.into_iter().filter(|l| l.applies_to(ty)).collect();
        let lookup = lookups[spec.lookup.index(lookups.len())];
        let first = &spec.picks[0];
        let second = &spec.picks[1 % spec.picks.len()];
        let operand = match lookup {
            _ if ty == Storage::Json => {
                let keys = path.clone().unwrap_or_default();
                match lookup {
                    // Keys, and strings that are values (PostgreSQL's `?`
                    // also finds a string in a list, or the string itself).
                    Lookup::HasKey => json!(["theme", "a", "b", "a b", "dark", ""][first.len.index(6)]),
                    Lookup::IsNull => json!(first.as_int),
                    // Scalars at the path in rows, or from the pool; nulls are skipped.
                    Lookup::In => serde_json::Value::Array(
                        spec.picks
                            .iter()
                            .map(|p| match at_path(&p.value(spec.field, rows), &keys) {
                                Some(scalar) if p.case < 3 => scalar,
                                _ => serde_json::from_str(JSON_SCALARS[p.start.index(JSON_SCALARS.len())]).unwrap(),
                            })
                            .collect(),
                    ),
                    _ => match at_path(&first.value(spec.field, rows), &keys) {
                        Some(scalar) if !spec.null && first.case < 2 => scalar,
                        _ => serde_json::from_str(JSON_SCALARS[first.start.index(JSON_SCALARS.len())]).unwrap(),
                    },
                }
            }
            Lookup::Exact if spec.null => json!(null),
            Lookup::Exact if transform.is_some() => first.json(&value(first)),
            Lookup::Exact => first.json(&first.value(spec.field, rows)),
            Lookup::IExact if spec.null => json!(null),
            Lookup::IExact
            | Lookup::Contains
            | Lookup::IContains
            | Lookup::StartsWith
            | Lookup::IStartsWith
            | Lookup::EndsWith
            | Lookup::IEndsWith => json!(first.needle(spec.field, rows)),
            // Null items are ignored, as Django does.
            Lookup::In => serde_json::Value::Array(
                spec.picks
                    .iter()
                    .enumerate()
                    .map(|(i, p)| if spec.null && i == 0 { json!(null) } else { p.json(&value(p)) })
                    .collect(),
            ),
            Lookup::Gt | Lookup::Gte | Lookup::Lt | Lookup::Lte => first.json(&value(first)),
            Lookup::Range => json!([first.json(&value(first)), second.json(&value(second))]),
            Lookup::IsNull => json!(first.as_int),
            Lookup::HasKey => unreachable!("JSON only"),
        };
        let mut key = f.name.to_owned();
        for part in transform.iter().chain(path.iter().flatten()) {
            key = format!("{key}__{part}");
        }
        if lookup != Lookup::Exact || spec.spelled_exact {
            key = format!("{key}__{}", lookup.name());
        }
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
