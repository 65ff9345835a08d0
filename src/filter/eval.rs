//! In-memory evaluation of predicates on a row, for the fan-out of every
//! committed change.
//!
//! This runs once per change per candidate subscription group, so it does not
//! allocate: case-insensitive tests fold the row's text a character at a
//! time as they compare, instead of building a folded copy. Each test states
//! the SQL it must agree with (see `sql.rs`).

use std::cmp::Ordering;

use super::fold::fold_char;
use super::{json, Cmp, Op, TextKind};
use crate::model::Value;

impl Op {
    pub(super) fn matches(&self, value: &Value) -> bool {
        // SQLite stores a NaN as NULL, so a NaN in memory must behave as one.
        let value = match value {
            Value::Float(f) if f.is_nan() => &Value::Null,
            v => v,
        };
        if let Op::IsNull(is_null) = self {
            return matches!(value, Value::Null) == *is_null;
        }
        // Every other test is false on NULL, as SQL comparisons with NULL are.
        match self {
            Op::IsNull(_) => unreachable!("handled above"),
            Op::Eq(operand) => compare(value, operand) == Some(Ordering::Equal),
            Op::In(operands) => {
                // Operands are sorted by `operand::total_order`, which agrees with
                // `compare` on finite floats without -0.0; a row's -0.0
                // still finds 0.0 because `compare` says they are equal.
                operands.binary_search_by(|o| compare(o, value).unwrap_or(Ordering::Less)).is_ok()
            }
            Op::Cmp(cmp, operand) => compare(value, operand).is_some_and(|o| match cmp {
                Cmp::Gt => o == Ordering::Greater,
                Cmp::Gte => o != Ordering::Less,
                Cmp::Lt => o == Ordering::Less,
                Cmp::Lte => o != Ordering::Greater,
            }),
            Op::Range(low, high) => {
                compare(value, low).is_some_and(|o| o != Ordering::Less)
                    && compare(value, high).is_some_and(|o| o != Ordering::Greater)
            }
            Op::IExact(folded) => {
                text(value, &mut [0; 36]).is_some_and(|s| s.chars().map(fold_char).eq(folded.chars()))
            }
            Op::Text { kind, fold: false, needle } => text(value, &mut [0; 36]).is_some_and(|s| match kind {
                TextKind::Contains => s.contains(needle.as_str()),
                TextKind::StartsWith => s.starts_with(needle.as_str()),
                TextKind::EndsWith => s.ends_with(needle.as_str()),
            }),
            Op::Text { kind, fold: true, needle } => text(value, &mut [0; 36]).is_some_and(|s| match kind {
                TextKind::Contains => folded_contains(s, needle),
                TextKind::StartsWith => folded_starts_with(s, needle),
                TextKind::EndsWith => {
                    let mut rest = s.chars().rev().map(fold_char);
                    needle.chars().rev().all(|c| rest.next() == Some(c))
                }
            }),
            Op::HasKey(key) => matches!(value, Value::Json(j) if json::has_key(j, key)),
        }
    }
}

/// Compares two non-null values of the same type as SQL does: integers and
/// floats numerically (so `0.0 == -0.0`), text by bytes (SQLite's BINARY
/// collation, PostgreSQL's `"C"`), booleans as 0 and 1, dates and times in
/// time order (SQLite's text forms sort so), UUIDs by bytes (PostgreSQL's
/// `uuid` order, and that of their lowercase hyphenated text). JSON is only
/// ever equal or not. `None` for NULL or mismatched types, which no test
/// accepts.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
        (Value::DateTimeUtc(a), Value::DateTimeUtc(b)) => Some(a.cmp(b)),
        (Value::Uuid(a), Value::Uuid(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Json(a), Value::Json(b)) => json::equal(a, b).then_some(Ordering::Equal),
        _ => None,
    }
}

/// The text that text lookups read: a string, or a UUID's hyphenated
/// lowercase form (PostgreSQL's `uuid::text`, which Django's lookups on a
/// UUID field read there), written into `buf` without allocating.
fn text<'a>(value: &'a Value, buf: &'a mut [u8; 36]) -> Option<&'a str> {
    match value {
        Value::Text(s) => Some(s),
        Value::Uuid(u) => Some(u.hyphenated().encode_lower(buf)),
        _ => None,
    }
}

