//! The SQL of transforms (`due__year`) and of JSON tests (`settings__theme`),
//! which read a value out of a column before comparing it; the rest of a
//! predicate is `render.rs`'s.

use super::Writer;
use crate::filter::{Op, Part, Transform};
use crate::model::{FieldType, Storage, Value};
use crate::sql::Dialect;

impl Writer {
    /// A date part or the date of a date, date-time or instant, in UTC:
    /// what `Transform::apply` computes. SQLite reads its text forms of
    /// dates with `strftime`, converting an offset to UTC.
    pub(super) fn transform(&self, column: &str, storage: Storage, transform: &Transform) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                let part = |format: &str| format!("CAST(strftime('{format}', {column}) AS INTEGER)");
                match transform {
                    Transform::Date => format!("date({column})"),
                    Transform::Part(Part::Year) => part("%Y"),
                    Transform::Part(Part::Month) => part("%m"),
                    Transform::Part(Part::Day) => part("%d"),
                    Transform::Part(Part::Hour) => part("%H"),
                    // strftime's %w is 0 for Sunday, Django's week_day 1.
                    Transform::Part(Part::WeekDay) => format!("({} + 1)", part("%w")),
                    Transform::Part(Part::Quarter) => format!("(({} + 2) / 3)", part("%m")),
                    Transform::Key(_) => unreachable!("JSON paths are rendered by `json`"),
                }
            }
            Dialect::Postgres => {
                // EXTRACT on a timestamptz uses the session's zone.
                let source = match storage {
                    Storage::DateTimeUtc => format!("({column} AT TIME ZONE 'UTC')"),
                    _ => column.to_owned(),
                };
                let part = |name: &str| format!("CAST(EXTRACT({name} FROM {source}) AS INTEGER)");
                match transform {
                    Transform::Date => format!("CAST({source} AS DATE)"),
                    Transform::Part(Part::Year) => part("YEAR"),
                    Transform::Part(Part::Month) => part("MONTH"),
                    Transform::Part(Part::Day) => part("DAY"),
                    Transform::Part(Part::Hour) => part("HOUR"),
                    Transform::Part(Part::WeekDay) => format!("({} + 1)", part("DOW")),
                    Transform::Part(Part::Quarter) => part("QUARTER"),
                    Transform::Key(_) => unreachable!("JSON paths are rendered by `json`"),
                }
            }
        }
    }

    /// A JSON test at a key path (empty: the whole document), as
    /// `filter/json.rs` decides it. PostgreSQL follows the path with `->`
    /// and compares `jsonb`; SQLite asks `json_type` what is there, so that
    /// `"1"`, `1` and `true` stay apart, and compares scalars with
    /// `json_extract` (numbers numerically, text by bytes).
    pub(super) fn json(&mut self, column: &str, path: &[String], op: &Op) {
        match self.dialect {
            Dialect::Postgres => {
                let at_path = |w: &mut Writer, suffix: &str| {
                    w.push(&format!("({column}"));
                    for key in path {
                        w.push(" -> ");
                        w.bind_text(key);
                    }
                    w.push(")");
                    w.push(suffix);
                };
                match op {
                    Op::IsNull(true) => at_path(self, " IS NULL"),
                    Op::IsNull(false) => at_path(self, " IS NOT NULL"),
                    Op::Eq(Value::Json(operand)) => {
                        at_path(self, " = CAST(");
                        self.bind_text(&operand.to_string());
                        self.push(" AS jsonb)");
                    }
                    Op::In(operands) => {
                        at_path(self, " IN (");
                        for (i, operand) in operands.iter().enumerate() {
                            self.push(if i == 0 { "CAST(" } else { ", CAST(" });
                            self.bind_text(&operand.to_string());
                            self.push(" AS jsonb)");
                        }
                        self.push(")");
                    }
                    Op::HasKey(key) => {
                        // The function behind `?`, which `finish` would
                        // take for a placeholder.
                        self.push("jsonb_exists(");
                        at_path(self, ", ");
                        self.bind_text(key);
                        self.push(")");
                    }
                    _ => unreachable!("no other lookup applies to JSON"),
                }
            }
            Dialect::Sqlite => {
                let mut at = String::from("$");
                for key in path {
                    at.push_str(&format!(".\"{key}\""));
                }
                let json_type = |w: &mut Writer, at: &str| {
                    w.push(&format!("json_type({column}, "));
                    w.bind_text(at);
                    w.push(")");
                };
                match op {
                    Op::IsNull(true) => {
                        json_type(self, &at);
                        self.push(" IS NULL");
                    }
                    Op::IsNull(false) => {
                        json_type(self, &at);
                        self.push(" IS NOT NULL");
                    }
                    Op::HasKey(key) => {
                        // PostgreSQL's `?`: an object's key, else a string
                        // element of a list, or the string itself (which
                        // json_each gives as its one row).
                        self.push(&format!("EXISTS (SELECT 1 FROM json_each({column}, "));
                        self.bind_text(&at);
                        self.push(&format!(") AS e WHERE CASE json_type({column}, "));
                        self.bind_text(&at);
                        self.push(") WHEN 'object' THEN e.key = ");
                        self.bind_text(key);
                        self.push(" ELSE e.type = 'text' AND e.value = ");
                        self.bind_text(key);
                        self.push(" END)");
                    }
                    Op::Eq(Value::Json(operand)) => self.sqlite_json_eq(column, &at, operand),
                    Op::In(operands) => {
                        self.push("(");
                        for (i, operand) in operands.iter().enumerate() {
                            if i > 0 {
                                self.push(" OR ");
                            }
                            if let Value::Json(operand) = operand {
                                self.sqlite_json_eq(column, &at, operand);
                            }
                        }
                        self.push(")");
                    }
                    _ => unreachable!("no other lookup applies to JSON"),
                }
            }
        }
    }

    /// SQLite: the JSON at `at` is the scalar `operand`. `json_type` keeps
    /// `"1"`, `1` and `true` apart, which `json_extract` alone would not.
    fn sqlite_json_eq(&mut self, column: &str, at: &str, operand: &serde_json::Value) {
        use serde_json::Value as J;
        let (kinds, scalar) = match operand {
            J::Null => ("'null'", None),
            J::Bool(true) => ("'true'", None),
            J::Bool(false) => ("'false'", None),
            J::String(s) => ("'text'", Some((Value::Text(s.clone()), FieldType::Text))),
            J::Number(n) => match n.as_i64() {
                Some(i) => ("'integer', 'real'", Some((Value::Int(i), FieldType::I64))),
                None => ("'integer', 'real'", n.as_f64().map(|f| (Value::Float(f), FieldType::F64))),
            },
            J::Array(_) | J::Object(_) => unreachable!("refused when parsed"),
        };
        self.push(&format!("(json_type({column}, "));
        self.bind_text(at);
        self.push(&format!(") IN ({kinds})"));
        if let Some((value, ty)) = scalar {
            self.push(&format!(" AND json_extract({column}, "));
            self.bind_text(at);
            self.push(") = ");
            self.bind(&value, ty);
        }
        self.push(")");
    }
}
