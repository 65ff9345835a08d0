//! A deterministic simulation of the fan-out, driving the real hub state,
//! registry, streams, subscriptions and catch-up machine through random
//! interleavings of everything that can happen to them: commits whose
//! hand-off to the hub is late, out of order or lost (as a broker loses
//! messages), subscriptions registering, snapshotting, resuming and leaving
//! at any point, streams starting from any subscription's position, history
//! reads failing, history trimmed, and hole repairs; with every group in a
//! lane, lanes run at random moments (far behind the hub or right after
//! it), and with tight lane limits they drop changes. After each run a
//! checker replays the complete log of commits and compares, for every
//! subscription, the exact events it received with the events it should
//! have received, and its view with the database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::hub::{Command, HubState};
use super::lane::{self, Lane, Scheduler};
use super::registry::Lanes;
use super::sequence::{Action, CatchUp};
use super::sink::{Outbound, Sink};
use super::subscription::Subscription;
use super::{Catalog, History, RouteInfo, Watch};
use crate::change::{Action as Act, Change};
use crate::error::Error;
use crate::filter::{FieldAccess, Filter};
use crate::model::{Model, Row, Value};
use crate::store::history::Page;

mod sim;
use sim::{LaneMode, Sim};

#[allow(dead_code)]
#[derive(crate::Model)]
#[wyrm(route = "item")]
struct Item {
    id: i32,
    #[wyrm(update)]
    list: i32,
    #[wyrm(update)]
    n: i32,
}

/// A small deterministic random sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The simulated database: rows, the position counter, the history.
#[derive(Default)]
struct Database {
    rows: BTreeMap<i64, Row>,
    head: u64,
    history: BTreeMap<u64, String>,
    /// Keep only this many history entries (None: all).
    keep: Option<u64>,
    /// Fail this many of the next history reads.
    failing: u32,
}

struct SimHistory(Arc<Mutex<Database>>);

impl History for SimHistory {
    fn page(&self, _route: &'static str, after: u64, limit: usize) -> Result<Page, Error> {
        let mut db = self.0.lock();
        if db.failing > 0 {
            db.failing -= 1;
            return Err(Error::Internal("the database is restarting".into()));
        }
        // Small pages, so paging is exercised.
        let entries = db.history.range(after + 1..).take(limit.min(3)).map(|(p, b)| (*p, b.clone())).collect();
        Ok(Page { entries, head: db.head })
    }
}

#[derive(Debug, Clone)]
enum Frame {
    Reply(u64),
    Event { seq: u64, pos: u64, action: Act, data: serde_json::Value },
    Gap,
}

#[derive(Default)]
struct SimSink(Mutex<Vec<Frame>>);

impl Sink for SimSink {
    fn push(&self, frame: Outbound) -> bool {
        let frame = match frame {
            Outbound::Event { seq, event, .. } => Frame::Event {
                seq,
                pos: event.pos,
                action: event.action,
                data: serde_json::from_str(&event.data).unwrap(),
            },
            Outbound::Frame(text) if text.contains("\"gap\"") => Frame::Gap,
            Outbound::Frame(text) => Frame::Reply(text.parse().unwrap()),
        };
        self.0.lock().push(frame);
        true
    }

    fn send(&self, frame: Outbound) -> BoxFuture<'_, bool> {
        let queued = self.push(frame);
        Box::pin(async move { queued })
    }
}

enum Phase {
    Registered,
    CatchingUp(CatchUp),
    /// Its `Start` command waits in the hub's queue.
    Starting(CatchUp),
    Live,
    Gone,
}

struct Client {
    sub: Arc<Subscription>,
    /// The answer to its `Register` or `Start` command, until it comes.
    waiting: Option<oneshot::Receiver<()>>,
    sink: Arc<SimSink>,
    list: Option<i64>,
    phase: Phase,
    /// For a resume: the position the client's view stood at.
    resume_from: Option<(u64, BTreeMap<i64, serde_json::Value>)>,
    /// The position its reply accounts for, and the view it started with.
    start: Option<(u64, BTreeMap<i64, serde_json::Value>)>,
}

