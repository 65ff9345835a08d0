//! A row's JSON forms: what clients receive, and what they may send.
//!
//! Publishing writes only a model's published fields; accepting data checks
//! every key against the field table (unknown, read-only, wrong type, out of
//! range) before anything reaches the database.

use crate::error::{Error, FieldErrors};
use crate::model::{json_kind, FieldDef, Value};

/// The published fields of a row as a JSON object. Every object carries its
/// primary key, published or not, so clients can apply changes by id.
pub fn published(fields: &[FieldDef], row: &[Value]) -> serde_json::Value {
    let mut map = serde_json::Map::with_capacity(fields.len());
    for (field, value) in fields.iter().zip(row) {
        if field.published || field.primary_key {
            map.insert(field.name.to_owned(), field.ty.value_to_json(value));
        }
    }
    serde_json::Value::Object(map)
}

/// The primary key and the published fields that differ between `old` and
/// `new`, or `None` when no published field changed (a change only to
/// unpublished fields tells clients nothing).
pub fn changed(fields: &[FieldDef], pk: usize, old: &[Value], new: &[Value]) -> Option<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for (i, field) in fields.iter().enumerate() {
        if field.published && !field.primary_key && !old[i].same(&new[i]) {
            map.insert(field.name.to_owned(), field.ty.value_to_json(&new[i]));
        }
    }
    if map.is_empty() {
        return None;
    }
    map.insert(fields[pk].name.to_owned(), fields[pk].ty.value_to_json(&new[pk]));
    Some(serde_json::Value::Object(map))
}

/// `{"<pk>": id}`: what a `deleted` event carries.
pub fn id_only(fields: &[FieldDef], pk: usize, row: &[Value]) -> serde_json::Value {
    let mut map = serde_json::Map::with_capacity(1);
    map.insert(fields[pk].name.to_owned(), fields[pk].ty.value_to_json(&row[pk]));
    serde_json::Value::Object(map)
}

/// Who is writing: clients may write only published `update` fields; server
/// code (hooks, background jobs) may write any field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAccess {
    /// A client through the `create` / `update` verbs.
    Client,
    /// Trusted server code.
    Server,
}

/// Field values to write, checked and converted, in field order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    values: Vec<(usize, Value)>,
}

impl Patch {
    /// Checks a JSON object of field values.
    ///
    /// The error is `unknown_field` if any key names no field (for a client,
    /// an unpublished field counts as unknown, so its existence does not
    /// leak), else `read_only_field` for keys the writer may not write, else
    /// `invalid_data` for values of the wrong type or out of range. Each lists
    /// every offending key.
    pub fn parse(fields: &[FieldDef], data: &serde_json::Value, access: WriteAccess) -> Result<Patch, Error> {
        let Some(object) = data.as_object() else {
            return Err(Error::bad_arg("data", format!("must be an object, not {}", json_kind(data))));
        };
        let (mut unknown, mut read_only, mut invalid) = (FieldErrors::new(), FieldErrors::new(), FieldErrors::new());
        let mut values = Vec::with_capacity(object.len());
        for (key, json) in object {
            let found = fields
                .iter()
                .position(|f| f.name == key && (access == WriteAccess::Server || f.published || f.primary_key));
            let Some(i) = found else {
                unknown.add(key, "no such field");
                continue;
            };
            let field = &fields[i];
            if access == WriteAccess::Client && (!field.updatable || field.primary_key) {
                read_only.add(key, "is read-only");
                continue;
            }
            match field.ty.value_from_json(json, field.nullable) {
                Ok(value) => values.push((i, value)),
                Err(message) => invalid.add(key, message),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::UnknownField(unknown));
        }
        if !read_only.is_empty() {
            return Err(Error::ReadOnlyField(read_only));
        }
        if !invalid.is_empty() {
            return Err(Error::InvalidData(invalid));
        }
        values.sort_by_key(|(i, _)| *i);
        Ok(Patch { values })
    }

    /// All fields of a row but the primary key: what `save` writes.
    pub fn from_row(fields: &[FieldDef], row: &[Value]) -> Patch {
        let values =
            row.iter().enumerate().filter(|(i, _)| !fields[*i].primary_key).map(|(i, v)| (i, v.clone())).collect();
        Patch { values }
    }

