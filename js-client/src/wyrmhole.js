// wyrmhole's JavaScript client.
//
//   import { connect } from "./wyrmhole.js";
//   const client = connect("ws://localhost:8000/ws", { token });
//   const items = client.route("todo-item").subscribe({ list_id: 1 });
//   items.on("change", ({ action, item }) => render());
//   const here = client.presence("todo-list:1", { name: "ann" });
//   here.on("change", (members) => renderAvatars(members));
//   client.channel("todo-list:1").on("message", (data) => toast(data));
//
// The Client ties the pieces together: the Socket (connection lifecycle),
// Requests (replies by id), the Outbox (writes kept until confirmed), the
// Subscriptions behind LiveCollections, and presence topics and channels
// (presence.js, channel.js).

import { Emitter, Socket } from "./socket.js";
import { Requests, WyrmholeError } from "./request.js";
import { Route } from "./route.js";
import { Presence } from "./presence.js";
import { Channel } from "./channel.js";
import { Outbox } from "./outbox.js";
import { defaultStorage } from "./outbox-storage.js";

export { Presence } from "./presence.js";
export { Channel } from "./channel.js";
export { WyrmholeError } from "./request.js";
export { LiveCollection } from "./live-collection.js";
export { Route } from "./route.js";
export { MemoryStorage, IndexedDbStorage } from "./outbox-storage.js";

/**
 * Opens a client on `url`, or on a list of URLs (servers of one app, tried
 * in turn; a draining server's close, 1012, moves to the next at once). Options: token (sent as ?token=), WebSocket (the
 * implementation; default globalThis.WebSocket), requestTimeout (ms, default
 * 10000; reads only: writes wait in the outbox until confirmed), backoff
 * {min, max} (reconnect delays in ms, default 250 / 10000), heartbeat
 * {interval, timeout} (ms, default 15000 / 10000), storage (where the
 * outbox keeps unconfirmed writes; default IndexedDB in browsers, memory
 * elsewhere).
 */
export function connect(url, opts = {}) {
  return new Client(url, opts);
}

export class Client extends Emitter {
  #socket;
  #requests;
  #routes = new Map(); // name -> Route
  #byServerId = new Map(); // server subscription id -> Subscription
  #subscriptions = new Set(); // every live Subscription, for reconnects
  #presences = new Map(); // topic -> Presence joined
  #channels = new Map(); // name -> Channel
  #collections = new Set(); // LiveCollections, told of the outbox's changes
  #outbox;

