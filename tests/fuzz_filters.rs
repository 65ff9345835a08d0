//! Fuzzing the filter language: parser, SQL renderer and in-memory evaluator.
//!
//! `tests/filter_parity.rs` generates *valid* filters; this throws arbitrary
//! and malformed ones (any JSON shape, wrong types, deep nesting, huge
//! numbers, NUL and case-folding specials, unknown and chained lookups,
//! empty and oversized lists, long strings), made from scratch or mutated
//! from a corpus of the protocol's filter shapes, at every stage, and checks:
//!
//! - nothing panics: `Filter::parse`, `sql::parse_filter`, `sql::render`,
//!   evaluation, canonical keys, SQL execution;
//! - a refused filter gets a structured error (a non-empty `FieldErrors`
//!   keyed by the filter's own keys, their paths inside `or`/`and`/`not`,
//!   or `filter`), the same whichever
//!   entry point parses it, and refused for a client if refused for the server;
//! - an accepted one renders to SQL whose placeholders match its typed
//!   binds, and selects exactly the rows the in-memory evaluation accepts,
//!   on SQLite, or on PostgreSQL when `DATABASE_URL` names a server (many
//!   filters per database round trip).
//!
//! A second target does all this through relations, on the related tables
//! of `tests/common/parity_related.rs` (relation keys from
//! `tests/common/fuzz_related.rs`), evaluating in memory over each item's
//! context, and checks that pins through a relation hold in related rows.
//!
//! `WYRM_FUZZ_SECS` bounds the run (default 15 s), `WYRM_FUZZ_SEED` replays
//! one; a finding is shrunk and printed with its seed, case and table. The
//! longer run and its results are in docs/reliability.md ("Fuzzing").

#[path = "common/database.rs"]
mod database;
#[path = "common/filter_gen.rs"]
mod filter_gen;
#[path = "common/fuzz.rs"]
mod fuzz;
#[path = "common/fuzz_related.rs"]
mod fuzz_related;
#[path = "common/parity.rs"]
mod parity;
#[path = "common/parity_related.rs"]
mod parity_related;

use std::panic::AssertUnwindSafe;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use fuzz::{arbitrary, mutate, Budget, Rng};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value as Json};
use wyrmhole::filter::FieldAccess;
use wyrmhole::sql::{self, Dialect};
use wyrmhole::{Error, FieldDef, FieldErrors, Filter, ModelInfo, Storage, Value};

/// The parity table's fields, with `n` a foreign key (so `rel`, `rel__id`
/// and `rel__pk` name it) and `g` unpublished (so client and server parse
/// differently). The columns are the same, so is the schema.
static FIELDS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    parity::FIELDS
        .iter()
        .map(|f| match f.name {
            "n" => FieldDef { relation: Some("rel"), ..*f },
            "g" => FieldDef { published: false, ..*f },
            _ => *f,
        })
        .collect()
});

fn fields() -> &'static [FieldDef] {
    &FIELDS
}

static MODEL: LazyLock<&'static wyrmhole::ModelInfo> = LazyLock::new(|| parity::model_of(fields()));

