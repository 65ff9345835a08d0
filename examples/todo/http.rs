//! The to-do example's HTTP side besides wyrmhole's: the page's files, the
//! sign-in check the page makes before it connects, and the "admin" API
//! whose writes go through `Db::write` and reach every browser live.

use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Filter, Reply};
use wyrmhole::{Db, Error, Model, Wyrmhole};

use super::{add_member, check_item, check_list, sign_in, TodoItem, TodoList};

/// `GET /whoami?token=T`: who the token signs in as (`{"name": null}` for
/// none), or 401 with the reason. The page asks before it connects, so a
/// refused token is shown as "sign in again" instead of a socket that
/// never opens.
pub(crate) fn whoami() -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("whoami")
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .map(|query: std::collections::HashMap<String, String>| match sign_in(query.get("token").map(String::as_str)) {
            Ok(identity) => {
                warp::reply::json(&json!({ "name": identity.name(), "user": identity.user_id() })).into_response()
            }
            Err(e) => warp::reply::with_status(
                warp::reply::json(&json!({ "error": e.to_string() })),
                StatusCode::UNAUTHORIZED,
            )
            .into_response(),
        })
        .boxed()
}

/// `POST /admin/items/bulk {"list_id", "count", "text"}`: `count` items
/// (at most 1000) in one transaction, so that every browser gets them as
/// one burst of events (the browser test's render-time check).
async fn bulk_items(db: Db, data: serde_json::Value) -> Result<serde_json::Value, Error> {
    let count = data.get("count").and_then(|c| c.as_u64()).filter(|c| (1..=1000).contains(c));
    let count = count.ok_or_else(|| Error::bad_arg("count", "must be 1 to 1000"))?;
    let text = data.get("text").and_then(|t| t.as_str()).unwrap_or("item").to_owned();
    let list_id = data.get("list_id").cloned().unwrap_or_default();
    db.write(move |tx| {
        let template = json!({ "list_id": list_id, "done": false });
        for i in 1..=count {
            let mut row = template.clone();
            row["text"] = json!(format!("{text} {i}"));
            tx.insert::<TodoItem>(&row)?;
        }
        Ok(json!({ "created": count }))
    })
    .await
}

