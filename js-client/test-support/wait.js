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

/** Resolves on the client's next transition into `state` (not the current one). */
export function nextState(client, state, timeout = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for state ${state}`));
    }, timeout);
    const off = client.on("state", (s) => {
      if (s !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}
