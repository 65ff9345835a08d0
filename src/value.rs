//! [`Value`] and [`ValueRef`]: a field's value as wyrmhole carries it, owned
//! (rows in changes, filter operands) or borrowed from a model instance.
//!
//! There is one variant per storage family ([`crate::field::Storage`]), not
//! per Rust type: an `i16` and an `i64` are both [`Value::Int`], and an
//! application's own field type is carried as the family it stores as. The
//! family is what SQL binds and compares, so carrying it is what keeps
//! evaluation in memory and in SQL in agreement.
//!
//! [`Value::to_json`] writes the wire form of each family: ISO 8601 as
//! Django REST framework writes it, hyphenated lowercase UUIDs.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use uuid::Uuid;

/// A row as owned values, in the order of its model's fields (then, in a
/// change, its context: see [`Value::Related`]). Changes travel through the
/// fan-out and between processes in this form.
pub type Row = Box<[Value]>;

/// A field value owned by a row or a filter.
///
/// Integers of every width are held as `i64`, and `f32` as the `f64` it
/// widens to; the field's [`FieldType`](crate::FieldType) knows the real type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL` / `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// Text.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time without time zone, to the microsecond.
    DateTime(NaiveDateTime),
    /// An instant, in UTC, to the microsecond.
    DateTimeUtc(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
    /// A JSON document (boxed: most rows have none, and `Value` stays small).
    Json(Box<serde_json::Value>),
    /// The rows a relation path reaches from a row: carried after a
    /// change's own fields, one per path of its model
    /// ([`crate::relation`]), never a field's value.
    Related(std::sync::Arc<[Row]>),
}

impl Value {
    /// Borrows the value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Date(d) => ValueRef::Date(*d),
            Value::DateTime(d) => ValueRef::DateTime(*d),
            Value::DateTimeUtc(d) => ValueRef::DateTimeUtc(*d),
            Value::Uuid(u) => ValueRef::Uuid(*u),
            Value::Json(j) => ValueRef::Json(j),
            Value::Related(rows) => ValueRef::Related(rows),
        }
    }

    /// The value as JSON, in its family's wire form.
    pub fn to_json(&self) -> serde_json::Value {
        self.as_ref().to_json()
    }

    /// Whether the two would be sent to clients alike: `==`, except that
    /// `0.0` and `-0.0` differ (JSON keeps the sign).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A field value borrowed from a model instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL` / `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(&'a str),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time without time zone.
    DateTime(NaiveDateTime),
    /// An instant in UTC.
    DateTimeUtc(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
    /// A JSON document.
    Json(&'a serde_json::Value),
    /// See [`Value::Related`].
    Related(&'a [Row]),
}

impl ValueRef<'_> {
    /// Copies the value out. Times are cut to the microsecond, as the
    /// databases (and Django) keep them, so a value read back from either
    /// equals the one written.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::DateTime(d) => Value::DateTime(to_micros(d)),
            ValueRef::DateTimeUtc(d) => Value::DateTimeUtc(to_micros(d.naive_utc()).and_utc()),
            ValueRef::Uuid(u) => Value::Uuid(u),
            ValueRef::Json(j) => Value::Json(Box::new(j.clone())),
            ValueRef::Related(rows) => Value::Related(rows.into()),
        }
    }

    /// The value as JSON: dates `2024-02-29`, date-times
    /// `2024-02-29T13:05:00` (with `.123456` when there are microseconds, and
    /// `Z` when in UTC), UUIDs hyphenated in lowercase.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Bool(b) => b.into(),
            ValueRef::Int(i) => i.into(),
            ValueRef::Float(f) => {
                serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
            }
            ValueRef::Text(s) => s.into(),
            ValueRef::Date(d) => d.format("%Y-%m-%d").to_string().into(),
            ValueRef::DateTime(d) => iso_datetime(d, "").into(),
            ValueRef::DateTimeUtc(d) => iso_datetime(d.naive_utc(), "Z").into(),
            ValueRef::Uuid(u) => u.hyphenated().to_string().into(),
            ValueRef::Json(j) => j.clone(),
            ValueRef::Related(rows) => {
                rows.iter().map(|row| row.iter().map(Value::to_json).collect::<serde_json::Value>()).collect()
            }
        }
    }
}

/// Python's `isoformat()`, which DRF sends: microseconds only when there
/// are some, always six digits.
fn iso_datetime(d: NaiveDateTime, zone: &str) -> String {
    let micros = d.nanosecond() / 1_000;
    if micros == 0 {
        format!("{}{zone}", d.format("%Y-%m-%dT%H:%M:%S"))
    } else {
        format!("{}.{micros:06}{zone}", d.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// The date-time cut to the microsecond (a leap second's extra nanoseconds
/// included).
pub(crate) fn to_micros(d: NaiveDateTime) -> NaiveDateTime {
    let nanos = d.nanosecond();
    d.with_nanosecond(nanos - nanos % 1_000).unwrap_or(d)
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Value {
                $e
            }
        })*
    };
}

value_from! {
    bool => |v| Value::Bool(v),
    i16 => |v| Value::Int(v.into()),
    i32 => |v| Value::Int(v.into()),
    i64 => |v| Value::Int(v),
    f32 => |v| Value::Float(v.into()),
    f64 => |v| Value::Float(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
    NaiveDate => |v| Value::Date(v),
    NaiveDateTime => |v| Value::DateTime(to_micros(v)),
    DateTime<Utc> => |v| Value::DateTimeUtc(to_micros(v.naive_utc()).and_utc()),
    Uuid => |v| Value::Uuid(v),
    serde_json::Value => |v| Value::Json(Box::new(v)),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_forms_are_drf_s() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(Value::Date(d).to_json(), json!("2024-02-29"));
        let t = d.and_hms_opt(13, 5, 0).unwrap();
        assert_eq!(Value::DateTime(t).to_json(), json!("2024-02-29T13:05:00"));
        assert_eq!(Value::DateTimeUtc(t.and_utc()).to_json(), json!("2024-02-29T13:05:00Z"));
        let t = d.and_hms_nano_opt(13, 5, 0, 120_000_999).unwrap();
        assert_eq!(Value::from(t).to_json(), json!("2024-02-29T13:05:00.120000"));
        assert_eq!(Value::from(t.and_utc()).to_json(), json!("2024-02-29T13:05:00.120000Z"));
        let u = Uuid::from_u128(0xA1B2C3D4_E5F6_0718_293A_4B5C6D7E8F90);
        assert_eq!(Value::Uuid(u).to_json(), json!("a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"));
        assert_eq!(Value::from(json!({"a": [1]})).to_json(), json!({"a": [1]}));
        assert!(std::mem::size_of::<Value>() <= 32);
    }
}
