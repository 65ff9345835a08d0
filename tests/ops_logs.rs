//! Structured logs: what a request logs carries the fields of its request
//! span (route, verb, request id) and of its connection's span (connection
//! number, user, address), and a panic is logged with its message. Its own
//! test binary, since it installs the process's global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::TestServer;
use serde_json::{json, Value};

/// Log lines written by the subscriber, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

#[tokio::test]
async fn a_request_log_line_carries_its_spans() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The JSON format the todo example offers (WYRM_LOG_FORMAT=json).
    tracing_subscriber::fmt().json().with_writer(move || writer.clone()).with_max_level(tracing::Level::INFO).init();

    let server = TestServer::start().await;
    let mut client = server.client_as(42).await;
    client.ok("ping", "subscribe", json!({})).await;
    let reply = client.call("todo-item", "boom", json!({})).await;
    assert_eq!(reply["error"]["code"], "internal");
    let request_id = reply["id"].clone();

    let lines = captured.lines();
    let panicked = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request handler panicked")
        .unwrap_or_else(|| panic!("no panic line among {lines:#?}"));
    assert_eq!(panicked["level"], "ERROR");
    assert_eq!(panicked["fields"]["panic"], "handler exploded");
    let spans = panicked["spans"].as_array().expect("the line's spans");
    let [connection, request] = &spans[..] else { panic!("expected the connection and request spans: {spans:?}") };
    assert_eq!(connection["name"], "connection");
    assert_eq!(connection["user"], 42);
    assert!(connection["conn"].as_u64().is_some(), "{connection}");
    let remote = connection["remote"].as_str().expect("the remote address");
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    assert_eq!(request["name"], "request");
    assert_eq!(request["route"], "todo-item");
    assert_eq!(request["verb"], "boom");
    assert_eq!(request["id"], request_id.to_string());
}
