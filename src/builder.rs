//! [`Wyrmhole`]: one builder that wires the layers together — the database,
//! the fan-out and its hub, the broker, the routes and the connections —
//! and the running app it builds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::auth::{AuthError, Identity, UpgradeRequest};
use crate::broker::redis::{RedisBroker, RedisError};
use crate::broker::InProcess;
use crate::connection::{AppCore, ConnectionConfig};
use crate::error::Error;
use crate::fanout::{Broker, Catalog, Fanout, RouteInfo, RouteStats};
use crate::listener::HttpConfig;
use crate::live::{ChannelAccess, ChannelHook, Live, PresenceHook, Rules};
use crate::route::{Route, RouteHandler};
use crate::router::{AuthFn, Router};
use crate::server::{self, Server};
use crate::store::{Db, Persist};

/// Why an app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Redis URL is not one redis-rs understands.
    #[error("bad redis URL: {0}")]
    Redis(#[from] RedisError),
    /// The database handle already feeds another app.
    #[error("{0}")]
    Db(#[from] Error),
    /// A relation reaches a model the app does not know.
    #[error("{0}")]
    Relations(String),
}

/// Builds a [`Wyrmhole`]: routes, authentication, connection settings, and
/// how commits reach other processes.
///
/// ```no_run
/// # #[derive(diesel::QueryableByName, wyrmhole::Model)]
/// # #[diesel(table_name = items)]
/// # struct Item { id: i32 }
/// # diesel::table! { items (id) { id -> Integer } }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use wyrmhole::{Db, Identity, Route, Wyrmhole};
/// let db = Db::open("app.db")?;
/// let app = Wyrmhole::builder(db)
///     .route(Route::<Item>::new())
///     .authenticate(|req| Ok(req.token().map(|_| Identity::user(1)).unwrap_or_default()))
///     .allow_anonymous()
///     .build()?;
/// let server = app.serve(([127, 0, 0, 1], 8000)).await?;
/// server.wait().await;
/// # Ok(()) }
/// ```
pub struct Builder {
    db: Db,
    routes: HashMap<&'static str, Arc<dyn RouteHandler>>,
    catalog: Catalog,
    auth: Option<AuthFn>,
    allow_anonymous: bool,
    config: ConnectionConfig,
    http: HttpConfig,
    redis: Option<String>,
    topics: Rules<PresenceHook>,
    channels: Rules<ChannelHook>,
}

impl Builder {
    /// Adds a route, named by its model's `ROUTE`.
    ///
    /// # Panics
    /// If a route of that name was already added.
    pub fn route<M: Persist>(mut self, route: Route<M>) -> Self {
        let previous = self.routes.insert(M::ROUTE, Arc::new(route));
        assert!(previous.is_none(), "route {:?} added twice", M::ROUTE);
        self.catalog.insert(RouteInfo::of::<M>());
        self.db.register::<M>();
        self
    }

    /// Makes a model that relations reach known to the app without a
    /// route of its own (a `User` that `list__owner__name` reads): its rows
    /// are then read for the contexts of the models that reach it, and its
    /// writes through [`crate::Db::write`] published to them.
    pub fn model<M: Persist>(self) -> Self {
        self.db.register::<M>();
        self
    }

    /// Decides who connects, from the upgrade request. An `Err` answers the
    /// upgrade with HTTP 401. An anonymous identity is accepted only after
    /// [`Builder::allow_anonymous`].
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

    /// Sets the HTTP layer's settings: allowed origins, the request-head
    /// timeout and size, the cap on connections not yet upgraded,
    /// `TCP_NODELAY` (see [`HttpConfig`] for each default). Replaces
    /// origins added before by [`Builder::allowed_origins`].
    pub fn http_config(mut self, config: HttpConfig) -> Self {
        self.http = config;
        self
    }

    /// Also accepts WebSocket upgrades from pages of these origins
    /// (`scheme://host[:port]`, or `"null"`), besides same-origin pages and
    /// clients that send no `Origin`. See [`crate::Origins`].
    ///
    /// ```no_run
    /// # fn f(builder: wyrmhole::Builder) -> wyrmhole::Builder {
    /// builder.allowed_origins(["https://app.example", "http://localhost:5173"])
    /// # }
    /// ```
    ///
    /// # Panics
    /// If one is not an origin (has a path, no scheme, a bad port).
    pub fn allowed_origins<S: AsRef<str>>(mut self, origins: impl IntoIterator<Item = S>) -> Self {
        for origin in origins {
            self.http.origins = self.http.origins.allow(origin.as_ref());
        }
        self
    }

    /// Serves Prometheus metrics at `path` (`"/metrics"`; off by
    /// default). They are not secret but they tell how the app is used:
    /// anyone who can reach the port can read them, so do not route the
    /// path from the internet. `docs/operations.md` lists them.
    pub fn metrics_path(mut self, path: &str) -> Self {
        self.http.metrics_path = Some(path.to_owned());
        self
    }

    /// Shares commits with the other processes serving the same database
    /// through Redis (`redis://host:port`). Redis being unreachable is not
    /// an error: the broker retries with backoff, and changes it misses are
    /// read back from the database's history.
    pub fn redis(mut self, url: &str) -> Self {
        self.redis = Some(url.to_owned());
        self
    }

    /// Lets clients join presence topics matching `pattern` (`"todo-list:*"`:
    /// every topic starting with `todo-list:`; without a trailing `*`, that
    /// topic only) when `allow(identity, topic)` says so. The first pattern
    /// that matches a topic decides; a topic none matches is `forbidden`.
    ///
    /// ```no_run
    /// # fn f(builder: wyrmhole::Builder) -> wyrmhole::Builder {
    /// // Signed-in users see who else views a list.
    /// builder.presence("todo-list:*", |identity, _topic| !identity.is_anonymous())
    /// # }
    /// ```
    pub fn presence(mut self, pattern: &str, allow: impl Fn(&Identity, &str) -> bool + Send + Sync + 'static) -> Self {
        self.topics.add(pattern, Arc::new(allow));
        self
    }

    /// Lets clients subscribe to channels matching `pattern` (as for
    /// [`Builder::presence`]), and publish to them, when
    /// `allow(identity, channel, access)` says so. Server code publishes
    /// to any channel with [`Wyrmhole::publish`], hook or not.
    ///
    /// ```no_run
    /// # fn f(builder: wyrmhole::Builder) -> wyrmhole::Builder {
    /// use wyrmhole::ChannelAccess;
    /// // Everyone may listen; only signed-in users may speak.
    /// builder.channel("chat:*", |identity, _channel, access| {
    ///     access == ChannelAccess::Subscribe || !identity.is_anonymous()
    /// })
    /// # }
    /// ```
    pub fn channel(
        mut self,
        pattern: &str,
        allow: impl Fn(&Identity, &str, ChannelAccess) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.channels.add(pattern, Arc::new(allow));
        self
    }

    /// Starts the fan-out (and, with [`Builder::redis`], the broker's tasks,
    /// so this must run inside a tokio runtime), after which every commit
    /// through the database handle reaches the app's subscribers.
    pub fn build(self) -> Result<Wyrmhole, BuildError> {
        let unreachable = self.db.unreachable_relations();
        if !unreachable.is_empty() {
            return Err(BuildError::Relations(format!(
                "{}: add a route for it, or register its model with `Builder::model`",
                unreachable.join("; ")
            )));
        }
        if let Some(url) = &self.redis {
            // Checked here, where it can be reported as a RedisError.
            redis::Client::open(url.as_str())?;
        }
        let redis = self.redis.clone();
        let fanout = Fanout::start(&self.db, self.catalog, move |upstream| -> Result<Arc<dyn Broker>, Error> {
            Ok(match redis {
                Some(url) => {
                    Arc::new(RedisBroker::start(&url, upstream).map_err(|e| Error::Internal(format!("redis: {e}")))?)
                }
                None => Arc::new(InProcess),
            })
        })?;
        let mut live = Live::new(self.config.max_message_bytes);
        live.topics = self.topics;
        live.channel_rules = self.channels;
        if let Some(url) = &self.redis {
            use crate::presence::{HEARTBEAT, TIMEOUT};
            crate::broker::presence::start(url, &live.presence, &live.channels, HEARTBEAT, TIMEOUT)?;
        }
        let router = Router {
            db: self.db,
            fanout,
            routes: self.routes,
            auth: self.auth,
            allow_anonymous: self.allow_anonymous,
            live,
        };
        Ok(Wyrmhole { core: Arc::new(AppCore::new(router, self.config)), http: Arc::new(self.http) })
    }
}

/// A built app: routes over a database, with their fan-out running. Serve
/// it with [`Wyrmhole::serve`], or put [`Wyrmhole::filter`] into a warp app
/// of your own. Cheap to clone.
#[derive(Clone)]
pub struct Wyrmhole {
    core: Arc<AppCore>,
    http: Arc<HttpConfig>,
}

impl std::fmt::Debug for Wyrmhole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wyrmhole").field("router", &self.core.router).finish()
    }
}

