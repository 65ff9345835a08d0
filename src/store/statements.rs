//! The statements a write sends for one row of a model (read it by primary
//! key, insert, update, delete): their text built once per model, dialect
//! and shape, and each prepared once per connection.
//!
//! Diesel prepares `sql_query` text anew on every execution, since it
//! cannot know that the text is one of a few; preparing a one-row update's
//! two statements, and building their text, was about 40% of its
//! instructions on SQLite (issue 14, item 3). Here the text is built once
//! and known to belong to a bounded set, so it is handed to Diesel as safe
//! to cache, and each connection keeps its prepared form. The set is
//! bounded per model, since an update's or insert's text depends on the
//! fields it sets, which a client chooses: past [`PER_MODEL`] texts, a new
//! shape is built and prepared for each use, as before, and nothing grows.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::sql::Dialect;

/// What a statement does with one row; a field set is a bit per field index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    /// `SELECT .. WHERE pk = ?`, locked (`FOR UPDATE`) or not.
    Get { lock: bool },
    /// `INSERT` setting these fields.
    Insert(u64),
    /// `UPDATE .. WHERE pk = ?` setting these fields.
    Update(u64),
    /// `DELETE .. WHERE pk = ?`.
    Delete,
}

impl Shape {
    /// The bits of field indices `fields`; `None` past the 64th field
    /// (such a statement is simply not kept).
    pub(crate) fn fields(fields: impl IntoIterator<Item = usize>) -> Option<u64> {
        fields.into_iter().try_fold(0u64, |bits, i| (i < 64).then(|| bits | 1 << i))
    }
}

/// A statement's text, finished for its dialect.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) sql: Arc<str>,
    /// One of the bounded set: the connection may keep it prepared.
    pub(crate) keep: bool,
}

/// Texts kept per model.
pub(crate) const PER_MODEL: usize = 64;

type Key = (TypeId, Dialect, Shape);

#[derive(Default)]
struct Texts {
    kept: HashMap<Key, Arc<str>>,
    per_model: HashMap<TypeId, usize>,
}

fn texts() -> &'static Mutex<Texts> {
    static TEXTS: OnceLock<Mutex<Texts>> = OnceLock::new();
    TEXTS.get_or_init(Mutex::default)
}

/// The statement of `shape` for the model `model` (its `TypeId`) in
/// `dialect`; `build` writes its text with `?` placeholders, the first
/// time only while the model has fewer than [`PER_MODEL`] texts.
pub(crate) fn statement(
    model: TypeId,
    dialect: Dialect,
    shape: Option<Shape>,
    build: impl FnOnce() -> String,
) -> Statement {
    let finish = |sql: String| -> Arc<str> { dialect.finish(&sql).into() };
    let Some(shape) = shape else { return Statement { sql: finish(build()), keep: false } };
    let mut texts = texts().lock();
    if let Some(sql) = texts.kept.get(&(model, dialect, shape)) {
        return Statement { sql: sql.clone(), keep: true };
    }
    let count = texts.per_model.entry(model).or_default();
    if *count >= PER_MODEL {
        drop(texts);
        return Statement { sql: finish(build()), keep: false };
    }
    *count += 1;
    let sql = finish(build());
    texts.kept.insert((model, dialect, shape), sql.clone());
    Statement { sql, keep: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Many;
    struct Other;

    #[test]
    fn texts_are_built_once_per_shape_and_bounded_per_model() {
        let model = TypeId::of::<Many>();
        let mut built = 0;
        for _ in 0..3 {
            let s = statement(model, Dialect::Postgres, Some(Shape::Delete), || {
                built += 1;
                "DELETE FROM t WHERE id = ?".into()
            });
            assert_eq!((&*s.sql, s.keep), ("DELETE FROM t WHERE id = $1", true));
        }
        assert_eq!(built, 1);
        // An update per field set, up to the bound; past it, built each time and not kept.
        for bits in 1..=PER_MODEL as u64 + 5 {
            let s =
                statement(model, Dialect::Sqlite, Some(Shape::Update(bits)), || format!("UPDATE t SET /* {bits} */"));
            assert_eq!(s.keep, bits < PER_MODEL as u64, "{bits}");
            assert!(s.sql.contains(&format!("/* {bits} */")));
        }
        // Kept ones stay kept; another model has its own bound.
        assert!(statement(model, Dialect::Sqlite, Some(Shape::Update(1)), || unreachable!()).keep);
        assert!(statement(TypeId::of::<Other>(), Dialect::Sqlite, Some(Shape::Delete), String::new).keep);
        assert!(!statement(TypeId::of::<Other>(), Dialect::Sqlite, None, String::new).keep);
    }

    #[test]
    fn field_sets_past_the_64th_field_have_no_shape() {
        assert_eq!(Shape::fields([0, 2, 63]), Some(1 | 4 | 1 << 63));
        assert_eq!(Shape::fields([1, 64]), None);
        assert_eq!(Shape::fields([]), Some(0));
    }
}
