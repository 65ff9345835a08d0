// A live, ordered view of the rows a subscription matches, with this
// client's own writes shown at once (optimistic updates).
//
// With `limit` (and `orderBy`) it is a window: the server holds the first
// `limit` rows in that order and its events say where each row goes
// (`index`), so the collection keeps the server's order rather than sorting
// (this client's pending creates follow the server's rows).
//
// Rows are kept by primary key, so applying the same created/updated/deleted
// twice never duplicates a row, and a fresh snapshot (after a reconnect or a
// detected gap) is reconciled into the current rows: listeners are told
// exactly what differs, then get one "reset".
//
// Two layers: the rows as the server last told them, and over them the
// writes of the client's outbox not confirmed yet, in the order they were
// made. What the collection shows is the second applied to the first, for
// each row a write or an event touches; a row a pending write touches is
// `pending`. A pending create is shown under its temporary id when its data
// plainly matches the filter (exact values; a filter with lookups shows it
// once confirmed). A confirmed write leaves the overlay as the server's row
// arrives; a refused one leaves it too, which rolls the change back.

import { Emitter } from "./socket.js";
import { Subscription } from "./subscription.js";

export class LiveCollection extends Emitter {
  #client;
  #key;
  #compare;
  #server = new Map(); // id -> row, as the server last told
  #byId = new Map(); // id -> row shown
  #items = []; // shown, sorted by #compare, ties broken by key
  #pending = new Set(); // ids of shown rows with writes not confirmed yet
  #subscription;
  #window; // true: the server orders the rows (order_by + limit)
  #rank = new Map(); // a window's ids -> their place in the server's order
  #order = []; // a window's ids in the server's order
  #loaded = false;
  #settle;

  /** Resolves with the collection once the first snapshot is in; rejects
   * with a WyrmholeError if the subscription is refused (bad filter, ...). */
  ready;

  /**
   * @param {object} client  the Client (its subscribe plumbing)
   * @param {string} route
   * @param {object} filter  Django-style lookups (docs/protocol.md)
   * @param {object} opts    {order: (a, b) => number, key: "id"}, or for a
   *                         window {orderBy: "-field" | [...], limit: n}
   */
  constructor(client, route, filter = {}, { order, key = "id", orderBy, limit } = {}) {
    super();
    this.#client = client;
    this.#window = limit != null;
    this.route = route;
    this.filter = filter;
    this.#key = key;
    const byServer = (a, b) => (this.#rank.get(a[key]) ?? Infinity) - (this.#rank.get(b[key]) ?? Infinity) || 0;
    const byOrder = (a, b) => (order ? order(a, b) : 0);
    this.#compare = (a, b) => (this.#window ? byServer : byOrder)(a, b) || compareKeys(a[key], b[key]);
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    // Nobody has to await `ready`: an unobserved refusal must not become an
    // unhandled rejection that kills a Node process. "error" events still fire.
    this.ready.catch(() => {});
    client._trackCollection(this);
    const window = this.#window ? { limit, ...(orderBy === undefined ? {} : { order_by: orderBy }) } : null;
    this.#subscription = new Subscription(
      client,
      route,
      filter,
      {
        snapshot: (rows) => this.#snapshot(rows),
        event: (action, data, index) => this.#apply(action, data, index),
        error: (err) => this.#fail(err),
      },
      window,
    );
  }

  /** The rows, in order. Read-only: it is the collection's own array. */
  get items() {
    return this.#items;
  }

  get size() {
    return this.#items.length;
  }

  get(id) {
    return this.#byId.get(id);
  }

