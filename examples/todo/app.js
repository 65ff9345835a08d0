// The to-do page: plain DOM over two live collections, no framework.
//
// Lists, the selected list's items and its members are LiveCollections:
// the page never fetches after a write, it renders whatever the collections
// hold, and the collections stay equal to the server's rows through
// reconnects. The server scopes all three to the lists you are a member
// of, so a list shared with you (or unshared) arrives (or leaves) with its
// items by itself. Presence on `todo-list:<id>` shows who else views the
// list and which item they are editing.
//
// Rendering is batched: change events only mark what changed, and one
// requestAnimationFrame callback renders a burst (hundreds of events) at
// once, without reading layout per event. The live region announces a
// summary of a burst, not every row.

import { connect } from "/wyrmhole/wyrmhole.js";

const $ = (id) => document.getElementById(id);

// ---- Sign-in ----------------------------------------------------------------
// Demo sign-in: /?token=alice is alice. The page asks the server who a
// token is before connecting, so a refused token says "sign in again"
// instead of leaving a socket that never opens.

const token = new URLSearchParams(location.search).get("token") || undefined;
const me = await whoami(token);

async function whoami(token) {
  try {
    const res = await fetch(`/whoami${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    const body = await res.json();
    // Guests are all user 0: the guests' board is theirs together.
    if (res.ok) return { name: body.name, user: body.user ?? 0, refused: null };
    return { name: null, user: 0, refused: body.error ?? "refused" };
  } catch {
    return { name: null, user: 0, refused: null }; // the server is down: connect and let the client retry
  }
}

function showWho(name, refused) {
  $("who").textContent = name ? `Signed in as ${name}` : "Guest (shared board)";
  $("sign-out").hidden = !name;
  $("sign-in").hidden = Boolean(name);
  $("sign-in-error").hidden = !refused;
  $("sign-in-error").textContent = refused ? `Your sign-in was refused (${refused}). Sign in again.` : "";
  document.body.dataset.signedIn = String(Boolean(name));
}
showWho(me.name, me.refused);

$("sign-in").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = e.target.elements.name.value.trim();
  if (name) location.search = `?token=${encodeURIComponent(name)}`;
});

const wsUrl = new URL("/ws", location.href);
wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
// A refused token is not retried: the page waits for a new sign-in.
const client = me.refused ? null : connect(wsUrl.href, { token });
const lists = client?.route("todo-list");
const items = client?.route("todo-item");
const members = client?.route("list-member");
// For tests and the console: the client and the open list's collections.
window.todo = { client, items: () => current, members: () => people, me };

// Connection state badge.
const STATE_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  closed: "offline",
  unauthorized: "signed out",
};
function showState(state) {
  $("state").dataset.state = state;
  $("state").textContent = STATE_TEXT[state] ?? state;
  // A client that reports a refused upgrade (a token revoked meanwhile).
  if (state === "unauthorized") showWho(null, "the server refused the token");
}
if (client) {
  client.on("state", showState);
  showState(client.state);
} else {
  showState("unauthorized");
}

// Errors from writes (validation, conflicts) appear briefly at the bottom.
let errorTimer;
function showError(err) {
  const fields = err.fields ? Object.values(err.fields).flat().join("; ") : "";
  $("error").textContent = fields ? `${err.message.split(":")[0]}: ${fields}` : err.message;
  $("error").hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => ($("error").hidden = true), 4000);
}
const report = (promise) => promise.catch(showError);

// Writes show at once and are kept until the server confirms them (also
// across reloads); a row with unconfirmed writes is marked pending, and a
// row whose write was refused (and rolled back) is marked failed until its
// next change.
const failed = new Map(); // item id -> why its last write was refused
client?.on("error", (err) => {
  const id = err.write?.args?.id;
  if (err.write?.route !== "todo-item" || id == null) return;
  failed.set(id, err.message);
  renderItems();
});
client?.on("unauthorized", ({ reason }) => showError({ message: `sign-in refused: ${reason}` }));

// ---- Lists ----------------------------------------------------------------

const allLists = lists?.subscribe({}, { order: (a, b) => a.name.localeCompare(b.name) });
allLists?.on("change", () => schedule({ lists: true }));
allLists?.on("reset", () => schedule({ lists: true }));
// Lists this page has shown: one of them missing now was unshared (or
// deleted), which the page says instead of showing an empty list.
const seenLists = new Set();

/** Whether the signed-in user (or, for the guests' board, any guest) owns `list`. */
const isOwner = (list) => list != null && list.owner_id === me.user;

function selectedListId() {
  const id = Number(new URLSearchParams(location.hash.slice(1)).get("list"));
  return Number.isInteger(id) && id > 0 ? id : null;
}

function renderLists() {
  const selected = selectedListId();
  for (const list of allLists?.items ?? []) seenLists.add(list.id);
  const list = allLists?.get(selected);
  const gone = selected != null && list == null && seenLists.has(selected);
  $("empty").hidden = selected != null;
  $("gone").hidden = !gone;
  $("list-view").hidden = selected == null || gone;
  if (!allLists) return;
  $("lists").replaceChildren(
    ...allLists.items.map((list) => {
      const a = document.createElement("a");
      a.href = `#list=${list.id}`;
      a.textContent = list.name;
      a.dataset.id = list.id;
      a.setAttribute("aria-current", String(list.id === selected));
      const li = document.createElement("li");
      li.append(a);
      return li;
    }),
  );
  if (!$("list-name").querySelector("input")) $("list-name").textContent = list?.name ?? "";
  // Members edit items; the owner renames, shares and deletes (the server
  // checks the same). Guests own the guests' board together, but may not
  // delete or share its lists.
  $("rename-list").hidden = !isOwner(list);
  $("delete-list").hidden = !me.name || !isOwner(list);
  $("share").hidden = !me.name || !isOwner(list);
  // A member leaves a list shared with them; the owner deletes theirs.
  $("leave-list").hidden = !me.name || list == null || isOwner(list);
  renderMembers();
}

