// Waiting on conditions instead of sleeping.

/** Resolves when `check()` is truthy (polled every `every` ms); rejects after `timeout` ms with `what`. */
export async function waitFor(check, { timeout = 10_000, every = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Resolves when the client reaches `state` (at once if it is there). */
export function waitForState(client, state, timeout = 10_000) {
  return waitFor(() => client.state === state, { timeout, what: `client state ${state} (is ${client.state})` });
}
