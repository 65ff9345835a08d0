// Shared lists in real Chromium, three pages in their own contexts: alice
// shares a list with bob by name and it appears in bob's open page with its
// items, live; bob's edits reach alice; when alice unshares, the list leaves
// bob's page and nothing alice does to it afterwards reaches bob; a guest
// sees none of it; bob leaves a list shared with him. No page is ever
// reloaded.
//
// Its own server and browser, apart from the other browser tests.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchChromium } from "../chromium.js";

import { startServer, tempDb } from "../../../js-client/test-support/server.js";

const WAIT = { timeout: 10_000 };
const TEST = { timeout: 60_000 };

let server, db, browser;
let alice, bob, guest, trip;
const pageErrors = [];

before(async () => {
  db = tempDb();
  server = await startServer({ db: db.path });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.kill();
  db?.remove();
});

/** A page in its own context, signed in as `token` (none: a guest), connected. */
async function openPage(token) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  const name = token ?? "guest";
  page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${name}: ${msg.text()}`);
  });
  await page.goto(`${server.url}/${token ? `?token=${encodeURIComponent(token)}` : ""}`);
  await page.waitForSelector('#state[data-state="open"]', WAIT);
  // A page that reloads loses this: the checks below prove nothing reloaded.
  await page.evaluate(() => (window.sameDocument = true));
  return page;
}

async function newList(page, name) {
  await page.fill("#new-list input", name);
  await page.press("#new-list input", "Enter");
  await page.waitForSelector(`#list-name:text("${name}")`, WAIT);
  return Number(new URL(page.url()).hash.split("=")[1]);
}

async function addItem(page, text) {
  await page.fill("#new-item input", text);
  await page.press("#new-item input", "Enter");
  await page.waitForSelector(`#items .item:not(.pending) .text:text-is("${text}")`, WAIT);
}

const texts = (page) => page.$$eval("#items .item .text", (spans) => spans.map((s) => s.textContent).sort());
const listNames = (page) => page.$$eval("#lists a", (as) => as.map((a) => a.textContent));
const memberNames = (page) => page.$$eval("#members li", (lis) => lis.map((li) => li.dataset.name));

/** Opens list `id` in `page` by its URL's hash, as a link or a bookmark would. */
const go = (page, id) => page.evaluate((id) => (location.hash = `list=${id}`), id);

/**
 * Records, in `page`, every item event of a subscription to all items the
 * page may see, and every item text its list view ever shows: what the
 * checks after unsharing read.
 */
async function record(page) {
  await page.evaluate(async () => {
    const seen = (window.seen = { events: [], shown: new Set() });
    const all = window.todo.client.route("todo-item").subscribe({});
    all.on("change", ({ action, id, pending }) => {
      // Only what the server said: not this page's own optimistic rows.
      if (pending || String(id).startsWith("pending:")) return;
      seen.events.push({ action, id, text: all.get(id)?.text ?? null });
    });
    await all.ready;
    window.allItems = all;
    const items = document.getElementById("items");
    new MutationObserver(() => {
      for (const span of items.querySelectorAll(".text")) seen.shown.add(span.textContent);
    }).observe(items, { childList: true, subtree: true, characterData: true });
  });
}

