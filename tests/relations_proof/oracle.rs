//! The relations proof's oracle: the history the servers committed
//! (`wyrm_changes`), read back with plain SQL, says for every position
//! which users had each row in scope, and so which events each
//! subscription must have received and what a snapshot at a position holds.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use wyrmhole::relation::paths;
use wyrmhole::{Conn, Db, FieldDef, Model, ModelInfo};

use crate::models::{Item, List, Member};

/// Decodes rows from PostgreSQL too, when the tests are built for it.
#[cfg(feature = "postgres")]
pub trait PgRow: diesel::QueryableByName<diesel::pg::Pg> {}
#[cfg(feature = "postgres")]
impl<T: diesel::QueryableByName<diesel::pg::Pg>> PgRow for T {}
/// Decodes rows from PostgreSQL too, when the tests are built for it.
#[cfg(not(feature = "postgres"))]
pub trait PgRow {}
#[cfg(not(feature = "postgres"))]
impl<T> PgRow for T {}

/// Rows of `T` by a plain SQL query, on either database.
pub fn sql<T>(conn: &mut Conn, query: &str) -> Vec<T>
where
    T: diesel::QueryableByName<diesel::sqlite::Sqlite> + PgRow + 'static,
{
    use diesel::RunQueryDsl;
    match conn {
        Conn::Sqlite(c) => diesel::sql_query(query).load::<T>(c).unwrap(),
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => diesel::sql_query(query).load::<T>(c).unwrap(),
        _ => unreachable!("a database these tests know"),
    }
}

/// A row as a client receives it, written out by hand.
pub trait Published {
    fn published(&self) -> Value;
}

impl Published for Item {
    fn published(&self) -> Value {
        json!({"id": self.id, "list_id": self.list_id, "text": self.text, "done": self.done})
    }
}

impl Published for List {
    fn published(&self) -> Value {
        json!({"id": self.id, "title": self.title})
    }
}

/// The rows of `table` whose list has `user` as a member, by id, read with
/// plain SQL (no wyrmhole filter involved).
pub async fn in_scope<T>(db: &Db, table: &'static str, list_key: &'static str, user: i64) -> BTreeMap<i64, Value>
where
    T: diesel::QueryableByName<diesel::sqlite::Sqlite> + PgRow + Published + Send + 'static,
{
    let query = format!(
        "SELECT * FROM {table} AS t WHERE EXISTS \
         (SELECT 1 FROM rel_members AS m WHERE m.list_id = t.{list_key} AND m.user_id = {user}) ORDER BY t.id"
    );
    let rows = db.read(move |conn| Ok(sql::<T>(conn, &query))).await.unwrap();
    rows.iter().map(|r| r.published()).map(|r| (r["id"].as_i64().unwrap(), r)).collect()
}

#[derive(diesel::QueryableByName)]
struct Kept {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pos: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

type Row = Option<Vec<Value>>;

/// One route's committed changes, position 1 first.
pub struct History {
    route: &'static str,
    fields: &'static [FieldDef],
    /// Where, in a row with its context, the members of its list are.
    members: usize,
    /// Where, in a member row, the user is.
    user: usize,
    /// `(old, new)` at position `i + 1`.
    entries: Vec<(Row, Row)>,
}

impl History {
    /// Reads the whole history of `info`'s route; `path` is the relation
    /// path that reaches the list's members (`list__members` from an item).
    pub async fn read(db: &Db, info: &'static ModelInfo, path: &str) -> History {
        let slot = paths(info).get(path).unwrap_or_else(|| panic!("{} has no path {path}", info.route)).slot;
        let user = Member::FIELDS.iter().position(|f| f.name == "user_id").unwrap();
        let query = format!("SELECT pos, body FROM wyrm_changes WHERE route = '{}' ORDER BY pos", info.route);
        let kept = db.read(move |conn| Ok(sql::<Kept>(conn, &query))).await.unwrap();
        let mut entries = Vec::new();
        for (i, k) in kept.iter().enumerate() {
            assert_eq!(k.pos as usize, i + 1, "{}: history must be whole from position 1", info.route);
            let body: Value = serde_json::from_str(&k.body).unwrap();
            let row = |key: &str| body[key].as_array().cloned();
            entries.push((row("old"), row("new")));
        }
        History { route: info.route, fields: info.fields, members: info.fields.len() + slot, user, entries }
    }

