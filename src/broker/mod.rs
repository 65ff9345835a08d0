//! Brokers carry committed changes between server processes.
//!
//! Within a process, the store hands every commit to the [`Hub`](crate::hub::Hub),
//! which orders changes and fans them out. A broker's job is only the other
//! processes: [`LocalBroker`], the embedded default, has none; the Redis
//! broker ([`redis::RedisBroker`]) publishes each commit to the processes
//! that watch its route and feeds their hubs with theirs.

pub mod redis;

use futures_util::future::BoxFuture;

use crate::change::Change;

/// Sends committed changes to other processes.
pub trait Broker: Send + Sync + 'static {
    /// Called after each commit with its changes, in this process's commit
    /// order. Must not block.
    fn publish(&self, changes: &[Change]);

    /// Resolves once changes of `route` from other processes reach this
    /// process (a subscription awaits it before reading its snapshot).
    fn listen(&self, route: &'static str) -> BoxFuture<'static, ()> {
        let _ = route;
        Box::pin(std::future::ready(()))
    }
}

/// One process, nobody to tell.
#[derive(Debug, Default)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish(&self, _changes: &[Change]) {}
}
