//! A [`Route`] exposes one model to clients: the standard verbs, custom
//! verbs, and the hooks that decide what each identity may see and write.
//!
//! The scope is a filter like any other, so it is applied the same way to SQL
//! reads and to every delivered change: a client never sees a row outside it,
//! by any verb or event.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::auth::Identity;
use crate::connection::Session;
use crate::error::{Error, FieldErrors};
use crate::filter::sql::{quote_ident, Bind, Dialect};
use crate::filter::{FieldAccess, Filter};
use crate::model::{json_kind, FieldType, Model, Value};
use crate::protocol::{self, Request};
use crate::record::{self, Patch, WriteAccess};
use crate::store::{columns, get_by_id, history_since, load, Conn, Db, Lock, Persist};

type ScopeFn = Arc<dyn Fn(&Identity) -> Option<serde_json::Value> + Send + Sync>;
type InitialFn = Arc<dyn Fn(&Identity) -> serde_json::Value + Send + Sync>;
type ValidateFn<M> = Arc<dyn Fn(&Validation<'_, M>) -> Result<(), FieldErrors> + Send + Sync>;
type PermissionFn = Arc<dyn Fn(&Identity, &str) -> Result<(), Error> + Send + Sync>;
type VerbFn =
    Arc<dyn Fn(VerbContext, serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, Error>> + Send + Sync>;

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
}

/// Sizes a route allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `get_list` page size when the client gives no `limit`.
    pub default_page: usize,
    /// The largest `limit` a client may ask for.
    pub max_page: usize,
    /// The most rows a `subscribe` snapshot may hold; larger ones are refused
    /// with `too_many_rows` rather than silently cut.
    pub max_snapshot: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { default_page: 100, max_page: 1000, max_snapshot: 10_000 }
    }
}