// Rename: the button (or Enter on the heading) swaps the name for an input;
// Enter or leaving it saves, Escape cancels.
function startRenaming() {
  const listId = selectedListId();
  const heading = $("list-name");
  if (listId == null || heading.querySelector("input")) return;
  const input = document.createElement("input");
  input.className = "rename";
  input.maxLength = 100;
  input.setAttribute("aria-label", "List name");
  input.value = allLists.get(listId)?.name ?? heading.textContent;
  heading.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    const hadFocus = document.activeElement === input;
    heading.textContent = allLists.get(listId)?.name ?? "";
    if (hadFocus) $("rename-list").focus();
    if (save && name && name !== heading.textContent) report(lists.update(listId, { name }));
  };
  input.addEventListener("keydown", (e) => {
    // preventDefault: the Enter must not also press the button focus returns to.
    if (e.key === "Enter") e.preventDefault(), finish(true);
    if (e.key === "Escape") e.preventDefault(), finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}
$("rename-list").addEventListener("click", startRenaming);

// Delete: a second click within 4 s confirms; the items go with the list.
let confirmTimer;
$("delete-list").addEventListener("click", async () => {
  const button = $("delete-list");
  const listId = selectedListId();
  if (listId == null) return;
  if (!button.dataset.confirm) {
    button.dataset.confirm = "1";
    button.textContent = "Really delete?";
    confirmTimer = setTimeout(resetDelete, 4000);
    return;
  }
  resetDelete();
  try {
    await lists.call("delete_with_items", { id: listId });
    location.hash = "";
  } catch (err) {
    showError(err);
  }
});
// Leave: the list (and its items) leaves this page when the server says so.
$("leave-list").addEventListener("click", () => {
  const listId = selectedListId();
  if (listId == null || !lists) return;
  report(lists.write("leave", { list_id: listId }));
});

function resetDelete() {
  clearTimeout(confirmTimer);
  delete $("delete-list").dataset.confirm;
  $("delete-list").textContent = "Delete list";
}

$("new-list").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = e.target.elements.name;
  const name = input.value.trim();
  if (!name) return;
  input.value = "";
  if (!lists) return;
  try {
    const list = await lists.create({ name });
    location.hash = `list=${list.id}`;
  } catch (err) {
    giveBack(input, name);
    showError(err);
  }
});

