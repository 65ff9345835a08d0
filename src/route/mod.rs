//! A [`Route`] exposes one model to clients: the standard verbs, custom
//! verbs, and the hooks that decide what each identity may see and write.
//!
//! The scope is a filter like any other, so it is applied the same way to SQL
//! reads and to every delivered change: a client never sees a row outside it,
//! by any verb or event.
//!
//! - this module: the [`Route`] builder and the dispatch of a request;
//! - `args.rs`: typed access to a request's arguments;
//! - `verbs.rs`: the reads and writes;
//! - `keyed.rs`: writes with an idempotency key;
//! - `subscribe.rs`: `subscribe` and `resume`;
//! - `window.rs`: `subscribe` with `limit`, an ordered live window.

pub(crate) mod args;
mod keyed;
mod subscribe;
mod verbs;
pub(crate) mod window;

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::auth::Identity;
use crate::error::{Error, FieldErrors};
use crate::fanout::Fanout;
use crate::filter::{FieldAccess, Filter};
use crate::model::Model;
use crate::protocol::Request;
use crate::record::{Patch, WriteAccess};
use crate::session::Session;
use crate::sql::{self, Dialect};
use crate::store::{Db, KeyClaim, Persist};
use args::Args;

type ScopeFn = Arc<dyn Fn(&Identity) -> Option<serde_json::Value> + Send + Sync>;
type InitialFn = Arc<dyn Fn(&Identity) -> serde_json::Value + Send + Sync>;
type ValidateFn<M> = Arc<dyn Fn(&Validation<'_, M>) -> Result<(), FieldErrors> + Send + Sync>;
type OnCreateFn<M> = Arc<dyn Fn(&mut crate::store::WriteTx<'_>, &Identity, &M) -> Result<(), Error> + Send + Sync>;
type OnDeleteFn<M> = OnCreateFn<M>;
type PermissionFn = Arc<dyn Fn(&Identity, &str) -> Result<(), Error> + Send + Sync>;
type VerbFn =
    Arc<dyn Fn(VerbContext, serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, Error>> + Send + Sync>;

/// The standard verbs that write.
pub const WRITE_VERBS: &[&str] = &["create", "update", "delete"];

/// The standard verbs.
pub const STANDARD_VERBS: &[&str] =
    &["get_single", "get_list", "create", "update", "delete", "subscribe", "resume", "unsubscribe"];

/// What a validation hook sees: the row as it would be committed, and the
/// row before (for an update). Returning errors rolls the write back.
#[derive(Debug)]
pub struct Validation<'a, M> {
    /// Who is writing.
    pub identity: &'a Identity,
    /// The row before an update; `None` on create.
    pub old: Option<&'a M>,
    /// The row as it would be committed.
    pub new: &'a M,
}

/// What a custom verb handler gets.
#[derive(Debug, Clone)]
pub struct VerbContext {
    /// The database; writes through [`Db::write`] are published as usual.
    pub db: Db,
    /// Who called.
    pub identity: Identity,
    /// The caller's scope on this route: restrict what the verb touches to it.
    pub scope: Filter,
    /// The request's idempotency key, taken by the first [`VerbContext::write`].
    key: Arc<parking_lot::Mutex<Option<KeyClaim>>>,
}

impl VerbContext {
    /// A write transaction like [`Db::write`] that also honours the
    /// request's key (of a verb added with [`Route::write_verb`]): the key
    /// is claimed and the closure's value stored as the reply in the same
    /// transaction, and a retry with the same key gets that value without
    /// running the closure. Return that value from the verb, so the first
    /// call and its retries are answered alike. Only the first `write` of a
    /// request takes the key.
    pub async fn write<F>(&self, f: F) -> Result<serde_json::Value, Error>
    where
        F: FnOnce(&mut crate::store::WriteTx<'_>) -> Result<serde_json::Value, Error> + Send + 'static,
    {
        let claim = self.key.lock().take();
        keyed::write(&self.db, claim, f).await
    }
}

/// Sizes a route allows. Build it with `..Limits::default()`: fields may
/// be added.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `get_list` page size when the client gives no `limit`.
    pub default_page: usize,
    /// The largest `limit` a client may ask for.
    pub max_page: usize,
    /// The most rows a `subscribe` snapshot may hold; larger ones are refused
    /// with `too_many_rows` rather than silently cut.
    pub max_snapshot: usize,
    /// The most fields an `order_by` may name (default 16).
    pub max_order_by: usize,
    /// The most keys a client's filter may have, counting those nested in
    /// `or`, `and` and `not` (default 64).
    pub max_filter_terms: usize,
    /// How deeply a client's filter may nest `or`, `and` and `not` (default
    /// 8): a filter object inside one of them is one level deeper.
    pub max_filter_depth: usize,
    /// The most bytes of JSON a client's filter may take (default 16 KiB): a
    /// subscription keeps its filter in memory as long as it lives.
    pub max_filter_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_page: 100,
            max_page: 1000,
            max_snapshot: 10_000,
            max_order_by: 16,
            max_filter_terms: 64,
            max_filter_depth: 8,
            max_filter_bytes: 16 * 1024,
        }
    }
}

