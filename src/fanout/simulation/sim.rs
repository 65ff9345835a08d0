//! The simulated world's driver: the hub, its lanes and the clients,
//! stepped at random from a seed, and the checker run after.

use super::*;

pub(super) struct Sim {
    rng: Rng,
    db: Arc<Mutex<Database>>,
    hub: HubState,
    /// Committed, not yet handed to the hub.
    in_flight: Vec<Change>,
    /// `Start` commands in the hub's queue, in order, with their client.
    starts: std::collections::VecDeque<(usize, u64)>,
    /// Every commit, for the checker.
    log: Vec<Change>,
    clients: Vec<Client>,
    clock: Instant,
    next_id: u64,
    pub(super) gaps: usize,
    /// Lanes with work, run at the simulation's whim.
    lanes: Arc<SimLanes>,
}

/// How the simulated hub uses lanes.
#[derive(Clone, Copy)]
pub(super) enum LaneMode {
    /// Only for scanning filters, which the simulation has none of.
    Scanning,
    /// Every group in a lane.
    Every,
    /// Every group in a lane that drops its changes beyond two.
    Tight,
}

#[derive(Default)]
struct SimLanes(Mutex<Vec<Arc<Lane>>>);

impl Scheduler for SimLanes {
    fn schedule(&self, lane: Arc<Lane>) {
        self.0.lock().push(lane);
    }
}

impl Sim {
    pub(super) fn new(seed: u64, keep: Option<u64>, mode: LaneMode) -> Sim {
        let db = Arc::new(Mutex::new(Database { keep, ..Database::default() }));
        let mut catalog = Catalog::default();
        catalog.insert(RouteInfo::of::<Item>());
        let sim_lanes = Arc::new(SimLanes::default());
        let lanes = Lanes {
            scheduler: sim_lanes.clone(),
            limits: match mode {
                LaneMode::Tight => lane::Limits { changes: 2, bytes: usize::MAX },
                _ => lane::Limits::default(),
            },
            every_group: !matches!(mode, LaneMode::Scanning),
            ended: Arc::default(),
        };
        let hub = HubState::new(
            Arc::new(SimHistory(db.clone())),
            Arc::new(catalog),
            Arc::new(Watch::default()),
            Some(Duration::from_secs(5)),
            lanes,
        );
        Sim {
            rng: Rng(seed),
            db,
            hub,
            in_flight: Vec::new(),
            starts: Default::default(),
            log: Vec::new(),
            clients: Vec::new(),
            clock: Instant::now(),
            next_id: 0,
            gaps: 0,
            lanes: sim_lanes,
        }
    }

    /// Runs one item of a random lane with work; false if none has any.
    fn run_lane(&mut self) -> bool {
        let ready = self.lanes.0.lock();
        if ready.is_empty() {
            return false;
        }
        let i = self.rng.below(ready.len() as u64) as usize;
        let lane = ready[i].clone();
        drop(ready);
        if !lane.run_one() {
            let mut ready = self.lanes.0.lock();
            if let Some(at) = ready.iter().position(|l| Arc::ptr_eq(l, &lane)) {
                ready.remove(at);
            }
        }
        true
    }

    fn commit(&mut self) {
        let mut db = self.db.lock();
        let id = self.rng.below(6) as i64 + 1;
        let old = db.rows.get(&id).cloned();
        let new = match self.rng.below(5) {
            0 => None,
            _ => Some(Row::from(vec![
                Value::Int(id),
                Value::Int(self.rng.below(3) as i64),
                Value::Int(self.rng.below(2) as i64),
            ])),
        };
        if old.is_none() && new.is_none() {
            return;
        }
        match &new {
            Some(row) => db.rows.insert(id, row.clone()),
            None => db.rows.remove(&id),
        };
        db.head += 1;
        let mut change = Change::new(Item::ROUTE, Item::FIELDS, 0, old, new);
        change.pos = db.head;
        let head = db.head;
        db.history.insert(head, change.to_wire().to_string());
        if let Some(keep) = db.keep {
            db.history.retain(|p, _| *p + keep > head);
        }
        drop(db);
        let wire = change.to_wire();
        self.log.push(Change::from_wire(&wire, Item::ROUTE, Item::FIELDS, 0).unwrap());
        self.in_flight.push(change);
    }

    /// Hands one committed change to the hub, in any order, or loses it.
    fn hand_off(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let at = self.rng.below(self.in_flight.len() as u64) as usize;
        let change = self.in_flight.remove(at);
        let lost = self.rng.chance(10);
        if std::env::var("SIM_TRACE").is_ok() {
            eprintln!("hand off {} {}", change.pos, if lost { "LOST" } else { "" });
        }
        if !lost {
            self.hub.apply(Command::Changes(vec![change]));
        }
    }