// ---- Items of the selected list ---------------------------------------------

let current = null; // the LiveCollection of the selected list's items
let people = null; // the LiveCollection of the selected list's members
let here = null; // the Presence of the selected list: who else views it

function openList() {
  current?.unsubscribe();
  current = null;
  people?.unsubscribe();
  people = null;
  here?.leave();
  here = null;
  renderViewers();
  resetDelete();
  const listId = selectedListId();
  renderLists();
  $("items").replaceChildren();
  if (listId == null || !client) return;
  current = items.subscribe({ list_id: listId });
  current.on("change", (change) => {
    // A row's failed mark lasts until its next confirmed change.
    if (!change.pending) failed.delete(change.id);
    schedule({ change });
  });
  current.on("reset", () => schedule({ items: true }));
  current.on("error", showError);
  people = members.subscribe({ list_id: listId }, { order: (a, b) => a.name.localeCompare(b.name) });
  people.on("change", () => schedule({ members: true }));
  people.on("reset", () => schedule({ members: true }));
  people.on("error", showError);
  here = client.presence(`todo-list:${listId}`, { editing: null });
  here.on("change", () => {
    renderViewers();
    schedule({ items: true });
  });
  here.on("error", showError);
}

// ---- Who else is here ------------------------------------------------------

const displayName = (member) => member.name ?? "guest";

