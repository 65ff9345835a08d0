//! A small server of shared lists, for the multi-process relations proof
//! (`tests/relations_proof.rs`): lists, their items and their members,
//! modelled exactly as in `tests/relations.rs`, each user seeing the lists
//! they are a member of and those lists' items.
//!
//! ```text
//! WYRM_PORT=0 WYRM_DB=/tmp/rel.db REDIS_URL=redis://127.0.0.1:6379 cargo run --example relations_server
//! ```
//!
//! `WYRM_DB` is a SQLite file or a PostgreSQL URL (with `--features
//! postgres`); `WYRM_PORT` a port (0: any free one, default 8000);
//! `REDIS_URL`, when set, shares changes with the other processes on the
//! same database. The token is the user id (`?token=2`). A client creating a
//! list becomes its first member and its owner; members share it with other
//! users (`share {"id": list, "user": 3}`) and unshare them (`unshare`, not
//! the owner), both custom writes on `rel-list`.

use std::io::Write;

use serde_json::{json, Value};
use wyrmhole::{Db, Error, Identity, Route, VerbContext, Wyrmhole};

#[path = "relations/models.rs"]
mod models;

use models::{Item, List, Member, POSTGRES, SQLITE};

fn user(identity: &Identity) -> i64 {
    identity.user_id().unwrap_or(0)
}

/// `{"id": list, "user": u}` of `share` and `unshare`.
fn membership_args(args: &Value) -> Result<(i32, i64), Error> {
    let list = args["id"].as_i64().and_then(|l| i32::try_from(l).ok());
    let list = list.ok_or_else(|| Error::bad_arg("id", "is required (a list id)"))?;
    let member = args["user"].as_i64().ok_or_else(|| Error::bad_arg("user", "is required (a user id)"))?;
    Ok((list, member))
}

/// `share {"id", "user"}`: a member of the list makes `user` one too (once).
async fn share(cx: VerbContext, args: Value) -> Result<Value, Error> {
    let (list, member) = membership_args(&args)?;
    let caller = user(&cx.identity);
    cx.write(move |tx| {
        if tx.select::<List>(&json!({"id": list, "members__user_id": caller}))?.is_empty() {
            return Err(Error::NotFound { route: "rel-list".into(), id: list.to_string() });
        }
        if tx.select::<Member>(&json!({"list_id": list, "user_id": member}))?.is_empty() {
            tx.insert::<Member>(&json!({"list_id": list, "user_id": member}))?;
            return Ok(json!({"shared": true}));
        }
        Ok(json!({"shared": false}))
    })
    .await
}

/// `unshare {"id", "user"}`: a member of the list removes `user`, unless
/// `user` owns it (`conflict`).
async fn unshare(cx: VerbContext, args: Value) -> Result<Value, Error> {
    let (list, member) = membership_args(&args)?;
    let caller = user(&cx.identity);
    cx.write(move |tx| {
        let Some(found) = tx.select::<List>(&json!({"id": list, "members__user_id": caller}))?.pop() else {
            return Err(Error::NotFound { route: "rel-list".into(), id: list.to_string() });
        };
        if found.owner_id == member {
            return Err(Error::Conflict("the owner stays a member".into()));
        }
        let gone = tx.select::<Member>(&json!({"list_id": list, "user_id": member}))?;
        for m in &gone {
            tx.delete::<Member>(m.id)?;
        }
        Ok(json!({"unshared": !gone.is_empty()}))
    })
    .await
}

fn app(db: Db) -> wyrmhole::Builder {
    Wyrmhole::builder(db)
        .route(
            Route::<List>::new()
                .scope(|who| Some(json!({"members__user_id": user(who)})))
                .initial(|who| json!({"owner_id": user(who)}))
                // The creator's membership, in the create's transaction: the
                // new list is in their scope when the create is checked.
                .on_create(|tx, who, list| {
                    tx.insert::<Member>(&json!({"list_id": list.id, "user_id": user(who)}))?;
                    Ok(())
                })
                .write_verb("share", share)
                .write_verb("unshare", unshare)
                .login_required(&["create", "update", "delete", "share", "unshare"]),
        )
        .route(Route::<Item>::new().scope(|who| Some(json!({"list__members__user_id": user(who)}))))
        .route(Route::<Member>::new().scope(|who| Some(json!({"list__members__user_id": user(who)}))))
        .authenticate(|req| Ok(req.token().and_then(|t| t.parse().ok()).map(Identity::user).unwrap_or_default()))
        .allow_anonymous()
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("relations_server: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("WYRM_PORT") {
        Ok(p) => p.parse().map_err(|_| format!("WYRM_PORT={p:?} is not a port number (0: any free one)"))?,
        Err(_) => 8000,
    };
    let url = std::env::var("WYRM_DB").unwrap_or_else(|_| "relations.db".into());
    let db = Db::open(&url).map_err(|e| format!("cannot open WYRM_DB={url:?}: {e}"))?;
    let schema = match db.dialect() {
        wyrmhole::sql::Dialect::Sqlite => SQLITE,
        wyrmhole::sql::Dialect::Postgres => POSTGRES,
    };
    db.execute_batch(schema).await.map_err(|e| format!("cannot create the tables in WYRM_DB={url:?}: {e}"))?;
    let mut app = app(db);
    if let Ok(redis) = std::env::var("REDIS_URL") {
        app = app.redis(&redis);
    }
    let server = app.build()?.serve(([127, 0, 0, 1], port)).await?;
    // Tests parse this line for the port; flush so they see it at once.
    println!("wyrmhole relations example at http://{}/", server.addr());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
