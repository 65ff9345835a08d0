//! wyrmhole: realtime model sync over WebSockets.
//!
//! Derive [`Model`] on a Diesel model, expose it through a [`Router`], and
//! clients can read it, write it and subscribe to Django-style filters; every
//! committed change reaches exactly the subscriptions whose filter matches.

// Lets the derive's `::wyrmhole::...` paths resolve inside this crate's own tests.
extern crate self as wyrmhole;

pub mod error;
pub mod model;

pub use error::{Error, FieldErrors};
pub use model::{FieldDef, FieldType, FieldValue, Model, Row, Value, ValueRef};
pub use wyrmhole_derive::Model;
