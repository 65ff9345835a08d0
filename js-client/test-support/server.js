// Starts the todo example binary as a real server for tests.
// Lives outside test/ because `node --test test/` runs every .js file there.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The example binary (`cargo build --example todo`); WYRM_TODO_BIN overrides. */
export const BINARY =
  process.env.WYRM_TODO_BIN ?? fileURLToPath(new URL("../../target/debug/examples/todo", import.meta.url));

const STARTUP_MS = 15_000;

/** A fresh database file in its own temp directory. */
export function tempDb() {
  const dir = mkdtempSync(join(tmpdir(), "wyrm-js-"));
  return { path: join(dir, "todo.db"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs the example on `port` (0: any free one) with the database `db`
 * and extra environment variables `env` (e.g. WYRM_ORIGINS).
 * Resolves once it printed its URL: {url, wsUrl, port, db, kill(), stop()}.
 * A restart on the same port may find it still held for a moment, so a
 * failed bind is retried until the startup deadline.
 */
export async function startServer({ port = 0, db, env = {} }) {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    try {
      return await startOnce(port, db, deadline, env);
    } catch (err) {
      if (port === 0 || Date.now() > deadline || !/exited/.test(err.message)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function startOnce(port, db, deadline, env) {
  const proc = spawn(BINARY, [], {
    env: { ...process.env, WYRM_PORT: String(port), WYRM_DB: db, RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (process.env.WYRM_SERVER_LOG) process.stderr.write(chunk);
  });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`the todo example printed no URL within ${STARTUP_MS} ms\n${stderr}`));
    }, Math.max(0, deadline - Date.now()));
    let stdout = "";
    proc.stdout.on("data", (chunk) => {
      stdout += chunk;
      const match = /wyrmhole todo example at (http:\/\/\S+?)\/?(\s|$)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1];
      const server = {
        url,
        wsUrl: url.replace(/^http/, "ws") + "/ws",
        port: Number(new URL(url).port),
        db,
        stderr: () => stderr,
        /** SIGKILL: no goodbye to the clients, like a crash. */
        kill: async () => {
          proc.kill("SIGKILL");
          await exited;
        },
        /** SIGINT: the example's graceful shutdown. */
        stop: async () => {
          proc.kill("SIGINT");
          await exited;
        },
      };
      resolve(server);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the todo example exited (code ${code}, signal ${signal}) before listening\n${stderr}`));
    });
  });
}