test("a list shared by name appears in the other user's open page with its items, live", TEST, async () => {
  [alice, bob, guest] = [await openPage("alice"), await openPage("bob"), await openPage(null)];
  trip = await newList(alice, "Trip");
  await addItem(alice, "tickets");
  await addItem(alice, "passport");
  assert.deepEqual(await memberNames(alice), ["alice"]);
  assert.equal(await alice.isVisible("#share"), true, "the owner may share");

  // Bob has the list's address open before it is his: he sees nothing of it.
  await go(bob, trip);
  await record(bob);
  assert.deepEqual(await listNames(bob), []);
  assert.deepEqual(await texts(bob), []);

  await alice.fill("#share input", "bob");
  await alice.press("#share input", "Enter");
  await alice.waitForSelector('#members li[data-name="bob"]', WAIT);
  // Bob's page gets the list, its items and its members without asking.
  await bob.waitForSelector(`#lists a[data-id="${trip}"]:text("Trip")`, WAIT);
  await bob.waitForFunction(() => document.querySelectorAll("#items .item").length === 2, null, WAIT);
  assert.deepEqual(await texts(bob), ["passport", "tickets"]);
  await bob.waitForSelector("#list-name:text('Trip')", WAIT);
  await bob.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, WAIT);
  assert.deepEqual(await memberNames(bob), ["alice", "bob"]);
  // A member edits items; sharing, renaming and deleting stay the owner's.
  assert.equal(await bob.isVisible("#share"), false);
  assert.equal(await bob.isVisible("#rename-list"), false);
  assert.equal(await bob.isVisible("#delete-list"), false);
  assert.equal(await bob.locator("#members .unshare").count(), 0);
  const refused = await bob.evaluate((id) =>
    window.todo.client.route("todo-list").update(id, { name: "Bob's now" }).then(
      () => "renamed",
      (e) => e.code,
    ), trip);
  assert.equal(refused, "validation_failed", "a member may not rename the list");
  // The server refuses what the page does not offer, each with its code.
  const outcome = (page, id, calls) =>
    page.evaluate(
      async ({ id, calls }) => {
        const code = (p) => p.then(() => "ok", (e) => e.code);
        const out = {};
        for (const [name, route, verb, args] of calls) {
          out[name] = await code(window.todo.client.route(route).call(verb, JSON.parse(args.replace("ID", id))));
        }
        return out;
      },
      { id, calls },
    );
  assert.deepEqual(
    await outcome(bob, trip, [
      ["share", "todo-list", "share", '{"list_id": ID, "user": "carol"}'],
      ["unshare", "todo-list", "unshare", '{"list_id": ID, "user": "alice"}'],
      ["delete", "todo-list", "delete", '{"id": ID}'],
      ["deleteWithItems", "todo-list", "delete_with_items", '{"id": ID}'],
      ["member", "list-member", "delete", '{"id": 1}'],
    ]),
    { share: "forbidden", unshare: "forbidden", delete: "forbidden", deleteWithItems: "forbidden", member: "forbidden" },
  );
  assert.deepEqual(
    await outcome(alice, trip, [
      ["self", "todo-list", "unshare", '{"list_id": ID, "user": "alice"}'],
      ["badName", "todo-list", "share", '{"list_id": ID, "user": "not a name!"}'],
      ["nobody", "todo-list", "unshare", '{"list_id": ID, "user": "zed"}'],
      ["elsewhere", "todo-list", "share", '{"list_id": 987654, "user": "bob"}'],
    ]),
    { self: "bad_args", badName: "bad_args", nobody: "not_found", elsewhere: "not_found" },
  );
  assert.deepEqual(
    await outcome(guest, trip, [["share", "todo-list", "share", '{"list_id": ID, "user": "bob"}']]),
    { share: "login_required" },
  );

  await addItem(bob, "sunscreen");
  await alice.waitForSelector('#items .item .text:text-is("sunscreen")', WAIT);
  assert.deepEqual(await texts(alice), ["passport", "sunscreen", "tickets"]);

  // Guests see their own board only.
  await go(guest, trip);
  await guest.waitForSelector("#list-view:not([hidden])", WAIT);
  assert.deepEqual(await listNames(guest), []);
  assert.deepEqual(await texts(guest), []);
  assert.deepEqual(await memberNames(guest), []);
});

test("unsharing takes the list from bob's page, and nothing of it reaches him after", TEST, async () => {
  await bob.waitForFunction(() => window.allItems.size === 3, null, WAIT);
  const ids = await bob.evaluate(() => window.allItems.items.map((i) => i.id));
  await alice.getByRole("button", { name: "Stop sharing with bob" }).click();
  await alice.waitForFunction(() => !document.querySelector('#members li[data-name="bob"]'), null, WAIT);

  // Gone from bob's page, list, items and all, without a reload.
  await bob.waitForFunction((id) => !document.querySelector(`#lists a[data-id="${id}"]`), trip, WAIT);
  await bob.waitForSelector("#gone:not([hidden])", WAIT);
  assert.equal(await bob.isVisible("#list-view"), false);
  await bob.waitForFunction(() => window.allItems.size === 0, null, WAIT);
  assert.deepEqual(await texts(bob), []);

  // Alice carries on with the list; then shares another one with bob. Bob
  // gets the second (later in the same item stream), never the first's edits.
  await addItem(alice, "secret plan");
  await alice.getByRole("button", { name: "Edit: tickets", exact: true }).click();
  await alice.fill("#items .edit", "tickets (booked)");
  await alice.press("#items .edit", "Enter");
  await alice.waitForSelector('#items .item:not(.pending) .text:text-is("tickets (booked)")', WAIT);
  const later = await newList(alice, "Later");
  await addItem(alice, "after");
  await alice.fill("#share input", "bob");
  await alice.press("#share input", "Enter");
  await bob.waitForSelector(`#lists a[data-id="${later}"]:text("Later")`, WAIT);
  await bob.waitForFunction(() => window.allItems.items.some((i) => i.text === "after"), null, WAIT);

  const seen = await bob.evaluate(() => ({ events: window.seen.events, shown: [...window.seen.shown] }));
  const unshared = seen.events.findIndex((e) => e.action === "deleted");
  assert.ok(unshared > 0, `bob's items left as deleted: ${JSON.stringify(seen.events)}`);
  const afterwards = seen.events.slice(unshared);
  assert.deepEqual(afterwards.filter((e) => e.action === "deleted").map((e) => e.id).sort(), [...ids].sort());
  const leaked = afterwards.filter((e) => e.action !== "deleted" && e.text !== "after");
  assert.deepEqual(leaked, [], "nothing of the unshared list after its deletes");
  for (const text of ["secret plan", "tickets (booked)"]) {
    assert.ok(!seen.shown.includes(text), `bob's page showed ${text}`);
    assert.ok(!seen.events.some((e) => e.text === text), `bob's client got ${text}`);
  }
  assert.deepEqual(await listNames(bob), ["Later"]);

  // The guest page saw none of it, and its own list stays the guests'.
  assert.deepEqual(await listNames(guest), []);
  const board = await newList(guest, "Guest board");
  await guest.waitForSelector(`#lists a[data-id="${board}"]`, WAIT);
  await guest.waitForSelector('#members li[data-name="guest"]', WAIT);
  assert.deepEqual(await memberNames(guest), ["guest"]);
  await addItem(alice, "last");
  assert.deepEqual(await listNames(alice), ["Later", "Trip"]);
  assert.deepEqual(await listNames(bob), ["Later"]);

  for (const page of [alice, bob, guest]) assert.equal(await page.evaluate(() => window.sameDocument), true);
  assert.deepEqual(pageErrors, []);
});

