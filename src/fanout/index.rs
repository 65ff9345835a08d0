//! The equality index of one route's subscription groups.
//!
//! Each group is filed under one field its filter pins (`list_id = 7`, or
//! `list_id` in 1, 2 through an `in` or an `or` whose branches all pin it),
//! once per value: a change looks up only the groups filed under its old and
//! new values of the indexed fields, plus the few groups whose filter pins
//! no field, so the matching cost per change stays flat as subscriptions
//! grow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use crate::change::Change;
use crate::filter::{split_pin, Filter};
use crate::model::Value;

/// Where a group is filed: `(field index, value hashes)`, or unindexed.
pub(crate) type Key = Option<(usize, Box<[u64]>)>;

#[derive(Default)]
pub(crate) struct Index {
    /// (field, value hash) → groups keyed on that value. Hash collisions only
    /// add candidates; each candidate's filter is still evaluated.
    keyed: HashMap<(usize, u64), Vec<u64>>,
    /// Fields some group is keyed on, with how many groups.
    fields: Vec<(usize, usize)>,
    /// Groups filed under several values, with their sorted hashes: a change
    /// moving a row between two of them must still visit the group once.
    several: HashMap<u64, Box<[u64]>>,
    unindexed: Vec<u64>,
    hasher: RandomState,
}

impl Index {
    /// Files group `id` with `filter`; returns where, for [`Index::remove`].
    pub(crate) fn insert(&mut self, id: u64, filter: &Filter) -> Key {
        // Prefer a field other groups are filed under, so a change looks up
        // few fields; then the fewest values.
        let key = filter
            .pins()
            .into_iter()
            .filter_map(|(field, values)| {
                let mut hashes: Vec<u64> = values.iter().map(|v| self.hash(v)).collect::<Option<_>>()?;
                hashes.sort_unstable();
                hashes.dedup();
                Some((field, hashes.into_boxed_slice()))
            })
            .max_by_key(|(field, hashes)| {
                let filed = self.fields.iter().find(|(f, _)| f == field).map_or(0, |(_, n)| *n);
                (filed, std::cmp::Reverse(hashes.len()))
            });
        match &key {
            Some((field, hashes)) => {
                for &hash in hashes.iter() {
                    self.keyed.entry((*field, hash)).or_default().push(id);
                }
                if hashes.len() > 1 {
                    self.several.insert(id, hashes.clone());
                }
                match self.fields.iter_mut().find(|(f, _)| f == field) {
                    Some((_, n)) => *n += 1,
                    None => self.fields.push((*field, 1)),
                }
            }
            None => self.unindexed.push(id),
        }
        key
    }

    pub(crate) fn remove(&mut self, id: u64, key: Key) {
        let Some((field, hashes)) = key else {
            self.unindexed.retain(|g| *g != id);
            return;
        };
        for hash in hashes.iter() {
            if let Some(ids) = self.keyed.get_mut(&(field, *hash)) {
                ids.retain(|g| *g != id);
                if ids.is_empty() {
                    self.keyed.remove(&(field, *hash));
                }
            }
        }
        self.several.remove(&id);
        if let Some(at) = self.fields.iter().position(|(f, _)| *f == field) {
            self.fields[at].1 -= 1;
            if self.fields[at].1 == 0 {
                self.fields.swap_remove(at);
            }
        }
    }

    /// Calls `visit` once with every group that `change` could concern:
    /// those filed under its old or new value of an indexed field, and the
    /// unindexed.
    pub(crate) fn candidates(&self, change: &Change, mut visit: impl FnMut(u64)) {
        for &(field, _) in &self.fields {
            if let Some((at, inner)) = split_pin(field) {
                self.related_candidates(change, field, at, inner, &mut visit);
                continue;
            }
            let old = change.old.as_deref().and_then(|row| self.hash(&row[field]));
            let new = change.new.as_deref().and_then(|row| self.hash(&row[field]));
            if let Some(old) = old {
                self.keyed.get(&(field, old)).into_iter().flatten().for_each(|id| visit(*id));
            }
            let Some(new) = new.filter(|h| Some(*h) != old) else { continue };
            for id in self.keyed.get(&(field, new)).into_iter().flatten() {
                // Filed under the old value too: visited already.
                let seen = old.is_some_and(|old| {
                    !self.several.is_empty() && self.several.get(id).is_some_and(|h| h.binary_search(&old).is_ok())
                });
                if !seen {
                    visit(*id);
                }
            }
        }
        self.unindexed.iter().for_each(|id| visit(*id));
    }

    /// The groups pinned through a relation to a value some row of the
    /// change's context holds, before or after, each once.
    fn related_candidates(&self, change: &Change, pin: usize, at: usize, inner: usize, visit: &mut impl FnMut(u64)) {
        let rows = |row: &Option<crate::model::Row>| match row.as_deref().and_then(|r| r.get(at)) {
            Some(Value::Related(rows)) => rows.clone(),
            _ => Default::default(),
        };
        let (old, new) = (rows(&change.old), rows(&change.new));
        let mut hashes: Vec<u64> = old.iter().chain(new.iter()).filter_map(|r| self.hash(&r[inner])).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut seen = std::collections::HashSet::new();
        for hash in hashes {
            for id in self.keyed.get(&(pin, hash)).into_iter().flatten() {
                if seen.insert(*id) {
                    visit(*id);
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.fields.is_empty() && self.several.is_empty() && self.unindexed.is_empty()
    }

    /// How many groups are filed under no field.
    #[cfg(test)]
    pub(crate) fn unindexed_len(&self) -> usize {
        self.unindexed.len()
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
            Value::Null | Value::Float(_) | Value::Json(_) | Value::Related(_) => return None,
        }
        Some(h.finish())
    }
}
