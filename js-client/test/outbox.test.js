// The outbox and optimistic updates, against the real todo example: writes
// show at once (pending), survive reconnects and a "reload" (a new client
// on the same storage), land exactly once, and a refused one rolls back.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { connect, MemoryStorage } from "../src/wyrmhole.js";
import { startProxy } from "../test-support/proxy.js";
import { startServer, tempDb } from "../test-support/server.js";
import { waitFor, waitForState } from "../test-support/wait.js";

const FAST = { WebSocket, backoff: { min: 20, max: 200 } };
const TIMEOUT = { timeout: 60_000 };

let server, db;
const cleanup = [];

before(async () => {
  db = tempDb();
  server = await startServer({ db: db.path });
});

after(async () => {
  for (const fn of cleanup.reverse()) await fn();
  await server?.kill();
  db.remove();
});

function client(url = server.wsUrl, opts = {}) {
  const c = connect(url, { ...FAST, storage: new MemoryStorage(), ...opts });
  cleanup.push(() => c.close());
  return c;
}

async function newList(c, name) {
  return (await c.route("todo-list").create({ name })).id;
}

/** The list's items as the database has them (through a fresh client). */
async function stored(listId) {
  const reader = client();
  const { rows } = await reader.route("todo-item").getList({ filter: { list_id: listId }, limit: 1000 });
  reader.close();
  return rows.map(({ id, text, done }) => ({ id, text, done }));
}

function shown(collection) {
  return collection.items.map(({ id, text, done }) => ({ id, text, done }));
}

test("a write shows at once, pending, and is confirmed in place", TIMEOUT, async () => {
  const c = client();
  const list = await newList(c, "optimistic");
  const items = c.route("todo-item").subscribe({ list_id: list });
  await items.ready;
  const made = c.route("todo-item").create({ list_id: list, text: "milk", done: false });
  // Synchronously: no reply could have arrived yet.
  assert.equal(items.size, 1);
  assert.ok(items.isPending(items.items[0]) && items.hasPendingWrites && c.hasPendingWrites);
  assert.match(String(items.items[0].id), /^pending:/);
  const row = await made;
  await waitFor(() => !items.hasPendingWrites && items.get(row.id), { what: "the confirmed row" });
  assert.deepEqual(shown(items), [{ id: row.id, text: "milk", done: false }]);

  c.route("todo-item").update(row.id, { done: true });
  assert.equal(items.get(row.id).done, true, "the update shows before its reply");
  assert.ok(items.isPending(row.id));
  await waitFor(() => !c.hasPendingWrites);
  assert.deepEqual(await stored(list), shown(items));
});

test("a refused write rolls back and emits error with the server's code and fields", TIMEOUT, async () => {
  const c = client();
  const list = await newList(c, "refusals");
  const row = await c.route("todo-item").create({ list_id: list, text: "keep me", done: false });
  const items = c.route("todo-item").subscribe({ list_id: list });
  await items.ready;
  const errors = [];
  c.on("error", (e) => errors.push(e));
  const refused = c.route("todo-item").update(row.id, { text: "   " });
  assert.equal(items.get(row.id).text, "   ", "shown at once");
  const err = await refused.catch((e) => e);
  assert.equal(err.code, "validation_failed");
  assert.equal(items.get(row.id).text, "keep me", "rolled back");
  assert.ok(!items.isPending(row.id));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "validation_failed");
  assert.deepEqual(Object.keys(errors[0].fields), ["text"]);
  assert.deepEqual(errors[0].write, { route: "todo-item", verb: "update", args: { id: row.id, data: { text: "   " } } });

  // A refused create takes the writes to its row down with it.
  c.route("todo-item").create({ list_id: list, text: "", done: false }).catch(() => {});
  const temp = items.items.find((i) => String(i.id).startsWith("pending:")).id;
  c.route("todo-item").update(temp, { done: true }).catch(() => {});
  await waitFor(() => !c.hasPendingWrites);
  assert.deepEqual(shown(items), [{ id: row.id, text: "keep me", done: false }]);
  assert.equal(errors.length, 3);
});

test("writes made offline survive a reload and land exactly once, in order", TIMEOUT, async () => {
  const proxy = await startProxy(server.wsUrl);
  cleanup.push(() => proxy.close());
  const storage = new MemoryStorage();
  const setup = client();
  const list = await newList(setup, "offline");
  const old = await setup.route("todo-item").create({ list_id: list, text: "old", done: false });

  const page = client(proxy.url(server.wsUrl), { storage });
  const items = page.route("todo-item").subscribe({ list_id: list });
  await items.ready;
  proxy.down();
  await waitForState(page, "reconnecting");
  const route = page.route("todo-item");
  for (const text of ["one", "two", "three"]) route.create({ list_id: list, text, done: false }).catch(() => {});
  const two = items.items.find((i) => i.text === "two").id;
  route.update(two, { text: "two (edited)" }).catch(() => {});
  route.delete(old.id).catch(() => {});
  assert.deepEqual(
    shown(items).map((i) => i.text),
    ["one", "two (edited)", "three"],
  );
  // The page is reloaded while offline: a new client on the same storage.
  page.close();
  const reloaded = client(proxy.url(server.wsUrl), { storage });
  await reloaded.outboxReady;
  assert.equal(reloaded.pendingWrites, 5);
  const again = reloaded.route("todo-item").subscribe({ list_id: list });
  proxy.restore();
  await again.ready;
  await waitFor(() => !reloaded.hasPendingWrites, { what: "the outbox to drain" });
  await waitFor(async () => JSON.stringify(shown(again)) === JSON.stringify(await stored(list)), {
    what: "the page to equal the database",
  });
  assert.deepEqual(
    (await stored(list)).map((i) => i.text),
    ["one", "two (edited)", "three"],
  );
});

test("a write whose reply was lost is sent again and runs once", TIMEOUT, async () => {
  const proxy = await startProxy(server.wsUrl);
  cleanup.push(() => proxy.close());
  const setup = client();
  const list = await newList(setup, "lost replies");
  const c = client(proxy.url(server.wsUrl));
  await waitForState(c, "open");
  proxy.deafen(); // the server runs what it gets; its replies are lost
  const made = [];
  for (let i = 0; i < 20; i++) made.push(c.route("todo-item").create({ list_id: list, text: `n${i}`, done: false }));
  await waitFor(async () => (await stored(list)).length === 20, { what: "the server to run them" });
  proxy.restore();
  proxy.cut(); // the client reconnects and resends all 20 with their keys
  const replies = await Promise.all(made);
  const rows = await stored(list);
  assert.deepEqual(
    rows.map((r) => r.text),
    replies.map((r) => r.text),
    "each ran once, in order",
  );
  assert.deepEqual(
    replies.map((r) => r.id),
    rows.map((r) => r.id),
  );
});
