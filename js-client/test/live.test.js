// Live collections against the real server: concurrent writers, missed
// changes, dropped TCP connections and a server restart. Every test ends by
// checking that each collection equals a fresh get_list, with no duplicates.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { connect } from "../src/wyrmhole.js";
import { startProxy } from "../test-support/proxy.js";
import { startServer, tempDb } from "../test-support/server.js";
import { nextState, waitFor, waitForState } from "../test-support/wait.js";

const FAST = { WebSocket, backoff: { min: 20, max: 300 } };
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
  const c = connect(url, { ...FAST, ...opts });
  cleanup.push(() => c.close());
  return c;
}

async function newList(c, name) {
  return (await c.route("todo-list").create({ name })).id;
}

/**
 * Records a collection's change events into a shadow map, so a test can
 * check that the events alone rebuild exactly the collection's rows.
 */
function shadow(collection) {
  const rows = new Map();
  const log = [];
  collection.on("reset", ({ items }) => {
    // After a re-snapshot the diffs were already reported as changes; the
    // shadow must already agree, so only the first reset seeds it.
    if (log.length === 0 && rows.size === 0) for (const i of items) rows.set(i.id, i);
    log.push({ action: "reset" });
  });
  collection.on("change", (c) => {
    log.push(c);
    if (c.action === "deleted") rows.delete(c.id);
    else rows.set(c.id, c.item);
  });
  return { rows, log };
}

/**
 * A collection of `list`'s items on a client behind a proxy, loaded, then
 * cut off: the proxy is down and the client is reconnecting.
 */
async function awayFrom(list) {
  const proxy = await startProxy(server.wsUrl);
  cleanup.push(() => proxy.close());
  const observer = client(proxy.url(server.wsUrl));
  const collection = observer.route("todo-item").subscribe({ list_id: list });
  const { log } = shadow(collection);
  await collection.ready;
  proxy.down();
  await waitForState(observer, "reconnecting");
  return { proxy, observer, collection, log };
}

const byId = (rows) => [...rows].sort((a, b) => a.id - b.id);

