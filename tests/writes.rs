//! Ordered and idempotent writes: a connection's writes apply in the order
//! it sent them, and a write sent again with the same key (after a lost
//! connection, from another process) runs once and gets the same reply.

mod common;

use common::{test_config, Client, TestServer};
use serde_json::{json, Value};
use wyrmhole::ConnectionConfig;

/// No rate limit in the way of a burst.
fn unlimited() -> ConnectionConfig {
    ConnectionConfig {
        requests_per_second: 100_000,
        request_burst: 100_000,
        identity_requests_per_second: 100_000,
        identity_request_burst: 100_000,
        ..test_config()
    }
}

fn create(id: impl Into<Value>, list: i64, text: &str) -> String {
    json!({"id": id.into(), "route": "todo-item", "verb": "create", "args": {"data": {"list_id": list, "text": text, "done": false, "priority": 0}}})
        .to_string()
}

fn item(list: i64, text: &str) -> Value {
    json!({"list_id": list, "text": text, "done": false, "priority": 0})
}

fn keyed(route: &str, verb: &str, args: Value, key: &str) -> String {
    json!({"id": key, "route": route, "verb": verb, "args": args, "key": key}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pipelined_creates_applies_in_send_order() {
    const BURST: usize = 300;
    let server = TestServer::start_with(unlimited()).await;
    for round in 0..3 {
        // Other clients write to the same table meanwhile.
        let others: Vec<_> = (0..3)
            .map(|c| {
                let url = format!("{}?token={}", server.url(), 100 + c);
                tokio::spawn(async move {
                    let mut client = Client::connect(&url).await;
                    for i in 0..40 {
                        client.ok("todo-item", "create", json!({"data": item(2, &format!("{c}.{i}"))})).await;
                    }
                })
            })
            .collect();
        let mut client = server.client_as(1).await;
        for i in 0..BURST {
            // Sent without waiting for any reply; reads mixed in.
            client.send_text(create(i, 1, &format!("round {round} step {i}"))).await;
            if i % 50 == 0 {
                let read = json!({"id": format!("read {i}"), "route": "todo-item", "verb": "get_list", "args": {}});
                client.send_text(read.to_string()).await;
            }
        }
        let mut ids = Vec::new();
        while ids.len() < BURST {
            let reply = client.next_reply().await;
            assert_eq!(reply["ok"], true, "{reply}");
            if reply["id"].is_string() {
                continue;
            }
            assert_eq!(reply["id"], ids.len(), "round {round}: write replies come in send order");
            ids.push(reply["data"]["id"].as_i64().unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "round {round}: rows were created in send order: {ids:?}");
        for other in others {
            other.await.unwrap();
        }
    }
    // And the database agrees: by id, the burst's rows are in send order.
    let mine: Vec<String> = server.all_items().await.into_iter().filter(|i| i.list_id == 1).map(|i| i.text).collect();
    let sent: Vec<String> = (0..3).flat_map(|r| (0..BURST).map(move |i| format!("round {r} step {i}"))).collect();
    assert_eq!(mine, sent);
}

#[tokio::test]
async fn a_write_sent_again_with_its_key_runs_once_and_gets_the_same_reply() {
    let server = TestServer::start().await;
    let mut client = server.client_as(1).await;
    let frame = keyed("todo-item", "create", json!({"data": item(1, "milk")}), "k-1");
    client.send_text(frame.clone()).await;
    let first = client.next_reply().await;
    assert_eq!(first["ok"], true, "{first}");
    // The connection is lost before the reply arrives: the client resends
    // on a new one.
    drop(client);
    let mut again = server.client_as(1).await;
    again.send_text(frame).await;
    let second = again.next_reply().await;
    assert_eq!(second, first, "the retry is answered with the first reply");
    assert_eq!(server.all_items().await.len(), 1, "and wrote nothing");

    // Updates and deletes too.
    let id = first["data"]["id"].clone();
    for _ in 0..2 {
        again.send_text(keyed("todo-item", "update", json!({"id": id, "data": {"priority": 3}}), "k-2")).await;
        assert_eq!(again.next_reply().await["data"]["priority"], 3);
    }
    for _ in 0..2 {
        again.send_text(keyed("todo-item", "delete", json!({"id": id}), "k-3")).await;
        let reply = again.next_reply().await;
        assert_eq!(reply["ok"], true, "a delete retried is not `not_found`: {reply}");
    }

    // The same key for another request is refused, not answered with the
    // reply to something else.
    again.send_text(keyed("todo-item", "delete", json!({"id": id}), "k-1")).await;
    let reply = again.next_reply().await;
    assert_eq!(reply["error"]["code"], "bad_args", "{reply}");
    assert!(reply["error"]["fields"]["key"].is_array(), "{reply}");
}

#[tokio::test]
async fn keys_belong_to_an_identity() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = (server.client_as(1).await, server.client_as(2).await);
    let frame = keyed("todo-item", "create", json!({"data": item(1, "same key")}), "shared");
    alice.send_text(frame.clone()).await;
    bob.send_text(frame).await;
    let (a, b) = (alice.next_reply().await, bob.next_reply().await);
    assert_eq!((a["ok"].clone(), b["ok"].clone()), (json!(true), json!(true)));
    assert_ne!(a["data"]["id"], b["data"]["id"], "two identities, two writes");
    assert_eq!(server.all_items().await.len(), 2);
}

#[tokio::test]
async fn a_failed_write_is_not_remembered() {
    let server = TestServer::start().await;
    let mut client = server.client_as(1).await;
    client.send_text(keyed("todo-item", "create", json!({"data": item(1, " ")}), "k")).await;
    let failed = client.next_reply().await;
    assert_eq!(failed["error"]["code"], "validation_failed", "{failed}");
    client.send_text(keyed("todo-item", "create", json!({"data": item(1, "fixed")}), "k")).await;
    let retried = client.next_reply().await;
    assert_eq!(retried["ok"], true, "the key was not taken by the failure: {retried}");
    assert_eq!(server.all_items().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_at_once_on_two_processes_runs_once() {
    let server = TestServer::start().await;
    let (other, _other_app) = server.another_process().await;
    let urls = [server.url(), other.ws_url()];
    for round in 0..20 {
        let key = format!("race-{round}");
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let url = format!("{}?token=7", urls[n % 2]);
                let key = key.clone();
                tokio::spawn(async move {
                    let mut client = Client::connect(&url).await;
                    let args = json!({"data": item(1, &key)});
                    client.send_text(keyed("todo-item", "create", args, &key)).await;
                    client.next_reply().await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        assert!(replies.iter().all(|r| r == &replies[0] && r["ok"] == true), "round {round}: {replies:?}");
    }
    assert_eq!(server.all_items().await.len(), 20, "one row per key");
}

#[tokio::test]
async fn a_custom_write_verb_honours_its_key() {
    let server = TestServer::start().await;
    let mut client = server.client_as(1).await;
    let frame = keyed("todo-item", "add_pair", json!({"text": "pair"}), "p");
    client.send_text(frame.clone()).await;
    let first = client.next_reply().await;
    assert_eq!(first["ok"], true, "{first}");
    client.send_text(frame).await;
    assert_eq!(client.next_reply().await, first);
    assert_eq!(server.all_items().await.len(), 2);
    // A read takes no key.
    client.send_text(keyed("todo-item", "get_list", json!({}), "r")).await;
    assert_eq!(client.next_reply().await["error"]["code"], "bad_args");
}

#[tokio::test]
async fn the_heartbeat_is_answered() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    assert_eq!(client.ok("$ping", "ping", json!({})).await, json!({}));
}

/// What a browser's client learns with a plain GET after a failed upgrade.
async fn plain_get(server: &TestServer, query: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.server.addr()).await.unwrap();
    let request = format!("GET /ws{query} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_plain_get_says_whether_the_token_is_refused() {
    let server = TestServer::start().await;
    let refused = plain_get(&server, "?token=reject").await;
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with("bad token"), "{refused}");
    let fine = plain_get(&server, "?token=1").await;
    assert!(fine.starts_with("HTTP/1.1 400"), "{fine}");
}
