//! Presence and channels across real processes (the todo example) sharing
//! a real redis-server: members of one process reach the others, a
//! SIGKILLed process's members leave within the documented bound, a Redis
//! restart converges without ghosts, many clients joining and leaving at
//! once end with every member list equal to the true set, and concurrent
//! publishers on two processes are seen in one order everywhere.
//!
//! Needs `redis-server` on the PATH and the example binary (`cargo build
//! --example todo`), like `tests/multiprocess.rs`.
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{free_port, redis_server, todo_server, Proc};
use common::*;
use serde_json::{json, Value};

/// What the todo example's page does: `todo-list:<id>` presence.
const TOPIC: &str = "todo-list:1";

/// A member of the topic: its connection, and its view of the member list,
/// built from its join reply and the diffs after it.
struct Member {
    client: Client,
    id: String,
    /// The user id the server gave this identity.
    user: Value,
    view: BTreeSet<String>,
}

impl Member {
    async fn join(url: &str, name: &str) -> Member {
        let mut client = Client::connect(&format!("{url}?token={name}")).await;
        let reply = client.ok("$presence", "join", json!({"topic": TOPIC, "meta": {"name": name}})).await;
        let members = reply["members"].as_array().unwrap();
        let view = members.iter().map(|m| m["id"].as_str().unwrap().into()).collect();
        let user = members.iter().find(|m| m["id"] == reply["id"]).unwrap()["user"].clone();
        Member { client, id: reply["id"].as_str().unwrap().into(), user, view }
    }

    /// Applies one diff; a join of a member already there, or a leave of
    /// one that is not, is a bug.
    fn apply(&mut self, frame: &Value) {
        assert_eq!(frame["topic"], TOPIC, "{frame}");
        let id = frame["member"]["id"].as_str().unwrap().to_owned();
        match frame["event"].as_str().unwrap() {
            "join" => assert!(self.view.insert(id), "joined twice: {frame}"),
            "leave" => assert!(self.view.remove(&id), "left without joining: {frame}"),
            "update" => assert!(self.view.contains(&id), "update of a stranger: {frame}"),
            other => panic!("unknown presence event {other}"),
        }
    }

    /// Reads diffs until the view is `truth`, for up to `within`.
    async fn converge(&mut self, truth: &BTreeSet<String>, within: Duration) {
        let deadline = Instant::now() + within;
        while self.view != *truth {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.client.next_push())
                .await
                .unwrap_or_else(|_| panic!("view {:?} never became {truth:?}", self.view));
            self.apply(&frame);
        }
    }
}

/// redis-server and two todo processes on one database.
struct Cluster {
    _dir: tempfile::TempDir,
    _database: database::TestDb,
    redis_port: u16,
    redis: Option<Proc>,
    servers: Vec<(Proc, String)>,
}

impl Cluster {
    fn start(processes: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (db, database) = database::fresh();
        let redis_port = free_port();
        let redis = redis_server(redis_port, dir.path());
        let url = format!("redis://127.0.0.1:{redis_port}");
        let servers = (0..processes).map(|_| todo_server(&db, &url)).collect();
        Cluster { _dir: dir, _database: database, redis_port, redis: Some(redis), servers }
    }

    fn url(&self, i: usize) -> String {
        self.servers[i].1.clone()
    }
}

