//! Field types: which Rust types can be model fields, how each is stored and
//! compared ([`Storage`]), and how it is written as JSON ([`FieldType`]).
//!
//! The set is open. An application adds a field type by implementing
//! [`FieldValue`] for it: it names the [`Storage`] family its values are
//! carried, bound and compared as (so SQL and memory agree on it without
//! wyrmhole knowing the type), and may give its own JSON conversion with
//! [`FieldType::custom`]. Reading it from the database is Diesel's
//! `FromSql`, as for any Diesel field.
//!
//! This module is part of the pure core: no database, no runtime.

mod convert;
mod time;

use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::value::{Value, ValueRef};

pub(crate) use convert::{integer, Integer};
pub(crate) use time::{parse_date, parse_datetime};

/// How a field's values are carried, bound in SQL and compared: the closed
/// set of families both databases and the in-memory evaluation implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// `bool` (Diesel `Bool`), as [`Value::Bool`].
    Bool,
    /// `i16` (`SmallInt`), as [`Value::Int`].
    I16,
    /// `i32` (`Integer`), as [`Value::Int`].
    I32,
    /// `i64` (`BigInt`), as [`Value::Int`].
    I64,
    /// `f32` (`Float`, PostgreSQL `real`), as the [`Value::Float`] it widens to.
    F32,
    /// `f64` (`Double`), as [`Value::Float`].
    F64,
    /// `String` (`Text`), as [`Value::Text`], compared by bytes.
    Text,
    /// `chrono::NaiveDate` (`Date`), as [`Value::Date`].
    Date,
    /// `chrono::NaiveDateTime` (`Timestamp`), as [`Value::DateTime`].
    DateTime,
    /// `chrono::DateTime<Utc>` ([`crate::sql::types::TimestampUtc`]), as [`Value::DateTimeUtc`].
    DateTimeUtc,
    /// `uuid::Uuid` ([`crate::sql::types::Uuid`]: `uuid` on PostgreSQL,
    /// text on SQLite), as [`Value::Uuid`].
    Uuid,
    /// `serde_json::Value` ([`crate::sql::types::Json`]: `jsonb` on
    /// PostgreSQL, text on SQLite), as [`Value::Json`].
    Json,
}

impl Storage {
    /// The name used for this family in error messages and the protocol docs.
    pub fn name(self) -> &'static str {
        match self {
            Storage::Bool => "boolean",
            Storage::I16 => "16-bit integer",
            Storage::I32 => "32-bit integer",
            Storage::I64 => "64-bit integer",
            Storage::F32 => "32-bit number",
            Storage::F64 => "number",
            Storage::Text => "string",
            Storage::Date => "date",
            Storage::DateTime => "date and time",
            Storage::DateTimeUtc => "date and time in UTC",
            Storage::Uuid => "UUID",
            Storage::Json => "JSON",
        }
    }

    /// Whether values of this family are integers.
    pub fn is_integer(self) -> bool {
        matches!(self, Storage::I16 | Storage::I32 | Storage::I64)
    }

    /// Whether values are dates or date-times (which the `__year`, ...
    /// transforms apply to).
    pub fn is_temporal(self) -> bool {
        matches!(self, Storage::Date | Storage::DateTime | Storage::DateTimeUtc)
    }

    /// The inclusive range of an integer family.
    pub fn integer_range(self) -> (i64, i64) {
        match self {
            Storage::I16 => (i16::MIN.into(), i16::MAX.into()),
            Storage::I32 => (i32::MIN.into(), i32::MAX.into()),
            _ => (i64::MIN, i64::MAX),
        }
    }
}

/// An application type's conversion of what a client sent (see [`FieldType::custom`]).
pub type FromJson = fn(&serde_json::Value) -> Result<Value, String>;

/// An application type's conversion of a value for clients.
pub type ToJson = fn(&Value) -> serde_json::Value;

