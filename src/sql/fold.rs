//! `wyrm_upper`: [`fold_case`] as an SQL function, on each database.
//!
//! In-memory evaluation and SQL must fold case identically, or a row would be
//! in a `get_list` result yet never reach a subscription (or the other way
//! round). So there is exactly one folding, [`fold_case`], and each database
//! reaches it through an SQL function `wyrm_upper`:
//!
//! - SQLite calls [`fold_case`] itself, registered on every connection by
//!   [`register_sqlite_functions`] (SQLite's own `upper()` folds ASCII only);
//! - PostgreSQL cannot call Rust, so `install_postgres_functions` (with the
//!   `postgres` feature) defines `wyrm_upper` in SQL, see below.
//!
//! The folding is that of PostgreSQL's `upper()` under a libc UTF-8 locale,
//! the reference Django's `i*` lookups run on, made exact and independent of
//! the C library: each character is mapped to its uppercase on its own, and a
//! character whose uppercase is several characters (`ß` → `SS`) is left alone,
//! because a char-by-char mapping cannot lengthen the text.
//!
//! On PostgreSQL, `upper()` itself is not exact: glibc maps characters by its
//! own Unicode tables and by their *simple* uppercase, so it turns `ᾳ` into
//! `ᾼ` (whose full uppercase is `ΑΙ`, so [`fold_case`] keeps `ᾳ`), and it does
//! not know the letters added to Unicode since its tables were made (82
//! characters differ with glibc 2.36). A pure SQL mapping of every cased
//! character (`translate()` with a table of ~1,500 characters) is exact but
//! scans the table for every character of every row, about 150 times slower.
//! So `wyrm_upper` is both: when the server is first met, every character's
//! `upper()` is compared with its [`fold_case`], and the function uses `upper()`
//! for text without any of the characters where they differ, and the exact
//! table for text with one. Whatever the server's C library, the result is
//! [`fold_case`]; `tests/filter_parity.rs` checks every character.

use std::borrow::Cow;

use crate::filter::fold::fold_case;
#[cfg(feature = "postgres")]
use crate::filter::fold::fold_char;

// Private so the generated helper items need no docs of their own.
mod function {
    use diesel::expression::functions::declare_sql_function;
    use diesel::sql_types::{Nullable, Text};

    #[declare_sql_function]
    extern "SQL" {
        fn wyrm_upper(text: Nullable<Text>) -> Nullable<Text>;
    }
}

/// Registers wyrmhole's SQL functions on a SQLite connection: `wyrm_upper`,
/// [`fold_case`] as `Nullable<Text> -> Nullable<Text>`. It is registered as
/// deterministic, which lets SQLite use it in indexes on expressions and
/// factor it out of loops.
pub fn register_sqlite_functions(conn: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    function::wyrm_upper_utils::register_impl(conn, |text: Option<String>| {
        text.map(|t| match fold_case(&t) {
            Cow::Borrowed(_) => t,
            Cow::Owned(folded) => folded,
        })
    })
}

/// Defines `wyrm_upper(text)` in PostgreSQL's current schema so that it
/// folds exactly like [`fold_case`] (see the module docs). The database must
/// be UTF8. The comparison with the server's `upper()` runs once per server
/// and process (a few hundred milliseconds); later calls only replace the
/// function, under an advisory lock so concurrent openers do not collide.
#[cfg(feature = "postgres")]
pub fn install_postgres_functions(conn: &mut diesel::PgConnection) -> diesel::QueryResult<()> {
    use diesel::connection::{Connection, SimpleConnection};
    let definition = postgres::definition(conn)?;
    conn.transaction(|conn| {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({})", crate::sql::SETUP_LOCK))?;
        conn.batch_execute(&definition)
    })
}

#[cfg(feature = "postgres")]
mod postgres {
    //! Building PostgreSQL's `wyrm_upper`: finding where the server's
    //! `upper()` differs from [`fold_char`], and the SQL that covers it.

    use std::collections::HashMap;
    use std::fmt::Write;
    use std::sync::{Mutex, OnceLock};

    use diesel::sql_types::{Integer, Text};
    use diesel::{PgConnection, QueryResult, QueryableByName, RunQueryDsl};

    use super::fold_char;

    /// Collations whose `upper()` maps each character by Unicode case
    /// tables, most preferred first: PostgreSQL's own (17 and later), then
    /// glibc's. `"C"` is the fallback, where `upper()` maps ASCII only.
    const COLLATIONS: [&str; 3] = ["pg_c_utf8", "C.utf8", "C.UTF-8"];

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    #[derive(QueryableByName)]
    struct Upper {
        #[diesel(sql_type = Integer)]
        code: i32,
        #[diesel(sql_type = Text)]
        upper: String,
    }

