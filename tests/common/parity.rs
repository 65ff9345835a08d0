//! The table the filter parity tests run on (`tests/filter_parity.rs`,
//! `tests/fuzz_filters.rs`): one field of every type, its schema on SQLite
//! and PostgreSQL, generators of rows that lean on the values that break
//! translations, and a connection that fills the table and selects from it
//! with a rendered filter.
//!
//! Included with `#[path = "common/parity.rs"] mod parity;` next to
//! `mod database;`, so a test file gets these without the server of
//! `tests/common/mod.rs`.
#![allow(dead_code)]

use super::database::{self, Backend};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use proptest::prelude::*;
use proptest::sample::select;
use wyrmhole::sql::fold::register_sqlite_functions;
use wyrmhole::sql::types;
use wyrmhole::sql::{bind_all, quote_ident, Bind, Dialect};
use wyrmhole::{FieldDef, FieldType, Filter, Storage, Value};

pub const fn field(name: &'static str, column: &'static str, ty: FieldType, nullable: bool) -> FieldDef {
    FieldDef { name, column, ty, nullable, published: true, updatable: true, primary_key: false, relation: None }
}

/// A model of `fields` without relations, for the APIs that take one.
pub fn model_of(fields: &'static [FieldDef]) -> &'static wyrmhole::ModelInfo {
    Box::leak(Box::new(wyrmhole::ModelInfo { route: "t", table: "t", fields, primary_key: 0, relations: &[] }))
}

/// One field of every type, non-nullable and nullable. `u` lives in a column
/// whose name needs quoting.
pub static FIELDS: &[FieldDef] = &[
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
    field("day", "day", FieldType::Date, true),
    field("at", "at", FieldType::DateTime, false),
    field("utc", "utc", FieldType::DateTimeUtc, true),
    field("key", "key", FieldType::Uuid, false),
    field("doc", "doc", FieldType::Json, true),
    field("small", "small", FieldType::F32, false),
];

/// The indexes of the fields added for dates, times, UUIDs, JSON and `f32`.
pub const DAY: usize = 12;
pub const AT: usize = 13;
pub const UTC: usize = 14;
pub const KEY: usize = 15;
pub const DOC: usize = 16;

// `t` is declared NOCASE on purpose: filters must compare text by bytes
// whatever collation the schema chose.
pub const SCHEMA_SQLITE: &str = r#"CREATE TABLE items (
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
    m BOOLEAN,
    day DATE,
    at TIMESTAMP NOT NULL,
    utc TIMESTAMPTZ,
    key TEXT NOT NULL COLLATE NOCASE,
    doc TEXT,
    small REAL NOT NULL
)"#;

/// The same on PostgreSQL, where `t` gets a case-insensitive,
/// nondeterministic ICU collation (under which PostgreSQL even refuses
/// substring searches) and `u` a linguistic one that sorts `a` < `B`.
pub const SCHEMA_POSTGRES: &str = r#"DROP TABLE IF EXISTS items;
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
    m BOOLEAN,
    day DATE,
    at TIMESTAMP NOT NULL,
    utc TIMESTAMPTZ,
    key UUID NOT NULL,
    doc JSONB,
    small REAL NOT NULL
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
pub const ALPHABET: &[char] = &[
    'a', 'A', 'b', 'B', 'i', 'I', 's', 'S', 'é', 'É', 'σ', 'ς', 'Σ', 'ß', 'ẞ', 'İ', 'ı', 'ǅ', 'ǆ', 'Ǆ', 'ﬃ', '😀', '%',
    '_', '\\', ' ', '\'', '"', '\0', 'ᾳ', 'ᾼ', 'ƛ',
];