/// A field's type: its [`Storage`] family, the name errors use, and its JSON
/// conversion. The built-in types are the constants below; an application's
/// type is made with [`FieldType::custom`].
#[derive(Clone, Copy)]
pub struct FieldType {
    storage: Storage,
    name: &'static str,
    from_json: Option<FromJson>,
    to_json: Option<ToJson>,
}

#[allow(non_upper_case_globals)]
impl FieldType {
    /// `bool`.
    pub const Bool: FieldType = FieldType::of(Storage::Bool);
    /// `i16`.
    pub const I16: FieldType = FieldType::of(Storage::I16);
    /// `i32`.
    pub const I32: FieldType = FieldType::of(Storage::I32);
    /// `i64`.
    pub const I64: FieldType = FieldType::of(Storage::I64);
    /// `f32`.
    pub const F32: FieldType = FieldType::of(Storage::F32);
    /// `f64`.
    pub const F64: FieldType = FieldType::of(Storage::F64);
    /// `String`.
    pub const Text: FieldType = FieldType::of(Storage::Text);
    /// `chrono::NaiveDate`.
    pub const Date: FieldType = FieldType::of(Storage::Date);
    /// `chrono::NaiveDateTime`.
    pub const DateTime: FieldType = FieldType::of(Storage::DateTime);
    /// `chrono::DateTime<Utc>`.
    pub const DateTimeUtc: FieldType = FieldType::of(Storage::DateTimeUtc);
    /// `uuid::Uuid`.
    pub const Uuid: FieldType = FieldType::of(Storage::Uuid);
    /// `serde_json::Value`.
    pub const Json: FieldType = FieldType::of(Storage::Json);

    /// A built-in type: the family's own name and JSON conversion.
    pub const fn of(storage: Storage) -> FieldType {
        FieldType { storage, name: "", from_json: None, to_json: None }
    }

    /// An application's type stored as `storage`, named `name` in error
    /// messages, with its own JSON conversion: `from_json` gets every
    /// non-null JSON value a client sends for the field (in writes and as
    /// filter operands) and returns a value of the family (a
    /// [`Value::Text`] for [`Storage::Text`], ...) or the reason it refuses;
    /// `to_json` writes what clients receive. Values compare as their
    /// family does, in SQL and in memory alike.
    pub const fn custom(storage: Storage, name: &'static str, from_json: FromJson, to_json: ToJson) -> FieldType {
        FieldType { storage, name, from_json: Some(from_json), to_json: Some(to_json) }
    }

    /// The storage family.
    pub const fn storage(self) -> Storage {
        self.storage
    }

    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        if self.name.is_empty() {
            self.storage.name()
        } else {
            self.name
        }
    }

    /// Whether values of this type are integers.
    pub fn is_integer(self) -> bool {
        self.storage.is_integer()
    }

    /// Converts what a client sent to a value (see [`Storage::value_from_json`]
    /// for the built-in types; an application's type uses its own).
    pub fn value_from_json(self, json: &serde_json::Value, nullable: bool) -> Result<Value, String> {
        match self.from_json {
            Some(_) if json.is_null() && nullable => Ok(Value::Null),
            Some(_) if json.is_null() && self.storage != Storage::Json => Err("may not be null".into()),
            Some(convert) => {
                let value = convert(json)?;
                // The family's own check keeps the app's value in range.
                self.storage.value_from_json(&value.to_json(), false)
            }
            None => self.storage.value_from_json(json, nullable),
        }
    }

    /// What clients receive for a value of this type.
    /// An `f32` is written as the shortest decimal that reads back as that
    /// `f32` (`0.1`, as PostgreSQL writes a `real` and DRF then sends it),
    /// not as the `f64` it widens to (`0.10000000149011612`).
    pub fn value_to_json(self, value: &Value) -> serde_json::Value {
        match (self.to_json, value) {
            (None, Value::Float(f)) if self.storage == Storage::F32 && f.is_finite() => {
                let shortest: f64 = (*f as f32).to_string().parse().unwrap_or(*f);
                serde_json::Number::from_f64(shortest).map_or_else(|| value.to_json(), serde_json::Value::Number)
            }
            (_, Value::Null) | (None, _) => value.to_json(),
            (Some(convert), value) => convert(value),
        }
    }
}

