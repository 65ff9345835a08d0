//! Random valid filters for the parity tests (`tests/filter_parity.rs`):
//! predicates on the fields of `parity::FIELDS`, with operands taken from
//! the rows in the tables (so filters match sometimes) or fresh, nested in
//! `or`, `and` and `not`; and, for a model with relations, keys through a
//! relation path (`parent__t__icontains`, `children__b__gt`), whose
//! operands come from the rows that path's table holds.
//!
//! Included with `#[path = "common/filter_gen.rs"] mod filter_gen;` next
//! to `mod parity;` and `mod database;`.
#![allow(dead_code)]

use chrono::{Datelike, NaiveDateTime, Timelike};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::json;
use wyrmhole::filter::Lookup;
use wyrmhole::{Storage, Value};

use super::parity::{plain, row, FIELDS, JSON_KEYS, JSON_SCALARS};
/// Where one operand comes from: a fresh value, or an existing row's value
/// (so filters match sometimes), cut and case-changed for text lookups.
#[derive(Debug, Clone)]
pub struct Pick {
    fresh: Vec<Value>,
    from_row: bool,
    row: Index,
    start: Index,
    len: Index,
    case: u8,
    as_int: bool,
}

#[derive(Debug, Clone)]
pub struct PredicateSpec {
    /// Which of the [`Target`]s the key goes to.
    target: Index,
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

pub fn predicate_spec() -> impl Strategy<Value = PredicateSpec> {
    // Text fields have most lookups and most of the ways to go wrong.
    let field = prop_oneof![1 => 0..FIELDS.len(), 1 => select(&[5usize, 6][..])];
    (
        any::<Index>(),
        field,
        any::<Index>(),
        proptest::collection::vec(pick(), 1..=4),
        proptest::bool::weighted(0.1),
        any::<bool>(),
        0u8..10,
        proptest::collection::vec(any::<Index>(), 1..=2),
    )
        .prop_map(|(target, field, lookup, picks, null, spelled_exact, shape, names)| PredicateSpec {
            target,
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

/// Where a predicate's key goes: `prefix` before the field's name (empty
/// for the model's own fields, `parent__` through a relation), and the rows
/// of the table it names, whose first fields are [`FIELDS`].
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub prefix: &'a str,
    pub rows: &'a [Vec<Value>],
}

/// The JSON filter specs describe, given the rows in the tables. Keys of
/// one object through one relation path become one condition on one
/// related row.
pub fn build(specs: &[PredicateSpec], targets: &[Target]) -> serde_json::Value {
    let mut filter = serde_json::Map::new();
    for spec in specs {
        let Target { prefix, rows } = targets[spec.target.index(targets.len())];
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
        let mut key = format!("{prefix}{}", f.name);
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
pub enum Shape {
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

/// Shapes of up to `max_keys` plain keys per object.
pub fn shape(max_keys: usize) -> impl Strategy<Value = Shape> {
    let keys = move |min| proptest::collection::vec(predicate_spec(), min..=max_keys);
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
pub fn build_shape(shape: &Shape, targets: &[Target]) -> serde_json::Value {
    match shape {
        Shape::Keys(specs) => build(specs, targets),
        Shape::List { or, keys, items } => {
            let mut json = build(keys, targets);
            let items = items.iter().map(|item| build_shape(item, targets)).collect();
            json[if *or { "or" } else { "and" }] = serde_json::Value::Array(items);
            json
        }
        Shape::Not { keys, inner } => {
            let mut json = build(keys, targets);
            json["not"] = build_shape(inner, targets);
            json
        }
    }
}
