//! The database: reads, write transactions that publish after commit, and
//! snapshots pinned to a commit position.
//!
//! Every Diesel call runs on tokio's blocking pool, never on the runtime.
//! Writes go through one writer connection (SQLite admits one writer at a
//! time anyway, and queueing here avoids `SQLITE_BUSY`). The changes a write
//! transaction makes are handed to the [`Broker`] only after `COMMIT`
//! succeeds, under a short commit lock that also numbers them, so positions
//! follow commit order and a rolled-back write publishes nothing.
//!
//! A snapshot takes the same lock just long enough to start its read
//! transaction, so it sees exactly the changes up to a known position: this
//! is what makes `subscribe` gapless.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use parking_lot::Mutex;

use crate::broker::{Broker, LocalBroker};
use crate::change::Change;
use crate::error::Error;
use crate::filter::fold::register_sqlite_functions;
use crate::filter::sql::{bind_all, quote_ident, Bind, Dialect, SqlFragment};
use crate::filter::{FieldAccess, Filter};
use crate::model::{Model, Value};
use crate::record::{Patch, WriteAccess};
use crate::registry::Registry;

/// The connection type models are read through.
pub type Conn = SqliteConnection;

/// A model wyrmhole can read and write: [`Model`] plus Diesel's
/// `QueryableByName`, which decodes rows by column name.
pub trait Persist: Model + QueryableByName<Sqlite> {}
impl<T: Model + QueryableByName<Sqlite>> Persist for T {}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened.
    #[error("cannot open database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// The read pool could not be built.
    #[error("cannot build connection pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Setting the connection up (WAL, functions) failed.
    #[error("cannot set up connection: {0}")]
    Setup(#[from] diesel::result::Error),
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
    readers: Pool<ConnectionManager<Conn>>,
    writer: Mutex<Conn>,
    /// The position of the last committed change.
    committed: Mutex<u64>,
    broker: Arc<dyn Broker>,
    registry: Arc<Registry>,
    dialect: Dialect,
    epoch: u64,
}

/// Per-connection setup: WAL for concurrent readers, a busy timeout instead
/// of immediate `SQLITE_BUSY`, foreign keys, and wyrmhole's SQL functions.
#[derive(Debug)]
struct SqliteSetup;

impl SqliteSetup {
    fn apply(conn: &mut Conn) -> Result<(), diesel::result::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        register_sqlite_functions(conn)
    }
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        Self::apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Db {
    /// Opens (or creates) a SQLite database file, in WAL mode, with the
    /// in-process broker.
    pub fn open_sqlite(path: &str) -> Result<Db, OpenError> {
        let registry = Arc::new(Registry::new());
        let broker = Arc::new(LocalBroker::new(registry.clone()));
        Self::open_sqlite_with(path, registry, broker)
    }

    /// Opens a SQLite database with a given registry and broker (the seam a
    /// multi-process broker plugs into).
    pub fn open_sqlite_with(path: &str, registry: Arc<Registry>, broker: Arc<dyn Broker>) -> Result<Db, OpenError> {
        let mut writer = SqliteConnection::establish(path)?;
        SqliteSetup::apply(&mut writer)?;
        let readers = Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqliteSetup))
            .build(ConnectionManager::<Conn>::new(path))?;
        let inner = Inner {
            readers,
            writer: Mutex::new(writer),
            committed: Mutex::new(0),
            broker,
            registry,
            dialect: Dialect::Sqlite,
            epoch: new_epoch(),
        };
        Ok(Db { inner: Arc::new(inner) })
    }

    /// The subscription registry changes are fanned out to.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Names this numbering of commit positions: positions restart when the
    /// process does, so a position is meaningful only with its epoch.
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
        blocking(move || Ok(inner.writer.lock().batch_execute(&sql)?)).await
    }

    /// Runs `f` with a read connection, on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.inner.readers.clone();
        blocking(move || {
            let mut conn = pool.get().map_err(|e| Error::Internal(format!("no database connection: {e}")))?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in a read transaction that sees exactly the changes up to
    /// the returned position, and no later ones.
    pub async fn snapshot<T, F>(&self, f: F) -> Result<(u64, T), Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner.readers.get().map_err(|e| Error::Internal(format!("no database connection: {e}")))?;
            let conn = &mut *conn;
            AnsiTransactionManager::begin_transaction(conn)?;
            let pinned = (|| {
                let committed = inner.committed.lock();
                // In WAL mode the read snapshot is fixed by the first read, not
                // by BEGIN; reading the schema table while no commit can
                // happen pins it at `committed`.
                diesel::sql_query("SELECT count(*) FROM sqlite_master").execute(conn)?;
                Ok::<_, Error>(*committed)
            })();
            let result = pinned.and_then(|pos| Ok((pos, f(conn)?)));
            let end = AnsiTransactionManager::commit_transaction(conn);
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
    /// already in one.
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
        let dialect = self.dialect();
        self.read(move |conn| select::<M>(conn, &filter, dialect)).await
    }

    /// Like [`Db::load`], with the filter in the client filter syntax (free
    /// to name unpublished fields).
    pub async fn select<M: Persist>(&self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        self.load(server_filter::<M>(filter)?).await
    }
}