/// One model's route.
pub struct Route<M: Model> {
    scope: Option<ScopeFn>,
    initial: Option<InitialFn>,
    validate: Option<ValidateFn<M>>,
    on_create: Option<OnCreateFn<M>>,
    on_delete: Option<OnDeleteFn<M>>,
    permission: Option<PermissionFn>,
    login_required: Vec<String>,
    verbs: HashMap<String, VerbFn>,
    /// Custom verbs that write (ordered per connection, keyed).
    writes: HashSet<String>,
    limits: Limits,
    /// The refresher of this route's ordered windows, started by the first.
    windows: std::sync::OnceLock<Arc<crate::fanout::window::Refresher>>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Default for Route<M> {
    fn default() -> Self {
        Route {
            scope: None,
            initial: None,
            validate: None,
            on_create: None,
            on_delete: None,
            permission: None,
            login_required: Vec::new(),
            verbs: HashMap::new(),
            writes: HashSet::new(),
            limits: Limits::default(),
            windows: std::sync::OnceLock::new(),
            _model: PhantomData,
        }
    }
}

impl<M: Persist> Route<M> {
    /// A route for `M` under the name `M::ROUTE`, open to every connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restricts what each identity may see and write, as a filter in the
    /// same syntax clients use (and free to name unpublished fields).
    /// Returning `None` denies the identity the whole route.
    pub fn scope(mut self, f: impl Fn(&Identity) -> Option<serde_json::Value> + Send + Sync + 'static) -> Self {
        self.scope = Some(Arc::new(f));
        self
    }

    /// Server-side values set on every create, over whatever the client sent
    /// (like SwampDragon's `get_initial`). Returns a JSON object of fields.
    pub fn initial(mut self, f: impl Fn(&Identity) -> serde_json::Value + Send + Sync + 'static) -> Self {
        self.initial = Some(Arc::new(f));
        self
    }

