//! Load generator for the fan-out hot path: S WebSocket subscribers on one
//! filter, one writer saving a row they all watch, against a separate
//! `bench_server` process.
//!
//! ```text
//! cargo build --release --example bench_server --example loadgen
//! cargo run --release --example loadgen -- --subs 10,100,1000,10000 --idle 10000
//! ```
//!
//! For each S (a fresh server process each time, so its peak RSS is that run's):
//!
//! 1. S subscribers connect and subscribe to `{"list_id": 1}`.
//! 2. Warm-up: a few updates, not counted in the latency figures.
//! 3. Closed loop: `--closed` updates of row 1 (list 1), the next only once
//!    the previous one reached every subscriber. Latency is the subscriber's
//!    wall clock at receipt minus the row's `sent_at_us` (stamped by the
//!    server inside the write transaction, see `bench_server.rs`): per update
//!    the time until the last subscriber had it (p50/p99 over updates), and
//!    per delivery (p50/p99 over every update × subscriber).
//! 4. Open loop: `--open` updates sent back to back, as fast as the server
//!    takes them (it runs up to `max_in_flight` requests of a connection at
//!    once; TCP backpressure holds the rest). Deliveries/s = events received by
//!    all subscribers / (last receipt − first send).
//!
//! Server CPU seconds are utime+stime from `/proc/<pid>/stat` around each
//! phase; peak RSS is the server's `VmHWM`. Every subscriber checks that its
//! `seq` runs 1, 2, 3, ... with nothing missing at the end: any loss is
//! reported (and makes the exit status 1).
//!
//! `--idle N` opens N connections to a fresh server, measures its RSS
//! (`VmRSS`) with none, with N connected, and with the N also subscribed,
//! and reports the growth per connection.
//!
//! Options: `--subs LIST`, `--closed N` (default 200), `--warmup N` (10),
//! `--open N` (default: about 4M deliveries, 200..20000 updates), `--idle N`,
//! `--no-fanout` (idle mode only), `--driver bump|update|channel` (the custom verb
//! that stamps `sent_at_us` at save time, default; or the standard `update`
//! verb, where the client stamps its send time; or `channel`: a client
//! `$channel publish` to `bench:fanout`, the S subscribers on that channel,
//! the client stamping its send time), `--queue N` (the server's
//! per-connection queue), `--server-bin PATH` (default: next to this binary),
//! `--server-workers N`, `--url ws://.. --pid PID` (use a running server
//! instead), `--concurrency N` (connects/subscribes in flight during setup),
//! `--timeout SECS` (per phase; default 120).
//!
//! `--processes N` (default 1) measures fan-out across N server processes
//! through Redis: for each S the load generator starts its own `redis-server`
//! (`--redis-bin`, default `redis-server` on the PATH) on a free port in a
//! temp dir, then N `bench_server` processes on one SQLite file in that dir
//! with `--redis`, spreads the S subscribers round-robin over them
//! (subscriber i on process i mod N) and drives the writer through process 0
//! only, so the subscribers of the other processes receive every change
//! through Redis. CPU seconds and peak RSS are reported per process (and
//! redis-server's own), per-delivery latency also per process; everything
//! is stopped at the end of the row.
//!
//! ```text
//! cargo run --release --example loadgen -- --processes 2 --subs 10,100,1000,10000
//! ```
//!
//! `--writes SECS` measures committed writes per second instead (see
//! `loadgen/writes.rs`): `--writers N` connections (default 4) with
//! `--window N` requests in flight each (default 16) update `--hot N` rows
//! (default 64) for SECS seconds, with S subscribers watching them (S may be
//! 0), on `--processes N` servers; `--db URL` puts the servers on that
//! database (PostgreSQL, with the servers built `--features postgres`).
//!
//! ```text
//! cargo run --release --example loadgen -- --writes 10 --subs 0,1000 --processes 3
//! ```
//!
//! `--baseline` runs every fan-out row twice in the same run, against
//! wyrmhole (`bench_server`, with `--processes` as above) and against a bare
//! tokio-tungstenite broadcast of one pre-serialized frame
//! (`bare_server`, always one process; `--bare-bin PATH`, default next to
//! this binary), and prints wyrmhole ÷ bare for open-loop deliveries/s, server
//! CPU per delivery and closed-loop to-all p50/p99, with the load average at
//! the start of each row; `--runs N` repeats the pairs and adds their
//! medians (see `loadgen/baseline.rs`).
//!
//! `--vs-channel` follows every fan-out row (the `--driver` path, with
//! `--processes` as above) with the same row on the channel path
//! (`--driver channel`, fresh servers), and prints channel ÷ model-event
//! for the same four figures:
//!
//! ```text
//! target/release/examples/loadgen --subs 1000 --driver update --vs-channel --processes 2
//! ```
//!
//! ```text
//! cargo build --release --example loadgen --example bench_server --example bare_server
//! target/release/examples/loadgen --subs 1000 --baseline --runs 3
//! ```
//!
//! The two processes are separate on purpose: 10k client sockets plus 10k
//! server sockets would not fit one process's 20k open-files limit. Both
//! raise their soft limit to the hard one.

#[path = "loadgen/baseline.rs"]
mod baseline;
#[path = "loadgen/os.rs"]
mod os;
#[path = "loadgen/writes.rs"]
mod writes;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

// ---------------------------------------------------------------- options

#[derive(Clone, Copy, PartialEq, Debug)]
enum Driver {
    Bump,
    Update,
    /// A client publish to channel `bench:fanout` (`$channel publish`), the
    /// subscribers on that channel: the broadcast path, no database.
    Channel,
}

#[derive(Clone, Debug)]
struct Options {
    subs: Vec<usize>,
    closed: usize,
    warmup: usize,
    open: Option<usize>,
    idle: Option<usize>,
    fanout: bool,
    driver: Driver,
    queue: usize,
    server_bin: PathBuf,
    /// The server binary is the default one next to this binary (so it may be rebuilt).
    default_server_bin: bool,
    server_workers: Option<usize>,
    url: Option<String>,
    pid: Option<u32>,
    concurrency: usize,
    timeout: Duration,
    /// Server processes sharing one database through Redis (1: the in-process broker).
    processes: usize,
    redis_bin: PathBuf,
    /// `--writes SECS`: measure committed writes per second instead of fan-out.
    writes: Option<u64>,
    /// The servers' database URL (a PostgreSQL one, say) instead of a SQLite file.
    db: Option<String>,
    writers: usize,
    window: usize,
    /// Rows in list 1 that the writers update.
    hot: usize,
    /// `--baseline`: pair every fan-out row with the bare server's.
    baseline: bool,
    /// `--runs N`: how many times the pairs run (medians over them).
    runs: usize,
    /// `--vs-channel`: follow every fan-out row with the same row on the
    /// channel path (`--driver channel`), for a same-run ratio.
    vs_channel: bool,
    bare_bin: PathBuf,
}

