//! The router: routes by name and the authenticate hook. It turns an
//! upgrade request into an identity and dispatches each request to its
//! route; [`crate::Wyrmhole`] builds it and the transport calls it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::{AuthError, Identity, UpgradeRequest};
use crate::error::Error;
use crate::fanout::Fanout;
use crate::live::{Live, CHANNEL_ROUTE, PRESENCE_ROUTE};
use crate::protocol::Request;
use crate::route::RouteHandler;
use crate::session::Session;
use crate::store::Db;

/// The pseudo-route of the heartbeat: `{"route": "$ping", "verb": "ping"}`
/// is answered at once with `{}`, touching nothing (browsers cannot see
/// WebSocket pings, so their clients ask this instead).
pub(crate) const PING_ROUTE: &str = "$ping";

pub(crate) type AuthFn = Arc<dyn Fn(&UpgradeRequest) -> Result<Identity, AuthError> + Send + Sync>;

/// Routes, authentication and the services they run on.
pub(crate) struct Router {
    pub(crate) db: Db,
    pub(crate) fanout: Fanout,
    pub(crate) routes: HashMap<&'static str, Arc<dyn RouteHandler>>,
    pub(crate) auth: Option<AuthFn>,
    pub(crate) allow_anonymous: bool,
    /// Presence, channels and their hooks.
    pub(crate) live: Live,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<_> = self.routes.keys().collect();
        routes.sort();
        f.debug_struct("Router").field("routes", &routes).finish()
    }
}

impl Router {
    /// Who may connect with this upgrade request.
    pub(crate) fn authenticate(&self, request: &UpgradeRequest) -> Result<Identity, AuthError> {
        let identity = match &self.auth {
            Some(auth) => auth(request)?,
            None => Identity::anonymous(),
        };
        if identity.is_anonymous() && !self.allow_anonymous {
            return Err(AuthError::new("authentication required"));
        }
        Ok(identity)
    }

    /// The names of the app's model routes.
    pub(crate) fn route_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }

    /// Whether `route` and `verb` are names the app knows (a route of the
    /// app, or presence and channels, each with any verb the client sent
    /// being bounded by the route's own set, checked by the handler).
    pub(crate) fn knows_route(&self, route: &str) -> bool {
        route == PRESENCE_ROUTE || route == CHANNEL_ROUTE || self.routes.contains_key(route)
    }

    /// A session for a new connection.
    pub(crate) fn session(&self, identity: Identity, sink: Arc<dyn crate::fanout::sink::Sink>) -> Session {
        Session::new(identity, sink, self.fanout.clone())
            .with_live(self.live.presence.clone(), self.live.channels.clone())
    }

    /// Whether a request is a write: a standard write verb, or a custom verb
    /// its route marks as one. Writes apply in the order the client sent
    /// them and may carry a key.
    pub(crate) fn is_write(&self, request: &Request) -> bool {
        self.routes.get(request.route.as_str()).is_some_and(|route| route.is_write(&request.verb))
    }

    /// Whether the request waits for the connection's earlier ordered
    /// requests (`crate::write_order`): writes, and every presence and
    /// channel request, so a client's publishes reach a channel, and its
    /// join, updates and leave a topic, in the order it sent them.
    pub(crate) fn is_ordered(&self, request: &Request) -> bool {
        request.route == PRESENCE_ROUTE || request.route == CHANNEL_ROUTE || self.is_write(request)
    }

    /// Runs one request. `Ok(None)` means the handler queued its reply itself.
    pub(crate) async fn handle(&self, session: &Session, request: Request) -> Result<Option<serde_json::Value>, Error> {
        if request.key.is_some() && !self.is_write(&request) {
            return Err(Error::bad_arg("key", "only writes take a key"));
        }
        if request.route == PING_ROUTE {
            return Ok(Some(serde_json::json!({})));
        }
        if request.route == PRESENCE_ROUTE || request.route == CHANNEL_ROUTE {
            return self.live.handle(session, &request);
        }
        let route =
            self.routes.get(request.route.as_str()).ok_or_else(|| Error::UnknownRoute(request.route.clone()))?;
        route.handle(&self.db, &self.fanout, session, request).await
    }
}