/// Whether `s`, folded, starts with the already folded `needle`.
fn folded_starts_with(s: &str, needle: &str) -> bool {
    let mut rest = s.chars().map(fold_char);
    needle.chars().all(|c| rest.next() == Some(c))
}

/// Whether `s`, folded, contains the already folded `needle`. Folding maps
/// each character to one character, so matching folded text from each
/// character boundary of `s` is matching inside the folded copy.
fn folded_contains(s: &str, needle: &str) -> bool {
    let Some(first) = needle.chars().next() else { return true };
    s.char_indices().any(|(at, c)| fold_char(c) == first && folded_starts_with(&s[at..], needle))
}

#[cfg(test)]
mod tests {
    use super::super::tests::FIELDS;
    use super::super::{FieldAccess, Filter};
    use crate::model::Value;
    use serde_json::json;

    /// A row of the test model with the given text, note and score.
    fn row(text: &str, note: Option<&str>, score: f64) -> Vec<Value> {
        vec![
            Value::Int(1),
            Value::Int(7),
            text.into(),
            Value::Bool(false),
            Value::Float(score),
            note.map_or(Value::Null, Value::from),
            Value::Int(-3),
        ]
    }

    fn check(filter: serde_json::Value, row: &[Value]) -> bool {
        Filter::parse(FIELDS, &filter, FieldAccess::All).unwrap().matches(row)
    }

    #[test]
    fn exact() {
        let r = row("Milk", None, 0.0);
        assert!(check(json!({"text": "Milk"}), &r));
        assert!(!check(json!({"text": "milk"}), &r));
        assert!(check(json!({"text__exact": "Milk", "list_id": 7, "done": false, "created_by": -3}), &r));
        assert!(check(json!({"note": null}), &r));
        assert!(!check(json!({"note": ""}), &r), "the empty string is not null");
        assert!(check(json!({"note": ""}), &row("Milk", Some(""), 0.0)));
        assert!(!check(json!({"text": null}), &r), "null on a non-nullable field matches nothing");
        assert!(check(json!({"score": -0.0}), &r), "0.0 == -0.0");
        assert!(check(json!({"score": 0}), &row("x", None, -0.0)));
        assert!(!check(json!({"list_id": 8}), &r));
    }

    #[test]
    fn iexact() {
        assert!(check(json!({"text__iexact": "ÉCLAIR"}), &row("éclair", None, 0.0)));
        assert!(check(json!({"text__iexact": "σς"}), &row("ΣΣ", None, 0.0)));
        assert!(!check(json!({"text__iexact": "STRASSE"}), &row("straße", None, 0.0)));
        assert!(check(json!({"text__iexact": "STRAßE"}), &row("straße", None, 0.0)));
        assert!(!check(json!({"text__iexact": "éclai"}), &row("éclair", None, 0.0)));
        assert!(check(json!({"note__iexact": null}), &row("x", None, 0.0)));
        assert!(!check(json!({"note__iexact": ""}), &row("x", None, 0.0)));
    }

    #[test]
    fn contains_is_case_sensitive_and_literal() {
        let r = row("50% off_now \\o/", None, 0.0);
        assert!(check(json!({"text__contains": "% off_"}), &r));
        assert!(check(json!({"text__contains": "\\o"}), &r));
        assert!(!check(json!({"text__contains": "OFF"}), &r));
        assert!(!check(json!({"text__contains": "5_%"}), &r), "`_` and `%` are not wildcards");
        assert!(check(json!({"text__contains": ""}), &r));
        assert!(!check(json!({"note__contains": ""}), &r), "NULL never contains anything");
    }

    #[test]
    fn icontains() {
        let r = row("Crème Brûlée ς", None, 0.0);
        assert!(check(json!({"text__icontains": "BRÛL"}), &r));
        assert!(check(json!({"text__icontains": "crème"}), &r));
        assert!(check(json!({"text__icontains": "σ"}), &r));
        assert!(check(json!({"text__icontains": ""}), &r));
        assert!(!check(json!({"text__icontains": "brulee"}), &r));
        assert!(check(json!({"text__icontains": "aab"}), &row("AAAB", None, 0.0)), "restarts after a partial match");
        assert!(!check(json!({"note__icontains": ""}), &r));
    }

