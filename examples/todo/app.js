// The to-do page: plain DOM over two live collections, no framework.
//
// Lists and the selected list's items are LiveCollections: the page never
// fetches after a write, it renders whatever the collections hold, and the
// collections stay equal to the server's rows through reconnects. Presence
// on `todo-list:<id>` shows who else views the list and which item they
// are editing.

import { connect } from "/wyrmhole/wyrmhole.js";

const $ = (id) => document.getElementById(id);

const wsUrl = new URL("/ws", location.href);
wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
// Demo sign-in: /?token=alice connects as "alice"; no token is anonymous.
const token = new URLSearchParams(location.search).get("token") ?? undefined;
const client = connect(wsUrl.href, { token });
const lists = client.route("todo-list");
const items = client.route("todo-item");

// Connection state badge.
const STATE_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  unauthorized: "sign-in refused",
  closed: "offline",
};
function showState(state) {
  $("state").dataset.state = state;
  $("state").textContent = STATE_TEXT[state];
}
client.on("state", showState);
showState(client.state);

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
client.on("error", (err) => {
  const id = err.write?.args?.id;
  if (err.write?.route !== "todo-item" || id == null) return;
  failed.set(id, err.message);
  renderItems();
});
client.on("unauthorized", ({ reason }) => showError({ message: `sign-in refused: ${reason}` }));

// ---- Lists ----------------------------------------------------------------

const allLists = lists.subscribe({}, { order: (a, b) => a.name.localeCompare(b.name) });
allLists.on("change", renderLists);
allLists.on("reset", renderLists);

function selectedListId() {
  const id = Number(new URLSearchParams(location.hash.slice(1)).get("list"));
  return Number.isInteger(id) && id > 0 ? id : null;
}

function renderLists() {
  const selected = selectedListId();
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
  $("list-name").textContent = allLists.get(selected)?.name ?? "";
}

$("new-list").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = e.target.elements.name;
  const name = input.value.trim();
  if (!name) return;
  input.value = "";
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
let here = null; // the Presence of the selected list: who else views it

function openList() {
  current?.unsubscribe();
  current = null;
  here?.leave();
  here = null;
  renderViewers();
  const listId = selectedListId();
  renderLists();
  $("empty").hidden = listId != null;
  $("list-view").hidden = listId == null;
  $("items").replaceChildren();
  if (listId == null) return;
  current = items.subscribe({ list_id: listId });
  current.on("change", (change) => renderItems(change));
  current.on("reset", () => renderItems());
  current.on("error", showError);
  here = client.presence(`todo-list:${listId}`, { editing: null });
  here.on("change", () => {
    renderViewers();
    renderItems();
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
window.addEventListener("hashchange", openList);
openList();

/** Keyed render: rows are reused by id so an item being edited keeps its input. */
function renderItems(change) {
  if (!current) return;
  const ul = $("items");
  const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  const rows = current.items.map((item) => {
    const li = existing.get(String(item.id)) ?? itemElement(item);
    fillItem(li, item);
    existing.delete(String(item.id));
    return li;
  });
  for (const gone of existing.values()) gone.remove();
  rows.forEach((li, i) => {
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] ?? null);
  });
  if (change && !change.pending) failed.delete(change.id);
  if (change && change.action !== "deleted") flash(ul.querySelector(`[data-id="${change.id}"]`));
  const left = current.items.filter((i) => !i.done).length;
  $("remaining").textContent = `${left} item${left === 1 ? "" : "s"} left`;
  $("clear-done").disabled = left === current.size;
}

function itemElement(item) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.id = item.id;
  li.innerHTML = `<input type="checkbox" class="toggle" aria-label="Done">
    <span class="text" title="Click to edit"></span>
    <span class="editor"></span>
    <button class="delete" title="Delete" aria-label="Delete">×</button>`;
  li.querySelector(".toggle").addEventListener("change", (e) => {
    report(items.update(item.id, { done: e.target.checked }));
  });
  li.querySelector(".delete").addEventListener("click", () => report(items.delete(item.id)));
  li.querySelector(".text").addEventListener("click", () => startEditing(li, item.id));
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
  const editor = editorOf(item.id);
  li.classList.toggle("edited", editor != null);
  const marker = li.querySelector(".editor");
  marker.textContent = editor ? `${displayName(editor)} is editing` : "";
  marker.style.color = editor ? colour(editor) : "";
}

function flash(li) {
  if (!li) return;
  li.classList.remove("flash");
  void li.offsetWidth; // restart the animation
  li.classList.add("flash");
}

/** Inline editing: Enter or leaving the field saves, Escape cancels. */
function startEditing(li, id) {
  if (li.querySelector(".edit")) return;
  const span = li.querySelector(".text");
  const input = document.createElement("input");
  input.className = "edit";
  input.maxLength = 500;
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
    input.replaceWith(span);
    // Show the server's latest text (it may have changed while we edited).
    span.textContent = current?.get(id)?.text ?? span.textContent;
    if (save && text !== span.textContent) report(items.update(id, { text }));
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
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
