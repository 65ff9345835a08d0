// A live, ordered view of the rows a subscription matches.
//
// With `limit` (and `orderBy`) it is a window: the server holds the first
// `limit` rows in that order and its events say where each row goes
// (`index`), so the collection keeps the server's order rather than sorting.
//
// Rows are kept by primary key, so applying the same created/updated/deleted
// twice never duplicates a row, and a fresh snapshot (after a reconnect or a
// detected gap) is reconciled into the current rows: listeners are told
// exactly what differs, then get one "reset".

import { Emitter } from "./socket.js";
import { Subscription } from "./subscription.js";

export class LiveCollection extends Emitter {
  #key;
  #compare;
  #byId = new Map();
  #items = []; // sorted by #compare, ties broken by key
  #subscription;
  #window; // true: the server orders the rows (order_by + limit)
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
    this.#window = limit != null;
    this.route = route;
    this.filter = filter;
    this.#key = key;
    this.#compare = (a, b) => (order ? order(a, b) : 0) || compareKeys(a[key], b[key]);
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    // Nobody has to await `ready`: an unobserved refusal must not become an
    // unhandled rejection that kills a Node process. "error" events still fire.
    this.ready.catch(() => {});
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

  [Symbol.iterator]() {
    return this.#items[Symbol.iterator]();
  }

  /** Stops receiving changes; the rows stay as they are. */
  unsubscribe() {
    this.#subscription.stop();
  }

  /** The subscription's state, for diagnostics: "subscribing" | "live" | "stopped". */
  get state() {
    return this.#subscription.state;
  }

  #snapshot(rows) {
    if (!this.#loaded) {
      for (const row of rows) this.#insert(row);
      this.#loaded = true;
      this.emit("reset", { items: this.#items });
      this.#settle.resolve(this);
      return;
    }
    // Reconcile: tell listeners what changed while we were not listening.
    const fresh = new Map(rows.map((row) => [row[this.#key], row]));
    for (const item of [...this.#items]) {
      if (!fresh.has(item[this.#key])) this.#apply("deleted", { [this.#key]: item[this.#key] });
    }
    let index = 0;
    for (const [id, row] of fresh) {
      const current = this.#byId.get(id);
      if (!current) this.#apply("created", row, index);
      else if (!shallowEqual(current, row) || (this.#window && this.#items[index] !== current)) {
        this.#replace(current, row, index);
      }
      index += 1;
    }
    this.emit("reset", { items: this.#items });
  }

  /** `index`: a window's place for the row (the server's order). */
  #apply(action, data, index) {
    const id = data[this.#key];
    const current = this.#byId.get(id);
    if (this.#window && action !== "deleted" && !(index >= 0 && index <= this.#items.length - (current ? 1 : 0))) {
      return this.#subscription.resync(`window event without a valid index: ${index}`);
    }
    if (action === "created" && !current) {
      const item = { ...data };
      this.#insert(item, index);
      this.emit("change", { action, id, item });
    } else if (action === "created" || action === "updated") {
      // A `created` for a row we hold (cannot happen on a sane stream) is
      // treated as a full update rather than duplicating the row.
      if (!current) return this.#subscription.resync("updated event for a row the collection does not hold");
      this.#replace(current, { ...current, ...data }, index);
    } else if (action === "deleted" && current) {
      this.#remove(current);
      this.#byId.delete(id);
      this.emit("change", { action, id, item: current });
    }
  }

  #replace(current, next, index) {
    this.#remove(current);
    this.#insert(next, index);
    this.emit("change", { action: "updated", id: next[this.#key], item: next, previous: current });
  }

  #insert(item, index) {
    this.#byId.set(item[this.#key], item);
    // A window's first snapshot comes in the server's order: append.
    const at = this.#window ? (index ?? this.#items.length) : this.#position(item);
    this.#items.splice(at, 0, item);
  }

  #remove(item) {
    // The order is total (ties broken by key), so the item normally sits at
    // its search position; a compare function that is not a consistent
    // order could break that, hence the fallback scan. A window's order is
    // the server's: always the scan.
    let at = this.#window ? -1 : this.#position(item);
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

function compareKeys(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function shallowEqual(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.is(a[k], b[k]));
}
