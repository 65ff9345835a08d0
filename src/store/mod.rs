//! The database: reads, write transactions whose changes are handed on after
//! commit, snapshots pinned to a commit position, and the change history, on
//! SQLite or PostgreSQL.
//!
//! Every Diesel call runs on tokio's blocking pool, never on the runtime.
//! Writes go through one writer connection: SQLite admits one writer at a
//! time anyway, and queueing here avoids `SQLITE_BUSY`; on PostgreSQL it
//! keeps wyrmhole's own writes from deadlocking each other, so a write that
//! succeeds on one database succeeds on the other.
//!
//! The store knows nothing of subscriptions, hubs or brokers: the changes a
//! write transaction makes are numbered inside it (see `positions`) and,
//! once `COMMIT` succeeded, handed to a [`CommitSink`] (the fan-out, set by
//! [`crate::Wyrmhole`]), still inside the write queue, so this process hands
//! them on in commit order. A rolled-back write hands on nothing.
//!
//! Both databases are reached through [`Conn`], an enum of Diesel
//! connections, so the verbs have one code path: they render SQL for the
//! connection's [`Dialect`] and run it with the same binds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::Pool;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use parking_lot::Mutex;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

mod conn;
mod graph;
pub(crate) mod history;
mod keys;
mod positions;
mod query;
mod related;
mod statements;
pub(crate) mod stats;
mod write;

pub use conn::{Conn, Persist};
pub(crate) use keys::KeyClaim;
pub use keys::{REQUEST_KEYS_KEPT, REQUEST_KEY_LIFETIME};
pub use positions::HISTORY_LEN;
pub use query::server_filter;
pub use write::WriteTx;

pub(crate) use query::{columns, get_by_id, load, Lock};
pub(crate) use write::panic_message;

use crate::change::Change;
use crate::error::Error;
use crate::filter::Filter;
use crate::sql::Dialect;
use conn::{dialect_of, setup_sqlite, Manager};

/// How long a history read waits for a pooled connection before it fails
/// (and is retried by its caller).
const HISTORY_CHECKOUT: Duration = Duration::from_millis(250);

/// Where committed changes go. [`crate::Wyrmhole`] installs the fan-out here;
/// a `Db` used on its own commits without telling anyone.
pub trait CommitSink: Send + Sync + 'static {
    /// Called after each commit with its changes, numbered, in this
    /// process's commit order, on the writing thread (a blocking-pool
    /// thread): it may wait briefly, which holds back the next write.
    fn committed(&self, changes: Vec<Change>);
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened, or the server not reached.
    #[error("cannot open database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// The connection pool could not be built.
    #[error("cannot build connection pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Setting the connection up (WAL, functions) failed.
    #[error("cannot set up connection: {0}")]
    Setup(#[from] diesel::result::Error),
    /// wyrmhole's own tables (positions, history) could not be set up.
    #[error("cannot set up wyrmhole's tables: {0}")]
    Tables(#[from] Error),
    /// The URL names a database wyrmhole cannot use (or this build cannot).
    #[error("unsupported database: {0}")]
    Unsupported(String),
}

/// A handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dialect", &self.inner.dialect).finish()
    }
}

struct Inner {
    readers: Pool<Manager>,
    /// A pool of one, so a connection the server dropped is replaced.
    writer: Pool<Manager>,
    /// Queues writers for `writer` without the pool's checkout timeout.
    write_queue: Mutex<()>,
    sink: OnceLock<Arc<dyn CommitSink>>,
    /// When the writer's connection last committed (see [`conn::Proven`]).
    proven: Arc<conn::Proven>,
    /// The models relations reach (see [`related`]).
    graph: parking_lot::RwLock<Arc<graph::Graph>>,
    dialect: Dialect,
    epoch: u64,
    writes: stats::WriteStats,
}

impl Db {
    /// Opens the database a URL names:
    ///
    /// - `postgres://user:password@host:port/database` (or `postgresql://`,
    ///   any libpq connection URL) opens PostgreSQL, with the `postgres`
    ///   feature; without it, this is an [`OpenError::Unsupported`] that says
    ///   so. The database must be UTF8, and the user must be allowed to
    ///   create a function in the current schema: wyrmhole installs
    ///   `wyrm_upper` (see [`crate::sql::fold`]) each time it opens one;
    /// - anything else is a SQLite file path (created if missing), as for
    ///   [`Db::open_sqlite`]; another `scheme://` is refused.
    ///
    /// Models, routes and filters work the same on both; the schema is
    /// yours to create, in each database's own SQL (`SERIAL` or
    /// `AUTOINCREMENT`, `DOUBLE PRECISION`, ...), with column types that match
    /// the model's fields exactly on PostgreSQL (`SMALLINT` for `i16`,
    /// `INTEGER` for `i32`, `BIGINT` for `i64`). Any number of processes may
    /// open and write the same database at once: commit positions are kept
    /// in the database itself.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wyrmhole::store::OpenError> {
    /// let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "app.db".into());
    /// let db = wyrmhole::Db::open(&url)?;
    /// # Ok(()) }
    /// ```
    pub fn open(url: &str) -> Result<Db, OpenError> {
        match dialect_of(url)? {
            Dialect::Sqlite => Self::open_sqlite(url),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Self::open_postgres(url),
            #[cfg(not(feature = "postgres"))]
            Dialect::Postgres => Err(OpenError::Unsupported(conn::NO_POSTGRES.into())),
        }
    }

