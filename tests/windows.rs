//! Ordered, limited live windows (`subscribe` with `order_by` and `limit`)
//! end to end: events say where rows go, a row leaving the window lets the
//! next one in, and under many concurrent writers every subscriber's window
//! ends equal to the database's `ORDER BY ... LIMIT`.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A client's copy of one window, kept by applying events as a client
/// must: remove the row if held, insert it at `index`.
struct Window {
    sub: Value,
    seq: u64,
    limit: usize,
    rows: Vec<Value>,
}

impl Window {
    fn new(reply: &Value) -> Window {
        let rows = reply["rows"].as_array().unwrap().clone();
        let limit = reply["limit"].as_u64().unwrap() as usize;
        assert!(rows.len() <= limit);
        Window { sub: reply["sub"].clone(), seq: 0, limit, rows }
    }

    fn apply(&mut self, event: &Value) {
        assert_eq!(event["seq"].as_u64().unwrap(), self.seq + 1, "sequence gap or repeat: {event}");
        self.seq += 1;
        let id = &event["data"]["id"];
        let held = self.rows.iter().position(|r| &r["id"] == id);
        match event["action"].as_str().unwrap() {
            "deleted" => {
                assert!(event.get("index").is_none(), "{event}");
                self.rows.remove(held.unwrap_or_else(|| panic!("delete of a row not held: {event}")));
            }
            action => {
                assert_eq!(held.is_some(), action == "updated", "{action} of a row held: {held:?}: {event}");
                if let Some(at) = held {
                    self.rows.remove(at);
                }
                let index = event["index"].as_u64().unwrap_or_else(|| panic!("no index: {event}")) as usize;
                assert!(index <= self.rows.len(), "index past the end: {event}");
                self.rows.insert(index, event["data"].clone());
            }
        }
        assert!(self.rows.len() <= self.limit, "window over its limit after {event}");
    }

    fn ids(&self) -> Vec<i64> {
        self.rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
    }
}

fn ids(rows: &Value) -> Vec<i64> {
    rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn item(list: i64, text: &str, priority: i64) -> Value {
    json!({"list_id": list, "text": text, "priority": priority, "done": false})
}

/// Reads events into the windows until each equals what `get_list` reads
/// with the same arguments, or fails after a minute (the refresh follows
/// the fan-out asynchronously; this waits for a state, it times nothing).
async fn converge(c: &mut Client, server: &TestServer, windows: &mut [(Window, Value)]) {
    c.settle(server).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for event in std::mem::take(&mut c.events) {
            let (window, _) = windows.iter_mut().find(|(w, _)| w.sub == event["sub"]).expect("event of a window");
            window.apply(&event);
        }
        let mut differ = None;
        for (window, args) in windows.iter() {
            let list = c.ok("todo-item", "get_list", args.clone()).await;
            if window.ids() != ids(&list["rows"]) || window.rows != *list["rows"].as_array().unwrap() {
                differ = Some(format!("{args}: window {:?}, database {:?}", window.ids(), ids(&list["rows"])));
            }
        }
        let Some(why) = differ else { return };
        assert!(Instant::now() < deadline, "windows never converged: {why}");
        // Whatever is on its way: the next frame, or a pause to let the refresher run.
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), c.next_event()).await {
            c.events.push_front(frame);
        }
    }
}

#[tokio::test]
async fn a_window_follows_rows_entering_leaving_and_moving() {
    let server = TestServer::start().await;
    for (text, priority) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
        server.insert_item(item(1, text, priority)).await;
    }
    server.insert_item(item(2, "other list", 5)).await;
    let mut c = server.client().await;
    let args = json!({"filter": {"list_id": 1}, "order_by": ["-priority", "text"], "limit": 3});
    let reply = c.ok("todo-item", "subscribe", args.clone()).await;
    assert_eq!(ids(&reply["rows"]), vec![5, 4, 3], "the top 3 by priority, in order");
    let mut windows = [(Window::new(&reply), args.clone())];

    // A row sorting first pushes the last one out: deleted, then created at 0.
    let top = server.insert_item(item(1, "top", 5)).await;
    c.settle(&server).await;
    let first = c.next_event().await;
    let second = c.next_event().await;
    assert_eq!((first["action"].as_str(), first["data"]["id"].as_i64()), (Some("deleted"), Some(3)), "{first}");
    assert_eq!((second["action"].as_str(), second["index"].as_u64()), (Some("created"), Some(1)), "{second}");
    assert_eq!(second["data"]["id"], top.id, "ties on priority go by text: 'e' < 'top'");
    windows[0].0.apply(&first);
    windows[0].0.apply(&second);
    assert_eq!(windows[0].0.ids(), vec![5, top.id as i64, 4]);

    // A row leaving (deleted, moved out of the filter, or sorted past the
    // end) lets the next one in.
    let mut writer = server.client().await;
    writer.ok("todo-item", "delete", json!({"id": 5})).await;
    converge(&mut c, &server, &mut windows).await;
    assert_eq!(windows[0].0.ids(), vec![top.id as i64, 4, 3]);
    writer.ok("todo-item", "update", json!({"id": top.id, "data": {"list_id": 2}})).await;
    converge(&mut c, &server, &mut windows).await;
    assert_eq!(windows[0].0.ids(), vec![4, 3, 2]);
    writer.ok("todo-item", "update", json!({"id": 4, "data": {"priority": 0}})).await;
    converge(&mut c, &server, &mut windows).await;
    assert_eq!(windows[0].0.ids(), vec![3, 2, 1]);
    // Moving inside the window, and a change outside it that sorts after it.
    writer.ok("todo-item", "update", json!({"id": 1, "data": {"priority": 4}})).await;
    writer.ok("todo-item", "update", json!({"id": 4, "data": {"text": "still last"}})).await;
    converge(&mut c, &server, &mut windows).await;
    assert_eq!(windows[0].0.ids(), vec![1, 3, 2]);

    // A window cannot resume; its client subscribes again.
    let error = c.err("todo-item", "resume", json!({"epoch": reply["epoch"], "pos": reply["pos"], "limit": 3})).await;
    assert_eq!(error["code"], "cannot_resume", "{error}");
    let window = Window::new(&c.ok("todo-item", "subscribe", args.clone()).await);
    assert_eq!(window.ids(), vec![1, 3, 2]);
}

