//! The database: reads, write transactions that publish after commit, and
//! snapshots pinned to a commit position, on SQLite or PostgreSQL.
//!
//! Every Diesel call runs on tokio's blocking pool, never on the runtime.
//! Writes go through one writer connection: SQLite admits one writer at a
//! time anyway, and queueing here avoids `SQLITE_BUSY`; on PostgreSQL it
//! keeps wyrmhole's own writes from deadlocking each other, so a write that
//! succeeds on one database succeeds on the other. The changes a write
//! transaction makes are handed to the [`Broker`] only after `COMMIT`
//! succeeds, under a short commit lock that also numbers them, so positions
//! follow commit order and a rolled-back write publishes nothing.
//!
//! A snapshot takes the same lock just long enough to start its read
//! transaction, so it sees exactly the changes up to a known position: this
//! is what makes `subscribe` gapless.
//!
//! Both databases are reached through [`Conn`], an enum of Diesel
//! connections, so the verbs have one code path: they render SQL for the
//! connection's [`Dialect`] and run it with the same binds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl};
use parking_lot::Mutex;

#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgConnection};

mod positions;

pub(crate) use positions::since as history_since;
pub use positions::HISTORY_LEN;

use crate::broker::{Broker, LocalBroker};
use crate::change::Change;
use crate::error::Error;
use crate::filter::fold::register_sqlite_functions;
use crate::filter::sql::{bind_all, quote_ident, Bind, Dialect, SqlFragment};
use crate::filter::{FieldAccess, Filter};
use crate::hub::{History, Hub};
use crate::model::{Model, Value};
use crate::record::{Patch, WriteAccess};
use crate::registry::Registry;

/// A connection to the database, of whichever kind [`Db::open`] opened.
///
/// [`Db::read`], [`Db::snapshot`] and [`WriteTx::connection`] lend one out
/// for queries wyrmhole does not make itself. Match on it to reach Diesel's
/// connection; the enum is `#[non_exhaustive]` because the `postgres`
/// feature adds a variant, so a match outside this crate needs a `_` arm:
///
/// ```
/// # use wyrmhole::store::Conn;
/// fn tables(conn: &mut Conn) -> diesel::QueryResult<()> {
///     use diesel::connection::SimpleConnection;
///     match conn {
///         Conn::Sqlite(sqlite) => sqlite.batch_execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)"),
///         other => other.batch_execute("CREATE TABLE IF NOT EXISTS t (id SERIAL PRIMARY KEY)"),
///     }
/// }
/// ```
///
/// It implements [`SimpleConnection`] for SQL that both databases take.
#[non_exhaustive]
pub enum Conn {
    /// A SQLite connection, with wyrmhole's pragmas and functions set up.
    Sqlite(SqliteConnection),
    /// A PostgreSQL connection (with the `postgres` feature).
    #[cfg(feature = "postgres")]
    Pg(PgConnection),
}

impl Conn {
    /// The dialect to render SQL in for this connection.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    fn begin(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, sql),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(c, sql),
        }
    }

    fn commit(&mut self) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::commit_transaction(c),
        }
    }

    fn rollback(&mut self) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::rollback_transaction(c),
        }
    }
}

impl SimpleConnection for Conn {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => c.batch_execute(query),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => c.batch_execute(query),
        }
    }
}

/// A model wyrmhole can read and write: [`Model`] plus Diesel's
/// `QueryableByName`, which decodes rows by column name, for every database
/// this build supports. `#[derive(QueryableByName)]` implements it for all of
/// them at once.
#[cfg(not(feature = "postgres"))]
pub trait Persist: Model + QueryableByName<Sqlite> {}
#[cfg(not(feature = "postgres"))]
impl<T: Model + QueryableByName<Sqlite>> Persist for T {}