    /// The last position.
    pub fn head(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The users among the members in `row`'s context.
    fn members(&self, row: &Row) -> Vec<i64> {
        let Some(row) = row else { return Vec::new() };
        let members = row[self.members].as_array().expect("a row of this route carries its context");
        members.iter().map(|m| m[self.user].as_i64().unwrap()).collect()
    }

    /// Whether `user` is among the members in `row`'s context.
    fn sees(&self, row: &Row, user: i64) -> bool {
        self.members(row).contains(&user)
    }

    /// The row as clients receive it: its published fields.
    fn published(&self, row: &[Value]) -> Value {
        let fields = self.fields.iter().zip(row).filter(|(f, _)| f.published);
        Value::Object(fields.map(|(f, v)| (f.name.to_owned(), v.clone())).collect())
    }

    /// The events a subscription of `user` to every row, started at
    /// `after`, must get: `(pos, action, data)` as the protocol words them.
    fn expected(&self, user: i64, after: u64) -> Vec<(u64, String, Value)> {
        let mut out = Vec::new();
        for (i, (old, new)) in self.entries.iter().enumerate().skip(after as usize) {
            let pos = i as u64 + 1;
            let (before, now) = (self.sees(old, user), self.sees(new, user));
            let id = |row: &Row| json!({"id": self.published(row.as_ref().unwrap())["id"]});
            match (before, now) {
                (false, true) => out.push((pos, "created".into(), self.published(new.as_ref().unwrap()))),
                (true, false) => out.push((pos, "deleted".into(), id(old))),
                (true, true) => {
                    let (was, is) = (self.published(old.as_ref().unwrap()), self.published(new.as_ref().unwrap()));
                    let mut changed = id(new);
                    for (k, v) in is.as_object().unwrap() {
                        if was[k] != *v {
                            changed[k] = v.clone();
                        }
                    }
                    if changed.as_object().unwrap().len() > 1 {
                        out.push((pos, "updated".into(), changed));
                    }
                }
                (false, false) => {}
            }
        }
        out
    }

    /// Asserts that `log` (what a subscription of `user` started at `start`
    /// received) is exactly what the history says; returns its length.
    pub fn check(&self, user: i64, start: u64, log: &[(u64, String, Value)]) -> usize {
        let expected = self.expected(user, start);
        // First the property itself, with the position that breaks it.
        for (pos, action, data) in log {
            let (old, new) = &self.entries[*pos as usize - 1];
            let entitled = match action.as_str() {
                "deleted" => self.sees(old, user) && !self.sees(new, user),
                _ => self.sees(new, user),
            };
            assert!(
                entitled,
                "{}: user {user} got `{action}` {data} at position {pos}, outside their scope there \
                 (the list's members before: {:?}, after: {:?})",
                self.route,
                self.members(old),
                self.members(new),
            );
        }
        assert_eq!(log, expected.as_slice(), "{}: user {user}'s events since {start} vs history", self.route);
        log.len()
    }

    /// The rows `user` had in scope at `pos`, as clients see them.
    pub fn state_at(&self, user: i64, pos: u64) -> BTreeMap<i64, Value> {
        let mut rows: BTreeMap<i64, &Row> = BTreeMap::new();
        for (old, new) in &self.entries[..pos as usize] {
            let id = self.published(old.as_ref().or(new.as_ref()).unwrap())["id"].as_i64().unwrap();
            rows.insert(id, new);
        }
        rows.into_iter()
            .filter(|(_, row)| self.sees(row, user))
            .map(|(id, row)| (id, self.published(row.as_ref().unwrap())))
            .collect()
    }

    /// How many changes moved a row into (`true`) or out of some user's
    /// scope without changing the row itself: membership at work.
    pub fn moved_by_membership(&self, into: bool) -> usize {
        let own = |row: &Row| row.as_ref().map(|r| self.published(r));
        self.entries
            .iter()
            .filter(|(old, new)| old.is_some() && own(old) == own(new))
            .filter(|(old, new)| {
                crate::USERS
                    .iter()
                    .any(|&u| self.sees(if into { new } else { old }, u) && !self.sees(if into { old } else { new }, u))
            })
            .count()
    }
}