/// One model's route.
pub struct Route<M: Model> {
    scope: Option<ScopeFn>,
    initial: Option<InitialFn>,
    validate: Option<ValidateFn<M>>,
    permission: Option<PermissionFn>,
    login_required: Vec<String>,
    verbs: HashMap<String, VerbFn>,
    limits: Limits,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Default for Route<M> {
    fn default() -> Self {
        Route {
            scope: None,
            initial: None,
            validate: None,
            permission: None,
            login_required: Vec::new(),
            verbs: HashMap::new(),
            limits: Limits::default(),
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
            Some(json) => Filter::parse_for(M::FIELDS, &json, FieldAccess::All, dialect).map_err(|e| {
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

    async fn get_single(&self, db: &Db, scope: Filter, args: &Args<'_>) -> Result<serde_json::Value, Error> {
        let id = args.id::<M>()?;
        args.reject_others(&["id"])?;
        let found = db.read(move |conn| get_by_id::<M>(conn, &id, Some(&scope), Lock::No)).await?;
        let row = found.ok_or_else(|| not_found::<M>(args.raw("id")))?;
        Ok(record::published(M::FIELDS, &row.to_row()))
    }

    async fn get_list(&self, db: &Db, scope: Filter, args: &Args<'_>) -> Result<serde_json::Value, Error> {
        args.reject_others(&["filter", "order_by", "limit", "offset", "total"])?;
        let dialect = db.dialect();
        let filter = args.filter::<M>(dialect)?.and(scope);
        let order = args.order_by::<M>(dialect)?;
        let limit = args.count("limit")?.unwrap_or(self.limits.default_page);
        if limit == 0 || limit > self.limits.max_page {
            return Err(Error::bad_arg("limit", format!("must be from 1 to {}", self.limits.max_page)));
        }
        let offset = args.count("offset")?.unwrap_or(0);
        let want_total = args.flag("total")?;
        let (rows, total) = db
            .read(move |conn| {
                let fragment = filter.to_sql(dialect);
                let table = quote_ident(M::TABLE);
                let sql = format!(
                    "SELECT {} FROM {table} WHERE {} ORDER BY {order} LIMIT {} OFFSET {offset}",
                    columns::<M>(),
                    fragment.sql,
                    limit + 1
                );
                let rows = load::<M>(conn, &sql, &fragment.binds)?;
                let total = if want_total { Some(count(conn, &table, &fragment.sql, &fragment.binds)?) } else { None };
                Ok((rows, total))
            })
            .await?;
        let has_more = rows.len() > limit;
        let rows: Vec<_> = rows.iter().take(limit).map(|r| record::published(M::FIELDS, &r.to_row())).collect();
        let mut reply = serde_json::json!({ "rows": rows, "has_more": has_more, "limit": limit, "offset": offset });
        if let Some(total) = total {
            reply["total"] = total.into();
        }
        Ok(reply)
    }

    async fn create(
        &self,
        db: &Db,
        identity: &Identity,
        scope: Filter,
        args: &Args<'_>,
    ) -> Result<serde_json::Value, Error> {
        args.reject_others(&["data"])?;
        let mut patch = Patch::parse(M::FIELDS, args.raw("data"), WriteAccess::Client)?;
        patch.check_required(M::FIELDS)?;
        if let Some(initial) = self.initial_for(identity)? {
            patch.merge(initial);
        }
        let (validate, identity) = (self.validate.clone(), identity.clone());
        db.write(move |tx| {
            let new: M = tx.insert_patch(&patch)?;
            let row = new.to_row();
            if !scope.matches(&row) {
                return Err(Error::Forbidden("the new object would be outside your scope".into()));
            }
            run_validation(&validate, &Validation { identity: &identity, old: None, new: &new })?;
            Ok(record::published(M::FIELDS, &row))
        })
        .await
    }

    async fn update(
        &self,
        db: &Db,
        identity: &Identity,
        scope: Filter,
        args: &Args<'_>,
    ) -> Result<serde_json::Value, Error> {
        args.reject_others(&["id", "data"])?;
        let id = args.id::<M>()?;
        let patch = Patch::parse(M::FIELDS, args.raw("data"), WriteAccess::Client)?;
        let (validate, identity) = (self.validate.clone(), identity.clone());
        let missing = not_found::<M>(args.raw("id"));
        db.write(move |tx| {
            let Some((old, new)) = tx.update_patch::<M>(&id, &patch)? else { return Err(missing) };
            if !scope.matches(&old.to_row()) {
                return Err(missing);
            }
            let row = new.to_row();
            if !scope.matches(&row) {
                return Err(Error::Forbidden("the change would move the object outside your scope".into()));
            }
            run_validation(&validate, &Validation { identity: &identity, old: Some(&old), new: &new })?;
            Ok(record::published(M::FIELDS, &row))
        })
        .await
    }

    async fn delete(&self, db: &Db, scope: Filter, args: &Args<'_>) -> Result<serde_json::Value, Error> {
        args.reject_others(&["id"])?;
        let id = args.id::<M>()?;
        let missing = not_found::<M>(args.raw("id"));
        db.write(move |tx| {
            // Locked on PostgreSQL, so the row cannot leave the scope between
            // this check and the delete.
            if get_by_id::<M>(tx.connection(), &id, Some(&scope), Lock::ForUpdate)?.is_none() {
                return Err(missing);
            }
            let old: M = tx.delete(id)?.ok_or(missing)?;
            Ok(record::id_only(M::FIELDS, M::PRIMARY_KEY, &old.to_row()))
        })
        .await
    }

    /// Registers the subscription first, then reads the snapshot at a known
    /// position, then releases what arrived meanwhile minus what the snapshot
    /// holds: no change is lost or doubled.
    async fn subscribe(&self, db: &Db, session: &Session, scope: Filter, request: &Request) -> Result<(), Error> {
        let args = Args(&request.args);
        args.reject_others(&["filter"])?;
        let filter = args.filter::<M>(db.dialect())?.and(scope);
        // Registered before listening, so the broker never sees the route
        // unwatched in between; listening before the snapshot, so no change
        // committed after it can be published before this process hears it.
        let sub = db.registry().subscribe(M::ROUTE, filter.clone(), session.outbox.clone());
        session.add_subscription(sub.clone());
        db.listen(M::ROUTE).await;
        let (dialect, cap) = (db.dialect(), self.limits.max_snapshot);
        let snapshot = db
            .snapshot(M::ROUTE, move |conn| {
                let fragment = filter.to_sql(dialect);
                let pk = quote_ident(M::FIELDS[M::PRIMARY_KEY].column);
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} ORDER BY {pk} LIMIT {}",
                    columns::<M>(),
                    quote_ident(M::TABLE),
                    fragment.sql,
                    cap + 1
                );
                load::<M>(conn, &sql, &fragment.binds)
            })
            .await;
        let (pos, rows) = match snapshot {
            Ok((_, rows)) if rows.len() > cap => {
                let _ = session.remove_subscription(sub.id);
                return Err(Error::TooManyRows(format!("the filter matches more than {cap} rows; narrow it")));
            }
            Ok(found) => found,
            Err(e) => {
                let _ = session.remove_subscription(sub.id);
                return Err(e);
            }
        };
        let rows: Vec<_> = rows.iter().map(|r| record::published(M::FIELDS, &r.to_row())).collect();
        let reply = protocol::ok_reply(
            &request.id,
            serde_json::json!({ "sub": sub.id, "epoch": db.epoch(), "pos": pos, "rows": rows }),
        );
        sub.start(pos, reply);
        db.hub().baseline(M::ROUTE, pos);
        Ok(())
    }
}

impl<M: Persist> Route<M> {
    /// Picks a subscription up where a client left it: the changes after its
    /// last position `pos` that concern its filter are replayed from history
    /// as events, then the stream goes on live. Answers `cannot_resume` when
    /// the epoch differs or history no longer reaches back; the client then
    /// subscribes afresh.
    async fn resume(&self, db: &Db, session: &Session, scope: Filter, request: &Request) -> Result<(), Error> {
        let args = Args(&request.args);
        args.reject_others(&["filter", "epoch", "pos"])?;
        let filter = args.filter::<M>(db.dialect())?.and(scope);
        let epoch = args.count("epoch")?.ok_or_else(|| Error::bad_arg("epoch", "is required"))?;
        let after = args.count("pos")?.ok_or_else(|| Error::bad_arg("pos", "is required"))? as u64;
        if epoch as u64 != db.epoch() {
            return Err(Error::CannotResume("the position belongs to another epoch (the database was reset)".into()));
        }
        // Registered before listening, so the broker never sees the route
        // unwatched in between; listening before the snapshot, so no change
        // committed after it can be published before this process hears it.
        let sub = db.registry().subscribe(M::ROUTE, filter.clone(), session.outbox.clone());
        session.add_subscription(sub.clone());
        db.listen(M::ROUTE).await;
        let history = db.snapshot(M::ROUTE, move |conn| history_since(conn, M::ROUTE, after)).await;
        let cap = self.limits.max_snapshot;
        let (pos, entries) = match history {
            Ok((pos, Some(entries))) if after <= pos && entries.len() <= cap => (pos, entries),
            outcome => {
                let _ = session.remove_subscription(sub.id);
                return Err(match outcome {
                    Err(e) => e,
                    Ok((pos, _)) if after > pos => Error::CannotResume(format!("position {after} is ahead of {pos}")),
                    Ok((_, Some(_))) => Error::CannotResume(format!("more than {cap} changes to replay")),
                    Ok((_, None)) => Error::CannotResume(format!("history no longer reaches back to {}", after + 1)),
                });
            }
        };
        let mut replay = Vec::new();
        for (at, body) in entries {
            let wire: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| Error::Internal(format!("history entry {at}: {e}")))?;
            let change = crate::change::Change::from_wire(&wire, M::ROUTE, M::FIELDS, M::PRIMARY_KEY)
                .map_err(|e| Error::Internal(format!("history entry {at}: {e}")))?;
            let before = change.old.as_deref().is_some_and(|row| filter.matches(row));
            let after = change.new.as_deref().is_some_and(|row| filter.matches(row));
            if let Some(action) = crate::change::Action::for_transition(before, after) {
                if let Some(data) = change.payload(action) {
                    replay.push((at, action, data));
                }
            }
        }
        let reply = protocol::ok_reply(
            &request.id,
            serde_json::json!({ "sub": sub.id, "epoch": db.epoch(), "pos": pos, "replayed": replay.len() }),
        );
        sub.start_with_replay(pos, reply, replay);
        db.hub().baseline(M::ROUTE, pos);
        Ok(())
    }
}

fn run_validation<M>(validate: &Option<ValidateFn<M>>, v: &Validation<'_, M>) -> Result<(), Error> {
    match validate {
        Some(f) => f(v).map_err(Error::ValidationFailed),
        None => Ok(()),
    }
}

fn not_found<M: Model>(id: &serde_json::Value) -> Error {
    Error::NotFound { route: M::ROUTE.to_owned(), id: id.to_string() }
}

fn count(conn: &mut Conn, table: &str, filter: &str, binds: &[Bind]) -> Result<i64, Error> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
    let counted = load::<Count>(conn, &sql, binds)?.pop();
    Ok(counted.ok_or_else(|| Error::Internal("COUNT(*) returned no row".into()))?.n)
}

/// Typed access to a request's `args`, with errors naming the argument.
struct Args<'a>(&'a serde_json::Value);

