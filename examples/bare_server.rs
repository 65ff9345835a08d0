//! The same-run reference for the fan-out benchmark (`loadgen --baseline`
//! starts it): a bare tokio + tokio-tungstenite broadcast, no wyrmhole, no
//! database, so the load generator can state every figure as wyrmhole ÷
//! what the socket layer alone costs on the same machine in the same run.
//!
//! ```text
//! cargo build --release --example bare_server
//! target/release/examples/bare_server --port 0
//! ```
//!
//! It speaks just enough of wyrmhole's protocol for the load generator's
//! clients to work unchanged:
//!
//! - `subscribe` (any route, any filter) replies like wyrmhole,
//!   `{"data":{"epoch":..,"pos":..,"rows":[..],"sub":1},"id":..,"ok":true,"type":"reply"}`,
//!   with the `--hot` rows of list 1 as the snapshot, and joins the broadcast.
//! - `bump {"id": 1, "n": 17}` stamps `sent_at_us` (wall clock, µs), builds
//!   ONE event frame, `{"type":"event","sub":1,"seq":N,"pos":..,"route":"item",
//!   "action":"updated","data":{"id":1,"sent_at_us":..,"text":"bump 17"}}`,
//!   the same JSON shape and size as wyrmhole's event for that change, hands
//!   it to every subscriber, then replies `{"sent_at_us":..}` to the writer.
//!   `update {"id":1,"data":{..}}` does the same with the client's fields.
//! - Anything else gets an empty successful reply.
//!
//! The frame is identical for every subscriber (one `Bytes`, shared; the
//! only per-subscriber copy is tungstenite's into the socket's write
//! buffer): this is the lower bound, not a per-subscriber `format!` as
//! wyrmhole does today. Every subscription is `sub` 1 and `seq` counts the
//! broadcasts, so it equals a subscriber's own seq when everyone subscribed
//! before the first write, which is what the load generator does; its
//! seq checks then hold unchanged.
//!
//! The broadcast is a `tokio::sync::broadcast` channel of `--queue`
//! frames (the publisher pays O(1) per change, each subscriber clones a
//! refcounted frame); a subscriber that falls more than `--queue` frames
//! behind is closed with 4008, as wyrmhole closes a slow consumer. Each
//! connection is one task owning its socket (no split lock): it reads
//! requests and writes events, feeding every frame already queued before one
//! flush. Sockets have TCP_NODELAY and wyrmhole's default socket buffers
//! (1 KiB read, 16 KiB write), so the two differ above the socket layer only.
//!
//! It prints `bare_server listening on ws://ADDR/ws pid PID` and serves
//! until stdin closes, Ctrl-C, or `--max-secs` pass. Options: `--port N`,
//! `--queue N` (default 65536), `--workers N` (default one per core),
//! `--hot N` (rows in the subscribe snapshot, default 1), `--max-secs N`
//! (default 1800); `--rows N` is accepted and ignored (there is no table).

#[path = "loadgen/os.rs"]
mod os;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