impl Inner {
    fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut conn = self.writer.lock();
        let conn = &mut *conn;
        AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE").map_err(Error::from)?;
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
        let mut committed = self.committed.lock();
        if let Err(e) = AnsiTransactionManager::commit_transaction(conn) {
            drop(committed);
            rollback(conn);
            return Err(Error::from(e).into());
        }
        for change in &mut changes {
            *committed += 1;
            change.pos = *committed;
        }
        if !changes.is_empty() {
            self.broker.publish(changes);
        }
        Ok(value)
    }
}

/// A random epoch (std's per-process random hasher keys are the entropy),
/// kept within JavaScript's safe integers so clients can compare it exactly.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() & ((1 << 53) - 1)
}

fn rollback(conn: &mut Conn) {
    if let Err(e) = AnsiTransactionManager::rollback_transaction(conn) {
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
    /// about. Changes made this way are not published.
    pub fn connection(&mut self) -> &mut Conn {
        self.conn
    }

    /// Reads the rows matching a filter (in the client filter syntax, free
    /// to name unpublished fields), ordered by primary key.
    pub fn select<M: Persist>(&mut self, filter: &serde_json::Value) -> Result<Vec<M>, Error> {
        let filter = server_filter::<M>(filter)?;
        select::<M>(self.conn, &filter, Dialect::Sqlite)
    }

    /// Reads one row by primary key.
    pub fn get<M: Persist>(&mut self, id: impl Into<Value>) -> Result<Option<M>, Error> {
        get_by_id::<M>(self.conn, &id.into(), None, Dialect::Sqlite)
    }

    /// Inserts a row from JSON field values. Server code may set any field.
    pub fn insert<M: Persist>(&mut self, data: &serde_json::Value) -> Result<M, Error> {
        let patch = Patch::parse(M::FIELDS, data, WriteAccess::Server)?;
        self.insert_patch(&patch)
    }

    /// Inserts a row from checked values.
    pub fn insert_patch<M: Persist>(&mut self, patch: &Patch) -> Result<M, Error> {
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
        let Some(old) = get_by_id::<M>(self.conn, id, None, Dialect::Sqlite)? else { return Ok(None) };
        if patch.is_empty() {
            let same = get_by_id::<M>(self.conn, id, None, Dialect::Sqlite)?.ok_or_else(vanished)?;
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

fn select<M: Persist>(conn: &mut Conn, filter: &Filter, dialect: Dialect) -> Result<Vec<M>, Error> {
    let fragment = filter.to_sql(dialect);
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

/// Runs a query with binds and decodes the rows.
pub(crate) fn load<M: Persist>(conn: &mut Conn, sql: &str, binds: &[Bind]) -> Result<Vec<M>, Error> {
    let query = bind_all(diesel::sql_query(sql).into_boxed(), binds);
    Ok(query.load::<M>(conn)?)
}

/// One row by primary key, optionally within a filter (a scope).
pub(crate) fn get_by_id<M: Persist>(
    conn: &mut Conn,
    id: &Value,
    within: Option<&Filter>,
    dialect: Dialect,
) -> Result<Option<M>, Error> {
    let pk = &M::FIELDS[M::PRIMARY_KEY];
    let scope = within.map(|f| f.to_sql(dialect)).unwrap_or(SqlFragment { sql: "1 = 1".into(), binds: Vec::new() });
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ? AND ({})",
        columns::<M>(),
        quote_ident(M::TABLE),
        quote_ident(pk.column),
        scope.sql
    );
    let mut binds = vec![Bind { value: id.clone(), ty: pk.ty }];
    binds.extend(scope.binds);
    Ok(load::<M>(conn, &sql, &binds)?.pop())
}