const USAGE: &str = "usage: loadgen [--subs 10,100,1000,10000] [--closed N] [--warmup N] [--open N] \
[--idle N] [--no-fanout] [--driver bump|update|channel] [--queue N] [--server-bin PATH] [--server-workers N] \
[--url ws://HOST:PORT/ws --pid PID] [--concurrency N] [--timeout SECS] [--processes N] [--redis-bin PATH] \
[--writes SECS [--writers N] [--window N] [--hot N]] [--db URL] [--baseline [--runs N] [--bare-bin PATH]] [--vs-channel]";

fn options() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut o = Options {
        subs: vec![10, 100, 1000, 10_000],
        closed: 200,
        warmup: 10,
        open: None,
        idle: None,
        fanout: true,
        driver: Driver::Bump,
        queue: 1 << 16,
        server_bin: exe.with_file_name("bench_server"),
        default_server_bin: true,
        server_workers: None,
        url: None,
        pid: None,
        concurrency: 128,
        timeout: Duration::from_secs(120),
        processes: 1,
        redis_bin: PathBuf::from("redis-server"),
        writes: None,
        db: None,
        writers: 4,
        window: 16,
        hot: 64,
        baseline: false,
        vs_channel: false,
        runs: 1,
        bare_bin: baseline::default_bare_bin(&exe),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--subs" => {
                o.subs = value()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--subs: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--closed" => o.closed = number(value()?)?,
            "--warmup" => o.warmup = number(value()?)?,
            "--open" => o.open = Some(number(value()?)?),
            "--idle" => o.idle = Some(number(value()?)?),
            "--no-fanout" => o.fanout = false,
            "--driver" => {
                o.driver = match value()?.as_str() {
                    "bump" => Driver::Bump,
                    "update" => Driver::Update,
                    "channel" => Driver::Channel,
                    other => return Err(format!("--driver: {other}? expected bump, update or channel")),
                }
            }
            "--queue" => o.queue = number(value()?)?,
            "--server-bin" => {
                o.server_bin = PathBuf::from(value()?);
                o.default_server_bin = false;
            }
            "--server-workers" => o.server_workers = Some(number(value()?)?),
            "--url" => o.url = Some(value()?),
            "--pid" => o.pid = Some(number(value()?)? as u32),
            "--concurrency" => o.concurrency = number(value()?)?.max(1),
            "--timeout" => o.timeout = Duration::from_secs(number(value()?)? as u64),
            "--processes" => o.processes = number(value()?)?.max(1),
            "--redis-bin" => o.redis_bin = PathBuf::from(value()?),
            "--writes" => o.writes = Some(number(value()?)? as u64),
            "--db" => o.db = Some(value()?),
            "--writers" => o.writers = number(value()?)?.max(1),
            "--window" => o.window = number(value()?)?.max(1),
            "--hot" => o.hot = number(value()?)?.max(1),
            "--baseline" => o.baseline = true,
            "--vs-channel" => o.vs_channel = true,
            "--runs" => o.runs = number(value()?)?.max(1),
            "--bare-bin" => o.bare_bin = PathBuf::from(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.url.is_some() != o.pid.is_some() {
        return Err("--url and --pid go together (the pid is needed for CPU and RSS)".into());
    }
    if o.processes > 1 && o.url.is_some() {
        return Err("--processes starts its own servers; it does not go with --url".into());
    }
    if o.baseline && (o.url.is_some() || o.writes.is_some() || !o.fanout) {
        return Err("--baseline pairs fan-out rows with fresh servers: not with --url, --writes or --no-fanout".into());
    }
    if o.vs_channel && (o.baseline || o.writes.is_some() || !o.fanout || o.driver == Driver::Channel) {
        return Err("--vs-channel pairs model-event fan-out rows with channel ones: not with --baseline, --writes, --no-fanout or --driver channel".into());
    }
    if o.driver == Driver::Channel && (o.writes.is_some() || o.baseline) {
        return Err("--driver channel writes nothing to the database: not with --writes or --baseline".into());
    }
    if o.runs > 1 && !o.baseline {
        return Err("--runs goes with --baseline".into());
    }
    Ok(o)
}

fn open_updates(o: &Options, s: usize) -> usize {
    o.open.unwrap_or_else(|| (4_000_000 / s.max(1)).clamp(200, 20_000))
}

// ---------------------------------------------------------------- the OS

fn clock_ticks() -> f64 {
    extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    const SC_CLK_TCK: i32 = 2;
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { sysconf(SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // The command name is in parentheses and may hold spaces; fields follow the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

/// A `Vm...:` line of /proc/<pid>/status, in KiB.
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Busy CPU seconds of the whole machine (all processes, user + system + irq), from /proc/stat.
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return f64::NAN };
    let Some(cpu) = stat.lines().next() else { return f64::NAN };
    let ticks: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy as f64 / clock_ticks()
}

/// The processes a run measures: the servers (the writer's first) and the
/// redis-server between them, if any.
#[derive(Clone, Debug, Default)]
struct Pids {
    servers: Vec<u32>,
    redis: Option<u32>,
}

/// CPU time of the servers, of redis-server, of this process and of the
/// whole machine, to tell how much CPU other processes took during a phase.
#[derive(Clone)]
struct CpuMark {
    servers: Vec<f64>,
    redis: f64,
    me: f64,
    machine: f64,
}

/// CPU seconds spent during a phase.
#[derive(Clone, Debug, Default)]
struct Cpu {
    /// Per server process, in `Pids::servers` order.
    servers: Vec<f64>,
    redis: f64,
    loadgen: f64,
    /// Everything else on the machine.
    other: f64,
}

impl CpuMark {
    fn now(pids: &Pids) -> CpuMark {
        CpuMark {
            servers: pids.servers.iter().map(|&p| cpu_secs(p)).collect(),
            redis: pids.redis.map_or(0.0, cpu_secs),
            me: cpu_secs(std::process::id()),
            machine: machine_busy_secs(),
        }
    }

    fn since(self, pids: &Pids) -> Cpu {
        let now = CpuMark::now(pids);
        let servers: Vec<f64> = now.servers.iter().zip(&self.servers).map(|(n, t)| n - t).collect();
        let (redis, me) = (now.redis - self.redis, now.me - self.me);
        let other = (now.machine - self.machine - servers.iter().sum::<f64>() - redis - me).max(0.0);
        Cpu { servers, redis, loadgen: me, other }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the server process

/// Under `cargo run`, builds `bench_server` with the same profile first, so a
/// stale server binary is never measured (`cargo run --example loadgen` builds
/// only the load generator).
fn build_server(o: &Options) -> Result<(), BoxError> {
    if o.url.is_some() || !o.default_server_bin {
        return Ok(());
    }
    let (Ok(cargo), Ok(manifest_dir)) = (std::env::var("CARGO"), std::env::var("CARGO_MANIFEST_DIR")) else {
        return Ok(());
    };
    let release = o.server_bin.parent().and_then(|d| d.parent()).is_some_and(|d| d.ends_with("release"));
    let mut build = Command::new(cargo);
    build.args(["build", "--example", "bench_server"]);
    if o.baseline {
        build.args(["--example", "bare_server"]);
    }
    build.arg("--manifest-path").arg(format!("{manifest_dir}/Cargo.toml"));
    if release {
        build.arg("--release");
    }
    if !build.status()?.success() {
        return Err("building bench_server failed".into());
    }
    Ok(())
}

struct ServerProc {
    url: String,
    pid: u32,
    command: String,
    child: Option<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

impl ServerProc {
    fn start(o: &Options) -> Result<ServerProc, BoxError> {
        Self::start_with(o, &[])
    }

    /// Starts a server with `extra` arguments (`--db`, `--redis`).
    fn start_with(o: &Options, extra: &[String]) -> Result<ServerProc, BoxError> {
        if let (Some(url), Some(pid)) = (&o.url, o.pid) {
            return Ok(ServerProc {
                url: url.clone(),
                pid,
                command: format!("(running server pid {pid})"),
                child: None,
            });
        }
        if !o.server_bin.exists() {
            return Err(format!(
                "{} not found: build it first with `cargo build --release --example {}`",
                o.server_bin.display(),
                o.server_bin.file_name().and_then(|n| n.to_str()).unwrap_or("bench_server")
            )
            .into());
        }
        let mut args = vec!["--port".to_string(), "0".into(), "--queue".into(), o.queue.to_string()];
        if o.writes.is_some() {
            args.extend(["--hot".to_string(), o.hot.to_string()]);
        }
        if let Some(w) = o.server_workers {
            args.extend(["--workers".to_string(), w.to_string()]);
        }
        args.extend(extra.iter().cloned());
        let command = format!("{} {}", o.server_bin.display(), args.join(" "));
        let mut child = Command::new(&o.server_bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        // "bench_server listening on ws://127.0.0.1:PORT/ws pid PID"
        let url =
            line.split_whitespace().find(|w| w.starts_with("ws://")).ok_or_else(|| format!("server said {line:?}"))?;
        Ok(ServerProc { url: url.to_string(), pid: child.id(), command, child: Some((child, stdin, stdout)) })
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string()
    }
}

/// A redis-server of our own on a free port, with no persistence, in a temp
/// dir; stopped (SIGKILL: it holds nothing worth saving) when dropped.
struct RedisProc {
    url: String,
    pid: u32,
    bin: String,
    child: Child,
}

impl RedisProc {
    fn start(o: &Options, dir: &std::path::Path) -> Result<RedisProc, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(&o.redis_bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e} (is redis-server installed?)", o.redis_bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not start on port {port}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisProc {
            url: format!("redis://127.0.0.1:{port}"),
            pid: child.id(),
            bin: o.redis_bin.display().to_string(),
            child,
        })
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of one row: one server with the in-process broker, or N
/// servers on one SQLite file sharing commits through a redis-server of
/// our own. Dropping it stops the servers, then redis-server, then removes
/// the temp dir.
struct Cluster {
    servers: Vec<ServerProc>,
    redis: Option<RedisProc>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    fn start(o: &Options) -> Result<Cluster, BoxError> {
        let db_args = |db: &str| ["--db".to_string(), db.to_owned()];
        if o.processes <= 1 {
            let server = match &o.db {
                Some(db) => ServerProc::start_with(o, &db_args(db))?,
                None => ServerProc::start(o)?,
            };
            return Ok(Cluster { servers: vec![server], redis: None, _dir: None });
        }
        let dir = tempfile::tempdir()?;
        let redis = RedisProc::start(o, dir.path())?;
        let db = match &o.db {
            Some(db) => db.clone(),
            None => dir.path().join("shared.db").to_str().ok_or("temp path is not UTF-8")?.to_owned(),
        };
        let extra = ["--db".to_string(), db, "--redis".into(), redis.url.clone()];
        // One after the other: the first creates and seeds the shared file.
        let mut servers = Vec::new();
        for _ in 0..o.processes {
            servers.push(ServerProc::start_with(o, &extra)?);
        }
        Ok(Cluster { servers, redis: Some(redis), _dir: Some(dir) })
    }

    fn pids(&self) -> Pids {
        Pids { servers: self.servers.iter().map(|s| s.pid).collect(), redis: self.redis.as_ref().map(|r| r.pid) }
    }

    /// The server command line (the first server's; the others differ in nothing) and redis-server's.
    fn command(&self) -> String {
        let command = self.servers.first().map(|s| s.command.clone()).unwrap_or_default();
        match &self.redis {
            // The --db file and the Redis port are fresh per row.
            Some(r) => format!(
                "{command}` ({} processes), redis: `{} --port PORT --bind 127.0.0.1 --save \"\" --appendonly no --dir TMPDIR",
                self.servers.len(),
                r.bin
            ),
            None => command,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.servers.clear();
        self.redis = None;
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some((mut child, stdin, _out)) = self.child.take() {
            drop(stdin); // the server exits when its stdin closes
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------- clients

async fn connect(url: &str, addr: &str) -> Result<Ws, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(ws)
}

/// Sends a request and reads frames until its reply; returns the reply.
async fn call(ws: &mut Ws, request: String) -> Result<serde_json::Value, BoxError> {
    ws.send(Message::text(request)).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str())?;
                if v["type"] == "reply" {
                    if v["ok"] != true {
                        return Err(format!("request failed: {v}").into());
                    }
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection ended".into()),
        }
    }
}

const SUBSCRIBE: &str = r#"{"id":"s","route":"item","verb":"subscribe","args":{"filter":{"list_id":1}}}"#;
const SUBSCRIBE_CHANNEL: &str = r#"{"id":"s","route":"$channel","verb":"subscribe","args":{"channel":"bench:fanout"}}"#;

/// What a subscriber sends to start receiving the driver's writes.
fn subscribe_request(driver: Driver) -> &'static str {
    if driver == Driver::Channel {
        SUBSCRIBE_CHANNEL
    } else {
        SUBSCRIBE
    }
}

/// The client's send time for the `update` driver, strictly increasing: an
/// `updated` event carries only the fields that changed, so two updates
/// stamped in the same microsecond (back to back in the open loop) would
/// send the second without its `sent_at_us`.
fn stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_us();
    let mut last = LAST.load(SeqCst);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, SeqCst, SeqCst) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

fn write_request(driver: Driver, k: usize) -> String {
    match driver {
        Driver::Bump => format!(r#"{{"id":{k},"route":"item","verb":"bump","args":{{"id":1,"n":{k}}}}}"#),
        Driver::Update => format!(
            r#"{{"id":{k},"route":"item","verb":"update","args":{{"id":1,"data":{{"text":"update {k}","sent_at_us":{}}}}}}}"#,
            stamp()
        ),
        // A channel message has no sub or seq of its own: the publisher
        // numbers them (k + 1, as an update's event seq) so the loss and
        // order checks read them the same way; it stamps its send time.
        Driver::Channel => format!(
            r#"{{"id":{k},"route":"$channel","verb":"publish","args":{{"channel":"bench:fanout","data":{{"seq":{},"sent_at_us":{}}}}}}}"#,
            k + 1,
            now_us()
        ),
    }
}

/// What a subscriber reads out of an event frame.
struct Event {
    sub: u64,
    seq: u64,
    sent_at_us: u64,
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Reads an event frame with a scan for three keys (the frame is the
/// server's fixed layout; anything else falls back to a full JSON parse),
/// so the load generator spends its share of the CPU on reading sockets.
fn parse_event(text: &str) -> Option<Event> {
    // A channel message (sub 0: channels have no subscription id).
    if text.starts_with(r#"{"type":"message","#) {
        let data = &text[text.find(r#""data":"#)?..];
        return Some(Event {
            sub: 0,
            seq: number_after(data, r#""seq":"#)?,
            sent_at_us: number_after(data, r#""sent_at_us":"#)?,
        });
    }
    if text.starts_with(r#"{"type":"event","#) {
        if let (Some(sub), Some(seq), Some(sent_at_us)) =
            (number_after(text, r#""sub":"#), number_after(text, r#""seq":"#), number_after(text, r#""sent_at_us":"#))
        {
            return Some(Event { sub, seq, sent_at_us });
        }
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["type"] != "event" {
        return None;
    }
    Some(Event { sub: v["sub"].as_u64()?, seq: v["seq"].as_u64()?, sent_at_us: v["data"]["sent_at_us"].as_u64()? })
}

/// State shared by the subscribers and the writer of one run. Update k
/// reaches each subscriber as its event `seq` k+1: nothing else changes
/// list 1 once everyone has subscribed.
struct Run {
    subs: usize,
    /// Server processes: subscriber i is on process i mod `procs`.
    procs: usize,
    /// Channel messages: pipelined `$channel publish` requests of one
    /// connection run concurrently (they take no write ticket), so they
    /// reach the channel in any order; every subscriber still sees the
    /// channel's one order. Then arrivals are checked per message (none
    /// missing, none twice), not as a sequence.
    any_order: bool,
    /// Messages that arrived after a higher-numbered one (any_order only).
    reordered: AtomicU64,
    /// Per update: subscribers that got it, the latest receipt, the save time.
    count: Vec<AtomicU32>,
    last_rx: Vec<AtomicU64>,
    sent_at: Vec<AtomicU64>,
    /// Per subscriber and update: save→receipt in µs (u32::MAX: not received).
    latency: Vec<Box<[AtomicU32]>>,
    /// Per subscriber: the last seq seen.
    last_seq: Vec<AtomicU64>,
    delivered: AtomicU64,
    /// Updates the server confirmed (a successful write reply).
    committed: AtomicU64,
    target: AtomicU64,
    notify: Notify,
    gaps: AtomicU64,
    out_of_order: AtomicU64,
    unexpected: AtomicU64,
    ended: AtomicU64,
    end_reasons: Mutex<Vec<String>>,
}

impl Run {
    fn new(subs: usize, procs: usize, updates: usize, any_order: bool) -> Run {
        let atomics32 = |n: usize, v: u32| (0..n).map(|_| AtomicU32::new(v)).collect::<Vec<_>>();
        let atomics64 = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Run {
            subs,
            procs: procs.max(1),
            any_order,
            reordered: AtomicU64::new(0),
            count: atomics32(updates, 0),
            last_rx: atomics64(updates),
            sent_at: atomics64(updates),
            latency: (0..subs).map(|_| atomics32(updates, u32::MAX).into_boxed_slice()).collect(),
            last_seq: atomics64(subs),
            delivered: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
            gaps: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            end_reasons: Mutex::new(Vec::new()),
        }
    }

    fn on_event(&self, me: usize, sub: u64, expect: &mut u64, text: &str) {
        let received = now_us();
        let Some(event) = parse_event(text).filter(|e| e.sub == sub) else {
            self.unexpected.fetch_add(1, SeqCst);
            return;
        };
        if self.any_order {
            let k = event.seq.wrapping_sub(1) as usize;
            if k >= self.count.len() || self.latency[me][k].load(SeqCst) != u32::MAX {
                self.unexpected.fetch_add(1, SeqCst);
                return;
            }
            if event.seq < *expect {
                self.reordered.fetch_add(1, SeqCst);
            }
        } else if event.seq != *expect {
            if event.seq < *expect {
                self.out_of_order.fetch_add(1, SeqCst);
                return;
            }
            self.gaps.fetch_add(event.seq - *expect, SeqCst);
        }
        *expect = (*expect).max(event.seq + 1);
        self.last_seq[me].fetch_max(event.seq, SeqCst);
        let k = (event.seq - 1) as usize;
        if k >= self.count.len() {
            self.unexpected.fetch_add(1, SeqCst);
            return;
        }
        let latency = received.saturating_sub(event.sent_at_us).min(u32::MAX as u64 - 1) as u32;
        self.latency[me][k].store(latency, SeqCst);
        self.sent_at[k].store(event.sent_at_us, SeqCst);
        self.last_rx[k].fetch_max(received, SeqCst);
        self.count[k].fetch_add(1, SeqCst);
        let delivered = self.delivered.fetch_add(1, SeqCst) + 1;
        if delivered == self.target.load(SeqCst) {
            self.notify.notify_one();
        }
    }

    fn end(&self, why: String) {
        self.ended.fetch_add(1, SeqCst);
        let mut reasons = self.end_reasons.lock();
        if reasons.len() < 5 {
            reasons.push(why);
        }
        drop(reasons);
        self.notify.notify_one();
    }

    /// Waits until `target` deliveries in all; false on timeout or if a subscriber's connection ended.
    async fn wait_for(&self, target: u64, deadline: Instant) -> bool {
        loop {
            if self.delivered.load(SeqCst) >= target {
                return true;
            }
            if Instant::now() >= deadline || self.ended.load(SeqCst) > 0 {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), self.notify.notified()).await;
        }
    }
}

/// One subscriber: connect, subscribe, report ready, then read events until the connection ends.
async fn subscriber(
    me: usize,
    url: String,
    addr: String,
    run: Arc<Run>,
    setup: Arc<Semaphore>,
    ready: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    driver: Driver,
) {
    let permit = setup.acquire_owned().await;
    let subscribed = async {
        let mut ws = connect(&url, &addr).await?;
        let reply = call(&mut ws, subscribe_request(driver).to_string()).await?;
        let sub = match driver {
            Driver::Channel => 0,
            _ => reply["data"]["sub"].as_u64().ok_or("no sub in the subscribe reply")?,
        };
        Ok::<_, BoxError>((ws, sub))
    }
    .await;
    drop(permit);
    let (mut ws, sub) = match subscribed {
        Ok(x) => {
            let _ = ready.send(Ok(()));
            x
        }
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let mut expect = 1;
    let why = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => run.on_event(me, sub, &mut expect, t.as_str()),
            Some(Ok(Message::Close(f))) => break format!("closed by the server: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("read failed: {e}"),
            None => break "connection ended".into(),
        }
    };
    run.end(why);
}

/// Starts S subscribers, subscriber i on server i mod N; returns once all are subscribed.
async fn start_subscribers(run: &Arc<Run>, servers: &[ServerProc], o: &Options) -> Result<(), BoxError> {
    let setup = Arc::new(Semaphore::new(o.concurrency));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for me in 0..run.subs {
        let server = &servers[me % servers.len()];
        let (url, addr) = (server.url.clone(), server.addr());
        tokio::spawn(subscriber(me, url, addr, run.clone(), setup.clone(), tx.clone(), o.driver));
    }
    drop(tx);
    for _ in 0..run.subs {
        match rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("a subscriber failed to start: {e}").into()),
            None => return Err("subscribers vanished".into()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- statistics

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Default, Clone)]
struct Latencies {
    all_p50: u64,
    all_p99: u64,
    delivery_p50: u64,
    delivery_p99: u64,
    /// Per server process (when there are several): per-delivery (p50, p99) of its subscribers.
    by_process: Vec<(u64, u64)>,
}

fn latencies(run: &Run, updates: std::ops::Range<usize>) -> Latencies {
    let mut all: Vec<u64> = updates
        .clone()
        .filter(|&k| run.count[k].load(SeqCst) as usize == run.subs)
        .map(|k| run.last_rx[k].load(SeqCst).saturating_sub(run.sent_at[k].load(SeqCst)))
        .collect();
    let mut by_process: Vec<Vec<u64>> = vec![Vec::with_capacity(updates.len() * run.subs / run.procs); run.procs];
    for (me, per_sub) in run.latency.iter().enumerate() {
        let each = &mut by_process[me % run.procs];
        for k in updates.clone() {
            let l = per_sub[k].load(SeqCst);
            if l != u32::MAX {
                each.push(l as u64);
            }
        }
    }
    for each in &mut by_process {
        each.sort_unstable();
    }
    let mut each: Vec<u64> = by_process.concat();
    all.sort_unstable();
    each.sort_unstable();
    Latencies {
        all_p50: percentile(&all, 50.0),
        all_p99: percentile(&all, 99.0),
        delivery_p50: percentile(&each, 50.0),
        delivery_p99: percentile(&each, 99.0),
        by_process: if run.procs > 1 {
            by_process.iter().map(|e| (percentile(e, 50.0), percentile(e, 99.0))).collect()
        } else {
            Vec::new()
        },
    }
}

#[derive(Debug, Default, Clone)]
struct Phase {
    updates: usize,
    deliveries: u64,
    wall: f64,
    /// All server processes together.
    server_cpu: f64,
    cpu: Cpu,
    latency: Latencies,
    write_errors: usize,
    complete: bool,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.wall
    }
    fn server_us_per_delivery(&self) -> f64 {
        self.server_cpu * 1e6 / self.deliveries.max(1) as f64
    }
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    subs: usize,
    setup_secs: f64,
    closed: Phase,
    open: Phase,
    /// Per server process.
    peak_rss_kb: Vec<u64>,
    redis_peak_rss_kb: u64,
    lost: u64,
    out_of_order: u64,
    unexpected: u64,
    ended: u64,
    end_reasons: Vec<String>,
    load: String,
}

// ---------------------------------------------------------------- the runs

/// Closed loop: update k+1 only after update k reached every subscriber.
async fn closed_loop(
    run: &Run,
    ws: &mut Ws,
    o: &Options,
    updates: std::ops::Range<usize>,
    pids: &Pids,
) -> Result<Phase, BoxError> {
    let (cpu0, t0) = (CpuMark::now(pids), Instant::now());
    let deadline = Instant::now() + o.timeout;
    let mut phase = Phase { updates: updates.len(), complete: true, ..Phase::default() };
    for k in updates.clone() {
        let target = ((k + 1) * run.subs) as u64;
        run.target.store(target, SeqCst);
        if let Err(e) = call(ws, write_request(o.driver, k)).await {
            eprintln!("  write {k} failed: {e}");
            phase.write_errors += 1;
            phase.complete = false;
            break;
        }
        run.committed.fetch_add(1, SeqCst);
        if !run.wait_for(target, deadline).await {
            eprintln!(
                "  update {k} did not reach every subscriber ({} of {target} deliveries)",
                run.delivered.load(SeqCst)
            );
            phase.complete = false;
            break;
        }
    }
    phase.wall = t0.elapsed().as_secs_f64();
    phase.cpu = cpu0.since(pids);
    phase.server_cpu = phase.cpu.servers.iter().sum();
    phase.deliveries = updates.clone().map(|k| run.count[k].load(SeqCst) as u64).sum();
    phase.latency = latencies(run, updates);
    Ok(phase)
}

/// Open loop: every update sent back to back; replies read concurrently.
async fn open_loop(
    run: &Run,
    ws: Ws,
    o: &Options,
    updates: std::ops::Range<usize>,
    pids: &Pids,
) -> Result<Phase, BoxError> {
    let target = (updates.end * run.subs) as u64;
    run.target.store(target, SeqCst);
    let (mut sink, mut stream) = ws.split();
    let driver = o.driver;
    let cpu0 = CpuMark::now(pids);
    let first_send = now_us();
    let t0 = Instant::now();
    let n = updates.len();
    let sender = {
        let updates = updates.clone();
        tokio::spawn(async move {
            for k in updates {
                sink.feed(Message::text(write_request(driver, k))).await?;
                if k % 32 == 31 {
                    sink.flush().await?;
                }
            }
            sink.flush().await?;
            Ok::<_, BoxError>(sink)
        })
    };
    let replies = tokio::spawn(async move {
        let (mut ok, mut failed) = (0usize, 0usize);
        while ok + failed < n {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains(r#""ok":true"#) {
                        ok += 1;
                    } else {
                        if failed < 3 {
                            eprintln!("  write failed: {}", t.as_str());
                        }
                        failed += 1;
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        (ok, failed)
    });
    let deadline = Instant::now() + o.timeout;
    let complete = run.wait_for(target, deadline).await;
    let wall_to_done = t0.elapsed();
    let (ok, failed) =
        tokio::time::timeout(Duration::from_secs(10), replies).await.ok().and_then(|r| r.ok()).unwrap_or((0, n));
    sender.abort();
    run.committed.fetch_add(ok as u64, SeqCst);
    let last_rx = updates.clone().map(|k| run.last_rx[k].load(SeqCst)).max().unwrap_or(first_send);
    let mut phase = Phase { updates: n, complete, ..Phase::default() };
    phase.cpu = cpu0.since(pids);
    phase.server_cpu = phase.cpu.servers.iter().sum();
    phase.deliveries = updates.clone().map(|k| run.count[k].load(SeqCst) as u64).sum();
    phase.wall = if complete { last_rx.saturating_sub(first_send) as f64 / 1e6 } else { wall_to_done.as_secs_f64() };
    phase.write_errors = failed + (n - ok - failed);
    phase.latency = latencies(run, updates);
    Ok(phase)
}

async fn fanout_run(o: &Options, subs: usize) -> Result<(Outcome, String), BoxError> {
    let cluster = Cluster::start(o)?;
    let pids = cluster.pids();
    let (warmup, closed, open) = (o.warmup, o.closed, open_updates(o, subs));
    let total = warmup + closed + open;
    let run = Arc::new(Run::new(subs, cluster.servers.len(), total, o.driver == Driver::Channel));
    let mut out = Outcome { subs, load: load_average(), ..Outcome::default() };

    let t = Instant::now();
    start_subscribers(&run, &cluster.servers, o).await?;
    out.setup_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "S={subs}: {subs} subscribed in {:.2}s; server RSS {} MiB",
        out.setup_secs,
        pids.servers.iter().map(|&p| (status_kb(p, "VmRSS:") / 1024).to_string()).collect::<Vec<_>>().join(" + ")
    );
    // The writer is on the first server only: the others' subscribers get every change through Redis.
    let server = &cluster.servers[0];
    let mut writer = connect(&server.url, &server.addr()).await?;

    let warm = closed_loop(&run, &mut writer, o, 0..warmup, &pids).await?;
    if !warm.complete {
        return Err("warm-up failed".into());
    }
    out.closed = closed_loop(&run, &mut writer, o, warmup..warmup + closed, &pids).await?;
    eprintln!(
        "  closed loop: {} updates, to-all p50 {:.2} ms p99 {:.2} ms, per delivery p50 {:.2} ms p99 {:.2} ms, server CPU {:.2}s",
        closed,
        out.closed.latency.all_p50 as f64 / 1e3,
        out.closed.latency.all_p99 as f64 / 1e3,
        out.closed.latency.delivery_p50 as f64 / 1e3,
        out.closed.latency.delivery_p99 as f64 / 1e3,
        out.closed.server_cpu
    );
    if out.closed.complete {
        out.open = open_loop(&run, writer, o, warmup + closed..total, &pids).await?;
        eprintln!(
            "  open loop: {} updates, {} deliveries in {:.3}s = {:.0}/s, server CPU {:.2}s",
            open,
            out.open.deliveries,
            out.open.wall,
            out.open.rate(),
            out.open.server_cpu
        );
    }
    // Let stragglers arrive before counting what is missing: every
    // subscriber must end with seq = the number of committed updates.
    let settle = if out.open.complete && out.closed.complete { 200 } else { 2000 };
    tokio::time::sleep(Duration::from_millis(settle)).await;
    out.peak_rss_kb = pids.servers.iter().map(|&p| status_kb(p, "VmHWM:")).collect();
    out.redis_peak_rss_kb = pids.redis.map_or(0, |p| status_kb(p, "VmHWM:"));
    // The writer's own connection may have died too: then at least what some subscriber saw was committed.
    let committed = run.last_seq.iter().map(|s| s.load(SeqCst)).max().unwrap_or(0).max(run.committed.load(SeqCst));
    out.lost = if run.any_order {
        // Every published message (1..=committed) missing at some subscriber.
        let published = (committed as usize).min(total);
        run.latency.iter().map(|l| l[..published].iter().filter(|v| v.load(SeqCst) == u32::MAX).count() as u64).sum()
    } else {
        run.gaps.load(SeqCst) + run.last_seq.iter().map(|s| committed.saturating_sub(s.load(SeqCst))).sum::<u64>()
    };
    if run.any_order {
        eprintln!("  channel messages that arrived after a higher-numbered one: {}", run.reordered.load(SeqCst));
    }
    out.out_of_order = run.out_of_order.load(SeqCst);
    out.unexpected = run.unexpected.load(SeqCst);
    out.ended = run.ended.load(SeqCst);
    out.end_reasons = run.end_reasons.lock().clone();
    let command = cluster.command();
    drop(cluster);
    Ok((out, command))
}

#[derive(Debug, Default)]
struct Idle {
    conns: usize,
    rss0: u64,
    rss_connected: u64,
    rss_subscribed: u64,
    peak: u64,
}

async fn wait_all(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<(), String>>, n: usize) -> Result<(), BoxError> {
    for _ in 0..n {
        match rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("clients vanished".into()),
        }
    }
    Ok(())
}

/// Holds N connections on a fresh server: RSS with none, N connected, N subscribed.
async fn idle_run(o: &Options, n: usize) -> Result<(Idle, String), BoxError> {
    let server = ServerProc::start(o)?;
    let pid = server.pid;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut idle = Idle { conns: n, rss0: status_kb(pid, "VmRSS:"), ..Idle::default() };
    let setup = Arc::new(Semaphore::new(o.concurrency));
    let (subscribe_tx, subscribe_rx) = tokio::sync::watch::channel(0u8);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    for _ in 0..n {
        let (url, addr, setup, ready) = (server.url.clone(), server.addr(), setup.clone(), ready_tx.clone());
        let mut step = subscribe_rx.clone();
        tokio::spawn(async move {
            let permit = setup.clone().acquire_owned().await;
            let mut ws = match connect(&url, &addr).await {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            drop(permit);
            let _ = ready.send(Ok(()));
            // Keep reading (pings get their pongs) until told to subscribe, then to stop.
            loop {
                tokio::select! {
                    changed = step.changed() => {
                        if changed.is_err() || *step.borrow() == 2 { return; }
                        let permit = setup.acquire().await;
                        let result = call(&mut ws, SUBSCRIBE.to_string()).await.map(|_| ()).map_err(|e| e.to_string());
                        drop(permit);
                        let _ = ready.send(result);
                    }
                    msg = ws.next() => if !matches!(msg, Some(Ok(_))) { return },
                }
            }
        });
    }
    drop(ready_tx);
    wait_all(&mut ready_rx, n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    idle.rss_connected = status_kb(pid, "VmRSS:");
    eprintln!("idle: {n} connected, server RSS {} KiB (from {} KiB)", idle.rss_connected, idle.rss0);
    subscribe_tx.send(1)?;
    wait_all(&mut ready_rx, n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    idle.rss_subscribed = status_kb(pid, "VmRSS:");
    idle.peak = status_kb(pid, "VmHWM:");
    eprintln!("idle: {n} subscribed, server RSS {} KiB", idle.rss_subscribed);
    let _ = subscribe_tx.send(2);
    let command = server.command.clone();
    drop(server);
    Ok((idle, command))
}

// ---------------------------------------------------------------- report

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

/// A table row: `| a | b | ... |`.
fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// The sum, and with several processes each one's share: `3.10 (1.60 + 1.50)`.
fn per_process(total: f64, each: &[f64], digits: usize) -> String {
    if each.len() > 1 {
        let parts: Vec<String> = each.iter().map(|v| format!("{v:.digits$}")).collect();
        format!("{total:.digits$} ({})", parts.join(" + "))
    } else {
        format!("{total:.digits$}")
    }
}

/// Per-delivery p50 / p99 of each process's subscribers: `P0 1.20 / 3.40; P1 2.10 / 5.00`.
fn by_process(l: &Latencies) -> String {
    l.by_process
        .iter()
        .enumerate()
        .map(|(i, (p50, p99))| format!("P{i} {} / {}", ms(*p50), ms(*p99)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `title` replaces the heading's "wyrmhole fan-out: ..." (for the bare reference).
fn report(o: &Options, runs: &[(Outcome, String)], idle: &Option<(Idle, String)>, title: Option<&str>) -> bool {
    let mut ok = true;
    let multi = o.processes > 1;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(title) = title {
        println!("\n## {title}\n");
    } else if multi {
        println!(
            "\n## wyrmhole fan-out: {} server processes on one SQLite file, sharing commits through Redis\n",
            o.processes
        );
    } else {
        println!("\n## wyrmhole fan-out: one server process, in-process broker\n");
    }
    println!("Load generator: `cargo run --release --example loadgen -- {}`", args.join(" "));
    if let Some((_, cmd)) = runs.first() {
        if multi {
            println!("Servers (fresh processes, database and redis-server per row): `{cmd}`");
            println!(
                "Subscriber i is on process P(i mod {}); the writer is on P0 only, so P1's subscribers get every change through Redis.",
                o.processes
            );
        } else {
            println!("Server (one fresh process per row): `{cmd}`");
        }
    }
    let what = match (o.driver, title.is_some()) {
        (Driver::Bump, false) => "bump (custom verb → Db::write, sent_at_us stamped at save)",
        (Driver::Bump, true) => "bump (sent_at_us stamped, then one frame broadcast; no database)",
        (Driver::Update, _) => "update (standard verb; client stamps send time)",
        (Driver::Channel, _) => "channel ($channel publish; client stamps send time; no database)",
    };
    if o.driver == Driver::Channel {
        println!(
            "Driver: `{what}`; update k is message {{\"seq\": k+1, \"sent_at_us\": ..}} on channel `bench:fanout`; every subscriber is on it. \
             Latency = receipt − the publisher's send (it includes the request's trip and its wait behind the open loop's backlog)."
        );
    } else {
        println!(
            "Driver: `{what}`; each update sets `text` and `sent_at_us` of row 1 (list 1); every subscriber holds `{{\"list_id\": 1}}`."
        );
    }
    println!(
        "Load average at each run's start: {}\n",
        runs.iter().map(|(r, _)| format!("S={}: {}", r.subs, r.load)).collect::<Vec<_>>().join("; ")
    );
    let cpu_head = if multi { "server CPU s (P0 + P1 ...)" } else { "server CPU s" };
    if !runs.is_empty() {
        println!(
            "Closed loop (next update only after the previous reached all S subscribers; latency = receipt − save):\n"
        );
        let mut head: Vec<&str> = vec![
            "S",
            "updates",
            "wall s",
            "to-all p50 ms",
            "to-all p99 ms",
            "per-delivery p50 ms",
            "per-delivery p99 ms",
        ];
        if multi {
            head.push("per-delivery p50 / p99 ms by process");
        }
        head.extend([cpu_head, "server µs CPU/delivery"]);
        if multi {
            head.push("redis-server CPU s");
        }
        head.extend(["loadgen CPU s", "other processes' CPU s"]);
        println!("{}", row(&head.iter().map(|h| h.to_string()).collect::<Vec<_>>()));
        println!("{}", row(&vec!["---".to_string(); head.len()]));
        for (r, _) in runs {
            let c = &r.closed;
            let mut cells = vec![
                r.subs.to_string(),
                format!("{}{}", c.updates, if c.complete { "" } else { " (incomplete)" }),
                format!("{:.2}", c.wall),
                ms(c.latency.all_p50),
                ms(c.latency.all_p99),
                ms(c.latency.delivery_p50),
                ms(c.latency.delivery_p99),
            ];
            if multi {
                cells.push(by_process(&c.latency));
            }
            cells.extend([per_process(c.server_cpu, &c.cpu.servers, 2), format!("{:.2}", c.server_us_per_delivery())]);
            if multi {
                cells.push(format!("{:.2}", c.cpu.redis));
            }
            cells.extend([format!("{:.2}", c.cpu.loadgen), format!("{:.2}", c.cpu.other)]);
            println!("{}", row(&cells));
        }
        println!("\nOpen loop (updates back to back; deliveries/s = events received by all subscribers / (last receipt − first send)):\n");
        let mut head: Vec<&str> = vec![
            "S",
            "updates",
            "deliveries",
            "wall s",
            "deliveries/s",
            "updates/s",
            cpu_head,
            "server µs CPU/delivery",
        ];
        if multi {
            head.push("redis-server CPU s");
        }
        head.extend(["loadgen CPU s", "other processes' CPU s", "per-delivery p50 / p99 ms"]);
        if multi {
            head.extend([
                "per-delivery p50 / p99 ms by process",
                "server peak RSS MiB (P0 + P1 ...)",
                "redis-server peak RSS MiB",
            ]);
        } else {
            head.push("server peak RSS MiB");
        }
        head.extend(["lost", "ended conns"]);
        println!("{}", row(&head.iter().map(|h| h.to_string()).collect::<Vec<_>>()));
        println!("{}", row(&vec!["---".to_string(); head.len()]));
        for (r, _) in runs {
            let p = &r.open;
            let mut cells = vec![
                r.subs.to_string(),
                format!("{}{}", p.updates, if p.complete { "" } else { " (incomplete)" }),
                p.deliveries.to_string(),
                format!("{:.3}", p.wall),
                format!("{:.0}", p.rate()),
                format!("{:.0}", p.updates as f64 / p.wall),
                per_process(p.server_cpu, &p.cpu.servers, 2),
                format!("{:.2}", p.server_us_per_delivery()),
            ];
            if multi {
                cells.push(format!("{:.2}", p.cpu.redis));
            }
            cells.extend([
                format!("{:.2}", p.cpu.loadgen),
                format!("{:.2}", p.cpu.other),
                format!("{} / {}", ms(p.latency.delivery_p50), ms(p.latency.delivery_p99)),
            ]);
            let rss: Vec<f64> = r.peak_rss_kb.iter().map(|&k| k as f64 / 1024.0).collect();
            if multi {
                cells.push(by_process(&p.latency));
                cells.push(rss.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" + "));
                cells.push(format!("{:.1}", r.redis_peak_rss_kb as f64 / 1024.0));
            } else {
                cells.push(format!("{:.1}", rss.first().copied().unwrap_or(0.0)));
            }
            cells.extend([r.lost.to_string(), r.ended.to_string()]);
            println!("{}", row(&cells));
            if r.lost > 0 || r.out_of_order > 0 || r.ended > 0 || !r.closed.complete || !p.complete || r.unexpected > 0
            {
                ok = false;
            }
        }
        println!();
        for (r, _) in runs {
            println!(
                "- S={}: {} subscribed in {:.1}s; failed writes {}; out-of-order {}, unexpected frames {}{}",
                r.subs,
                r.subs,
                r.setup_secs,
                r.closed.write_errors + r.open.write_errors,
                r.out_of_order,
                r.unexpected,
                if r.end_reasons.is_empty() { String::new() } else { format!("; ended: {:?}", r.end_reasons) }
            );
        }
    }
    if let Some((i, cmd)) = idle {
        let per = |rss: u64| (rss.saturating_sub(i.rss0)) as f64 * 1024.0 / i.conns as f64;
        println!("\n### Idle connections (server `{cmd}`)\n");
        println!("| connections | RSS with none KiB | RSS connected KiB | per connection | RSS subscribed KiB | per subscribed connection | peak RSS KiB |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {} | {:.0} B ({:.1} KiB) | {} | {:.0} B ({:.1} KiB) | {} |",
            i.conns,
            i.rss0,
            i.rss_connected,
            per(i.rss_connected),
            per(i.rss_connected) / 1024.0,
            i.rss_subscribed,
            per(i.rss_subscribed),
            per(i.rss_subscribed) / 1024.0,
            i.peak
        );
    }
    ok
}

/// Channel row over model row, per S: the figures that reproduce.
fn channel_ratios(model: &[(Outcome, String)], channel: &[(Outcome, String)]) {
    println!("\n### Channel / model-event, same run\n");
    println!("| S | open-loop deliveries/s | server µs CPU per delivery | closed-loop to-all p50 | to-all p99 |");
    println!("|---|---|---|---|---|");
    for ((m, _), (c, _)) in model.iter().zip(channel) {
        let ratio = |c: f64, m: f64| if m > 0.0 { format!("{:.2}x", c / m) } else { "-".into() };
        println!(
            "| {} | {} | {} | {} | {} |",
            m.subs,
            ratio(c.open.rate(), m.open.rate()),
            ratio(c.open.server_us_per_delivery(), m.open.server_us_per_delivery()),
            ratio(c.closed.latency.all_p50 as f64, m.closed.latency.all_p50 as f64),
            ratio(c.closed.latency.all_p99 as f64, m.closed.latency.all_p99 as f64),
        );
    }
}

fn write_report(o: &Options, runs: &[(writes::WriteOutcome, String)]) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db =
        o.db.as_deref()
            .map_or("a SQLite file", |u| if u.starts_with("postgres") { "PostgreSQL" } else { "a SQLite file" });
    println!(
        "\n## Committed writes per second: {} process(es) on {db}, {} writers x {} in flight, `{:?}` verb, {} hot rows\n",
        o.processes, o.writers, o.window, o.driver, o.hot
    );
    println!("Command: `loadgen {}`", args.join(" "));
    if let Some((_, command)) = runs.first() {
        println!("Server: `{command}`\n");
    }
    println!("| S | writes/s | server µs CPU per write | deliveries | subscribers off | load average |");
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for (w, _) in runs {
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} |",
            w.subs,
            w.writes_per_sec(),
            w.server_us_per_write(),
            w.deliveries,
            w.lost,
            w.load
        );
        ok &= w.lost == 0 && w.failed == 0;
    }
    ok
}

// ---------------------------------------------------------------- main

async fn main_async(o: Options) -> Result<bool, BoxError> {
    build_server(&o)?;
    if let Some(secs) = o.writes {
        let mut runs = Vec::new();
        for &s in &o.subs {
            runs.push(writes::write_run(&o, s, secs).await?);
        }
        return Ok(write_report(&o, &runs));
    }
    if o.baseline {
        let (pairs, wyrmhole_cmd, bare_cmd) = baseline::run_pairs(&o).await?;
        let mut ok = baseline::report_pairs(&o, &pairs, &wyrmhole_cmd, &bare_cmd);
        if let Some(n) = o.idle {
            ok &= report(&o, &[], &Some(idle_run(&o, n).await?), None);
        }
        return Ok(ok);
    }
    let channel_o = Options { driver: Driver::Channel, ..o.clone() };
    let (mut runs, mut channel_runs) = (Vec::new(), Vec::new());
    if o.fanout {
        for &s in &o.subs {
            runs.push(fanout_run(&o, s).await?);
            if o.vs_channel {
                channel_runs.push(fanout_run(&channel_o, s).await?);
            }
        }
    }
    let idle = match o.idle {
        Some(n) => Some(idle_run(&o, n).await?),
        None => None,
    };
    let mut ok = report(&o, &runs, &idle, None);
    if o.vs_channel {
        let title = format!("the same rows on the channel path ({} server process(es))", o.processes);
        ok &= report(&channel_o, &channel_runs, &None, Some(&title));
        channel_ratios(&runs, &channel_runs);
    }
    Ok(ok)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let nofile = os::raise_nofile_limit();
    let most = o.subs.iter().copied().chain(o.idle).max().unwrap_or(0);
    if (nofile as usize) < most + 100 {
        eprintln!("open files limit {nofile} is too low for {most} connections");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match rt.block_on(main_async(o)) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("loadgen: some run lost events, ended connections or did not complete");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
    let _ = std::io::stdout().flush();
}