/// A model wyrmhole can read and write: [`Model`] plus Diesel's
/// `QueryableByName`, which decodes rows by column name, for every database
/// this build supports. `#[derive(QueryableByName)]` implements it for all of
/// them at once.
#[cfg(feature = "postgres")]
pub trait Persist: Model + QueryableByName<Sqlite> + QueryableByName<Pg> {}
#[cfg(feature = "postgres")]
impl<T: Model + QueryableByName<Sqlite> + QueryableByName<Pg>> Persist for T {}

/// Rows decodable from every supported database: what [`load`] returns.
#[cfg(not(feature = "postgres"))]
pub(crate) trait ByName: QueryableByName<Sqlite> {}
#[cfg(not(feature = "postgres"))]
impl<T: QueryableByName<Sqlite>> ByName for T {}

/// Rows decodable from every supported database: what [`load`] returns.
#[cfg(feature = "postgres")]
pub(crate) trait ByName: QueryableByName<Sqlite> + QueryableByName<Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<Sqlite> + QueryableByName<Pg>> ByName for T {}

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

/// A handle to the database and the fan-out behind it. Cheap to clone.
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
    broker: parking_lot::RwLock<Arc<dyn Broker>>,
    hub: Hub,
    registry: Arc<Registry>,
    dialect: Dialect,
    epoch: u64,
}

/// Per-connection SQLite setup: WAL for concurrent readers, a busy timeout
/// instead of immediate `SQLITE_BUSY`, foreign keys, and wyrmhole's SQL
/// functions.
fn setup_sqlite(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    register_sqlite_functions(conn)
}

/// Makes pooled [`Conn`]s of one database. PostgreSQL needs no per-connection
/// setup: `wyrm_upper` lives in the database, installed once by `Db::open`.
#[derive(Debug)]
struct Manager {
    url: String,
    dialect: Dialect,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        use diesel::r2d2::Error as E;
        match self.dialect {
            Dialect::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url).map_err(E::ConnectionError)?;
                setup_sqlite(&mut conn).map_err(E::QueryError)?;
                Ok(Conn::Sqlite(conn))
            }
            #[cfg(feature = "postgres")]
            Dialect::Postgres => PgConnection::establish(&self.url).map(Conn::Pg).map_err(E::ConnectionError),
            #[cfg(not(feature = "postgres"))]
            Dialect::Postgres => Err(E::ConnectionError(diesel::ConnectionError::BadConnection(NO_POSTGRES.into()))),
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        match conn {
            Conn::Sqlite(c) => c.ping(),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => c.ping(),
        }
        .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking()
            || match conn {
                Conn::Sqlite(c) => c.is_broken(),
                #[cfg(feature = "postgres")]
                Conn::Pg(c) => c.is_broken(),
            }
    }
}

#[cfg(not(feature = "postgres"))]
const NO_POSTGRES: &str =
    "this is a PostgreSQL URL, but wyrmhole was built without PostgreSQL support; enable its `postgres` feature";

/// Which database a URL names: PostgreSQL for `postgres://` and
/// `postgresql://`, SQLite for anything that is not a URL of another scheme.
fn dialect_of(url: &str) -> Result<Dialect, OpenError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Dialect::Postgres);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let looks_like_scheme =
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        // `file://` is SQLite's own URI form.
        if looks_like_scheme && scheme != "file" {
            return Err(OpenError::Unsupported(format!(
                "`{scheme}://` URLs; use postgres:// for PostgreSQL, or a file path for SQLite"
            )));
        }
    }
    Ok(Dialect::Sqlite)
}