/** Waits until the collection holds exactly what get_list returns now, then checks its invariants. */
async function assertConverges(collection, reader, what) {
  let expected;
  await waitFor(
    async () => {
      expected = [];
      for (let page; !page || page.hasMore; ) {
        page = await reader.route(collection.route).getList({ filter: collection.filter, limit: 1000, offset: expected.length });
        expected.push(...page.rows);
      }
      return JSON.stringify(byId(collection.items)) === JSON.stringify(byId(expected));
    },
    { timeout: 15_000, every: 50, what: `${what} to converge` },
  ).catch((err) => {
    assert.deepEqual(byId(collection.items), byId(expected), err.message);
  });
  const ids = collection.items.map((i) => i.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: duplicate rows`);
  for (const item of collection.items) assert.equal(collection.get(item.id), item);
}

/** A seeded PRNG (mulberry32), so a failing interleaving can be replayed. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One writer's random creates, toggles, renames, moves between lists and deletes. */
async function writeRandomly(c, lists, ops, seed) {
  const rand = random(seed);
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const items = c.route("todo-item");
  const mine = [];
  let done = 0;
  // Several requests in flight at once: the server runs them concurrently.
  const burst = async () => {
    while (done < ops) {
      done += 1;
      const roll = rand();
      try {
        if (roll < 0.4 || mine.length === 0) {
          mine.push((await items.create({ list_id: pick(lists), text: `w${seed}-${done}`, done: rand() < 0.3 })).id);
        } else if (roll < 0.6) {
          await items.update(pick(mine), { done: rand() < 0.5 });
        } else if (roll < 0.7) {
          await items.update(pick(mine), { text: `renamed ${done}` });
        } else if (roll < 0.85) {
          await items.update(pick(mine), { list_id: pick(lists) });
        } else {
          const id = mine.splice(Math.floor(rand() * mine.length), 1)[0];
          await items.delete(id);
        }
      } catch (err) {
        if (err.code !== "not_found") throw err;
      }
    }
  };
  await Promise.all([burst(), burst(), burst()]);
}

describe("live collections", () => {
  test("several writers, several collections: every collection ends equal to the server", TIMEOUT, async () => {
    const setup = client();
    const [a, b] = [await newList(setup, "A"), await newList(setup, "B")];
    const observer = client();
    const resyncs = [];
    observer.on("debug", (m) => resyncs.push(m));
    const items = observer.route("todo-item");
    const collections = {
      "all of A": items.subscribe({ list_id: a }),
      "done in B": items.subscribe({ list_id: b, done: true }),
      everything: items.subscribe({}, { order: (x, y) => x.text.localeCompare(y.text) }),
    };
    const shadows = Object.fromEntries(Object.entries(collections).map(([k, c]) => [k, shadow(c)]));
    await Promise.all(Object.values(collections).map((c) => c.ready));

    const writers = [client(), client(), client(), client()];
    await Promise.all(writers.map((w, i) => writeRandomly(w, [a, b], 60, i + 1)));

    for (const [what, collection] of Object.entries(collections)) {
      await assertConverges(collection, setup, what);
      assert.deepEqual(byId(shadows[what].rows.values()), byId(collection.items), `${what}: events rebuild the rows`);
      assert.ok(shadows[what].log.length > 1, `${what} saw changes`);
    }
    assert.deepEqual(resyncs, [], "a live connection never needs a fresh snapshot");
    const everything = collections.everything.items;
    for (let i = 1; i < everything.length; i++) {
      assert.ok(everything[i - 1].text.localeCompare(everything[i].text) <= 0, "custom order is kept");
    }
  });

  test("an ordered window keeps the server's first N rows in order, through writers and a reconnect", TIMEOUT, async () => {
    const setup = client();
    const [a, b] = [await newList(setup, "window A"), await newList(setup, "window B")];
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const observer = client(proxy.url(server.wsUrl));
    const args = { filter: { list_id: a }, orderBy: ["-done", "text"], limit: 5 };
    const window = observer.route("todo-item").subscribe(args.filter, { orderBy: args.orderBy, limit: args.limit });
    const { rows: shadowRows } = shadow(window);
    await window.ready;
    const converges = async (what) => {
      let expected;
      await waitFor(
        async () => {
          expected = (await setup.route("todo-item").getList(args)).rows;
          return JSON.stringify(window.items) === JSON.stringify(expected);
        },
        { timeout: 15_000, every: 50, what: `${what} to converge` },
      ).catch((err) => assert.deepEqual(window.items, expected, err.message));
      assert.deepEqual(byId(shadowRows.values()), byId(window.items), `${what}: events rebuild the rows`);
    };
    await Promise.all([client(), client(), client()].map((w, i) => writeRandomly(w, [a, b], 50, i + 11)));
    await converges("the window under writers");
    assert.ok(window.size <= 5);

    proxy.down();
    await waitForState(observer, "reconnecting");
    await writeRandomly(client(), [a, b], 30, 99);
    proxy.restore();
    await converges("the window after a reconnect");
  });

  test("changes missed while offline are resumed as created/updated/deleted events", TIMEOUT, async () => {
    const writer = client();
    const list = await newList(writer, "Offline");
    const items = writer.route("todo-item");
    const [keep, change, remove] = await Promise.all(
      ["keep", "change", "remove"].map((text) => items.create({ list_id: list, text, done: false })),
    );

    const { proxy, observer, collection, log } = await awayFrom(list);
    const added = await items.create({ list_id: list, text: "added", done: false });
    await items.update(change.id, { text: "changed" });
    await items.delete(remove.id);
    proxy.restore();
    await waitForState(observer, "open");

    await assertConverges(collection, writer, "reconciled collection");
    const changes = log.filter((e) => e.action !== "reset").map((e) => `${e.action} ${e.id}`);
    assert.deepEqual(changes.sort(), [`created ${added.id}`, `deleted ${remove.id}`, `updated ${change.id}`].sort());
    // Resumed, not re-snapshotted: the only reset is the first snapshot's.
    assert.deepEqual(
      log.filter((e) => e.action === "reset"),
      [{ action: "reset" }],
      "a resume replays events and keeps the rows",
    );
    assert.equal(log[0].action, "reset");
    assert.equal(collection.get(keep.id).text, "keep");
    assert.equal(collection.get(change.id).text, "changed");
  });

  test("a long absence resumes in one go, with no reconnect loop", TIMEOUT, async () => {
    const writer = client();
    const list = await newList(writer, "Away");
    const { proxy, observer, collection, log } = await awayFrom(list);
    // More changes than the server's outbound queue holds (1024 frames).
    const items = writer.route("todo-item");
    for (let i = 0; i < 1500; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => items.create({ list_id: list, text: `away ${i + j}`, done: false })));
    }
    const states = [];
    observer.on("state", (s) => states.push(s));
    proxy.restore();
    await waitForState(observer, "open");
    await assertConverges(collection, writer, "resumed collection");
    assert.equal(collection.size, 1500);
    assert.deepEqual(states, ["open"], "no reconnection after the one that resumed");
    assert.deepEqual(log.filter((e) => e.action === "reset"), [{ action: "reset" }], "resumed, not re-snapshotted");
  });

  test("a TCP connection reset mid-stream: the collection converges", TIMEOUT, async () => {
    const writer = client();
    const list = await newList(writer, "Cut");
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const observer = client(proxy.url(server.wsUrl));
    const states = [];
    observer.on("state", (s) => states.push(s));
    const collection = observer.route("todo-item").subscribe({ list_id: list });
    await collection.ready;

    // Cut the connection while events are streaming in.
    const reopened = nextState(observer, "open");
    let seen = 0;
    const cutAfter = new Promise((resolve) => {
      const off = collection.on("change", () => {
        if (++seen === 40) {
          off();
          proxy.cut();
          resolve();
        }
      });
    });
    const items = writer.route("todo-item");
    const writes = [];
    for (let i = 0; i < 200; i++) {
      writes.push(items.create({ list_id: list, text: `item ${i}`, done: i % 2 === 0 }));
      if (i % 10 === 9) await Promise.all(writes.splice(0));
    }
    await cutAfter;
    await reopened;
    await assertConverges(collection, writer, "collection after the reset");
    assert.equal(collection.size, 200);
    assert.ok(states.includes("reconnecting"), `states: ${states}`);
  });

  test("the server is killed and restarted: queued requests run, collections converge", TIMEOUT, async () => {
    const own = tempDb();
    let s = await startServer({ db: own.path });
    cleanup.push(async () => {
      await s.kill();
      own.remove();
    });
    const writer = client(s.wsUrl);
    const observer = client(s.wsUrl);
    const states = [];
    observer.on("state", (st) => states.push(st));
    const list = await newList(writer, "Restart");
    const items = writer.route("todo-item");
    const before = await items.create({ list_id: list, text: "before", done: false });
    const collection = observer.route("todo-item").subscribe({ list_id: list });
    await collection.ready;
    assert.deepEqual(collection.items, [before]);

    await s.kill();
    await waitForState(writer, "reconnecting");
    await waitForState(observer, "reconnecting");
    // Made while the server is down: queued, sent after the restart.
    const queued = items.create({ list_id: list, text: "queued", done: false });
    const toggled = items.update(before.id, { done: true });
    assert.equal(writer.pendingRequests, 2);

    s = await startServer({ port: s.port, db: own.path });
    const [row] = await Promise.all([queued, toggled]);
    assert.equal(row.text, "queued");
    await waitForState(observer, "open");
    await assertConverges(collection, writer, "collection after the restart");
    assert.deepEqual(
      collection.items.map((i) => [i.text, i.done]),
      [["before", true], ["queued", false]],
    );
    assert.deepEqual(states.slice(-2), ["reconnecting", "open"]);
  });
});

describe("resume refused", () => {
  test("a server restarted on a fresh database cannot resume: the collection re-snapshots", TIMEOUT, async () => {
    const first = tempDb();
    let s = await startServer({ db: first.path });
    const second = tempDb();
    cleanup.push(async () => {
      await s.kill();
      first.remove();
      second.remove();
    });
    const observer = client(s.wsUrl);
    const writer = client(s.wsUrl);
    const list = await newList(writer, "Old");
    await writer.route("todo-item").create({ list_id: list, text: "old", done: false });
    const collection = observer.route("todo-item").subscribe({});
    const { log } = shadow(collection);
    await collection.ready;
    assert.equal(collection.size, 1);

    // Same port, another database: another epoch, so `resume` is refused.
    await s.kill();
    await waitForState(observer, "reconnecting");
    s = await startServer({ port: s.port, db: second.path });
    await waitForState(observer, "open");
    await waitFor(() => collection.size === 0, { timeout: 15_000, every: 20, what: "the re-snapshot" });
    assert.ok(log.some((e) => e.action === "deleted"), "the old row is reported deleted");
    assert.equal(log.at(-1).action, "reset", "a fresh snapshot ends with a reset");
    await assertConverges(collection, writer, "collection on the new database");
  });
});

describe("requests", () => {
  test("a request with no reply times out and is freed", TIMEOUT, async () => {
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const c = client(proxy.url(server.wsUrl), { requestTimeout: 300 });
    await waitForState(c, "open");
    proxy.stall(); // connected, but nothing gets through
    const started = Date.now();
    const err = await c.route("todo-list").getList().catch((e) => e);
    assert.equal(err.code, "timeout");
    assert.ok(Date.now() - started >= 290, "not before the timeout");
    assert.equal(c.pendingRequests, 0);
    // The stalled stream is garbage now: drop it; the client recovers.
    proxy.restore();
    const reopened = nextState(c, "open");
    proxy.cut();
    await reopened;
    assert.ok(Array.isArray((await c.route("todo-list").getList()).rows));
  });

  test("requests made while disconnected queue until open, or time out", TIMEOUT, async () => {
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    proxy.down();
    const c = client(proxy.url(server.wsUrl), { requestTimeout: 5_000 });
    const lists = c.route("todo-list");
    const queued = [lists.create({ name: "q1" }), lists.create({ name: "q2" }), lists.getList()];
    const impatient = c.route("todo-list").call("get_list", {});
    await waitFor(() => c.state === "reconnecting" || c.state === "connecting");
    assert.equal(c.pendingRequests, 4);
    proxy.restore();
    const [q1, q2, page] = await Promise.all(queued);
    assert.deepEqual([q1.name, q2.name], ["q1", "q2"]);
    assert.ok(page.rows.length >= 0);
    await impatient;

    const short = client(proxy.url(server.wsUrl), { requestTimeout: 200 });
    await waitForState(short, "open");
    proxy.down();
    await waitForState(short, "reconnecting");
    const err = await short.route("todo-list").getList().catch((e) => e);
    assert.equal(err.code, "timeout");
    assert.equal(short.pendingRequests, 0);
    proxy.restore();
  });

  test("a request in flight when the connection drops fails with 'disconnected'", TIMEOUT, async () => {
    const proxy = await startProxy(server.wsUrl);
    cleanup.push(() => proxy.close());
    const c = client(proxy.url(server.wsUrl));
    await waitForState(c, "open");
    proxy.stall();
    const inFlight = c.route("todo-list").getList();
    proxy.restore();
    proxy.cut();
    const err = await inFlight.catch((e) => e);
    assert.equal(err.code, "disconnected");
    assert.equal(c.pendingRequests, 0);
  });

  test("finished requests are freed: the pending map is empty after many", TIMEOUT, async () => {
    const c = client(server.wsUrl, { requestTimeout: 10_000 });
    const items = c.route("todo-item");
    const list = await newList(c, "Many");
    const work = [];
    for (let i = 0; i < 300; i++) {
      work.push(items.create({ list_id: list, text: `n${i}`, done: false }));
      work.push(items.getSingle(-i).catch((e) => e.code)); // not_found
      work.push(items.call("no_such_verb").catch((e) => e.code));
    }
    assert.ok(c.pendingRequests > 0);
    const results = await Promise.all(work);
    assert.equal(results.filter((r) => r === "not_found").length, 300);
    assert.equal(c.pendingRequests, 0);
    for (let i = 0; i < 30; i++) {
      const live = items.subscribe({ list_id: list });
      await live.ready;
      assert.equal(live.size, 300);
      live.unsubscribe();
    }
    await waitFor(() => c.pendingRequests === 0, { what: "unsubscribe replies" });
  });

  test("close() fails pending requests and stops reconnecting", TIMEOUT, async () => {
    const c = client();
    const states = [];
    c.on("state", (s) => states.push(s));
    const pending = c.route("todo-list").getList();
    c.close();
    assert.equal((await pending.catch((e) => e)).code, "closed");
    assert.equal((await c.route("todo-list").getList().catch((e) => e)).code, "closed");
    assert.equal(c.state, "closed");
    assert.deepEqual(states, ["closed"]);
  });
});
