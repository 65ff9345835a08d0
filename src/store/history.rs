//! Reading the change history back: for a subscription catching up from its
//! snapshot or from a client's last position (`resume`), and for the fan-out
//! filling a gap the broker left.
//!
//! Each read is one read transaction that also reads the route's head
//! position, so "history no longer reaches back" is decided on one state of
//! the database: a write committing between two statements can never make
//! a complete history look trimmed.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use super::conn::Conn;
use super::positions::{current, int, text};
use super::query::load;
use crate::error::Error;

/// A run of consecutive history entries of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// `(position, encoded change)`, consecutive, from the first position
    /// kept after the one asked for.
    pub(crate) entries: Vec<(u64, String)>,
    /// The route's last committed position when the page was read.
    pub(crate) head: u64,
}

impl Page {
    /// Whether the page continues right after `after`: nothing between was
    /// trimmed away.
    pub(crate) fn continues(&self, after: u64) -> bool {
        match self.entries.first() {
            Some((first, _)) => *first == after + 1,
            None => self.head <= after,
        }
    }

    /// The positions after `after` that history no longer holds, when it
    /// does not continue: `after + 1 ..= last`.
    pub(crate) fn lost_after(&self, after: u64) -> Option<u64> {
        if self.continues(after) {
            return None;
        }
        Some(self.entries.first().map_or(self.head, |(first, _)| first - 1))
    }

    /// The last position the page accounts for: its last entry, or the
    /// position asked after when it is empty.
    pub(crate) fn through(&self, after: u64) -> u64 {
        self.entries.last().map_or(after, |(pos, _)| *pos)
    }

    /// Whether nothing committed so far lies beyond this page.
    pub(crate) fn reaches_head(&self, after: u64) -> bool {
        self.through(after) >= self.head
    }
}

#[derive(QueryableByName)]
struct Kept {
    #[diesel(sql_type = BigInt)]
    pos: i64,
    #[diesel(sql_type = Text)]
    body: String,
}

/// Up to `limit` changes of `route` after position `after`, in order, read
/// in one transaction with the route's head position. When history was
/// trimmed past `after`, the page starts at the first position it still
/// holds (see [`Page::continues`]).
pub(crate) fn after(conn: &mut Conn, route: &str, after: u64, limit: usize) -> Result<Page, Error> {
    conn.read_transaction(|conn| {
        let head = current(conn, route)?;
        if head <= after {
            return Ok(Page { entries: Vec::new(), head });
        }
        let rows = load::<Kept>(
            conn,
            &format!(
                "SELECT pos, body FROM wyrm_changes WHERE route = ? AND pos > ? ORDER BY pos LIMIT {}",
                limit.max(1)
            ),
            &[text(route), int(after)],
        )?;
        // Positions are dense and trimming removes a prefix, so the rows
        // are consecutive from the first one.
        Ok(Page { entries: rows.into_iter().map(|k| (k.pos as u64, k.body)).collect(), head })
    })
}

/// Whether history holds every position of `route` after `after`, in a
/// transaction the caller already opened (a resume's snapshot).
pub(crate) fn reaches(conn: &mut Conn, route: &str, after: u64) -> Result<bool, Error> {
    let head = current(conn, route)?;
    if head <= after {
        return Ok(true);
    }
    let first = load::<Kept>(
        conn,
        "SELECT pos, body FROM wyrm_changes WHERE route = ? AND pos = ?",
        &[text(route), int(after + 1)],
    )?;
    Ok(!first.is_empty())
}