pub fn text() -> BoxedStrategy<String> {
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

pub fn int(min: i64, max: i64) -> BoxedStrategy<i64> {
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
pub fn float(infinite: bool) -> BoxedStrategy<f64> {
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

/// Dates from year 1 to 9999, bunched so that rows share years, months
/// and days, with the leap day.
pub fn date() -> BoxedStrategy<NaiveDate> {
    let bunched = (select(&[1, 1999, 2000, 2024, 2025, 9999][..]), 1u32..=12, select(&[1u32, 2, 15, 28, 29, 31][..]))
        .prop_map(|(y, m, d)| (1..=d).rev().find_map(|d| NaiveDate::from_ymd_opt(y, m, d)).unwrap());
    prop_oneof![4 => bunched, 1 => (1i32..=9999, 1u32..=366).prop_map(|(y, d)| {
        NaiveDate::from_yo_opt(y, d).or(NaiveDate::from_yo_opt(y, 365)).unwrap()
    })]
    .boxed()
}

/// Date-times to the microsecond, at hours and seconds that collide.
pub fn datetime() -> BoxedStrategy<NaiveDateTime> {
    (
        date(),
        select(&[0u32, 1, 12, 23][..]),
        0u32..60,
        select(&[0u32, 59][..]),
        select(&[0u32, 1, 500_000, 999_999][..]),
    )
        .prop_map(|(d, h, m, s, us)| d.and_hms_micro_opt(h, m, s, us).unwrap())
        .boxed()
}

/// A few UUIDs that share prefixes (and one all-`f`), and random ones.
pub fn uuid() -> BoxedStrategy<uuid::Uuid> {
    prop_oneof![
        3 => select(&[0u128, 1, 0xa000_0000_0000_0000_0000_0000_0000_0000, 0x0fff << 112, u128::MAX][..]),
        1 => any::<u128>(),
    ]
    .prop_map(uuid::Uuid::from_u128)
    .boxed()
}

/// The JSON scalars filters compare with: `1` and `1.0` (equal in `jsonb`),
/// `"1"` and `true` (which SQLite's `json_extract` would confuse with them).
pub const JSON_SCALARS: &[&str] = &["null", "true", "false", "0", "1", "1.0", "-2.5", "\"1\"", "\"dark\"", "\"\""];

/// The keys JSON documents and key paths use.
pub const JSON_KEYS: &[&str] = &["theme", "a", "b", "a b"];

pub fn json_scalar() -> BoxedStrategy<serde_json::Value> {
    select(JSON_SCALARS).prop_map(|s| serde_json::from_str(s).unwrap()).boxed()
}

/// JSON documents: scalars, lists, and objects two deep on a few keys.
pub fn json() -> BoxedStrategy<serde_json::Value> {
    let leaf = prop_oneof![4 => json_scalar(), 1 => Just(serde_json::json!([1, "a"]))];
    leaf.prop_recursive(2, 8, 3, |inner| {
        proptest::collection::btree_map(select(JSON_KEYS).prop_map(str::to_owned), inner, 0..3)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    })
    .boxed()
}

/// `f32` values, widened as wyrmhole carries them.
pub fn float32() -> BoxedStrategy<f64> {
    prop_oneof![
        3 => select(&[0.0f32, -0.0, 0.1, -2.5, 1.0, f32::MAX, f32::MIN_POSITIVE][..]),
        1 => any::<f32>().prop_filter("finite", |f| f.is_finite()),
    ]
    .prop_map(f64::from)
    .boxed()
}

/// A non-null value of each family, for rows and operands that need one.
pub fn plain(storage: Storage) -> Value {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    match storage {
        Storage::Bool => Value::Bool(false),
        Storage::F32 | Storage::F64 => Value::Float(0.0),
        Storage::Text => Value::Text(String::new()),
        Storage::Date => Value::Date(epoch),
        Storage::DateTime => Value::DateTime(epoch.into()),
        Storage::DateTimeUtc => Value::DateTimeUtc(NaiveDateTime::from(epoch).and_utc()),
        Storage::Uuid => Value::Uuid(uuid::Uuid::nil()),
        Storage::Json => Value::Json(Box::new(serde_json::json!({}))),
        _ => Value::Int(0),
    }
}

pub fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    proptest::option::weighted(0.7, s).prop_map(|v| v.unwrap_or(Value::Null)).boxed()
}

/// A value for a field of this type.
pub fn value(ty: FieldType, nullable_field: bool, infinite: bool) -> BoxedStrategy<Value> {
    let s = match ty.storage() {
        Storage::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Storage::I16 => int(i16::MIN.into(), i16::MAX.into()).prop_map(Value::Int).boxed(),
        Storage::I32 => int(i32::MIN.into(), i32::MAX.into()).prop_map(Value::Int).boxed(),
        Storage::I64 => int(i64::MIN, i64::MAX).prop_map(Value::Int).boxed(),
        Storage::F64 => float(infinite).prop_map(Value::Float).boxed(),
        Storage::F32 => float32().prop_map(Value::Float).boxed(),
        Storage::Text => text().prop_map(Value::Text).boxed(),
        Storage::Date => date().prop_map(Value::Date).boxed(),
        Storage::DateTime => datetime().prop_map(Value::DateTime).boxed(),
        Storage::DateTimeUtc => datetime().prop_map(|t| Value::DateTimeUtc(t.and_utc())).boxed(),
        Storage::Uuid => uuid().prop_map(Value::Uuid).boxed(),
        Storage::Json => json().prop_map(|j| Value::Json(Box::new(j))).boxed(),
    };
    if nullable_field {
        nullable(s)
    } else {
        s
    }
}

/// A row's values in field order; the id is filled in at insert.
pub fn row(infinite: bool) -> BoxedStrategy<Vec<Value>> {
    FIELDS
        .iter()
        .map(|f| if f.primary_key { Just(Value::Int(0)).boxed() } else { value(f.ty, f.nullable, infinite) })
        .collect::<Vec<_>>()
        .boxed()
}

pub fn bind(value: &Value, field: &FieldDef) -> Bind {
    Bind { value: value.clone(), ty: field.ty }
}

#[derive(QueryableByName, Debug)]
pub struct Id {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub id: i32,
}

/// Every column read back with its own type, to check the rows went in
/// as generated (a bind bug there would hide a bind bug in filters).
#[derive(QueryableByName, Debug)]
pub struct Stored {
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    pub a: i16,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub b: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub c: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub d: f64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub t: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub u: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub flag: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    pub n: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub e: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    pub g: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    pub m: Option<bool>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
    pub day: Option<NaiveDate>,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    pub at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Nullable<types::TimestampUtc>)]
    pub utc: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = types::Uuid)]
    pub key: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<types::Json>)]
    pub doc: Option<serde_json::Value>,
    #[diesel(sql_type = diesel::sql_types::Float)]
    pub small: f32,
}

