//! `loadgen --writes SECS`: committed writes per second over WebSockets.
//!
//! For each S in `--subs` (0 is allowed), a fresh cluster (`--processes`,
//! on a SQLite file, or on `--db URL` for PostgreSQL) seeded with `--hot`
//! rows in list 1; S subscribers to list 1 spread over the processes; then
//! `--writers` connections (writer i on process i mod N), each keeping
//! `--window` requests in flight, update random hot rows for SECS seconds
//! with the `--driver` verb (`bump`: a custom verb calling `Db::write`;
//! `update`: the standard verb). Every write changes a row of list 1, so it
//! reaches every subscriber; each subscriber checks its `seq` and must end
//! with exactly as many events as writes were committed.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::{call, connect, load_average, now_us, BoxError, Cluster, CpuMark, Driver, Options, SUBSCRIBE};

/// What one row of the write benchmark measured.
#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    pub subs: usize,
    pub committed: u64,
    pub failed: u64,
    pub secs: f64,
    /// All server processes together.
    pub server_cpu: f64,
    pub deliveries: u64,
    /// Subscribers that ended with fewer (or more) events than commits, or a seq gap.
    pub lost: u64,
    pub load: String,
}

impl WriteOutcome {
    pub fn writes_per_sec(&self) -> f64 {
        self.committed as f64 / self.secs
    }

    pub fn server_us_per_write(&self) -> f64 {
        self.server_cpu * 1e6 / self.committed.max(1) as f64
    }
}

fn request(driver: Driver, id: u64, k: u64) -> String {
    match driver {
        Driver::Bump => format!(r#"{{"id":{k},"route":"item","verb":"bump","args":{{"id":{id},"n":{k}}}}}"#),
        Driver::Update => format!(
            r#"{{"id":{k},"route":"item","verb":"update","args":{{"id":{id},"data":{{"text":"update {k}","sent_at_us":{}}}}}}}"#,
            now_us()
        ),
        Driver::Channel => unreachable!("options() refuses --writes with --driver channel"),
    }
}

/// Counts one subscriber's events until the connection ends; returns its
/// last seq, or `u64::MAX` after a seq gap.
async fn subscriber(
    url: String,
    addr: String,
    setup: Arc<Semaphore>,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
    delivered: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, BoxError> {
    let permit = setup.acquire_owned().await?;
    let mut ws = connect(&url, &addr).await?;
    call(&mut ws, SUBSCRIBE.to_string()).await?;
    drop(permit);
    let _ = ready.send(());
    let mut last = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(last),
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"event""#) => {
                    let seq = super::number_after(t.as_str(), r#""seq":"#).unwrap_or(0);
                    if seq != last + 1 {
                        return Ok(u64::MAX);
                    }
                    last = seq;
                    delivered.fetch_add(1, SeqCst);
                }
                Some(Ok(_)) => {}
                _ => return Err("a subscriber's connection ended".into()),
            }
        }
    }
}

/// One writer: `window` requests in flight until `until`; returns (ok, failed).
async fn writer(url: String, addr: String, o: Options, index: u64, until: Instant) -> Result<(u64, u64), BoxError> {
    let ws = connect(&url, &addr).await?;
    let (mut sink, mut stream) = ws.split();
    let mut rng = index.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let (mut sent, mut ok, mut failed) = (0u64, 0u64, 0u64);
    let mut next = |sent: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Unique per writer, so every write changes its row's text.
        request(o.driver, rng % o.hot as u64 + 1, index << 40 | sent)
    };
    while sent < o.window as u64 {
        sink.feed(Message::text(next(sent))).await?;
        sent += 1;
    }
    sink.flush().await?;
    while ok + failed < sent {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => {
                // Replies are serialized with sorted keys: parse, do not scan.
                let reply: serde_json::Value = serde_json::from_str(t.as_str())?;
                if reply["type"] != "reply" {
                    continue;
                }
                if reply["ok"] == true {
                    ok += 1;
                } else {
                    if failed < 3 {
                        eprintln!("  write failed: {reply}");
                    }
                    failed += 1;
                }
                if Instant::now() < until {
                    sink.send(Message::text(next(sent))).await?;
                    sent += 1;
                }
            }
            Some(Ok(_)) => {}
            _ => return Err("a writer's connection ended".into()),
        }
    }
    Ok((ok, failed))
}

pub async fn write_run(o: &Options, subs: usize, secs: u64) -> Result<(WriteOutcome, String), BoxError> {
    let cluster = Cluster::start(o)?;
    let pids = cluster.pids();
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let setup = Arc::new(Semaphore::new(o.concurrency));
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let mut subscribers = Vec::new();
    for i in 0..subs {
        let server = &cluster.servers[i % cluster.servers.len()];
        let task = subscriber(
            server.url.clone(),
            server.addr(),
            setup.clone(),
            ready_tx.clone(),
            delivered.clone(),
            stop.clone(),
        );
        subscribers.push(tokio::spawn(task));
    }
    drop(ready_tx);
    for _ in 0..subs {
        ready.recv().await.ok_or("a subscriber failed to start")?;
    }
    let load = load_average();
    let cpu0 = CpuMark::now(&pids);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(secs);
    let writers: Vec<_> = (0..o.writers)
        .map(|i| {
            let server = &cluster.servers[i % cluster.servers.len()];
            tokio::spawn(writer(server.url.clone(), server.addr(), o.clone(), i as u64 + 1, until))
        })
        .collect();
    let (mut committed, mut failed) = (0, 0);
    for w in writers {
        let (ok, bad) = w.await??;
        committed += ok;
        failed += bad;
    }
    let wall = t0.elapsed().as_secs_f64();
    // Every subscriber gets every committed write.
    let deadline = Instant::now() + o.timeout;
    while delivered.load(SeqCst) < committed * subs as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu0.since(&pids);
    let _ = stop_tx.send(true);
    let mut lost = 0;
    for s in subscribers {
        let last = s.await??;
        if last != committed {
            lost += 1;
        }
    }
    let outcome = WriteOutcome {
        subs,
        committed,
        failed,
        secs: wall,
        server_cpu: cpu.servers.iter().sum(),
        deliveries: delivered.load(SeqCst),
        lost,
        load,
    };
    eprintln!(
        "writes S={subs}: {committed} committed ({failed} failed) in {wall:.1}s = {:.0}/s, {:.0} µs server CPU per write, {} deliveries, {lost} subscribers off",
        outcome.writes_per_sec(),
        outcome.server_us_per_write(),
        outcome.deliveries
    );
    let command = cluster.command();
    drop(cluster);
    Ok((outcome, command))
}