    /// Checks a create or update before it commits; errors roll it back and
    /// reach the client as `validation_failed` with per-field messages.
    pub fn validate(
        mut self,
        f: impl Fn(&Validation<'_, M>) -> Result<(), FieldErrors> + Send + Sync + 'static,
    ) -> Self {
        self.validate = Some(Arc::new(f));
        self
    }

    /// Runs after a client's `create` inserted its row, in the same
    /// transaction and before the row is checked against the scope: the
    /// place to write what makes the row the creator's (a list's first
    /// membership, when the scope is `{"members__user_id": ..}`). An error
    /// rolls the whole create back.
    pub fn on_create(
        mut self,
        f: impl Fn(&mut crate::store::WriteTx<'_>, &Identity, &M) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        self.on_create = Some(Arc::new(f));
        self
    }

    /// Runs before a client's `delete` removes its row (found in the
    /// caller's scope and locked), in the same transaction: the place to
    /// refuse a delete by who is asking (a member who is not the owner) or
    /// to delete what refers to the row (a list's memberships). An error
    /// rolls the whole delete back and is the reply.
    pub fn on_delete(
        mut self,
        f: impl Fn(&mut crate::store::WriteTx<'_>, &Identity, &M) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        self.on_delete = Some(Arc::new(f));
        self
    }

    /// Decides per identity and verb whether a request may run.
    pub fn permission(mut self, f: impl Fn(&Identity, &str) -> Result<(), Error> + Send + Sync + 'static) -> Self {
        self.permission = Some(Arc::new(f));
        self
    }

    /// These verbs answer `login_required` to anonymous identities.
    pub fn login_required(mut self, verbs: &[&str]) -> Self {
        self.login_required.extend(verbs.iter().map(|v| v.to_string()));
        self
    }

    /// Adds a custom verb.
    pub fn verb<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(VerbContext, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, Error>> + Send + 'static,
    {
        assert!(!STANDARD_VERBS.contains(&name), "custom verb {name:?} would shadow a standard verb");
        self.verbs.insert(name.to_owned(), Arc::new(move |cx, args| Box::pin(handler(cx, args))));
        self
    }

    /// Adds a custom verb that writes: like [`Route::verb`], and it applies
    /// in the order each connection sent it among that connection's other
    /// writes, and may carry an idempotency key (honoured by
    /// [`VerbContext::write`]).
    pub fn write_verb<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(VerbContext, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, Error>> + Send + 'static,
    {
        self = self.verb(name, handler);
        self.writes.insert(name.to_owned());
        self
    }

    /// Changes the page and snapshot limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn check_permission(&self, identity: &Identity, verb: &str) -> Result<(), Error> {
        if identity.is_anonymous() && self.login_required.iter().any(|v| v == verb) {
            return Err(Error::LoginRequired);
        }
        match &self.permission {
            Some(permit) => permit(identity, verb),
            None => Ok(()),
        }
    }

    /// The identity's scope as a filter.
    fn scope_for(&self, identity: &Identity, dialect: Dialect) -> Result<Filter, Error> {
        let Some(scope) = &self.scope else { return Ok(Filter::all()) };
        match scope(identity) {
            None => Err(Error::Forbidden(format!("no access to {}", M::ROUTE))),
            Some(json) => sql::parse_filter(M::info(), &json, FieldAccess::All, dialect).map_err(|e| {
                Error::Internal(format!("scope of route {} is not a valid filter: {}", M::ROUTE, e.summary()))
            }),
        }
    }

    fn initial_for(&self, identity: &Identity) -> Result<Option<Patch>, Error> {
        let Some(initial) = &self.initial else { return Ok(None) };
        Patch::parse(M::FIELDS, &initial(identity), WriteAccess::Server)
            .map(Some)
            .map_err(|e| Error::Internal(format!("initial values of route {} are invalid: {e}", M::ROUTE)))
    }
}

/// A route with its model type erased, as the router holds it.
pub(crate) trait RouteHandler: Send + Sync {
    /// Runs one request. `Ok(None)` means the handler queued its reply itself.
    fn handle<'a>(
        &'a self,
        db: &'a Db,
        fanout: &'a Fanout,
        session: &'a Session,
        request: Request,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, Error>>;

    /// Whether `verb` writes.
    fn is_write(&self, verb: &str) -> bool;
}

impl<M: Persist> RouteHandler for Route<M> {
    fn is_write(&self, verb: &str) -> bool {
        WRITE_VERBS.contains(&verb) || self.writes.contains(verb)
    }

    fn handle<'a>(
        &'a self,
        db: &'a Db,
        fanout: &'a Fanout,
        session: &'a Session,
        request: Request,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, Error>> {
        Box::pin(async move {
            let identity = &session.identity;
            let verb = request.verb.as_str();
            if !STANDARD_VERBS.contains(&verb) && !self.verbs.contains_key(verb) {
                return Err(Error::UnknownVerb { route: M::ROUTE.to_owned(), verb: verb.to_owned() });
            }
            self.check_permission(identity, verb)?;
            let args = Args(&request.args);
            if verb == "unsubscribe" {
                args.reject_others(&["sub"])?;
                let sub = args.count("sub")?.ok_or_else(|| Error::bad_arg("sub", "is required"))? as u64;
                session.unsubscribe(sub)?;
                return Ok(Some(serde_json::json!({ "sub": sub })));
            }
            let scope = self.scope_for(identity, db.dialect())?;
            match verb {
                // These take their database turn for their read only, not
                // while they stream to the client.
                "subscribe" => {
                    self.subscribe(db, fanout, session, scope, &request).await?;
                    return Ok(None);
                }
                "resume" => {
                    self.resume(db, fanout, session, scope, &request).await?;
                    return Ok(None);
                }
                _ => {}
            }
            let _turn = session.db_turn().await;
            let key = request.key.as_ref().map(|key| KeyClaim {
                owner: KeyClaim::owner_of(identity.user_id()),
                key: key.clone(),
                request: format!("{} {verb}", M::ROUTE),
            });
            let data = match verb {
                "get_single" => self.get_single(db, scope, &args).await?,
                "get_list" => self.get_list(db, scope, &args).await?,
                "create" => self.create(db, identity, scope, &args, key).await?,
                "update" => self.update(db, identity, scope, &args, key).await?,
                "delete" => self.delete(db, identity, scope, &args, key).await?,
                custom => {
                    let handler = self.verbs[custom].clone();
                    let key = Arc::new(parking_lot::Mutex::new(key));
                    let cx = VerbContext { db: db.clone(), identity: identity.clone(), scope, key };
                    handler(cx, request.args.clone()).await?
                }
            };
            Ok(Some(data))
        })
    }
}
