//! The models an app registered, and which of them each model's relation
//! paths reach: what a write consults to know whose context it changes
//! (see [`related`](super::related)).

use std::collections::HashMap;
use std::sync::Arc;

use super::conn::{Conn, Persist};
use super::query::load;
use crate::error::Error;
use crate::model::Row;
use crate::relation::{paths, ModelInfo, Path, Paths};
use crate::sql::Bind;

/// Reads rows of one model from a query, whatever its Rust type.
pub(super) type Loader = fn(&mut Conn, &str, &[Bind]) -> Result<Vec<Row>, Error>;

fn rows_of<M: Persist>(conn: &mut Conn, sql: &str, binds: &[Bind]) -> Result<Vec<Row>, Error> {
    Ok(load::<M>(conn, sql, binds)?.iter().map(M::to_row).collect())
}

/// The models an app registered, and which of them relations reach.
#[derive(Default)]
pub(crate) struct Graph {
    pub(super) loaders: HashMap<&'static str, (&'static ModelInfo, Loader)>,
    /// Models whose changes carry a context, by table.
    pub(super) roots: HashMap<&'static str, &'static Paths>,
    /// For each table, where the roots' paths reach it.
    pub(super) dependents: HashMap<&'static str, Vec<Dependent>>,
}

/// A root's path reaching a model at one of its hops.
pub(super) struct Dependent {
    pub(super) root: &'static ModelInfo,
    pub(super) path: Arc<Path>,
    pub(super) hop: usize,
}

impl Graph {
    /// The graph with `M` added.
    pub(crate) fn with<M: Persist>(&self) -> Graph {
        let mut loaders = self.loaders.clone();
        loaders.insert(M::TABLE, (M::info(), rows_of::<M>));
        let mut graph = Graph { loaders, roots: HashMap::new(), dependents: HashMap::new() };
        for (info, _) in graph.loaders.values() {
            let all = paths(info);
            if all.all.is_empty() {
                continue;
            }
            graph.roots.insert(info.table, all);
            for path in &all.all {
                for (hop, step) in path.hops.iter().enumerate() {
                    graph.dependents.entry(step.to.table).or_default().push(Dependent {
                        root: info,
                        path: path.clone(),
                        hop,
                    });
                }
            }
        }
        graph
    }

    /// Paths that reach a model no one registered, said as `route.path -> table`.
    pub(crate) fn unreachable(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .roots
            .values()
            .flat_map(|p| p.all.iter().map(move |path| (p.root, path)))
            .flat_map(|(root, path)| {
                path.hops.iter().filter(|h| !self.loaders.contains_key(h.to.table)).map(move |h| {
                    format!("relation `{}` of route `{}` reaches table `{}`", path.name, root.route, h.to.table)
                })
            })
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    pub(super) fn is_trivial(&self, table: &str) -> bool {
        !self.roots.contains_key(table) && !self.dependents.contains_key(table)
    }
}