    /// Sets (or replaces) one field's value.
    pub fn set(&mut self, index: usize, value: Value) {
        match self.values.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => self.values[at].1 = value,
            Err(at) => self.values.insert(at, (index, value)),
        }
    }

    /// Overlays another patch; its values win.
    pub fn merge(&mut self, other: Patch) {
        for (i, v) in other.values {
            self.set(i, v);
        }
    }

    /// Whether it sets `index`.
    pub fn contains(&self, index: usize) -> bool {
        self.values.binary_search_by_key(&index, |(i, _)| *i).is_ok()
    }

    /// The values, in field order.
    pub fn values(&self) -> &[(usize, Value)] {
        &self.values
    }

    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Refuses text with a NUL character, for a database that cannot store
    /// one (PostgreSQL's `text`): an `invalid_data` error naming each such
    /// field, rather than an internal error from the database.
    pub fn check_no_nul(&self, fields: &[FieldDef]) -> Result<(), Error> {
        let mut invalid = FieldErrors::new();
        for (i, value) in &self.values {
            let nul = match value {
                Value::Text(s) => s.contains('\0'),
                // jsonb refuses `\u0000` in strings and keys alike.
                Value::Json(j) => j.to_string().contains("\\u0000"),
                _ => false,
            };
            if nul {
                invalid.add(fields[*i].name, "may not contain the NUL character (\\u0000) on PostgreSQL");
            }
        }
        invalid.into_result().map_err(Error::InvalidData)
    }

    /// For a create: every client-writable, non-nullable field must be given.
    /// (Other fields may come from database defaults.)
    pub fn check_required(&self, fields: &[FieldDef]) -> Result<(), Error> {
        let mut missing = FieldErrors::new();
        for (i, f) in fields.iter().enumerate() {
            if f.updatable && !f.nullable && !f.primary_key && !self.contains(i) {
                missing.add(f.name, "is required");
            }
        }
        missing.into_result().map_err(Error::InvalidData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with one field of each kind the tests need.
    #[allow(dead_code)]
    #[derive(crate::Model)]
    struct Item {
        id: i32,
        #[wyrm(update)]
        text: String,
        #[wyrm(update)]
        rank: Option<i16>,
        #[wyrm(skip)]
        owner: i64,
        list_id: i32,
    }
    const FIELDS: &[FieldDef] = <Item as crate::Model>::FIELDS;

    #[test]
    fn published_hides_skipped_fields() {
        let row = [Value::Int(1), Value::Text("a".into()), Value::Null, Value::Int(9), Value::Int(2)];
        assert_eq!(published(FIELDS, &row), serde_json::json!({"id": 1, "text": "a", "rank": null, "list_id": 2}));
    }

    #[test]
    fn changed_lists_only_published_differences() {
        let old = [Value::Int(1), Value::Text("a".into()), Value::Null, Value::Int(9), Value::Int(2)];
        let mut new = old.clone();
        new[3] = Value::Int(10);
        assert_eq!(changed(FIELDS, 0, &old, &new), None);
        new[1] = Value::Text("b".into());
        assert_eq!(changed(FIELDS, 0, &old, &new), Some(serde_json::json!({"id": 1, "text": "b"})));
    }

    #[test]
    fn client_patch_errors_name_fields() {
        let e = Patch::parse(FIELDS, &serde_json::json!({"owner": 1, "nope": 2}), WriteAccess::Client).unwrap_err();
        assert_eq!(e.code(), "unknown_field");
        assert_eq!(e.fields().unwrap().0.keys().collect::<Vec<_>>(), ["nope", "owner"]);
        let e = Patch::parse(FIELDS, &serde_json::json!({"list_id": 1, "id": 3}), WriteAccess::Client).unwrap_err();
        assert_eq!(e.code(), "read_only_field");
        assert_eq!(e.fields().unwrap().0.len(), 2);
        let e = Patch::parse(FIELDS, &serde_json::json!({"rank": 40000, "text": 5}), WriteAccess::Client).unwrap_err();
        assert_eq!(e.code(), "invalid_data");
        assert!(e.fields().unwrap().0["rank"][0].contains("out of range"));
        assert!(e.fields().unwrap().0["text"][0].contains("must be a string"));
        let e = Patch::parse(FIELDS, &serde_json::json!({"text": null}), WriteAccess::Client).unwrap_err();
        assert_eq!(e.code(), "invalid_data");
    }

    #[test]
    fn server_patch_may_write_anything() {
        let p = Patch::parse(FIELDS, &serde_json::json!({"owner": 7, "list_id": 1}), WriteAccess::Server).unwrap();
        assert_eq!(p.values(), &[(3, Value::Int(7)), (4, Value::Int(1))]);
    }

    #[test]
    fn nul_is_reported_by_field() {
        let p = Patch::parse(FIELDS, &serde_json::json!({"text": "a\0b", "rank": 1}), WriteAccess::Client).unwrap();
        let e = p.check_no_nul(FIELDS).unwrap_err();
        assert_eq!(e.code(), "invalid_data");
        assert_eq!(e.fields().unwrap().0.keys().collect::<Vec<_>>(), ["text"]);
        let fine = Patch::parse(FIELDS, &serde_json::json!({"text": "ab"}), WriteAccess::Client).unwrap();
        assert!(fine.check_no_nul(FIELDS).is_ok());
    }

    #[test]
    fn a_float_changing_sign_at_zero_is_a_change() {
        // -0.0 == 0.0 as numbers, but clients are sent (and get_list reads)
        // the sign, so an update between them must reach subscribers.
        #[allow(dead_code)]
        #[derive(crate::Model)]
        struct Measure {
            id: i32,
            value: f64,
        }
        let fields = <Measure as crate::Model>::FIELDS;
        let diff =
            |a: f64, b: f64| changed(fields, 0, &[Value::Int(1), Value::Float(a)], &[Value::Int(1), Value::Float(b)]);
        assert_eq!(diff(0.0, -0.0), Some(serde_json::json!({"id": 1, "value": -0.0})));
        assert!(diff(-0.0, 0.0).is_some());
        assert_eq!(diff(1.5, 1.5), None);
    }

    #[test]
    fn required_fields_on_create() {
        let p = Patch::parse(FIELDS, &serde_json::json!({"rank": 1}), WriteAccess::Client).unwrap();
        let e = p.check_required(FIELDS).unwrap_err();
        assert_eq!(e.fields().unwrap().0["text"], vec!["is required".to_string()]);
    }
}
