// Typed routes: with the declarations generated from the todo example's Rust
// models (`todo --typescript`, compiled alongside this file by
// types.test.js), `client.route("todo-item")` knows its rows, what create
// and update take and every filter key. Lines marked @ts-expect-error must
// fail to type-check; if the types ever loosen, tsc reports the unused
// directive and the test fails.

import { connect, type WebSocketConstructor } from "wyrmhole-client";

declare const NodeWebSocket: WebSocketConstructor;

export async function typed(): Promise<void> {
  const client = connect("ws://127.0.0.1:8000/ws", { WebSocket: NodeWebSocket });
  const items = client.route("todo-item");
  const lists = client.route("todo-list");

  const created = await items.create({ list_id: 1, text: "milk", done: false });
  const text: string = created.text;
  const done: boolean = created.done;
  void text, done;
  await items.update(created.id, { done: true });
  await lists.update(1, { name: "Weekend" });

  const live = items.subscribe({ list__id: 1, done: false, text__icontains: "mi", id__in: [1, 2] });
  for (const item of live.items) {
    const id: number = item.id;
    void id;
  }
  await items.getList({ filter: { pk__gte: 3, text__istartswith: "b" }, orderBy: ["-id", "text"] });

  // @ts-expect-error: a typo in a field
  items.subscribe({ lsit_id: 1 });
  // @ts-expect-error: a typo in a lookup
  items.subscribe({ text__icontain: "mi" });
  // @ts-expect-error: a lookup that does not apply to booleans
  items.subscribe({ done__gt: false });
  // @ts-expect-error: the operand's type
  items.subscribe({ list_id: "1" });
  // @ts-expect-error: `in` takes a list
  items.subscribe({ id__in: 1 });
  // @ts-expect-error: create needs every writable field (done is missing)
  void items.create({ list_id: 1, text: "milk" });
  // @ts-expect-error: id is not writable
  void items.update(1, { id: 2 });
  // @ts-expect-error: no such field to order by
  void items.getList({ orderBy: "-txet" });
  // @ts-expect-error: rows have no such field
  void created.title;

  // The route's name as an explicit type argument works too.
  const alsoItems = client.route<"todo-item">("todo-item");
  // @ts-expect-error: the same checks
  alsoItems.subscribe({ done__icontains: "x" });

  // Names not generated stay untyped, as before.
  const other = client.route<{ id: number; x: string }>("other");
  await other.create({ x: "y" });
}
