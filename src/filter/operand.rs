//! Operands: what each lookup takes, checked against the type it compares
//! with, and Django's lossless coercions.
//!
//! - a whole float is an integer (`{"priority": 5.0}`);
//! - an integer beyond the column's range (64 bits or not) answers as Django
//!   does: `exact` and `gt`/`gte` above the range, `lt`/`lte` below it,
//!   match nothing; `lt`/`lte` above and `gt`/`gte` below match every row
//!   (NULL included: Django drops the condition); a `range` bound is cut to
//!   the column's range; `in` drops values out of it;
//! - `null` inside `in` is ignored (NULL equals nothing);
//! - on JSON, `exact` takes JSON scalars (see `json.rs`).

use std::cmp::Ordering;

use super::fold::fold_case;
use super::{Cmp, Lookup, Op, TextKind};
use crate::field::{integer, Integer};
use crate::model::{json_kind, FieldType, Storage, Value};

/// The most values one `in` may list. SQLite allows 32766 bound parameters
/// per statement and PostgreSQL 65535; past this a client should be
/// narrowing its query another way.
pub(super) const MAX_IN_VALUES: usize = 1000;

/// What a lookup with its operand tests.
pub(super) enum Answer {
    Op(Op),
    /// No row passes.
    Never,
    /// Every row passes, NULL or not.
    Always,
}

/// The test for `lookup` with `operand`, on values of type `ty`.
pub(super) fn parse_operand(ty: FieldType, lookup: Lookup, operand: &serde_json::Value) -> Result<Answer, Vec<String>> {
    use serde_json::Value as J;
    let one = |m: String| vec![m];
    if ty.storage() == Storage::Json {
        return json_operand(lookup, operand);
    }
    let op = match lookup {
        Lookup::Exact => match operand {
            J::Null => Op::IsNull(true),
            _ => match value(ty, operand).map_err(one)? {
                Operand::In(v) => Op::Eq(v),
                Operand::Above | Operand::Below => return Ok(Answer::Never),
            },
        },
        Lookup::IExact => match operand {
            J::Null => Op::IsNull(true),
            _ => Op::IExact(fold_case(text(operand).map_err(one)?).into_owned()),
        },
        Lookup::Contains | Lookup::IContains => text_op(TextKind::Contains, lookup == Lookup::IContains, operand)?,
        Lookup::StartsWith | Lookup::IStartsWith => {
            text_op(TextKind::StartsWith, lookup == Lookup::IStartsWith, operand)?
        }
        Lookup::EndsWith | Lookup::IEndsWith => text_op(TextKind::EndsWith, lookup == Lookup::IEndsWith, operand)?,
        Lookup::In => return parse_in(ty, operand),
        Lookup::Gt => return compare(Cmp::Gt, ordered(ty, operand).map_err(one)?),
        Lookup::Gte => return compare(Cmp::Gte, ordered(ty, operand).map_err(one)?),
        Lookup::Lt => return compare(Cmp::Lt, ordered(ty, operand).map_err(one)?),
        Lookup::Lte => return compare(Cmp::Lte, ordered(ty, operand).map_err(one)?),
        Lookup::Range => return parse_range(ty, operand),
        Lookup::IsNull => match operand {
            J::Bool(is) => Op::IsNull(*is),
            other => return Err(one(format!("must be true or false, not {}", json_kind(other)))),
        },
        Lookup::HasKey => unreachable!("has_key applies to JSON only"),
    };
    Ok(Answer::Op(op))
}

/// An ordered comparison, with Django's answer for bounds beyond the range.
fn compare(cmp: Cmp, operand: Operand) -> Result<Answer, Vec<String>> {
    Ok(match (cmp, operand) {
        (cmp, Operand::In(v)) => Answer::Op(Op::Cmp(cmp, v)),
        (Cmp::Gt | Cmp::Gte, Operand::Above) | (Cmp::Lt | Cmp::Lte, Operand::Below) => Answer::Never,
        (Cmp::Gt | Cmp::Gte, Operand::Below) | (Cmp::Lt | Cmp::Lte, Operand::Above) => Answer::Always,
    })
}

