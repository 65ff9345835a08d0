// Stream handling that a healthy server never produces (a seq gap, a
// duplicate event), driven through a scripted in-memory WebSocket.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../src/wyrmhole.js";
import { waitFor } from "../test-support/wait.js";

/** A WebSocket whose server side is the test: it reads `sent` and calls `receive`. */
class ScriptedWebSocket {
  static last;
  readyState = 0;
  sent = [];
  constructor(url) {
    this.url = url;
    ScriptedWebSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  receive(...frames) {
    // Several frames in one go, with no microtask in between, as `ws` may deliver them.
    for (const frame of frames) this.onmessage?.({ data: JSON.stringify(frame) });
  }
  /** The last request sent with this verb. */
  request(verb) {
    return this.sent.findLast((f) => f.verb === verb);
  }
}

const reply = (id, data) => ({ type: "reply", id, ok: true, data });
const event = (sub, seq, action, data) => ({ type: "event", sub, seq, pos: 100 + seq, route: "todo-item", action, data });

async function subscribed(opts) {
  const client = connect("ws://test.invalid/ws", { WebSocket: ScriptedWebSocket, ...opts });
  const collection = client.route("todo-item").subscribe({ list_id: 1 });
  const log = [];
  collection.on("change", (c) => log.push(`${c.action} ${c.id}`));
  collection.on("reset", () => log.push("reset"));
  const ws = await waitFor(() => ScriptedWebSocket.last?.request("subscribe") && ScriptedWebSocket.last);
  return { client, collection, log, ws };
}

test("events right behind the subscribe reply are applied, in seq order", async () => {
  const { client, collection, log, ws } = await subscribed();
  const sub = ws.request("subscribe");
  assert.deepEqual(sub.args, { filter: { list_id: 1 } });
  ws.receive(
    reply(sub.id, { sub: 7, pos: 100, rows: [{ id: 1, text: "a", done: false }] }),
    event(7, 1, "created", { id: 2, text: "b", done: false }),
    event(7, 2, "updated", { id: 1, done: true }),
  );
  await collection.ready;
  assert.deepEqual(collection.items, [
    { id: 1, text: "a", done: true },
    { id: 2, text: "b", done: false },
  ]);
  assert.deepEqual(log, ["reset", "created 2", "updated 1"]);
  client.close();
});

test("a seq gap re-subscribes and reconciles with the fresh snapshot", async () => {
  const { client, collection, log, ws } = await subscribed();
  const debug = [];
  client.on("debug", (m) => debug.push(m));
  ws.receive(reply(ws.request("subscribe").id, { sub: 7, pos: 100, rows: [{ id: 1, text: "a" }, { id: 2, text: "b" }] }));
  await collection.ready;
  ws.receive(event(7, 1, "updated", { id: 1, text: "a1" }));
  ws.receive(event(7, 3, "created", { id: 9, text: "after a lost event" }));

  assert.match(debug[0], /seq gap: expected 2, got 3/);
  assert.deepEqual(ws.request("unsubscribe").args, { sub: 7 }, "the broken subscription is dropped");
  const again = ws.request("subscribe");
  assert.notEqual(again.id, ws.sent[0].id, "a new subscribe was sent");
  ws.receive(
    reply(again.id, { sub: 8, pos: 110, rows: [{ id: 1, text: "a2" }, { id: 3, text: "c" }] }),
    event(7, 4, "created", { id: 99, text: "late event of the old subscription" }),
  );
  assert.deepEqual(collection.items, [
    { id: 1, text: "a2" },
    { id: 3, text: "c" },
  ]);
  assert.deepEqual(log, ["reset", "updated 1", "deleted 2", "updated 1", "created 3", "reset"]);
  client.close();
});

test("a gap frame from the server re-subscribes with a fresh snapshot, never a resume", async () => {
  const { client, collection, log, ws } = await subscribed();
  ws.receive(reply(ws.request("subscribe").id, { sub: 7, epoch: 5, pos: 100, rows: [{ id: 1, text: "a" }] }));
  await collection.ready;
  ws.receive({ type: "gap", sub: 7, reason: "changes 101 to 102 of todo-item were lost" });
  await waitFor(() => ws.sent.filter((f) => f.verb === "subscribe").length === 2);
  assert.equal(ws.request("resume"), undefined, "rows that missed changes are not resumed from");
  ws.receive(reply(ws.request("subscribe").id, { sub: 8, epoch: 5, pos: 103, rows: [{ id: 2, text: "b" }] }));
  assert.deepEqual(collection.items, [{ id: 2, text: "b" }]);
  assert.deepEqual(log, ["reset", "deleted 1", "created 2", "reset"]);
  client.close();
});

test("a repeated 'created' never duplicates a row; a custom order is kept through updates", async () => {
  const byText = (a, b) => a.text.localeCompare(b.text);
  const client = connect("ws://test.invalid/ws", { WebSocket: ScriptedWebSocket });
  const collection = client.route("todo-item").subscribe({}, { order: byText });
  const ws = await waitFor(() => ScriptedWebSocket.last?.request("subscribe") && ScriptedWebSocket.last);
  ws.receive(reply(ws.request("subscribe").id, { sub: 1, pos: 0, rows: [{ id: 1, text: "m" }, { id: 2, text: "z" }] }));
  ws.receive(event(1, 1, "created", { id: 3, text: "a" }), event(1, 2, "created", { id: 3, text: "a" }));
  assert.deepEqual(collection.items.map((i) => i.id), [3, 1, 2]);
  ws.receive(event(1, 3, "updated", { id: 2, text: "b" }));
  assert.deepEqual(collection.items.map((i) => i.text), ["a", "b", "m"]);
  ws.receive(event(1, 4, "deleted", { id: 1 }));
  assert.deepEqual([...collection].map((i) => i.id), [3, 2]);
  assert.equal(collection.size, 2);
  assert.equal(collection.get(1), undefined);
  client.close();
});

test("a refused subscription rejects ready and emits error, without an unhandled rejection", async () => {
  const { client, collection, ws } = await subscribed();
  const errors = [];
  collection.on("error", (e) => errors.push(e.code));
  ws.receive({
    type: "reply",
    id: ws.request("subscribe").id,
    ok: false,
    error: { code: "bad_filter", message: "bad filter", fields: { list_id: ["no"] } },
  });
  const err = await collection.ready.catch((e) => e);
  assert.equal(err.code, "bad_filter");
  assert.deepEqual(err.fields, { list_id: ["no"] });
  assert.deepEqual(errors, ["bad_filter"]);
  assert.equal(collection.state, "stopped");
  client.close();
});

test("a resume the connection cuts before it moved on is not repeated: the next attempt re-snapshots", async () => {
  const { client, collection, log, ws } = await subscribed({ backoff: { min: 5, max: 10 } });
  ws.receive(reply(ws.request("subscribe").id, { sub: 7, epoch: 5, pos: 100, rows: [{ id: 1, text: "a" }] }));
  await collection.ready;
  ws.receive(event(7, 1, "updated", { id: 1, text: "a1" }));
  const drop = (socket) => {
    socket.readyState = 3;
    socket.onclose?.({ code: 4008, reason: "slow consumer" });
  };

  // Dropped while live: resume from the last position applied.
  drop(ws);
  const second = await waitFor(() => ScriptedWebSocket.last !== ws && ScriptedWebSocket.last?.request("resume") && ScriptedWebSocket.last);
  assert.deepEqual(second.request("resume").args, { filter: { list_id: 1 }, epoch: 5, pos: 101 });
  // The resume moves us on by one change, then the connection drops again:
  // progress, so resuming again (from further on) is fine.
  second.receive(reply(second.request("resume").id, { sub: 8, epoch: 5, pos: 101 }), {
    ...event(8, 1, "created", { id: 2, text: "b" }),
    pos: 102,
  });
  drop(second);
  const third = await waitFor(() => ScriptedWebSocket.last !== second && ScriptedWebSocket.last?.request("resume") && ScriptedWebSocket.last);
  assert.equal(third.request("resume").args.pos, 102);
  // This one is cut before it brings anything: no third resume from 102.
  third.receive(reply(third.request("resume").id, { sub: 9, epoch: 5, pos: 102 }));
  drop(third);
  const fourth = await waitFor(() => ScriptedWebSocket.last !== third && ScriptedWebSocket.last?.sent.length > 0 && ScriptedWebSocket.last);
  assert.equal(fourth.request("resume"), undefined, "a resume that got nowhere is not tried again");
  const again = fourth.request("subscribe");
  fourth.receive(reply(again.id, { sub: 10, epoch: 5, pos: 110, rows: [{ id: 2, text: "b" }, { id: 3, text: "c" }] }));
  assert.deepEqual(collection.items.map((i) => i.id), [2, 3]);
  assert.deepEqual(log, ["reset", "updated 1", "created 2", "deleted 1", "created 3", "reset"]);
  client.close();
});
