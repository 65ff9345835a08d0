//! A committed change to one row, as it travels from the store to subscribers.
//!
//! A change carries the whole row before and after (unpublished fields too,
//! since scopes may filter on them), so any process can decide for each of
//! its subscriptions whether the row entered, stayed in or left its filter
//! without asking the database. Each JSON payload is serialized at most once
//! per change and shared by every subscriber that receives it.

use std::sync::{Arc, OnceLock};

use crate::filter::Filter;
use crate::model::{FieldDef, Row, Storage, Value};
use crate::record;
use crate::relation::ModelInfo;

/// What a subscriber is told about a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The row entered the subscription's filter (it was created, or updated into it).
    Created,
    /// The row stayed in the filter and published fields changed.
    Updated,
    /// The row left the filter (it was deleted, or updated out of it).
    Deleted,
}

impl Action {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }

    /// What a subscription whose filter matched the old row (`before`) and
    /// matches the new row (`after`) is told, if anything.
    pub fn for_transition(before: bool, after: bool) -> Option<Action> {
        match (before, after) {
            (false, true) => Some(Action::Created),
            (true, true) => Some(Action::Updated),
            (true, false) => Some(Action::Deleted),
            (false, false) => None,
        }
    }
}

/// One committed write to one row.
#[derive(Debug)]
pub struct Change {
    /// The route (model) of the row.
    pub route: &'static str,
    /// The model's fields, in row order.
    pub fields: &'static [FieldDef],
    /// The index of the primary key.
    pub pk: usize,
    /// The commit position: increases by one per change, in commit order.
    pub pos: u64,
    /// The row before the write (`None` for an insert).
    pub old: Option<Row>,
    /// The row after the write (`None` for a delete).
    pub new: Option<Row>,
    payloads: [OnceLock<Option<Arc<str>>>; 3],
}

impl Change {
    /// A change not yet given its position.
    pub fn new(
        route: &'static str,
        fields: &'static [FieldDef],
        pk: usize,
        old: Option<Row>,
        new: Option<Row>,
    ) -> Self {
        Change { route, fields, pk, pos: 0, old, new, payloads: Default::default() }
    }

    /// Roughly the memory its rows take: what a queue of changes is
    /// bounded by.
    pub fn approx_bytes(&self) -> usize {
        let row = |row: &Option<Row>| row.as_deref().map_or(0, |values| values.iter().map(value_bytes).sum());
        std::mem::size_of::<Change>() + row(&self.old) + row(&self.new)
    }

    /// What a subscription to `filter` is told of this change, if anything:
    /// whether the row entered, stayed in or left the filter.
    pub fn action_for(&self, filter: &Filter) -> Option<Action> {
        let before = self.old.as_deref().is_some_and(|row| filter.matches(row));
        let after = self.new.as_deref().is_some_and(|row| filter.matches(row));
        Action::for_transition(before, after)
    }

    /// The `data` of an event with this action, serialized on first use and
    /// shared afterwards. `None` for an update that changed no published field.
    pub fn payload(&self, action: Action) -> Option<Arc<str>> {
        let slot = &self.payloads[action as usize];
        slot.get_or_init(|| {
            let json = match action {
                Action::Created => Some(record::published(self.fields, self.new.as_deref()?)),
                Action::Updated => record::changed(self.fields, self.pk, self.old.as_deref()?, self.new.as_deref()?),
                Action::Deleted => {
                    Some(record::id_only(self.fields, self.pk, self.old.as_deref().or(self.new.as_deref())?))
                }
            }?;
            Some(Arc::from(json.to_string()))
        })
        .clone()
    }
}

/// A change as it travels between processes:
/// `{"route": .., "pos": .., "old": [..] | null, "new": [..] | null}`, rows as
/// JSON arrays in field order, each value in its storage family's own form
/// (an application's field type converts only for clients). Everything a receiver needs to match it
/// against its own subscriptions, with no database read.
impl Change {
    /// Encodes the change for other processes.
    pub fn to_wire(&self) -> serde_json::Value {
        let row = |r: &Option<Row>| match r {
            Some(values) => serde_json::Value::Array(values.iter().map(wire_value).collect()),
            None => serde_json::Value::Null,
        };
        serde_json::json!({ "route": self.route, "pos": self.pos, "old": row(&self.old), "new": row(&self.new) })
    }

    /// Decodes a change of a route whose fields the receiver knows.
    pub fn from_wire(
        wire: &serde_json::Value,
        route: &'static str,
        fields: &'static [FieldDef],
        pk: usize,
    ) -> Result<Change, String> {
        Self::decode(wire, route, fields, pk, &[])
    }

