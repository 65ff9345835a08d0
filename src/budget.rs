//! Budgets: how much of the server one client may take, so that one
//! connection, one identity or one address cannot starve the others.
//!
//! Two scopes, because an attacker can open more connections:
//!
//! - per connection ([`SessionBudget`], held by the session): subscriptions,
//!   the size of a reply, and turns at the database (a connection may use at
//!   most its share of the read pool at once; further requests queue);
//! - per identity and per remote address ([`Budgets`], shared by the app):
//!   open connections, requests per second, and database turns across all
//!   of one signed-in identity's connections. Anonymous connections count
//!   per address for connections and per connection for everything else
//!   (they share no identity).
//!
//! Refusals are decided here; turning them into error codes, close codes or
//! HTTP statuses is the transport's business.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Identity;
use crate::error::Error;

/// A token bucket: `per_second` tokens flow in, at most `burst` are kept.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    /// Tokens left, as of the instant.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket; a rate of 0 admits everything.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket { per_second: f64::from(per_second), burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&self) -> Result<(), Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        let mut state = self.state.lock();
        let now = Instant::now();
        let (tokens, since) = *state;
        let tokens = (tokens + now.duration_since(since).as_secs_f64() * self.per_second).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    /// Returns a token taken for a request that another bucket refused.
    pub(crate) fn give_back(&self) {
        let mut state = self.state.lock();
        state.0 = (state.0 + 1.0).min(self.burst);
    }
}

/// Takes one token from each bucket, or none: `rate_limited` with the
/// longer wait when either is empty.
pub(crate) fn take_tokens(connection: &TokenBucket, identity: Option<&TokenBucket>) -> Result<(), Error> {
    let limited = |wait: Duration| Error::RateLimited { retry_after_ms: (wait.as_millis() as u64).max(1) };
    connection.take().map_err(limited)?;
    if let Some(Err(wait)) = identity.map(TokenBucket::take) {
        connection.give_back();
        return Err(limited(wait));
    }
    Ok(())
}

/// The limits [`Budgets`] enforce across connections.
#[derive(Debug, Clone)]
pub(crate) struct SharedLimits {
    pub(crate) connections_per_identity: usize,
    pub(crate) connections_per_ip: usize,
    pub(crate) identity_per_second: u32,
    pub(crate) identity_burst: u32,
    pub(crate) identity_db_turns: usize,
}

/// What one signed-in identity's connections share.
#[derive(Debug)]
pub(crate) struct IdentityBudget {
    pub(crate) rate: TokenBucket,
    db: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Open connections and the shared budget, per user id; removed with
    /// the identity's last connection, so the map holds only who is on.
    identities: HashMap<i64, (usize, Arc<IdentityBudget>)>,
    ips: HashMap<IpAddr, usize>,
}

/// The app's budgets across connections.
#[derive(Debug)]
pub(crate) struct Budgets {
    limits: SharedLimits,
    counts: Mutex<Counts>,
}

/// Why a connection was refused at the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("too many connections for this identity (at most {0})")]
    Identity(usize),
    #[error("too many connections from this address (at most {0})")]
    Address(usize),
}

impl Budgets {
    pub(crate) fn new(limits: SharedLimits) -> Self {
        Budgets { limits, counts: Mutex::default() }
    }

