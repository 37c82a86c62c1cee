/**
 * A private PostgreSQL server per test, for faults that would disturb the shared server:
 * stopping it, restarting it, or starting a client before the server exists.
 *
 *   const server = await startPrivateServer();
 *   try { ... await server.restart(); ... } finally { await server.destroy(); }
 *
 * Also usable with `await using server = await startPrivateServer();`.
 */
import { createEmbeddedServer, installExitCleanup } from './embedded.js';

export interface PrivateServer extends AsyncDisposable {
  /** postgres://postgres:postgres@127.0.0.1:PORT/postgres — stable across stop/start. */
  readonly url: string;
  readonly port: number;
  /** Whether the postgres process is running now. */
  readonly running: boolean;
  /**
   * Stops the server. 'fast' (default, SIGINT): sessions are terminated with SQLSTATE 57P01
   * ("terminating connection due to administrator command"). 'immediate' (SIGQUIT): backends
   * exit at once, the next start runs crash recovery. No-op if already stopped.
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port with the same data. No-op if running. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server and deletes its data directory. Idempotent. */
  destroy(): Promise<void>;
  /** What initdb/postgres printed, for diagnosing a failed start. */
  readonly log: readonly string[];
}

/**
 * Starts a separate embedded PostgreSQL (own temp data dir, own free port, persistent so it can
 * be stopped and started again). Takes about a second. Always `destroy()` it.
 */
export async function startPrivateServer(): Promise<PrivateServer> {
  // A test process that exits or is interrupted without destroy() still stops the server and
  // removes its directory.
  installExitCleanup(true);
  const server = await createEmbeddedServer({ persistent: true, dirPrefix: 'pgnotify-private-' });
  try {
    await server.start();
  } catch (err) {
    await server.destroy().catch(() => undefined);
    throw err;
  }
  const destroy = (): Promise<void> => server.destroy();
  return {
    url: server.url,
    port: server.port,
    get running() {
      return server.running;
    },
    log: server.log,
    stop: (mode) => server.stop(mode),
    start: () => server.start(),
    async restart(mode) {
      await server.stop(mode);
      await server.start();
    },
    destroy,
    [Symbol.asyncDispose]: destroy,
  };
}
