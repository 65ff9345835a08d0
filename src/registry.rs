//! The subscription registry and its equality index.
//!
//! Subscriptions with the same effective filter (the client's filter ANDed
//! with the identity's scope) share one [`Group`], so a filter is evaluated
//! once per change however many clients hold it. Each group is indexed under
//! one of its equality predicates (`list_id = 7`): a change looks up only the
//! groups keyed on its old and new values of the indexed fields, plus the few
//! groups with no equality predicate, so matching cost per change stays flat
//! as subscriptions grow.
//!
//! Each [`Subscription`] also owns the gapless-start buffer and its sequence
//! counter, so that the subscribe reply, buffered changes and later changes
//! reach its connection in order.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use crate::change::{Action, Change};
use crate::connection::{Outbound, Outbox};
use crate::filter::Filter;
use crate::model::{FieldDef, Model, Value};
use crate::protocol;

/// Every live subscription of this process, by route.
#[derive(Default)]
pub struct Registry {
    routes: DashMap<&'static str, Arc<RwLock<RouteSubscriptions>>>,
    /// The models served here, by route: what a change from another process
    /// is decoded with.
    catalog: DashMap<&'static str, RouteInfo>,
    next_id: AtomicU64,
    hasher: RandomState,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("routes", &self.routes.len()).finish()
    }
}

/// What the registry knows of a route's model.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// The route name.
    pub route: &'static str,
    /// The model's fields.
    pub fields: &'static [FieldDef],
    /// The primary key's index.
    pub pk: usize,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a route's model, so changes to it can be decoded.
    pub fn register_route<M: Model>(&self) {
        self.catalog.insert(M::ROUTE, RouteInfo { route: M::ROUTE, fields: M::FIELDS, pk: M::PRIMARY_KEY });
    }

    /// A registered route by name.
    pub fn route_info(&self, route: &str) -> Option<RouteInfo> {
        self.catalog.get(route).map(|r| *r)
    }

    /// Registers a subscription. It starts buffering changes at once; call
    /// [`Subscription::start`] with the snapshot's position to go live.
    pub fn subscribe(&self, route: &'static str, filter: Filter, outbox: Arc<Outbox>) -> Arc<Subscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let subs = self.routes.entry(route).or_default().clone();
        let mut subs = subs.write();
        let key = filter.canonical_key();
        let group = match subs.by_filter.get(&key) {
            Some(&g) => g,
            None => subs.add_group(key, filter, &self.hasher),
        };
        let sub =
            Arc::new(Subscription { id, route, group, outbox, state: Mutex::new(SubState::Starting(Vec::new())) });
        subs.groups.get_mut(&group).expect("group just found").members.push(sub.clone());
        sub
    }

    /// Removes a subscription; it receives nothing more.
    pub fn unsubscribe(&self, sub: &Subscription) {
        *sub.state.lock() = SubState::Closed;
        let Some(subs) = self.routes.get(sub.route).map(|s| s.clone()) else { return };
        let mut subs = subs.write();
        let Some(group) = subs.groups.get_mut(&sub.group) else { return };
        group.members.retain(|m| m.id != sub.id);
        if group.members.is_empty() {
            subs.remove_group(sub.group);
        }
    }

    /// Calls `deliver` for each group of `change.route` that the change
    /// concerns, with the action its members are told. Only candidate groups
    /// from the index are evaluated.
    pub fn for_each_match(&self, change: &Change, mut deliver: impl FnMut(&Group, Action)) {
        let Some(subs) = self.routes.get(change.route).map(|s| s.clone()) else { return };
        let subs = subs.read();
        let mut visit = |id: &u64| {
            let group = &subs.groups[id];
            let before = change.old.as_deref().is_some_and(|row| group.filter.matches(row));
            let after = change.new.as_deref().is_some_and(|row| group.filter.matches(row));
            if let Some(action) = Action::for_transition(before, after) {
                deliver(group, action);
            }
        };
        for &(field, _) in &subs.indexed_fields {
            let old = change.old.as_deref().and_then(|row| key_hash(&self.hasher, &row[field]));
            let new = change.new.as_deref().and_then(|row| key_hash(&self.hasher, &row[field]));
            for hash in [old, new.filter(|h| Some(*h) != old)].into_iter().flatten() {
                subs.index.get(&(field, hash)).into_iter().flatten().for_each(&mut visit);
            }
        }
        subs.unindexed.iter().for_each(visit);
    }

    /// Delivers a change to every matching subscription. Payloads are
    /// serialized once per change and shared.
    pub fn fan_out(&self, change: &Change) {
        self.for_each_match(change, |group, action| {
            let Some(data) = change.payload(action) else { return };
            for member in &group.members {
                member.deliver(change.pos, action, &data);
            }
        });
    }

    /// Whether any subscription of `route` exists in this process.
    pub fn has_subscriptions(&self, route: &str) -> bool {
        self.routes.get(route).is_some_and(|s| !s.read().groups.is_empty())
    }

    /// Ends every subscription of `route` with a `gap` frame: changes were
    /// lost, so each client must take a fresh snapshot.
    pub fn gap(&self, route: &str, reason: &str) {
        let Some(subs) = self.routes.get(route).map(|s| s.clone()) else { return };
        let groups = std::mem::take(&mut *subs.write());
        for member in groups.groups.values().flat_map(|g| &g.members) {
            let mut state = member.state.lock();
            if !matches!(*state, SubState::Closed) {
                member.outbox.push(Outbound::Frame(protocol::gap_frame(member.id, reason)));
                *state = SubState::Closed;
            }
        }
    }

    /// The number of subscriptions and groups of a route.
    pub fn stats(&self, route: &str) -> (usize, usize) {
        self.routes.get(route).map_or((0, 0), |s| {
            let s = s.read();
            (s.groups.values().map(|g| g.members.len()).sum(), s.groups.len())
        })
    }
}

