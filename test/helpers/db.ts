/**
 * Database helpers for tests. Every test process gets its server from `DATABASE_URL`, which
 * `test/run.ts` sets for each pass (embedded server, machine service, or a user-supplied URL).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export type ServerKind = 'embedded' | 'service' | 'external';

/** The URL of the server this test pass runs against. */
export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (url === undefined || url === '') {
    throw new Error(
      'DATABASE_URL is not set: run tests through `npm test` (test/run.ts starts a server and sets it), ' +
        'or set DATABASE_URL=postgres://user:pass@host:port/db yourself',
    );
  }
  return url;
}

/** Which kind of server this pass runs against (from PGNOTIFY_TEST_SERVER, set by test/run.ts). */
export function serverKind(): ServerKind {
  const kind = process.env.PGNOTIFY_TEST_SERVER;
  return kind === 'embedded' || kind === 'service' ? kind : 'external';
}

/**
 * A connected `pg.Client` on `databaseUrl()` (or `url`). The caller must `end()` it.
 * An 'error' listener is attached so a server-side termination never crashes the test process.
 */
export async function adminClient(url: string = databaseUrl()): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'pgnotify-test-admin',
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => {
    // Admin connections may be terminated by fault tests; the failing query reports it.
  });
  await client.connect();
  return client;
}

/** Connects an admin client, runs `fn`, and always ends the client. */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await adminClient();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

let channelCounter = 0;

/**
 * A channel name unique to this process and call: `prefix_<pid>_<counter>_<random>`, lower-case
 * ASCII, at most 40 bytes. `prefix` is lower-cased, non-[a-z0-9_] characters become '_', and it
 * is truncated to keep the total within 40 bytes.
 */
export function uniqueChannel(prefix = 'ch'): string {
  channelCounter += 1;
  const suffix = `_${process.pid.toString(36)}_${channelCounter.toString(36)}_${randomBytes(4).toString('hex')}`;
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `${clean.slice(0, Math.max(1, 40 - suffix.length))}${suffix}`;
}

export interface WaitForOptions {
  /** Deadline in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Delay between polls in milliseconds (default 5). */
  intervalMs?: number;
  /** What is being awaited, for the error message. */
  message?: string;
}

/**
 * Polls `fn` until it returns something other than `undefined` or `false`, and resolves with
 * that value. Rejects when the deadline passes (naming `message`), or with `fn`'s own error if it
 * throws. This is the deadline-bounded fallback for state that has no event to wait on.
 */
export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitForOptions = {},
): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 5, message = 'condition' } = options;
  const started = Date.now();
  const deadline = started + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    const now = Date.now();
    if (now >= deadline) {
      throw new Error(`waitFor: timed out after ${now - started} ms waiting for ${message}`);
    }
    await new Promise<void>((resolve) => {
      setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - now)));
    });
  }
}

/**
 * Anything with Node-style listener registration (EventEmitter, pg.Client, net.Socket, ...): it
 * needs `on`, `addListener` or `once`, and preferably `off`/`removeListener` for cleanup.
 * Parameters are typed `never` so any emitter's (possibly generic) signatures are accepted.
 */
export interface EmitterLike {
  on?(name: never, listener: never): unknown;
  once?(name: never, listener: never): unknown;
  off?(name: never, listener: never): unknown;
  addListener?(name: never, listener: never): unknown;
  removeListener?(name: never, listener: never): unknown;
}

type Listener = (...args: unknown[]) => void;
type Method = (name: string, listener: Listener) => unknown;

export interface OnceEventOptions {
  /** Deadline in milliseconds (default 5000). */
  timeoutMs?: number;
}

/**
 * Resolves with the arguments of the next `name` event on `emitter`, or rejects after
 * `timeoutMs`. Unlike `events.once`, an 'error' event does not reject unless `name` is 'error'.
 */
export function onceEvent<A extends unknown[] = unknown[]>(
  emitter: EmitterLike,
  name: string,
  options: OnceEventOptions = {},
): Promise<A> {
  const { timeoutMs = 5000 } = options;
  const e = emitter as { [K in keyof EmitterLike]?: Method };
  return new Promise<A>((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      clearTimeout(timer);
      remove();
      resolve(args as A);
    };
    const add = (): void => {
      if (typeof e.on === 'function') e.on.call(emitter, name, listener);
      else if (typeof e.addListener === 'function') e.addListener.call(emitter, name, listener);
      else if (typeof e.once === 'function') e.once.call(emitter, name, listener);
      else throw new TypeError('onceEvent: emitter has no on/addListener/once method');
    };
    const remove = (): void => {
      if (typeof e.off === 'function') e.off.call(emitter, name, listener);
      else if (typeof e.removeListener === 'function') {
        e.removeListener.call(emitter, name, listener);
      }
    };
    const timer = setTimeout(() => {
      remove();
      reject(new Error(`onceEvent: no '${name}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      add();
    } catch (err) {
      clearTimeout(timer);
      reject(err);
    }
  });
}

/** Backend pids of sessions whose application_name equals `applicationName`. */
export async function backendPids(applicationName: string): Promise<number[]> {
  return withAdmin(async (client) => {
    const result = await client.query<{ pid: number }>(
      'select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid() order by pid',
      [applicationName],
    );
    return result.rows.map((row) => row.pid);
  });
}

/** Terminates a backend with pg_terminate_backend; resolves with its result (false if gone). */
export async function terminate(pid: number): Promise<boolean> {
  return withAdmin(async (client) => {
    const result = await client.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [
      pid,
    ]);
    return result.rows[0]?.ok === true;
  });
}
