//! Property test: a filter's SQL (run by SQLite) selects exactly the rows its
//! in-memory evaluation accepts.
//!
//! The two evaluations serve the same subscription: the snapshot comes from
//! SQL, every later change is routed in memory. Any disagreement is a row a
//! client sees but never hears change (or hears about but never saw), so this
//! throws random rows and random filters at both and compares the id sets.
//! The generators lean on the cases that broke SwampDragon-style
//! implementations: text that folds differently per character, LIKE
//! metacharacters, empty strings, NULLs, numbers at the edges of their types.

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::json;
use wyrmhole::filter::fold::register_sqlite_functions;
use wyrmhole::filter::sql::{bind_all, quote_ident, Bind, Dialect};
use wyrmhole::filter::{FieldAccess, Lookup};
use wyrmhole::{FieldDef, FieldType, Filter, Value};

const fn field(name: &'static str, column: &'static str, ty: FieldType, nullable: bool) -> FieldDef {
    FieldDef { name, column, ty, nullable, published: true, updatable: true, primary_key: false, relation: None }
}

/// One field of every type, non-nullable and nullable. `u` lives in a column
/// whose name needs quoting.
static FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, updatable: false, ..field("id", "id", FieldType::I32, false) },
    field("a", "a", FieldType::I16, false),
    field("b", "b", FieldType::I32, false),
    field("c", "c", FieldType::I64, false),
    field("d", "d", FieldType::F64, false),
    field("t", "t", FieldType::Text, false),
    field("u", "u\"q", FieldType::Text, true),
    field("flag", "flag", FieldType::Bool, false),
    field("n", "n", FieldType::I32, true),
    field("e", "e", FieldType::F64, true),
    field("g", "g", FieldType::I64, true),
    field("m", "m", FieldType::Bool, true),
];

// `t` is declared NOCASE on purpose: filters must compare text by bytes
// whatever collation the schema chose.
const SCHEMA: &str = r#"CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    a SMALLINT NOT NULL,
    b INTEGER NOT NULL,
    c BIGINT NOT NULL,
    d DOUBLE NOT NULL,
    t TEXT NOT NULL COLLATE NOCASE,
    "u""q" TEXT,
    flag BOOLEAN NOT NULL,
    n INTEGER,
    e DOUBLE,
    g BIGINT,
    m BOOLEAN
)"#;

/// Characters that fold in every interesting way: ASCII, Latin-1 with
/// single-char uppercases, the three Greek sigmas, `ß`/`ẞ` and `ﬃ` (whose
/// uppercase is several characters, so folding keeps them), Turkish dotted
/// and dotless i, a titlecase digraph, an astral emoji, LIKE's `%` `_` and
/// escape `\`, quotes, and NUL.
///
/// NUL is included deliberately: SQLite's text `substr()` and `length()`
/// stop at the first NUL, so a translation built on them would disagree with
/// Rust's `str` methods. The SQL avoids them (blob slicing, `instr`, `=`
/// and `wyrm_upper` all see the whole value), and this keeps it honest.
const ALPHABET: &[char] = &[
    'a', 'A', 'b', 'B', 'i', 'I', 's', 'S', 'é', 'É', 'σ', 'ς', 'Σ', 'ß', 'ẞ', 'İ', 'ı', 'ǅ', 'ǆ', 'Ǆ', 'ﬃ', '😀', '%',
    '_', '\\', ' ', '\'', '"', '\0',
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        8 => proptest::collection::vec(select(ALPHABET), 0..6).prop_map(|cs| cs.into_iter().collect()),
        1 => Just(String::new()),
        1 => any::<String>(),
    ]
    .boxed()
}

fn int(min: i64, max: i64) -> BoxedStrategy<i64> {
    prop_oneof![
        4 => -3i64..=3,
        1 => Just(min),
        1 => Just(max),
        1 => Just(min + 1),
        1 => Just(max - 1),
        2 => min..=max,
    ]
    .boxed()
}

/// Finite floats; rows may also hold infinities (filters cannot name them,
/// JSON has no infinity).
fn float(infinite: bool) -> BoxedStrategy<f64> {
    let finite = prop_oneof![
        6 => (-3i8..=3).prop_map(f64::from),
        2 => Just(0.0),
        2 => Just(-0.0),
        1 => Just(0.5),
        1 => Just(-2.5),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(-5e-324),
        1 => Just(1e300),
        // Past 2^53 floats skip integers; at ±2^63 they leave i64's range.
        1 => Just((1u64 << 53) as f64 + 2.0),
        1 => Just(i64::MAX as f64),
        1 => Just(i64::MIN as f64),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ];
    if infinite {
        prop_oneof![12 => finite, 1 => Just(f64::INFINITY), 1 => Just(f64::NEG_INFINITY)].boxed()
    } else {
        finite.boxed()
    }
}

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    proptest::option::weighted(0.7, s).prop_map(|v| v.unwrap_or(Value::Null)).boxed()
}

