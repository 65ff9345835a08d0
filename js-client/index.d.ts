// Type declarations for wyrmhole-client. The wire protocol these methods
// speak is described in docs/protocol.md of the wyrmhole repository.

/** A row as the server publishes it: the model's published fields, primary key included. */
export type Row = Record<string, unknown>;

/** A Django-style filter: `{"list__id": 1, "done": false, "text__icontains": "milk"}`. */
export type Filter = Record<string, unknown>;

/**
 * The app's routes, typed from its Rust models: empty here, filled by the
 * `.d.ts` that `wyrmhole::TypeScript` generates (it augments this interface
 * with `declare module "wyrmhole-client"`). A route listed here makes
 * `client.route("todo-item")` typed: rows, the data `create` and `update`
 * take, and every filter key with its operand, so a typo in a field or a
 * lookup is a compile error.
 */
export interface Routes {}

/** What the generated declarations give per route. */
export interface RouteTypes {
  row: Row;
  create: Row;
  update: Row;
  filter: Filter;
}

/** The typed route of a name listed in `Routes`. */
export type TypedRoute<R extends RouteTypes> = Route<R["row"], R["create"], R["update"], R["filter"]>;

/** Connection states. "connecting" is the first attempt only; after a drop the
 * client stays "reconnecting" through every retry until it is "open" again.
 * "unauthorized": the server refused the token; no retries until
 * `setToken()` or `reconnect()`. "closed" is final, after `close()`. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "unauthorized" | "closed";

/** Error codes: the server's (docs/protocol.md) and the client's own. */
export type ErrorCode =
  | "malformed_frame"
  | "frame_too_large"
  | "bad_args"
  | "unknown_route"
  | "unknown_verb"
  | "bad_filter"
  | "unknown_field"
  | "read_only_field"
  | "invalid_data"
  | "validation_failed"
  | "not_found"
  | "forbidden"
  | "login_required"
  | "conflict"
  | "unknown_subscription"
  | "too_many_rows"
  /** `resume` cannot replay what was missed (history trimmed, database reset); the client re-subscribes itself. */
  | "cannot_resume"
  | "reply_too_large"
  | "too_many_subscriptions"
  /** The connection holds as many presence topics or channels as it may; `leave()` one first. */
  | "too_many_topics"
  | "rate_limited"
  | "unavailable"
  | "internal"
  /** No reply within `requestTimeout` (counted from when the request was made, queued or not). */
  | "timeout"
  /** The connection dropped after the request was sent: it may or may not have run. */
  | "disconnected"
  /** `client.close()` was called, or the request was made after it. */
  | "closed";

/** Every failed request rejects with one of these. */
export class WyrmholeError extends Error {
  readonly name: "WyrmholeError";
  readonly code: ErrorCode | (string & {});
  /** Messages per offending field or argument, for the codes that have them. */
  readonly fields?: Record<string, string[]>;
  /** On the client's "error" event: the refused write, rolled back. */
  readonly write?: PendingWrite;
  constructor(code: string, message?: string, fields?: Record<string, string[]>);
}

/** What the client needs of a WebSocket class: the browser's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // Event parameters are `any` so that both the DOM's handler types and the
  // `ws` package's fit; the client reads only `data`, `code` and `reason`.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ConnectOptions {
  /** Sent as `?token=` (browsers cannot set headers on a WebSocket). */
  token?: string;
  /** The WebSocket implementation. Default: `globalThis.WebSocket` (Node 20 has none: pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Milliseconds before a request fails with code "timeout". Default 10000. */
  requestTimeout?: number;
  /** Reconnect delays in ms: doubling from `min` up to `max`, with jitter. Default 250 / 10000. */
  backoff?: { min?: number; max?: number };
  /** A `$ping` after `interval` ms without a frame; the socket is dropped
   * and reopened when nothing arrives `timeout` ms after. Default 15000 / 10000. */
  heartbeat?: { interval?: number; timeout?: number };
  /** Where unconfirmed writes are kept. Default IndexedDB in browsers, memory elsewhere. */
  storage?: OutboxStorage;
}

/** A write waiting in the outbox (plain JSON, as storages keep it). */
export interface PendingWrite {
  route: string;
  verb: string;
  args: Record<string, unknown>;
}