    /// The `CREATE OR REPLACE FUNCTION` statement for this server, computed
    /// once per server (its version and start time name it: the C library
    /// cannot change without a restart).
    pub(super) fn definition(conn: &mut PgConnection) -> QueryResult<String> {
        static KNOWN: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
        let names = COLLATIONS.map(|c| format!("'{c}'")).join(", ");
        let collation = diesel::sql_query(format!(
            "SELECT collname::text AS name FROM pg_collation \
             WHERE collname IN ({names}) AND collencoding IN (-1, pg_char_to_encoding('UTF8')) \
             ORDER BY array_position(ARRAY[{names}], collname::text) LIMIT 1"
        ))
        .load::<Name>(conn)?
        .pop()
        .map_or_else(|| "C".to_owned(), |n| n.name);
        let server: Name = diesel::sql_query(
            "SELECT concat_ws(' ', version(), pg_postmaster_start_time(), inet_server_addr(), inet_server_port()) AS name",
        )
        .get_result(conn)?;
        let key = format!("{} {collation}", server.name);
        let known = KNOWN.get_or_init(Default::default);
        if let Some(sql) = known.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(sql.clone());
        }
        let sql = build(&collation, &differences(conn, &collation)?);
        known.lock().unwrap_or_else(|e| e.into_inner()).insert(key, sql.clone());
        Ok(sql)
    }

    /// Every character (but NUL, which `text` cannot hold) whose `upper()`
    /// under `collation` is not its [`fold_char`].
    fn differences(conn: &mut PgConnection, collation: &str) -> QueryResult<Vec<char>> {
        let upper = format!("upper(chr(g) COLLATE \"{collation}\")");
        let changed: Vec<Upper> = diesel::sql_query(format!(
            "SELECT g AS code, {upper} AS upper FROM generate_series(1, 1114111) g \
             WHERE (g < 55296 OR g > 57343) AND {upper} COLLATE \"C\" <> chr(g)"
        ))
        .load(conn)?;
        let by_server: HashMap<u32, String> =
            changed.into_iter().filter_map(|u| Some((u32::try_from(u.code).ok()?, u.upper))).collect();
        let mut differ: Vec<char> = (1..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|&c| {
                let folded = fold_char(c);
                match by_server.get(&(c as u32)) {
                    Some(upper) => upper.chars().ne(std::iter::once(folded)),
                    None => folded != c,
                }
            })
            .collect();
        differ.sort_unstable();
        Ok(differ)
    }

    /// The function: `upper()` under `collation`, unless the text holds one
    /// of the characters where that differs from [`fold_char`]; then the
    /// exact `translate()` table of every character that folding changes.
    pub(super) fn build(collation: &str, differ: &[char]) -> String {
        let fast = format!("upper(t COLLATE \"{collation}\")");
        let body = if differ.is_empty() {
            format!("SELECT {fast}")
        } else {
            let (from, to): (String, String) = (1..=char::MAX as u32)
                .filter_map(char::from_u32)
                .filter(|&c| fold_char(c) != c)
                .map(|c| (c, fold_char(c)))
                .unzip();
            format!(
                "SELECT CASE WHEN t COLLATE \"C\" ~ E'{}' THEN translate(t, E'{}', E'{}') ELSE {fast} END",
                class(differ),
                escape(&from),
                escape(&to)
            )
        };
        format!(
            "CREATE OR REPLACE FUNCTION wyrm_upper(t text) RETURNS text \
             LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $wyrm_upper$ {body} $wyrm_upper$"
        )
    }

    /// A regular expression bracket of the characters, as ranges of `\U`
    /// escapes (written for an E'' literal), so no character needs quoting.
    fn class(chars: &[char]) -> String {
        let mut out = String::from("[");
        let mut i = 0;
        while i < chars.len() {
            let start = chars[i];
            let mut end = start;
            while i + 1 < chars.len() && chars[i + 1] as u32 == end as u32 + 1 {
                i += 1;
                end = chars[i];
            }
            let _ = write!(out, "\\\\U{:08X}", start as u32);
            if end != start {
                let _ = write!(out, "-\\\\U{:08X}", end as u32);
            }
            i += 1;
        }
        out.push(']');
        out
    }

    /// Text for an E'' literal.
    fn escape(text: &str) -> String {
        text.replace('\\', "\\\\").replace('\'', "''")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn builds_ranges_and_escapes() {
            let sql = super::build("C.utf8", &['ᾀ', 'ᾁ', 'ᾂ', 'ᾳ']);
            assert!(sql.contains("E'[\\\\U00001F80-\\\\U00001F82\\\\U00001FB3]'"), "{sql}");
            assert!(sql.contains("ELSE upper(t COLLATE \"C.utf8\") END"), "{sql}");
            assert!(sql.contains("translate(t, E'abc"), "{sql}");
            let plain = super::build("C", &[]);
            assert!(plain.contains("SELECT upper(t COLLATE \"C\")") && !plain.contains("translate("), "{plain}");
            assert_eq!(super::escape("a'b\\c"), "a''b\\\\c");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::{Connection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Folded {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        folded: Option<String>,
    }

    #[test]
    fn sqlite_function_is_fold_case() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        register_sqlite_functions(&mut conn).unwrap();
        for text in ["éclair", "Straße ς", "mixed ǅ ı İ 😀", "", "nul\0inside"] {
            let row: Folded = diesel::sql_query("SELECT wyrm_upper(?) AS folded")
                .bind::<diesel::sql_types::Text, _>(text)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(row.folded.as_deref(), Some(&*fold_case(text)));
        }
        let row: Folded = diesel::sql_query("SELECT wyrm_upper(NULL) AS folded").get_result(&mut conn).unwrap();
        assert_eq!(row.folded, None);
    }
}
