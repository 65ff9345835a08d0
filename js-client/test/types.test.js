// index.d.ts: the typed usage in types-usage.ts compiles, through the
// package's own "exports" (as a dependent project would import it).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));

test("types-usage.ts type-checks with tsc --noEmit --strict", { timeout: 60_000 }, async () => {
  const args = [
    "tsc", "--noEmit", "--strict", "--target", "es2022",
    "--module", "nodenext", "--moduleResolution", "nodenext", "--skipLibCheck", "false",
    "test/types-usage.ts",
  ];
  const result = await promisify(execFile)("npx", ["--no-install", ...args], { cwd: root }).catch((e) => e);
  assert.equal(result.code ?? 0, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
});

// Typed routes: the declarations the todo example generates from its Rust
// models (`--typescript PATH`) equal the committed examples/todo/routes.d.ts,
// make typed-routes.ts compile (its @ts-expect-error lines included), and
// make typed-routes-typo.ts fail on each of its typos.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "../test-support/server.js";

const tsc = (files) =>
  promisify(execFile)(
    "npx",
    ["--no-install", "tsc", "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext",
      "--moduleResolution", "nodenext", "--skipLibCheck", "false", ...files],
    { cwd: root },
  ).catch((e) => e);

test("routes generated from the models type-check, and typos in fields and lookups do not", { timeout: 120_000 }, async () => {
  // Inside the package, so that `declare module "wyrmhole-client"` resolves.
  const dir = mkdtempSync(join(root, "test-support", "generated-"));
  try {
    const generated = join(dir, "routes.d.ts");
    await promisify(execFile)(BINARY, ["--typescript", generated]);
    const committed = readFileSync(new URL("../../examples/todo/routes.d.ts", import.meta.url), "utf8");
    assert.equal(readFileSync(generated, "utf8"), committed,
      "examples/todo/routes.d.ts is stale: cargo run --example todo -- --typescript examples/todo/routes.d.ts");

    const ok = await tsc(["test/typed-routes.ts", generated]);
    assert.equal(ok.code ?? 0, 0, `tsc failed on typed-routes.ts:\n${ok.stdout}${ok.stderr}`);

    const bad = await tsc(["test/typed-routes-typo.ts", generated]);
    assert.notEqual(bad.code ?? 0, 0, "typed-routes-typo.ts compiled: the route types accept typos");
    const errors = bad.stdout.split("\n").filter((l) => l.includes("typed-routes-typo.ts("));
    assert.deepEqual(errors.map((l) => /\((\d+),/.exec(l)[1]), ["9", "10", "11"], bad.stdout);
    assert.match(bad.stdout, /txet__icontains/);
    assert.match(bad.stdout, /text__contians/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
