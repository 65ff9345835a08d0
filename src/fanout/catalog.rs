//! What the fan-out knows of the routes served here: how a change read
//! from history or received from another process is decoded (its model's
//! fields, and the fields of the rows its relation paths reach).

use std::collections::HashMap;

use crate::change::Change;
use crate::model::Model;

/// What the fan-out knows of a route's model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteInfo {
    pub(crate) route: &'static str,
    pub(crate) model: &'static crate::relation::ModelInfo,
    /// The fields of each relation path's target, in path order: how the
    /// rows of a change's context are decoded.
    pub(crate) related: &'static [&'static [crate::model::FieldDef]],
}

impl RouteInfo {
    pub(crate) fn of<M: Model>() -> Self {
        RouteInfo { route: M::ROUTE, model: M::info(), related: &crate::relation::paths(M::info()).targets }
    }
}

/// The routes served here: what a change from history or another process
/// is decoded with.
#[derive(Debug, Default)]
pub(crate) struct Catalog(HashMap<&'static str, RouteInfo>);

impl Catalog {
    pub(crate) fn insert(&mut self, info: RouteInfo) {
        self.0.insert(info.route, info);
    }

    /// The routes served here.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }

    /// Decodes a change in its wire form (`Change::to_wire`); `None` for a
    /// route not served here.
    pub(crate) fn decode(&self, wire: &serde_json::Value) -> Option<Result<Change, String>> {
        let info = wire["route"].as_str().and_then(|r| self.0.get(r))?;
        Some(Change::from_wire_of(wire, info.model, info.related))
    }

    /// Decodes a history entry of `route`.
    pub(crate) fn decode_body(&self, route: &str, body: &str) -> Result<Change, String> {
        let info = self.0.get(route).ok_or_else(|| format!("route {route} is not served here"))?;
        let wire: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        Change::from_wire_of(&wire, info.model, info.related)
    }
}
