//! Doors into internals for the repository's own benchmarks
//! (`benches/matching.rs`, `examples/window_refill.rs`). Not part of the
//! API: no stability promised.

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

/// Reads the rows of `windows` (a filter, `order_by` as a subscribe takes
/// it, a limit) as one round of a route's window refresher does: identical
/// windows once, all in one read transaction. Returns how many rows it read.
pub async fn window_round<M: crate::store::Persist>(
    db: &crate::Db,
    windows: &[(serde_json::Value, serde_json::Value, usize)],
) -> Result<usize, crate::Error> {
    use crate::fanout::window::WindowQuery;
    let dialect = db.dialect();
    let mut queries: Vec<WindowQuery> = Vec::new();
    for (filter, order_by, limit) in windows {
        let filter = crate::sql::parse_filter(M::FIELDS, filter, crate::filter::FieldAccess::All, dialect)
            .map_err(crate::Error::BadFilter)?;
        let order_by =
            crate::route::args::Args(&serde_json::json!({ "order_by": order_by })).order_by::<M>(dialect, 16)?;
        let fragment = crate::sql::render(&filter, dialect);
        let query = WindowQuery { where_sql: fragment.sql, binds: fragment.binds, order_by, limit: *limit };
        if !queries.contains(&query) {
            queries.push(query);
        }
    }
    let (_, rows) = db
        .snapshot(M::ROUTE, move |conn| {
            let refs: Vec<&WindowQuery> = queries.iter().collect();
            crate::route::window::load_windows::<M>(conn, &refs)
        })
        .await?;
    Ok(rows.iter().map(Vec::len).sum())
}