    fn subscribe(&mut self) {
        self.next_id += 1;
        let list = if self.rng.chance(30) { None } else { Some(self.rng.below(3) as i64) };
        // A client that left may come back with `resume`.
        let resume_from = self
            .rng
            .chance(40)
            .then(|| self.clients.iter().position(|c| matches!(c.phase, Phase::Gone)))
            .flatten()
            .and_then(|i| {
                let old = &self.clients[i];
                let (pos, view) = replay(old)?;
                Some((old.list, pos, view))
            });
        let (list, resume_from) = match resume_from {
            Some((list, pos, view)) => (list, Some((pos, view))),
            None => (list, None),
        };
        let sink = Arc::new(SimSink::default());
        let sub = Arc::new(Subscription::new(self.next_id, Item::ROUTE, sink.clone()));
        let (done, registered) = oneshot::channel();
        self.hub.apply(Command::Register(sub.clone(), filter(list), done));
        let waiting = Some(registered);
        self.clients.push(Client { sub, waiting, sink, list, phase: Phase::Registered, resume_from, start: None });
    }

    /// One step of client `i`'s sequence.
    fn step(&mut self, i: usize) {
        let trace = std::env::var("SIM_TRACE").is_ok();
        let client = &mut self.clients[i];
        if let Some(waiting) = &mut client.waiting {
            match waiting.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return, // its lane has not got to it
                _ => client.waiting = None,
            }
        }
        if trace && !matches!(client.phase, Phase::Live | Phase::Gone) {
            eprintln!("step client {} head {}", client.sub.id, self.db.lock().head);
        }
        match &mut client.phase {
            Phase::Registered => {
                // The snapshot (or the resume check), at the current head.
                let db = self.db.lock();
                let head = db.head;
                let (through, view) = match client.resume_from.take() {
                    Some((pos, view)) if pos == head || db.history.contains_key(&(pos + 1)) => (pos, view),
                    _ => {
                        let f = filter(client.list);
                        let view =
                            db.rows.iter().filter(|(_, r)| f.matches(r)).map(|(id, r)| (*id, published(r))).collect();
                        (head, view)
                    }
                };
                drop(db);
                client.sink.push(Outbound::Frame(through.to_string()));
                client.start = Some((through, view));
                client.phase = Phase::CatchingUp(CatchUp::new(through, head, filter(client.list)));
            }
            Phase::CatchingUp(catching) => match traced(trace, client.sub.id, catching.next(&client.sub)) {
                Action::Done => client.phase = if client.sub.is_closed() { Phase::Gone } else { Phase::Live },
                Action::Send(seq, d) => {
                    let event = Outbound::Event { sub: client.sub.id, seq, event: d };
                    client.sink.push(event);
                }
                Action::StartStream(fence) => {
                    // Queued like the real command; the client waits for it.
                    let Phase::CatchingUp(catching) = std::mem::replace(&mut client.phase, Phase::Registered) else {
                        unreachable!()
                    };
                    client.phase = Phase::Starting(catching);
                    self.starts.push_back((i, fence));
                }
                Action::ReadHistory(after) => {
                    let read = SimHistory(self.db.clone()).page(Item::ROUTE, after, 256);
                    let mut catalog = Catalog::default();
                    catalog.insert(RouteInfo::of::<Item>());
                    match read {
                        Ok(page) if page.continues(after) => {
                            catching.history(&client.sub, &catalog, after, &page).unwrap()
                        }
                        Ok(_) => {
                            client.sink.push(Outbound::Frame(crate::protocol::gap_frame(client.sub.id, "trimmed")));
                            self.hub.apply(Command::Unregister(client.sub.clone()));
                            client.phase = Phase::Gone;
                            self.gaps += 1;
                        }
                        Err(_) => {} // tried again at a later step, as the real task does
                    }
                }
            },
            Phase::Starting(_) => {}
            Phase::Live if client.sub.is_closed() => {
                client.phase = Phase::Gone;
                self.gaps += 1;
            }
            Phase::Live | Phase::Gone => {}
        }
    }

    /// The hub applies the oldest queued `Start`; its client goes on.
    fn apply_start(&mut self) {
        let Some((i, fence)) = self.starts.pop_front() else { return };
        let (done, started) = oneshot::channel();
        self.hub.apply(Command::Start(Item::ROUTE, fence, done));
        let client = &mut self.clients[i];
        client.waiting = Some(started);
        if let Phase::Starting(_) = client.phase {
            let Phase::Starting(catching) = std::mem::replace(&mut client.phase, Phase::Registered) else {
                unreachable!()
            };
            client.phase = Phase::CatchingUp(catching);
        }
    }

    fn leave(&mut self, i: usize) {
        let client = &mut self.clients[i];
        if !matches!(client.phase, Phase::Gone) {
            self.hub.apply(Command::Unregister(client.sub.clone()));
            client.phase = Phase::Gone;
        }
    }

    fn tick(&mut self) {
        if std::env::var("SIM_TRACE").is_ok() {
            eprintln!("tick");
        }
        self.clock += Duration::from_secs(1);
        self.hub.tick(self.clock);
    }

    pub(super) fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            match self.rng.below(100) {
                0..=24 => self.commit(),
                25..=44 => self.hand_off(),
                45..=49 => self.subscribe(),
                50..=52 if !self.clients.is_empty() => {
                    let i = self.rng.below(self.clients.len() as u64) as usize;
                    self.leave(i);
                }
                53..=55 => self.tick(),
                56 => self.db.lock().failing += 2,
                57..=61 => self.apply_start(),
                62..=71 => {
                    self.run_lane();
                }
                _ if !self.clients.is_empty() => {
                    let i = self.rng.below(self.clients.len() as u64) as usize;
                    self.step(i);
                }
                _ => {}
            }
        }
        // Quiesce: every commit reaches the hub or is lost for good, the hub
        // repairs what it can, every sequence runs to its end.
        self.db.lock().failing = 0;
        while !self.in_flight.is_empty() {
            self.hand_off();
        }
        for _ in 0..200 {
            while !self.starts.is_empty() {
                self.apply_start();
            }
            self.tick();
            while self.run_lane() {}
            for i in 0..self.clients.len() {
                for _ in 0..50 {
                    self.step(i);
                    while self.run_lane() {}
                }
            }
            if self.clients.iter().all(|c| matches!(c.phase, Phase::Live | Phase::Gone)) {
                // Long enough for a sweep to find a change whose hand-off
                // was lost with no later change to reveal the hole.
                for _ in 0..6 {
                    self.tick();
                    while self.run_lane() {}
                }
                for i in 0..self.clients.len() {
                    self.step(i);
                }
                return;
            }
        }
        panic!("the sequences did not finish");
    }

    /// Every client received exactly the events it should have, in order.
    pub(super) fn check(&self) {
        let final_pos = self.log.last().map_or(0, |c| c.pos);
        for client in &self.clients {
            let frames = client.sink.0.lock().clone();
            let Some((through, start_view)) = &client.start else {
                assert!(frames.is_empty(), "frames before any reply: {frames:?}");
                continue;
            };
            assert!(
                matches!(frames.first(), Some(Frame::Reply(p)) if p == through),
                "the reply comes first: {frames:?}"
            );
            let f = filter(client.list);
            // What it should have been sent after `through`, in order.
            let expected: Vec<(u64, Act)> = self
                .log
                .iter()
                .filter(|c| c.pos > *through)
                .filter_map(|c| c.action_for(&f).filter(|a| c.payload(*a).is_some()).map(|a| (c.pos, a)))
                .collect();
            let mut got = Vec::new();
            let mut view = start_view.clone();
            let mut ended = false;
            for (i, frame) in frames.iter().enumerate().skip(1) {
                match frame {
                    Frame::Event { seq, pos, action, data } => {
                        assert!(!ended, "an event after a gap");
                        assert_eq!(*seq, i as u64, "seq is consecutive from 1");
                        got.push((*pos, *action));
                        apply(&mut view, *action, data);
                    }
                    Frame::Gap => ended = true,
                    Frame::Reply(_) => panic!("a second reply"),
                }
            }
            assert_eq!(
                got[..],
                expected[..got.len().min(expected.len())],
                "client {} got the wrong events",
                client.sub.id
            );
            let at = got.last().map_or(*through, |(p, _)| *p);
            match client.phase {
                Phase::Live => {
                    assert_eq!(got, expected, "live client {} missed or doubled events", client.sub.id);
                    assert_eq!(view, view_at(&self.log, final_pos, &f), "live client {}'s view", client.sub.id);
                }
                // A client that left or was told of a gap: what it has is a
                // true view of the database at its last position.
                _ => assert_eq!(view, view_at(&self.log, at.max(*through), &f), "client {}'s view", client.sub.id),
            }
        }
    }
}
