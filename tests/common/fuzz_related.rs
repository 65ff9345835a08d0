//! Relation keys for the filter fuzzer (`tests/fuzz_filters.rs`), on the
//! tables of `parity_related`: filters of a related table's fields (made
//! by `fuzz::filter`, so with unknown fields, bad lookups and operands)
//! moved behind a relation prefix, valid (`parent__`, `owner__grand__`,
//! `children__`, the self-relation's `boss__` and `reports__`) or not (a model twice, a has_many in the middle, four
//! relations, an unknown one), and put in the same object as other keys
//! (one related row), in an `and` entry (another), or under a `not`.
#![allow(dead_code)]

use serde_json::{json, Map, Value as Json};
use wyrmhole::{FieldDef, Value};

use super::fuzz::{self, arbitrary, mutate, Rng};
use super::parity_related::{Tables, CHILD_FIELDS, GRAND_FIELDS, ITEM_FIELDS, PARENT_FIELDS};

/// Filters on the related tables in the shapes the protocol documents,
/// and some that must be refused.
pub fn corpus() -> Vec<Json> {
    vec![
        json!({"parent__t__icontains": "s"}),
        json!({"parent__t": "a", "owner__b__gt": 0}),
        json!({"children__b__gt": 0, "children__t": "a"}),
        json!({"and": [{"children__t": "a"}, {"children__b": 1}]}),
        // Separate conditions on one related field: pins must not intersect.
        json!({"and": [{"children__b": 1}, {"children__b__in": [2, 1]}]}),
        json!({"and": [{"children__b__in": [0, 1]}, {"children__b__in": [0, 2]}], "children__b__gte": 0}),
        json!({"not": {"children__t__in": ["a", "ß"]}}),
        json!({"not": {"parent__grand__isnull": true}}),
        json!({"owner__grand__doc__theme": "dark", "owner__grand__day__year__gte": 2000}),
        json!({"parent": 1}),
        json!({"parent__in": [1, 2]}),
        json!({"parent__id__gt": 1}),
        json!({"owner__pk": 2}),
        json!({"children": 1}),
        json!({"children__in": []}),
        json!({"parent__a__in": [null]}),
        json!({"or": [{"parent__isnull": true}, {"owner__u__iexact": "Σ"}]}),
        json!({"t": "", "children__key__startswith": "0"}),
        // Refused: a model twice, a has_many in the middle, too long,
        // unknown and unpublished fields.
        json!({"parent__grand__parents__t": "x"}),
        json!({"children__item__t": "x"}),
        json!({"parent__grand__parents__grand__t": "x"}),
        json!({"parent__titel": 1}),
        json!({"children__nope__in": [1]}),
        json!({"boss__boss__b": 1}),
        json!({"reports__children__t": "a"}),
        json!({"boss__b__gt": 0, "reports__t__icontains": "s", "not": {"reports__b": 1}}),
        json!({"boss": 1, "boss__isnull": false, "reports__in": [1, 2]}),
        json!({"parent__g": 1}),
    ]
}

/// Where generated keys go: a prefix, and the fields and rows of the table
/// it reaches (invalid prefixes borrow some table's); the first [`VALID`]
/// are paths.
const VALID: usize = 8;

type Target<'a> = (&'static str, &'static [FieldDef], &'a [Vec<Value>]);

fn targets(tables: &Tables) -> Vec<Target<'_>> {
    vec![
        ("parent__", &PARENT_FIELDS, &tables.parents),
        ("owner__", &PARENT_FIELDS, &tables.parents),
        ("parent__grand__", &GRAND_FIELDS, &tables.grands),
        ("owner__grand__", &GRAND_FIELDS, &tables.grands),
        ("children__", &CHILD_FIELDS, &tables.children),
        ("children__", &CHILD_FIELDS, &tables.children),
        ("boss__", &ITEM_FIELDS, &tables.items),
        ("reports__", &ITEM_FIELDS, &tables.items),
        // Not paths: past a self-relation, a model twice, past a has_many,
        // too long, unknown relations.
        ("boss__boss__", &ITEM_FIELDS, &tables.items),
        ("boss__parent__", &PARENT_FIELDS, &tables.parents),
        ("reports__children__", &CHILD_FIELDS, &tables.children),
        ("parent__grand__parents__", &PARENT_FIELDS, &tables.parents),
        ("children__item__", &ITEM_FIELDS, &tables.items),
        ("children__item__parent__", &PARENT_FIELDS, &tables.parents),
        ("parent__grand__parents__grand__", &GRAND_FIELDS, &tables.grands),
        ("parent__owner__", &PARENT_FIELDS, &tables.parents),
        ("Parent__", &PARENT_FIELDS, &tables.parents),
        ("parent____", &PARENT_FIELDS, &tables.parents),
    ]
}

/// Operands from `rows`, so that filters match sometimes.
fn sample(rows: &[Vec<Value>]) -> impl FnMut(&mut Rng, usize) -> Option<Value> + '_ {
    move |rng, field| (!rows.is_empty()).then(|| rows[rng.below(rows.len())].get(field).cloned()).flatten()
}

/// `filter` with `prefix` before each key but `or`, `and` and `not`, into
/// which it goes.
fn prefixed(filter: Json, prefix: &str) -> Json {
    let Json::Object(object) = filter else { return filter };
    let object = object
        .into_iter()
        .map(|(key, value)| match key.as_str() {
            "or" | "and" => {
                let value = match value {
                    Json::Array(items) => Json::Array(items.into_iter().map(|i| prefixed(i, prefix)).collect()),
                    other => other,
                };
                (key, value)
            }
            "not" => (key, prefixed(value, prefix)),
            _ => (format!("{prefix}{key}"), value),
        })
        .collect();
    Json::Object(object)
}

/// `sub`'s keys in `object`: alongside its keys (one related row), as an
/// entry of its `and` list (another), or as its `not`.
fn place(rng: &mut Rng, object: &mut Map<String, Json>, sub: Json) {
    match (rng.below(3), sub) {
        (0, Json::Object(keys)) => object.extend(keys),
        (1, sub) => match object.get_mut("and") {
            Some(Json::Array(items)) => items.push(sub),
            _ => {
                object.insert("and".into(), json!([sub]));
            }
        },
        (_, sub) => {
            object.insert("not".into(), sub);
        }
    }
}

/// The next filter on `items`: mostly own keys with relation keys put in,
/// else a mutant of one seen before, else any JSON.
pub fn generate(rng: &mut Rng, tables: &Tables, pool: &[Json]) -> Json {
    match rng.below(20) {
        0 => arbitrary(rng, 3),
        1..=11 => {
            let mut filter = match rng.chance(50) {
                true => fuzz::filter(rng, &ITEM_FIELDS, &mut sample(&tables.items)),
                false => json!({}),
            };
            let targets = targets(tables);
            for _ in 0..1 + rng.below(3) {
                // Mostly paths a filter may follow.
                let choices = if rng.chance(80) { VALID } else { targets.len() };
                let (prefix, fields, rows) = *rng.pick(&targets[..choices]);
                let sub = prefixed(fuzz::filter(rng, fields, &mut sample(rows)), prefix);
                match &mut filter {
                    Json::Object(object) => place(rng, object, sub),
                    _ => filter = sub,
                }
            }
            filter
        }
        _ => {
            let mut filter = rng.pick(pool).clone();
            mutate(rng, &mut filter, &mut |rng| {
                let (_, fields, rows) = *rng.pick(&targets(tables)[..VALID]);
                let field = rng.below(fields.len());
                fuzz::typed_operand(rng, fields, field, &mut sample(rows))
            });
            filter
        }
    }
}
