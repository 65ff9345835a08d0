//! The equality index of one route's subscription groups.
//!
//! Each group is keyed under one of its equality predicates (`list_id = 7`):
//! a change looks up only the groups keyed on its old and new values of the
//! indexed fields, plus the few groups with no equality predicate, so the
//! matching cost per change stays flat as subscriptions grow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use crate::change::Change;
use crate::filter::Filter;
use crate::model::Value;

/// Where a group is filed: `(field index, value hash)`, or unindexed.
pub(crate) type Key = Option<(usize, u64)>;

#[derive(Default)]
pub(crate) struct Index {
    /// (field, value hash) → groups keyed on that value. Hash collisions only
    /// add candidates; each candidate's filter is still evaluated.
    keyed: HashMap<(usize, u64), Vec<u64>>,
    /// Fields some group is keyed on, with how many groups.
    fields: Vec<(usize, usize)>,
    unindexed: Vec<u64>,
    hasher: RandomState,
}

impl Index {
    /// Files group `id` with `filter`; returns where, for [`Index::remove`].
    pub(crate) fn insert(&mut self, id: u64, filter: &Filter) -> Key {
        // Prefer a field other groups are keyed on, so a change looks up few fields.
        let key = filter
            .equalities()
            .filter_map(|(field, value)| Some((field, self.hash(value)?)))
            .max_by_key(|(field, _)| self.fields.iter().find(|(f, _)| f == field).map_or(0, |(_, n)| *n));
        match key {
            Some((field, hash)) => {
                self.keyed.entry((field, hash)).or_default().push(id);
                match self.fields.iter_mut().find(|(f, _)| *f == field) {
                    Some((_, n)) => *n += 1,
                    None => self.fields.push((field, 1)),
                }
            }
            None => self.unindexed.push(id),
        }
        key
    }

    pub(crate) fn remove(&mut self, id: u64, key: Key) {
        let Some(key) = key else {
            self.unindexed.retain(|g| *g != id);
            return;
        };
        if let Some(ids) = self.keyed.get_mut(&key) {
            ids.retain(|g| *g != id);
            if ids.is_empty() {
                self.keyed.remove(&key);
            }
        }
        if let Some(at) = self.fields.iter().position(|(f, _)| *f == key.0) {
            self.fields[at].1 -= 1;
            if self.fields[at].1 == 0 {
                self.fields.swap_remove(at);
            }
        }
    }

    /// Calls `visit` with every group that `change` could concern: those
    /// keyed on its old or new value of an indexed field, and the unindexed.
    pub(crate) fn candidates(&self, change: &Change, mut visit: impl FnMut(u64)) {
        for &(field, _) in &self.fields {
            let old = change.old.as_deref().and_then(|row| self.hash(&row[field]));
            let new = change.new.as_deref().and_then(|row| self.hash(&row[field]));
            for hash in [old, new.filter(|h| Some(*h) != old)].into_iter().flatten() {
                self.keyed.get(&(field, hash)).into_iter().flatten().for_each(|id| visit(*id));
            }
        }
        self.unindexed.iter().for_each(|id| visit(*id));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.fields.is_empty() && self.unindexed.is_empty()
    }

    /// Hash of an indexable value. Floats, JSON and nulls are never index keys.
    fn hash(&self, value: &Value) -> Option<u64> {
        let mut h = self.hasher.build_hasher();
        match value {
            Value::Int(i) => (0u8, i).hash(&mut h),
            Value::Bool(b) => (1u8, b).hash(&mut h),
            Value::Text(s) => (2u8, s).hash(&mut h),
            Value::Date(d) => (3u8, d).hash(&mut h),
            Value::DateTime(d) => (4u8, d).hash(&mut h),
            Value::DateTimeUtc(d) => (5u8, d).hash(&mut h),
            Value::Uuid(u) => (6u8, u).hash(&mut h),
            // JSON equality is not that of its text (`1` is `1.0`):
            // `Filter::equalities` never keys on it.
            Value::Null | Value::Float(_) | Value::Json(_) => return None,
        }
        Some(h.finish())
    }
}