/// Filters in the shapes the protocol documents, on this table: the seeds
/// that mutation starts from.
fn corpus() -> Vec<Json> {
    vec![
        json!({}),
        json!({"b": 1}),
        json!({"id": 1, "t__gt": "a", "t__lt": "b"}),
        json!({"t": "abc"}),
        json!({"t__exact": "x"}),
        json!({"t__iexact": "ÉCLAIR"}),
        json!({"t__icontains": "ss"}),
        json!({"t__contains": "%"}),
        json!({"t__startswith": "a_"}),
        json!({"t__endswith": "\0"}),
        json!({"t__istartswith": "σ"}),
        json!({"t__iendswith": "Σ"}),
        json!({"t__in": ["a", "A", "ß"]}),
        json!({"t__range": ["A", "Z"]}),
        json!({"u": null}),
        json!({"u__iexact": null}),
        json!({"u__isnull": false}),
        json!({"a__in": [1, 2, 3]}),
        json!({"a__gte": -32768, "a__lte": 32767}),
        json!({"c__range": [-1, 1]}),
        json!({"c": 9223372036854775807i64}),
        json!({"d__gt": 0.5}),
        json!({"d__lte": -0.0}),
        json!({"e__lt": 1e308}),
        json!({"e__in": [0.0, 1, 2.5]}),
        json!({"flag": true}),
        json!({"m__in": [true, false]}),
        json!({"m": null}),
        json!({"rel": 1}),
        json!({"rel__id__in": [1, 2]}),
        json!({"rel__pk__gte": 0}),
        json!({"n__isnull": true}),
        json!({"g__isnull": true}),
        json!({"id__in": []}),
        json!({"pk": 1}),
        json!({"b": 5.0, "t__in": [null, "x"]}),
        json!({"c__lt": 99999999999999999999.0, "b__gt": -3000000000i64}),
        json!({"day__year__gte": 2000, "day__week_day": 1}),
        json!({"at__date": "2024-02-29", "at__hour__lt": 12}),
        json!({"utc__quarter__in": [1, 4], "utc__gt": "2024-02-29T10:00:00+01:00"}),
        json!({"day__range": ["2000-1-1", "2024-12-31"]}),
        json!({"key__gt": "a0000000-0000-0000-0000-000000000000"}),
        json!({"doc__theme": "dark", "doc__a__b__isnull": true}),
        json!({"doc__has_key": "a", "doc": null}),
        json!({"small__gt": 0.1}),
        json!({"or": [{"b": 1}, {"b": 2}]}),
        json!({"or": [{"u__icontains": "s"}, {"n__gt": 0, "flag": true}], "a__gte": 0}),
        json!({"not": {"u": "x"}}),
        json!({"not": {"or": [{"e__lt": 0.5}, {"not": {"m": true}}]}}),
        json!({"and": [{"or": [{"t": "a"}, {"t": "b"}]}, {"or": [{"n": null}, {"g__isnull": false}]}]}),
        json!({"or": [{"id__in": []}, {"not": {"c__range": [-1, 1]}}]}),
    ]
}

/// Operands from the table's rows, so that filters match sometimes.
fn sample(rows: &[Vec<Value>]) -> impl FnMut(&mut Rng, usize) -> Option<Value> + '_ {
    move |rng, field| (!rows.is_empty()).then(|| rows[rng.below(rows.len())][field].clone())
}

/// The next filter: mostly a mutant of one already seen (cheap, and near
/// the accepted ones, so much of it reaches the database), else one built
/// key by key, else any JSON at all.
fn generate(rng: &mut Rng, rows: &[Vec<Value>], pool: &[Json]) -> Json {
    match rng.below(20) {
        0..=1 => arbitrary(rng, 3),
        2..=7 => fuzz::filter(rng, fields(), &mut sample(rows)),
        _ => {
            let mut filter = rng.pick(pool).clone();
            for _ in 0..1 + rng.below(2) {
                mutate(rng, &mut filter, &mut |rng| {
                    let field = rng.below(fields().len());
                    fuzz::typed_operand(rng, fields(), field, &mut sample(rows))
                });
            }
            filter
        }
    }
}

/// A filter of `model`: through its relations if it has any, else as
/// `Filter::parse` does.
fn parse(model: &'static ModelInfo, json: &Json, access: FieldAccess, nul: bool) -> Result<Filter, FieldErrors> {
    if model.relations.is_empty() {
        Filter::parse_checked(model.fields, json, access, nul)
    } else {
        Filter::parse_model(model, json, access, nul)
    }
}