impl Db {
    /// Opens the database a URL names, with the in-process broker:
    ///
    /// - `postgres://user:password@host:port/database` (or `postgresql://`,
    ///   any libpq connection URL) opens PostgreSQL, with the `postgres`
    ///   feature; without it, this is an [`OpenError::Unsupported`] that says
    ///   so. The database must be UTF8, and the user must be allowed to
    ///   create a function in the current schema: wyrmhole installs
    ///   `wyrm_upper` (see [`fold`](crate::filter::fold)) each time it opens
    ///   one;
    /// - anything else is a SQLite file path (created if missing), as for
    ///   [`Db::open_sqlite`]; another `scheme://` is refused.
    ///
    /// Models, routes and filters work the same on both; the schema is
    /// yours to create, in each database's own SQL (`SERIAL` or
    /// `AUTOINCREMENT`, `DOUBLE PRECISION`, ...), with column types that match
    /// the model's fields exactly on PostgreSQL (`SMALLINT` for `i16`,
    /// `INTEGER` for `i32`, `BIGINT` for `i64`). Commit positions are
    /// numbered by this process, so one process may write to a PostgreSQL
    /// database through wyrmhole at a time.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wyrmhole::store::OpenError> {
    /// let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "app.db".into());
    /// let db = wyrmhole::Db::open(&url)?;
    /// # Ok(()) }
    /// ```
    pub fn open(url: &str) -> Result<Db, OpenError> {
        let registry = Arc::new(Registry::new());
        Self::open_with(url, registry, Arc::new(LocalBroker))
    }

    /// [`Db::open`] with a given registry and broker (the seam a
    /// multi-process broker plugs into).
    pub fn open_with(url: &str, registry: Arc<Registry>, broker: Arc<dyn Broker>) -> Result<Db, OpenError> {
        match dialect_of(url)? {
            Dialect::Sqlite => Self::open_sqlite_with(url, registry, broker),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Self::open_postgres_with(url, registry, broker),
            #[cfg(not(feature = "postgres"))]
            Dialect::Postgres => Err(OpenError::Unsupported(NO_POSTGRES.into())),
        }
    }

    /// Opens (or creates) a SQLite database file, in WAL mode, with the
    /// in-process broker.
    pub fn open_sqlite(path: &str) -> Result<Db, OpenError> {
        let registry = Arc::new(Registry::new());
        Self::open_sqlite_with(path, registry, Arc::new(LocalBroker))
    }

    /// Opens a SQLite database with a given registry and broker.
    pub fn open_sqlite_with(path: &str, registry: Arc<Registry>, broker: Arc<dyn Broker>) -> Result<Db, OpenError> {
        // A connection of our own first: its error says why the file cannot
        // be opened, where the pool would only say that it timed out.
        let mut first = SqliteConnection::establish(path)?;
        setup_sqlite(&mut first)?;
        Self::with_pools(path, Dialect::Sqlite, registry, broker)
    }

    #[cfg(feature = "postgres")]
    fn open_postgres_with(url: &str, registry: Arc<Registry>, broker: Arc<dyn Broker>) -> Result<Db, OpenError> {
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
        crate::filter::fold::install_postgres_functions(&mut first)?;
        Self::with_pools(url, Dialect::Postgres, registry, broker)
    }

    fn with_pools(
        url: &str,
        dialect: Dialect,
        registry: Arc<Registry>,
        broker: Arc<dyn Broker>,
    ) -> Result<Db, OpenError> {
        let manager = || Manager { url: url.to_owned(), dialect };
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
            .build(manager())?;
        let history = StoreHistory { readers: readers.clone(), registry: registry.clone() };
        let inner = Inner {
            readers,
            writer,
            write_queue: Mutex::new(()),
            broker: parking_lot::RwLock::new(broker),
            hub: Hub::new(registry.clone(), Some(Arc::new(history))),
            registry,
            dialect,
            epoch: 0,
        };
        let mut inner = inner;
        inner.epoch = {
            let mut conn = inner.writer.get()?;
            positions::setup(&mut conn)?
        };
        Ok(Db { inner: Arc::new(inner) })
    }

    /// Sends this process's commits to, and takes theirs from, the other
    /// processes serving the same database through Redis
    /// (`redis://host:port`). Call it once, inside the tokio runtime, before
    /// serving. Redis being unreachable is not an error: the broker retries
    /// with backoff, and changes it misses are read back from the history.
    pub fn use_redis(&self, url: &str) -> Result<(), crate::broker::redis::RedisError> {
        let broker =
            crate::broker::redis::RedisBroker::start(url, self.inner.hub.clone(), self.inner.registry.clone())?;
        *self.inner.broker.write() = Arc::new(broker);
        // A message Redis lost while both ends stayed connected is found
        // within this long even if no later change reveals the gap.
        self.inner.hub.catch_up_every(Duration::from_secs(5));
        Ok(())
    }

