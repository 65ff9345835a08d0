// One subscription on the server, kept alive across reconnects.
//
// The server numbers each subscription's events 1, 2, 3, ... (`seq`). A gap
// means an event was lost, so the only safe move is a fresh snapshot: we
// subscribe again and let the collection reconcile. A dropped connection
// loses its subscriptions on the server, so after every reopen we subscribe
// again too.
//
// After a dropped connection "again" first means `resume`: the server replays
// the changes after the last position we applied (#pos, within #epoch) and
// the collection keeps its rows. When the server cannot (history trimmed,
// database reset) it answers `cannot_resume` and we subscribe with a fresh
// snapshot. After a seq gap or a `gap` frame our rows cannot be trusted, so
// that always re-snapshots. A resume that the connection cut before it
// brought us one position further is not tried again: the next attempt is a
// fresh snapshot, so a client can never loop on a resume that cannot finish.
// An ordered window (order_by + limit) never resumes: it re-subscribes.

const RETRY_MS = 1_000; // after a subscribe timed out on a live connection

export class Subscription {
  #client;
  #route;
  #filter;
  #sink; // {snapshot(rows), event(action, data), error(err)}
  #sub = null; // the server's id, while live
  #seq = 0; // the last seq applied
  #pos = 0; // the commit position we are up to
  #epoch = null; // names #pos's numbering; null while our rows are not a trusted view
  #attempt = 0; // increases on each (re)subscribe; stale replies are dropped
  #inFlight = false;
  #resumedFrom = null; // the position the current resume started at, until it moved us on
  #stopped = false;
  #retryTimer = null;
  #window; // {limit, order_by?} for an ordered window, else null

  constructor(client, route, filter, sink, window = null) {
    this.#client = client;
    this.#route = route;
    this.#filter = filter;
    this.#sink = sink;
    this.#window = window;
    client._track(this);
    this.#attach();
  }

  get state() {
    if (this.#stopped) return "stopped";
    return this.#sub == null ? "subscribing" : "live";
  }

  /** An event frame for our server id (routed here by the client). */
  event(frame) {
    if (frame.sub !== this.#sub) return; // from a subscription we replaced
    if (frame.seq !== this.#seq + 1) {
      return this.resync(`seq gap: expected ${this.#seq + 1}, got ${frame.seq}`);
    }
    this.#seq = frame.seq;
    this.#pos = frame.pos;
    this.#resumedFrom = null; // progress: a later resume starts further on
    this.#sink.event(frame.action, frame.data, frame.index);
  }

  /** Our view can no longer be trusted: drop the server subscription and take a fresh snapshot. */
  resync(why) {
    this.#epoch = null; // our rows are no longer a trusted view: re-snapshot, never resume
    if (this.#stopped) return;
    this.#client._debug(`resubscribing ${this.#route}: ${why}`);
    this.#release();
    this.#attach();
  }

  /** The connection dropped: the server forgot our subscription. */
  connectionLost() {
    // A resume that got us nowhere is not repeated: take a fresh snapshot.
    if (this.#resumedFrom != null && this.#resumedFrom === this.#pos) this.#epoch = null;
    this.#resumedFrom = null;
    this.#forget();
    this.#attempt += 1; // whatever was in flight will never be answered usefully
    this.#inFlight = false;
  }

  /** The connection (re)opened: subscribe unless a queued subscribe is about to go out. */
  reopened() {
    if (!this.#stopped && this.#sub == null && !this.#inFlight) this.#attach();
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#attempt += 1;
    clearTimeout(this.#retryTimer);
    this.#release();
    this.#client._untrack(this);
  }

  #attach() {
    clearTimeout(this.#retryTimer);
    const attempt = ++this.#attempt;
    // A window cannot resume (its events place rows in what it holds):
    // it re-subscribes and the collection reconciles.
    const resuming = this.#epoch != null && this.#window == null;
    this.#resumedFrom = resuming ? this.#pos : null;
    this.#inFlight = true;
    const onReply = (data) => {
      // Runs synchronously with the reply, before the events that follow it.
      if (attempt !== this.#attempt) return this.#client._unsubscribe(this.#route, data.sub);
      this.#inFlight = false;
      this.#sub = data.sub;
      this.#seq = 0;
      // A snapshot stands at its position; a resume at ours, the missed
      // changes following as events.
      this.#pos = data.pos;
      this.#epoch = data.epoch;
      this.#client._route(data.sub, this);
      // A resume keeps our rows: the replayed events follow this reply.
      if (!resuming) this.#sink.snapshot(data.rows);
    };
    const [verb, args] = resuming
      ? ["resume", { filter: this.#filter, epoch: this.#epoch, pos: this.#pos }]
      : ["subscribe", { filter: this.#filter, ...this.#window }];
    this.#client._request(this.#route, verb, args, { onReply }).catch((err) => {
      if (attempt !== this.#attempt) return;
      this.#inFlight = false;
      if (err.code === "disconnected" || err.code === "closed") return; // reopened() takes over
      if (err.code === "timeout") {
        // Queued while offline: the next open re-attaches. Sent but slow: try again.
        if (this.#client._isOpen()) this.#retryTimer = setTimeout(() => this.#attach(), RETRY_MS);
        return;
      }
      if (resuming && err.code === "cannot_resume") {
        this.#epoch = null; // the server cannot replay: take a fresh snapshot
        this.#resumedFrom = null;
        return this.#attach();
      }
      // Refused (bad_filter, forbidden, too_many_rows, ...): retrying cannot help.
      this.#stopped = true;
      this.#client._untrack(this);
      this.#sink.error(err);
    });
  }

  /** Forgets the server id and tells the server (best effort) to drop it. */
  #release() {
    const sub = this.#sub;
    this.#forget();
    if (sub != null) this.#client._unsubscribe(this.#route, sub);
  }

  #forget() {
    if (this.#sub != null) this.#client._unroute(this.#sub, this);
    this.#sub = null;
  }
}
