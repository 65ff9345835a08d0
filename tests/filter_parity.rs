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
//! metacharacters, empty strings, NULLs, numbers at the edges of their types.

#[path = "common/database.rs"]
mod database;

use std::cell::RefCell;

use database::Backend;
use diesel::connection::SimpleConnection;
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestRunner;
use serde_json::json;
use wyrmhole::filter::fold::fold_case;
use wyrmhole::filter::{FieldAccess, Lookup};
use wyrmhole::sql::fold::register_sqlite_functions;
use wyrmhole::sql::{bind_all, quote_ident, Bind, Dialect};
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
const SCHEMA_SQLITE: &str = r#"CREATE TABLE items (
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

/// The same on PostgreSQL, where `t` gets a case-insensitive,
/// nondeterministic ICU collation (under which PostgreSQL even refuses
/// substring searches) and `u` a linguistic one that sorts `a` < `B`.
const SCHEMA_POSTGRES: &str = r#"DROP TABLE IF EXISTS items;
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    a SMALLINT NOT NULL,
    b INTEGER NOT NULL,
    c BIGINT NOT NULL,
    d DOUBLE PRECISION NOT NULL,
    t TEXT NOT NULL COLLATE wyrm_nocase,
    "u""q" TEXT COLLATE "und-x-icu",
    flag BOOLEAN NOT NULL,
    n INTEGER,
    e DOUBLE PRECISION,
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
/// PostgreSQL's text cannot hold NUL (wyrmhole refuses it there, see
/// `nul_is_refused_on_postgres`), so its runs generate text without it.
///
/// `ᾳ` and `ᾼ` fold to themselves (their full uppercase is two characters)
/// while glibc's `upper()` maps `ᾳ` to `ᾼ`; `ƛ` has an uppercase only since
/// Unicode 16: the characters where PostgreSQL's `upper()` is not
/// `fold_case`, which `wyrm_upper` must get right all the same.
const ALPHABET: &[char] = &[
    'a', 'A', 'b', 'B', 'i', 'I', 's', 'S', 'é', 'É', 'σ', 'ς', 'Σ', 'ß', 'ẞ', 'İ', 'ı', 'ǅ', 'ǆ', 'Ǆ', 'ﬃ', '😀', '%',
    '_', '\\', ' ', '\'', '"', '\0', 'ᾳ', 'ᾼ', 'ƛ',
];