/// Checks one filter everywhere but the database. `Ok(Some(..))`: accepted
/// for `dialect`, with the ids it selects in memory (`rows` hold their
/// contexts when `model` has relations).
fn examine(
    json: &Json,
    rows: &[Vec<Value>],
    dialect: Dialect,
    model: &'static ModelInfo,
) -> Result<Option<(Filter, Vec<i64>)>, String> {
    let server = parse(model, json, FieldAccess::All, true);
    let client = parse(model, json, FieldAccess::Published, true);
    let checked = sql::parse_filter(model, json, FieldAccess::All, dialect);
    // The database's other NUL rule must not panic either (on SQLite,
    // `checked` is what `parse` is).
    let other = parse(model, json, FieldAccess::All, !dialect.allows_nul());
    if other.is_ok() && server.is_err() {
        return Err("accepted with NUL refused, but refused with NUL allowed".into());
    }
    match (&server, &client) {
        (Err(_), Ok(_)) => return Err("accepted for a client but refused for the server".into()),
        (Ok(s), Ok(c)) if s != c => return Err(format!("client and server parse differently: {c:?} vs {s:?}")),
        _ => {}
    }
    for errors in [&server, &client, &checked, &other].into_iter().filter_map(|r| r.as_ref().err()) {
        if errors.is_empty() {
            return Err("refused with no error".into());
        }
        for (key, messages) in &errors.0 {
            let known = key == "filter" || has_path(json, key);
            if !known || messages.is_empty() || messages.iter().any(|m| m.is_empty()) {
                return Err(format!("error not keyed by a filter key, or empty: {key:?}: {messages:?}"));
            }
        }
    }
    if let Err(errors) = &client {
        let reply = Error::BadFilter(errors.clone()).to_json();
        if reply["code"] != "bad_filter" || !reply["fields"].is_object() {
            return Err(format!("refusal is not a structured bad_filter: {reply}"));
        }
    }
    let parsed = server.is_ok();
    let filter = match (server, checked) {
        (Err(_), Ok(_)) => return Err("accepted for the database but refused by parse".into()),
        (_, Err(errors)) => {
            // Refused for the database alone: only for a NUL PostgreSQL cannot store.
            let nul = errors.0.values().flatten().all(|m| m.contains("NUL"));
            if parsed && (dialect.allows_nul() || !nul) {
                return Err(format!("refused for {dialect:?} only, not for a NUL: {errors:?}"));
            }
            return Ok(None);
        }
        (Ok(server), Ok(checked)) if server != checked => return Err("parse and parse_filter differ".into()),
        (_, Ok(checked)) => checked,
    };
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        let fragment = sql::render(&filter, d);
        if fragment.sql.matches('?').count() != fragment.binds.len() {
            return Err(format!("{d:?}: placeholders and binds differ: {fragment:?}"));
        }
        for bind in &fragment.binds {
            let fits = match (&bind.value, bind.ty.storage()) {
                (Value::Bool(_), Storage::Bool) | (Value::Float(_), Storage::F64) => true,
                (Value::Text(_), Storage::Text) => true,
                (Value::Int(_), ty) => ty.is_integer(),
                (Value::Date(_), Storage::Date) | (Value::DateTime(_), Storage::DateTime) => true,
                (Value::DateTimeUtc(_), Storage::DateTimeUtc) | (Value::Uuid(_), Storage::Uuid) => true,
                _ => false,
            };
            if !fits {
                return Err(format!("{d:?}: a bind of the wrong type: {bind:?}"));
            }
        }
    }
    let key = filter.canonical_key();
    let twice = filter.clone().and(filter.clone());
    if twice.canonical_key() != key {
        // Deduplicated parts make `f and f` the same filter as `f`.
        return Err(format!("canonical key of f and f differs: {key} vs {}", twice.canonical_key()));
    }
    let ids = parity::memory_ids(rows, &filter);
    for row in rows {
        if twice.matches(row) != filter.matches(row) {
            return Err("f and f matches differently from f".into());
        }
    }
    for (field, value) in filter.equalities() {
        for row in rows.iter().filter(|row| filter.matches(row)) {
            if !pinned(row, field).any(|v| v == value) {
                return Err(format!("a matched row has no {value:?} where the equality {field:#x} says so"));
            }
        }
    }
    for (field, values) in filter.pins() {
        for row in rows.iter().filter(|row| filter.matches(row)) {
            if !pinned(row, field).any(|v| values.contains(&v)) {
                return Err(format!("a matched row has none of {values:?} where the pin {field:#x} says so"));
            }
        }
    }
    Ok(Some((filter, ids)))
}

/// The values a pin reads in a row: its own field's, or, for a pin
/// through a relation (`(at + 1) << 16 | field`, see
/// `filter::related::related_pin`), that field's in each related row the
/// context holds at `at`.
fn pinned(row: &[Value], pin: usize) -> Box<dyn Iterator<Item = &Value> + '_> {
    if pin < 1 << 16 {
        return Box::new(std::iter::once(&row[pin]));
    }
    match &row[(pin >> 16) - 1] {
        Value::Related(rows) => Box::new(rows.iter().map(move |r| &r[pin & 0xffff])),
        other => panic!("a pin through a relation reads {other:?}"),
    }
}

/// Whether an error key names a place in the filter: one of its keys, or
/// a path through `or`/`and`/`not` (`or.1.not.t__gt`). Keys may hold dots
/// themselves, so each prefix that is a key is tried.
fn has_path(json: &Json, path: &str) -> bool {
    match json {
        Json::Object(o) => {
            o.contains_key(path)
                || o.iter().any(|(k, v)| {
                    path.strip_prefix(k.as_str())
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|rest| has_path(v, rest))
                })
        }
        Json::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let i = i.to_string();
            path == i
                || path
                    .strip_prefix(i.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|rest| has_path(item, rest))
        }),
        _ => false,
    }
}

#[derive(QueryableByName, Debug)]
struct Hit {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    q: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    id: i32,
}

