//! Each storage family's own conversion of what clients send: the wire
//! forms [`Value::to_json`] writes, and what Django accepts losslessly.

use chrono::TimeDelta;
use uuid::Uuid;

use super::{json_kind, parse_date, parse_datetime, Storage};
use crate::value::Value;

impl Storage {
    /// The family's own conversion of JSON: the wire form [`Value::to_json`]
    /// writes, and what Django accepts losslessly for it (a whole float for
    /// an integer, `2024-2-9` for a date). Numbers are never strings and
    /// strings never numbers; an integer out of range is an error, never a
    /// wrap. `null` is accepted where `nullable` says so, and on a
    /// non-nullable JSON field it is JSON's `null` (as in Django).
    pub fn value_from_json(self, json: &serde_json::Value, nullable: bool) -> Result<Value, String> {
        use serde_json::Value as J;
        match (self, json) {
            (_, J::Null) if nullable => Ok(Value::Null),
            (Storage::Json, j) => Ok(Value::Json(Box::new(j.clone()))),
            (_, J::Null) => Err("may not be null".into()),
            (Storage::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
            (Storage::Text, J::String(s)) => Ok(Value::Text(s.clone())),
            (Storage::F64, J::Number(n)) => {
                n.as_f64().filter(|f| f.is_finite()).map(Value::Float).ok_or_else(|| "must be a finite number".into())
            }
            (Storage::F32, J::Number(n)) => match n.as_f64().map(|f| f as f32) {
                Some(f) if f.is_finite() => Ok(Value::Float(f.into())),
                _ => Err(format!("must be a finite number in the range of a {}", self.name())),
            },
            (ty, J::Number(n)) if ty.is_integer() => match integer(n) {
                Integer::Whole(i) if (ty.integer_range().0..=ty.integer_range().1).contains(&i) => Ok(Value::Int(i)),
                Integer::Whole(_) | Integer::Beyond(_) => {
                    let (min, max) = ty.integer_range();
                    Err(format!("is out of range for a {} ({min} to {max})", ty.name()))
                }
                Integer::Fraction => Err(format!("must be a whole number ({})", ty.name())),
            },
            (Storage::Date, J::String(s)) => {
                parse_date(s).map(Value::Date).ok_or_else(|| "must be a date (YYYY-MM-DD)".into())
            }
            (Storage::DateTime, J::String(s)) => match parse_datetime(s) {
                Some((t, None)) => Ok(Value::DateTime(t)),
                Some((_, Some(_))) => Err("must be a date and time without a time zone offset".into()),
                None => Err("must be a date and time (YYYY-MM-DDTHH:MM:SS)".into()),
            },
            (Storage::DateTimeUtc, J::String(s)) => {
                // Without an offset the time is taken as UTC, the only zone
                // wyrmhole knows (Django's with TIME_ZONE = "UTC").
                let utc = parse_datetime(s)
                    .and_then(|(t, offset)| t.checked_sub_signed(TimeDelta::seconds(offset.unwrap_or(0).into())))
                    .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)));
                utc.map(|t| Value::DateTimeUtc(t.and_utc()))
                    .ok_or_else(|| "must be a date and time (YYYY-MM-DDTHH:MM:SSZ)".into())
            }
            (Storage::Uuid, J::String(s)) => {
                Uuid::try_parse(s).map(Value::Uuid).map_err(|_| "must be a UUID (hyphenated hex digits)".into())
            }
            (ty, other) => Err(format!("must be a {}, not {}", ty.name(), json_kind(other))),
        }
    }
}

/// A JSON number as an integer column sees it.
pub(crate) enum Integer {
    /// Whole and within 64 bits (a whole float included, as Django takes `5.0`).
    Whole(i64),
    /// Whole but beyond 64 bits: above (`Greater`) or below (`Less`) every `i64`.
    Beyond(std::cmp::Ordering),
    /// Not whole.
    Fraction,
}

/// Classifies a JSON number for an integer column.
pub(crate) fn integer(n: &serde_json::Number) -> Integer {
    use std::cmp::Ordering::{Greater, Less};
    if let Some(i) = n.as_i64() {
        return Integer::Whole(i);
    }
    if n.as_u64().is_some() {
        return Integer::Beyond(Greater);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 => {
            // 2^63 as f64 is exact; every whole float below it in magnitude fits.
            if f >= 9_223_372_036_854_775_808.0 {
                Integer::Beyond(Greater)
            } else if f < -9_223_372_036_854_775_808.0 {
                Integer::Beyond(Less)
            } else {
                Integer::Whole(f as i64)
            }
        }
        // serde_json reads integers beyond u64 as floats, so a huge integer
        // literal lands above; an infinite one (1e999) too.
        Some(f) if f.is_infinite() => Integer::Beyond(if f > 0.0 { Greater } else { Less }),
        _ => Integer::Fraction,
    }
}
