// The outbox: writes (create, update, delete, custom write verbs) kept
// until the server confirms them, across reconnects and reloads, with no
// time limit.
//
// Each write gets a random key when it is made and keeps it: the server
// answers a write whose key it has seen with the first reply instead of
// running it again (docs/protocol.md, "Ordered and idempotent writes"), so
// after a reconnect every unconfirmed write is simply sent again, in the
// order it was made. The server applies one connection's writes in the
// order they were sent, so they can all be sent at once.
//
// A create's row has no id until the server answers, so it is shown under
// a temporary one, `pending:<seq>:<key>`; writes to that row wait (and the writes
// after them, to keep the order) until the create is confirmed, then go out
// with the real id.
//
// A reply with `rate_limited` or `unavailable` did not run: it is sent
// again later. Any other refusal is final: the write is dropped (its
// optimistic change disappears from live collections) and the client emits
// "error" with the server's code, message and fields.

import { WyrmholeError } from "./request.js";

const TEMP = "pending:";
const REPLY = "w:"; // reply ids of outbox writes; the Requests' are numbers

export class Outbox {
  #client;
  #storage;
  #entries = []; // in the order made: {key, seq, route, verb, args, sent, temp?}
  #waiters = new Map(); // key -> {resolve, reject}, for writes made by this page
  #seq = Date.now() * 1000; // increasing across reloads too
  #retry = null;
  #loaded = false;

  /** Resolves once the entries kept by an earlier page are loaded. */
  ready;

  constructor(client, storage) {
    this.#client = client;
    this.#storage = storage;
    this.ready = storage.load().then(
      (kept) => {
        kept.sort((a, b) => a.seq - b.seq);
        const routes = new Set();
        // Loaded before anything this page adds, so they keep their place first.
        for (const e of kept.reverse()) {
          if (this.#entries.some((x) => x.key === e.key)) continue;
          this.#entries.unshift({ ...e, sent: false, temp: tempId(e) });
          routes.add(e.route);
        }
        this.#seq = Math.max(this.#seq, ...this.#entries.map((e) => e.seq + 1));
        this.#loaded = true;
        for (const route of routes) this.#client._writesChanged(route);
        this.flush();
      },
      (err) => {
        this.#loaded = true;
        this.#client._debug(`outbox storage failed to load: ${err}`);
        this.flush();
      },
    );
  }

  /** How many writes wait for the server. */
  get size() {
    return this.#entries.length;
  }

  /** The writes of `route` waiting for the server, oldest first. */
  pending(route) {
    return this.#entries.filter((e) => e.route === route);
  }

  /** Keeps and sends a write; resolves with the server's reply data. */
  add(route, verb, args) {
    const key = newKey();
    const entry = { key, seq: this.#seq++, route, verb, args, sent: false };
    entry.temp = tempId(entry);
    this.#entries.push(entry);
    this.#persist(entry);
    const promise = new Promise((resolve, reject) => this.#waiters.set(key, { resolve, reject }));
    this.#client._writesChanged(route);
    this.flush();
    return promise;
  }

  /** Sends what has not gone out on this connection, in order. */
  flush() {
    clearTimeout(this.#retry);
    if (!this.#loaded) return; // the writes kept by an earlier page go first
    for (const entry of this.#entries) {
      if (entry.sent) continue;
      if (typeof entry.args?.id === "string" && entry.args.id.startsWith(TEMP)) break; // its create first
      const frame = { id: REPLY + entry.key, route: entry.route, verb: entry.verb, args: entry.args, key: entry.key };
      entry.sent = this.#client._send(frame);
      if (!entry.sent) break;
    }
  }

  /** The connection dropped: what was sent may or may not have run, and
   * goes again (with its key) on the next open. */
  disconnected() {
    for (const entry of this.#entries) entry.sent = false;
  }

  /** Whether a reply frame is one of ours. */
  owns(frame) {
    return typeof frame.id === "string" && frame.id.startsWith(REPLY);
  }

  reply(frame) {
    const key = frame.id.slice(REPLY.length);
    const entry = this.#entries.find((e) => e.key === key);
    if (!entry) return;
    const code = frame.error?.code;
    if (!frame.ok && (code === "rate_limited" || code === "unavailable")) {
      // Not run: again later (and everything after it, to keep the order).
      for (const e of this.#entries) e.sent = false;
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => this.flush(), Math.max(1, frame.error.retry_after_ms ?? 1000));
      return;
    }
    this.#drop(entry);
    const waiter = this.#waiters.get(key);
    this.#waiters.delete(key);
    if (frame.ok) {
      if (entry.temp && frame.data?.id != null) this.#resolveTemp(entry, frame.data);
      this.#client._writesChanged(entry.route);
      waiter?.resolve(frame.data);
    } else {
      const err = WyrmholeError.fromReply(frame.error);
      err.write = { route: entry.route, verb: entry.verb, args: entry.args };
      const doomed = entry.temp ? this.#entries.filter((e) => e.args?.id === entry.temp) : [];
      this.#client._writesChanged(entry.route);
      this.#client.emit("error", err);
      waiter?.reject(err);
      // Writes to a row whose create was refused can never run.
      for (const e of doomed) this.reply({ id: REPLY + e.key, ok: false, error: frame.error });
    }
    this.flush();
  }

  /** The client closed: writes made by this page stop waiting (they stay
   * kept, and go out with the next client on the same storage). */
  closed() {
    clearTimeout(this.#retry);
    for (const waiter of this.#waiters.values()) waiter.reject(new WyrmholeError("closed", "the client was closed"));
    this.#waiters.clear();
  }

  /** A confirmed create: later writes to its temporary id get the real one. */
  #resolveTemp(entry, row) {
    this.#client._created(entry.route, entry.temp, row);
    for (const e of this.#entries) {
      if (e.args?.id === entry.temp) {
        e.args = { ...e.args, id: row.id };
        this.#persist(e);
      }
    }
  }

  #drop(entry) {
    this.#entries.splice(this.#entries.indexOf(entry), 1);
    this.#storage.delete(entry.key).catch((err) => this.#client._debug(`outbox storage: ${err}`));
  }

  #persist(entry) {
    const { key, seq, route, verb, args } = entry;
    this.#storage.put({ key, seq, route, verb, args }).catch((err) => this.#client._debug(`outbox storage: ${err}`));
  }
}

/** The temporary id of the row a pending create makes: ordered as the
 * creates were made (after every server id, see LiveCollection). */
function tempId(entry) {
  return entry.verb === "create" ? `${TEMP}${entry.seq}:${entry.key}` : undefined;
}

function newKey() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  // Pages over plain http (not localhost) have no randomUUID.
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
