//! Errors, and the one place where each maps to a protocol error code.
//! (Database errors become [`Error`]s in [`crate::sql`].)
//!
//! Every failure a client can cause becomes an [`Error`]; the connection turns
//! it into an error reply with [`Error::code`], a message, and per-field
//! messages where they apply. `docs/protocol.md` lists the same codes.

use std::collections::BTreeMap;

/// Messages per field name, as sent in an error reply's `fields`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One error on one field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    /// Adds a message for `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// A one-line summary, for messages and logs.
    pub fn summary(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}: {}", v.join("; "))).collect::<Vec<_>>().join(", ")
    }
}

/// Everything that can go wrong with a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The frame is not valid JSON, or not a JSON object of the request shape.
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    /// The frame is larger than the configured limit.
    #[error("frame of {size} bytes is over the limit of {limit} bytes")]
    FrameTooLarge {
        /// The frame's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// No route has this name.
    #[error("unknown route {0:?}")]
    UnknownRoute(String),
    /// The route has no such verb.
    #[error("route {route:?} has no verb {verb:?}")]
    UnknownVerb {
        /// The route.
        route: String,
        /// The verb asked for.
        verb: String,
    },
    /// Arguments are missing or of the wrong type.
    #[error("bad arguments: {}", .0.summary())]
    BadArgs(FieldErrors),
    /// A filter names an unknown field or lookup, or has a value of the wrong type.
    #[error("bad filter: {}", .0.summary())]
    BadFilter(FieldErrors),
    /// The data names fields that do not exist.
    #[error("unknown fields: {}", .0.summary())]
    UnknownField(FieldErrors),
    /// The data writes fields clients may not write.
    #[error("read-only fields: {}", .0.summary())]
    ReadOnlyField(FieldErrors),
    /// The data has values of the wrong type, or is missing required fields.
    #[error("invalid data: {}", .0.summary())]
    InvalidData(FieldErrors),
    /// The route's validation hook refused the data.
    #[error("validation failed: {}", .0.summary())]
    ValidationFailed(FieldErrors),
    /// No such object (or none the caller may see).
    #[error("{route} {id} not found")]
    NotFound {
        /// The route.
        route: String,
        /// The id asked for.
        id: String,
    },
    /// The caller is not allowed to do this, or the result would leave its scope.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The verb needs an authenticated identity.
    #[error("login required")]
    LoginRequired,
    /// The database refused the write (a unique or foreign-key constraint).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The subscription does not exist on this connection.
    #[error("no subscription {0} on this connection")]
    UnknownSubscription(u64),
    /// A request would return more rows than the route allows.
    #[error("too many rows: {0}")]
    TooManyRows(String),
    /// `resume` cannot replay what the client missed; it must subscribe afresh.
    #[error("cannot resume: {0}")]
    CannotResume(String),
    /// The reply would be larger than the connection allows; it was not sent.
    #[error(
        "reply of {size} bytes is over the limit of {limit} bytes; ask for less (a smaller `limit`, a narrower filter)"
    )]
    ReplyTooLarge {
        /// The reply's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The connection holds as many subscriptions as it may.
    #[error("this connection already holds {limit} subscriptions; unsubscribe from one first")]
    TooManySubscriptions {
        /// The configured limit.
        limit: usize,
    },
    /// The connection holds as many subscriptions whose filter scans text
    /// (`contains`, case-insensitive lookups) as it may.
    #[error(
        "this connection already holds {limit} subscriptions whose filters scan text \
         (contains or case-insensitive lookups); unsubscribe from one, or filter on exact values"
    )]
    TooManyScanningSubscriptions {
        /// The configured limit.
        limit: usize,
    },
    /// The connection has joined as many presence topics, or subscribed to
    /// as many channels, as it may.
    #[error("this connection already holds {limit} {what}; leave one first")]
    TooManyTopics {
        /// "presence topics" or "channels".
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// The client sent requests faster than it may; this one was not run.
    #[error("too many requests; retry in {retry_after_ms} ms")]
    RateLimited {
        /// When a retry will be admitted.
        retry_after_ms: u64,
    },
    /// A dependency (the database) is busy or away; retrying later may succeed.
    /// Details are logged, not sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unavailable dependency; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The protocol error code. This is the only mapping from errors to codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedFrame(_) => "malformed_frame",
            Error::FrameTooLarge { .. } => "frame_too_large",
            Error::UnknownRoute(_) => "unknown_route",
            Error::UnknownVerb { .. } => "unknown_verb",
            Error::BadArgs(_) => "bad_args",
            Error::BadFilter(_) => "bad_filter",
            Error::UnknownField(_) => "unknown_field",
            Error::ReadOnlyField(_) => "read_only_field",
            Error::InvalidData(_) => "invalid_data",
            Error::ValidationFailed(_) => "validation_failed",
            Error::NotFound { .. } => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::LoginRequired => "login_required",
            Error::Conflict(_) => "conflict",
            Error::UnknownSubscription(_) => "unknown_subscription",
            Error::TooManyRows(_) => "too_many_rows",
            Error::CannotResume(_) => "cannot_resume",
            Error::ReplyTooLarge { .. } => "reply_too_large",
            Error::TooManySubscriptions { .. } | Error::TooManyScanningSubscriptions { .. } => "too_many_subscriptions",
            Error::TooManyTopics { .. } => "too_many_topics",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Per-field messages, where the error has them.
    pub fn fields(&self) -> Option<&FieldErrors> {
        match self {
            Error::BadArgs(f)
            | Error::BadFilter(f)
            | Error::UnknownField(f)
            | Error::ReadOnlyField(f)
            | Error::InvalidData(f)
            | Error::ValidationFailed(f) => Some(f),
            _ => None,
        }
    }

    /// The message sent to the client. Internal details stay in the log.
    pub fn client_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error".into(),
            Error::Unavailable(_) => "the database is busy or unreachable; retry later".into(),
            other => other.to_string(),
        }
    }

    /// A `bad_args` error on one argument.
    pub fn bad_arg(field: &str, message: impl Into<String>) -> Self {
        Error::BadArgs(FieldErrors::single(field, message))
    }

    /// The error reply body: `{code, message, fields?}`, and the numbers a
    /// client acts on where the error has them (`size` and `limit`,
    /// `retry_after_ms`), so it need not parse the message.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "code": self.code(), "message": self.client_message() });
        if let Some(fields) = self.fields() {
            body["fields"] = serde_json::to_value(fields).unwrap_or_default();
        }
        match self {
            Error::ReplyTooLarge { size, limit } => {
                body["size"] = (*size).into();
                body["limit"] = (*limit).into();
            }
            Error::TooManySubscriptions { limit } | Error::TooManyTopics { limit, .. } => {
                body["limit"] = (*limit).into()
            }
            Error::TooManyScanningSubscriptions { limit } => {
                body["limit"] = (*limit).into();
                body["scanning"] = true.into();
            }
            Error::RateLimited { retry_after_ms } => body["retry_after_ms"] = (*retry_after_ms).into(),
            _ => {}
        }
        body
    }
}

/// The result type of everything that answers a request.
pub type Result<T, E = Error> = std::result::Result<T, E>;
