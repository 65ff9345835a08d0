//! Typed access to a request's `args`: each accessor checks one argument,
//! including its size (see [`Limits`]), and reports problems as `bad_args`
//! (`bad_filter` for the filter) naming it, before any of it reaches SQL.

use super::Limits;
use crate::error::{Error, FieldErrors};
use crate::filter::{FieldAccess, Filter};
use crate::model::{json_kind, Model, Storage, Value};
use crate::sql::{self, quote_ident, Dialect};

/// Typed access to a request's `args`, with errors naming the argument.
pub(crate) struct Args<'a>(pub(crate) &'a serde_json::Value);

impl Args<'_> {
    pub(crate) fn raw(&self, key: &str) -> &serde_json::Value {
        self.0.get(key).unwrap_or(&serde_json::Value::Null)
    }

    pub(crate) fn reject_others(&self, allowed: &[&str]) -> Result<(), Error> {
        let mut errors = FieldErrors::new();
        for key in self.0.as_object().into_iter().flat_map(|o| o.keys()) {
            if !allowed.contains(&key.as_str()) {
                errors.add(key, format!("unknown argument; expected one of: {}", allowed.join(", ")));
            }
        }
        errors.into_result().map_err(Error::BadArgs)
    }

    pub(crate) fn id<M: Model>(&self) -> Result<Value, Error> {
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        match self.0.get("id") {
            None => Err(Error::bad_arg("id", "is required")),
            Some(json) => pk.ty.value_from_json(json, false).map_err(|m| Error::bad_arg("id", m)),
        }
    }

    /// The filter, at most `limits.max_filter_terms` keys (nested ones
    /// included), `limits.max_filter_depth` levels of `or`/`and`/`not` and
    /// `limits.max_filter_bytes` of JSON: a subscription keeps its filter
    /// for as long as it lives, evaluating it costs a visit per term, and
    /// every key of a bad filter costs a message in the error reply.
    pub(crate) fn filter<M: Model>(&self, dialect: Dialect, limits: &Limits) -> Result<Filter, Error> {
        let json = match self.0.get("filter") {
            None | Some(serde_json::Value::Null) => return Ok(Filter::all()),
            Some(json) => json,
        };
        let too_big = |message: String| Error::BadFilter(FieldErrors::single("filter", message));
        let (terms, depth) = filter_shape(json);
        if terms > limits.max_filter_terms {
            return Err(too_big(format!("may have at most {} terms, not {terms}", limits.max_filter_terms)));
        }
        if depth > limits.max_filter_depth {
            let max = limits.max_filter_depth;
            return Err(too_big(format!("may nest or, and and not at most {max} deep, not {depth}")));
        }
        let size = json_size(json);
        if size > limits.max_filter_bytes {
            return Err(too_big(format!("may be at most {} bytes of JSON, not {size}", limits.max_filter_bytes)));
        }
        sql::parse_filter(M::info(), json, FieldAccess::Published, dialect).map_err(Error::BadFilter)
    }

    /// The `data` object of a write. It cannot have more keys than the model
    /// has fields without naming unknown ones, so a larger one is refused
    /// whole rather than answered with a message per key.
    pub(crate) fn data<M: Model>(&self) -> Result<&serde_json::Value, Error> {
        let data = self.raw("data");
        let keys = data.as_object().map_or(0, |o| o.len());
        if keys > M::FIELDS.len() {
            let message = format!("has {keys} keys, but {} has only {} fields", M::ROUTE, M::FIELDS.len());
            return Err(Error::bad_arg("data", message));
        }
        Ok(data)
    }

    /// `ORDER BY` from `"order_by": "-done"` or `["-done", "text"]`, always
    /// ending with the primary key so pages are stable. Text sorts by bytes
    /// (code points), as filters compare it, whatever the column's collation:
    /// PostgreSQL would otherwise sort by the database's locale.
    /// At most `max_terms` of them: databases refuse long `ORDER BY`s
    /// (SQLite at 2,000 terms), which must be `bad_args`, not `internal`.
    pub(crate) fn order_by<M: Model>(&self, dialect: Dialect, max_terms: usize) -> Result<String, Error> {
        let keys: Vec<&str> = match self.0.get("order_by") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().ok_or_else(|| Error::bad_arg("order_by", "must be field names")))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(Error::bad_arg("order_by", format!("must be a string or a list, not {}", json_kind(other))))
            }
        };
        if keys.len() > max_terms {
            return Err(Error::bad_arg("order_by", format!("may name at most {max_terms} fields, not {}", keys.len())));
        }
        let mut terms = Vec::with_capacity(keys.len() + 1);
        for key in keys {
            let (name, descending) = match key.strip_prefix('-') {
                Some(name) => (name, true),
                None => (key, false),
            };
            let field = M::field_index(name)
                .map(|i| &M::FIELDS[i])
                .filter(|f| f.published || f.primary_key)
                .ok_or_else(|| Error::bad_arg("order_by", format!("no field {name:?}")))?;
            // Explicit NULLS placement: the same order on SQLite and PostgreSQL.
            let direction = if descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            let collate = match field.ty.storage() {
                Storage::Text => format!(" COLLATE {}", dialect.byte_collation()),
                Storage::Uuid if dialect == crate::sql::Dialect::Sqlite => " COLLATE BINARY".into(),
                // jsonb and JSON text order differently.
                Storage::Json => {
                    return Err(Error::bad_arg("order_by", format!("cannot order by the JSON field {name:?}")))
                }
                _ => String::new(),
            };
            terms.push(format!("{}{collate} {direction}", quote_ident(field.column)));
        }
        terms.push(format!("{} ASC", quote_ident(M::FIELDS[M::PRIMARY_KEY].column)));
        Ok(terms.join(", "))
    }

    pub(crate) fn count(&self, key: &str) -> Result<Option<usize>, Error> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(json) => json
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| Error::bad_arg(key, "must be a non-negative whole number")),
        }
    }

    /// A count that SQL takes as a signed 64-bit integer (an `OFFSET`, a
    /// position): at most 2^63 - 1.
    pub(crate) fn sql_count(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.count(key)? {
            Some(n) if n as u64 > i64::MAX as u64 => Err(Error::bad_arg(key, format!("must be at most {}", i64::MAX))),
            n => Ok(n.map(|n| n as u64)),
        }
    }

    pub(crate) fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::bad_arg(key, format!("must be a boolean, not {}", json_kind(other)))),
        }
    }
}

