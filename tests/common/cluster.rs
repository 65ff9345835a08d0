//! Real processes for the multi-process tests: redis-server and the
//! examples (the todo app, the relations server), each on a free port,
//! killed (SIGKILL) when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server on `port` of 127.0.0.1, keeping nothing on disk.
pub fn redis_server(port: u16, dir: &Path) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (tests/run-all.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

/// An example binary (`todo`, `relations_server`), built by `cargo test`
/// next to the test's binary (with the same features), or `cargo build
/// --example NAME`.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join(name);
    assert!(bin.exists(), "{} is missing: run `cargo build --example {name}`", bin.display());
    bin
}

/// The todo example (see [`example_path`]).
pub fn example_binary() -> PathBuf {
    example_path("todo")
}

/// Starts one process of the example `name` on `db`, sharing commits
/// through `redis`, and waits for the line where it says its address
/// (`wyrmhole ... at http://ADDR/`); returns it and its WebSocket URL.
/// `port` 0 lets it pick one.
pub fn example_server(name: &str, db: &str, redis: &str, port: u16) -> (Proc, String) {
    let mut child = Command::new(example_path(name))
        .env("WYRM_PORT", port.to_string())
        .env("WYRM_DB", db)
        .env("REDIS_URL", redis)
        .env("WYRM_METRICS", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().unwrap_or_else(|| panic!("the example {name} exited")).unwrap();
        if let Some((_, rest)) = line.split_once(" at http://").filter(|_| line.starts_with("wyrmhole ")) {
            break format!("ws://{rest}ws");
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), url)
}

/// Starts one todo process on `db`, sharing commits through `redis`;
/// returns it and its WebSocket URL.
pub fn todo_server(db: &str, redis: &str) -> (Proc, String) {
    example_server("todo", db, redis, 0)
}
