//! wyrmhole: realtime model sync over WebSockets.
//!
//! Derive [`Model`] on a Diesel model, expose it through a [`Router`], and
//! clients can read it, write it and subscribe to Django-style filters; every
//! committed change reaches exactly the subscriptions whose filter matches,
//! after commit, in order, with nothing lost between snapshot and stream.
//!
//! The pieces, one module each:
//! - [`model`]: the trait `#[derive(Model)]` implements;
//! - [`filter`]: the filter language, evaluated in memory and as SQL;
//! - [`record`]: a row's JSON forms, published and written;
//! - [`store`]: the database (SQLite, or PostgreSQL with the `postgres`
//!   feature), write transactions that publish after commit;
//! - [`change`], [`hub`], [`broker`], [`registry`]: the fan-out of committed
//!   changes, ordered by position, shared between processes through Redis,
//!   to subscriptions found through an equality index;
//! - [`route`], [`router`], [`auth`]: verbs, hooks, identities;
//! - [`protocol`], [`connection`], [`server`]: the wire and the sockets.

#![warn(missing_docs)]

// Lets the derive's `::wyrmhole::...` paths resolve inside this crate's own tests.
extern crate self as wyrmhole;

pub mod auth;
pub mod broker;
pub mod change;
pub mod connection;
pub mod error;
pub mod filter;
pub mod hub;
pub mod model;
pub mod protocol;
pub mod record;
pub mod registry;
pub mod route;
pub mod router;
pub mod server;
pub mod store;

pub use auth::{AuthError, Identity, UpgradeRequest};
pub use connection::ConnectionConfig;
pub use error::{Error, FieldErrors};
pub use filter::Filter;
pub use model::{FieldDef, FieldType, FieldValue, Model, Row, Value, ValueRef};
pub use route::{Limits, Route, Validation, VerbContext};
pub use router::Router;
pub use server::{serve, serve_with, Server};
pub use store::{Conn, Db, Persist, WriteTx};
pub use wyrmhole_derive::Model;

/// Compiles the README's example as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