    /// Opens (or creates) a SQLite database file, in WAL mode.
    pub fn open_sqlite(path: &str) -> Result<Db, OpenError> {
        // A connection of our own first: its error says why the file cannot
        // be opened, where the pool would only say that it timed out.
        let mut first = SqliteConnection::establish(path)?;
        setup_sqlite(&mut first)?;
        Self::with_pools(path, Dialect::Sqlite)
    }

    #[cfg(feature = "postgres")]
    fn open_postgres(url: &str) -> Result<Db, OpenError> {
        use diesel::{QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Encoding {
            #[diesel(sql_type = diesel::sql_types::Text)]
            encoding: String,
        }
        let mut first = PgConnection::establish(url)?;
        let Encoding { encoding } =
            diesel::sql_query("SELECT current_setting('server_encoding') AS encoding").get_result(&mut first)?;
        if encoding != "UTF8" {
            return Err(OpenError::Unsupported(format!(
                "the database's encoding is {encoding}; wyrmhole needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
            )));
        }
        crate::sql::fold::install_postgres_functions(&mut first)?;
        Self::with_pools(url, Dialect::Postgres)
    }

    fn with_pools(url: &str, dialect: Dialect) -> Result<Db, OpenError> {
        let manager = || Manager { url: url.to_owned(), dialect, proven: None };
        let proven = Arc::new(conn::Proven::default());
        let readers = Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager())?;
        // A SQLite file connection does not drop; a PostgreSQL one may (a
        // server restart), and is then replaced at the next write.
        let writer = Pool::builder()
            .max_size(1)
            .test_on_check_out(dialect == Dialect::Postgres)
            .connection_timeout(Duration::from_secs(10))
            .build(Manager { proven: Some(proven.clone()), ..manager() })?;
        let epoch = positions::setup(&mut *writer.get()?)?;
        let inner = Inner {
            readers,
            writer,
            write_queue: Mutex::new(()),
            sink: OnceLock::new(),
            dialect,
            epoch,
            writes: Default::default(),
            graph: Default::default(),
            proven,
        };
        Ok(Db { inner: Arc::new(inner) })
    }

    /// Hands every later commit's changes to `sink`. Once per database handle.
    pub(crate) fn set_sink(&self, sink: Arc<dyn CommitSink>) -> Result<(), Error> {
        self.inner
            .sink
            .set(sink)
            .map_err(|_| Error::Internal("this Db already feeds a wyrmhole app; open it again for another".into()))
    }

    /// Makes `M`'s rows readable where relations reach them, and, if its
    /// relations have paths, publishes its rows with their context. The
    /// builder registers every route's model and `Builder::model`'s.
    pub(crate) fn register<M: Persist>(&self) {
        let mut graph = self.inner.graph.write();
        let next = graph.with::<M>();
        *graph = Arc::new(next);
    }

    /// Relation paths of registered models that reach unregistered ones.
    pub(crate) fn unreachable_relations(&self) -> Vec<String> {
        self.inner.graph.read().unreachable()
    }

    /// Counts and durations of write transactions, for metrics.
    pub(crate) fn write_stats(&self) -> &stats::WriteStats {
        &self.inner.writes
    }

    /// Names this database's numbering of commit positions. Positions are
    /// kept in the database and survive restarts; the epoch changes only if
    /// the database's wyrmhole tables are created anew.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// How many read connections the pool holds: what connections share
    /// (see `ConnectionConfig::max_db_requests`).
    pub(crate) fn read_pool_size(&self) -> usize {
        self.inner.readers.max_size() as usize
    }

    /// Runs SQL statements (schema setup, say) on the writer connection, in
    /// one transaction that the setup of other processes opening the same
    /// database waits for (so `CREATE TABLE IF NOT EXISTS` from several
    /// processes at once cannot collide). Statements that cannot run in a
    /// transaction (`VACUUM`, `CREATE INDEX CONCURRENTLY`) do not belong here.
    /// Nothing is published.
    pub async fn execute_batch(&self, sql: &str) -> Result<(), Error> {
        let sql = sql.to_owned();
        let inner = self.inner.clone();
        blocking(move || {
            let _queue = inner.write_queue.lock();
            let mut conn = inner.writer.get().map_err(no_connection)?;
            positions::serialized_setup(&mut conn, |conn| Ok(conn.batch_execute(&sql)?))
        })
        .await
    }