  /** Whether a row (or id) has writes the server has not confirmed yet. */
  isPending(rowOrId) {
    const id = typeof rowOrId === "object" && rowOrId !== null ? rowOrId[this.#key] : rowOrId;
    return this.#pending.has(id);
  }

  /** The ids of the rows with unconfirmed writes. Read-only. */
  get pending() {
    return this.#pending;
  }

  /** Whether any row shown has writes the server has not confirmed yet. */
  get hasPendingWrites() {
    return this.#pending.size > 0;
  }

  [Symbol.iterator]() {
    return this.#items[Symbol.iterator]();
  }

  /** Stops receiving changes; the rows stay as they are. */
  unsubscribe() {
    this.#subscription.stop();
    this.#client._untrackCollection(this);
  }

  /** The subscription's state, for diagnostics: "subscribing" | "live" | "stopped". */
  get state() {
    return this.#subscription.state;
  }

  // Called by the client when the outbox of this route changed.
  _writesChanged() {
    if (!this.#loaded) return; // the first snapshot shows them
    for (const id of this.#touched()) this.#refresh(id, true);
  }

  // A create of this client was confirmed as `row`: shown as the server's
  // row at once when it plainly matches (its event follows), so the row
  // does not blink out between the reply and the event.
  _created(row) {
    const id = row[this.#key];
    if (!this.#loaded || this.#server.has(id) || !plainlyMatches(this.filter, row)) return;
    this.#server.set(id, { ...row });
    this.#refresh(id, true);
  }

  #snapshot(rows) {
    const first = !this.#loaded;
    this.#server = new Map(rows.map((row) => [row[this.#key], { ...row }]));
    this.#loaded = true;
    if (this.#window) {
      this.#setOrder(rows.map((row) => row[this.#key]));
      // Rows held keep their objects; only their places change.
      this.#items.sort(this.#compare);
    }
    // After a reconnect: tell listeners what changed while we were away.
    // Rows gone first, then the server's in its order, then our own.
    const gone = [...this.#byId.keys()].filter((id) => !this.#server.has(id));
    const ids = new Set([...gone, ...this.#server.keys(), ...this.#touched()]);
    for (const id of ids) this.#refresh(id, !first);
    this.emit("reset", { items: this.#items });
    if (first) this.#settle.resolve(this);
  }

  /** `index`: a window's place for the row (the server's order). */
  #apply(action, data, index) {
    const id = data[this.#key];
    let moved = false;
    if (this.#window) {
      const held = this.#rank.has(id);
      if (action !== "deleted" && !(index >= 0 && index <= this.#order.length - (held ? 1 : 0))) {
        return this.#subscription.resync(`window event without a valid index: ${index}`);
      }
      const order = this.#order.filter((other) => other !== id);
      if (action !== "deleted") order.splice(index, 0, id);
      moved = held && action !== "deleted" && this.#rank.get(id) !== index;
      this.#setOrder(order);
    }
    const current = this.#server.get(id);
    if (action === "created") {
      // A `created` for a row we hold (a create of ours shown on its reply)
      // is a full update rather than a duplicate.
      this.#server.set(id, { ...current, ...data });
    } else if (action === "updated") {
      if (!current) return this.#subscription.resync("updated event for a row the collection does not hold");
      this.#server.set(id, { ...current, ...data });
    } else if (action === "deleted") {
      if (!current) return;
      this.#server.delete(id);
    }
    this.#refresh(id, true, moved);
  }

  /** A window's server order, and each id's place in it. */
  #setOrder(ids) {
    this.#order = ids;
    this.#rank = new Map(ids.map((id, i) => [id, i]));
  }

  /** Ids the outbox's writes of this route touch, and rows marked pending. */
  #touched() {
    const ids = new Set(this.#pending);
    for (const w of this.#client._pendingWrites(this.route)) {
      ids.add(w.verb === "create" ? w.temp : w.args?.id);
    }
    ids.delete(undefined);
    return ids;
  }

  /** The row `id` as shown: the server's, with the pending writes over it. */
  #overlay(id) {
    let row = this.#server.get(id);
    let pending = false;
    for (const w of this.#client._pendingWrites(this.route)) {
      if (w.verb === "create" && w.temp === id && plainlyMatches(this.filter, w.args?.data ?? {})) {
        row = { ...w.args.data, [this.#key]: id };
        pending = true;
      } else if (w.verb === "update" && w.args?.id === id && row) {
        row = { ...row, ...w.args.data };
        pending = true;
      } else if (w.verb === "delete" && w.args?.id === id && row) {
        row = undefined;
        pending = true;
      }
    }
    return { row, pending };
  }

  /** Shows row `id` as it now is, telling listeners if `notify`; `moved`:
   * its place in a window changed. */
  #refresh(id, notify, moved = false) {
    const { row, pending } = this.#overlay(id);
    const wasPending = this.#pending.has(id);
    if (pending && row) this.#pending.add(id);
    else this.#pending.delete(id);
    const current = this.#byId.get(id);
    const isPending = this.#pending.has(id);
    if (!row) {
      if (!current) return;
      this.#remove(current);
      this.#byId.delete(id);
      if (notify) this.emit("change", { action: "deleted", id, item: current, pending: false });
    } else if (!current) {
      this.#insert(row);
      if (notify) this.emit("change", { action: "created", id, item: row, pending: isPending });
    } else if (moved || !shallowEqual(current, row) || wasPending !== isPending) {
      this.#remove(current);
      this.#insert(row);
      if (notify) this.emit("change", { action: "updated", id, item: row, previous: current, pending: isPending });
    }
  }

  #insert(item) {
    this.#byId.set(item[this.#key], item);
    this.#items.splice(this.#position(item), 0, item);
  }

  #remove(item) {
    // The order is total (ties broken by key), so the item normally sits at
    // its search position; a compare function that is not a consistent
    // order could break that, hence the fallback scan.
    let at = this.#position(item);
    if (this.#items[at] !== item) at = this.#items.indexOf(item);
    if (at >= 0) this.#items.splice(at, 1);
  }

  /** Binary search: the index of `item`, or where it would go. */
  #position(item) {
    let lo = 0;
    let hi = this.#items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(this.#items[mid], item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #fail(err) {
    if (!this.#loaded) this.#settle.reject(err);
    this.emit("error", err);
  }
}

/** Keys order numbers before strings (temporary ids of pending creates). */
function compareKeys(a, b) {
  if (typeof a !== typeof b) return typeof a === "number" ? -1 : typeof b === "number" ? 1 : 0;
  return a < b ? -1 : a > b ? 1 : 0;
}

function shallowEqual(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.is(a[k], b[k]));
}

/** Whether `row` matches `filter` for sure: only exact values are judged
 * here (the server decides lookups); anything else is "not sure". */
function plainlyMatches(filter, row) {
  return Object.entries(filter ?? {}).every(
    ([field, value]) => !field.includes("__") && (value === null || typeof value !== "object") && row[field] === value,
  );
}
