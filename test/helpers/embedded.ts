/**
 * Throwaway PostgreSQL servers for the test runner (test/run.ts) and the private servers of
 * the fault tests (test/helpers/server.ts): unlike the demo's (src/cli/embedded.ts, whose
 * pieces this builds on), they can be stopped fast or immediately and started again on the
 * same port and data, and a test process that is signalled still removes them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  embeddedUrl,
  freePort,
  newEmbeddedPostgres,
  postmasterRunning,
  setRef,
  stopFast,
  trackForExit,
} from '../../src/cli/embedded.js';

export { EMBEDDED_PASSWORD, EMBEDDED_USER, freePort } from '../../src/cli/embedded.js';

let signalsHandled = false;

/**
 * Every server is removed when the process exits (see createEmbeddedServer). With
 * `handleSignals`, SIGINT/SIGTERM/SIGHUP also exit the process (128 + signal number) and so run
 * that cleanup: for test files, which have no handlers of their own, not for test/run.ts.
 */
export function installExitCleanup(handleSignals: boolean): void {
  if (!handleSignals || signalsHandled) return;
  signalsHandled = true;
  const codes = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
  for (const [signal, code] of Object.entries(codes)) {
    // `on`, not `once`: node --test forwards a second SIGTERM to its test processes, which
    // must not kill this one with the default action while it is still cleaning up.
    process.on(signal, () => process.exit(code));
  }
}

/** A throwaway server that can be stopped and started again (with `persistent`). */
export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Everything initdb and postgres printed, for diagnostics. */
  readonly log: string[];
  /** Starts postgres (initdb runs on the first start). Rejects with the server log on failure. */
  start(): Promise<void>;
  /**
   * Stops postgres: 'fast' (SIGINT: clients get 57P01 admin shutdown) or 'immediate' (SIGQUIT).
   * Returns at once if it is not running.
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Whether the postgres process is running. */
  readonly running: boolean;
  /** Stops postgres and removes the data directory. Idempotent. */
  destroy(): Promise<void>;
}

/** How {@link createEmbeddedServer} makes a server. */
export interface EmbeddedServerOptions {
  /** Keep the data directory across stop()/start() (needed for restarts). */
  persistent: boolean;
  /** Prefix of the mkdtemp directory under os.tmpdir(). */
  dirPrefix: string;
}

/**
 * Creates (does not start) a throwaway server on a free port with a fresh data directory,
 * removed by destroy() or, failing that, when the process exits.
 */
export async function createEmbeddedServer(
  options: EmbeddedServerOptions,
): Promise<EmbeddedServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), options.dirPrefix));
  const port = await freePort();
  const log: string[] = [];
  const pg = await newEmbeddedPostgres({ dataDir, port, persistent: options.persistent, log });
  const untrack = trackForExit(pg, dataDir);
  let initialised = false;
  let destroyed = false;

  const server: EmbeddedServer = {
    url: embeddedUrl(port),
    port,
    dataDir,
    log,
    get running() {
      return postmasterRunning(pg);
    },
    async start() {
      if (destroyed) throw new Error('embedded server was destroyed');
      if (postmasterRunning(pg)) return;
      try {
        if (!initialised) {
          await pg.initialise();
          initialised = true;
        }
        await pg.start();
        setRef(pg, false);
      } catch (err) {
        const reason = err instanceof Error ? err.message : 'postgres exited during startup';
        throw new Error(
          `embedded PostgreSQL failed to start on port ${port}: ${reason}\n--- server log ---\n${log.join('')}`,
        );
      }
    },
    async stop(mode = 'fast') {
      const proc = pg.process;
      if (mode === 'fast' || proc === undefined || !postmasterRunning(pg)) return stopFast(pg);
      setRef(pg, true);
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGQUIT');
      await exited;
      pg.process = undefined;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await stopFast(pg);
      } finally {
        await rm(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
        untrack();
      }
    },
  };
  return server;
}