/// Hash of an indexable value. Floats and nulls are never index keys.
fn key_hash(hasher: &RandomState, value: &Value) -> Option<u64> {
    let mut h = hasher.build_hasher();
    match value {
        Value::Int(i) => (0u8, i).hash(&mut h),
        Value::Bool(b) => (1u8, b).hash(&mut h),
        Value::Text(s) => (2u8, s).hash(&mut h),
        Value::Null | Value::Float(_) => return None,
    }
    Some(h.finish())
}

/// The subscriptions of one route.
#[derive(Default)]
struct RouteSubscriptions {
    groups: HashMap<u64, Group>,
    by_filter: HashMap<String, u64>,
    /// (field, value hash) → groups keyed on that value. Hash collisions only
    /// add candidates; each candidate's filter is still evaluated.
    index: HashMap<(usize, u64), Vec<u64>>,
    /// Fields some group is keyed on, with how many groups.
    indexed_fields: Vec<(usize, usize)>,
    unindexed: Vec<u64>,
    next_group: u64,
}

impl RouteSubscriptions {
    fn add_group(&mut self, canonical: String, filter: Filter, hasher: &RandomState) -> u64 {
        self.next_group += 1;
        let id = self.next_group;
        // Prefer a field other groups are keyed on, so a change looks up few fields.
        let key = filter
            .equalities()
            .filter_map(|(field, value)| Some((field, key_hash(hasher, value)?)))
            .max_by_key(|(field, _)| self.indexed_fields.iter().find(|(f, _)| f == field).map_or(0, |(_, n)| *n));
        match key {
            Some((field, hash)) => {
                self.index.entry((field, hash)).or_default().push(id);
                match self.indexed_fields.iter_mut().find(|(f, _)| *f == field) {
                    Some((_, n)) => *n += 1,
                    None => self.indexed_fields.push((field, 1)),
                }
            }
            None => self.unindexed.push(id),
        }
        self.by_filter.insert(canonical.clone(), id);
        self.groups.insert(id, Group { filter, canonical, key, members: Vec::new() });
        id
    }

    fn remove_group(&mut self, id: u64) {
        let Some(group) = self.groups.remove(&id) else { return };
        self.by_filter.remove(&group.canonical);
        match group.key {
            Some(key) => {
                if let Some(ids) = self.index.get_mut(&key) {
                    ids.retain(|g| *g != id);
                    if ids.is_empty() {
                        self.index.remove(&key);
                    }
                }
                if let Some(at) = self.indexed_fields.iter().position(|(f, _)| *f == key.0) {
                    self.indexed_fields[at].1 -= 1;
                    if self.indexed_fields[at].1 == 0 {
                        self.indexed_fields.swap_remove(at);
                    }
                }
            }
            None => self.unindexed.retain(|g| *g != id),
        }
    }
}