test("a member leaves a shared list: it leaves their page, and the owner sees them go", TEST, async () => {
  const later = await alice.evaluate(() => Number(new URL(location.href).hash.split("=")[1]));
  await go(bob, later);
  await bob.waitForSelector("#list-name:text('Later')", WAIT);
  // Members may leave; the owner deletes instead.
  await bob.waitForSelector("#leave-list:not([hidden])", WAIT);
  assert.equal(await alice.isVisible("#leave-list"), false);
  const code = (page, id) =>
    page.evaluate(
      (id) => window.todo.client.route("todo-list").call("leave", { list_id: id }).then(() => "ok", (e) => e.code),
      id,
    );
  assert.equal(await code(alice, later), "bad_args", "the owner cannot leave her own list");
  assert.equal(await code(guest, later), "login_required");

  await bob.click("#leave-list");
  await bob.waitForFunction((id) => !document.querySelector(`#lists a[data-id="${id}"]`), later, WAIT);
  await bob.waitForSelector("#gone:not([hidden])", WAIT);
  await bob.waitForFunction(() => window.allItems.size === 0, null, WAIT);
  await alice.waitForFunction(() => !document.querySelector('#members li[data-name="bob"]'), null, WAIT);
  assert.deepEqual(await memberNames(alice), ["alice"]);
  assert.deepEqual(await listNames(bob), []);
  // Gone means gone: leaving again, or anything else on it, is not_found.
  assert.equal(await code(bob, later), "not_found");
  await addItem(alice, "after bob left");
  assert.deepEqual(await bob.evaluate(() => window.allItems.items.map((i) => i.text)), []);
  for (const page of [alice, bob]) assert.equal(await page.evaluate(() => window.sameDocument), true);
  assert.deepEqual(pageErrors, []);
});

test("a list of 1,000 items shared with a user reaches their open page whole", TEST, async () => {
  // Issue 11's benchmark, in the browser: from the owner's share to the
  // 1,000th item shown in the other user's page (BENCHMARKS.md). The
  // figure is printed, not asserted; that every item arrives once is.
  const [owner, reader] = [await openPage("dora"), await openPage("erin")];
  const big = await newList(owner, "Big");
  const res = await fetch(`${server.url}/admin/items/bulk`, {
    method: "POST",
    body: JSON.stringify({ list_id: big, count: 1000, text: "big" }),
  });
  assert.equal(res.status, 200, await res.text());
  await owner.waitForFunction(() => document.querySelectorAll("#items .item").length === 1000, null, WAIT);
  await go(reader, big);
  assert.deepEqual(await texts(reader), []);
  await reader.evaluate(() => {
    window.big = { shown: null };
    new MutationObserver(() => {
      if (window.big.shown == null && document.querySelectorAll("#items .item").length === 1000) {
        window.big.shown = performance.timeOrigin + performance.now();
      }
    }).observe(document.getElementById("items"), { childList: true });
  });
  await owner.fill("#share input", "erin");
  const sharedAt = await owner.evaluate(() => performance.timeOrigin + performance.now());
  await owner.press("#share input", "Enter");
  await reader.waitForFunction(() => window.big.shown != null, null, { timeout: 30_000 });
  const shownAt = await reader.evaluate(() => window.big.shown);
  console.log(`# share of a 1,000-item list: shown whole in the other page ${(shownAt - sharedAt).toFixed(0)} ms after the owner's Enter`);
  const shown = await texts(reader);
  assert.equal(new Set(shown).size, 1000, "each item once");
  assert.ok(shown.every((t) => /^big \d+$/.test(t)));
  assert.deepEqual(pageErrors, []);
});