impl PartialEq for FieldType {
    fn eq(&self, other: &FieldType) -> bool {
        self.storage == other.storage && self.name == other.name
    }
}

impl Eq for FieldType {}

impl Hash for FieldType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.storage, self.name).hash(state);
    }
}

impl fmt::Debug for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{:?}", self.storage)
        } else {
            write!(f, "{}({:?})", self.name, self.storage)
        }
    }
}

/// The JSON kind of a value, for error messages.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A Rust type that can be a model field: the derive names this trait on
/// each field, so an unsupported type is reported at that field.
///
/// Implemented for `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String`,
/// `chrono::NaiveDate`, `chrono::NaiveDateTime`, `chrono::DateTime<Utc>`,
/// `uuid::Uuid`, `serde_json::Value`, and `Option` of each. An application
/// implements it for its own types; here, an amount of money kept as whole
/// cents in a `BIGINT` column and written as a decimal string:
///
/// ```
/// use wyrmhole::{FieldType, FieldValue, Storage, Value, ValueRef};
///
/// struct Cents(i64);
///
/// fn cents_from_json(json: &serde_json::Value) -> Result<Value, String> {
///     let text = json.as_str().ok_or("must be an amount such as \"12.50\"")?;
///     let (units, cents) = text.split_once('.').unwrap_or((text, "00"));
///     match (units.parse::<i64>(), cents.len(), cents.parse::<i64>()) {
///         (Ok(u), 2, Ok(c)) if !units.starts_with('-') => Ok(Value::Int(u * 100 + c)),
///         _ => Err("must be an amount such as \"12.50\"".into()),
///     }
/// }
///
/// fn cents_to_json(value: &Value) -> serde_json::Value {
///     match value {
///         Value::Int(c) => format!("{}.{:02}", c / 100, c % 100).into(),
///         other => other.to_json(),
///     }
/// }
///
/// impl FieldValue for Cents {
///     // Stored, bound and compared as a 64-bit integer: `price__gt` orders
///     // amounts by value in SQL and in memory alike.
///     const TYPE: FieldType = FieldType::custom(Storage::I64, "amount", cents_from_json, cents_to_json);
///     fn value_ref(&self) -> ValueRef<'_> {
///         ValueRef::Int(self.0)
///     }
/// }
///
/// let ty = <Cents as FieldValue>::TYPE;
/// assert_eq!(ty.value_from_json(&"12.50".into(), false), Ok(Value::Int(1250)));
/// assert_eq!(ty.value_to_json(&Value::Int(1205)), serde_json::json!("12.05"));
/// ```
///
/// For the database, the type also needs Diesel's `FromSql` for its column
/// (here `BigInt`), as any field of a `QueryableByName` struct does.
pub trait FieldValue {
    /// The field's type.
    const TYPE: FieldType;
    /// Whether the type admits `NULL`.
    const NULLABLE: bool = false;
    /// Borrows the value, as its family.
    fn value_ref(&self) -> ValueRef<'_>;
}

macro_rules! field_value {
    ($t:ty, $ft:expr, |$v:ident| $e:expr) => {
        impl FieldValue for $t {
            const TYPE: FieldType = $ft;
            fn value_ref(&self) -> ValueRef<'_> {
                let $v = self;
                $e
            }
        }
    };
}

