//! Brokers carry committed changes between the processes that serve one
//! database. They implement the fan-out's [`Broker`] trait and feed other
//! processes' changes to this one through its
//! [`Upstream`](crate::fanout::Upstream); they never
//! touch the store (what a broker loses, the hub reads from history).
//!
//! - [`InProcess`], the default: one process, nobody to tell;
//! - [`redis::RedisBroker`]: Redis pub/sub, one channel per route;
//! - [`presence::RedisLink`]: presence and channel messages between
//!   processes, on one more Redis channel, with heartbeats.

pub(crate) mod presence;
pub(crate) mod redis;

use futures_util::future::BoxFuture;

use crate::change::Change;
use crate::fanout::Broker;

/// One process: nobody to tell.
#[derive(Debug, Default)]
pub(crate) struct InProcess;

impl Broker for InProcess {
    fn publish(&self, _changes: &[Change]) {}

    fn listen(&self, _route: &'static str) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn connects_processes(&self) -> bool {
        false
    }
}