    #[test]
    fn startswith_and_endswith() {
        let r = row("Éclair_%", None, 0.0);
        assert!(check(json!({"text__startswith": "Éc"}), &r));
        assert!(!check(json!({"text__startswith": "éc"}), &r));
        assert!(check(json!({"text__istartswith": "éC"}), &r));
        assert!(check(json!({"text__endswith": "_%"}), &r));
        assert!(!check(json!({"text__endswith": "R_%"}), &r));
        assert!(check(json!({"text__iendswith": "R_%"}), &r));
        assert!(check(json!({"text__startswith": "", "text__endswith": ""}), &r));
        assert!(!check(json!({"text__startswith": "Éclair_%!"}), &r));
        assert!(!check(json!({"text__iendswith": "xÉclair_%"}), &r));
        assert!(!check(json!({"note__istartswith": ""}), &r));
    }

    #[test]
    fn in_lists() {
        let r = row("b", Some("n"), 2.5);
        assert!(check(json!({"text__in": ["a", "b"]}), &r));
        assert!(!check(json!({"text__in": ["a", "B"]}), &r));
        assert!(!check(json!({"text__in": []}), &r));
        assert!(check(json!({"score__in": [2.5, 3]}), &r));
        assert!(check(json!({"score__in": [0.0, 1.0]}), &row("b", None, -0.0)));
        assert!(check(json!({"list_id__in": [9, 8, 7]}), &r));
        assert!(!check(json!({"list_id__in": [9, 8]}), &r));
        assert!(check(json!({"done__in": [false]}), &r));
        assert!(!check(json!({"note__in": ["a", "b"]}), &row("b", None, 2.5)));
    }

    #[test]
    fn ordering() {
        let r = row("b", None, 2.5);
        assert!(check(json!({"score__gt": 2, "score__lt": 3, "score__gte": 2.5, "score__lte": 2.5}), &r));
        assert!(!check(json!({"score__gt": 2.5}), &r));
        assert!(check(json!({"list_id__gt": -10, "created_by__lt": 0}), &r));
        assert!(check(json!({"list_id__gt": 6}), &r), "numbers compare as numbers");
        assert!(!check(json!({"list_id__gt": 10}), &r), "not as text, where \"7\" > \"10\"");
        assert!(check(json!({"text__gt": "a", "text__lt": "c"}), &r));
        assert!(check(json!({"text__gt": "B"}), &r), "text compares by bytes");
        assert!(check(json!({"text__lt": "é"}), &row("z", None, 0.0)));
        assert!(!check(json!({"note__gt": ""}), &r), "NULL never compares");
        assert!(!check(json!({"note__lte": "zzz"}), &r));
    }

    #[test]
    fn range() {
        let r = row("m", None, 2.5);
        assert!(check(json!({"list_id__range": [7, 7]}), &r));
        assert!(check(json!({"list_id__range": [1, 9], "score__range": [2.5, 3]}), &r));
        assert!(!check(json!({"list_id__range": [8, 9]}), &r));
        assert!(!check(json!({"list_id__range": [9, 1]}), &r), "low above high matches nothing");
        assert!(check(json!({"text__range": ["a", "m"]}), &r));
        assert!(!check(json!({"text__range": ["a", "l"]}), &r));
        assert!(!check(json!({"note__range": ["", "zzz"]}), &r));
    }

    #[test]
    fn isnull() {
        assert!(check(json!({"note__isnull": true}), &row("x", None, 0.0)));
        assert!(!check(json!({"note__isnull": false}), &row("x", None, 0.0)));
        assert!(check(json!({"note__isnull": false}), &row("x", Some(""), 0.0)));
        assert!(check(json!({"text__isnull": false}), &row("x", None, 0.0)));
        assert!(!check(json!({"text__isnull": true}), &row("x", None, 0.0)));
    }

    #[test]
    fn nan_behaves_as_sqlite_null() {
        let r = row("x", None, f64::NAN);
        assert!(check(json!({"score__isnull": true}), &r));
        assert!(!check(json!({"score__gte": -1e308}), &r));
    }
}