fn filter(list: Option<i64>) -> Filter {
    let json = match list {
        Some(l) => serde_json::json!({ "list": l }),
        None => serde_json::json!({}),
    };
    Filter::parse(Item::FIELDS, &json, FieldAccess::All).unwrap()
}

fn published(row: &Row) -> serde_json::Value {
    crate::record::published(Item::FIELDS, row)
}

fn view_at(log: &[Change], pos: u64, filter: &Filter) -> BTreeMap<i64, serde_json::Value> {
    let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
    for change in log.iter().take_while(|c| c.pos <= pos) {
        let id = |r: &Row| match r[0] {
            Value::Int(i) => i,
            _ => unreachable!(),
        };
        match (&change.old, &change.new) {
            (_, Some(new)) => rows.insert(id(new), new.clone()),
            (Some(old), None) => rows.remove(&id(old)),
            (None, None) => unreachable!(),
        };
    }
    rows.iter().filter(|(_, r)| filter.matches(r)).map(|(id, r)| (*id, published(r))).collect()
}

fn traced(trace: bool, client: u64, action: Action) -> Action {
    if trace {
        eprintln!("  client {client} action {action:?}");
    }
    action
}

/// A gone client's view at its last position, as a resume starts from.
fn replay(client: &Client) -> Option<(u64, BTreeMap<i64, serde_json::Value>)> {
    let (through, view) = client.start.clone()?;
    let mut view = view;
    let mut at = through;
    for frame in client.sink.0.lock().iter() {
        match frame {
            Frame::Event { pos, action, data, .. } => {
                apply(&mut view, *action, data);
                at = *pos;
            }
            Frame::Gap => return None,
            Frame::Reply(_) => {}
        }
    }
    Some((at, view))
}

fn apply(view: &mut BTreeMap<i64, serde_json::Value>, action: Act, data: &serde_json::Value) {
    let id = data["id"].as_i64().unwrap();
    match action {
        Act::Created => assert!(view.insert(id, data.clone()).is_none(), "created twice: {data}"),
        Act::Updated => {
            let row = view.get_mut(&id).unwrap_or_else(|| panic!("update of an unseen row: {data}"));
            for (k, v) in data.as_object().unwrap() {
                row[k] = v.clone();
            }
        }
        Act::Deleted => assert!(view.remove(&id).is_some(), "delete of an unseen row: {data}"),
    }
}

#[test]
fn every_interleaving_delivers_every_change_once_in_order() {
    let seeds = match std::env::var("SIM_SEED") {
        Ok(s) => s.parse().unwrap()..s.parse::<u64>().unwrap() + 1,
        Err(_) => 0..400,
    };
    for seed in seeds {
        let mode = if seed % 2 == 0 { LaneMode::Scanning } else { LaneMode::Every };
        let mut sim = Sim::new(seed, None, mode);
        sim.run(400);
        eprintln!("seed {seed}");
        sim.check();
        assert_eq!(sim.gaps, 0, "seed {seed}: a gap although history kept everything");
    }
}

#[test]
fn with_history_trimmed_a_subscription_is_told_of_a_gap_never_misled() {
    let mut gaps = 0;
    let seeds = match std::env::var("SIM_SEED") {
        Ok(s) => s.parse().unwrap()..s.parse::<u64>().unwrap() + 1,
        Err(_) => 0..400,
    };
    for seed in seeds {
        let mode = if seed % 2 == 0 { LaneMode::Scanning } else { LaneMode::Every };
        let mut sim = Sim::new(seed, Some(4), mode);
        sim.run(400);
        eprintln!("seed {seed}");
        sim.check();
        gaps += sim.gaps;
    }
    assert!(gaps > 0, "the trimmed runs never needed history they had lost");
}

#[test]
fn a_lane_that_falls_behind_ends_live_members_with_a_gap_and_starting_ones_read_history() {
    let seeds = match std::env::var("SIM_SEED") {
        Ok(s) => s.parse().unwrap()..s.parse::<u64>().unwrap() + 1,
        Err(_) => 0..200,
    };
    let mut gaps = 0;
    for seed in seeds {
        let mut sim = Sim::new(seed, None, LaneMode::Tight);
        sim.run(400);
        eprintln!("seed {seed}");
        sim.check();
        gaps += sim.gaps;
    }
    assert!(gaps > 0, "no lane ever fell behind");
}
