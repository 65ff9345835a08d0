// The connection lifecycle: one WebSocket at a time, reopened with
// exponential backoff and jitter until the client is closed.
//
// States: "connecting" (the first attempt), "open", "reconnecting" (after a
// drop, through every retry until the next open), "closed" (only after
// close(); a closed Socket never reopens).
//
// Several servers: given a list of URLs, each new attempt after a failed
// one goes to the next URL, and a server that drains (close code 1012,
// "service restart") is left at once for the next one, without backoff.
//
// Liveness: the server pings every 15 s and closes connections that do not
// answer. Browsers answer pings themselves and so does the `ws` package, so
// there is nothing to do here; a dead server shows up as a close event.

/** A minimal event emitter; `on` returns a function that removes the listener. */
export class Emitter {
  #listeners = new Map();

  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
  }

  emit(event, payload) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      // One failing listener must not stop the others, nor the socket's own
      // bookkeeping that runs after the emit: report it and carry on.
      try {
        fn(payload);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }
}

function reportListenerError(err) {
  // Rethrown asynchronously so it still reaches window.onerror /
  // process "uncaughtException" like any other bug in app code.
  setTimeout(() => {
    throw err;
  });
}

const OPEN = 1; // WebSocket.OPEN, the same in browsers and in `ws`

/** Close code of a draining server: reconnect at once, elsewhere. */
export const SERVICE_RESTART = 1012;

export class Socket extends Emitter {
  #urls;
  #next = 0;
  #WebSocket;
  #backoff;
  #ws = null;
  #attempt = 0;
  #retryTimer = null;
  state = "connecting";

  /**
   * @param {string|string[]} url  ws:// or wss:// URL of the endpoint (…/ws),
   *   or several (servers of one app), tried in turn
   * @param {object} opts {token, WebSocket, backoff: {min, max}} (ms)
   */
  constructor(url, { token, WebSocket = globalThis.WebSocket, backoff = {} } = {}) {
    super();
    if (typeof WebSocket !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as the WebSocket option");
    }
    const urls = Array.isArray(url) ? url : [url];
    if (urls.length === 0) throw new TypeError("no URL to connect to");
    this.#urls = urls.map((each) => {
      const u = new URL(each);
      // Browsers cannot set headers on a WebSocket, so the token rides in the query.
      if (token != null) u.searchParams.set("token", token);
      return u.toString();
    });
    this.#WebSocket = WebSocket;
    this.#backoff = { min: backoff.min ?? 250, max: backoff.max ?? 10_000 };
    this.#open();
  }

  get isOpen() {
    return this.#ws?.readyState === OPEN;
  }

  /** Sends a frame; returns false (and sends nothing) unless the socket is open. */
  send(frame) {
    if (!this.isOpen) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  /** Closes for good: no reconnect. */
  close() {
    if (this.state === "closed") return;
    clearTimeout(this.#retryTimer);
    const wasOpen = this.isOpen;
    const ws = this.#ws;
    this.#ws = null;
    this.#setState("closed");
    if (ws) {
      detach(ws);
      ws.close(1000);
    }
    this.emit("close", { code: 1000, reason: "closed by client", wasOpen });
  }

  #open() {
    const ws = new this.#WebSocket(this.#urls[this.#next]);
    this.#ws = ws;
    let wasOpen = false;
    ws.onopen = () => {
      wasOpen = true;
      this.#attempt = 0;
      this.#setState("open");
      this.emit("open");
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON text; ignore anything else
      }
      this.emit("message", frame);
    };
    // An error is always followed by a close event; all handling is there.
    ws.onerror = () => {};
    ws.onclose = (event) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      detach(ws);
      // Every close that the client did not ask for is retried: server
      // restarts (1000/1001; 1012 at once, see above), dropped TCP (1006), heartbeat timeout (4001),
      // slow consumer (4008) and oversized frames (1009) alike. `wasOpen` is
      // false for a failed attempt: nothing was sent, so nothing was lost.
      this.emit("close", { code: event.code, reason: event.reason, wasOpen });
      // A failed attempt or a draining server: the next server, if any.
      if (!wasOpen || event.code === SERVICE_RESTART) this.#next = (this.#next + 1) % this.#urls.length;
      if (event.code === SERVICE_RESTART) {
        this.#setState("reconnecting");
        this.#retryTimer = setTimeout(() => this.#open(), 0);
        return;
      }
      this.#scheduleRetry();
    };
  }

  #scheduleRetry() {
    this.#setState("reconnecting");
    const { min, max } = this.#backoff;
    const ceiling = Math.min(max, min * 2 ** this.#attempt);
    this.#attempt += 1;
    // "Equal jitter": half fixed, half random, so a restarted server is not
    // hit by every client at the same instant, yet nobody waits ~0 forever.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {}; // a late error on a dropped socket must not throw
}