fn parse_range(ty: FieldType, operand: &serde_json::Value) -> Result<Answer, Vec<String>> {
    let [low, high] = match operand.as_array().map(Vec::as_slice) {
        Some([low, high]) => [low, high],
        _ => return Err(vec![format!("must be a list of two values [low, high], not {}", describe(operand))]),
    };
    let (low, high) = match (ordered(ty, low), ordered(ty, high)) {
        (Ok(low), Ok(high)) => (low, high),
        (low, high) => {
            let low = low.err().map(|m| format!("low bound {m}"));
            let high = high.err().map(|m| format!("high bound {m}"));
            return Err(low.into_iter().chain(high).collect());
        }
    };
    // SQL's BETWEEN with a bound beyond the column compares numerically:
    // the bound is as good as the end of the range.
    let (min, max) = ty.storage().integer_range();
    let low = match low {
        Operand::Above => return Ok(Answer::Never),
        Operand::Below => Value::Int(min),
        Operand::In(v) => v,
    };
    let high = match high {
        Operand::Below => return Ok(Answer::Never),
        Operand::Above => Value::Int(max),
        Operand::In(v) => v,
    };
    Ok(Answer::Op(Op::Range(low, high)))
}

fn text_op(kind: TextKind, fold: bool, operand: &serde_json::Value) -> Result<Op, Vec<String>> {
    if operand.is_null() {
        return Err(vec!["cannot be null; use isnull to match null".into()]);
    }
    let needle = text(operand).map_err(|m| vec![m])?;
    let needle = if fold { fold_case(needle).into_owned() } else { needle.to_owned() };
    Ok(Op::Text { kind, fold, needle })
}

fn text(operand: &serde_json::Value) -> Result<&str, String> {
    match operand {
        serde_json::Value::String(s) => Ok(s),
        other => Err(format!("must be a {}, not {}", FieldType::Text.name(), json_kind(other))),
    }
}