/** A stable colour per member, from its presence id. */
function colour(member) {
  let h = 0;
  for (const c of member.id) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 60% 45%)`;
}

function renderViewers() {
  const others = here?.others ?? [];
  $("viewers").replaceChildren(
    ...others.map((member) => {
      const li = document.createElement("li");
      li.className = "avatar";
      li.textContent = displayName(member).slice(0, 1).toUpperCase();
      li.title = displayName(member);
      li.dataset.name = displayName(member);
      li.style.background = colour(member);
      return li;
    }),
  );
}

/** Who else is editing item `id`, if anyone. */
function editorOf(id) {
  return here?.others.find((m) => m.meta?.editing === id);
}
// ---- Members of the selected list ---------------------------------------------

/** The members as chips; the owner gets an "×" on everyone else's. */
function renderMembers() {
  const list = allLists?.get(selectedListId());
  const mine = Boolean(me.name) && isOwner(list);
  $("members").replaceChildren(
    ...(people?.items ?? []).map((member) => {
      const li = document.createElement("li");
      const owner = list != null && member.user_id === list.owner_id;
      li.className = owner ? "member owner" : "member";
      li.dataset.name = member.name;
      li.textContent = member.name;
      li.title = owner ? `${member.name} (owner)` : member.name;
      if (mine && !owner) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "unshare";
        button.textContent = "×";
        button.setAttribute("aria-label", `Stop sharing with ${member.name}`);
        button.addEventListener("click", () => {
          report(lists.write("unshare", { list_id: list.id, user: member.name }));
        });
        li.append(button);
      }
      return li;
    }),
  );
}

// Share by name: the list (and its items) shows up in their page at once.
$("share").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = e.target.elements.user;
  const user = input.value.trim();
  const listId = selectedListId();
  if (!user || listId == null || !lists) return;
  input.value = "";
  try {
    await lists.write("share", { list_id: listId, user });
  } catch (err) {
    giveBack(input, user);
    showError(err);
  }
});

window.addEventListener("hashchange", openList);
openList();

// ---- Batched rendering ------------------------------------------------------

let frame = 0; // the requested animation frame, 0 when none
let dirtyLists = false;
let dirtyItems = false;
let dirtyMembers = false;
const flashed = new Set(); // ids created or updated since the last frame
const burst = { created: 0, updated: 0, deleted: 0 }; // for the live region

/** Marks what changed; the next animation frame renders it all at once. */
function schedule({ lists = false, items = false, members = false, change = null }) {
  dirtyLists ||= lists;
  dirtyMembers ||= members;
  dirtyItems ||= items || change != null;
  if (change) {
    // Announced once the server has it: an optimistic row (a pending write,
    // or a create's stand-in, whose id is "pending:…") is not news yet.
    const optimistic = change.pending || String(change.id).startsWith("pending:");
    if (!optimistic) burst[change.action] += 1;
    if (change.action === "deleted") flashed.delete(change.id);
    else flashed.add(change.id);
  }
  frame ||= requestAnimationFrame(renderFrame);
}

function renderFrame() {
  frame = 0;
  if (dirtyLists) renderLists(); // members too
  else if (dirtyMembers) renderMembers();
  if (dirtyItems) renderItems();
  dirtyLists = dirtyItems = dirtyMembers = false;
  if (flashed.size <= 20) flashRows([...flashed]); // a big burst is its own signal
  flashed.clear();
  announceSoon();
}

/** Keyed render: rows are reused by id so an item being edited keeps its input. */
function renderItems() {
  if (!current) return;
  const ul = $("items");
  const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  const isTemp = (id) => String(id).startsWith("pending:");
  // A create's own event may arrive before its reply: its stand-in (under
  // a temporary id) steps aside for a new server row of the same text, so
  // the item never shows twice.
  const shadowed = new Set();
  for (const item of current.items) {
    if (isTemp(item.id) || existing.has(String(item.id))) continue;
    const twin = current.items.find((t) => isTemp(t.id) && !shadowed.has(t.id) && t.text === item.text);
    if (twin) shadowed.add(twin.id);
  }
  // A create the server confirmed keeps its element (focus, animation, a
  // reference held meanwhile): the row shown under its temporary id
  // becomes the server's row of the same text.
  const unconfirmed = [...existing.keys()].filter((id) => isTemp(id) && (!current.get(id) || shadowed.has(id)));
  const adopt = (item) => {
    const i = unconfirmed.findIndex((id) => existing.get(id).querySelector(".text")?.textContent === item.text);
    if (i < 0) return null;
    const [id] = unconfirmed.splice(i, 1);
    const li = existing.get(id);
    existing.delete(id);
    li.dataset.id = item.id;
    return li;
  };
  const rows = current.items.filter((item) => !shadowed.has(item.id)).map((item) => {
    const li = existing.get(String(item.id)) ?? adopt(item) ?? itemElement(item);
    fillItem(li, item);
    existing.delete(String(item.id));
    return li;
  });
  for (const gone of existing.values()) gone.remove();
  let next = ul.firstElementChild;
  for (const li of rows) {
    if (li === next) next = next.nextElementSibling;
    else ul.insertBefore(li, next);
  }
  const left = current.items.filter((i) => !i.done).length;
  $("remaining").textContent = `${left} item${left === 1 ? "" : "s"} left`;
  $("clear-done").disabled = left === current.size;
}

/** The id of the row `li` shows now (a confirmed create's changes from its temporary one). */
function rowId(li) {
  const id = li.dataset.id;
  return id.startsWith("pending:") ? id : Number(id);
}

function itemElement(item) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.id = item.id;
  li.innerHTML = `<input type="checkbox" class="toggle">
    <span class="text" role="button" tabindex="0" title="Click, or Enter, to edit"></span>
    <span class="editor"></span>
    <button class="delete" title="Delete">×</button>`;
  li.querySelector(".toggle").addEventListener("change", (e) => {
    report(items.update(rowId(li), { done: e.target.checked }));
  });
  li.querySelector(".delete").addEventListener("click", () => report(items.delete(rowId(li))));
  const text = li.querySelector(".text");
  text.addEventListener("click", () => startEditing(li, rowId(li)));
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === "F2") {
      e.preventDefault();
      startEditing(li, rowId(li));
    }
  });
  return li;
}

function fillItem(li, item) {
  const pending = current.isPending(item);
  li.classList.toggle("pending", pending);
  li.classList.toggle("failed", failed.has(item.id));
  li.title = pending ? "saving…" : (failed.get(item.id) ?? "");
  li.setAttribute("aria-busy", String(pending));
  li.classList.toggle("done", item.done);
  li.querySelector(".toggle").checked = item.done;
  if (!li.querySelector(".edit")) li.querySelector(".text").textContent = item.text;
  // A distinct accessible name per row: "Done: milk", not twenty "Done".
  li.querySelector(".toggle").setAttribute("aria-label", `Done: ${item.text}`);
  li.querySelector(".text")?.setAttribute("aria-label", `Edit: ${item.text}`); // absent while edited
  li.querySelector(".delete").setAttribute("aria-label", `Delete: ${item.text}`);
  const editor = editorOf(item.id);
  li.classList.toggle("edited", editor != null);
  const marker = li.querySelector(".editor");
  marker.textContent = editor ? `${displayName(editor)} is editing` : "";
  marker.style.color = editor ? colour(editor) : "";
}

/** Highlights rows that just changed. The Web Animations API restarts an
 * animation without a forced layout (no `offsetWidth` read per row). */
function flashRows(ids) {
  const ul = $("items");
  for (const id of ids) {
    const li = ul.querySelector(`[data-id="${id}"]`);
    li?.animate([{ backgroundColor: "#efeafe" }, { backgroundColor: "transparent" }], { duration: 900, easing: "ease-out" });
  }
}

// The live region says what a burst did, once it is over: "3 items added".
let announceTimer;
function announceSoon() {
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    const parts = [];
    const n = (count, what) => count && parts.push(`${count} item${count === 1 ? "" : "s"} ${what}`);
    n(burst.created, "added");
    n(burst.updated, "changed");
    n(burst.deleted, "removed");
    burst.created = burst.updated = burst.deleted = 0;
    if (parts.length) $("announce").textContent = `${parts.join(", ")}.`;
  }, 700);
}

/** Inline editing: Enter or leaving the field saves, Escape cancels. */
function startEditing(li, id) {
  if (li.querySelector(".edit")) return;
  const span = li.querySelector(".text");
  const input = document.createElement("input");
  input.className = "edit";
  input.maxLength = 500;
  input.setAttribute("aria-label", `Text of: ${span.textContent}`);
  input.value = current.get(id)?.text ?? span.textContent;
  span.replaceWith(input);
  input.focus();
  input.select();
  // Tell the others which item we are editing (and that we stopped, below).
  here?.update({ editing: id }).catch(() => {});
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    here?.update({ editing: null }).catch(() => {});
    const text = input.value.trim();
    const hadFocus = document.activeElement === input;
    input.replaceWith(span);
    // Show the server's latest text (it may have changed while we edited).
    span.textContent = current?.get(id)?.text ?? span.textContent;
    if (hadFocus) span.focus(); // keyboard users carry on from the row
    if (save && text !== span.textContent) report(items.update(id, { text }));
  };
  input.addEventListener("keydown", (e) => {
    // preventDefault: the Enter must not also reach the row focus returns to.
    if (e.key === "Enter") e.preventDefault(), finish(true);
    if (e.key === "Escape") e.preventDefault(), finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

$("new-item").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = e.target.elements.text;
  const text = input.value.trim();
  const listId = selectedListId();
  if (!text || listId == null) return;
  input.value = "";
  // Entries typed back to back keep the order typed without waiting for
  // each other: the client's outbox sends them in order and the server
  // applies a connection's writes in the order sent. (Waiting for each
  // reply would hold every later entry back while offline.)
  try {
    // Every writable non-nullable field must be given on create, `done` included.
    await items.create({ list_id: listId, text, done: false });
  } catch (err) {
    giveBack(input, text);
    showError(err);
  }
});

// Inputs are cleared at once (not after the reply) so that the next entry,
// typed while the create is in flight, is never wiped. A refused entry comes
// back, unless the user has typed something else since.
function giveBack(input, text) {
  if (!input.value) input.value = text;
}

$("clear-done").addEventListener("click", () => {
  const listId = selectedListId();
  if (listId != null) report(items.call("clear_done", { list_id: listId }));
});
