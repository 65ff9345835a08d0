// MUST NOT compile: types.test.js expects tsc to fail on exactly the three
// lines of typos below (a field, a lookup, a value), which no
// expect-error directive excuses.

import { connect } from "wyrmhole-client";

export function typos(): void {
  const items = connect("ws://127.0.0.1:8000/ws").route("todo-item");
  items.subscribe({ list_id: 1, txet__icontains: "milk" });
  items.subscribe({ text__contians: "milk" });
  void items.update(1, { done: "yes" });
}