    /// Resolves once changes of `route` from other processes reach this one.
    pub(crate) async fn listen(&self, route: &'static str) {
        let listening = self.inner.broker.read().listen(route);
        listening.await
    }

    /// The hub ordering this process's changes.
    pub(crate) fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The subscription registry changes are fanned out to.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
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

    /// Runs SQL statements (schema setup, say) on the writer connection.
    /// Nothing is published.
    pub async fn execute_batch(&self, sql: &str) -> Result<(), Error> {
        let sql = sql.to_owned();
        let inner = self.inner.clone();
        blocking(move || {
            let _queue = inner.write_queue.lock();
            let mut conn = inner.writer.get().map_err(no_connection)?;
            Ok(conn.batch_execute(&sql)?)
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
        blocking(move || {
            let mut conn = pool.get().map_err(no_connection)?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in a read transaction that sees exactly the changes of
    /// `route` up to the returned position, and no later ones.
    pub async fn snapshot<T, F>(&self, route: &'static str, f: F) -> Result<(u64, T), Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner.readers.get().map_err(no_connection)?;
            let conn = &mut *conn;
            // Neither database fixes a transaction's snapshot at BEGIN, but at
            // its first read (SQLite in WAL mode; PostgreSQL at the first
            // statement of a REPEATABLE READ transaction). Making that first
            // read the route's position counter pins the snapshot and tells
            // which position it holds, with no lock: the counter is written
            // in the same transaction as the changes it numbers.
            let begin = match inner.dialect {
                Dialect::Sqlite => "BEGIN",
                Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            };
            conn.begin(begin)?;
            let result = positions::current(conn, route).and_then(|pos| Ok((pos, f(conn)?)));
            let end = conn.commit();
            let value = result?;
            end?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` in a write transaction and publishes its changes after
    /// commit. If `f` fails or panics the transaction rolls back and nothing
    /// is published. This is the save API for server code too: background
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

    /// Loads the rows of `M` matching `filter`, ordered by primary key, for
    /// reads outside the verbs.
    pub async fn load<M: Persist>(&self, filter: Filter) -> Result<Vec<M>, Error> {
        self.read(move |conn| select::<M>(conn, &filter)).await
    }

    /// Like [`Db::load`], with the filter in the client filter syntax (free
    /// to name unpublished fields).
    pub async fn select<M: Persist>(&self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        self.load(server_filter_for::<M>(filter, self.dialect())?).await
    }
}

/// The change history, read back for the hub when changes went missing.
struct StoreHistory {
    readers: Pool<Manager>,
    registry: Arc<Registry>,
}

impl History for StoreHistory {
    fn range(&self, route: &'static str, from: u64, to: u64) -> Result<Option<Vec<Change>>, Error> {
        let info = self.registry.route_info(route).ok_or_else(|| Error::UnknownRoute(route.to_owned()))?;
        let mut conn = self.readers.get().map_err(no_connection)?;
        let Some(kept) = positions::since(&mut conn, route, from.saturating_sub(1))? else { return Ok(None) };
        kept.into_iter()
            .take_while(|(pos, _)| *pos <= to)
            .map(|(pos, body)| {
                let wire = serde_json::from_str(&body).map_err(|e| Error::Internal(format!("history {pos}: {e}")))?;
                Change::from_wire(&wire, info.route, info.fields, info.pk)
                    .map_err(|e| Error::Internal(format!("history {pos}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn no_connection(e: diesel::r2d2::PoolError) -> Error {
    Error::Internal(format!("no database connection: {e}"))
}

impl Inner {
    fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        let _queue = self.write_queue.lock();
        let mut conn = self.writer.get().map_err(no_connection)?;
        let conn = &mut *conn;
        // SQLite: take the write lock now, not at the first write, so a
        // reader's snapshot cannot make this transaction fail with BUSY
        // halfway. PostgreSQL locks rows as it writes them.
        let begin = match self.dialect {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        conn.begin(begin).map_err(Error::from)?;
        let mut tx = WriteTx { conn, changes: Vec::new() };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
        let WriteTx { conn, mut changes } = tx;
        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => {
                rollback(conn);
                return Err(e);
            }
            Err(panic) => {
                rollback(conn);
                let what = panic_message(&panic);
                tracing::error!(panic = %what, "write transaction panicked; rolled back");
                return Err(Error::Internal(format!("panic in write transaction: {what}")).into());
            }
        };
        // Number the changes and keep them in history inside the
        // transaction, so positions follow commit order per route and a
        // rollback consumes none.
        if let Err(e) = positions::number(conn, &mut changes) {
            rollback(conn);
            return Err(e.into());
        }
        if let Err(e) = conn.commit() {
            rollback(conn);
            return Err(Error::from(e).into());
        }
        // Still in the write queue: this process publishes in commit order.
        if !changes.is_empty() {
            self.broker.read().publish(&changes);
            self.hub.push(changes);
        }
        Ok(value)
    }
}

fn rollback(conn: &mut Conn) {
    if let Err(e) = conn.rollback() {
        // Diesel may have rolled back already when a commit failed.
        tracing::debug!(error = %e, "rollback");
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs blocking database work off the runtime; a panic becomes `internal`.
async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(Error::Internal(format!("panic: {}", panic_message(&join.into_panic())))),
        Err(join) => Err(Error::Internal(join.to_string())),
    }
}

/// A write transaction. Every write made through it is published after
/// commit; writes made with raw SQL on [`WriteTx::connection`] are not.
pub struct WriteTx<'a> {
    conn: &'a mut Conn,
    changes: Vec<Change>,
}

impl WriteTx<'_> {
    /// The transaction's connection, for queries wyrmhole does not know
    /// about: match on the [`Conn`] to reach Diesel's SQLite or PostgreSQL
    /// connection. Changes made this way are not published.
    pub fn connection(&mut self) -> &mut Conn {
        self.conn
    }

    /// The SQL dialect of the transaction's database.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Reads the rows matching a filter (in the client filter syntax, free
    /// to name unpublished fields), ordered by primary key.
    pub fn select<M: Persist>(&mut self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        let filter = server_filter_for::<M>(filter, self.dialect())?;
        select::<M>(self.conn, &filter)
    }

    /// Reads one row by primary key.
    pub fn get<M: Persist>(&mut self, id: impl Into<Value>) -> Result<Option<M>, Error> {
        get_by_id::<M>(self.conn, &id.into(), None, Lock::No)
    }

    /// Inserts a row from JSON field values. Server code may set any field.
    pub fn insert<M: Persist>(&mut self, data: &serde_json::Value) -> Result<M, Error> {
        let patch = Patch::parse(M::FIELDS, data, WriteAccess::Server)?;
        self.insert_patch(&patch)
    }

    /// Inserts a row from checked values.
    pub fn insert_patch<M: Persist>(&mut self, patch: &Patch) -> Result<M, Error> {
        patch.check_for(M::FIELDS, self.dialect())?;
        let (names, binds) = bind_patch::<M>(patch);
        let sql = if names.is_empty() {
            format!("INSERT INTO {} DEFAULT VALUES RETURNING {}", quote_ident(M::TABLE), columns::<M>())
        } else {
            let marks = vec!["?"; names.len()].join(", ");
            format!(
                "INSERT INTO {} ({}) VALUES ({marks}) RETURNING {}",
                quote_ident(M::TABLE),
                names.join(", "),
                columns::<M>()
            )
        };
        let new = one::<M>(load(self.conn, &sql, &binds)?)?;
        self.record::<M>(None, Some(&new));
        Ok(new)
    }

    /// Updates some fields of a row from JSON. `Ok(None)` if there is no such row.
    pub fn update<M: Persist>(&mut self, id: impl Into<Value>, data: &serde_json::Value) -> Result<Option<M>, Error> {
        let patch = Patch::parse(M::FIELDS, data, WriteAccess::Server)?;
        Ok(self.update_patch::<M>(&id.into(), &patch)?.map(|(_, new)| new))
    }

    /// Writes every field of `item` to its row (by primary key).
    pub fn save<M: Persist>(&mut self, item: &M) -> Result<Option<M>, Error> {
        let id = item.field(M::PRIMARY_KEY).to_owned();
        let patch = Patch::from_row(M::FIELDS, &item.to_row());
        Ok(self.update_patch::<M>(&id, &patch)?.map(|(_, new)| new))
    }

    /// Applies checked values to a row; returns the row before and after.
    pub fn update_patch<M: Persist>(&mut self, id: &Value, patch: &Patch) -> Result<Option<(M, M)>, Error> {
        patch.check_for(M::FIELDS, self.dialect())?;
        // Locked, so the row published as "before" is the one this update
        // replaces even if a writer outside wyrmhole changes it meanwhile.
        let Some(old) = get_by_id::<M>(self.conn, id, None, Lock::ForUpdate)? else { return Ok(None) };
        if patch.is_empty() {
            let same = get_by_id::<M>(self.conn, id, None, Lock::No)?.ok_or_else(vanished)?;
            return Ok(Some((old, same)));
        }
        let (names, mut binds) = bind_patch::<M>(patch);
        let sets = names.iter().map(|n| format!("{n} = ?")).collect::<Vec<_>>().join(", ");
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        binds.push(Bind { value: id.clone(), ty: pk.ty });
        let sql = format!(
            "UPDATE {} SET {sets} WHERE {} = ? RETURNING {}",
            quote_ident(M::TABLE),
            quote_ident(pk.column),
            columns::<M>()
        );
        let new = one::<M>(load(self.conn, &sql, &binds)?)?;
        self.record::<M>(Some(&old), Some(&new));
        Ok(Some((old, new)))
    }

    /// Deletes a row by primary key; returns it, or `None` if there was none.
    pub fn delete<M: Persist>(&mut self, id: impl Into<Value>) -> Result<Option<M>, Error> {
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        let sql = format!(
            "DELETE FROM {} WHERE {} = ? RETURNING {}",
            quote_ident(M::TABLE),
            quote_ident(pk.column),
            columns::<M>()
        );
        let old = load::<M>(self.conn, &sql, &[Bind { value: id.into(), ty: pk.ty }])?.pop();
        if let Some(old) = &old {
            self.record::<M>(Some(old), None);
        }
        Ok(old)
    }

    fn record<M: Model>(&mut self, old: Option<&M>, new: Option<&M>) {
        self.changes.push(Change::new(M::ROUTE, M::FIELDS, M::PRIMARY_KEY, old.map(M::to_row), new.map(M::to_row)));
    }
}

fn vanished() -> Error {
    Error::Internal("row vanished inside its own transaction".into())
}

fn one<M>(mut rows: Vec<M>) -> Result<M, Error> {
    rows.pop().ok_or_else(vanished)
}

fn bind_patch<M: Model>(patch: &Patch) -> (Vec<String>, Vec<Bind>) {
    patch
        .values()
        .iter()
        .map(|(i, v)| (quote_ident(M::FIELDS[*i].column), Bind { value: v.clone(), ty: M::FIELDS[*i].ty }))
        .unzip()
}

/// A filter written by server code: any field may be named.
pub fn server_filter<M: Model>(json: &serde_json::Value) -> Result<Filter, Error> {
    Filter::parse(M::FIELDS, json, FieldAccess::All).map_err(Error::BadFilter)
}

/// [`server_filter`], refusing operands the database cannot take.
fn server_filter_for<M: Model>(json: &serde_json::Value, dialect: Dialect) -> Result<Filter, Error> {
    Filter::parse_for(M::FIELDS, json, FieldAccess::All, dialect).map_err(Error::BadFilter)
}

fn select<M: Persist>(conn: &mut Conn, filter: &Filter) -> Result<Vec<M>, Error> {
    let fragment = filter.to_sql(conn.dialect());
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {}",
        columns::<M>(),
        quote_ident(M::TABLE),
        fragment.sql,
        quote_ident(M::FIELDS[M::PRIMARY_KEY].column)
    );
    load::<M>(conn, &sql, &fragment.binds)
}

/// `"id", "list_id", ...`: every column of a model, in field order.
pub(crate) fn columns<M: Model>() -> String {
    M::FIELDS.iter().map(|f| quote_ident(f.column)).collect::<Vec<_>>().join(", ")
}

/// Runs a query with `?` placeholders and binds, and decodes the rows.
pub(crate) fn load<T: ByName + 'static>(conn: &mut Conn, sql: &str, binds: &[Bind]) -> Result<Vec<T>, Error> {
    let sql = conn.dialect().finish(sql).into_owned();
    match conn {
        Conn::Sqlite(c) => Ok(bind_all(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).load::<T>(c)?),
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => Ok(bind_all(diesel::sql_query(sql).into_boxed::<Pg>(), binds).load::<T>(c)?),
    }
}

/// Whether a read inside a write transaction locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    No,
    /// `FOR UPDATE` on PostgreSQL. SQLite has no row locks and needs none:
    /// its write transaction holds the whole database from `BEGIN IMMEDIATE`.
    ForUpdate,
}

/// One row by primary key, optionally within a filter (a scope).
pub(crate) fn get_by_id<M: Persist>(
    conn: &mut Conn,
    id: &Value,
    within: Option<&Filter>,
    lock: Lock,
) -> Result<Option<M>, Error> {
    let dialect = conn.dialect();
    let pk = &M::FIELDS[M::PRIMARY_KEY];
    let scope = within.map(|f| f.to_sql(dialect)).unwrap_or(SqlFragment { sql: "1 = 1".into(), binds: Vec::new() });
    let lock = match (lock, dialect) {
        (Lock::ForUpdate, Dialect::Postgres) => " FOR UPDATE",
        _ => "",
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ? AND ({}){lock}",
        columns::<M>(),
        quote_ident(M::TABLE),
        quote_ident(pk.column),
        scope.sql
    );
    let mut binds = vec![Bind { value: id.clone(), ty: pk.ty }];
    binds.extend(scope.binds);
    Ok(load::<M>(conn, &sql, &binds)?.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_database() {
        for sqlite in ["app.db", "/tmp/x.db", ":memory:", "file:app.db?mode=rwc", "file:///tmp/app.db"] {
            assert_eq!(dialect_of(sqlite).unwrap(), Dialect::Sqlite, "{sqlite}");
        }
        for pg in ["postgres://u@localhost/db", "postgresql://localhost:5433/db?sslmode=disable"] {
            assert_eq!(dialect_of(pg).unwrap(), Dialect::Postgres, "{pg}");
        }
        let e = dialect_of("mysql://localhost/db").unwrap_err();
        assert!(e.to_string().contains("`mysql://`"), "{e}");
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn postgres_urls_need_the_feature() {
        let e = Db::open("postgres://user@127.0.0.1:1/db").unwrap_err();
        assert!(matches!(e, OpenError::Unsupported(_)), "{e:?}");
        assert!(e.to_string().contains("`postgres` feature"), "{e}");
    }

    #[test]
    fn sqlite_open_errors_say_why() {
        let e = Db::open("/nonexistent-dir/x/y.db").unwrap_err();
        assert!(matches!(e, OpenError::Connection(_)), "{e:?}");
    }
}