/// Static files, embedded so the binary runs from anywhere.
pub(crate) fn assets() -> warp::filters::BoxedFilter<(Response,)> {
    const JS: &str = "text/javascript; charset=utf-8";
    let files: &[(&str, &str, &'static str)] = &[
        ("", "text/html; charset=utf-8", include_str!("index.html")),
        ("app.js", JS, include_str!("app.js")),
        ("style.css", "text/css; charset=utf-8", include_str!("style.css")),
    ];
    let files: std::collections::HashMap<String, (&str, &str)> =
        files.iter().map(|(path, ty, body)| (path.to_string(), (*ty, *body))).collect();
    let files = std::sync::Arc::new(files);
    warp::get()
        .and(warp::path::full())
        .and_then(move |path: warp::path::FullPath| {
            let files = files.clone();
            async move {
                let key = path.as_str().trim_start_matches('/');
                match files.get(key) {
                    Some((ty, body)) => {
                        let reply = warp::reply::with_header(*body, "content-type", *ty);
                        // A dev example: never serve a stale client after a rebuild.
                        Ok(warp::reply::with_header(reply, "cache-control", "no-store").into_response())
                    }
                    None => Err(warp::reject::not_found()),
                }
            }
        })
        .boxed()
}

/// `POST /admin/lists {"name"}`: a list on the guests' board (owner 0,
/// guests its members), published like a guest's create.
async fn guest_list(db: Db, data: serde_json::Value) -> Result<serde_json::Value, Error> {
    let name = data.get("name").cloned().unwrap_or_default();
    db.write(move |tx| {
        let list = tx.insert::<TodoList>(&json!({ "name": name, "owner_id": 0 }))?;
        check_list(&list).map_err(Error::ValidationFailed)?;
        add_member(tx, list.id, 0, "guest")?;
        Ok(published(&list))
    })
    .await
}

/// `POST /admin/items` creates, `POST /admin/items/<id>` updates: server-side
/// writes through the save API, published to subscribers like client writes
/// (an item is its list's, so its list's members see it). `POST
/// /admin/lists` adds a guests' list. No authentication: the example
/// listens on 127.0.0.1 only.
pub(crate) fn admin(db: Db, app: Wyrmhole) -> warp::filters::BoxedFilter<(Response,)> {
    let with_db = warp::any().map(move || db.clone());
    let body = warp::body::content_length_limit(64 * 1024).and(warp::body::bytes());
    let bulk = warp::path!("admin" / "items" / "bulk")
        .and(warp::post())
        .and(body)
        .and(with_db.clone())
        .then(|body: Bytes, db: Db| async move { respond(parse(&body).map(|data| bulk_items(db, data))).await });
    let lists = warp::path!("admin" / "lists")
        .and(warp::post())
        .and(body)
        .and(with_db.clone())
        .then(|body: Bytes, db: Db| async move { respond(parse(&body).map(|data| guest_list(db, data))).await });
    let create = warp::path!("admin" / "items").and(warp::post()).and(body).and(with_db.clone()).then(
        |body: Bytes, db: Db| async move {
            respond(parse(&body).map(|data| async move {
                db.write(move |tx| {
                    let item = tx.insert::<TodoItem>(&data)?;
                    check_item(&item).map_err(Error::ValidationFailed)?;
                    Ok(published(&item))
                })
                .await
            }))
            .await
        },
    );
    let update = warp::path!("admin" / "items" / i32).and(warp::post()).and(body).and(with_db).then(
        |id: i32, body: Bytes, db: Db| async move {
            respond(parse(&body).map(|data| async move {
                db.write(move |tx| {
                    let missing = Error::NotFound { route: TodoItem::ROUTE.into(), id: id.to_string() };
                    let item = tx.update::<TodoItem>(id, &data)?.ok_or(missing)?;
                    check_item(&item).map_err(Error::ValidationFailed)?;
                    Ok(published(&item))
                })
                .await
            }))
            .await
        },
    );
    // Server push: any JSON to a channel's subscribers, or to one user.
    let to_channel = {
        let app = app.clone();
        warp::path!("admin" / "publish" / String).and(warp::post()).and(body).then(
            move |channel: String, body: Bytes| {
                let app = app.clone();
                async move { respond(parse(&body).map(|data| async move { pushed(app.publish(&channel, &data)) })).await }
            },
        )
    };
    let to_user =
        warp::path!("admin" / "push" / i64).and(warp::post()).and(body).then(move |user: i64, body: Bytes| {
            let app = app.clone();
            async move { respond(parse(&body).map(|data| async move { pushed(app.to_user(user, &data)) })).await }
        });
    bulk.or(lists).unify().or(create).unify().or(update).unify().or(to_channel).unify().or(to_user).unify().boxed()
}

fn pushed(outcome: Result<(), Error>) -> Result<serde_json::Value, Error> {
    outcome.map(|()| json!({ "sent": true }))
}

fn parse(body: &[u8]) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::bad_arg("body", format!("invalid JSON: {e}")))
}

fn published<M: Model>(row: &M) -> serde_json::Value {
    wyrmhole::record::published(M::FIELDS, &row.to_row())
}

/// Runs the write (if the body parsed) and answers with the row or the error.
async fn respond<F>(write: Result<F, Error>) -> Response
where
    F: std::future::Future<Output = Result<serde_json::Value, Error>>,
{
    let outcome = match write {
        Ok(write) => write.await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(row) => warp::reply::json(&row).into_response(),
        Err(e) => {
            let status = match e.code() {
                "not_found" => StatusCode::NOT_FOUND,
                "conflict" => StatusCode::CONFLICT,
                "internal" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            warp::reply::with_status(warp::reply::json(&e.to_json()), status).into_response()
        }
    }
}