    /// Decodes a change of `model`, with the rows of its context after its
    /// fields when it has relation paths ([`crate::relation`]): `related`
    /// holds each path's target fields, in path order.
    pub fn from_wire_of(
        wire: &serde_json::Value,
        model: &'static ModelInfo,
        related: &[&'static [FieldDef]],
    ) -> Result<Change, String> {
        Self::decode(wire, model.route, model.fields, model.primary_key, related)
    }

    fn decode(
        wire: &serde_json::Value,
        route: &'static str,
        fields: &'static [FieldDef],
        pk: usize,
        related: &[&'static [FieldDef]],
    ) -> Result<Change, String> {
        let own = |values: &[serde_json::Value]| -> Result<Vec<Value>, String> {
            values
                .iter()
                .zip(fields)
                .map(|(v, f)| from_wire_value(v, f).map_err(|e| format!("{}: {e}", f.name)))
                .collect()
        };
        let row = |key: &str| -> Result<Option<Row>, String> {
            match &wire[key] {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::Array(values) if values.len() == fields.len() => own(values).map(|v| Some(v.into())),
                serde_json::Value::Array(values) if values.len() == fields.len() + related.len() => {
                    let mut row = own(&values[..fields.len()])?;
                    for (rows, target) in values[fields.len()..].iter().zip(related) {
                        row.push(related_from_wire(rows, target)?);
                    }
                    Ok(Some(row.into()))
                }
                other => Err(format!("{key} is not a row of {} values: {other}", fields.len())),
            }
        };
        let pos = wire["pos"].as_u64().ok_or("pos is not a position")?;
        let mut change = Change::new(route, fields, pk, row("old")?, row("new")?);
        change.pos = pos;
        Ok(change)
    }
}

/// Roughly the memory a value takes, with the rows of a context.
fn value_bytes(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::Text(t) => t.len(),
            Value::Related(rows) => rows.iter().flat_map(|r| r.iter()).map(value_bytes).sum(),
            _ => 0,
        }
}

/// A value as it travels: its family's JSON form, except that a JSON
/// document is wrapped in a list, so that the JSON `null` document stays
/// apart from SQL `NULL`.
fn wire_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Json(json) => serde_json::Value::Array(vec![(**json).clone()]),
        // A context's rows: a list of rows, each a list of values.
        Value::Related(rows) => rows.iter().map(|r| r.iter().map(wire_value).collect::<serde_json::Value>()).collect(),
        other => other.to_json(),
    }
}

fn related_from_wire(wire: &serde_json::Value, fields: &'static [FieldDef]) -> Result<Value, String> {
    let rows = wire.as_array().ok_or_else(|| format!("not a list of related rows: {wire}"))?;
    let rows = rows
        .iter()
        .map(|row| match row.as_array() {
            Some(values) if values.len() == fields.len() => {
                values.iter().zip(fields).map(|(v, f)| from_wire_value(v, f)).collect::<Result<Row, String>>()
            }
            _ => Err(format!("not a related row of {} values: {row}", fields.len())),
        })
        .collect::<Result<Vec<Row>, String>>()?;
    Ok(Value::Related(rows.into()))
}

fn from_wire_value(wire: &serde_json::Value, field: &FieldDef) -> Result<Value, String> {
    match (field.ty.storage(), wire) {
        (Storage::Json, serde_json::Value::Array(items)) if items.len() == 1 => {
            Ok(Value::Json(Box::new(items[0].clone())))
        }
        (Storage::Json, serde_json::Value::Null) if field.nullable => Ok(Value::Null),
        (Storage::Json, other) => Err(format!("not a wrapped JSON document: {other}")),
        (storage, wire) => storage.value_from_json(wire, field.nullable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(crate::Model)]
    struct Item {
        id: i32,
        text: Option<String>,
        score: f64,
        done: bool,
    }

    #[test]
    fn wire_round_trip() {
        use crate::model::{Model, Value};
        let old: Row = vec![Value::Int(3), Value::Null, Value::Float(0.1 + 0.2), Value::Bool(true)].into();
        let new: Row =
            vec![Value::Int(3), Value::Text("é\u{0}".into()), Value::Float(-1e-300), Value::Bool(false)].into();
        let mut change =
            Change::new(Item::ROUTE, Item::FIELDS, Item::PRIMARY_KEY, Some(old.clone()), Some(new.clone()));
        change.pos = 42;
        let wire: serde_json::Value = serde_json::from_str(&change.to_wire().to_string()).unwrap();
        let back = Change::from_wire(&wire, Item::ROUTE, Item::FIELDS, Item::PRIMARY_KEY).unwrap();
        assert_eq!((back.pos, back.old, back.new), (42, Some(old), Some(new)));
        let bad = serde_json::json!({"route": "items", "pos": 1, "old": null, "new": [1, 2]});
        assert!(Change::from_wire(&bad, Item::ROUTE, Item::FIELDS, Item::PRIMARY_KEY).is_err());
    }

    #[allow(dead_code)]
    #[derive(crate::Model)]
    struct Typed {
        id: i32,
        doc: Option<serde_json::Value>,
        due: chrono::NaiveDate,
        at: chrono::DateTime<chrono::Utc>,
        local: Option<chrono::NaiveDateTime>,
        key: uuid::Uuid,
        weight: f32,
    }

    #[test]
    fn wire_round_trip_of_every_family() {
        use crate::model::{Model, Value};
        let day = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let at = day.and_hms_micro_opt(13, 5, 0, 123_456).unwrap();
        let row = |doc: Value| -> Row {
            vec![
                Value::Int(1),
                doc,
                Value::Date(day),
                Value::DateTimeUtc(at.and_utc()),
                Value::DateTime(at),
                Value::Uuid(uuid::Uuid::from_u128(7)),
                Value::Float(f64::from(0.1f32)),
            ]
            .into()
        };
        // The JSON `null` document is not SQL NULL, in another process too.
        let (old, new) = (row(Value::Json(Box::new(serde_json::Value::Null))), row(Value::Null));
        let change = Change::new(Typed::ROUTE, Typed::FIELDS, Typed::PRIMARY_KEY, Some(old.clone()), Some(new.clone()));
        let wire: serde_json::Value = serde_json::from_str(&change.to_wire().to_string()).unwrap();
        let back = Change::from_wire(&wire, Typed::ROUTE, Typed::FIELDS, Typed::PRIMARY_KEY).unwrap();
        assert_eq!((back.old, back.new), (Some(old), Some(new)));
    }

    #[test]
    fn transitions() {
        assert_eq!(Action::for_transition(false, true), Some(Action::Created));
        assert_eq!(Action::for_transition(true, true), Some(Action::Updated));
        assert_eq!(Action::for_transition(true, false), Some(Action::Deleted));
        assert_eq!(Action::for_transition(false, false), None);
    }
}