    /// Counts a new connection of `identity` from `ip`, if both have room;
    /// the count drops when the returned [`Admission`] does.
    pub(crate) fn admit(self: &Arc<Self>, identity: &Identity, ip: Option<IpAddr>) -> Result<Admission, Refusal> {
        let mut counts = self.counts.lock();
        let user = identity.user_id();
        if let Some(user) = user {
            let open = counts.identities.get(&user).map_or(0, |(n, _)| *n);
            if open >= self.limits.connections_per_identity {
                return Err(Refusal::Identity(self.limits.connections_per_identity));
            }
        }
        if let Some(ip) = ip {
            if counts.ips.get(&ip).copied().unwrap_or(0) >= self.limits.connections_per_ip {
                return Err(Refusal::Address(self.limits.connections_per_ip));
            }
            *counts.ips.entry(ip).or_default() += 1;
        }
        let shared = user.map(|user| {
            let (open, budget) = counts.identities.entry(user).or_insert_with(|| {
                let budget = IdentityBudget {
                    rate: TokenBucket::new(self.limits.identity_per_second, self.limits.identity_burst),
                    db: Arc::new(Semaphore::new(self.limits.identity_db_turns.max(1))),
                };
                (0, Arc::new(budget))
            });
            *open += 1;
            budget.clone()
        });
        Ok(Admission { budgets: self.clone(), user, ip, shared })
    }

    /// Open connections of a signed-in user (for tests and stats).
    #[cfg(test)]
    fn open_for(&self, user: i64) -> usize {
        self.counts.lock().identities.get(&user).map_or(0, |(n, _)| *n)
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admission {
    budgets: Arc<Budgets>,
    user: Option<i64>,
    ip: Option<IpAddr>,
    shared: Option<Arc<IdentityBudget>>,
}

impl Admission {
    /// What this connection shares with its identity's other connections
    /// (`None` for an anonymous one).
    pub(crate) fn shared(&self) -> Option<&Arc<IdentityBudget>> {
        self.shared.as_ref()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.budgets.counts.lock();
        if let Some(user) = self.user {
            if let Some((open, _)) = counts.identities.get_mut(&user) {
                *open -= 1;
                if *open == 0 {
                    counts.identities.remove(&user);
                }
            }
        }
        if let Some(ip) = self.ip {
            if let Some(open) = counts.ips.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    counts.ips.remove(&ip);
                }
            }
        }
    }
}

/// One connection's budget, as its session enforces it.
#[derive(Debug, Clone)]
pub(crate) struct SessionBudget {
    /// Subscriptions the connection may hold at once.
    pub(crate) max_subscriptions: usize,
    /// Of those, subscriptions whose filter scans text.
    pub(crate) max_scanning_subscriptions: usize,
    /// The largest reply frame, in bytes.
    pub(crate) max_reply_bytes: usize,
    /// Presence topics and channels, and presence meta.
    pub(crate) live: LiveLimits,
    db: Arc<Semaphore>,
    identity_db: Option<Arc<Semaphore>>,
}

impl Default for SessionBudget {
    fn default() -> Self {
        SessionBudget::new(256, 4 << 20, 2, None)
    }
}

/// How much presence and channel state one connection may hold.
#[derive(Debug, Clone)]
pub(crate) struct LiveLimits {
    /// Presence topics joined at once.
    pub(crate) max_topics: usize,
    /// Channels subscribed at once.
    pub(crate) max_channels: usize,
    /// A member's meta object, in bytes of JSON: every member of the topic
    /// holds a copy and is sent each change.
    pub(crate) max_meta_bytes: usize,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits { max_topics: 32, max_channels: 64, max_meta_bytes: 1024 }
    }
}

/// A turn at the database: held while a request reads or writes.
#[derive(Debug)]
pub(crate) struct DbTurn {
    _connection: Option<OwnedSemaphorePermit>,
    _identity: Option<OwnedSemaphorePermit>,
}

impl SessionBudget {
    /// `db_turns` requests of the connection may use the database at once,
    /// and no more than the identity's shared turns allow.
    pub(crate) fn new(
        max_subscriptions: usize,
        max_reply_bytes: usize,
        db_turns: usize,
        identity: Option<&IdentityBudget>,
    ) -> Self {
        SessionBudget {
            max_subscriptions,
            max_scanning_subscriptions: max_subscriptions,
            max_reply_bytes,
            live: LiveLimits::default(),
            db: Arc::new(Semaphore::new(db_turns.max(1))),
            identity_db: identity.map(|i| i.db.clone()),
        }
    }