fn parse_in(ty: FieldType, operand: &serde_json::Value) -> Result<Answer, Vec<String>> {
    let Some(items) = operand.as_array() else {
        return Err(vec![format!("must be a list of values, not {}", describe(operand))]);
    };
    if items.len() > MAX_IN_VALUES {
        return Err(vec![format!("may list at most {MAX_IN_VALUES} values, not {}", items.len())]);
    }
    let mut values = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    // `null` is skipped, as Django does: NULL is equal to nothing.
    for (i, item) in items.iter().enumerate().filter(|(_, item)| !item.is_null()) {
        match value(ty, item) {
            Ok(Operand::In(v)) => values.push(v),
            // Beyond the column's range: equal to no row.
            Ok(Operand::Above | Operand::Below) => {}
            Err(m) => errors.push(format!("item {i} {m}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    values.sort_by(total_order);
    values.dedup();
    Ok(match values.len() {
        0 => Answer::Never,
        1 => Answer::Op(Op::Eq(values.remove(0))),
        _ => Answer::Op(Op::In(values)),
    })
}

/// An operand: a value of the type, or a whole number beyond an integer
/// column's range.
enum Operand {
    In(Value),
    Above,
    Below,
}

/// A non-null operand of the type, with `-0.0` made `0.0` (they compare
/// equal everywhere; one spelling keeps canonical keys equal).
fn value(ty: FieldType, operand: &serde_json::Value) -> Result<Operand, String> {
    if let (true, serde_json::Value::Number(n)) = (ty == FieldType::of(ty.storage()) && ty.is_integer(), operand) {
        let (min, max) = ty.storage().integer_range();
        match integer(n) {
            Integer::Whole(i) if i > max => return Ok(Operand::Above),
            Integer::Whole(i) if i < min => return Ok(Operand::Below),
            Integer::Beyond(Ordering::Greater) => return Ok(Operand::Above),
            Integer::Beyond(_) => return Ok(Operand::Below),
            _ => {}
        }
    }
    match ty.value_from_json(operand, false)? {
        // Float patterns compare with `==`, so this arm also takes -0.0.
        Value::Float(0.0) => Ok(Operand::In(Value::Float(0.0))),
        v => Ok(Operand::In(v)),
    }
}

/// An operand of an ordered comparison, which cannot be null.
fn ordered(ty: FieldType, operand: &serde_json::Value) -> Result<Operand, String> {
    if operand.is_null() {
        return Err("cannot be compared with null; use isnull to match null".into());
    }
    value(ty, operand)
}

/// JSON lookups: `exact` and `in` with scalars, `isnull`, `has_key`.
fn json_operand(lookup: Lookup, operand: &serde_json::Value) -> Result<Answer, Vec<String>> {
    use serde_json::Value as J;
    let one = |m: String| vec![m];
    let op = match (lookup, operand) {
        (Lookup::IsNull, J::Bool(is)) => Op::IsNull(*is),
        (Lookup::IsNull, other) => return Err(one(format!("must be true or false, not {}", json_kind(other)))),
        (Lookup::HasKey, J::String(key)) => Op::HasKey(key.clone()),
        (Lookup::HasKey, other) => return Err(one(format!("must be a key (a string), not {}", json_kind(other)))),
        (Lookup::Exact, scalar) => Op::Eq(json_scalar(scalar).map_err(one)?),
        (Lookup::In, J::Array(items)) if items.len() > MAX_IN_VALUES => {
            return Err(one(format!("may list at most {MAX_IN_VALUES} values, not {}", items.len())));
        }
        (Lookup::In, J::Array(items)) => {
            // `null` is skipped, as Django's `in` does (it cannot ask for
            // JSON's null there).
            let mut values = Vec::with_capacity(items.len());
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate().filter(|(_, item)| !item.is_null()) {
                match json_scalar(item) {
                    Ok(v) => values.push(v),
                    Err(m) => errors.push(format!("item {i} {m}")),
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            // One spelling per set of values, for canonical keys.
            values.sort_by_key(|v| v.to_json().to_string());
            values.dedup_by_key(|v| v.to_json().to_string());
            return Ok(match values.len() {
                0 => Answer::Never,
                1 => Answer::Op(Op::Eq(values.remove(0))),
                _ => Answer::Op(Op::In(values)),
            });
        }
        (Lookup::In, other) => return Err(one(format!("must be a list of values, not {}", describe(other)))),
        (other, _) => return Err(one(format!("lookup `{}` does not apply to JSON", other.name()))),
    };
    Ok(Answer::Op(op))
}

/// A JSON operand of `exact` or `in`: a string, a number within 64 bits, a
/// boolean or `null`.
fn json_scalar(operand: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match operand {
        // Beyond 64 bits SQLite's JSON keeps an approximation.
        J::Number(n) if n.as_i64().is_none() && n.as_f64().is_some_and(|f| f.abs() >= 9.2e18) => {
            Err("must be a number within 64 bits".into())
        }
        J::Array(_) | J::Object(_) => Err(format!(
            "must be a string, number, boolean or null, not {}; compare an object's keys one by one",
            json_kind(operand)
        )),
        scalar => Ok(Value::Json(Box::new(scalar.clone()))),
    }
}

/// A total order on the operands of one `in` (all of one type, floats
/// finite and without `-0.0`), consistent with how rows compare to them.
pub(super) fn total_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Date(a), Value::Date(b)) => a.cmp(b),
        (Value::DateTime(a), Value::DateTime(b)) => a.cmp(b),
        (Value::DateTimeUtc(a), Value::DateTimeUtc(b)) => a.cmp(b),
        (Value::Uuid(a), Value::Uuid(b)) => a.as_bytes().cmp(b.as_bytes()),
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(_) => 3,
        Value::Text(_) => 4,
        Value::Date(_) => 5,
        Value::DateTime(_) => 6,
        Value::DateTimeUtc(_) => 7,
        Value::Uuid(_) => 8,
        Value::Json(_) => 9,
        Value::Related(_) => 10,
    }
}

/// The JSON kind, and the value itself for scalars, so "must be a list, not
/// the string \"abc\"" says what was sent.
pub(super) fn describe(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::String(_) | serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
            format!("{} ({json})", json_kind(json))
        }
        serde_json::Value::Array(items) => format!("a list of {} values", items.len()),
        other => json_kind(other).into(),
    }
}