/// The ids each filter selects in SQL, for many filters in one statement.
fn sql_ids_batch(db: &mut parity::Db, filters: &[&Filter]) -> Result<Vec<Vec<i64>>, String> {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (q, filter) in filters.iter().enumerate() {
        let fragment = sql::render(filter, db.dialect());
        if q > 0 {
            sql.push_str(" UNION ALL ");
        }
        sql.push_str(&format!("SELECT {q} AS q, id FROM items WHERE {}", fragment.sql));
        binds.extend(fragment.binds);
    }
    let hits: Vec<Hit> = db.load(&sql, &binds)?;
    let mut ids = vec![Vec::new(); filters.len()];
    for hit in hits {
        ids[hit.q as usize].push(i64::from(hit.id));
    }
    for list in &mut ids {
        list.sort_unstable();
    }
    Ok(ids)
}

/// Whether one filter fails any check on this table, and why.
fn failure(db: &mut parity::Db, json: &Json, data: &Data) -> Option<String> {
    let (rows, dialect) = (&data.rows, db.dialect());
    let examined = std::panic::catch_unwind(AssertUnwindSafe(|| examine(json, rows, dialect, data.model)));
    match examined {
        Err(panic) => Some(format!("panicked: {}", fuzz::panic_message(&*panic))),
        Ok(Err(why)) => Some(why),
        Ok(Ok(None)) => None,
        Ok(Ok(Some((filter, memory)))) => {
            match std::panic::catch_unwind(AssertUnwindSafe(|| parity::sql_ids(db, &filter))) {
                Err(panic) => Some(format!("SQL panicked: {}", fuzz::panic_message(&*panic))),
                Ok(Err(e)) => Some(format!("SQL failed: {e}")),
                Ok(Ok(in_sql)) if in_sql != memory => Some(format!(
                    "SQL selects {in_sql:?}, memory {memory:?}; SQL: {}",
                    sql::render(&filter, dialect).sql
                )),
                Ok(Ok(_)) => None,
            }
        }
    }
}

/// Shrinks a failing filter and fails the test with everything needed to
/// reproduce it.
fn report(db: &mut parity::Db, budget: &Budget, case: u64, json: &Json, data: &Data, why: &str) -> ! {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let minimal = fuzz::shrink(json.clone(), |candidate| failure(db, candidate, data).is_some(), 5000);
    std::panic::set_hook(hook);
    let minimal_why = failure(db, &minimal, data).unwrap_or_else(|| why.to_owned());
    let rows = data.related.as_ref().map_or_else(|| format!("{:?}", data.rows), |tables| format!("{tables:?}"));
    panic!(
        "filter fuzzer finding at case {case} (replay: WYRM_FUZZ_SEED={} WYRM_FUZZ_CASES={})\n\
         why: {why}\nfilter: {json}\nminimal filter: {minimal}\nminimal why: {minimal_why}\ntables: {rows}",
        budget.seed,
        case + 1
    )
}

/// The rows of one fuzzing round, as memory sees them, and the tables
/// behind them when the model has relations.
struct Data {
    model: &'static ModelInfo,
    rows: Vec<Vec<Value>>,
    related: Option<parity_related::Tables>,
}

/// A new random table of 0 to 15 rows (with infinities, NULLs, nasty text).
fn new_table(runner: &mut TestRunner, db: &mut parity::Db) -> Data {
    let strategy = proptest::collection::vec(parity::row(true), 0..16);
    let mut rows = strategy.new_tree(runner).expect("rows").current();
    parity::setup(db, &mut rows);
    Data { model: &MODEL, rows, related: None }
}

/// New random tables of items and the rows they relate to.
fn new_related_tables(runner: &mut TestRunner, db: &mut parity::Db) -> Data {
    let tables = parity_related::tables().new_tree(runner).expect("tables").current();
    parity_related::setup(db, &tables);
    Data { model: parity_related::items(), rows: tables.contexts(), related: Some(tables) }
}

#[derive(Default, Debug)]
struct Counts {
    cases: u64,
    accepted: u64,
    through_relations: u64,
    refused_for_database: u64,
    compared_in_sql: u64,
    round_trips: u64,
    tables: u64,
    sql_time: Duration,
}

/// The filters of a batch waiting for their database round trip.
struct Pending {
    case: u64,
    json: Json,
    filter: Filter,
    memory: Vec<i64>,
}

#[test]
fn filters_never_panic_and_agree_with_sql() {
    run("fuzz_filters", 15.0, corpus(), new_table, &|rng, data, pool| generate(rng, &data.rows, pool));
}

