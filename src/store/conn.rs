//! Connections: the [`Conn`] enum that gives SQLite and PostgreSQL one code
//! path, the pool manager that sets each connection up, and which database a
//! URL names.

use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryResult, QueryableByName};

#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgConnection};

use super::OpenError;
use crate::model::Model;
use crate::sql::fold::register_sqlite_functions;
use crate::sql::Dialect;

/// A connection to the database, of whichever kind [`Db::open`](super::Db::open) opened.
///
/// [`Db::read`](super::Db::read), [`Db::snapshot`](super::Db::snapshot) and
/// [`WriteTx::connection`](super::WriteTx::connection) lend one out for
/// queries wyrmhole does not make itself. Match on it to reach Diesel's
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

    pub(crate) fn begin(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, sql),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(c, sql),
        }
    }

    pub(crate) fn commit(&mut self) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::commit_transaction(c),
        }
    }

    pub(crate) fn rollback(&mut self) {
        let rolled = match self {
            Conn::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => AnsiTransactionManager::rollback_transaction(c),
        };
        if let Err(e) = rolled {
            // Diesel may have rolled back already when a commit failed.
            tracing::debug!(error = %e, "rollback");
        }
    }

    /// Runs `f` in a read transaction whose snapshot is fixed by its first
    /// statement (SQLite in WAL mode; PostgreSQL at REPEATABLE READ), so
    /// everything `f` reads is one consistent state of the database.
    pub(crate) fn read_transaction<T, E: From<diesel::result::Error>>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.begin(begin)?;
        let result = f(self);
        match result {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
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

/// Rows decodable from every supported database: what [`super::load`] returns.
#[cfg(not(feature = "postgres"))]
pub(crate) trait ByName: QueryableByName<Sqlite> {}
#[cfg(not(feature = "postgres"))]
impl<T: QueryableByName<Sqlite>> ByName for T {}

/// Rows decodable from every supported database: what [`super::load`] returns.
#[cfg(feature = "postgres")]
pub(crate) trait ByName: QueryableByName<Sqlite> + QueryableByName<Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<Sqlite> + QueryableByName<Pg>> ByName for T {}

/// Per-connection SQLite setup: WAL for concurrent readers, a busy timeout
/// instead of immediate `SQLITE_BUSY`, foreign keys, and wyrmhole's SQL
/// functions.
pub(super) fn setup_sqlite(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    // Switching a fresh file to WAL needs an exclusive lock, and SQLite
    // answers "database is locked" at once, without its busy handler, when
    // another process opening the same fresh file holds one: wait and retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL;") {
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("locked") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            done => break done?,
        }
    }
    conn.batch_execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    register_sqlite_functions(conn)
}

/// Makes pooled [`Conn`]s of one database. PostgreSQL needs no per-connection
/// setup: `wyrm_upper` lives in the database, installed once by `Db::open`.
#[derive(Debug)]
pub(super) struct Manager {
    pub(super) url: String,
    pub(super) dialect: Dialect,
    /// The writer's: when its connection last proved itself.
    pub(super) proven: Option<Arc<Proven>>,
}

/// When the writer's connection last committed a transaction. A connection
/// that committed less than [`Proven::FRESH`] ago is handed out without a
/// ping: on PostgreSQL the ping is a round trip, about half of what a
/// one-row write costs, paid on every write. A connection that has been
/// idle, or whose last transaction failed, is pinged as before, so one that
/// died while idle (a server restart) is replaced before a write uses it;
/// one that dies between two busy writes fails that write (`unavailable` or
/// `internal`, and its idempotency key makes a retry safe), and is pinged,
/// found dead and replaced at the next.
#[derive(Debug, Default)]
pub(super) struct Proven(parking_lot::Mutex<Option<std::time::Instant>>);

impl Proven {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

    pub(super) fn committed(&self) {
        *self.0.lock() = Some(std::time::Instant::now());
    }

    pub(super) fn failed(&self) {
        *self.0.lock() = None;
    }

    fn fresh(&self) -> bool {
        self.0.lock().is_some_and(|at| at.elapsed() < Self::FRESH)
    }
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
        if self.proven.as_ref().is_some_and(|p| p.fresh()) {
            return Ok(());
        }
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
pub(super) const NO_POSTGRES: &str =
    "this is a PostgreSQL URL, but wyrmhole was built without PostgreSQL support; enable its `postgres` feature";

/// Which database a URL names: PostgreSQL for `postgres://` and
/// `postgresql://`, SQLite for anything that is not a URL of another scheme.
pub(super) fn dialect_of(url: &str) -> Result<Dialect, OpenError> {
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
}
