//! What every connection of an app shares: the router, the connection
//! settings, the budgets across connections (per identity and address),
//! the stop signal, the metrics, and the count of open connections. The
//! server makes one per app; each connection's task holds it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::auth::Identity;
use crate::budget::{Admission, Budgets, Refusal, SharedLimits};
use crate::config::ConnectionConfig;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::stop::StopSignal;

/// What every connection of an app shares.
pub(crate) struct AppCore {
    pub(crate) router: Router,
    pub(crate) config: ConnectionConfig,
    /// Shutdown or drain, for every connection at once.
    pub(crate) stop: StopSignal,
    connections: AtomicUsize,
    pub(crate) metrics: Metrics,
    budgets: Arc<Budgets>,
    /// Database turns per connection (see `ConnectionConfig::max_db_requests`).
    pub(crate) db_turns: usize,
    /// The most bytes any one outbox of the app held.
    pub(crate) outbox_peak: Arc<AtomicUsize>,
}

impl std::fmt::Debug for AppCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCore").field("router", &self.router).field("connections", &self.open_connections()).finish()
    }
}

/// Counts a connection as open while it lives.
pub(crate) struct OpenConnection(Arc<AppCore>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppCore {
    pub(crate) fn new(router: Router, config: ConnectionConfig) -> Self {
        let pool = router.db.read_pool_size();
        let db_turns = config.max_db_requests.unwrap_or((pool / 4).max(1)).max(1);
        let budgets = Arc::new(Budgets::new(SharedLimits {
            connections_per_identity: config.max_connections_per_identity,
            connections_per_ip: config.max_connections_per_ip,
            identity_per_second: config.identity_requests_per_second,
            identity_burst: config.identity_request_burst,
            identity_db_turns: config.max_db_requests_per_identity.unwrap_or((pool / 2).max(1)),
        }));
        AppCore {
            router,
            config,
            stop: StopSignal::default(),
            connections: AtomicUsize::new(0),
            metrics: Metrics::default(),
            budgets,
            db_turns,
            outbox_peak: Arc::default(),
        }
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

    /// Counts a connection of `identity` from `remote` against the caps per
    /// identity and per address; called at the upgrade, after
    /// authentication. The place is held until the admission drops (when
    /// [`serve`] returns).
    pub(crate) fn admit(&self, identity: &Identity, remote: Option<SocketAddr>) -> Result<Admission, Refusal> {
        self.budgets.admit(identity, remote.map(|a| a.ip()))
    }

    /// The largest reply a connection may be sent: it must fit its queue.
    pub(crate) fn max_reply_bytes(&self) -> usize {
        self.config.max_reply_bytes.min(self.config.queue_bytes)
    }

    /// The most bytes any one connection's outbound queue has held.
    pub(crate) fn outbox_peak_bytes(&self) -> usize {
        self.outbox_peak.load(Ordering::Relaxed)
    }
}