impl Stored {
    pub fn values(self) -> Vec<Value> {
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
            opt(self.day.map(Value::from)),
            self.at.into(),
            opt(self.utc.map(Value::from)),
            self.key.into(),
            opt(self.doc.map(Value::from)),
            self.small.into(),
        ]
    }
}

/// A connection to the backend under test, with wyrmhole's SQL functions.
pub enum Db {
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
    pub fn open() -> Db {
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

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    pub fn batch(&mut self, sql: &str) {
        match self {
            Db::Sqlite(c) => c.batch_execute(sql).unwrap(),
            #[cfg(feature = "postgres")]
            Db::Postgres { conn: c, .. } => c.batch_execute(sql).unwrap(),
        }
    }

    /// Runs SQL with `?` placeholders and typed binds.
    pub fn execute(&mut self, sql: &str, binds: &[Bind]) -> Result<usize, String> {
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
    pub fn load<T: QueryableByName<Sqlite> + 'static>(&mut self, sql: &str, binds: &[Bind]) -> Result<Vec<T>, String> {
        let Db::Sqlite(c) = self;
        bind_all(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).load(c).map_err(|e| format!("{sql}: {e}"))
    }

    /// Runs a query with `?` placeholders and typed binds.
    #[cfg(feature = "postgres")]
    pub fn load<T>(&mut self, sql: &str, binds: &[Bind]) -> Result<Vec<T>, String>
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
pub fn setup(db: &mut Db, rows: &mut [Vec<Value>]) {
    match db.dialect() {
        Dialect::Sqlite => {
            *db = Db::open();
            db.batch(SCHEMA_SQLITE);
        }
        Dialect::Postgres => db.batch(SCHEMA_POSTGRES),
    }
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = Value::Int(i as i64 + 1);
    }
    insert(db, "items", FIELDS, rows);
}

/// Inserts `rows` (ids included) into `table`, whose columns are `fields`,
/// and checks that the columns of [`FIELDS`] (the first ones) read back as
/// generated.
pub fn insert(db: &mut Db, table: &str, fields: &[FieldDef], rows: &[Vec<Value>]) {
    let columns: Vec<String> = fields.iter().map(|f| quote_ident(f.column)).collect();
    let insert =
        format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), vec!["?"; fields.len()].join(", "));
    for row in rows {
        let binds: Vec<Bind> = row.iter().zip(fields).map(|(v, f)| bind(v, f)).collect();
        db.execute(&insert, &binds).unwrap();
    }
    let select = format!(
        "SELECT {} FROM {table} ORDER BY id",
        columns[1..FIELDS.len()].join(", ").replace("\"u\"\"q\"", "\"u\"\"q\" AS u")
    );
    let stored: Vec<Stored> = db.load(&select, &[]).unwrap();
    assert_eq!(stored.len(), rows.len());
    for (stored, row) in stored.into_iter().zip(rows.iter()) {
        // `==` on Value compares floats numerically: SQLite keeps 0.0 for -0.0.
        assert_eq!(stored.values(), row[1..FIELDS.len()], "row of {table} did not round-trip");
    }
}

pub fn sql_ids(db: &mut Db, filter: &Filter) -> Result<Vec<i64>, String> {
    let fragment = wyrmhole::sql::render(filter, db.dialect());
    let sql = format!("SELECT id FROM items WHERE {} ORDER BY id", fragment.sql);
    let ids: Vec<Id> = db.load(&sql, &fragment.binds)?;
    Ok(ids.into_iter().map(|r| i64::from(r.id)).collect())
}

pub fn memory_ids(rows: &[Vec<Value>], filter: &Filter) -> Vec<i64> {
    rows.iter()
        .filter(|row| filter.matches(row))
        .map(|row| match row[0] {
            Value::Int(id) => id,
            _ => unreachable!("ids are integers"),
        })
        .collect()
}