    /// Runs `f` with a read connection, on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.inner.readers.clone();
        blocking(move || f(&mut *pool.get().map_err(no_connection)?)).await
    }

    /// Runs `f` in a read transaction that sees exactly the changes of
    /// `route` up to the returned position, and no later ones.
    pub async fn snapshot<T, F>(&self, route: &'static str, f: F) -> Result<(u64, T), Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        // Neither database fixes a transaction's snapshot at BEGIN, but at
        // its first read. Making that first read the route's position
        // counter pins the snapshot and tells which position it holds, with
        // no lock: the counter is written in the same transaction as the
        // changes it numbers.
        self.read(move |conn| conn.read_transaction(|conn| Ok((positions::current(conn, route)?, f(conn)?)))).await
    }

    /// Up to `limit` history entries of `route` after `after`, with the
    /// route's head position, read consistently. Blocks.
    pub(crate) fn history_blocking(
        &self,
        route: &'static str,
        after: u64,
        limit: usize,
    ) -> Result<history::Page, Error> {
        // A short wait for a connection: the hub reads history on its own
        // thread, and a database that is away (restarting) must cost it a
        // retry later, not the pool's whole checkout timeout.
        let mut conn = self.inner.readers.get_timeout(HISTORY_CHECKOUT).map_err(no_connection)?;
        history::after(&mut conn, route, after, limit)
    }

    /// Runs `f` in a write transaction and hands its changes on after
    /// commit. If `f` fails or panics the transaction rolls back and nothing
    /// is handed on. This is the save API for server code too: background
    /// jobs and HTTP handlers write through it and subscribers see the result.
    ///
    /// Do not open transactions on [`WriteTx::connection`] inside `f`; it is
    /// already in one. On PostgreSQL a statement that fails (a `conflict`,
    /// say) aborts the whole transaction, so return its error rather than
    /// carry on writing.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        E: From<Error> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || inner.write(f)).await {
            Ok(result) => result,
            Err(join) => Err(Error::Internal(format!("write task failed: {join}")).into()),
        }
    }

    /// [`Db::write`] on the calling thread (see [`crate::bench::write_blocking`]).
    pub(crate) fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        E: From<Error> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.write(f)
    }

    /// Loads the rows of `M` matching `filter`, ordered by primary key, for
    /// reads outside the verbs.
    pub async fn load<M: Persist>(&self, filter: Filter) -> Result<Vec<M>, Error> {
        self.read(move |conn| query::select::<M>(conn, &filter)).await
    }

    /// Like [`Db::load`], with the filter in the client filter syntax (free
    /// to name unpublished fields).
    pub async fn select<M: Persist>(&self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        self.load(query::server_filter_for::<M>(filter, self.dialect())?).await
    }
}

/// No pooled connection in time: every one is busy, or the database is away.
/// Either passes, so the client may retry (`unavailable`), unlike a bug.
fn no_connection(e: diesel::r2d2::PoolError) -> Error {
    Error::Unavailable(format!("no database connection: {e}"))
}

impl Inner {
    fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        let started = std::time::Instant::now();
        let _queue = self.write_queue.lock();
        let mut conn = self.writer.get().map_err(no_connection)?;
        if write::begin(&mut conn).is_err() {
            // A connection handed out unpinged (see `conn::Proven`) that died
            // since its last commit fails here, before anything ran: the
            // next checkout pings it and replaces it. Once.
            self.proven.failed();
            drop(conn);
            conn = self.writer.get().map_err(no_connection)?;
            if let Err(e) = write::begin(&mut conn) {
                self.writes.record(false, started.elapsed());
                return Err(e.into());
            }
        }
        let graph = self.graph.read().clone();
        let result = write::transaction(&mut conn, &graph, f);
        match &result {
            Ok(_) => self.proven.committed(),
            Err(_) => self.proven.failed(),
        }
        self.writes.record(result.is_ok(), started.elapsed());
        let (value, changes) = result?;
        // Still in the write queue: this process hands changes on in commit order.
        if let (false, Some(sink)) = (changes.is_empty(), self.sink.get()) {
            sink.committed(changes);
        }
        Ok(value)
    }
}

/// Runs blocking database work off the runtime; a panic becomes `internal`.
async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(Error::Internal(format!("panic: {}", panic_message(&*join.into_panic())))),
        Err(join) => Err(Error::Internal(join.to_string())),
    }
}

#[cfg(test)]
mod tests;