/** Keeps the outbox's entries, by `key`. */
export interface OutboxStorage {
  load(): Promise<Array<PendingWrite & { key: string; seq: number }>>;
  put(entry: PendingWrite & { key: string; seq: number }): Promise<void>;
  delete(key: string): Promise<void>;
}
/** Entries in memory: they survive reconnects, not the process. */
export class MemoryStorage implements OutboxStorage {
  load(): Promise<Array<PendingWrite & { key: string; seq: number }>>;
  put(entry: PendingWrite & { key: string; seq: number }): Promise<void>;
  delete(key: string): Promise<void>;
}
/** Entries in an IndexedDB database of the page's origin. */
export class IndexedDbStorage implements OutboxStorage {
  constructor(name?: string, indexedDB?: unknown);
  load(): Promise<Array<PendingWrite & { key: string; seq: number }>>;
  put(entry: PendingWrite & { key: string; seq: number }): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * Opens a client and starts connecting. It reconnects by itself after any
 * drop until `close()`.
 *
 * Writes (`create`, `update`, `delete`, `write`) go through the outbox:
 * shown in live collections at once (pending), kept until the server
 * confirms them, with no time limit, across reconnects and (with IndexedDB)
 * reloads, and sent again with their idempotency key after a reconnect, so
 * each runs once. A refused write is rolled back and emitted as "error".
 *
 * Reads made while the client is not connected are queued and sent, in
 * order, as soon as it (re)connects; each still fails with "timeout" if no
 * reply comes within `requestTimeout` of the call. A read that was sent
 * but not answered when the connection dropped fails with "disconnected".
 *
 * `url` may be a list of the servers of one app: after a failed attempt
 * the next one is tried, and a server that drains (close code 1012) is
 * left at once, without backoff, for the next one.
 */
export function connect(url: string | string[], options?: ConnectOptions): Client;

export class Client {
  private constructor();
  readonly state: ConnectionState;
  /** Requests waiting for a reply, queued or sent, writes included. */
  readonly pendingRequests: number;
  /** Whether writes wait for the server's confirmation. */
  readonly hasPendingWrites: boolean;
  /** How many writes wait for the server's confirmation. */
  readonly pendingWrites: number;
  /** Resolves once the writes an earlier page left unconfirmed are loaded. */
  readonly outboxReady: Promise<void>;
  /** Uses `token` from the next connection on; after "unauthorized", connects again at once. */
  setToken(token: string | null): void;
  /** Connects now if not connected (skips the rest of a backoff). */
  reconnect(): void;
  /** A route listed in `Routes` (generated from the models): fully typed. */
  route<N extends keyof Routes & string>(name: N): Routes[N] extends RouteTypes ? TypedRoute<Routes[N]> : never;
  /** Any route, with rows typed as `T`. */
  route<T extends Row = Row>(name: string): Route<T>;
  /**
   * Joins a presence topic (e.g. "todo-list:4") with a small meta object;
   * the app's hook decides who may. Rejoins after every reconnect until
   * `leave()`. Throws if this client has joined the topic already.
   */
  presence<M extends Meta = Meta>(topic: string, meta?: M): Presence<M>;
  /** A channel: `on("message", ...)` subscribes; `publish` sends where the app allows it. */
  channel<D = unknown>(name: string): Channel<D>;
  on(event: "state", listener: (state: ConnectionState) => void): () => void;
  /** The server refused the token; the client waits for `setToken()`. */
  on(event: "unauthorized", listener: (info: { reason: string }) => void): () => void;
  /** A write the server refused; it was rolled back (`error.write` says which). */
  on(event: "error", listener: (error: WyrmholeError) => void): () => void;
  /** Data the server sent to this user (`Wyrmhole::to_user`), on any of their connections. */
  on(event: "push", listener: (data: unknown) => void): () => void;
  /** Diagnostics, e.g. why a live collection re-subscribed. */
  on(event: "debug", listener: (message: string) => void): () => void;
  off(event: string, listener: (...args: any[]) => void): void;
  /** Closes for good: no reconnect; pending requests fail with "closed". */
  close(): void;
}

/** A field of `T` to order by, "-field" for descending. */
export type OrderKey<T> = (keyof T & string) | `-${keyof T & string}`;

export interface ListOptions<T extends Row = Row, F = Filter> {
  filter?: F;
  /** A field name or several; "-field" for descending. The primary key always ends the order. */
  orderBy?: OrderKey<T> | OrderKey<T>[];
  limit?: number;
  offset?: number;
  /** Also count every matching row. */
  total?: boolean;
}

export interface Page<T> {
  rows: T[];
  hasMore: boolean;
  limit: number;
  offset: number;
  /** Present when `total: true` was asked for. */
  total?: number;
}

export interface SubscribeOptions<T> {
  /** The order of `items`; ties (and the default) go by primary key. Not for windows. */
  order?: (a: T, b: T) => number;
  /**
   * With `limit`: an ordered window of the first `limit` rows in this order
   * (field names, `-` for descending; ties go by primary key), kept by the
   * server: rows leaving it let the next ones in.
   */
  orderBy?: string | string[];
  /** Makes the collection a window of at most this many rows (see `orderBy`). */
  limit?: number;
  /** The primary key field. Default "id". */
  key?: keyof T & string;
}

/**
 * A route. `C` and `U` are what `create` and `update` take and `F` its
 * filters; a route typed from the models (`TypedRoute`) sets all four.
 */
export class Route<T extends Row = Row, C = Partial<T>, U = Partial<T>, F = Filter> {
  private constructor();
  readonly name: string;
  getSingle(id: unknown): Promise<T>;
  getList(options?: ListOptions<T, F>): Promise<Page<T>>;
  create(data: C): Promise<T>;
  /** A partial update: only the fields given change. */
  update(id: unknown, data: U): Promise<T>;
  delete(id: unknown): Promise<{ id: unknown }>;
  /** A custom verb the route marks as a write (`Route::write_verb`): kept and resent like `create`. */
  write<R = unknown>(verb: string, args?: Record<string, unknown>): Promise<R>;
  /** Any verb of the route, custom ones included, as a request that may time out. */
  call<R = unknown>(verb: string, args?: Record<string, unknown>): Promise<R>;
  /** Starts a live collection at once; its `ready` resolves after the first snapshot. */
  subscribe(filter?: F, options?: SubscribeOptions<T>): LiveCollection<T>;
}

/** `pending`: the row shown has writes of this client not confirmed yet. */
export type ChangeEvent<T> =
  | { action: "created"; id: unknown; item: T; pending: boolean }
  | { action: "updated"; id: unknown; item: T; previous: T; pending: boolean }
  | { action: "deleted"; id: unknown; item: T; pending: boolean };

/**
 * The rows matching a subscription, kept equal to the server's: events are
 * applied in order, a lost event triggers a fresh snapshot, and after every
 * reconnect the collection re-subscribes and reconciles, emitting "change"
 * for each difference and then "reset". The first snapshot emits only "reset".
 */
export class LiveCollection<T extends Row = Row> implements Iterable<T> {
  private constructor();
  readonly route: string;
  readonly filter: Filter;
  /** Resolves once the first snapshot is in; rejects if the server refuses the subscription. */
  readonly ready: Promise<LiveCollection<T>>;
  /** The rows in order. Do not mutate: it is the collection's own array. */
  readonly items: readonly T[];
  readonly size: number;
  readonly state: "subscribing" | "live" | "stopped";
  /** Ids of the rows with writes not confirmed yet (a pending create's id is `pending:…`). */
  readonly pending: ReadonlySet<unknown>;
  /** Whether any row shown has writes not confirmed yet. */
  readonly hasPendingWrites: boolean;
  /** Whether this row (or id) has writes not confirmed yet. */
  isPending(rowOrId: T | unknown): boolean;
  get(id: unknown): T | undefined;
  [Symbol.iterator](): Iterator<T>;
  on(event: "change", listener: (change: ChangeEvent<T>) => void): () => void;
  on(event: "reset", listener: (info: { items: readonly T[] }) => void): () => void;
  /** The server refused the subscription (e.g. bad_filter); it is stopped. */
  on(event: "error", listener: (error: WyrmholeError) => void): () => void;
  off(event: string, listener: (...args: any[]) => void): void;
  /** Stops receiving changes; the rows stay as they are. */
  unsubscribe(): void;
}

/** A presence member's meta: a small JSON object (1 KiB by default). */
export type Meta = Record<string, unknown>;

/** One connection joined to a topic. */
export interface Member<M extends Meta = Meta> {
  /** Unique across server processes; one per connection and topic. */
  id: string;
  /** The identity's user id; null when anonymous. */
  user: number | null;
  /** The identity's display name, if the server gave it one. */
  name: string | null;
  meta: M;
}

/**
 * A joined presence topic: `members` stays equal to the server's list. After
 * a reconnect it rejoins and emits the differences ("join"/"leave"/"update")
 * then "change"; members of a server process that died leave within ~6 s.
 */
export class Presence<M extends Meta = Meta> {
  private constructor();
  readonly topic: string;
  /** This connection's presence id while joined, else null. */
  readonly id: string | null;
  /** Every member, this connection's included. */
  readonly members: Member<M>[];
  /** Every member but this connection's. */
  readonly others: Member<M>[];
  on(event: "join" | "leave" | "update", listener: (member: Member<M>) => void): () => void;
  on(event: "change", listener: (members: Member<M>[]) => void): () => void;
  /** The server refused the join (forbidden, bad_args, too_many_topics); it is left. */
  on(event: "error", listener: (error: WyrmholeError) => void): () => void;
  off(event: string, listener: (...args: any[]) => void): void;
  /** Replaces this member's meta (kept for rejoins); every member gets "update". */
  update(meta: M): Promise<unknown>;
  /** Leaves the topic for good. */
  leave(): void;
}

/** A named channel. Ephemeral: nothing published while not subscribed is replayed. */
export class Channel<D = unknown> {
  private constructor();
  readonly name: string;
  /** The first "message" listener subscribes (again after every reconnect). */
  on(event: "message", listener: (data: D) => void): () => void;
  /** The server refused the subscription (forbidden, too_many_topics). */
  on(event: "error", listener: (error: WyrmholeError) => void): () => void;
  off(event: string, listener: (...args: any[]) => void): void;
  /** Sends `data` to every subscriber; rejects with "forbidden" unless the app allows clients to. */
  publish(data: D): Promise<{ channel: string }>;
  /** Stops receiving. */
  leave(): void;
}
