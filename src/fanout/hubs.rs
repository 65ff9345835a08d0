//! One hub per route: each route's changes are ordered and fanned out on a
//! thread of its own, so a busy route never holds back another's events.
//!
//! Everything a hub decides concerns one route (its stream, its groups, the
//! subscriptions starting on it), so splitting by route keeps each decision
//! on one consistent state, as one hub for everything did. A commit that
//! writes several routes hands each its own changes, in commit order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::hub::{self, Command, HubState, HUB_QUEUE};
use super::lane::{self, Pool};
use super::registry::Lanes;
use super::{Catalog, History, Watch};
use crate::change::Change;

/// The queues of the hubs, by route.
#[derive(Clone, Default)]
pub(crate) struct Hubs(Arc<HashMap<&'static str, mpsc::Sender<Command>>>);

/// The hubs' queues before their threads run (the broker, which decides
/// how often they sweep, is built in between).
pub(crate) struct Unstarted(Vec<(&'static str, mpsc::Receiver<Command>)>);

impl Hubs {
    /// A queue for every route of `catalog`.
    pub(crate) fn new(catalog: &Catalog) -> (Hubs, Unstarted) {
        let (mut hubs, mut queues) = (HashMap::new(), Vec::new());
        for route in catalog.routes() {
            let (tx, rx) = mpsc::channel(HUB_QUEUE);
            hubs.insert(route, tx);
            queues.push((route, rx));
        }
        (Hubs(Arc::new(hubs)), Unstarted(queues))
    }

    /// Hubs over the given queues (for tests).
    #[cfg(test)]
    pub(crate) fn of(queues: impl IntoIterator<Item = (&'static str, mpsc::Sender<Command>)>) -> Hubs {
        Hubs(Arc::new(queues.into_iter().collect()))
    }

    /// The hub of `route`, if it is served here.
    pub(crate) fn of_route(&self, route: &str) -> Option<&mpsc::Sender<Command>> {
        self.0.get(route)
    }

    /// Every hub.
    pub(crate) fn all(&self) -> impl Iterator<Item = &mpsc::Sender<Command>> {
        self.0.values()
    }

    /// Splits changes by route, keeping each route's in their order, and
    /// pairs each part with its hub (changes of routes not served here are
    /// nobody's).
    pub(crate) fn split(&self, changes: Vec<Change>) -> Vec<(&mpsc::Sender<Command>, Vec<Change>)> {
        let mut parts: Vec<(&'static str, Vec<Change>)> = Vec::new();
        for change in changes {
            match parts.iter_mut().find(|(route, _)| *route == change.route) {
                Some((_, part)) => part.push(change),
                None => parts.push((change.route, vec![change])),
            }
        }
        parts.into_iter().filter_map(|(route, part)| Some((self.0.get(route)?, part))).collect()
    }
}

impl Unstarted {
    /// Starts a hub thread per route, each with its own state.
    pub(crate) fn spawn(
        self,
        catalog: &Arc<Catalog>,
        history: &Arc<dyn History>,
        watch: &Arc<Watch>,
        sweep: Option<Duration>,
    ) {
        for (route, commands) in self.0 {
            let lanes = Lanes {
                scheduler: Pool::shared(),
                limits: lane::Limits::default(),
                every_group: false,
                ended: Arc::default(),
            };
            let state = HubState::new(history.clone(), catalog.clone(), watch.clone(), sweep, lanes);
            hub::spawn(route, state, commands);
        }
    }
}
