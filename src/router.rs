//! The [`Router`]: routes by name, the authenticate hook, connection limits.
//! It dispatches each request to its route; [`crate::server`] puts it on warp.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::auth::{AuthError, Identity, UpgradeRequest};
use crate::connection::{ConnectionConfig, Session};
use crate::error::Error;
use crate::protocol::Request;
use crate::route::{Route, RouteHandler};
use crate::store::{Db, Persist};

type AuthFn = Arc<dyn Fn(&UpgradeRequest) -> Result<Identity, AuthError> + Send + Sync>;

/// Routes, authentication and connection settings of one wyrmhole endpoint.
///
/// ```no_run
/// # #[derive(diesel::QueryableByName, wyrmhole::Model)]
/// # #[diesel(table_name = items)]
/// # struct Item { id: i32 }
/// # diesel::table! { items (id) { id -> Integer } }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use wyrmhole::{Db, Identity, Route, Router};
/// let db = Db::open_sqlite("app.db")?;
/// let router = Router::new(db)
///     .route(Route::<Item>::new())
///     .authenticate(|req| Ok(req.token().map(|_| Identity::user(1)).unwrap_or_default()))
///     .allow_anonymous();
/// let server = wyrmhole::serve(router, ([127, 0, 0, 1], 8000)).await?;
/// server.wait().await;
/// # Ok(()) }
/// ```
pub struct Router {
    db: Db,
    routes: HashMap<&'static str, Arc<dyn RouteHandler>>,
    auth: Option<AuthFn>,
    allow_anonymous: bool,
    config: ConnectionConfig,
}

impl Router {
    /// A router with no routes over `db`.
    pub fn new(db: Db) -> Self {
        Router { db, routes: HashMap::new(), auth: None, allow_anonymous: false, config: ConnectionConfig::default() }
    }

    /// Adds a route, named by its model's `ROUTE`.
    ///
    /// # Panics
    /// If a route of that name was already added.
    pub fn route<M: Persist>(mut self, route: Route<M>) -> Self {
        let previous = self.routes.insert(M::ROUTE, Arc::new(route));
        assert!(previous.is_none(), "route {:?} added twice", M::ROUTE);
        self.db.registry().register_route::<M>();
        self
    }

    /// Decides who connects, from the upgrade request. An `Err` answers the
    /// upgrade with HTTP 401. An anonymous identity is accepted only after
    /// [`Router::allow_anonymous`].
    pub fn authenticate(
        mut self,
        f: impl Fn(&UpgradeRequest) -> Result<Identity, AuthError> + Send + Sync + 'static,
    ) -> Self {
        self.auth = Some(Arc::new(f));
        self
    }

    /// Accepts anonymous connections (refused by default).
    pub fn allow_anonymous(mut self) -> Self {
        self.allow_anonymous = true;
        self
    }

    /// Sets connection limits and timings.
    pub fn config(mut self, config: ConnectionConfig) -> Self {
        self.config = config;
        self
    }

    /// The database behind the router.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn into_core(self) -> Arc<RouterCore> {
        Arc::new(RouterCore {
            db: self.db,
            routes: self.routes,
            auth: self.auth,
            allow_anonymous: self.allow_anonymous,
            config: self.config,
            shutdown: tokio::sync::watch::channel(false).0,
            connections: AtomicUsize::new(0),
        })
    }
}

/// The frozen router shared by all connections.
pub(crate) struct RouterCore {
    pub(crate) db: Db,
    routes: HashMap<&'static str, Arc<dyn RouteHandler>>,
    auth: Option<AuthFn>,
    allow_anonymous: bool,
    pub(crate) config: ConnectionConfig,
    shutdown: tokio::sync::watch::Sender<bool>,
    connections: AtomicUsize,
}

impl std::fmt::Debug for RouterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<_> = self.routes.keys().collect();
        routes.sort();
        f.debug_struct("RouterCore").field("routes", &routes).field("connections", &self.open_connections()).finish()
    }
}

/// Counts a connection as open while it lives.
pub(crate) struct OpenConnection(Arc<RouterCore>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RouterCore {
    /// Asks every connection to close (code 1001).
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns `true` when the server shuts down.
    pub(crate) fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Registers an open connection until the guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// How many connections are open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

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

    /// Runs one request. `Ok(None)` means the handler queued its reply itself.
    pub(crate) async fn handle(&self, session: &Session, request: Request) -> Result<Option<serde_json::Value>, Error> {
        let route =
            self.routes.get(request.route.as_str()).ok_or_else(|| Error::UnknownRoute(request.route.clone()))?;
        route.handle(&self.db, session, request).await
    }
}