impl Wyrmhole {
    /// Starts building an app over `db`.
    pub fn builder(db: Db) -> Builder {
        Builder {
            db,
            routes: HashMap::new(),
            catalog: Catalog::default(),
            auth: None,
            allow_anonymous: false,
            config: ConnectionConfig::default(),
            http: HttpConfig::default(),
            redis: None,
            topics: Rules::default(),
            channels: Rules::default(),
        }
    }

    /// What every connection shares, for the socketless connection of
    /// `crate::harness`.
    pub(crate) fn core(&self) -> &Arc<AppCore> {
        &self.core
    }

    /// The database behind the app.
    pub fn db(&self) -> &Db {
        &self.core.router.db
    }

    /// How many subscriptions (and distinct filters) this process holds on
    /// `route`.
    pub fn stats(&self, route: &str) -> RouteStats {
        self.core.router.fanout.stats(route)
    }

    /// Resolves once every change committed in this process (or received
    /// from another) before the call has been queued to every subscription
    /// it concerns. Each route is fanned out on its own thread, so events
    /// of different routes are not ordered with each other; tests that
    /// must know "nothing more is coming" wait for this.
    pub async fn settled(&self) {
        self.core.router.fanout.settled().await
    }

    /// Sends `data` to every connection subscribed to `channel`, in every
    /// process (through Redis when the app uses it), in publish order. An
    /// error (`bad_args`) when `data` is larger than
    /// [`ConnectionConfig::max_message_bytes`]. Ephemeral: who subscribes
    /// later does not get it.
    pub fn publish(&self, channel: &str, data: &serde_json::Value) -> Result<(), Error> {
        self.core.router.live.publish(channel, data)
    }

