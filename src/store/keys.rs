//! Idempotency keys: the writes a client may send again after a lost
//! connection without them running twice.
//!
//! A keyed write claims its key in the write transaction itself, before it
//! writes anything, and stores its reply there before it commits: the key
//! and the write commit together or not at all (a crash between the two
//! cannot leave a write whose retry runs again), and a write that fails
//! rolls its claim back, so a retry runs it anew. A second writer of the
//! same key (another connection, another process) waits at the claim for
//! the first one's transaction on PostgreSQL (the primary key's uniqueness
//! check) and behind SQLite's write lock, then finds the key taken and
//! answers with the stored reply.
//!
//! The table is bounded: each owner keeps its [`REQUEST_KEYS_KEPT`] latest
//! keys, and keys older than [`REQUEST_KEY_LIFETIME`] are swept now and then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Conn;
use super::positions::{int, text};
use super::query::load;
use crate::error::Error;

/// How many keys each identity's writes keep; older ones are forgotten
/// first. A client resends at most its pending writes, far fewer.
pub const REQUEST_KEYS_KEPT: u64 = 1_000;

/// How long a key is kept at most.
pub const REQUEST_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The table, the same SQL on SQLite and PostgreSQL.
pub(super) const TABLE: &str = "
    CREATE TABLE IF NOT EXISTS wyrm_request_keys (
        owner TEXT NOT NULL, request_key TEXT NOT NULL, request TEXT NOT NULL, reply TEXT,
        at BIGINT NOT NULL, PRIMARY KEY (owner, request_key));
    CREATE INDEX IF NOT EXISTS wyrm_request_keys_age ON wyrm_request_keys (owner, at);
";

/// One keyed write's claim: whose key, the key, and what request it names
/// (a key sent again with another route or verb is refused, not answered
/// with a reply to something else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyClaim {
    /// Whose keys these are: the identity, as [`KeyClaim::owner_of`] names it.
    pub(crate) owner: String,
    /// The client's key.
    pub(crate) key: String,
    /// `route verb`.
    pub(crate) request: String,
}

impl KeyClaim {
    /// The key namespace of a user id: `user:<id>`, or `anonymous` (every
    /// anonymous connection shares one, so anonymous keys must be random).
    pub(crate) fn owner_of(user_id: Option<i64>) -> String {
        match user_id {
            Some(id) => format!("user:{id}"),
            None => "anonymous".to_owned(),
        }
    }
}

#[derive(QueryableByName)]
struct At {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    at: i64,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    request: String,
    #[diesel(sql_type = Nullable<Text>)]
    reply: Option<String>,
}

/// Claims will sweep the whole table once every this many claims of a process.
const SWEEP_EVERY: u64 = 256;
static CLAIMS: AtomicU64 = AtomicU64::new(0);

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Claims `claim` in the current write transaction: `Ok(None)` if it is
/// new (the caller writes, then [`remember`]s its reply), or the reply a
/// committed write with the same key got.
pub(super) fn claim(conn: &mut Conn, claim: &KeyClaim) -> Result<Option<serde_json::Value>, Error> {
    let now = now_millis();
    let claimed = load::<At>(
        conn,
        "INSERT INTO wyrm_request_keys (owner, request_key, request, reply, at) VALUES (?, ?, ?, NULL, ?) \
         ON CONFLICT (owner, request_key) DO NOTHING RETURNING at",
        &[text(&claim.owner), text(&claim.key), text(&claim.request), int(now as u64)],
    )?;
    if claimed.is_empty() {
        return stored(conn, claim).map(Some);
    }
    trim(conn, &claim.owner, now)?;
    Ok(None)
}

fn stored(conn: &mut Conn, claim: &KeyClaim) -> Result<serde_json::Value, Error> {
    let rows = load::<Stored>(
        conn,
        "SELECT request, reply FROM wyrm_request_keys WHERE owner = ? AND request_key = ?",
        &[text(&claim.owner), text(&claim.key)],
    )?;
    let row = rows.into_iter().next().ok_or_else(|| Error::Internal("request key vanished".into()))?;
    if row.request != claim.request {
        return Err(Error::bad_arg("key", format!("was already used for another request ({})", row.request)));
    }
    let reply = row.reply.ok_or_else(|| Error::Internal("request key claimed without a reply".into()))?;
    serde_json::from_str(&reply).map_err(|e| Error::Internal(format!("stored reply is not JSON: {e}")))
}

/// Stores the reply of the write that claimed `claim`, in its transaction.
pub(super) fn remember(conn: &mut Conn, claim: &KeyClaim, reply: &serde_json::Value) -> Result<(), Error> {
    load::<At>(
        conn,
        "UPDATE wyrm_request_keys SET reply = ? WHERE owner = ? AND request_key = ? RETURNING at",
        &[text(&reply.to_string()), text(&claim.owner), text(&claim.key)],
    )?;
    Ok(())
}

/// Forgets the owner's keys beyond the latest [`REQUEST_KEYS_KEPT`] and,
/// now and then, everyone's keys older than [`REQUEST_KEY_LIFETIME`].
fn trim(conn: &mut Conn, owner: &str, now: i64) -> Result<(), Error> {
    load::<At>(
        conn,
        "DELETE FROM wyrm_request_keys WHERE owner = ? AND at < (SELECT at FROM wyrm_request_keys \
         WHERE owner = ? ORDER BY at DESC LIMIT 1 OFFSET ?) RETURNING at",
        &[text(owner), text(owner), int(REQUEST_KEYS_KEPT)],
    )?;
    if CLAIMS.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
        let oldest = now - REQUEST_KEY_LIFETIME.as_millis() as i64;
        load::<At>(conn, "DELETE FROM wyrm_request_keys WHERE at < ? RETURNING at", &[int(oldest.max(0) as u64)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    fn claim_of(owner: &str, key: usize) -> KeyClaim {
        KeyClaim { owner: owner.into(), key: format!("k{key}"), request: "item create".into() }
    }

    #[tokio::test]
    async fn each_owner_keeps_only_its_latest_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("keys.db").to_str().unwrap()).unwrap();
        let extra = 40;
        for n in 0..REQUEST_KEYS_KEPT as usize + extra {
            let reply = serde_json::json!({ "n": n });
            db.write(move |tx| {
                assert_eq!(tx.claim_key(&claim_of("user:1", n))?, None);
                tx.remember_reply(&claim_of("user:1", n), &reply)
            })
            .await
            .unwrap();
        }
        db.write(|tx| tx.claim_key(&claim_of("user:2", 0))).await.unwrap();
        let (kept, oldest_gone, newest) = db
            .write(move |tx| {
                let kept = load::<At>(tx.connection(), "SELECT at FROM wyrm_request_keys WHERE owner = 'user:1'", &[])?;
                let gone = tx.claim_key(&claim_of("user:1", 0))?.is_none();
                let newest = tx.claim_key(&claim_of("user:1", REQUEST_KEYS_KEPT as usize + extra - 1))?;
                Ok::<_, Error>((kept.len(), gone, newest))
            })
            .await
            .unwrap();
        // Keys written in the same millisecond as the oldest one kept stay too.
        assert!((REQUEST_KEYS_KEPT as usize..REQUEST_KEYS_KEPT as usize + extra).contains(&kept), "{kept}");
        assert!(oldest_gone, "the oldest key was forgotten (and so claimed anew)");
        assert_eq!(newest, Some(serde_json::json!({ "n": REQUEST_KEYS_KEPT as usize + extra - 1 })));
    }
}
