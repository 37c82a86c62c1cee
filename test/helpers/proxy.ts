/**
 * A fault-injecting TCP proxy on 127.0.0.1 for network failure tests.
 *
 *   const proxy = await startProxy({ targetHost: '127.0.0.1', targetPort: 5432 });
 *   const client = new pg.Client(proxy.url(databaseUrl()));
 *   proxy.stall();   // half-open: bytes vanish, sockets stay open
 *   proxy.cut();     // abrupt reset of every current connection
 *   await proxy.close();
 *
 * Every socket gets an 'error' listener, so no fault surfaces as an unhandled 'error' event.
 */
import net from 'node:net';

export interface ProxyOptions {
  targetHost: string;
  targetPort: number;
}

export interface Proxy extends AsyncDisposable {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** `baseUrl` (a postgres:// URL) with host:port replaced by the proxy's. */
  url(baseUrl: string): string;
  /** Number of currently open client connections (forwarded or blackholed). */
  readonly connections: number;
  /** Total client connections accepted since start (including refused ones). */
  readonly accepted: number;
  /** Whether new connections are currently blackholed. */
  readonly stalled: boolean;
  /**
   * From now on every byte in both directions on every current connection is silently dropped,
   * while all sockets stay open (a half-open / blackholed link). New connections are accepted
   * and blackholed too (the upstream is never dialled).
   */
  stall(): void;
  /** New connections are forwarded again. Connections stalled earlier stay stalled. */
  resume(): void;
  /** Abruptly destroys every current client and server socket (TCP RST where possible). */
  cut(): void;
  /** While true, new connections are closed immediately after accept. */
  refuse(on?: boolean): void;
  /** Stops listening and cuts everything. Idempotent. */
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  stalled: boolean;
}

function swallow(): void {
  // Errors are expected here (resets, refused upstreams); the pair's close handling deals with them.
}

function hardDestroy(socket: net.Socket | undefined): void {
  if (socket === undefined || socket.destroyed) return;
  try {
    if (typeof socket.resetAndDestroy === 'function' && !socket.connecting) {
      socket.resetAndDestroy();
      return;
    }
  } catch {
    // Fall through to a plain destroy.
  }
  socket.destroy();
}

/** Forwards `from` to `to` with backpressure; drops bytes once the pair is stalled. */
function forward(pair: Pair, from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (pair.stalled || to.destroyed) return;
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => {
        if (!pair.stalled) from.resume();
      });
    }
  });
  from.on('end', () => {
    if (!pair.stalled && !to.destroyed) to.end();
  });
  from.on('close', () => {
    if (!pair.stalled) to.destroy();
  });
}

export async function startProxy(options: ProxyOptions): Promise<Proxy> {
  const { targetHost, targetPort } = options;
  const pairs = new Set<Pair>();
  let stallNew = false;
  let refusing = false;
  let closed = false;
  let accepted = 0;

  const server = net.createServer({ pauseOnConnect: false }, (client) => {
    accepted += 1;
    client.on('error', swallow);
    if (refusing || closed) {
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const pair: Pair = { client, upstream: undefined, stalled: stallNew };
    pairs.add(pair);
    if (pair.stalled) {
      // Blackholed: read and discard, never dial upstream.
      client.on('data', swallow);
      client.on('close', () => pairs.delete(pair));
      return;
    }
    const upstream = net.connect({ host: targetHost, port: targetPort });
    upstream.on('error', swallow);
    upstream.setNoDelay(true);
    pair.upstream = upstream;
    forward(pair, client, upstream);
    forward(pair, upstream, client);
    const done = (): void => {
      if (client.destroyed && upstream.destroyed) pairs.delete(pair);
    };
    client.on('close', done);
    upstream.on('close', done);
  });
  server.on('error', swallow);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('proxy: no address');
  const port = address.port;

  const cut = (): void => {
    for (const pair of pairs) {
      pair.stalled = false;
      hardDestroy(pair.client);
      hardDestroy(pair.upstream);
      pairs.delete(pair);
    }
  };

  const close = async (): Promise<void> => {
    if (!closed) {
      closed = true;
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  };

  return {
    port,
    url(baseUrl: string): string {
      const url = new URL(baseUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      url.searchParams.delete('host');
      url.searchParams.delete('port');
      return url.toString();
    },
    get connections() {
      let open = 0;
      for (const pair of pairs) if (!pair.client.destroyed) open += 1;
      return open;
    },
    get accepted() {
      return accepted;
    },
    get stalled() {
      return stallNew;
    },
    stall(): void {
      stallNew = true;
      for (const pair of pairs) {
        pair.stalled = true;
        // Keep draining both sides so nothing backs up; forward() drops the bytes.
        pair.client.resume();
        pair.upstream?.resume();
      }
    },
    resume(): void {
      stallNew = false;
    },
    cut,
    refuse(on = true): void {
      refusing = on;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