    /// Sends `data` to every connection of user `user` (a `push` frame), in
    /// every process; as [`Wyrmhole::publish`] otherwise.
    pub fn to_user(&self, user: i64, data: &serde_json::Value) -> Result<(), Error> {
        self.core.router.live.to_user(user, data)
    }

    /// The members of a presence topic this process knows of (its own and,
    /// with Redis, the other processes'), each `{id, user, name, meta}`.
    pub fn presence_members(&self, topic: &str) -> Vec<serde_json::Value> {
        let members = self.core.router.live.presence.members(topic);
        members.iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect()
    }

    /// The most bytes any one connection's outbound queue has held, for
    /// tests of the byte budget. Not part of the API.
    #[doc(hidden)]
    pub fn outbox_peak_bytes(&self) -> usize {
        self.core.outbox_peak_bytes()
    }

    /// The warp filter serving `GET /ws` (the WebSocket endpoint), the
    /// JS client (`GET /wyrmhole.js` and `/wyrmhole/*.js`), `GET /healthz`,
    /// `GET /readyz` and the metrics path if set, to combine with the app's
    /// own filters. The origin check applies; the rest of
    /// [`HttpConfig`] (timeouts, caps, `TCP_NODELAY`) is up to the server
    /// it runs in. Prefer [`Wyrmhole::serve`] or [`Wyrmhole::serve_with`],
    /// which apply all of it, and whose [`Server::shutdown`] also closes
    /// open sockets cleanly.
    pub fn filter(&self) -> BoxedFilter<(Response,)> {
        server::filter(self.core.clone(), self.http.clone())
    }

    /// Binds `addr` and serves the app at `/ws`, and the JS client.
    pub async fn serve(self, addr: impl Into<SocketAddr>) -> std::io::Result<Server> {
        server::serve(self.core, self.http, None, addr.into()).await
    }

    /// Like [`Wyrmhole::serve`], with the app's own warp routes tried after
    /// wyrmhole's (pages, an admin API, ...). In them, the client's address
    /// is [`crate::remote_addr`], not `warp::addr::remote()` (warp's own
    /// server is not the one running).
    pub async fn serve_with(
        self,
        extra: BoxedFilter<(Response,)>,
        addr: impl Into<SocketAddr>,
    ) -> std::io::Result<Server> {
        server::serve(self.core, self.http, Some(extra), addr.into()).await
    }
}
