// Presence and channels in the JS client, against the real todo example:
// live member lists, meta updates, channel messages and their refusals,
// and both coming back after the connection is cut.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { connect } from "../src/wyrmhole.js";
import { startProxy } from "../test-support/proxy.js";
import { startServer, tempDb } from "../test-support/server.js";
import { nextState, waitFor, waitForState } from "../test-support/wait.js";

let server, db;
const cleanup = [];

before(async () => {
  db = tempDb();
  server = await startServer({ db: db.path });
});

after(async () => {
  for (const undo of cleanup.reverse()) await undo();
  await server?.kill();
  db.remove();
});

function client(url, token) {
  const c = connect(url, { WebSocket, token, backoff: { min: 20, max: 100 } });
  cleanup.push(() => c.close());
  return c;
}

const names = (presence) => presence.members.map((m) => m.name).sort();

describe("presence", () => {
  test("members see each other join, update and leave", async () => {
    const ann = client(server.wsUrl, "ann").presence("todo-list:1", { editing: null });
    const bobClient = client(server.wsUrl, "bob");
    const bob = bobClient.presence("todo-list:1", { editing: null });
    const joins = [];
    ann.on("join", (m) => joins.push(m.name));
    await waitFor(() => names(ann).join() === "ann,bob", { what: "ann to see bob" });
    assert.deepEqual(names(bob), ["ann", "bob"]);
    assert.equal(ann.others[0].name, "bob");

    const updated = new Promise((resolve) => ann.on("update", resolve));
    await bob.update({ editing: 7 });
    assert.deepEqual((await updated).meta, { editing: 7 });
    assert.deepEqual(ann.others[0].meta, { editing: 7 }, "members hold the latest meta");

    bob.leave();
    await waitFor(() => names(ann).join() === "ann", { what: "bob to leave" });
    assert.deepEqual(joins.sort(), ["ann", "bob"], "the first list comes as joins too");
  });

  test("a refused join is an error event, and the presence is left", async () => {
    const c = client(server.wsUrl, "cy");
    const big = c.presence("todo-list:2", { bio: "x".repeat(2000) });
    const err = await new Promise((resolve) => big.on("error", resolve));
    assert.equal(err.code, "bad_args");
    assert.ok(err.fields.meta);
    // Left: the topic may be joined again.
    const ok = c.presence("todo-list:2", {});
    await waitFor(() => ok.id != null, { what: "the second join" });
  });

  test("after the connection is cut, it rejoins and the others see one member", async () => {
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const watcher = client(server.wsUrl, "wat").presence("todo-list:3", {});
    const roamingClient = client(proxy.url(server.wsUrl), "rom");
    const roaming = roamingClient.presence("todo-list:3", { editing: 1 });
    await waitFor(() => names(watcher).join() === "rom,wat", { what: "both members" });
    const firstId = roaming.id;
    const left = [];
    watcher.on("leave", (m) => left.push(m.id));
    proxy.cut();
    // It may be back before we look: watch the events, not the list.
    await waitFor(() => left.includes(firstId), { what: "the cut member to leave" });
    await waitForState(roamingClient, "open");
    await waitFor(() => roaming.id != null && roaming.id !== firstId, { what: "the rejoin" });
    await waitFor(() => names(watcher).join() === "rom,wat", { what: "the member to return" });
    assert.deepEqual(roaming.others.map((m) => m.name), ["wat"]);
    assert.deepEqual(watcher.others[0].meta, { editing: 1 }, "rejoined with its meta");
  });
});

describe("channels", () => {
  test("messages arrive in order; anonymous clients may listen but not publish", async () => {
    const listener = client(server.wsUrl).channel("todo-list:5");
    const got = [];
    listener.on("message", (data) => got.push(data.n));
    const speaker = client(server.wsUrl, "sam").channel("todo-list:5");
    // The subscribe goes out before the publishes, on its own connection: wait for one to land.
    await waitFor(async () => {
      await speaker.publish({ n: -1 });
      return got.length > 0;
    }, { what: "the subscription" });
    got.length = 0;
    for (let n = 0; n < 20; n++) await speaker.publish({ n });
    await waitFor(() => got.length === 20, { what: "20 messages" });
    assert.deepEqual(got, [...Array(20).keys()]);
    await assert.rejects(client(server.wsUrl).channel("todo-list:5").publish(1), { code: "forbidden" });
    const refused = client(server.wsUrl).channel("elsewhere");
    const err = new Promise((resolve) => refused.on("error", resolve));
    refused.on("message", () => {});
    assert.equal((await err).code, "forbidden");
  });

  test("a channel subscribes again after a reconnect", async () => {
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const c = client(proxy.url(server.wsUrl));
    const got = [];
    c.channel("todo-list:6").on("message", (d) => got.push(d));
    const speaker = client(server.wsUrl, "sue").channel("todo-list:6");
    await waitFor(async () => (await speaker.publish("before"), got.length > 0), { what: "first message" });
    const reopened = nextState(c, "open");
    proxy.cut();
    await reopened;
    got.length = 0;
    await waitFor(async () => (await speaker.publish("after"), got.includes("after")), { what: "a message after" });
  });
});