/// The same through relations: keys through belongs_to and has_many paths
/// (and paths a filter may not follow), against items with contexts.
#[test]
fn relation_filters_never_panic_and_agree_with_sql() {
    let mut corpus = corpus();
    corpus.extend(fuzz_related::corpus());
    run("fuzz_filters (relations)", 10.0, corpus, new_related_tables, &|rng, data, pool| {
        fuzz_related::generate(rng, data.related.as_ref().expect("related tables"), pool)
    });
}

/// Fuzzes filters on the tables `new_data` makes, generated by `generate`
/// from the data and a pool of filters (seeded with `corpus`).
fn run(
    target: &str,
    secs: f64,
    mut pool: Vec<Json>,
    new_data: fn(&mut TestRunner, &mut parity::Db) -> Data,
    generate: &dyn Fn(&mut Rng, &Data, &[Json]) -> Json,
) {
    let budget = Budget::from_env(target, secs);
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&budget.seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::XorShift, &seed));
    // The corpus, then filters accepted lately in place of its tail.
    let corpus_len = pool.len();
    pool.resize(corpus_len + 256, json!({}));
    let mut db = parity::Db::open();
    let mut data = new_data(&mut runner, &mut db);
    let mut counts = Counts { tables: 1, ..Counts::default() };
    let mut pending: Vec<Pending> = Vec::new();
    let mut binds_pending = 0;
    let replaying = budget.max_cases.is_some();
    let started = Instant::now();
    while budget.go_on(counts.cases) {
        let case = counts.cases;
        counts.cases += 1;
        // A generator of its own per case, so a case does not depend on
        // how much randomness the ones before it drew.
        let mut rng = Rng::new(budget.seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let json = generate(&mut rng, &data, &pool);
        let examined =
            std::panic::catch_unwind(AssertUnwindSafe(|| examine(&json, &data.rows, db.dialect(), data.model)));
        let (filter, memory) = match examined {
            Err(panic) => {
                report(&mut db, &budget, case, &json, &data, &format!("panicked: {}", fuzz::panic_message(&*panic)))
            }
            Ok(Err(why)) => report(&mut db, &budget, case, &json, &data, &why),
            Ok(Ok(None)) => {
                counts.refused_for_database += u64::from(parse(data.model, &json, FieldAccess::All, true).is_ok());
                continue;
            }
            Ok(Ok(Some(found))) => found,
        };
        counts.accepted += 1;
        counts.through_relations += u64::from(filter.has_relations());
        pool[corpus_len + rng.below(256)] = json.clone();
        // SQL takes at most half the time (every case when replaying), so
        // the cheap checks still run millions of cases.
        if !replaying && counts.sql_time > started.elapsed() / 2 {
            continue;
        }
        binds_pending += sql::render(&filter, db.dialect()).binds.len();
        pending.push(Pending { case, json, filter, memory });
        if pending.len() >= 64 || binds_pending > 8000 || replaying {
            let sql_started = Instant::now();
            let filters: Vec<&Filter> = pending.iter().map(|p| &p.filter).collect();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| sql_ids_batch(&mut db, &filters)));
            counts.round_trips += 1;
            counts.compared_in_sql += pending.len() as u64;
            let agree = |ids: &Vec<Vec<i64>>| pending.iter().zip(ids).all(|(p, ids)| p.memory == *ids);
            if !matches!(&outcome, Ok(Ok(ids)) if agree(ids)) {
                // Find the filter that fails on its own.
                for p in &pending {
                    if let Some(why) = failure(&mut db, &p.json, &data) {
                        report(&mut db, &budget, p.case, &p.json, &data, &why);
                    }
                }
                panic!("a batch of {} filters failed, but none alone: {outcome:?}", pending.len());
            }
            pending.clear();
            binds_pending = 0;
            counts.sql_time += sql_started.elapsed();
            // Related tables are smaller and shape more of the outcome: new ones more often.
            if counts.round_trips % if data.related.is_some() { 8 } else { 64 } == 0 {
                data = new_data(&mut runner, &mut db);
                counts.tables += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{target} ({:?}): {} cases in {secs:.1} s ({:.0}/s), {} accepted ({} through relations), {} refused for the database \
         only, \
         {} compared with SQL in {} round trips on {} tables; 0 panics, 0 disagreements",
        db.dialect(),
        counts.cases,
        counts.cases as f64 / secs,
        counts.accepted,
        counts.through_relations,
        counts.refused_for_database,
        counts.compared_in_sql,
        counts.round_trips,
        counts.tables,
    );
    assert!(counts.compared_in_sql > 0 || counts.cases < 1000, "nothing reached the database: {counts:?}");
}