/// A value for a field of this type.
fn value(ty: FieldType, nullable_field: bool, infinite: bool) -> BoxedStrategy<Value> {
    let s = match ty {
        FieldType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldType::I16 => int(i16::MIN.into(), i16::MAX.into()).prop_map(Value::Int).boxed(),
        FieldType::I32 => int(i32::MIN.into(), i32::MAX.into()).prop_map(Value::Int).boxed(),
        FieldType::I64 => int(i64::MIN, i64::MAX).prop_map(Value::Int).boxed(),
        FieldType::F64 => float(infinite).prop_map(Value::Float).boxed(),
        FieldType::Text => text().prop_map(Value::Text).boxed(),
    };
    if nullable_field {
        nullable(s)
    } else {
        s
    }
}

/// A row's values in field order; the id is filled in at insert.
fn row(infinite: bool) -> BoxedStrategy<Vec<Value>> {
    FIELDS
        .iter()
        .map(|f| if f.primary_key { Just(Value::Int(0)).boxed() } else { value(f.ty, f.nullable, infinite) })
        .collect::<Vec<_>>()
        .boxed()
}

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

fn bind(value: &Value, field: &FieldDef) -> Bind {
    Bind { value: value.clone(), ty: field.ty }
}

#[derive(QueryableByName, Debug)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    id: i32,
}

/// Every column read back with its own type, to check the rows went in
/// as generated (a bind bug there would hide a bind bug in filters).
#[derive(QueryableByName, Debug)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    a: i16,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    b: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    c: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    d: f64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    u: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    flag: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    n: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    e: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    g: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    m: Option<bool>,
}

impl Stored {
    fn values(self) -> Vec<Value> {
        let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
        vec![
            self.a.into(),
            self.b.into(),
            self.c.into(),
            self.d.into(),
            self.t.into(),
            opt(self.u.map(Value::from)),
            self.flag.into(),
            opt(self.n.map(Value::from)),
            opt(self.e.map(Value::from)),
            opt(self.g.map(Value::from)),
            opt(self.m.map(Value::from)),
        ]
    }
}

fn setup(rows: &mut [Vec<Value>]) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    register_sqlite_functions(&mut conn).unwrap();
    conn.batch_execute(SCHEMA).unwrap();
    let columns: Vec<String> = FIELDS.iter().map(|f| quote_ident(f.column)).collect();
    let insert = format!("INSERT INTO items ({}) VALUES ({})", columns.join(", "), vec!["?"; FIELDS.len()].join(", "));
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = Value::Int(i as i64 + 1);
        let binds: Vec<Bind> = row.iter().zip(FIELDS).map(|(v, f)| bind(v, f)).collect();
        bind_all(diesel::sql_query(&insert).into_boxed(), &binds).execute(&mut conn).unwrap();
    }
    let select =
        format!("SELECT {} FROM items ORDER BY id", columns[1..].join(", ").replace("\"u\"\"q\"", "\"u\"\"q\" AS u"));
    let stored: Vec<Stored> = diesel::sql_query(select).load(&mut conn).unwrap();
    assert_eq!(stored.len(), rows.len());
    for (stored, row) in stored.into_iter().zip(rows.iter()) {
        // `==` on Value compares floats numerically: SQLite keeps 0.0 for -0.0.
        assert_eq!(stored.values(), row[1..], "row did not round-trip");
    }
    conn
}

fn sql_ids(conn: &mut SqliteConnection, filter: &Filter) -> Result<Vec<i64>, String> {
    let fragment = filter.to_sql(Dialect::Sqlite);
    let sql = format!("SELECT id FROM items WHERE {} ORDER BY id", fragment.sql);
    let ids: Vec<Id> = bind_all(diesel::sql_query(&sql).into_boxed(), &fragment.binds)
        .load(conn)
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(ids.into_iter().map(|r| i64::from(r.id)).collect())
}

fn memory_ids(rows: &[Vec<Value>], filter: &Filter) -> Vec<i64> {
    rows.iter()
        .filter(|row| filter.matches(row))
        .map(|row| match row[0] {
            Value::Int(id) => id,
            _ => unreachable!("ids are integers"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sql_and_memory_agree(
        mut rows in proptest::collection::vec(row(true), 0..12),
        filters in proptest::collection::vec(proptest::collection::vec(predicate_spec(), 1..=3), 1..=24),
    ) {
        let mut conn = setup(&mut rows);
        for specs in &filters {
            let json = build(specs, &rows);
            let filter = Filter::parse(FIELDS, &json, FieldAccess::All)
                .unwrap_or_else(|e| panic!("generated filter {json} is invalid: {e:?}"));
            let in_sql = sql_ids(&mut conn, &filter).map_err(TestCaseError::fail)?;
            let in_memory = memory_ids(&rows, &filter);
            prop_assert_eq!(
                &in_sql,
                &in_memory,
                "filter {} as SQL {:?}",
                json,
                filter.to_sql(Dialect::Sqlite).sql
            );
        }
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
    ];
    let mut conn = setup(&mut rows);
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
    ];
    for json in filters {
        let filter = Filter::parse(FIELDS, &json, FieldAccess::All).unwrap();
        assert_eq!(sql_ids(&mut conn, &filter).unwrap(), memory_ids(&rows, &filter), "{json}");
    }
}