    /// At most `limit` of the subscriptions may scan text.
    pub(crate) fn scanning(mut self, limit: usize) -> Self {
        self.max_scanning_subscriptions = limit;
        self
    }

    /// Bounds presence and channels as `live` says.
    pub(crate) fn live(mut self, live: LiveLimits) -> Self {
        self.live = live;
        self
    }

    /// Waits for a turn at the database, in arrival order. The connection's
    /// own turn is taken first, so one connection queues at most its share
    /// of waiters on the identity's turns.
    pub(crate) async fn db_turn(&self) -> DbTurn {
        // The semaphores are never closed, so acquiring cannot fail.
        let connection = self.db.clone().acquire_owned().await.ok();
        let identity = match &self.identity_db {
            Some(shared) => shared.clone().acquire_owned().await.ok(),
            None => None,
        };
        DbTurn { _connection: connection, _identity: identity }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SharedLimits {
        SharedLimits {
            connections_per_identity: 2,
            connections_per_ip: 3,
            identity_per_second: 0,
            identity_burst: 1,
            identity_db_turns: 1,
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_says_when_to_retry() {
        let bucket = TokenBucket::new(10, 3);
        assert!((0..3).all(|_| bucket.take().is_ok()));
        let wait = bucket.take().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        bucket.give_back();
        assert!(bucket.take().is_ok());
        assert!(TokenBucket::new(0, 0).take().is_ok(), "a rate of 0 is no limit");
    }

    #[test]
    fn an_empty_identity_bucket_refunds_the_connection_token() {
        let (connection, identity) = (TokenBucket::new(1, 1), TokenBucket::new(1, 1));
        assert!(take_tokens(&connection, Some(&identity)).is_ok());
        let other = TokenBucket::new(1, 1);
        let e = take_tokens(&other, Some(&identity)).unwrap_err();
        assert!(matches!(e, Error::RateLimited { retry_after_ms } if retry_after_ms > 0), "{e:?}");
        assert!(other.take().is_ok(), "the connection's token was given back");
    }

    #[test]
    fn connections_are_counted_per_identity_and_address_until_dropped() {
        let budgets = Arc::new(Budgets::new(limits()));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let user = Identity::user(7);
        let a = budgets.admit(&user, Some(ip)).unwrap();
        let b = budgets.admit(&user, Some(ip)).unwrap();
        assert_eq!(budgets.admit(&user, Some([10, 0, 0, 2].into())).unwrap_err(), Refusal::Identity(2));
        assert!(Arc::ptr_eq(a.shared().unwrap(), b.shared().unwrap()), "one identity, one shared budget");
        // Anonymous connections count per address only.
        let c = budgets.admit(&Identity::anonymous(), Some(ip)).unwrap();
        assert!(c.shared().is_none());
        assert_eq!(budgets.admit(&Identity::anonymous(), Some(ip)).unwrap_err(), Refusal::Address(3));
        drop(a);
        assert_eq!(budgets.open_for(7), 1);
        let _d = budgets.admit(&user, Some(ip)).unwrap();
        drop((b, c, _d));
        assert_eq!(budgets.open_for(7), 0);
        assert!(budgets.counts.lock().ips.is_empty() && budgets.counts.lock().identities.is_empty());
    }

    #[tokio::test]
    async fn database_turns_are_shared_by_an_identitys_connections() {
        let budgets = Arc::new(Budgets::new(limits()));
        let user = Identity::user(1);
        let (a, b) = (budgets.admit(&user, None).unwrap(), budgets.admit(&user, None).unwrap());
        let one = SessionBudget::new(1, 1, 2, a.shared().map(|s| &**s));
        let two = SessionBudget::new(1, 1, 2, b.shared().map(|s| &**s));
        let turn = one.db_turn().await;
        let waiting = tokio::spawn(async move { two.db_turn().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the identity's one turn is taken");
        drop(turn);
        waiting.await.unwrap();
    }
}
