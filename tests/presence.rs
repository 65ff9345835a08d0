//! Presence, channels and server push on one real server: member lists and
//! their diffs, the app's hooks refusing with structured errors, the
//! bounds per connection and in bytes, channel order, `to_user`, and the
//! slow-consumer rule for channel messages. Across processes:
//! `tests/presence_cluster.rs`.
mod common;

use common::*;
use serde_json::{json, Value};
use wyrmhole::ConnectionConfig;

fn ids(members: &Value) -> Vec<String> {
    let mut ids: Vec<String> = members.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().into()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn members_get_the_list_then_joins_updates_and_leaves() {
    let server = TestServer::start().await;
    let mut ann = server.client_as(1).await;
    let mut bob = server.client_as(2).await;
    let joined = ann.ok("$presence", "join", json!({"topic": "room:1", "meta": {"colour": "red"}})).await;
    let ann_id = joined["id"].as_str().unwrap().to_owned();
    assert_eq!(joined["members"], json!([{"id": ann_id, "user": 1, "name": null, "meta": {"colour": "red"}}]));

    let joined = bob.ok("$presence", "join", json!({"topic": "room:1"})).await;
    let bob_id = joined["id"].as_str().unwrap().to_owned();
    let mut both = vec![ann_id.clone(), bob_id.clone()];
    both.sort();
    assert_eq!(ids(&joined["members"]), both, "the list holds everyone, the joiner too");
    let diff = ann.next_push().await;
    assert_eq!((diff["type"].as_str(), diff["event"].as_str()), (Some("presence"), Some("join")));
    assert_eq!((diff["topic"].as_str(), diff["member"]["id"].as_str()), (Some("room:1"), Some(bob_id.as_str())));

    bob.ok("$presence", "update", json!({"topic": "room:1", "meta": {"editing": 12}})).await;
    let diff = ann.next_push().await;
    assert_eq!((diff["event"].as_str(), &diff["member"]["meta"]), (Some("update"), &json!({"editing": 12})));
    assert_eq!(bob.next_push().await["event"], "update", "the member itself is told too");
    assert_eq!(server.app.presence_members("room:1").len(), 2);

    // A connection that ends leaves every topic it joined.
    drop(bob);
    let diff = ann.next_push().await;
    assert_eq!((diff["event"].as_str(), diff["member"]["id"].as_str()), (Some("leave"), Some(bob_id.as_str())));
    ann.ok("$presence", "leave", json!({"topic": "room:1"})).await;
    assert!(server.app.presence_members("room:1").is_empty());
    assert!(ann.pushes.is_empty(), "nothing after its own leave: {:?}", ann.pushes);
}

#[tokio::test]
async fn refusals_are_structured_errors_and_bounds_hold() {
    let config = ConnectionConfig { max_presence_topics: 2, max_channels: 1, max_message_bytes: 1000, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut one = server.client_as(1).await;
    let mut two = server.client_as(2).await;
    let join = |topic: &str, meta: Value| json!({"topic": topic, "meta": meta});

    // The hooks: a topic no pattern covers, and one the identity may not join.
    let e = two.err("$presence", "join", join("elsewhere:1", json!({}))).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert_eq!(two.err("$presence", "join", join("staff:1", json!({}))).await["code"], "forbidden");
    one.ok("$presence", "join", join("staff:1", json!({}))).await;

    // Sizes and shapes.
    let e = two.err("$presence", "join", join("room:1", json!({"bio": "x".repeat(1100)}))).await;
    assert_eq!(e["code"], "bad_args");
    assert!(e["fields"]["meta"][0].as_str().unwrap().contains("at most 1024"), "{e}");
    assert!(two.err("$presence", "join", join("room:1", json!([1]))).await["fields"]["meta"].is_array());
    let e = two.err("$presence", "join", join(&format!("room:{}", "x".repeat(300)), json!({}))).await;
    assert!(e["fields"]["topic"].is_array(), "{e}");
    let e = two.err("$presence", "join", json!({"topic": "room:1", "colour": 1})).await;
    assert!(e["fields"]["colour"].is_array(), "unknown arguments are named: {e}");
    assert_eq!(two.err("$presence", "wave", json!({})).await["code"], "unknown_verb");
    assert_eq!(two.err("$presence", "update", join("room:1", json!({}))).await["code"], "bad_args", "not joined");

    // Topics per connection: two, then too_many_topics until one is left.
    two.ok("$presence", "join", join("room:1", json!({}))).await;
    assert_eq!(two.err("$presence", "join", join("room:1", json!({}))).await["code"], "bad_args", "joined twice");
    two.ok("$presence", "join", join("room:2", json!({}))).await;
    let e = two.err("$presence", "join", join("room:3", json!({}))).await;
    assert_eq!((e["code"].as_str(), e["limit"].as_u64()), (Some("too_many_topics"), Some(2)), "{e}");
    two.ok("$presence", "leave", json!({"topic": "room:1"})).await;
    two.ok("$presence", "join", join("room:3", json!({}))).await;

    // Channels: the hook, the cap per connection, the message size.
    assert_eq!(two.err("$channel", "subscribe", json!({"channel": "gossip"})).await["code"], "forbidden");
    two.ok("$channel", "subscribe", json!({"channel": "news:1"})).await;
    let e = two.err("$channel", "subscribe", json!({"channel": "news:2"})).await;
    assert_eq!((e["code"].as_str(), e["limit"].as_u64()), (Some("too_many_topics"), Some(1)));
    let e = two.err("$channel", "publish", json!({"channel": "news:1", "data": 1})).await;
    assert_eq!(e["code"], "forbidden", "user 2 may only listen: {e}");
    let e = one.err("$channel", "publish", json!({"channel": "news:1", "data": "x".repeat(1000)})).await;
    assert!(e["fields"]["data"][0].as_str().unwrap().contains("at most 1000"), "{e}");
    assert!(server.app.publish("news:1", &json!("x".repeat(1000))).is_err(), "server code has the same bound");
    assert!(server.app.to_user(2, &json!("x".repeat(1000))).is_err());
    one.ok("$channel", "publish", json!({"channel": "news:1", "data": {"n": 1}})).await;
    assert_eq!(two.next_push().await, json!({"type": "message", "channel": "news:1", "data": {"n": 1}}));
}

#[tokio::test]
async fn a_member_list_larger_than_a_reply_may_be_is_refused_and_nobody_joins() {
    let server = TestServer::start_with(ConnectionConfig { max_reply_bytes: 1000, ..test_config() }).await;
    let mut members = Vec::new();
    let meta = json!({"bio": "x".repeat(200)});
    loop {
        let mut c = server.client().await;
        let reply = c.call("$presence", "join", json!({"topic": "room:1", "meta": meta})).await;
        if reply["ok"] == false {
            let e = &reply["error"];
            assert_eq!((e["code"].as_str(), e["limit"].as_u64()), (Some("reply_too_large"), Some(1000)), "{e}");
            break;
        }
        members.push(c);
        assert!(members.len() < 10, "1000 bytes cannot hold 10 members of 200-byte metas");
    }
    assert_eq!(server.app.presence_members("room:1").len(), members.len(), "the refused one did not join");
    members[0].settle(&server).await;
    assert!(members[0].pushes.iter().all(|p| p["event"] == "join"), "{:?}", members[0].pushes);
    assert_eq!(members[0].pushes.len(), members.len() - 1, "no join of the refused one");
}

#[tokio::test]
async fn channel_messages_arrive_in_publish_order_and_pushes_reach_every_connection_of_the_user() {
    let server = TestServer::start().await;
    let mut readers = Vec::new();
    for user in [2, 2, 3] {
        let mut c = server.client_as(user).await;
        c.ok("$channel", "subscribe", json!({"channel": "news:1"})).await;
        readers.push(c);
    }
    let mut speaker = server.client_as(1).await;
    for n in 0..50 {
        server.app.publish("news:1", &json!({"n": n})).unwrap();
    }
    speaker.ok("$channel", "publish", json!({"channel": "news:1", "data": {"n": 50}})).await;
    server.app.publish("news:2", &json!("nobody listens")).unwrap();
    for reader in &mut readers {
        for n in 0..=50 {
            let frame = reader.next_push().await;
            assert_eq!((frame["channel"].as_str(), &frame["data"]["n"]), (Some("news:1"), &json!(n)), "{frame}");
        }
    }
    server.app.to_user(2, &json!({"hello": "two"})).unwrap();
    for reader in &mut readers[..2] {
        assert_eq!(reader.next_push().await, json!({"type": "push", "data": {"hello": "two"}}));
    }
    // User 3 got nothing more; unsubscribing stops the messages.
    readers[2].ok("$channel", "unsubscribe", json!({"channel": "news:1"})).await;
    assert_eq!(readers[2].err("$channel", "unsubscribe", json!({"channel": "news:1"})).await["code"], "bad_args");
    server.app.publish("news:1", &json!("after")).unwrap();
    assert_eq!(readers[0].next_push().await["data"], "after");
    readers[2].settle(&server).await;
    assert!(readers[2].pushes.is_empty(), "{:?}", readers[2].pushes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connections_pipelined_publishes_arrive_in_the_order_sent() {
    let server = TestServer::start().await;
    let mut reader = server.client_as(2).await;
    reader.ok("$channel", "subscribe", json!({"channel": "news:7"})).await;
    let mut speaker = server.client_as(1).await;
    const N: u64 = 300;
    // Sent without waiting for replies: each request runs as a task of its
    // own, so only the connection's order can keep them in sequence.
    for n in 0..N {
        let frame =
            json!({"id": n, "route": "$channel", "verb": "publish", "args": {"channel": "news:7", "data": {"n": n}}});
        speaker.send_text(frame.to_string()).await;
    }
    for _ in 0..N {
        assert_eq!(speaker.next_reply().await["ok"], true);
    }
    for n in 0..N {
        let frame = reader.next_push().await;
        assert_eq!(frame["data"]["n"], json!(n), "{frame}");
    }
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_closed_as_a_slow_consumer() {
    let config = ConnectionConfig { queue_bytes: 64 * 1024, ..test_config() };
    let server = TestServer::start_with(config).await;
    let mut idle = server.client().await;
    idle.ok("$channel", "subscribe", json!({"channel": "news:1"})).await;
    let big = json!("x".repeat(16 * 1024));
    // 32 MiB: more than the socket buffers hold, so the idle client's queue fills.
    for _ in 0..2048 {
        server.app.publish("news:1", &big).unwrap();
    }
    let (code, reason) = idle.closed().await.expect("a close frame");
    assert_eq!(code, 4008, "{reason}");
}
