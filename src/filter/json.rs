//! JSON fields in memory: key paths, `has_key`, and equality of JSON values
//! as PostgreSQL's `jsonb` decides it (numbers by value, so `1` is `1.0`;
//! objects whatever their key order).
//!
//! Django's semantics, which `sql/render.rs` writes for both databases:
//! `settings__theme: "dark"` holds where the key is present with that value;
//! `settings__theme: null` where it is present and JSON `null`, not where it
//! is missing; `settings__theme__isnull: true` where it is missing, or the
//! column is SQL `NULL` (PostgreSQL's `(col -> 'theme') IS NULL`);
//! `settings: null` on the whole field is the JSON `null` document, while
//! `settings__isnull: true` is SQL `NULL`. `has_key` is PostgreSQL's `?`: an
//! object's key, a string in a list, or the string itself.

use super::Op;
use crate::model::Value;

/// What a key path finds in a row's JSON field.
enum Found<'a> {
    /// The column is SQL `NULL`: every test but `isnull` on the column is false.
    SqlNull,
    /// The path leads nowhere (a key is missing or a step is not an object).
    Missing,
    /// The value at the path.
    Present(&'a serde_json::Value),
}

fn find<'a>(value: &'a Value, path: &[String]) -> Found<'a> {
    let Value::Json(json) = value else { return Found::SqlNull };
    let mut json: &serde_json::Value = json;
    for key in path {
        match json.get(key.as_str()).filter(|_| json.is_object()) {
            Some(next) => json = next,
            None => return Found::Missing,
        }
    }
    Found::Present(json)
}

/// Whether the JSON at `path` of a row's value (the whole document for an
/// empty path) passes `op` (`exact` or `in` with JSON operands, `has_key`,
/// or `isnull`: the key is missing or the column NULL).
pub(super) fn matches(value: &Value, path: &[String], op: &Op) -> bool {
    match (find(value, path), op) {
        (Found::SqlNull | Found::Missing, Op::IsNull(missing)) => *missing,
        (Found::SqlNull, _) => false,
        (Found::Missing, _) => false,
        (Found::Present(_), Op::IsNull(missing)) => !*missing,
        (Found::Present(json), Op::Eq(Value::Json(operand))) => equal(json, operand),
        (Found::Present(json), Op::In(operands)) => {
            operands.iter().any(|o| matches!(o, Value::Json(o) if equal(json, o)))
        }
        (Found::Present(json), Op::HasKey(key)) => has_key(json, key),
        (Found::Present(_), _) => false,
    }
}

/// PostgreSQL's `jsonb ? key`: an object has the key, a list holds it as a
/// string, or the value is that string.
pub(super) fn has_key(json: &serde_json::Value, key: &str) -> bool {
    match json {
        serde_json::Value::Object(o) => o.contains_key(key),
        serde_json::Value::Array(items) => items.iter().any(|i| i.as_str() == Some(key)),
        serde_json::Value::String(s) => s == key,
        _ => false,
    }
}

/// `jsonb` equality.
pub(super) fn equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(a), J::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) => a == b,
                _ => a.as_f64() == b.as_f64(),
            },
        },
        (J::Array(a), J::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| equal(a, b)),
        (J::Object(a), J::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(j: serde_json::Value) -> Value {
        Value::Json(Box::new(j))
    }

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn key_paths_follow_django() {
        let r = row(json!({"theme": "dark", "a": {"b": 1.0}, "gone": null}));
        let eq = |j: serde_json::Value| Op::Eq(Value::Json(Box::new(j)));
        assert!(matches(&r, &path(&["theme"]), &eq(json!("dark"))));
        assert!(matches(&r, &path(&["a", "b"]), &eq(json!(1))), "numbers by value");
        assert!(!matches(&r, &path(&["a", "b"]), &eq(json!("1"))));
        assert!(matches(&r, &path(&["gone"]), &eq(json!(null))), "present and null");
        assert!(!matches(&r, &path(&["nope"]), &eq(json!(null))), "missing is not null");
        assert!(matches(&r, &path(&["nope"]), &Op::IsNull(true)));
        assert!(!matches(&r, &path(&["gone"]), &Op::IsNull(true)));
        assert!(matches(&r, &path(&["a"]), &Op::HasKey("b".into())));
        assert!(!matches(&r, &path(&["theme", "x"]), &Op::IsNull(false)), "a string has no keys");
        assert!(matches(&Value::Null, &path(&["nope"]), &Op::IsNull(true)), "SQL NULL has no keys either");
        assert!(!matches(&Value::Null, &path(&["nope"]), &Op::IsNull(false)));
        assert!(has_key(&json!(["a", 1]), "a") && has_key(&json!("a"), "a") && !has_key(&json!([["a"]]), "a"));
        assert!(equal(&json!({"a": [1, {"b": 2}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!equal(&json!([1, 2]), &json!([2, 1])));
    }
}
