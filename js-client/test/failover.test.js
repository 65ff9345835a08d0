// Several servers: a draining server's close (1012) sends the client to the
// next URL at once, and failed attempts go round the list. Driven through an
// in-memory WebSocket whose server side is the test.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../src/wyrmhole.js";
import { waitFor } from "../test-support/wait.js";

class FakeWebSocket {
  static opened = [];
  static refuse = new Set();
  readyState = 0;
  constructor(url) {
    this.url = url;
    FakeWebSocket.opened.push(this);
    setTimeout(() => {
      if (FakeWebSocket.refuse.has(new URL(url).host)) {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: "" });
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send() {}
  close() {
    this.readyState = 3;
  }
  serverClose(code, reason) {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const hosts = () => FakeWebSocket.opened.map((ws) => new URL(ws.url).host);

test("a draining server's 1012 moves the client to the next URL at once", async () => {
  FakeWebSocket.opened = [];
  FakeWebSocket.refuse = new Set();
  // A backoff of a minute: only an immediate reconnect passes this test.
  const client = connect(["ws://a.test/ws", "ws://b.test/ws"], {
    WebSocket: FakeWebSocket,
    token: "7",
    backoff: { min: 60_000, max: 60_000 },
  });
  await waitFor(() => client.state === "open");
  assert.deepEqual(hosts(), ["a.test"]);
  assert.equal(new URL(FakeWebSocket.opened[0].url).searchParams.get("token"), "7");
  FakeWebSocket.opened[0].serverClose(1012, "server restarting");
  await waitFor(() => client.state === "open" && FakeWebSocket.opened.length === 2);
  assert.deepEqual(hosts(), ["a.test", "b.test"]);
  assert.equal(new URL(FakeWebSocket.opened[1].url).searchParams.get("token"), "7");
  client.close();
});

test("a failed attempt tries the next URL; one URL as a string still works", async () => {
  FakeWebSocket.opened = [];
  FakeWebSocket.refuse = new Set(["a.test"]);
  const client = connect(["ws://a.test/ws", "ws://b.test/ws"], { WebSocket: FakeWebSocket, backoff: { min: 1, max: 1 } });
  await waitFor(() => client.state === "open");
  assert.deepEqual(hosts(), ["a.test", "b.test"]);
  client.close();

  FakeWebSocket.opened = [];
  FakeWebSocket.refuse = new Set();
  const single = connect("ws://c.test/ws", { WebSocket: FakeWebSocket, backoff: { min: 60_000, max: 60_000 } });
  await waitFor(() => single.state === "open");
  FakeWebSocket.opened[0].serverClose(1012, "server restarting");
  await waitFor(() => FakeWebSocket.opened.length === 2 && single.state === "open");
  assert.deepEqual(hosts(), ["c.test", "c.test"]);
  single.close();
});
