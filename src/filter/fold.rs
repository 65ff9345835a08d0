//! Case folding for the case-insensitive lookups (`iexact`, `icontains`,
//! `istartswith`, `iendswith`).
//!
//! In-memory evaluation and SQL must fold case identically, or a row would be
//! in a `get_list` result yet never reach a subscription (or the other way
//! round). So there is exactly one folding, [`fold_case`]; each database
//! reaches it through the SQL function `wyrm_upper` that
//! [`crate::sql::fold`] installs.
//!
//! The folding is that of PostgreSQL's `upper()` under a libc UTF-8 locale,
//! the reference Django's `i*` lookups run on, made exact and independent of
//! the C library: each character is mapped to its uppercase on its own, and a
//! character whose uppercase is several characters (`ß` → `SS`) is left alone,
//! because a char-by-char mapping cannot lengthen the text.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
