// The connection lifecycle: one WebSocket at a time, reopened with
// exponential backoff and jitter until the client is closed.
//
// States: "connecting" (the first attempt), "open", "reconnecting" (after a
// drop, through every retry until the next open), "unauthorized" (the server
// refused the credentials: no more retries until setToken() or reconnect()),
// "closed" (only after close(); a closed Socket never reopens).
//
// Several servers: given a list of URLs, each new attempt after a failed
// one goes to the next URL, and a server that drains (close code 1012,
// "service restart") is left at once for the next one, without backoff.
//
// Refused credentials: a browser cannot see the HTTP status of a failed
// upgrade, so after an attempt that never opened the socket asks the same
// URL with a plain GET (fetch), which the server answers 401 and the reason
// when the token is refused (docs/protocol.md, "Connecting").
//
// Liveness: the server pings every 15 s, but a page cannot see WebSocket
// pings, so a half-open socket (the network gone without a close) would look
// merely quiet. The heartbeat: when nothing has arrived for
// `heartbeat.interval` ms the socket sends a `$ping` request, and when
// nothing at all has arrived `heartbeat.timeout` ms after that, it drops the
// socket and reconnects. In browsers the "online" event reconnects at once
// instead of waiting out the backoff.

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
  #urls; // URL objects, tried in turn
  #next = 0;
  #WebSocket;
  #backoff;
  #heartbeat;
  #ws = null;
  #attempt = 0;
  #retryTimer = null;
  #beatTimer = null;
  #heard = 0; // when the current socket last received anything
  #pinged = false;
  #pings = 0;
  #onOnline = () => this.reconnect();
  state = "connecting";

  /**
   * @param {string|string[]} url  ws:// or wss:// URL of the endpoint (…/ws),
   *   or several (servers of one app), tried in turn
   * @param {object} opts {token, WebSocket, backoff: {min, max}, heartbeat: {interval, timeout}} (ms)
   */
  constructor(url, { token, WebSocket = globalThis.WebSocket, backoff = {}, heartbeat = {} } = {}) {
    super();
    if (typeof WebSocket !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as the WebSocket option");
    }
    const urls = Array.isArray(url) ? url : [url];
    if (urls.length === 0) throw new TypeError("no URL to connect to");
    this.#urls = urls.map((each) => new URL(each));
    this.#setUrlToken(token);
    this.#WebSocket = WebSocket;
    this.#backoff = { min: backoff.min ?? 250, max: backoff.max ?? 10_000 };
    this.#heartbeat = { interval: heartbeat.interval ?? 15_000, timeout: heartbeat.timeout ?? 10_000 };
    globalThis.addEventListener?.("online", this.#onOnline);
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

  /** Uses `token` from the next connection on, and connects at once if the
   * last attempt was refused. */
  setToken(token) {
    this.#setUrlToken(token);
    if (this.state === "unauthorized") this.reconnect();
  }

  /** Connects now unless open or closed: skips the rest of a backoff, and
   * retries after `unauthorized`. */
  reconnect() {
    if (this.state === "closed" || this.#ws) return;
    clearTimeout(this.#retryTimer);
    this.#attempt = 0;
    this.#setState("reconnecting");
    this.#open();
  }

  /** Closes for good: no reconnect. */
  close() {
    if (this.state === "closed") return;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#beatTimer);
    globalThis.removeEventListener?.("online", this.#onOnline);
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

  #setUrlToken(token) {
    // Browsers cannot set headers on a WebSocket, so the token rides in the query.
    for (const url of this.#urls) {
      if (token != null) url.searchParams.set("token", token);
      else url.searchParams.delete("token");
    }
  }

  #open() {
    const url = this.#urls[this.#next];
    const ws = new this.#WebSocket(url.toString());
    this.#ws = ws;
    let wasOpen = false;
    ws.onopen = () => {
      wasOpen = true;
      this.#attempt = 0;
      this.#startHeartbeat(ws);
      this.#setState("open");
      this.emit("open");
    };
    ws.onmessage = (event) => {
      this.#heard = Date.now();
      this.#pinged = false;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON text; ignore anything else
      }
      // The heartbeat's own replies are for nobody else.
      if (frame.type === "reply" && typeof frame.id === "string" && frame.id.startsWith("$ping:")) return;
      this.emit("message", frame);
    };
    // An error is always followed by a close event; all handling is there.
    ws.onerror = () => {};
    ws.onclose = (event) => this.#lost(ws, event.code, event.reason, wasOpen, url);
  }

  /** The socket `ws` is gone (closed, or given up by the heartbeat). */
  #lost(ws, code, reason, wasOpen, url) {
    if (this.#ws !== ws) return;
    this.#ws = null;
    clearInterval(this.#beatTimer);
    detach(ws);
    // Every close that the client did not ask for is retried: server
    // restarts (1000/1001; 1012 at once, see above), dropped TCP (1006),
    // heartbeat timeout (4001), slow consumer (4008) and oversized frames
    // (1009) alike. `wasOpen` is false for a failed attempt: nothing was
    // sent, so nothing was lost.
    this.emit("close", { code, reason, wasOpen });
    // A failed attempt or a draining server: the next server, if any.
    if (!wasOpen || code === SERVICE_RESTART) this.#next = (this.#next + 1) % this.#urls.length;
    if (code === SERVICE_RESTART) {
      this.#setState("reconnecting");
      this.#retryTimer = setTimeout(() => this.#open(), 0);
      return;
    }
    if (wasOpen) return this.#scheduleRetry();
    this.#setState("reconnecting");
    this.#whyRefused(url).then((refusal) => {
      if (this.state !== "reconnecting" || this.#ws) return; // closed or reconnected meanwhile
      if (refusal == null) return this.#scheduleRetry();
      this.#setState("unauthorized");
      this.emit("unauthorized", { reason: refusal });
    });
  }

  /** After an attempt that never opened: the server's reason if it refuses
   * our credentials (401), else null (down, unreachable, or another cause). */
  async #whyRefused(url) {
    if (typeof globalThis.fetch !== "function") return null;
    const http = new URL(url);
    http.protocol = http.protocol === "wss:" ? "https:" : "http:";
    try {
      const response = await globalThis.fetch(http, { cache: "no-store", credentials: "include" });
      return response.status === 401 ? await response.text() : null;
    } catch {
      return null; // unreachable: an ordinary retry
    }
  }

  #startHeartbeat(ws) {
    const { interval, timeout } = this.#heartbeat;
    this.#heard = Date.now();
    this.#pinged = false;
    clearInterval(this.#beatTimer);
    this.#beatTimer = setInterval(
      () => {
        if (this.#ws !== ws) return;
        const quiet = Date.now() - this.#heard;
        if (quiet >= interval + timeout) {
          // Half-open: a close handshake could wait forever, so do not.
          this.#lost(ws, 4000, "heartbeat: no reply from the server", true, this.#urls[this.#next]);
          try {
            ws.close(4000);
          } catch {
            // already closing
          }
        } else if (quiet >= interval && !this.#pinged) {
          this.#pinged = true;
          this.send({ id: `$ping:${++this.#pings}`, route: "$ping", verb: "ping" });
        }
      },
      Math.max(10, Math.min(interval, timeout) / 4),
    );
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
