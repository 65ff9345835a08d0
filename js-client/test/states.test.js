// Connection states an app can act on, against small stand-in servers:
// a refused token ("unauthorized", no retry loop, setToken reconnects) and
// the heartbeat that notices a server that stopped answering.

import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";

import { connect, MemoryStorage } from "../src/wyrmhole.js";
import { waitFor, waitForState } from "../test-support/wait.js";

const FAST = { WebSocket, backoff: { min: 20, max: 100 }, storage: new MemoryStorage() };

/** A server that accepts only `?token=good`, answering like wyrmhole:
 * 401 and the reason on the upgrade and on a plain GET. */
async function authServer() {
  let attempts = 0;
  const refuse = (url) => new URL(url, "http://x").searchParams.get("token") !== "good";
  const server = http.createServer((req, res) => {
    res.writeHead(refuse(req.url) ? 401 : 400).end(refuse(req.url) ? "authentication failed: bad token" : "");
  });
  const wss = new WebSocketServer({
    server,
    verifyClient: (info, done) => {
      attempts += 1;
      if (refuse(info.req.url)) done(false, 401, "authentication failed: bad token");
      else done(true);
    },
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    get attempts() {
      return attempts;
    },
    wss,
    close: () => new Promise((resolve) => (wss.close(), server.close(resolve), server.closeAllConnections())),
  };
}

test("a refused token stops the retries with 'unauthorized'; setToken connects again", async () => {
  const server = await authServer();
  const c = connect(server.url, { ...FAST, token: "stale" });
  const refusals = [];
  c.on("unauthorized", (why) => refusals.push(why));
  await waitForState(c, "unauthorized");
  assert.deepEqual(refusals, [{ reason: "authentication failed: bad token" }]);
  const attempts = server.attempts;
  // No retry loop: the attempts stay where they are while nothing changes.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(server.attempts, attempts);
  assert.equal(c.state, "unauthorized");
  c.setToken("good");
  await waitForState(c, "open");
  c.close();
  await server.close();
});

test("a server gone silent is noticed by the heartbeat, and the client reconnects", async () => {
  const pings = [];
  let connections = 0;
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  wss.on("connection", (ws) => {
    connections += 1;
    // Hears the first ping, then nothing more, not even a close frame: a
    // half-open socket as the client sees it (a close handshake would
    // never finish).
    ws.on("message", (data) => {
      pings.push(JSON.parse(data));
      ws._socket.pause();
    });
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  const c = connect(`ws://127.0.0.1:${wss.address().port}/ws`, { ...FAST, heartbeat: { interval: 100, timeout: 100 } });
  await waitForState(c, "open");
  await waitFor(() => connections >= 2, { what: "a reconnect after the heartbeat gave up" });
  assert.ok(pings.some((p) => p.route === "$ping" && p.verb === "ping"), JSON.stringify(pings));
  c.close();
  for (const ws of wss.clients) ws.terminate();
  await new Promise((resolve) => wss.close(resolve));
});