struct Options {
    port: u16,
    queue: usize,
    workers: Option<usize>,
    hot: usize,
    max_secs: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options { port: 0, queue: 1 << 16, workers: None, hot: 1, max_secs: 1800 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--port" => o.port = number(value()?)? as u16,
            "--queue" => o.queue = number(value()?)?.max(1) as usize,
            "--workers" => o.workers = Some(number(value()?)? as usize),
            "--hot" => o.hot = number(value()?)?.max(1) as usize,
            "--max-secs" => o.max_secs = number(value()?)?,
            // bench_server's options that mean nothing here.
            "--rows" => drop(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// The one broadcast every subscriber shares.
struct Hub {
    /// Broadcasts so far; held while a frame is built and sent, so frames
    /// go out in seq order however many writers publish at once.
    seq: Mutex<u64>,
    tx: broadcast::Sender<Message>,
    /// The subscribe reply's snapshot: the hot rows of list 1.
    rows: String,
    /// Like wyrmhole's: the server's start time in µs (it only tells restarts apart).
    epoch: i64,
}

impl Hub {
    /// Builds one event frame for `data` (a JSON object's text) and hands it to every subscriber.
    fn publish(&self, data: &str) {
        let mut seq = self.seq.lock();
        *seq += 1;
        // The pos is wyrmhole's commit position; on a fresh bench_server
        // it equals the seq (the seeding is not a change), so it does here.
        let frame = format!(
            r#"{{"type":"event","sub":1,"seq":{0},"pos":{0},"route":"item","action":"updated","data":{data}}}"#,
            *seq
        );
        // No receivers is fine (a write before anyone subscribed).
        let _ = self.tx.send(Message::text(frame));
    }
}

/// Answers one request; the reply's text, like wyrmhole's (keys sorted).
fn handle(hub: &Hub, text: &str, events: &mut Option<broadcast::Receiver<Message>>) -> String {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return r#"{"error":{"code":"malformed_frame","message":"not JSON"},"id":null,"ok":false,"type":"reply"}"#
            .to_string();
    };
    let id = request["id"].to_string();
    let args = &request["args"];
    let data = match request["verb"].as_str().unwrap_or_default() {
        "subscribe" => {
            if events.is_none() {
                *events = Some(hub.tx.subscribe());
            }
            let pos = *hub.seq.lock();
            format!(r#"{{"epoch":{},"pos":{pos},"rows":{},"sub":1}}"#, hub.epoch, hub.rows)
        }
        "bump" => {
            let (row, n) = (args["id"].as_i64().unwrap_or(1), args["n"].as_i64().unwrap_or(0));
            let sent_at_us = now_us();
            hub.publish(&format!(r#"{{"id":{row},"sent_at_us":{sent_at_us},"text":"bump {n}"}}"#));
            format!(r#"{{"sent_at_us":{sent_at_us}}}"#)
        }
        "update" => {
            let mut data = args["data"].as_object().cloned().unwrap_or_default();
            data.insert("id".into(), args["id"].clone());
            let data = Value::Object(data).to_string();
            hub.publish(&data);
            data
        }
        _ => "{}".to_string(),
    };
    format!(r#"{{"data":{data},"id":{id},"ok":true,"type":"reply"}}"#)
}

/// Waits for the next event if subscribed; never otherwise.
async fn next_event(events: &mut Option<broadcast::Receiver<Message>>) -> Result<Message, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection: one task owns the socket, reading requests and writing events.
async fn connection(hub: Arc<Hub>, stream: TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    // wyrmhole's socket buffers (`ConnectionConfig::read_buffer_bytes`,
    // `write_buffer_bytes`): with tungstenite's 128 KiB defaults the bare
    // server would pay for clearing a big read buffer on every wake-up and
    // its RSS would not be comparable.
    let config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(16 * 1024);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let mut events: Option<broadcast::Receiver<Message>> = None;
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let reply = handle(&hub, t.as_str(), &mut events);
                    ws.send(Message::text(reply)).await?;
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
            event = next_event(&mut events) => {
                let mut event = event;
                // Everything already queued goes out with one flush.
                loop {
                    match event {
                        Ok(frame) => ws.feed(frame).await?,
                        Err(RecvError::Lagged(_)) => {
                            let close = CloseFrame { code: CloseCode::from(4008), reason: "slow consumer".into() };
                            let _ = ws.send(Message::Close(Some(close))).await;
                            return Ok(());
                        }
                        Err(RecvError::Closed) => return Ok(()),
                    }
                    match events.as_mut().map(|rx| rx.try_recv()) {
                        Some(Ok(frame)) => event = Ok(frame),
                        Some(Err(broadcast::error::TryRecvError::Lagged(n))) => event = Err(RecvError::Lagged(n)),
                        _ => break,
                    }
                }
                ws.flush().await?;
            }
        }
    }
}

async fn run(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<String> = (1..=o.hot)
        .map(|i| format!(r#"{{"done":false,"id":{i},"list_id":1,"sent_at_us":0,"text":"the benchmark row {i}"}}"#))
        .collect();
    let hub = Arc::new(Hub {
        seq: Mutex::new(0),
        tx: broadcast::channel(o.queue).0,
        rows: format!("[{}]", rows.join(",")),
        epoch: now_us(),
    });
    let listener = TcpListener::bind(("127.0.0.1", o.port)).await?;
    println!("bare_server listening on ws://{}/ws pid {}", listener.local_addr()?, std::process::id());
    std::io::stdout().flush()?;

    let accept = {
        let hub = hub.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(hub.clone(), stream));
                    }
                    // Out of file descriptors, say: wait and go on, as a server would.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    };
    // Ends when stdin closes (the load generator exited), on Ctrl-C, or after max_secs.
    let eof_rx = os::stdin_closed();
    tokio::select! {
        _ = accept => {}
        _ = eof_rx => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(o.max_secs)) => eprintln!("bare_server: --max-secs reached"),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options().map_err(|e| {
        format!("{e}\nusage: bare_server [--port N] [--queue N] [--workers N] [--hot N] [--max-secs N]")
    })?;
    let nofile = os::raise_nofile_limit();
    if nofile < 12_000 {
        eprintln!("bare_server: open files limit is {nofile}; 10k connections will not fit");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(w) = o.workers {
        rt.worker_threads(w);
    }
    rt.build()?.block_on(run(o))
}