field_value!(bool, FieldType::Bool, |v| ValueRef::Bool(*v));
field_value!(i16, FieldType::I16, |v| ValueRef::Int(i64::from(*v)));
field_value!(i32, FieldType::I32, |v| ValueRef::Int(i64::from(*v)));
field_value!(i64, FieldType::I64, |v| ValueRef::Int(*v));
field_value!(f32, FieldType::F32, |v| ValueRef::Float(f64::from(*v)));
field_value!(f64, FieldType::F64, |v| ValueRef::Float(*v));
field_value!(String, FieldType::Text, |v| ValueRef::Text(v));
field_value!(NaiveDate, FieldType::Date, |v| ValueRef::Date(*v));
field_value!(NaiveDateTime, FieldType::DateTime, |v| ValueRef::DateTime(*v));
field_value!(DateTime<Utc>, FieldType::DateTimeUtc, |v| ValueRef::DateTimeUtc(*v));
field_value!(Uuid, FieldType::Uuid, |v| ValueRef::Uuid(*v));
field_value!(serde_json::Value, FieldType::Json, |v| ValueRef::Json(v));

impl<T: FieldValue> FieldValue for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const NULLABLE: bool = true;
    fn value_ref(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.value_ref(),
            None => ValueRef::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from(storage: Storage, json: serde_json::Value) -> Result<Value, String> {
        storage.value_from_json(&json, false)
    }

    #[test]
    fn integers_take_whole_floats_and_refuse_the_rest() {
        assert_eq!(from(Storage::I32, json!(5.0)), Ok(Value::Int(5)));
        assert_eq!(from(Storage::I64, json!(-0.0)), Ok(Value::Int(0)));
        assert!(from(Storage::I32, json!(5.5)).unwrap_err().contains("whole number"));
        assert!(from(Storage::I16, json!(40000.0)).unwrap_err().contains("out of range"));
        let huge: serde_json::Value = serde_json::from_str("99999999999999999999").unwrap();
        assert!(from(Storage::I64, huge).unwrap_err().contains("out of range"), "not 'must be a whole number'");
        assert!(from(Storage::I64, json!("5")).unwrap_err().contains("not a string"));
    }

    #[test]
    fn f32_is_rounded_once_on_the_way_in() {
        assert_eq!(from(Storage::F32, json!(0.1)), Ok(Value::Float(f64::from(0.1f32))));
        assert!(from(Storage::F32, json!(1e39)).is_err());
        let out = FieldType::F32.value_to_json(&Value::Float(f64::from(0.1f32)));
        assert_eq!(out, json!(0.1), "written as the f32 it is");
        assert_eq!(FieldType::F32.value_from_json(&out, false), Ok(Value::Float(f64::from(0.1f32))));
        assert_eq!(FieldType::F32.value_to_json(&Value::Float(-0.0)).to_string(), "-0.0");
    }

    #[test]
    fn dates_times_and_uuids() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(from(Storage::Date, json!("2024-2-29")), Ok(Value::Date(date)));
        assert!(from(Storage::Date, json!("2023-02-29")).unwrap_err().contains("must be a date"));
        let t = date.and_hms_opt(12, 0, 0).unwrap();
        assert_eq!(from(Storage::DateTime, json!("2024-02-29T12:00")), Ok(Value::DateTime(t)));
        assert!(from(Storage::DateTime, json!("2024-02-29T12:00Z")).unwrap_err().contains("offset"));
        assert_eq!(from(Storage::DateTimeUtc, json!("2024-02-29T13:30+01:30")), Ok(Value::DateTimeUtc(t.and_utc())));
        assert_eq!(from(Storage::DateTimeUtc, json!("2024-02-29 12:00")), Ok(Value::DateTimeUtc(t.and_utc())));
        assert!(from(Storage::DateTimeUtc, json!("0001-01-01T00:00+01:00")).is_err(), "before year 1 in UTC");
        let u = json!("A1B2C3D4-E5F6-0718-293A-4B5C6D7E8F90");
        assert_eq!(from(Storage::Uuid, u).unwrap().to_json(), json!("a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"));
        assert!(from(Storage::Uuid, json!(5)).is_err());
        assert_eq!(from(Storage::Json, json!(null)), Ok(Value::Json(Box::new(json!(null)))));
        assert_eq!(Storage::Json.value_from_json(&json!(null), true), Ok(Value::Null));
    }
}