impl Args<'_> {
    fn raw(&self, key: &str) -> &serde_json::Value {
        self.0.get(key).unwrap_or(&serde_json::Value::Null)
    }

    fn reject_others(&self, allowed: &[&str]) -> Result<(), Error> {
        let mut errors = FieldErrors::new();
        for key in self.0.as_object().into_iter().flat_map(|o| o.keys()) {
            if !allowed.contains(&key.as_str()) {
                errors.add(key, format!("unknown argument; expected one of: {}", allowed.join(", ")));
            }
        }
        errors.into_result().map_err(Error::BadArgs)
    }

    fn id<M: Model>(&self) -> Result<Value, Error> {
        let pk = &M::FIELDS[M::PRIMARY_KEY];
        match self.0.get("id") {
            None => Err(Error::bad_arg("id", "is required")),
            Some(json) => pk.ty.value_from_json(json, false).map_err(|m| Error::bad_arg("id", m)),
        }
    }

    fn filter<M: Model>(&self, dialect: Dialect) -> Result<Filter, Error> {
        match self.0.get("filter") {
            None | Some(serde_json::Value::Null) => Ok(Filter::all()),
            Some(json) => Filter::parse_for(M::FIELDS, json, FieldAccess::Published, dialect).map_err(Error::BadFilter),
        }
    }

    /// `ORDER BY` from `"order_by": "-done"` or `["-done", "text"]`, always
    /// ending with the primary key so pages are stable. Text sorts by bytes
    /// (code points), as filters compare it, whatever the column's collation:
    /// PostgreSQL would otherwise sort by the database's locale.
    fn order_by<M: Model>(&self, dialect: Dialect) -> Result<String, Error> {
        let keys: Vec<&str> = match self.0.get("order_by") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().ok_or_else(|| Error::bad_arg("order_by", "must be field names")))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(Error::bad_arg("order_by", format!("must be a string or a list, not {}", json_kind(other))))
            }
        };
        let mut terms = Vec::with_capacity(keys.len() + 1);
        for key in keys {
            let (name, descending) = match key.strip_prefix('-') {
                Some(name) => (name, true),
                None => (key, false),
            };
            let field = M::field_index(name)
                .map(|i| &M::FIELDS[i])
                .filter(|f| f.published || f.primary_key)
                .ok_or_else(|| Error::bad_arg("order_by", format!("no field {name:?}")))?;
            // Explicit NULLS placement: the same order on SQLite and PostgreSQL.
            let direction = if descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            let collate = match field.ty {
                FieldType::Text => format!(" COLLATE {}", dialect.byte_collation()),
                _ => String::new(),
            };
            terms.push(format!("{}{collate} {direction}", quote_ident(field.column)));
        }
        terms.push(format!("{} ASC", quote_ident(M::FIELDS[M::PRIMARY_KEY].column)));
        Ok(terms.join(", "))
    }

    fn count(&self, key: &str) -> Result<Option<usize>, Error> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(json) => json
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| Error::bad_arg(key, "must be a non-negative whole number")),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::bad_arg(key, format!("must be a boolean, not {}", json_kind(other)))),
        }
    }
}

