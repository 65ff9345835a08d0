// Every verb and the structured errors, against the real todo example.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { connect, WyrmholeError } from "../src/wyrmhole.js";
import { startServer, tempDb } from "../test-support/server.js";

let server, db, client, lists, items, listId;

before(async () => {
  db = tempDb();
  server = await startServer({ db: db.path });
  client = connect(server.wsUrl, { WebSocket });
  lists = client.route("todo-list");
  items = client.route("todo-item");
  listId = (await lists.create({ name: "Groceries" })).id;
});

after(async () => {
  client?.close();
  await server?.kill();
  db.remove();
});

/** Asserts that `promise` rejects with a WyrmholeError of `code`; returns the error. */
async function rejectsWith(promise, code) {
  const err = await promise.then(
    (value) => assert.fail(`expected ${code}, got a reply: ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(err instanceof WyrmholeError, `not a WyrmholeError: ${err}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.message.length > 0);
  return err;
}

describe("standard verbs", () => {
  test("create, getSingle, update, delete", async () => {
    const created = await items.create({ list_id: listId, text: "milk", done: false });
    assert.deepEqual(created, { id: created.id, list_id: listId, text: "milk", done: false });
    assert.deepEqual(await items.getSingle(created.id), created);

    const updated = await items.update(created.id, { done: true });
    assert.deepEqual(updated, { ...created, done: true }, "a partial update keeps the other fields");

    assert.deepEqual(await items.delete(created.id), { id: created.id });
    await rejectsWith(items.getSingle(created.id), "not_found");
  });

  test("getList filters, orders, pages and counts", async () => {
    const list = (await lists.create({ name: "Paging" })).id;
    for (const [text, done] of [["b", false], ["a", true], ["c", false]]) {
      await items.create({ list_id: list, text, done });
    }
    const all = await items.getList({ filter: { list_id: list }, orderBy: "text" });
    assert.deepEqual(all.rows.map((r) => r.text), ["a", "b", "c"]);
    assert.equal(all.hasMore, false);
    assert.equal(all.total, undefined, "total only when asked");

    const page = await items.getList({ filter: { list_id: list }, orderBy: ["-text"], limit: 2, offset: 0, total: true });
    assert.deepEqual(page.rows.map((r) => r.text), ["c", "b"]);
    assert.equal(page.hasMore, true);
    assert.equal(page.total, 3);
    assert.equal(page.limit, 2);

    const done = await items.getList({ filter: { list_id: list, done: true } });
    assert.deepEqual(done.rows.map((r) => r.text), ["a"]);
  });

  test("subscribe and unsubscribe through call()", async () => {
    const reply = await items.call("subscribe", { filter: { list_id: listId } });
    assert.equal(typeof reply.sub, "number");
    assert.ok(Array.isArray(reply.rows));
    assert.deepEqual(await items.call("unsubscribe", { sub: reply.sub }), { sub: reply.sub });
    await rejectsWith(items.call("unsubscribe", { sub: reply.sub }), "unknown_subscription");
  });

  test("the custom verb clear_done deletes the list's done items only", async () => {
    const list = (await lists.create({ name: "Chores" })).id;
    const keep = await items.create({ list_id: list, text: "dishes", done: false });
    await items.create({ list_id: list, text: "laundry", done: true });
    await items.create({ list_id: list, text: "floor", done: true });
    const other = await items.create({ list_id: listId, text: "elsewhere", done: true });

    assert.deepEqual(await items.call("clear_done", { list_id: list }), { deleted: 2 });
    const left = await items.getList({ filter: { list_id: list } });
    assert.deepEqual(left.rows, [keep]);
    assert.deepEqual(await items.getSingle(other.id), other, "other lists are untouched");
  });
});

describe("structured errors", () => {
  test("bad filter names the offending key in fields", async () => {
    const err = await rejectsWith(items.getList({ filter: { nope: 1 } }), "bad_filter");
    assert.deepEqual(Object.keys(err.fields), ["nope"]);
    assert.ok(err.fields.nope[0].length > 0);
  });

  test("writing a read-only field", async () => {
    const err = await rejectsWith(items.create({ id: 999, list_id: listId, text: "x", done: false }), "read_only_field");
    assert.deepEqual(Object.keys(err.fields), ["id"]);
  });

  test("validation hook: empty and over-long text", async () => {
    const empty = await rejectsWith(items.create({ list_id: listId, text: "   ", done: false }), "validation_failed");
    assert.ok(empty.fields.text);
    const long = await rejectsWith(
      items.create({ list_id: listId, text: "x".repeat(501), done: false }),
      "validation_failed",
    );
    assert.match(long.fields.text[0], /500/);
    // 500 characters (not bytes) is allowed.
    assert.equal((await items.create({ list_id: listId, text: "é".repeat(500), done: false })).text.length, 500);
  });

  test("not found, unknown verb, unknown route, missing field, bad args", async () => {
    await rejectsWith(items.update(123456, { done: true }), "not_found");
    await rejectsWith(items.delete(123456), "not_found");
    await rejectsWith(items.call("fly", {}), "unknown_verb");
    await rejectsWith(client.route("nope").getSingle(1), "unknown_route");
    const missing = await rejectsWith(items.create({ list_id: listId, text: "no done" }), "invalid_data");
    assert.ok(missing.fields.done);
    const bad = await rejectsWith(items.call("clear_done", {}), "bad_args");
    assert.ok(bad.fields.list_id);
  });

  test("a foreign key violation is a conflict", async () => {
    await rejectsWith(items.create({ list_id: 987654, text: "orphan", done: false }), "conflict");
  });

  test("login_required rejects cleanly; the connection and subscriptions carry on", async () => {
    const watched = items.subscribe({ list_id: listId });
    await watched.ready;
    const list = await lists.create({ name: "Keep me" });
    await rejectsWith(lists.delete(list.id), "login_required");
    // Not awaited by anyone: must not become an unhandled rejection either.
    lists.subscribe({ nope: true });

    const row = await items.create({ list_id: listId, text: "still here", done: false });
    assert.equal(client.state, "open");
    await waitForItem(watched, row.id);
    watched.unsubscribe();
  });

  test("a signed-in user (token) may delete a list", async () => {
    const alice = connect(server.wsUrl, { WebSocket, token: "alice" });
    try {
      const list = await alice.route("todo-list").create({ name: "Alice's" });
      assert.deepEqual(await alice.route("todo-list").delete(list.id), { id: list.id });
    } finally {
      alice.close();
    }
  });
});

function waitForItem(collection, id) {
  if (collection.get(id)) return Promise.resolve();
  return new Promise((resolve) => {
    const off = collection.on("change", (c) => c.id === id && (off(), resolve()));
  });
}
