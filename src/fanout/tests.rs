//! Unit tests of `crate::fanout`.

use super::*;
use crate::model::Model;

pub(super) struct Quiet;

impl Broker for Quiet {
    fn publish(&self, _changes: &[Change]) {}

    fn listen(&self, _route: &'static str) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

pub(super) struct NoHistory;

impl History for NoHistory {
    fn page(&self, _route: &'static str, _after: u64, _limit: usize) -> Result<Page, Error> {
        Err(Error::Internal("no history here".into()))
    }
}

#[allow(dead_code)]
#[derive(crate::Model)]
#[wyrm(route = "item")]
struct Item {
    id: i32,
}

#[allow(dead_code)]
#[derive(crate::Model)]
#[wyrm(route = "other")]
struct Other {
    id: i32,
}

fn change<M: Model>() -> Change {
    let row: crate::model::Row = vec![crate::model::Value::Int(1)].into();
    Change::new(M::ROUTE, M::FIELDS, 0, None, Some(row))
}

#[test]
fn changes_from_another_process_are_dropped_not_waited_for_when_the_hub_queue_is_full() {
    let (hub, mut commands) = mpsc::channel(1);
    let upstream = Upstream { hubs: Hubs::of([(Item::ROUTE, hub)]), catalog: Arc::default(), watch: Arc::default() };
    upstream.offer(vec![change::<Item>()]);
    upstream.offer(vec![change::<Item>()]); // full: dropped at once (history fills the hole later)
    assert!(matches!(commands.try_recv(), Ok(Command::Changes(_))));
    assert!(commands.try_recv().is_err(), "the second batch was dropped");
}

#[test]
fn each_route_s_changes_go_to_its_own_hub_in_commit_order() {
    let (item_hub, mut items) = mpsc::channel(8);
    let (other_hub, mut others) = mpsc::channel(8);
    let hubs = Hubs::of([(Item::ROUTE, item_hub), (Other::ROUTE, other_hub)]);
    let mut commit = Vec::new();
    for (n, mut c) in [change::<Item>(), change::<Other>(), change::<Item>()].into_iter().enumerate() {
        c.pos = n as u64 + 1;
        commit.push(c);
    }
    let upstream = Upstream { hubs, catalog: Arc::default(), watch: Arc::default() };
    upstream.offer(commit);
    let positions = |command| match command {
        Ok(Command::Changes(changes)) => changes.iter().map(|c| (c.route, c.pos)).collect::<Vec<_>>(),
        _ => panic!("expected changes"),
    };
    assert_eq!(positions(items.try_recv()), [(Item::ROUTE, 1), (Item::ROUTE, 3)]);
    assert_eq!(positions(others.try_recv()), [(Other::ROUTE, 2)]);
}

#[test]
fn a_commit_waits_for_room_in_the_hub_queue() {
    let (hub, mut commands) = mpsc::channel(1);
    let fanout = Fanout {
        shared: Arc::new(Shared {
            hubs: Hubs::of([(Item::ROUTE, hub)]),
            broker: Arc::new(Quiet),
            catalog: Arc::default(),
            watch: Arc::default(),
            history: Arc::new(NoHistory),
            epoch: 1,
            next_id: AtomicU64::new(1),
        }),
    };
    fanout.committed(vec![change::<Item>()]);
    let (done_tx, done) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        fanout.committed(vec![change::<Item>()]); // the queue is full: waits
        done_tx.send(()).unwrap();
    });
    assert!(done.recv_timeout(Duration::from_millis(200)).is_err(), "the second commit waits for room");
    assert!(matches!(commands.blocking_recv(), Some(Command::Changes(_))));
    done.recv_timeout(Duration::from_secs(5)).expect("room made: the commit goes through");
    writer.join().unwrap();
    assert!(matches!(commands.blocking_recv(), Some(Command::Changes(_))));
}