/// A route with its model type erased, as the router holds it.
pub(crate) trait RouteHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        db: &'a Db,
        session: &'a Session,
        request: Request,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, Error>>;
}

impl<M: Persist> RouteHandler for Route<M> {
    fn handle<'a>(
        &'a self,
        db: &'a Db,
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
                session.remove_subscription(sub)?;
                return Ok(Some(serde_json::json!({ "sub": sub })));
            }
            let scope = self.scope_for(identity, db.dialect())?;
            let data = match verb {
                "get_single" => self.get_single(db, scope, &args).await?,
                "get_list" => self.get_list(db, scope, &args).await?,
                "create" => self.create(db, identity, scope, &args).await?,
                "update" => self.update(db, identity, scope, &args).await?,
                "delete" => self.delete(db, scope, &args).await?,
                "subscribe" => {
                    self.subscribe(db, session, scope, &request).await?;
                    return Ok(None);
                }
                "resume" => {
                    self.resume(db, session, scope, &request).await?;
                    return Ok(None);
                }
                custom => {
                    let handler = self.verbs[custom].clone();
                    let cx = VerbContext { db: db.clone(), identity: identity.clone(), scope };
                    handler(cx, request.args.clone()).await?
                }
            };
            Ok(Some(data))
        })
    }
}
