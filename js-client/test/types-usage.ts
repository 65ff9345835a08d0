// Typed usage of the client, checked by `tsc --noEmit` (see types.test.js).
// Lines marked @ts-expect-error must NOT type-check: they prove the
// declarations are strict where they should be.

import { connect, WyrmholeError, type ChangeEvent, type LiveCollection, type WebSocketConstructor } from "wyrmhole-client";

// Stands for the `ws` package in Node (which ships no types of its own).
declare const NodeWebSocket: WebSocketConstructor;

interface TodoItem {
  [field: string]: unknown;
  id: number;
  list_id: number;
  text: string;
  done: boolean;
}

export async function usage(): Promise<void> {
  const client = connect("ws://127.0.0.1:8000/ws", {
    token: "alice",
    WebSocket: NodeWebSocket,
    requestTimeout: 5_000,
    backoff: { min: 100, max: 5_000 },
  });
  const off = client.on("state", (state) => {
    const known: "connecting" | "open" | "reconnecting" | "unauthorized" | "closed" = state;
    void known;
  });
  off();

  client.on("unauthorized", ({ reason }) => client.setToken(reason.length > 0 ? "fresh" : null));
  client.on("error", (e) => void (e.write?.verb satisfies string | undefined));
  const waiting: boolean = client.hasPendingWrites;
  void waiting;
  await client.outboxReady;

  const items = client.route<TodoItem>("todo-item");
  const created: TodoItem = await items.create({ list_id: 1, text: "milk", done: false });
  const one: TodoItem = await items.getSingle(created.id);
  const updated: TodoItem = await items.update(one.id, { done: true });
  const page = await items.getList({ filter: { list__id: 1 }, orderBy: ["-done", "text"], limit: 10, total: true });
  const rows: TodoItem[] = page.rows;
  const more: boolean = page.hasMore;
  const total: number | undefined = page.total;
  await items.delete(updated.id);
  const cleared = await items.call<{ deleted: number }>("clear_done", { list_id: 1 });
  const shown = items.subscribe({ list_id: 1 });
  const pendingRow: boolean = shown.hasPendingWrites || shown.isPending(created) || shown.pending.has(created.id);
  void pendingRow;
  const n: number = cleared.deleted;
  void [rows, more, total, n];

  const live: LiveCollection<TodoItem> = items.subscribe({ list_id: 1 }, { order: (a, b) => a.text.localeCompare(b.text) });
  await live.ready;
  const first: TodoItem | undefined = live.items[0];
  const byId: TodoItem | undefined = live.get(1);
  for (const item of live) {
    const text: string = item.text;
    void text;
  }
  live.on("change", (change: ChangeEvent<TodoItem>) => {
    if (change.action === "updated") {
      const before: TodoItem = change.previous;
      void before;
    }
  });
  live.on("reset", ({ items }) => void items.length);
  live.on("error", (err) => void err.code);
  live.unsubscribe();
  void [first, byId];

  try {
    await items.create({ list_id: 1, text: "", done: false });
  } catch (err) {
    if (err instanceof WyrmholeError && err.code === "validation_failed") {
      const messages: string[] | undefined = err.fields?.text;
      void messages;
    }
  }
  const pending: number = client.pendingRequests;
  void pending;
  client.close();

  // The browser's own WebSocket fits the option too.
  connect("wss://example.test/ws", { WebSocket: globalThis.WebSocket }).close();
  connect(["wss://a.example.test/ws", "wss://b.example.test/ws"], { WebSocket: globalThis.WebSocket }).close();

  // @ts-expect-error: the items array is read-only
  live.items.push(created);
  // @ts-expect-error: an unknown state event name is a type error
  client.on("stat", () => {});
  // @ts-expect-error: text is a string
  await items.update(1, { text: 5 });
  // @ts-expect-error: options are checked
  connect("ws://x/ws", { requestTimeot: 5 });
}

export function presenceUsage(client: ReturnType<typeof connect>): void {
  const here = client.presence<{ name: string; editing: number | null }>("todo-list:1", { name: "ann", editing: null });
  here.on("join", (m) => void m.meta.name.toUpperCase());
  here.on("change", (members) => void members.map((m) => m.user ?? m.id));
  void here.update({ name: "ann", editing: 3 });
  // @ts-expect-error: meta must have the declared shape
  void here.update({ name: 1 });
  here.leave();
  const channel = client.channel<{ text: string }>("todo-list:1");
  channel.on("message", (data) => void data.text.trim());
  void channel.publish({ text: "hi" });
  client.on("push", (data) => void data);
}
