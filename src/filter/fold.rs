//! Case folding for the case-insensitive lookups (`iexact`, `icontains`,
//! `istartswith`, `iendswith`).
//!
//! In-memory evaluation and SQL must fold case identically, or a row would be
//! in a `get_list` result yet never reach a subscription (or the other way
//! round). So there is exactly one folding, [`fold_case`], and SQLite reaches
//! it through the SQL function `wyrm_upper` that [`register_sqlite_functions`]
//! installs on every connection: SQLite's own `upper()` folds ASCII only.
//!
//! The folding mirrors PostgreSQL's `upper()` under a libc UTF-8 locale, the
//! reference Django's `i*` lookups run on: each character is mapped to its
//! uppercase on its own, and a character whose uppercase is several characters
//! (`ß` → `SS`) is left alone, because a char-by-char mapping cannot lengthen
//! the text.

use std::borrow::Cow;

/// Folds one character: its uppercase when that is a single character,
/// otherwise the character itself.
#[inline]
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Folds `s` for case-insensitive comparison (see the module docs). Borrows
/// when nothing changes, which is the common case for needles clients send
/// in capitals and for text that is already folded.
pub fn fold_case(s: &str) -> Cow<'_, str> {
    match s.char_indices().find(|&(_, c)| fold_char(c) != c) {
        None => Cow::Borrowed(s),
        Some((at, _)) => {
            let mut folded = String::with_capacity(s.len());
            folded.push_str(&s[..at]);
            folded.extend(s[at..].chars().map(fold_char));
            Cow::Owned(folded)
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::{Connection, RunQueryDsl};

    #[test]
    fn folds_char_by_char_like_postgres_upper() {
        assert_eq!(fold_case("éclair"), "ÉCLAIR");
        assert_eq!(fold_case("ÉCLAIR"), "ÉCLAIR");
        assert_eq!(fold_case("σ"), "Σ");
        assert_eq!(fold_case("ς"), "Σ");
        assert_eq!(fold_case("Σ"), "Σ");
        assert_eq!(fold_case("Straße"), "STRAßE", "ß uppercases to two characters, so it stays");
        assert_eq!(fold_case("ﬃ"), "ﬃ");
        assert_eq!(fold_case("ı"), "I", "dotless i uppercases to plain I");
        assert_eq!(fold_case("İ"), "İ");
        assert_eq!(fold_case("ǆ ǅ Ǆ"), "Ǆ Ǆ Ǆ");
        assert_eq!(fold_case("a%_\\😀\0z"), "A%_\\😀\0Z");
        assert_eq!(fold_case(""), "");
    }

    #[test]
    fn borrows_when_nothing_changes() {
        assert!(matches!(fold_case("MILK 2%"), Cow::Borrowed(_)));
        assert!(matches!(fold_case("ß😀"), Cow::Borrowed(_)));
        assert!(matches!(fold_case("MILk"), Cow::Owned(_)));
    }

    #[test]
    fn folding_is_idempotent() {
        // Needles are folded once at parse time and compared with folded
        // column text; folding a folded needle again must not change it, or
        // canonical keys of equivalent filters would differ.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let folded = fold_char(c);
            assert_eq!(fold_char(folded), folded, "folding {c:?} is not idempotent");
        }
    }

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
