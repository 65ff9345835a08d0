//! The README's minimal app, built by `cargo build --examples` (and so by
//! `cargo test` and CI) so that it cannot stop compiling: one model, a
//! scope per user, the bundled JS client, and a page of its own at `/`.
//! Run it with `cargo run --example minimal`, then open the URL it prints.

use serde_json::json;
use warp::{Filter, Reply};
use wyrmhole::{AuthError, Db, Identity, Route, Wyrmhole};

diesel::table! {
    todo_items (id) {
        id -> Integer,
        text -> Text,
        done -> Bool,
        created_by -> Integer,
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = todo_items)]
#[wyrm(route = "todo-item")]
struct TodoItem {
    id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
    #[wyrm(skip)] // never sent to clients
    created_by: i32,
}

/// The page at `/`: it imports the client wyrmhole serves at `/wyrmhole.js`.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>minimal wyrmhole app</title>
<form id="add"><input name="text" placeholder="New item" aria-label="New item"> <button>Add</button></form>
<ul id="items"></ul>
<script type="module">
  import { connect } from "/wyrmhole.js";
  const token = new URLSearchParams(location.search).get("token") ?? "1";
  const client = connect(`ws://${location.host}/ws`, { token });
  const items = client.route("todo-item");
  const live = items.subscribe({});
  const render = () => document.getElementById("items").replaceChildren(
    ...live.items.map((item) => Object.assign(document.createElement("li"), { textContent: item.text })));
  live.on("change", render);
  live.on("reset", render);
  document.getElementById("add").addEventListener("submit", (e) => {
    e.preventDefault();
    items.create({ text: e.target.text.value, done: false });
    e.target.reset();
  });
</script>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open_sqlite("minimal.db")?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS todo_items (id INTEGER PRIMARY KEY, text TEXT NOT NULL,
         done BOOLEAN NOT NULL, created_by INTEGER NOT NULL)",
    )
    .await?;
    let app = Wyrmhole::builder(db.clone())
        .route(
            Route::<TodoItem>::new()
                // What each identity may see and write: a filter, applied to
                // reads and to every delivered change.
                .scope(|who: &Identity| who.user_id().map(|id| json!({ "created_by": id })))
                // Fields the server sets on create, whatever the client sent.
                .initial(|who: &Identity| json!({ "created_by": who.user_id() }))
                .login_required(&["create", "update", "delete"]),
        )
        // `?token=<user id>`: a demo. A real app checks a session here.
        .authenticate(|req| match req.token() {
            Some(token) => token.parse().map(Identity::user).map_err(|_| AuthError::new("bad token")),
            None => Err(AuthError::new("token required")),
        })
        .build()?;

    // The app's own warp routes, tried after wyrmhole's `/ws` and `/wyrmhole.js`.
    let page = warp::path::end().map(|| warp::reply::html(PAGE).into_response()).boxed();
    let server = app.serve_with(page, ([127, 0, 0, 1], 8000)).await?;
    println!("minimal app at http://{}/?token=1", server.addr());

    // Server code writes through the same save API; subscribers see it.
    db.write(|tx| tx.insert::<TodoItem>(&json!({"text": "from the server", "done": false, "created_by": 1}))).await?;
    server.wait().await;
    Ok(())
}
