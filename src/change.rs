//! A committed change to one row, as it travels from the store to subscribers.
//!
//! A change carries the whole row before and after (unpublished fields too,
//! since scopes may filter on them), so any process can decide for each of
//! its subscriptions whether the row entered, stayed in or left its filter
//! without asking the database. Each JSON payload is serialized at most once
//! per change and shared by every subscriber that receives it.

use std::sync::{Arc, OnceLock};

use crate::model::{FieldDef, Row};
use crate::record;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert_eq!(Action::for_transition(false, true), Some(Action::Created));
        assert_eq!(Action::for_transition(true, true), Some(Action::Updated));
        assert_eq!(Action::for_transition(true, false), Some(Action::Deleted));
        assert_eq!(Action::for_transition(false, false), None);
    }
}
