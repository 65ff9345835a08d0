//! Presence registries of several "processes" joined by an in-memory bus
//! that can lose messages, as Redis pub/sub does while it is away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::*;

/// Keeps the frames pushed to one connection.
#[derive(Default)]
struct Capture(Mutex<Vec<Value>>);

impl Sink for Capture {
    fn push(&self, frame: Outbound) -> bool {
        self.0.lock().push(serde_json::from_str(&frame.into_text()).unwrap());
        true
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.push(frame)))
    }
}

/// Every message any node sent, until delivered; `up: false` loses them.
#[derive(Default)]
struct Bus {
    queue: Mutex<Vec<Wire>>,
    up: std::sync::atomic::AtomicBool,
}

impl Link for Bus {
    fn send(&self, wire: &Wire) -> bool {
        if self.up.load(Ordering::Relaxed) {
            self.queue.lock().push(wire.clone());
        }
        true
    }

    fn connected(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// Nodes on one bus.
struct Cluster {
    bus: Arc<Bus>,
    nodes: Vec<Arc<Presence>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let bus = Arc::new(Bus::default());
        bus.up.store(true, Ordering::Relaxed);
        let nodes = (0..n)
            .map(|_| {
                let p = Presence::new();
                p.set_link(bus.clone());
                p
            })
            .collect();
        Cluster { bus, nodes }
    }

    /// Delivers what is on the bus to every node, until it is quiet.
    fn flush(&self) {
        loop {
            let batch: Vec<Wire> = std::mem::take(&mut *self.bus.queue.lock());
            if batch.is_empty() {
                return;
            }
            for wire in batch {
                for node in &self.nodes {
                    node.receive(wire.clone());
                }
            }
        }
    }

    /// One heartbeat round on every node, then the bus delivered.
    fn tick(&self, timeout: Duration) {
        for node in &self.nodes {
            node.tick(timeout);
        }
        self.flush();
    }

    fn ids(&self, node: usize, topic: &str) -> BTreeSet<String> {
        self.nodes[node].members(topic).into_iter().map(|m| m.id).collect()
    }
}

/// A connection joined to `topic` on `presence`; returns its member id.
fn join(presence: &Presence, conn: u64, sink: &Arc<Capture>, topic: &str, name: &str) -> String {
    let id = presence.member_id();
    let member = Member { id: id.clone(), user: Some(conn as i64), name: Some(name.into()), meta: json!({}) };
    let reply = |members: &[&Member]| Ok(json!({"type": "reply", "members": members}).to_string());
    presence.join(conn, sink.clone(), topic, member, reply).unwrap();
    id
}

/// What a client's member list is, built from its reply and diffs.
fn view(sink: &Capture) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for frame in sink.0.lock().iter() {
        match frame["type"].as_str() {
            Some("reply") => {
                ids = frame["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().into()).collect()
            }
            Some("presence") => {
                let id = frame["member"]["id"].as_str().unwrap().to_owned();
                match frame["event"].as_str().unwrap() {
                    "join" => assert!(ids.insert(id), "joined twice: {frame}"),
                    "leave" => assert!(ids.remove(&id), "left without joining: {frame}"),
                    _ => assert!(ids.contains(&id), "update of a stranger: {frame}"),
                }
            }
            _ => {}
        }
    }
    ids
}

#[test]
fn joiners_get_the_list_then_every_change_in_order() {
    let presence = Presence::new();
    let (a, b) = (Arc::new(Capture::default()), Arc::new(Capture::default()));
    let id_a = join(&presence, 1, &a, "t", "ann");
    let id_b = join(&presence, 2, &b, "t", "bob");
    assert_eq!(b.0.lock()[0]["members"].as_array().unwrap().len(), 2, "the list includes the joiner");
    assert_eq!(a.0.lock()[1]["event"], "join");
    assert!(presence.update(2, "t", json!({"editing": 7})).is_some());
    assert_eq!(a.0.lock()[2]["member"]["meta"]["editing"], 7);
    assert_eq!(b.0.lock()[1]["event"], "update", "the member itself is told too");
    assert!(presence.join(1, a.clone(), "t", presence_member(&presence), |_| Ok(String::new())).is_err());
    let refused = presence.join(3, a.clone(), "t", presence_member(&presence), |_| Err(Error::Internal("no".into())));
    assert!(refused.is_err() && presence.members("t").len() == 2, "a refused reply joins nobody");
    assert!(presence.leave(2, "t"));
    assert!(!presence.leave(2, "t"), "leaving twice");
    assert_eq!(view(&a), BTreeSet::from([id_a]));
    assert!(!view(&b).contains(&id_b) || b.0.lock().len() == 2, "nothing after its leave");
    assert!(presence.leave(1, "t"));
    assert!(presence.inner.lock().topics.is_empty(), "an empty topic is forgotten");
}

fn presence_member(presence: &Presence) -> Member {
    Member { id: presence.member_id(), user: None, name: None, meta: json!({}) }
}

#[test]
fn nodes_see_each_others_members_and_repair_a_lost_message() {
    let cluster = Cluster::new(2);
    let (a, b) = (Arc::new(Capture::default()), Arc::new(Capture::default()));
    join(&cluster.nodes[0], 1, &a, "t", "ann");
    cluster.tick(TIMEOUT);
    join(&cluster.nodes[1], 2, &b, "t", "bob");
    cluster.tick(TIMEOUT);
    let both = cluster.ids(0, "t");
    assert_eq!(both.len(), 2);
    assert_eq!(cluster.ids(1, "t"), both);
    assert_eq!((view(&a), view(&b)), (both.clone(), both.clone()));

    // A join is lost (Redis away for a moment); the next message shows the gap.
    cluster.bus.up.store(false, Ordering::Relaxed);
    let c = Arc::new(Capture::default());
    let id_c = join(&cluster.nodes[1], 3, &c, "t", "cy");
    cluster.bus.up.store(true, Ordering::Relaxed);
    assert!(!cluster.ids(0, "t").contains(&id_c));
    cluster.tick(TIMEOUT); // heartbeat shows the gap → sync → state
    cluster.tick(TIMEOUT);
    let all = cluster.ids(1, "t");
    assert_eq!(all.len(), 3);
    assert_eq!(cluster.ids(0, "t"), all);
    for sink in [&a, &b, &c] {
        assert_eq!(view(sink), all, "every client's list is the true set");
    }
}

#[test]
fn a_silent_node_s_members_leave_and_come_back_with_it() {
    let cluster = Cluster::new(2);
    let (a, b) = (Arc::new(Capture::default()), Arc::new(Capture::default()));
    join(&cluster.nodes[0], 1, &a, "t", "ann");
    let id_b = join(&cluster.nodes[1], 2, &b, "t", "bob");
    cluster.tick(TIMEOUT);
    cluster.tick(TIMEOUT);
    assert!(view(&a).contains(&id_b));

    // Nothing heard from anyone (Redis away) for longer than the timeout.
    cluster.bus.up.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20));
    cluster.tick(Duration::from_millis(10));
    assert!(!view(&a).contains(&id_b), "node 1's member left at node 0");
    assert_eq!(view(&b).len(), 1, "and node 0's at node 1");
    // Meanwhile node 1's member leaves and another joins: no ghost when it is back.
    assert!(cluster.nodes[1].leave(2, "t"));
    let d = Arc::new(Capture::default());
    let id_d = join(&cluster.nodes[1], 4, &d, "t", "dee");
    cluster.bus.up.store(true, Ordering::Relaxed);
    for node in &cluster.nodes {
        node.resync(); // what the listener does when it is back
    }
    cluster.flush();
    cluster.tick(TIMEOUT);
    let all = cluster.ids(0, "t");
    assert!(all.contains(&id_d) && !all.contains(&id_b), "{all:?}");
    assert_eq!(cluster.ids(1, "t"), all);
    assert_eq!((view(&a), view(&d)), (all.clone(), all));
}

#[test]
fn a_node_shutting_down_takes_its_members_at_once() {
    let cluster = Cluster::new(2);
    let a = Arc::new(Capture::default());
    join(&cluster.nodes[0], 1, &a, "t", "ann");
    join(&cluster.nodes[1], 2, &Arc::new(Capture::default()), "t", "bob");
    cluster.tick(TIMEOUT);
    assert_eq!(view(&a).len(), 2);
    cluster.nodes[1].shut_down();
    cluster.flush();
    assert_eq!(view(&a).len(), 1);
}
