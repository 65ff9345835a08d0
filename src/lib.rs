//! wyrmhole: realtime model sync over WebSockets.
//!
//! Derive [`Model`] on a Diesel model, expose it through a [`Route`] of a
//! [`Wyrmhole`] app, and clients can read it, write it and subscribe to
//! Django-style filters; every committed change reaches exactly the
//! subscriptions whose filter matches, after commit, in order, with nothing
//! lost between snapshot and stream.
//!
//! The crate is layered; each layer uses only the ones below it
//! (`tests/layers.rs` checks this):
//!
//! 1. the pure core, with no runtime, database or socket: [`model`],
//!    [`field`], [`value`], [`record`], [`change`], [`filter`], [`error`],
//!    [`protocol`], and the TypeScript declarations generated from models;
//! 2. [`sql`]: dialects, bound values, filters as SQL, `wyrm_upper`;
//! 3. [`store`]: the database, write transactions that number their changes
//!    and hand them to a [`store::CommitSink`], snapshots, history;
//! 4. `fanout`: the hub ordering each route's changes, the registry and
//!    its equality index, and the one subscription sequence; `presence`:
//!    the registries of presence members and channel subscribers;
//! 5. `broker`: carrying commits, presence and channel messages between
//!    processes (in-process, Redis);
//! 6. the app: [`route`], [`auth`], [`live`] (presence and channel verbs
//!    and their hooks), the router, the per-connection session
//!    with the order of its writes, and the budgets per connection, identity and address;
//! 7. the transport: the outbox, the connection and its settings, the
//!    origin check and CORS of the client files, the HTTP listener, metrics
//!    and health endpoints, the stop signal (shutdown and drain), the warp
//!    server, and the
//!    [`Wyrmhole`] builder that wires everything.

#![warn(missing_docs)]

// Lets the derive's `::wyrmhole::...` paths resolve inside this crate's own tests.
extern crate self as wyrmhole;

// 1. the pure core
pub mod change;
pub mod error;
pub mod field;
pub mod filter;
pub mod model;
pub mod protocol;
pub mod record;
pub mod relation;
pub(crate) mod typescript;
pub mod value;
// 2-3. SQL and the store
pub mod sql;
pub mod store;
// 4-5. fan-out and brokers
pub(crate) mod broker;
pub(crate) mod fanout;
pub(crate) mod presence;
// 6. the app layer
pub mod auth;
pub(crate) mod budget;
pub mod live;
pub mod route;
pub(crate) mod router;
pub(crate) mod session;
pub(crate) mod write_order;
// 7. the transport
pub(crate) mod app_core;
pub(crate) mod builder;
pub(crate) mod coalesce;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod cors;
pub(crate) mod health;
pub(crate) mod listener;
pub(crate) mod metrics;
pub(crate) mod origin;
pub(crate) mod outbox;
pub(crate) mod server;
pub(crate) mod socket;
pub(crate) mod stop;
pub(crate) mod wire;

#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod harness;

pub use auth::{AuthError, Identity, UpgradeRequest};
pub use builder::{BuildError, Builder, Wyrmhole};
pub use config::ConnectionConfig;
pub use error::{Error, FieldErrors};
pub use fanout::RouteStats;
pub use field::{FieldType, FieldValue, Storage};
pub use filter::Filter;
pub use listener::HttpConfig;
pub use live::ChannelAccess;
pub use model::{FieldDef, Model, Row};
pub use origin::Origins;
pub use relation::{ModelInfo, Relation, RelationKind};
pub use route::{Limits, Route, Validation, VerbContext};
pub use server::{remote_addr, Server};
pub use store::{Conn, Db, Persist, WriteTx};
pub use typescript::{typescript, TypeScript};
pub use value::{Value, ValueRef};
pub use wyrmhole_derive::Model;

/// Compiles the README's example as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
