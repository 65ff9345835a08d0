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

  create(data) {
    return this.call("create", { data });
  }

  /** A partial update: only the fields given change. */
  update(id, data) {
    return this.call("update", { id, data });
  }

  delete(id) {
    return this.call("delete", { id });
  }

  /** Any verb, custom ones included. */
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
