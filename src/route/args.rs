//! Typed access to a request's `args`: each accessor checks one argument
//! and reports problems as `bad_args` naming it.

use crate::error::{Error, FieldErrors};
use crate::filter::{FieldAccess, Filter};
use crate::model::{json_kind, FieldType, Model, Value};
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

    pub(crate) fn filter<M: Model>(&self, dialect: Dialect) -> Result<Filter, Error> {
        match self.0.get("filter") {
            None | Some(serde_json::Value::Null) => Ok(Filter::all()),
            Some(json) => sql::parse_filter(M::FIELDS, json, FieldAccess::Published, dialect).map_err(Error::BadFilter),
        }
    }

    /// `ORDER BY` from `"order_by": "-done"` or `["-done", "text"]`, always
    /// ending with the primary key so pages are stable. Text sorts by bytes
    /// (code points), as filters compare it, whatever the column's collation:
    /// PostgreSQL would otherwise sort by the database's locale.
    pub(crate) fn order_by<M: Model>(&self, dialect: Dialect) -> Result<String, Error> {
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
            let collate = match field.ty {
                FieldType::Text => format!(" COLLATE {}", dialect.byte_collation()),
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

    pub(crate) fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::bad_arg(key, format!("must be a boolean, not {}", json_kind(other)))),
        }
    }
}