/// Subscriptions that share one effective filter.
pub struct Group {
    filter: Filter,
    canonical: String,
    key: Option<(usize, u64)>,
    members: Vec<Arc<Subscription>>,
}

impl Group {
    /// The subscriptions in the group.
    pub fn members(&self) -> &[Arc<Subscription>] {
        &self.members
    }
}

/// One client subscription.
pub struct Subscription {
    /// Unique in this process; the client names it in `unsubscribe`.
    pub id: u64,
    route: &'static str,
    group: u64,
    outbox: Arc<Outbox>,
    state: Mutex<SubState>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).field("route", &self.route).finish()
    }
}

enum SubState {
    /// Registered, snapshot not yet read: changes wait here.
    Starting(Vec<(u64, Action, Arc<str>)>),
    /// Changes go straight to the connection, numbered by `seq`, except
    /// those at or before `snapshot_pos`: the fan-out runs behind the
    /// commits, so a change the snapshot already holds may reach a
    /// subscription only after it went live.
    Live { seq: u64, snapshot_pos: u64 },
    /// Unsubscribed or disconnected.
    Closed,
}

impl Subscription {
    /// The route subscribed to.
    pub fn route(&self) -> &'static str {
        self.route
    }

    /// Goes live after the snapshot at position `snapshot_pos` was read:
    /// queues `reply`, then every buffered change the snapshot does not
    /// already hold, in order. Returns false if the subscription was closed.
    pub fn start(&self, snapshot_pos: u64, reply: String) -> bool {
        self.start_with_replay(snapshot_pos, reply, Vec::new())
    }

    /// Like [`Subscription::start`], with changes replayed from history
    /// (all at or before `snapshot_pos`) sent between the reply and the
    /// buffered changes: how `resume` goes live.
    pub fn start_with_replay(&self, snapshot_pos: u64, reply: String, replay: Vec<(u64, Action, Arc<str>)>) -> bool {
        let mut state = self.state.lock();
        let SubState::Starting(buffer) = &mut *state else { return false };
        let buffer = std::mem::take(buffer);
        if !self.outbox.push(Outbound::Frame(reply)) {
            *state = SubState::Closed;
            return false;
        }
        let mut seq = 0;
        let buffered = buffer.into_iter().filter(|(pos, ..)| *pos > snapshot_pos);
        for (pos, action, data) in replay.into_iter().chain(buffered) {
            seq += 1;
            if !self.outbox.push(Outbound::Event { sub: self.id, seq, pos, route: self.route, action, data }) {
                *state = SubState::Closed;
                return false;
            }
        }
        *state = SubState::Live { seq, snapshot_pos };
        true
    }

    fn deliver(&self, pos: u64, action: Action, data: &Arc<str>) {
        let mut state = self.state.lock();
        match &mut *state {
            SubState::Starting(buffer) => buffer.push((pos, action, data.clone())),
            SubState::Live { snapshot_pos, .. } if pos <= *snapshot_pos => {}
            SubState::Live { seq, .. } => {
                *seq += 1;
                let event =
                    Outbound::Event { sub: self.id, seq: *seq, pos, route: self.route, action, data: data.clone() };
                if !self.outbox.push(event) {
                    *state = SubState::Closed;
                }
            }
            SubState::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FieldAccess;
    use crate::model::FieldDef;

    #[allow(dead_code)]
    #[derive(crate::Model)]
    struct Item {
        id: i32,
        #[wyrm(update)]
        list_id: i32,
        #[wyrm(update)]
        text: String,
    }
    const FIELDS: &[FieldDef] = <Item as crate::Model>::FIELDS;

    fn filter(json: serde_json::Value) -> Filter {
        Filter::parse(FIELDS, &json, FieldAccess::Published).unwrap()
    }

    fn row(list: i64, text: &str) -> crate::model::Row {
        vec![Value::Int(1), Value::Int(list), Value::Text(text.into())].into()
    }

    /// (group filter key, action) for each group a change concerns.
    fn matches(
        registry: &Registry,
        old: Option<crate::model::Row>,
        new: Option<crate::model::Row>,
    ) -> Vec<(String, Action)> {
        let change = Change::new("item", FIELDS, 0, old, new);
        let mut seen = Vec::new();
        registry.for_each_match(&change, |group, action| seen.push((group.canonical.clone(), action)));
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        seen
    }

    #[test]
    fn index_finds_old_and_new_keys_and_unindexed_groups() {
        let registry = Registry::new();
        let (outbox, _rx) = Outbox::new(16);
        let on_1 = filter(serde_json::json!({"list_id": 1}));
        let on_2 = filter(serde_json::json!({"list__id": 2, "text__startswith": "a"}));
        let milk = filter(serde_json::json!({"text__icontains": "MILK"}));
        for f in [&on_1, &on_2, &milk, &on_1] {
            registry.subscribe("item", f.clone(), outbox.clone());
        }
        assert_eq!(registry.stats("item"), (4, 3), "identical filters share a group");

        // Created in list 1: the list-1 group and the unindexed text group.
        let seen = matches(&registry, None, Some(row(1, "milk")));
        let mut want = vec![(on_1.canonical_key(), Action::Created), (milk.canonical_key(), Action::Created)];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen, want);

        // Moved from list 1 to 2: left one group, entered another.
        let seen = matches(&registry, Some(row(1, "apples")), Some(row(2, "apples")));
        let mut want = vec![(on_1.canonical_key(), Action::Deleted), (on_2.canonical_key(), Action::Created)];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen, want);

        // A change in an unwatched list concerns nobody.
        assert!(matches(&registry, Some(row(9, "x")), Some(row(9, "y"))).is_empty());
    }

    #[test]
    fn unsubscribing_the_last_member_removes_the_group_and_its_index_entry() {
        let registry = Registry::new();
        let (outbox, _rx) = Outbox::new(16);
        let a = registry.subscribe("item", filter(serde_json::json!({"list_id": 1})), outbox.clone());
        let b = registry.subscribe("item", filter(serde_json::json!({"list_id": 1})), outbox.clone());
        registry.unsubscribe(&a);
        assert_eq!(registry.stats("item"), (1, 1));
        registry.unsubscribe(&b);
        assert_eq!(registry.stats("item"), (0, 0));
        assert!(matches(&registry, None, Some(row(1, "x"))).is_empty());
        let subs = registry.routes.get("item").unwrap().clone();
        let subs = subs.read();
        assert!(subs.index.is_empty() && subs.indexed_fields.is_empty() && subs.by_filter.is_empty());
    }

    #[test]
    fn buffered_changes_at_or_before_the_snapshot_are_dropped() {
        let registry = Registry::new();
        let (outbox, mut rx) = Outbox::new(16);
        let sub = registry.subscribe("item", Filter::all(), outbox);
        let data: Arc<str> = Arc::from("{}");
        for pos in [4, 5, 6] {
            sub.deliver(pos, Action::Created, &data);
        }
        assert!(sub.start(5, "reply".into()));
        sub.deliver(7, Action::Updated, &data);
        let mut got = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            got.push(match frame {
                Outbound::Frame(text) => format!("frame {text}"),
                Outbound::Event { seq, pos, .. } => format!("seq {seq} pos {pos}"),
            });
        }
        assert_eq!(got, ["frame reply", "seq 1 pos 6", "seq 2 pos 7"]);
    }

    #[test]
    fn changes_the_snapshot_holds_are_dropped_even_when_fanned_out_after_going_live() {
        let registry = Registry::new();
        let (outbox, mut rx) = Outbox::new(16);
        let sub = registry.subscribe("item", Filter::all(), outbox);
        let data: Arc<str> = Arc::from("{}");
        // Positions up to 5 were committed before the snapshot was read, but
        // the fan-out thread, running behind, reaches 4 and 5 only now.
        assert!(sub.start(5, "reply".into()));
        for pos in [4, 5, 6] {
            sub.deliver(pos, Action::Created, &data);
        }
        let mut got = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            got.push(match frame {
                Outbound::Frame(text) => format!("frame {text}"),
                Outbound::Event { seq, pos, .. } => format!("seq {seq} pos {pos}"),
            });
        }
        assert_eq!(got, ["frame reply", "seq 1 pos 6"]);
    }
}
