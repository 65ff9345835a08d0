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