async fn converge_all(members: &mut [Member], within: Duration) {
    let truth: BTreeSet<String> = members.iter().map(|m| m.id.clone()).collect();
    for m in members.iter_mut() {
        m.converge(&truth, within).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cross_processes_and_a_killed_process_members_leave_within_the_bound() {
    let mut cluster = Cluster::start(2);
    let mut ann = Member::join(&cluster.url(0), "ann").await;
    let bob = Member::join(&cluster.url(1), "bob").await;
    let mut both = vec![ann, bob];
    converge_all(&mut both, Duration::from_secs(15)).await;
    let bob = both.pop().unwrap();
    ann = both.pop().unwrap();

    // SIGKILL: no leave is ever sent; the heartbeats stop.
    let killed = Instant::now();
    drop(cluster.servers.pop());
    let alone = BTreeSet::from([ann.id.clone()]);
    ann.converge(&alone, Duration::from_secs(30)).await;
    let took = killed.elapsed();
    eprintln!("a SIGKILLed process's member left the others' lists after {took:?}");
    // The documented bound is 6 s (5 s without a heartbeat, checked every
    // second); the slack is for a loaded machine, where timers run late.
    assert!(took <= Duration::from_secs(6) + Duration::from_secs(6), "left after {took:?}");
    assert!(!ann.view.contains(&bob.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_converges_without_ghosts() {
    let mut cluster = Cluster::start(2);
    let mut members = vec![
        Member::join(&cluster.url(0), "ann").await,
        Member::join(&cluster.url(1), "bob").await,
        Member::join(&cluster.url(1), "cy").await,
    ];
    converge_all(&mut members, Duration::from_secs(15)).await;

    // Redis goes away; meanwhile one member leaves and another joins.
    drop(cluster.redis.take());
    let gone = members.pop().unwrap();
    drop(gone);
    members.push(Member::join(&cluster.url(1), "dee").await);
    members.push(Member::join(&cluster.url(0), "eve").await);
    // Longer than the heartbeat timeout: each process drops the other's
    // members meanwhile, and takes them back from its state afterwards.
    tokio::time::sleep(Duration::from_secs(7)).await;
    cluster.redis = Some(redis_server(cluster.redis_port, cluster._dir.path()));
    converge_all(&mut members, Duration::from_secs(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_joining_and_leaving_at_once_end_with_the_true_set() {
    let cluster = Cluster::start(2);
    let urls = [cluster.url(0), cluster.url(1)];
    let joining: Vec<_> = (0..40)
        .map(|i| {
            let url = urls[i % 2].clone();
            tokio::spawn(async move { Member::join(&url, &format!("u{i}")).await })
        })
        .collect();
    let mut members = Vec::new();
    for j in joining {
        members.push(j.await.unwrap());
    }
    // Half leave at once: some by asking, some by hanging up.
    let leaving: Vec<Member> = members.drain(..20).collect();
    let left: Vec<_> = leaving
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            tokio::spawn(async move {
                if i % 2 == 0 {
                    m.client.ok("$presence", "leave", json!({"topic": TOPIC})).await;
                }
            })
        })
        .collect();
    for l in left {
        l.await.unwrap();
    }
    converge_all(&mut members, Duration::from_secs(20)).await;
}

/// `POST` to the todo example's admin API on the process serving `ws_url`.
async fn post(ws_url: &str, path: &str, body: &Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_processes_are_seen_in_one_order_everywhere() {
    let cluster = Cluster::start(2);
    let channel = "todo-list:9";
    let mut readers = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(&cluster.url(i % 2)).await;
        c.ok("$channel", "subscribe", json!({"channel": channel})).await;
        readers.push(c);
    }
    // Until both processes listen on Redis, a message stays in its own
    // process: warm up until every reader has heard from both sides.
    let mut publishers = Vec::new();
    for (i, name) in ["pa", "pb"].into_iter().enumerate() {
        publishers.push(Client::connect(&format!("{}?token={name}", cluster.url(i))).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for reader in &mut readers {
        let mut heard = BTreeSet::new();
        while heard.len() < 2 {
            assert!(Instant::now() < deadline, "a reader never heard both processes' publishers: {heard:?}");
            for (i, p) in publishers.iter_mut().enumerate() {
                p.ok("$channel", "publish", json!({"channel": channel, "data": {"warm": i}})).await;
            }
            if let Ok(frame) = tokio::time::timeout(Duration::from_millis(300), reader.next_push()).await {
                heard.insert(frame["data"]["warm"].to_string());
            }
        }
    }
    publishers[0].ok("$channel", "publish", json!({"channel": channel, "data": "go"})).await;
    for reader in &mut readers {
        while reader.next_push().await["data"] != "go" {}
    }

    const EACH: u64 = 100;
    let sending: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            tokio::spawn(async move {
                for n in 0..EACH {
                    p.ok("$channel", "publish", json!({"channel": channel, "data": {"from": i, "n": n}})).await;
                }
            })
        })
        .collect();
    for s in sending {
        s.await.unwrap();
    }
    let mut orders = Vec::new();
    for reader in &mut readers {
        let mut order: Vec<Value> = Vec::new();
        let mut next = [0u64; 2];
        while order.iter().filter(|d| d.get("warm").is_none()).count() < 2 * EACH as usize {
            let data = reader.next_push().await["data"].clone();
            // A warm-up message accepted before "go" may still be ordered
            // after it: a reply means accepted, not yet placed by Redis
            // (docs/design/presence.md). It is the same for everyone.
            if data.get("warm").is_some() {
                order.push(data);
                continue;
            }
            let from =
                data["from"].as_u64().unwrap_or_else(|| panic!("not a publisher's message (a duplicate?): {data}"));
            let from = from as usize;
            assert_eq!(data["n"].as_u64().unwrap(), next[from], "publisher {from}'s own order: {data}");
            next[from] += 1;
            order.push(data);
        }
        orders.push(order);
    }
    for order in &orders[1..] {
        assert_eq!(order, &orders[0], "every subscriber, on either process, sees one order");
    }

    // Server push to one user reaches their connections on both processes.
    let mut zed = Vec::new();
    for i in 0..2 {
        zed.push(Member::join(&cluster.url(i), "zed").await);
    }
    let user = zed[0].user.clone();
    post(&cluster.url(0), &format!("/admin/push/{user}"), &json!({"hello": "zed"})).await;
    for z in &mut zed {
        loop {
            let frame = z.client.next_push().await;
            if frame["type"] == "push" {
                assert_eq!(frame["data"], json!({"hello": "zed"}));
                break;
            }
        }
    }
}
