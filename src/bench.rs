//! Doors into internals for the repository's own benchmarks
//! (`benches/matching.rs`, `examples/hot_paths.rs`, `examples/window_refill.rs`).
//! Not part of the API: no stability promised.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::change::Change;
use crate::fanout::registry::Registry;
use crate::fanout::sink::{Nowhere, Outbound, Sink};
use crate::fanout::subscription::Subscription;
use crate::fanout::RouteInfo;
use crate::filter::Filter;
use crate::model::Model;
use crate::outbox::{wire_size, Outbox};
use crate::store::{Db, WriteTx};
use crate::wire::Wire;

/// A registry of subscriptions to one model, for measuring matching.
pub struct Matcher {
    info: RouteInfo,
    registry: Registry,
    sink: Arc<dyn Sink>,
    next_id: u64,
}

impl Matcher {
    /// An empty registry for `M`'s route.
    pub fn new<M: Model>() -> Self {
        Matcher { info: RouteInfo::of::<M>(), registry: Registry::default(), sink: Arc::new(Nowhere), next_id: 0 }
    }

    /// Adds a subscription to `filter`.
    pub fn subscribe(&mut self, filter: Filter) {
        self.next_id += 1;
        self.registry.add(Arc::new(Subscription::new(self.next_id, self.info.route, self.sink.clone())), filter);
    }

    /// How many subscription groups `change` concerns.
    pub fn matching_groups(&self, change: &Change) -> usize {
        let mut groups = 0;
        self.registry.for_each_match(change, |_, _| groups += 1);
        groups
    }

    /// How many subscriptions `change` concerns.
    pub fn matching_members(&self, change: &Change) -> usize {
        let mut members = 0;
        self.registry.for_each_match(change, |group, _| members += group.members().len());
        members
    }
}

/// Live subscriptions to one filter, each behind a connection's real
/// outbox and wire: [`Deliveries::deliver`] does what a change costs from
/// the fan-out to the socket's `writev`, which writes nowhere.
pub struct Deliveries {
    registry: Registry,
    connections: Vec<(Arc<Outbox>, Wire)>,
    batch: VecDeque<Outbound>,
}

impl Deliveries {
    /// `subscribers` live subscriptions of `M`'s route to `filter`, one per connection.
    pub fn new<M: Model>(subscribers: usize, filter: Filter) -> Self {
        let route = RouteInfo::of::<M>().route;
        let mut registry = Registry::default();
        let mut connections = Vec::with_capacity(subscribers);
        for id in 0..subscribers as u64 {
            let outbox = Outbox::new(1024, 8 << 20, Arc::new(AtomicUsize::new(0)));
            let sub = Arc::new(Subscription::new(id + 1, route, outbox.clone()));
            sub.fed_after(Some(0));
            sub.next_step(0, 0);
            registry.add(sub, filter.clone());
            connections.push((outbox, Wire::new(16 << 10)));
        }
        Deliveries { registry, connections, batch: VecDeque::new() }
    }

    /// Fans `change` out, then does every connection's share: takes its
    /// queue, writes the frames and hands them to a socket that takes
    /// everything. Returns the bytes written.
    pub fn deliver(&mut self, change: &Arc<Change>) -> usize {
        self.registry.fan_out(change);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut written = 0;
        for (outbox, wire) in &mut self.connections {
            outbox.take(&mut self.batch);
            let mut bytes = 0;
            for frame in self.batch.drain(..) {
                bytes += wire_size(&frame);
                match frame {
                    Outbound::Frame(text) => wire.text(text),
                    Outbound::Event { sub, seq, event } => {
                        wire.event(sub, seq, event.pos, event.route, event.action, &event.data)
                    }
                }
            }
            let mut socket = Discard(0);
            let _ = wire.poll_write(&mut socket, &mut cx);
            outbox.release(bytes);
            written += socket.0;
        }
        written
    }
}

/// A socket that takes every byte at once.
struct Discard(usize);

impl tokio::io::AsyncWrite for Discard {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.0 += buf.len();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let n = bufs.iter().map(|b| b.len()).sum();
        self.0 += n;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs `f` in a write transaction on the calling thread, as
/// [`Db::write`] does on the blocking pool: for counting one write's
/// instructions without the runtime's.
pub fn write_blocking<T, E, F>(db: &Db, f: F) -> Result<T, E>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
    E: From<crate::error::Error> + Send + 'static,
    T: Send + 'static,
{
    db.write_blocking(f)
}

/// Reads the rows of `windows` (a filter, `order_by` as a subscribe takes
/// it, a limit) as one round of a route's window refresher does: identical
/// windows once, all in one read transaction. Returns how many rows it read.
pub async fn window_round<M: crate::store::Persist>(
    db: &crate::Db,
    windows: &[(serde_json::Value, serde_json::Value, usize)],
) -> Result<usize, crate::Error> {
    use crate::fanout::window::WindowQuery;
    let dialect = db.dialect();
    let mut queries: Vec<WindowQuery> = Vec::new();
    for (filter, order_by, limit) in windows {
        let filter = crate::sql::parse_filter(M::info(), filter, crate::filter::FieldAccess::All, dialect)
            .map_err(crate::Error::BadFilter)?;
        let order_by =
            crate::route::args::Args(&serde_json::json!({ "order_by": order_by })).order_by::<M>(dialect, 16)?;
        let fragment = crate::sql::render(&filter, dialect);
        let query = WindowQuery { where_sql: fragment.sql, binds: fragment.binds, order_by, limit: *limit };
        if !queries.contains(&query) {
            queries.push(query);
        }
    }
    let (_, rows) = db
        .snapshot(M::ROUTE, move |conn| {
            let refs: Vec<&WindowQuery> = queries.iter().collect();
            crate::route::window::load_windows::<M>(conn, &refs)
        })
        .await?;
    Ok(rows.iter().map(Vec::len).sum())
}
