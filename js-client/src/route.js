// The per-route API: one object per route name, thin over the wire verbs.
// Every method returns a promise that rejects with a WyrmholeError.

import { LiveCollection } from "./live-collection.js";

export class Route {
  #client;

  constructor(client, name) {
    this.#client = client;
    this.name = name;
  }

  getSingle(id) {
    return this.call("get_single", { id });
  }

  /** Resolves with {rows, hasMore, limit, offset, total?}. */
  async getList({ filter, orderBy, limit, offset, total } = {}) {
    const args = dropUndefined({ filter, order_by: orderBy, limit, offset, total });
    const { has_more: hasMore, ...page } = await this.call("get_list", args);
    return { ...page, hasMore };
  }

  // Writes go through the outbox: shown in live collections at once,
  // kept until the server confirms them (no time limit), sent again with
  // their key after a reconnect. Each resolves with the server's reply.

  create(data) {
    return this.write("create", { data });
  }

  /** A partial update: only the fields given change. */
  update(id, data) {
    return this.write("update", { id, data });
  }

  delete(id) {
    return this.write("delete", { id });
  }

  /** A custom verb the route marks as a write (`Route::write_verb`), kept
   * and resent like the standard writes (not shown optimistically). */
  write(verb, args = {}) {
    return this.#client._write(this.name, verb, args);
  }

  /** Any verb, custom ones included, as a request (it may time out). */
  call(verb, args = {}) {
    return this.#client._request(this.name, verb, args);
  }

  /** A LiveCollection of the rows matching `filter`, kept up to date. */
  subscribe(filter = {}, opts = {}) {
    return new LiveCollection(this.#client, this.name, filter, opts);
  }
}

// The server refuses unknown and mistyped arguments; an explicit `undefined`
// means "not given", so leave it out rather than send null.
function dropUndefined(args) {
  return Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined));
}
