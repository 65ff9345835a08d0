//! Transforms: what a key may put between a field and its lookup, as Django
//! does. `due__year__gte` compares the year of `due`; `settings__theme`
//! compares the `theme` key of a JSON field.
//!
//! Date parts (`year`, `month`, `day`, `week_day`, `quarter`, `hour`) and
//! `date` are taken in UTC, the only zone wyrmhole knows; `week_day` counts
//! as Django does, 1 = Sunday to 7 = Saturday. A JSON key path is a list of
//! object keys; the SQL of each is in `crate::sql`, and `json.rs` evaluates
//! paths in memory.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::model::{FieldType, Storage, Value};

/// A transform of a field's value, applied before its lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Transform {
    /// An integer part of a date or date-time.
    Part(Part),
    /// The date of a date-time.
    Date,
    /// The value at a path of object keys in a JSON document.
    Key(Vec<String>),
}

/// The integer parts of dates and times Django extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Year,
    Month,
    Day,
    /// 1 = Sunday ... 7 = Saturday.
    WeekDay,
    Quarter,
    Hour,
}

impl Part {
    const ALL: [Part; 6] = [Part::Year, Part::Month, Part::Day, Part::WeekDay, Part::Quarter, Part::Hour];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Year => "year",
            Part::Month => "month",
            Part::Day => "day",
            Part::WeekDay => "week_day",
            Part::Quarter => "quarter",
            Part::Hour => "hour",
        }
    }
}

impl Transform {
    /// The date transform named `name`, if it applies to a field stored as
    /// `storage` (`hour` and `date` need a time).
    pub(crate) fn temporal(name: &str, storage: Storage) -> Option<Transform> {
        let timed = matches!(storage, Storage::DateTime | Storage::DateTimeUtc);
        if name == "date" {
            return timed.then_some(Transform::Date);
        }
        let part = Part::ALL.into_iter().find(|p| p.name() == name)?;
        (storage.is_temporal() && (part != Part::Hour || timed)).then_some(Transform::Part(part))
    }

    /// The names of the transforms a field stored as `storage` takes, for
    /// error messages.
    pub(crate) fn names_for(storage: Storage) -> Vec<&'static str> {
        let mut names: Vec<&'static str> =
            Part::ALL.into_iter().map(Part::name).filter(|n| Transform::temporal(n, storage).is_some()).collect();
        if Transform::temporal("date", storage).is_some() {
            names.push("date");
        }
        names
    }

    /// The type of the transformed value, which the lookup's operand takes.
    pub(crate) fn output(&self) -> FieldType {
        match self {
            Transform::Part(_) => FieldType::I32,
            Transform::Date => FieldType::Date,
            Transform::Key(_) => FieldType::Json,
        }
    }

    /// How the transform is written in a key (`year`, `theme__font`).
    pub(crate) fn key_text(&self) -> String {
        match self {
            Transform::Part(part) => part.name().into(),
            Transform::Date => "date".into(),
            Transform::Key(path) => path.join("__"),
        }
    }

    /// A date transform of a row's value (`Null` for NULL). JSON paths are
    /// evaluated by reference instead, in `json.rs`.
    pub(crate) fn apply(&self, value: &Value) -> Value {
        let stamp = match value {
            Value::Date(d) => Stamp::Date(*d),
            Value::DateTime(t) => Stamp::Time(*t),
            Value::DateTimeUtc(t) => Stamp::Time(t.naive_utc()),
            _ => return Value::Null,
        };
        let date = match stamp {
            Stamp::Date(d) => d,
            Stamp::Time(t) => t.date(),
        };
        let part = match self {
            Transform::Date => return Value::Date(date),
            Transform::Key(_) => return Value::Null,
            Transform::Part(part) => part,
        };
        let n = match part {
            Part::Year => date.year() as u32,
            Part::Month => date.month(),
            Part::Day => date.day(),
            Part::WeekDay => date.weekday().num_days_from_sunday() + 1,
            Part::Quarter => date.month().div_ceil(3),
            Part::Hour => match stamp {
                Stamp::Time(t) => t.hour(),
                Stamp::Date(_) => return Value::Null,
            },
        };
        Value::Int(n.into())
    }
}

enum Stamp {
    Date(NaiveDate),
    Time(NaiveDateTime),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_as_django_counts_them() {
        // 2024-03-03 was a Sunday.
        let sunday = Value::Date(NaiveDate::from_ymd_opt(2024, 3, 3).unwrap());
        let at = |t: Transform| t.apply(&sunday);
        assert_eq!(at(Transform::Part(Part::WeekDay)), Value::Int(1));
        assert_eq!(at(Transform::Part(Part::Quarter)), Value::Int(1));
        assert_eq!(at(Transform::Part(Part::Year)), Value::Int(2024));
        let saturday = NaiveDate::from_ymd_opt(2024, 12, 28).unwrap().and_hms_opt(23, 5, 0).unwrap();
        let t = Value::DateTimeUtc(saturday.and_utc());
        assert_eq!(Transform::Part(Part::WeekDay).apply(&t), Value::Int(7));
        assert_eq!(Transform::Part(Part::Quarter).apply(&t), Value::Int(4));
        assert_eq!(Transform::Part(Part::Hour).apply(&t), Value::Int(23));
        assert_eq!(Transform::Date.apply(&t), Value::Date(saturday.date()));
        assert_eq!(Transform::Part(Part::Year).apply(&Value::Null), Value::Null);
        assert_eq!(Transform::temporal("hour", Storage::Date), None);
        assert_eq!(Transform::temporal("year", Storage::Text), None);
        assert_eq!(Transform::names_for(Storage::Date), ["year", "month", "day", "week_day", "quarter"]);
    }
}
