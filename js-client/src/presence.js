// One presence topic joined by this client: who else is there, live.
//
// The server sends the whole member list in the join reply, then one
// `presence` frame per change (join, leave, update). A dropped connection
// leaves the topic on the server, so after every reopen we join again and
// reconcile the list we held with the fresh one (emitting the differences),
// so a listener never sees a member twice or misses one that went.

import { Emitter } from "./socket.js";

export class Presence extends Emitter {
  #client;
  #meta;
  #members = new Map(); // presence id -> {id, user, name, meta}
  #id = null; // our own presence id, while joined
  #attempt = 0; // stale replies are dropped
  #stopped = false;
  #inFlight = false; // a join is queued or sent; a reopen must not send another

  constructor(client, topic, meta = {}) {
    super();
    this.#client = client;
    this.topic = topic;
    this.#meta = meta;
    this.#join();
  }

  /** Our member's presence id while joined, else null. */
  get id() {
    return this.#id;
  }

  /** Every member, ourselves included: [{id, user, name, meta}]. */
  get members() {
    return [...this.#members.values()];
  }

  /** The other members (not this connection). */
  get others() {
    return this.members.filter((m) => m.id !== this.#id);
  }

  /** Replaces our meta; every member (us too) gets an "update". Kept for rejoins. */
  update(meta) {
    this.#meta = meta;
    if (this.#id == null) return Promise.resolve(null); // the rejoin sends it
    return this.#client._request("$presence", "update", { topic: this.topic, meta });
  }

  /** Leaves the topic for good. */
  leave() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#attempt += 1;
    const joined = this.#id != null;
    this.#id = null;
    this.#client._forgetPresence(this);
    if (joined && this.#client._isOpen()) {
      this.#client._request("$presence", "leave", { topic: this.topic }).catch(() => {});
    }
  }

  /** A `presence` frame of our topic (routed here by the client). */
  frame(frame) {
    if (this.#id == null) return; // not joined yet: the join reply carries the list
    const member = frame.member;
    if (frame.event === "leave") this.#members.delete(member.id);
    else this.#members.set(member.id, member);
    this.emit(frame.event, member);
    this.emit("change", this.members);
  }

  connectionLost() {
    this.#id = null;
    this.#attempt += 1; // whatever was in flight will never be answered usefully
    this.#inFlight = false;
  }

  reopened() {
    if (!this.#stopped && this.#id == null && !this.#inFlight) this.#join();
  }

  #join() {
    const attempt = ++this.#attempt;
    this.#inFlight = true;
    const onReply = (data) => {
      if (attempt !== this.#attempt) return;
      this.#inFlight = false;
      this.#id = data.id;
      const fresh = new Map(data.members.map((m) => [m.id, m]));
      const old = this.#members;
      this.#members = fresh;
      for (const [id, m] of old) if (!fresh.has(id)) this.emit("leave", m);
      for (const [id, m] of fresh) {
        if (!old.has(id)) this.emit("join", m);
        else if (JSON.stringify(old.get(id)) !== JSON.stringify(m)) this.emit("update", m);
      }
      this.emit("change", this.members);
    };
    this.#client._request("$presence", "join", { topic: this.topic, meta: this.#meta }, { onReply }).catch((err) => {
      if (attempt !== this.#attempt) return;
      this.#inFlight = false;
      if (["disconnected", "closed", "timeout"].includes(err.code)) return; // reopened() takes over
      // Refused (forbidden, bad_args, too_many_topics): retrying cannot help.
      this.#stopped = true;
      this.#client._forgetPresence(this);
      this.emit("error", err);
    });
  }
}