  constructor(url, { token, WebSocket, requestTimeout = 10_000, backoff, heartbeat, storage } = {}) {
    super();
    this.#socket = new Socket(url, { token, WebSocket, backoff, heartbeat });
    this.#requests = new Requests(this.#socket, { timeout: requestTimeout });
    this.#outbox = new Outbox(this, storage ?? defaultStorage());
    this.#socket.on("state", (state) => this.emit("state", state));
    this.#socket.on("unauthorized", (why) => this.emit("unauthorized", why));
    this.#socket.on("open", () => {
      // Writes first: a read sent after a write should see it.
      this.#outbox.flush();
      this.#requests.flush();
      for (const sub of [...this.#subscriptions]) sub.reopened();
      for (const p of [...this.#presences.values()]) p.reopened();
      for (const c of [...this.#channels.values()]) c.reopened();
    });
    this.#socket.on("close", ({ wasOpen }) => {
      if (!wasOpen) return; // a failed attempt: no request went out, no subscription existed
      this.#requests.disconnected();
      this.#outbox.disconnected();
      for (const sub of [...this.#subscriptions]) sub.connectionLost();
      for (const p of [...this.#presences.values()]) p.connectionLost();
      for (const c of [...this.#channels.values()]) c.connectionLost();
    });
    this.#socket.on("message", (frame) => this.#dispatch(frame));
  }

  /** "connecting" | "open" | "reconnecting" | "unauthorized" | "closed" */
  get state() {
    return this.#socket.state;
  }

  /** Uses `token` from the next connection on; after "unauthorized",
   * connects again at once. */
  setToken(token) {
    this.#socket.setToken(token);
  }

  /** Connects now if not connected (skips the rest of a backoff). */
  reconnect() {
    this.#socket.reconnect();
  }

  /** Whether writes wait for the server's confirmation. */
  get hasPendingWrites() {
    return this.#outbox.size > 0;
  }

  /** How many writes wait for the server's confirmation. */
  get pendingWrites() {
    return this.#outbox.size;
  }

  /** Resolves once the writes an earlier page left unconfirmed are loaded
   * (and shown in live collections). */
  get outboxReady() {
    return this.#outbox.ready;
  }

  route(name) {
    if (!this.#routes.has(name)) this.#routes.set(name, new Route(this, name));
    return this.#routes.get(name);
  }

  /**
   * Joins a presence topic with `meta` (a small object: name, colour, what
   * is being edited). Returns a Presence whose `members` stay live (events
   * "join", "leave", "update", "change", "error"); it rejoins after every
   * reconnect until `leave()`. One per topic per client.
   */
  presence(topic, meta = {}) {
    if (this.#presences.has(topic)) throw new Error(`already joined presence topic ${topic}; leave() it first`);
    const presence = new Presence(this, topic, meta);
    this.#presences.set(topic, presence);
    return presence;
  }

  /** The channel `name`: `on("message", fn)` subscribes; `publish(data)` sends. */
  channel(name) {
    return this.#channels.get(name) ?? new Channel(this, name);
  }

  /** Closes the connection for good; pending requests fail with "closed". */
  close() {
    this.#socket.close();
    this.#requests.closed();
    this.#outbox.closed();
    for (const sub of [...this.#subscriptions]) sub.stop();
    this.#presences.clear();
    this.#channels.clear();
  }

  /** Requests waiting for a reply (queued or sent), writes included; for
   * diagnostics and tests. */
  get pendingRequests() {
    return this.#requests.size + this.#outbox.size;
  }

  #dispatch(frame) {
    if (frame.type === "reply" && this.#outbox.owns(frame)) this.#outbox.reply(frame);
    else if (frame.type === "reply") this.#requests.reply(frame);
    else if (frame.type === "event") this.#byServerId.get(frame.sub)?.event(frame);
    // The server lost changes on their way to it and ended the subscription.
    else if (frame.type === "gap") this.#byServerId.get(frame.sub)?.resync(`gap: ${frame.reason}`);
    else if (frame.type === "presence") this.#presences.get(frame.topic)?.frame(frame);
    else if (frame.type === "message") this.#channels.get(frame.channel)?.message(frame.data);
    // Server push to this user (Wyrmhole::to_user).
    else if (frame.type === "push") this.emit("push", frame.data);
  }

  // Plumbing for Route, LiveCollection and Subscription (not public API).

  _request(route, verb, args, opts) {
    if (this.#socket.state === "closed") {
      return Promise.reject(new WyrmholeError("closed", "the client was closed"));
    }
    return this.#requests.request(route, verb, args, opts);
  }

  _write(route, verb, args) {
    if (this.#socket.state === "closed") {
      return Promise.reject(new WyrmholeError("closed", "the client was closed"));
    }
    return this.#outbox.add(route, verb, args);
  }

  _send(frame) {
    return this.#socket.send(frame);
  }

  _pendingWrites(route) {
    return this.#outbox.pending(route);
  }

  _writesChanged(route) {
    for (const c of [...this.#collections]) if (c.route === route) c._writesChanged();
  }

  _created(route, temp, row) {
    for (const c of [...this.#collections]) if (c.route === route) c._created(row);
  }

  _trackCollection(collection) {
    this.#collections.add(collection);
  }

  _untrackCollection(collection) {
    this.#collections.delete(collection);
  }

  _debug(message) {
    this.emit("debug", message);
  }

  _isOpen() {
    return this.#socket.isOpen;
  }

  _forgetPresence(presence) {
    if (this.#presences.get(presence.topic) === presence) this.#presences.delete(presence.topic);
  }

  _keepChannel(channel) {
    this.#channels.set(channel.name, channel);
  }

  _forgetChannel(channel) {
    if (this.#channels.get(channel.name) === channel) this.#channels.delete(channel.name);
  }

  _track(sub) {
    this.#subscriptions.add(sub);
  }

  _untrack(sub) {
    this.#subscriptions.delete(sub);
  }

  _route(serverId, sub) {
    this.#byServerId.set(serverId, sub);
  }

  _unroute(serverId, sub) {
    if (this.#byServerId.get(serverId) === sub) this.#byServerId.delete(serverId);
  }

  /** Best effort: if it fails the connection is gone, and the subscription with it. */
  _unsubscribe(route, serverId) {
    if (this.#socket.isOpen) this._request(route, "unsubscribe", { sub: serverId }).catch(() => {});
  }
}
