// A TCP proxy between a client and the server, so tests can break the
// network: drop connections abruptly (RST), refuse new ones, or stall.

import net from "node:net";

export async function startProxy(target) {
  const { hostname: host, port } = new URL(target);
  const pairs = new Set();
  let refusing = false;
  let stalled = false;
  let deaf = false;

  const server = net.createServer((client) => {
    if (refusing) return client.resetAndDestroy();
    const upstream = net.connect({ host, port: Number(port) });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.on("data", (d) => stalled || upstream.write(d));
    upstream.on("data", (d) => stalled || deaf || client.write(d));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxyPort = server.address().port;

  return {
    /** The server URL through the proxy (same path). */
    url: (wsUrl) => wsUrl.replace(/:\d+\//, `:${proxyPort}/`),
    get connections() {
      return pairs.size;
    },
    /** Resets every open connection, as a dying network would. */
    cut() {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    /** Cuts everything and refuses new connections until `restore()`. */
    down() {
      refusing = true;
      this.cut();
    },
    restore() {
      refusing = false;
      stalled = false;
      deaf = false;
    },
    /** Lets the client's bytes through but drops the server's: requests
     * run, their replies are lost. */
    deafen() {
      deaf = true;
    },
    /** Keeps connections open but silently drops every byte (a black hole). */
    stall() {
      stalled = true;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