/// How many keys a filter has, counting those in objects nested in `or`,
/// `and` and `not`, and how deep those objects nest (0 for a flat filter).
/// Operands are not entered: only those three keys hold filters.
fn filter_shape(json: &serde_json::Value) -> (usize, usize) {
    let Some(object) = json.as_object() else { return (0, 0) };
    let (mut terms, mut depth) = (object.len(), 0);
    for (key, operand) in object {
        let nested: Box<dyn Iterator<Item = &serde_json::Value>> = match (key.as_str(), operand) {
            ("or" | "and", serde_json::Value::Array(items)) => Box::new(items.iter()),
            ("not", not) => Box::new(std::iter::once(not)),
            _ => continue,
        };
        for item in nested {
            let (t, d) = filter_shape(item);
            terms += t;
            depth = depth.max(d + 1);
        }
    }
    (terms, depth)
}

/// About how many bytes `json` takes serialized: keys and strings by their
/// length, everything else a few bytes. A walk, not a serialization, since
/// it runs on every filter.
fn json_size(json: &serde_json::Value) -> usize {
    use serde_json::Value as J;
    match json {
        J::Null | J::Bool(_) => 5,
        J::Number(_) => 8,
        J::String(s) => s.len() + 2,
        J::Array(items) => 2 + items.iter().map(|i| json_size(i) + 1).sum::<usize>(),
        J::Object(o) => 2 + o.iter().map(|(k, v)| k.len() + 4 + json_size(v)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_is_close_to_the_serialized_length() {
        let filter = serde_json::json!({"text__icontains": "milk", "list_id__in": [1, 2, 3], "note": null});
        let (estimate, real) = (json_size(&filter), filter.to_string().len());
        assert!(estimate >= real && estimate < real * 2, "{estimate} vs {real}");
    }

    #[test]
    fn filter_shape_counts_nested_keys_and_depth() {
        use serde_json::json;
        assert_eq!(filter_shape(&json!({})), (0, 0));
        assert_eq!(filter_shape(&json!({"a": 1, "b__in": [{"or": []}]})), (2, 0));
        assert_eq!(filter_shape(&json!({"a": 1, "or": [{"b": 1}, {"c": 1, "d": 2}]})), (5, 1));
        assert_eq!(filter_shape(&json!({"not": {"or": [{"not": {"x": 1}}]}})), (4, 3));
        assert_eq!(filter_shape(&json!({"and": [{"a": 1}], "not": {"b": 1}})), (4, 1));
        // Malformed nesting counts what is there; the parser refuses it.
        assert_eq!(filter_shape(&json!({"or": {"a": 1}, "not": 1})), (2, 1));
    }
}
