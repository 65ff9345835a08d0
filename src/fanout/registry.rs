//! The subscriptions of this process, grouped by effective filter.
//!
//! Subscriptions with the same effective filter (the client's filter ANDed
//! with the identity's scope) share one [`Group`], so a filter is evaluated
//! once per change however many clients hold it, and its payload is
//! serialized once. Groups are found through the route's equality
//! [`Index`]. The hub thread owns the registry: no locks on the hot path.
//! Groups whose filter scans text are evaluated in a [`Lane`] of their own,
//! off the hub thread (see [`super::lane`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::index::{Index, Key};
use super::lane::{Lane, Limits, Scheduler};
use super::subscription::{Delivery, Subscription};
use crate::change::{Action, Change};
use crate::filter::Filter;

/// Every subscription of this process, by route.
#[derive(Default)]
pub(crate) struct Registry {
    routes: HashMap<&'static str, RouteGroups>,
    /// Without lanes, every group is evaluated inline (benches, unit tests).
    lanes: Option<Lanes>,
}

/// Which groups get a lane, and where lanes run.
pub(crate) struct Lanes {
    pub(crate) scheduler: Arc<dyn Scheduler>,
    pub(crate) limits: Limits,
    /// Every group, not only scanning ones (the simulation's setting).
    pub(crate) every_group: bool,
    /// Subscriptions that lanes ended, for the hub to unregister.
    pub(crate) ended: Arc<Mutex<Vec<Arc<Subscription>>>>,
}

/// The subscription groups of one route.
#[derive(Default)]
struct RouteGroups {
    groups: HashMap<u64, Group>,
    by_filter: HashMap<String, u64>,
    index: Index,
    next_group: u64,
    members: usize,
}

/// Subscriptions that share one effective filter.
pub(crate) struct Group {
    filter: Filter,
    canonical: String,
    key: Key,
    members: Vec<Arc<Subscription>>,
    lane: Option<Arc<Lane>>,
}

impl Group {
    /// The subscriptions in the group.
    pub(crate) fn members(&self) -> &[Arc<Subscription>] {
        &self.members
    }
}

/// How many subscriptions and groups a route has here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Subscriptions, starting or live.
    pub subscriptions: usize,
    /// Distinct effective filters among them.
    pub groups: usize,
}

impl Registry {
    /// A registry that evaluates scanning groups (or every group) in lanes.
    pub(crate) fn with_lanes(lanes: Lanes) -> Self {
        Registry { routes: HashMap::new(), lanes: Some(lanes) }
    }

    /// Adds a subscription to its route, in the group of its effective
    /// filter (the client's, and the identity's scope). Returns the group's
    /// lane if it has one: the subscription then joins through it.
    pub(crate) fn add(&mut self, sub: Arc<Subscription>, filter: Filter) -> Option<Arc<Lane>> {
        let route = sub.route();
        let groups = self.routes.entry(route).or_default();
        let lanes = &self.lanes;
        let canonical = filter.canonical_key();
        let id = match groups.by_filter.get(&canonical) {
            Some(&id) => id,
            None => {
                groups.next_group += 1;
                let id = groups.next_group;
                let key = groups.index.insert(id, &filter);
                let lane = lanes
                    .as_ref()
                    .filter(|lanes| lanes.every_group || filter.scans())
                    .map(|lanes| Lane::new(filter.clone(), lanes.scheduler.clone(), lanes.limits, lanes.ended.clone()));
                groups.by_filter.insert(canonical.clone(), id);
                groups.groups.insert(id, Group { filter, canonical, key, members: Vec::new(), lane });
                id
            }
        };
        sub.set_group(id);
        groups.members += 1;
        let group = groups.groups.get_mut(&id).expect("group just found");
        group.members.push(sub);
        group.lane.clone()
    }

