//! A fresh, empty database for each test: a SQLite file in a temporary
//! directory, or, when `DATABASE_URL` names a PostgreSQL server, a new
//! database created on it and dropped when the test ends, so tests can run
//! in parallel either way.
//!
//! `tests/run-all.sh` runs the database tests twice: without `DATABASE_URL`
//! (SQLite), then against a throwaway server with `--features postgres`.
#![allow(dead_code)]

/// The database the tests of this run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// PostgreSQL when `DATABASE_URL` is a `postgres://` or `postgresql://` URL
/// (the server's admin database: the tests create theirs next to it),
/// otherwise SQLite. Any other `DATABASE_URL` is not the tests' business.
pub fn backend() -> Backend {
    match admin_url() {
        Some(_) if cfg!(feature = "postgres") => Backend::Postgres,
        Some(url) => panic!(
            "DATABASE_URL={url} names PostgreSQL, but the tests were built without it: \
             run them with `--features postgres` (or unset DATABASE_URL for SQLite)"
        ),
        None => Backend::Sqlite,
    }
}

fn admin_url() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// Keeps a test's database alive; dropping it removes the database.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Postgres(PgDatabase),
}

/// A new empty database: its URL (for `Db::open`) and its keeper.
pub fn fresh() -> (String, TestDb) {
    match backend() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("test.db").to_str().unwrap().to_owned();
            (path, TestDb::Sqlite(dir))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let db = PgDatabase::create(&admin_url().unwrap());
            (db.url.clone(), TestDb::Postgres(db))
        }
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => unreachable!("backend() refuses PostgreSQL without the feature"),
    }
}

/// A database of its own on the server `DATABASE_URL` names.
#[cfg(feature = "postgres")]
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

#[cfg(feature = "postgres")]
impl PgDatabase {
    pub fn create(admin: &str) -> PgDatabase {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("wyrm_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = diesel::PgConnection::establish(admin)
            .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server of DATABASE_URL={admin}: {e}"));
        // Where the server allows it (15 and later), the database's default
        // collation is ICU's root locale, which sorts `a` < `B` < `é` < `Z`:
        // as far from byte order as a real deployment's locale, so SQL that
        // forgets to compare text by bytes fails here rather than in
        // production.
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            version: i32,
        }
        let version: Version = diesel::RunQueryDsl::get_result(
            diesel::sql_query("SELECT current_setting('server_version_num')::int AS version"),
            &mut conn,
        )
        .unwrap();
        let icu = if version.version >= 150000 { " LOCALE_PROVIDER icu ICU_LOCALE 'und'" } else { "" };
        conn.batch_execute(&format!("CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0{icu}"))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = with_database(admin, &name);
        PgDatabase { admin: admin.to_owned(), name, url }
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgDatabase {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        // FORCE ends the test's own pooled connections, which may outlive it.
        let dropped = diesel::PgConnection::establish(&self.admin).map_err(|e| e.to_string()).and_then(|mut c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            // Not a panic: this may run while a failed test unwinds. The
            // server is thrown away at the end of the run anyway.
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database (the path) replaced by `name`, query kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{scheme}://{authority}/{name}{query}")
}
