// Where the outbox keeps the writes the server has not confirmed yet, so
// they survive a reload: IndexedDB in browsers, memory elsewhere (Node).
//
// A storage is any object with three methods, each returning a promise:
//   load()        the entries kept, in any order (the outbox sorts by `seq`)
//   put(entry)    keeps (or replaces) an entry, by its `key`
//   delete(key)   forgets an entry
// An entry is plain JSON: {key, seq, route, verb, args}.

/** Keeps entries in memory: they survive reconnects, not the process. Pass
 * one instance to two clients to model a reload in tests. */
export class MemoryStorage {
  #entries = new Map();

  async load() {
    return [...this.#entries.values()].map((e) => structuredClone(e));
  }

  async put(entry) {
    this.#entries.set(entry.key, structuredClone(entry));
  }

  async delete(key) {
    this.#entries.delete(key);
  }
}

/** Keeps entries in an IndexedDB database of this origin, named `name`
 * (every page of the origin using the same name shares them: a write
 * another page resends is answered by the server from its key, not run
 * twice). */
export class IndexedDbStorage {
  #db;

  constructor(name = "wyrmhole-outbox", indexedDB = globalThis.indexedDB) {
    this.#db = new Promise((resolve, reject) => {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore("writes", { keyPath: "key" });
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }

  async load() {
    return this.#run("readonly", (store) => store.getAll());
  }

  async put(entry) {
    await this.#run("readwrite", (store) => store.put(entry));
  }

  async delete(key) {
    await this.#run("readwrite", (store) => store.delete(key));
  }

  async #run(mode, op) {
    const db = await this.#db;
    return new Promise((resolve, reject) => {
      const tx = db.transaction("writes", mode);
      const request = op(tx.objectStore("writes"));
      // Resolved once the transaction is durable, not when the request is.
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = tx.onabort = () => reject(tx.error ?? request.error);
    });
  }
}

/** IndexedDB where there is one, else memory. */
export function defaultStorage() {
  return globalThis.indexedDB ? new IndexedDbStorage() : new MemoryStorage();
}