    /// Removes a subscription; returns whether it was here.
    pub(crate) fn remove(&mut self, sub: &Subscription) -> bool {
        let (route, id) = (sub.route(), sub.group());
        let Some(groups) = self.routes.get_mut(route).filter(|_| id != 0) else { return false };
        sub.set_group(0);
        groups.members -= 1;
        let group = groups.groups.get_mut(&id).expect("a placed subscription has a group");
        group.members.retain(|m| m.id != sub.id);
        if group.members.is_empty() {
            let group = groups.groups.remove(&id).expect("just seen");
            groups.by_filter.remove(&group.canonical);
            groups.index.remove(id, group.key);
        }
        if groups.groups.is_empty() {
            debug_assert!(groups.index.is_empty() && groups.by_filter.is_empty());
            self.routes.remove(route);
        }
        true
    }

    /// Whether `route` has any subscription here.
    pub(crate) fn watches(&self, route: &str) -> bool {
        self.routes.contains_key(route)
    }

    /// The subscriptions of `route` in groups without a lane (the hub's
    /// to tell of its stream directly).
    pub(crate) fn inline_members<'a>(&'a self, route: &str) -> impl Iterator<Item = &'a Arc<Subscription>> + 'a {
        self.routes
            .get(route)
            .into_iter()
            .flat_map(|g| g.groups.values())
            .filter(|g| g.lane.is_none())
            .flat_map(|g| g.members.iter())
    }

    /// Every lane, of every route.
    pub(crate) fn every_lane(&self) -> impl Iterator<Item = &Arc<Lane>> + '_ {
        self.routes.values().flat_map(|g| g.groups.values()).filter_map(|g| g.lane.as_ref())
    }

    /// The lanes of `route`'s groups (which tell their own members).
    pub(crate) fn lanes<'a>(&'a self, route: &str) -> impl Iterator<Item = &'a Arc<Lane>> + 'a {
        self.routes.get(route).into_iter().flat_map(|g| g.groups.values()).filter_map(|g| g.lane.as_ref())
    }

    /// Calls `deliver` for each group of `change.route` that the change
    /// concerns, with the action its members are told. Only candidate groups
    /// from the index are evaluated.
    pub(crate) fn for_each_match(&self, change: &Change, mut deliver: impl FnMut(&Group, Action)) {
        let Some(groups) = self.routes.get(change.route) else { return };
        groups.index.candidates(change, |id| {
            let group = &groups.groups[&id];
            if let Some(action) = change.action_for(&group.filter) {
                deliver(group, action);
            }
        });
    }

    /// Delivers a change to every subscription it concerns: groups
    /// without a lane here, the others by queueing it in their lane,
    /// unevaluated. Payloads are serialized once per change and action,
    /// and shared.
    pub(crate) fn fan_out(&self, change: &Arc<Change>) {
        let Some(groups) = self.routes.get(change.route) else { return };
        groups.index.candidates(change, |id| {
            let group = &groups.groups[&id];
            if let Some(lane) = &group.lane {
                lane.push(super::lane::Item::Change(change.clone()));
                return;
            }
            let Some(action) = change.action_for(&group.filter) else { return };
            let Some(data) = change.payload(action) else { return };
            let delivery = Arc::new(Delivery { pos: change.pos, route: change.route, action, data });
            for member in &group.members {
                member.deliver(&delivery);
            }
        });
    }

    /// The route's subscription and group counts.
    pub(crate) fn stats(&self, route: &str) -> RouteStats {
        self.routes
            .get(route)
            .map_or_else(RouteStats::default, |g| RouteStats { subscriptions: g.members, groups: g.groups.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::subscription::tests::Recorder;
    use crate::filter::FieldAccess;
    use crate::model::{FieldDef, Model, Value};

    #[allow(dead_code)]
    #[derive(crate::Model)]
    #[wyrm(route = "item")]
    struct Item {
        id: i32,
        #[wyrm(update)]
        list_id: i32,
        #[wyrm(update)]
        text: String,
    }
    const FIELDS: &[FieldDef] = <Item as Model>::FIELDS;

    fn filter(json: serde_json::Value) -> Filter {
        Filter::parse(FIELDS, &json, FieldAccess::Published).unwrap()
    }

    fn row(list: i64, text: &str) -> crate::model::Row {
        vec![Value::Int(1), Value::Int(list), Value::Text(text.into())].into()
    }

    fn sub(id: u64) -> Arc<Subscription> {
        Arc::new(Subscription::new(id, Item::ROUTE, Arc::new(Recorder::default())))
    }

    /// (group filter key, action) for each group a change concerns.
    fn matches(
        registry: &Registry,
        old: Option<crate::model::Row>,
        new: Option<crate::model::Row>,
    ) -> Vec<(String, Action)> {
        let change = Change::new(Item::ROUTE, FIELDS, 0, old, new);
        let mut seen = Vec::new();
        registry.for_each_match(&change, |group, action| seen.push((group.canonical.clone(), action)));
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        seen
    }

    #[test]
    fn index_finds_old_and_new_keys_and_unindexed_groups() {
        let mut registry = Registry::default();
        let on_1 = filter(serde_json::json!({"list_id": 1}));
        let on_2 = filter(serde_json::json!({"list__id": 2, "text__startswith": "a"}));
        let milk = filter(serde_json::json!({"text__icontains": "MILK"}));
        for (id, f) in [&on_1, &on_2, &milk, &on_1].into_iter().enumerate() {
            registry.add(sub(id as u64 + 1), f.clone());
        }
        assert_eq!(registry.stats(Item::ROUTE), RouteStats { subscriptions: 4, groups: 3 });

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
    fn or_groups_pinned_on_a_field_are_indexed_under_each_value_and_visited_once() {
        let mut registry = Registry::default();
        let either = filter(serde_json::json!({"or": [{"list_id": 1}, {"list_id": 2, "text": "a"}]}));
        let not_3 = filter(serde_json::json!({"not": {"list_id": 3}}));
        registry.add(sub(1), either.clone());
        registry.add(sub(2), not_3.clone());
        let groups = &registry.routes[Item::ROUTE];
        assert_eq!(groups.index.unindexed_len(), 1, "only the NOT group is unindexed");

        // Moved between two values the OR group is filed under: one visit.
        let seen = matches(&registry, Some(row(1, "a")), Some(row(2, "a")));
        let mut want = vec![(either.canonical_key(), Action::Updated), (not_3.canonical_key(), Action::Updated)];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen, want);
        let seen = matches(&registry, Some(row(2, "a")), Some(row(2, "b")));
        let mut want = vec![(either.canonical_key(), Action::Deleted), (not_3.canonical_key(), Action::Updated)];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen, want);
        // Outside both values, only the unindexed group is evaluated.
        let mut visited = Vec::new();
        let change = Change::new(Item::ROUTE, FIELDS, 0, Some(row(3, "a")), Some(row(4, "a")));
        registry.routes[Item::ROUTE].index.candidates(&change, |id| visited.push(id));
        assert_eq!(visited.len(), 1, "{visited:?}");
        assert_eq!(
            matches(&registry, Some(row(3, "a")), Some(row(4, "a"))),
            vec![(not_3.canonical_key(), Action::Created)]
        );
    }

    #[test]
    fn removing_the_last_member_removes_the_group_and_the_route() {
        let mut registry = Registry::default();
        let f = filter(serde_json::json!({"list_id": 1}));
        let (a, b) = (sub(1), sub(2));
        registry.add(a.clone(), f.clone());
        registry.add(b.clone(), f);
        assert!(registry.remove(&a));
        assert!(!registry.remove(&a), "removed once");
        assert_eq!(registry.stats(Item::ROUTE), RouteStats { subscriptions: 1, groups: 1 });
        assert!(registry.remove(&b));
        assert_eq!(registry.stats(Item::ROUTE), RouteStats::default());
        assert!(!registry.watches(Item::ROUTE));
        assert!(matches(&registry, None, Some(row(1, "x"))).is_empty());
    }
}