#[tokio::test]
async fn window_arguments_are_checked() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (args, key) in [
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 1001}), "limit"),
        (json!({"limit": "3"}), "limit"),
        (json!({"order_by": "priority"}), "order_by"),
        (json!({"order_by": "secret", "limit": 3}), "order_by"),
    ] {
        let error = c.err("todo-item", "subscribe", args.clone()).await;
        assert_eq!(error["code"], "bad_args", "{args}: {error}");
        assert!(error["fields"][key].is_array(), "{args}: {error}");
    }
}

/// Many writers move rows in and out of the windows of several subscribers
/// (different filters, orders and limits, some identical); once writes
/// stop, every window is the database's `ORDER BY ... LIMIT`, and every
/// event on the way applied cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_many_windows_converge() {
    let server = TestServer::start().await;
    for i in 0..40 {
        server.insert_item(item(1 + i % 3, &format!("t{i}"), i % 6)).await;
    }
    let shapes = [
        json!({"filter": {"list_id": 1}, "order_by": ["-priority", "text"], "limit": 5}),
        json!({"filter": {"list_id": 1}, "order_by": ["-priority", "text"], "limit": 5}),
        json!({"filter": {"or": [{"list_id": 2}, {"done": true}]}, "order_by": "text", "limit": 4}),
        json!({"filter": {"not": {"list_id": 3}}, "order_by": ["priority", "-id"], "limit": 7}),
        json!({"order_by": "-text", "limit": 3}),
        json!({"filter": {"list_id": 3}, "limit": 2}),
    ];
    let mut clients = Vec::new();
    for round in 0..4 {
        let mut c = server.client().await;
        let mut windows = Vec::new();
        for shape in &shapes[round % 2..] {
            let reply = c.ok("todo-item", "subscribe", shape.clone()).await;
            windows.push((Window::new(&reply), shape.clone()));
        }
        clients.push((c, windows));
    }
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let url = server.url();
            tokio::spawn(async move {
                let mut c = Client::connect(&url).await;
                let mut rng = Rng(w * 7919 + 1);
                for step in 0..100 {
                    let id = 1 + rng.below(40) as i64;
                    let data = match rng.below(4) {
                        0 => json!({"list_id": 1 + rng.below(3)}),
                        1 => json!({"priority": rng.below(6)}),
                        2 => json!({"done": rng.chance(50)}),
                        _ => json!({"text": format!("w{w}s{step}")}),
                    };
                    c.call("todo-item", "update", json!({"id": id, "data": data})).await;
                    if rng.chance(10) {
                        let created = c.ok("todo-item", "create", json!({"data": item(1 + rng.below(3) as i64, &format!("n{w}{step}"), rng.below(6) as i64)})).await;
                        if rng.chance(50) {
                            c.ok("todo-item", "delete", json!({"id": created["id"]})).await;
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for (c, windows) in &mut clients {
        converge(c, &server, windows).await;
        for (window, _) in windows.iter() {
            assert!(window.seq > 0, "each window heard something");
        }
    }
}

/// A window holds only rows inside the subscriber's scope (user 666 sees
/// list 1 only), and an unsubscribed window hears nothing more.
#[tokio::test]
async fn windows_keep_the_scope_and_end_with_unsubscribe() {
    let server = TestServer::start().await;
    for (list, text, priority) in [(1, "a", 1), (2, "b", 5), (1, "c", 2), (2, "d", 4)] {
        server.insert_item(item(list, text, priority)).await;
    }
    let mut confined = server.client_as(666).await;
    let args = json!({"order_by": "-priority", "limit": 2});
    let reply = confined.ok("todo-item", "subscribe", args.clone()).await;
    assert_eq!(ids(&reply["rows"]), vec![3, 1], "list 1 only, by priority");
    let mut windows = [(Window::new(&reply), args.clone())];
    let mut writer = server.client().await;
    writer.ok("todo-item", "update", json!({"id": 2, "data": {"list_id": 1}})).await;
    converge(&mut confined, &server, &mut windows).await;
    assert_eq!(windows[0].0.ids(), vec![2, 3]);

    confined.ok("todo-item", "unsubscribe", json!({"sub": reply["sub"]})).await;
    writer.ok("todo-item", "update", json!({"id": 4, "data": {"list_id": 1, "priority": 5}})).await;
    confined.assert_no_event(&server).await;
}