fn text() -> BoxedStrategy<String> {
    let text = prop_oneof![
        8 => proptest::collection::vec(select(ALPHABET), 0..6).prop_map(|cs| cs.into_iter().collect()),
        1 => Just(String::new()),
        1 => any::<String>(),
    ];
    match database::backend() {
        Backend::Sqlite => text.boxed(),
        Backend::Postgres => text.prop_map(|t: String| t.replace('\0', "")).boxed(),
    }
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

/// A connection to the backend under test, with wyrmhole's SQL functions.
enum Db {
    Sqlite(SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres {
        conn: diesel::PgConnection,
        _database: database::PgDatabase,
    },
}

impl Db {
    /// SQLite: a fresh in-memory database per call. PostgreSQL: one
    /// database per test (`setup` recreates the table in it), dropped when
    /// the test ends.
    fn open() -> Db {
        match database::backend() {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(":memory:").unwrap();
                register_sqlite_functions(&mut conn).unwrap();
                Db::Sqlite(conn)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let url = std::env::var("DATABASE_URL").unwrap();
                let db = database::PgDatabase::create(&url);
                let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
                wyrmhole::sql::fold::install_postgres_functions(&mut conn).unwrap();
                conn.batch_execute(
                    "CREATE COLLATION wyrm_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
                )
                .unwrap();
                Db::Postgres { conn, _database: db }
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => unreachable!("backend() refuses PostgreSQL without the feature"),
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    fn batch(&mut self, sql: &str) {
        match self {
            Db::Sqlite(c) => c.batch_execute(sql).unwrap(),
            #[cfg(feature = "postgres")]
            Db::Postgres { conn: c, .. } => c.batch_execute(sql).unwrap(),
        }
    }

    /// Runs SQL with `?` placeholders and typed binds.
    fn execute(&mut self, sql: &str, binds: &[Bind]) -> Result<usize, String> {
        let sql = self.dialect().finish(sql).into_owned();
        match self {
            Db::Sqlite(c) => bind_all(diesel::sql_query(&sql).into_boxed::<Sqlite>(), binds).execute(c),
            #[cfg(feature = "postgres")]
            Db::Postgres { conn: c, .. } => {
                bind_all(diesel::sql_query(&sql).into_boxed::<diesel::pg::Pg>(), binds).execute(c)
            }
        }
        .map_err(|e| format!("{sql}: {e}"))
    }

    /// Runs a query with `?` placeholders and typed binds.
    #[cfg(not(feature = "postgres"))]
    fn load<T: QueryableByName<Sqlite> + 'static>(&mut self, sql: &str, binds: &[Bind]) -> Result<Vec<T>, String> {
        let Db::Sqlite(c) = self;
        bind_all(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).load(c).map_err(|e| format!("{sql}: {e}"))
    }

    /// Runs a query with `?` placeholders and typed binds.
    #[cfg(feature = "postgres")]
    fn load<T>(&mut self, sql: &str, binds: &[Bind]) -> Result<Vec<T>, String>
    where
        T: QueryableByName<Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
    {
        let sql = self.dialect().finish(sql).into_owned();
        match self {
            Db::Sqlite(c) => bind_all(diesel::sql_query(&sql).into_boxed::<Sqlite>(), binds).load(c),
            Db::Postgres { conn: c, .. } => {
                bind_all(diesel::sql_query(&sql).into_boxed::<diesel::pg::Pg>(), binds).load(c)
            }
        }
        .map_err(|e| format!("{sql}: {e}"))
    }
}

/// Fills a fresh `items` table with `rows` (numbering their ids) and checks
/// they read back as generated.
fn setup(db: &mut Db, rows: &mut [Vec<Value>]) {
    match db.dialect() {
        Dialect::Sqlite => {
            *db = Db::open();
            db.batch(SCHEMA_SQLITE);
        }
        Dialect::Postgres => db.batch(SCHEMA_POSTGRES),
    }
    let columns: Vec<String> = FIELDS.iter().map(|f| quote_ident(f.column)).collect();
    let insert = format!("INSERT INTO items ({}) VALUES ({})", columns.join(", "), vec!["?"; FIELDS.len()].join(", "));
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = Value::Int(i as i64 + 1);
        let binds: Vec<Bind> = row.iter().zip(FIELDS).map(|(v, f)| bind(v, f)).collect();
        db.execute(&insert, &binds).unwrap();
    }
    let select =
        format!("SELECT {} FROM items ORDER BY id", columns[1..].join(", ").replace("\"u\"\"q\"", "\"u\"\"q\" AS u"));
    let stored: Vec<Stored> = db.load(&select, &[]).unwrap();
    assert_eq!(stored.len(), rows.len());
    for (stored, row) in stored.into_iter().zip(rows.iter()) {
        // `==` on Value compares floats numerically: SQLite keeps 0.0 for -0.0.
        assert_eq!(stored.values(), row[1..], "row did not round-trip");
    }
}

fn sql_ids(db: &mut Db, filter: &Filter) -> Result<Vec<i64>, String> {
    let fragment = wyrmhole::sql::render(filter, db.dialect());
    let sql = format!("SELECT id FROM items WHERE {} ORDER BY id", fragment.sql);
    let ids: Vec<Id> = db.load(&sql, &fragment.binds)?;
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

/// The property, run through proptest's runner directly (rather than the
/// `proptest!` macro) so one PostgreSQL database serves all cases.
#[test]
fn sql_and_memory_agree() {
    let db = RefCell::new(Db::open());
    let config = ProptestConfig { cases: 256, source_file: Some(file!()), ..ProptestConfig::default() };
    let rows = proptest::collection::vec(row(true), 0..12);
    let filters = proptest::collection::vec(proptest::collection::vec(predicate_spec(), 1..=3), 1..=24);
    let outcome = TestRunner::new(config).run(&(rows, filters), |(mut rows, filters)| {
        let db = &mut *db.borrow_mut();
        setup(db, &mut rows);
        for specs in &filters {
            let json = build(specs, &rows);
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
