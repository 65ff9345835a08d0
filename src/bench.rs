//! Doors into internals for the repository's own benchmarks
//! (`benches/matching.rs`). Not part of the API: no stability promised.

use std::sync::Arc;

use crate::change::Change;
use crate::fanout::registry::Registry;
use crate::fanout::sink::{Nowhere, Sink};
use crate::fanout::subscription::Subscription;
use crate::fanout::RouteInfo;
use crate::filter::Filter;
use crate::model::Model;

/// A registry of subscriptions to one model, for measuring matching.
pub struct Matcher {
    info: RouteInfo,
    registry: Registry,
    sink: Arc<dyn Sink>,
    next_id: u64,
}

impl Matcher {
    /// An empty registry for `M`'s route.
    pub fn new<M: Model>() -> Self {
        Matcher { info: RouteInfo::of::<M>(), registry: Registry::default(), sink: Arc::new(Nowhere), next_id: 0 }
    }

    /// Adds a subscription to `filter`.
    pub fn subscribe(&mut self, filter: Filter) {
        self.next_id += 1;
        self.registry.add(Arc::new(Subscription::new(self.next_id, self.info.route, self.sink.clone())), filter);
    }

    /// How many subscription groups `change` concerns.
    pub fn matching_groups(&self, change: &Change) -> usize {
        let mut groups = 0;
        self.registry.for_each_match(change, |_, _| groups += 1);
        groups
    }

    /// How many subscriptions `change` concerns.
    pub fn matching_members(&self, change: &Change) -> usize {
        let mut members = 0;
        self.registry.for_each_match(change, |group, _| members += group.members().len());
        members
    }
}
