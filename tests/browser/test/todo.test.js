// The todo example in two independent browsers (two Chromium contexts, so
// two separate WebSocket connections): what one does, the other sees live;
// admin (server-side) writes reach both; both recover from a server restart.
//
// Uses Debian's /usr/bin/chromium through playwright-core (Playwright's own
// browser download does not work here). Screenshots go to test-artifacts/.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../chromium.js";

import { startServer, tempDb } from "../../../js-client/test-support/server.js";

const ARTIFACTS = fileURLToPath(new URL("../../../test-artifacts/", import.meta.url));
const WAIT = { timeout: 10_000 }; // one wait for the page
const TEST = { timeout: 45_000 }; // one test: several waits

let server, db, browser, alice, bob;
const pageErrors = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  db = tempDb();
  server = await startServer({ db: db.path });
  browser = await launchChromium();
  alice = await openPage("alice");
  bob = await openPage("bob");
});

after(async () => {
  await browser?.close();
  await server?.kill();
  db?.remove();
});

/** A page in its own browser context: no shared storage, its own socket. */
async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on("console", (msg) => msg.type() === "error" && !isConnectionNoise(msg.text()) && pageErrors.push(`${name}: ${msg.text()}`));
  page.name = name;
  await page.goto(server.url + "/");
  await connected(page);
  return page;
}

// Chromium logs failed WebSocket handshakes while the server is down; that is expected.
const isConnectionNoise = (text) => /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(text);

function connected(page) {
  return page.waitForSelector('#state[data-state="open"]', WAIT);
}

function shot(page, name) {
  return page.screenshot({ path: `${ARTIFACTS}${name}-${page.name}.png` });
}

/** [text, done] of every item row, in page order. */
function rows(page) {
  return page.$$eval("#items .item", (lis) =>
    lis.map((li) => [li.querySelector(".text")?.textContent ?? li.querySelector(".edit")?.value, li.classList.contains("done")]),
  );
}

/** Waits until the page shows exactly `expected`; fails with what it shows instead. */
async function showsItems(page, expected) {
  try {
    await page.waitForFunction(
      (exp) => {
        const shown = [...document.querySelectorAll("#items .item")].map((li) => [
          li.querySelector(".text")?.textContent,
          li.classList.contains("done"),
        ]);
        return JSON.stringify(shown) === JSON.stringify(exp);
      },
      expected,
      WAIT,
    );
  } catch (err) {
    assert.deepEqual(await rows(page), expected, `${page.name}'s page: ${err.message}`);
  }
}

function item(page, text) {
  return page.locator("#items .item", { has: page.locator(".text", { hasText: text }) });
}

async function admin(path, body) {
  const res = await fetch(server.url + path, { method: "POST", body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

let listId;

test("a list created by one browser appears in the other, which can open it", TEST, async () => {
  await alice.fill("#new-list input", "Weekend");
  await alice.press("#new-list input", "Enter");
  await alice.waitForFunction(() => /list=\d+/.test(location.hash));
  listId = Number(new URL(alice.url()).hash.split("=")[1]);
  await alice.waitForSelector(`#list-name:text("Weekend")`);

  await bob.click(`#lists a[data-id="${listId}"]`, WAIT);
  await bob.waitForSelector(`#list-name:text("Weekend")`);
});

test("add, toggle, edit and delete in one browser show up in the other", TEST, async () => {
  for (const text of ["buy milk", "water plants", "call mum"]) {
    await alice.fill("#new-item input", text);
    await alice.press("#new-item input", "Enter");
  }
  const three = [["buy milk", false], ["water plants", false], ["call mum", false]];
  await showsItems(alice, three);
  await showsItems(bob, three);

  await item(bob, "water plants").locator(".toggle").check();
  await showsItems(alice, [["buy milk", false], ["water plants", true], ["call mum", false]]);
  await alice.waitForSelector("#remaining:text('2 items left')");

  await item(alice, "buy milk").locator(".text").click();
  await alice.fill("#items .edit", "buy oat milk");
  await alice.press("#items .edit", "Enter");
  await showsItems(bob, [["buy oat milk", false], ["water plants", true], ["call mum", false]]);

  await item(bob, "call mum").hover();
  await item(bob, "call mum").locator(".delete").click();
  const two = [["buy oat milk", false], ["water plants", true]];
  await showsItems(alice, two);
  await showsItems(bob, two);
  await shot(alice, "1-synced");
  await shot(bob, "1-synced");
});

test("each browser shows the other viewing the list, and the item it edits", TEST, async () => {
  // Presence on todo-list:<id>: one avatar each (both pages are anonymous: "guest").
  await alice.waitForSelector("#viewers .avatar[data-name='guest']", WAIT);
  await bob.waitForSelector("#viewers .avatar[data-name='guest']", WAIT);
  assert.equal(await alice.locator("#viewers .avatar").count(), 1, "only the other viewer");

  await item(bob, "water plants").locator(".text").click();
  await item(alice, "water plants").locator(".editor:text('guest is editing')").waitFor(WAIT);
  await shot(alice, "2-editing");
  await bob.press("#items .edit", "Escape");
  await alice.waitForFunction(() => ![...document.querySelectorAll("#items .editor")].some((e) => e.textContent), null, WAIT);
});

test("an invalid edit is refused with a message and changes nothing", TEST, async () => {
  await item(alice, "buy oat milk").locator(".text").click();
  await alice.fill("#items .edit", "   ");
  await alice.press("#items .edit", "Enter");
  await alice.waitForSelector("#error:not([hidden])", WAIT);
  assert.match(await alice.textContent("#error"), /may not be empty/);
  await showsItems(bob, [["buy oat milk", false], ["water plants", true]]);
});

test("writes through the admin endpoint appear in both browsers", TEST, async () => {
  const [first] = await bob.$$eval("#items .item", (lis) => lis.map((li) => Number(li.dataset.id)));
  await admin(`/admin/items/${first}`, { text: "milk (edited by admin)", done: true });
  await admin("/admin/items", { list_id: listId, text: "added by admin", done: false });
  const expected = [["milk (edited by admin)", true], ["water plants", true], ["added by admin", false]];
  await showsItems(alice, expected);
  await showsItems(bob, expected);

  await bob.click("#clear-done");
  await showsItems(alice, [["added by admin", false]]);
  await showsItems(bob, [["added by admin", false]]);
});

test("after a server restart both browsers reconnect and show the right items", { timeout: 60_000 }, async () => {
  await server.kill();
  await alice.waitForSelector('#state[data-state="reconnecting"]', WAIT);
  await bob.waitForSelector('#state[data-state="reconnecting"]', WAIT);
  await shot(alice, "2-reconnecting");

  server = await startServer({ port: server.port, db: server.db });
  await connected(alice);
  await connected(bob);
  await showsItems(alice, [["added by admin", false]]);
  await showsItems(bob, [["added by admin", false]]);

  // The re-subscribed collections are live again, in both directions.
  await admin("/admin/items", { list_id: listId, text: "after the restart", done: false });
  await bob.fill("#new-item input", "from bob, after the restart");
  await bob.press("#new-item input", "Enter");
  const expected = [["added by admin", false], ["after the restart", false], ["from bob, after the restart", false]];
  await showsItems(alice, expected);
  await showsItems(bob, expected);
  assert.equal(await alice.textContent("#state"), "connected");
  await shot(alice, "3-after-restart");
  await shot(bob, "3-after-restart");
});

test("no page errors on either page", () => {
  assert.deepEqual(pageErrors, []);
});
