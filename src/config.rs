//! [`ConnectionConfig`]: every limit and timing of a connection, and the
//! budgets that keep one client from starving the others, with their
//! defaults, in one place (`docs/security.md` lists the same).

use std::time::Duration;

/// Limits and timings of connections, and the budgets that keep one
/// client (one connection, one identity, one address) from starving the
/// others. `docs/security.md` lists them with their defaults. Build it with
/// `..ConnectionConfig::default()`: fields may be added.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Frames queued for a client before it is dropped as a slow consumer
    /// (close code 4008).
    pub queue_capacity: usize,
    /// Bytes queued for a client (replies and events it has not been sent
    /// yet) before it is dropped as a slow consumer (4008). A subscription
    /// catching up from history waits for room instead. Default 8 MiB.
    pub queue_bytes: usize,
    /// The largest reply (`get_list`, `get_single`, a custom verb, a
    /// `subscribe` snapshot); a larger one is refused with
    /// `reply_too_large` and not queued. At most `queue_bytes`. Default 4 MiB.
    pub max_reply_bytes: usize,
    /// Frames larger than this get a `frame_too_large` error reply.
    pub max_frame_bytes: usize,
    /// Frames larger than this close the connection (code 1009), since they
    /// must not even be buffered. At least `max_frame_bytes`.
    pub hard_frame_bytes: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long the client may stay silent (no frame, no pong) before it is
    /// closed (code 4001).
    pub idle_timeout: Duration,
    /// Requests one connection may have in progress; further frames wait.
    pub max_in_flight: usize,
    /// Subscriptions one connection may hold; more are refused with
    /// `too_many_subscriptions`. Default 256.
    pub max_subscriptions: usize,
    /// Of those, subscriptions whose filter scans text (`contains`, or any
    /// case-insensitive lookup: their cost grows with the text they read,
    /// and they share the fan-out's lane workers); more are refused with
    /// `too_many_subscriptions`. Default 16.
    pub max_scanning_subscriptions: usize,
    /// Requests of one connection that may use the database at once; the
    /// others wait their turn. `None` (the default): a quarter of the read
    /// pool, at least 1 (2 of 8).
    pub max_db_requests: Option<usize>,
    /// The same across all connections of one signed-in identity. `None`
    /// (the default): half the read pool, at least 1 (4 of 8).
    pub max_db_requests_per_identity: Option<usize>,
    /// Requests (text or binary frames; not pings or pongs) one connection
    /// may send per second, on average; over it a request is answered
    /// `rate_limited` and not run. 0: no limit. Default 200.
    pub requests_per_second: u32,
    /// How many requests a connection may send at once above its rate. Default 400.
    pub request_burst: u32,
    /// Requests per second across all connections of one signed-in identity
    /// (anonymous connections have only their own). 0: no limit. Default 500.
    pub identity_requests_per_second: u32,
    /// The identity's burst. Default 1000.
    pub identity_request_burst: u32,
    /// Open connections per signed-in identity; more are refused at the
    /// upgrade with HTTP 429. Default 64.
    pub max_connections_per_identity: usize,
    /// Open connections per remote IP address (anonymous or not); more are
    /// refused at the upgrade with HTTP 429. Default 256.
    pub max_connections_per_ip: usize,
    /// Presence topics one connection may join at once; more are refused
    /// with `too_many_topics`. Default 32.
    pub max_presence_topics: usize,
    /// Channels one connection may subscribe to at once; more are refused
    /// with `too_many_topics`. Default 64.
    pub max_channels: usize,
    /// The largest presence meta object, in bytes of JSON (every member of
    /// the topic is sent it, and each process holds it); larger is
    /// `bad_args`. Default 1 KiB.
    pub max_presence_meta_bytes: usize,
    /// The largest channel message or server push, in bytes of JSON;
    /// larger is `bad_args` (and an error for server code). Default 64 KiB.
    pub max_message_bytes: usize,
    /// The socket's read buffer. Small keeps idle connections cheap; large
    /// frames are still read, in more system calls.
    pub read_buffer_bytes: usize,
    /// The write buffer (frame headers, small frames) a connection keeps
    /// between bursts; a burst may use more, which is freed once written.
    pub write_buffer_bytes: usize,
    /// Write coalescing: a connection that took a burst of events at once
    /// (8 or more: it is behind its stream) waits until this long after
    /// that write before its next, so the events arriving meanwhile go out
    /// in one write instead of many (fewer system calls and wake-ups for the
    /// server and the client). A connection that keeps up is never held,
    /// nor is a reply, nor a queue a quarter full. Zero: never hold.
    /// Default 20 ms.
    pub write_coalesce: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            queue_capacity: 1024,
            queue_bytes: 8 << 20,
            max_reply_bytes: 4 << 20,
            max_frame_bytes: 1 << 20,
            hard_frame_bytes: 16 << 20,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            max_in_flight: 32,
            max_subscriptions: 256,
            max_scanning_subscriptions: 16,
            max_db_requests: None,
            max_db_requests_per_identity: None,
            requests_per_second: 200,
            request_burst: 400,
            identity_requests_per_second: 500,
            identity_request_burst: 1000,
            max_connections_per_identity: 64,
            max_connections_per_ip: 256,
            max_presence_topics: 32,
            max_channels: 64,
            max_presence_meta_bytes: 1024,
            max_message_bytes: 64 * 1024,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            write_coalesce: Duration::from_millis(20),
        }
    }
}
