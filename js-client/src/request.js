// Requests in flight, matched to replies by id.
//
// A request made while the socket is not open waits in the queue and is sent
// on the next open, in order. Its timeout runs from the moment it is made, so
// a request never waits longer than `timeout` ms whatever the connection does.
// A request already sent when the connection drops is rejected with
// "disconnected": it may or may not have run, and resending a create could
// run it twice, so the caller decides.
//
// A request the server refused with `rate_limited` did not run, so it is
// sent again after the `retry_after_ms` the server asked for, within the
// same timeout.
//
// Every way a request ends (reply, timeout, disconnect, close) removes it
// from the map and clears its timers, so nothing outlives its request.

/** A failed request: `code` is the protocol's error code (see docs/protocol.md),
 * or one of the client's own: "timeout", "disconnected", "closed". */
export class WyrmholeError extends Error {
  constructor(code, message, fields) {
    super(message || code);
    this.name = "WyrmholeError";
    this.code = code;
    if (fields) this.fields = fields;
  }

  static fromReply(error) {
    return new WyrmholeError(error?.code ?? "internal", error?.message ?? "", error?.fields);
  }
}

export class Requests {
  #socket;
  #timeout;
  #nextId = 1;
  #pending = new Map(); // id -> {frame, sent, resolve, reject, timer, retry, onReply}

  constructor(socket, { timeout = 10_000 } = {}) {
    this.#socket = socket;
    this.#timeout = timeout;
  }

  /** How many requests are waiting (queued or sent). */
  get size() {
    return this.#pending.size;
  }

  /**
   * Sends `{id, route, verb, args}`; resolves with the reply's data.
   * `onReply(data)`, if given, runs synchronously when a successful reply
   * arrives, before any later frame is handled: subscriptions need this to
   * register their id before the events that follow the reply.
   */
  request(route, verb, args = {}, { timeout = this.#timeout, onReply } = {}) {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      const frame = { id, route, verb, args };
      const entry = { frame, sent: false, resolve, reject, onReply, timer: null, retry: null };
      entry.timer = setTimeout(() => {
        this.#finish(id, new WyrmholeError("timeout", `${route} ${verb}: no reply within ${timeout} ms`));
      }, timeout);
      this.#pending.set(id, entry);
      entry.sent = this.#socket.send(frame);
    });
  }

  /** Sends every queued request, oldest first (the socket just opened). */
  flush() {
    for (const entry of this.#pending.values()) {
      if (!entry.sent && !entry.retry) entry.sent = this.#socket.send(entry.frame);
    }
  }

  /** Handles a reply frame. */
  reply(frame) {
    const entry = this.#pending.get(frame.id);
    if (!entry) return; // timed out already, or not ours
    if (!frame.ok && frame.error?.code === "rate_limited") {
      // Not run: send it again once the server has room (or on the next
      // open, if the connection drops meanwhile).
      entry.sent = false;
      entry.retry = setTimeout(() => {
        entry.retry = null;
        if (this.#pending.get(frame.id) === entry && !entry.sent) entry.sent = this.#socket.send(entry.frame);
      }, Math.max(1, frame.error.retry_after_ms ?? 100));
      return;
    }
    if (frame.ok) {
      try {
        entry.onReply?.(frame.data);
      } finally {
        this.#finish(frame.id, null, frame.data);
      }
    } else {
      this.#finish(frame.id, WyrmholeError.fromReply(frame.error));
    }
  }

  /** The connection dropped: requests already sent will never be answered. */
  disconnected() {
    for (const [id, entry] of this.#pending) {
      if (entry.sent) this.#finish(id, new WyrmholeError("disconnected", "the connection dropped before the reply"));
    }
  }

  /** The client closed: fail everything. */
  closed() {
    for (const id of [...this.#pending.keys()]) {
      this.#finish(id, new WyrmholeError("closed", "the client was closed"));
    }
  }

  #finish(id, error, data) {
    const entry = this.#pending.get(id);
    if (!entry) return;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    clearTimeout(entry.retry);
    if (error) entry.reject(error);
    else entry.resolve(data);
  }
}
