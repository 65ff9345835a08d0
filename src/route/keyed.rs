//! Writes with an idempotency key: the key is claimed, the write made and
//! its reply stored in one transaction, so a retry of a committed write is
//! answered with the stored reply and writes nothing (see `store::keys`).

use crate::error::Error;
use crate::store::{Db, KeyClaim, WriteTx};

/// Runs `f` in a write transaction; with a key, only if no committed write
/// holds the key already, else answers with that write's reply.
pub(super) async fn write<F>(db: &Db, key: Option<KeyClaim>, f: F) -> Result<serde_json::Value, Error>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<serde_json::Value, Error> + Send + 'static,
{
    db.write(move |tx| {
        let Some(key) = key else { return f(tx) };
        if let Some(reply) = tx.claim_key(&key)? {
            return Ok(reply);
        }
        let reply = f(tx)?;
        tx.remember_reply(&key, &reply)?;
        Ok(reply)
    })
    .await
}
