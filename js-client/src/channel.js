// A named channel: messages the server (or, where the app allows it, other
// clients) publish to it. Ephemeral: what was published while we were not
// subscribed (before the first listener, during a reconnect) is not replayed.
//
// The channel subscribes when its first "message" listener is added and
// again after every reopen; publishing needs no subscription.

import { Emitter } from "./socket.js";

export class Channel extends Emitter {
  #client;
  #wanted = false; // a "message" listener was added and the channel not left
  #subscribed = false;

  constructor(client, name) {
    super();
    this.#client = client;
    this.name = name;
  }

  on(event, fn) {
    const off = super.on(event, fn);
    if (event === "message" && !this.#wanted) {
      this.#wanted = true;
      this.#subscribe();
    }
    return off;
  }

  /** Sends `data` (any JSON) to the channel's subscribers; rejects with `forbidden` unless the app allows it. */
  publish(data) {
    return this.#client._request("$channel", "publish", { channel: this.name, data });
  }

  /** Stops receiving; a new "message" listener subscribes again. */
  leave() {
    const subscribed = this.#subscribed;
    this.#wanted = this.#subscribed = false;
    this.#client._forgetChannel(this);
    if (subscribed && this.#client._isOpen()) {
      this.#client._request("$channel", "unsubscribe", { channel: this.name }).catch(() => {});
    }
  }

  /** A message frame of this channel (routed here by the client). */
  message(data) {
    if (this.#wanted) this.emit("message", data);
  }

  connectionLost() {
    this.#subscribed = false;
  }

  reopened() {
    if (this.#wanted && !this.#subscribed) this.#subscribe();
  }

  #subscribe() {
    this.#client._keepChannel(this);
    this.#client
      ._request("$channel", "subscribe", { channel: this.name })
      .then(() => {
        this.#subscribed = this.#wanted;
      })
      .catch((err) => {
        if (["disconnected", "closed", "timeout"].includes(err.code)) return; // reopened() takes over
        this.#wanted = false;
        this.#client._forgetChannel(this);
        this.emit("error", err);
      });
  }
}
