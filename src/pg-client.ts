/**
 * Everything that knows how `pg` works inside: building the listener's client from the
 * connection option, the fields pg does not declare (the backend pid, the socket, the
 * connecting flags), closing a client for sure, and telling which errors a retry may cure.
 * Nothing else in pgnotify touches pg internals.
 */
import pg from 'pg';
import { resolveConnection } from './connection.js';
import { ErrorCode, PgNotifyError, sqlStateOf, toError } from './errors.js';
import type { ConnectionOption } from './types.js';

/** A listener that ignores what it is given: kept on dropped clients so 'error' never crashes. */
export const noop = (): void => undefined;

/**
 * A new, unconnected client for the connection option: the factory's, or one built from a
 * URL / config / `DATABASE_URL` / `PG*` variables (`resolveConnection`) with TCP keepalive
 * on and `application_name` set.
 */
export async function makeClient(
  connection: ConnectionOption | undefined,
  applicationName: string,
): Promise<pg.Client> {
  if (typeof connection === 'function') {
    const client = await connection();
    const flags = client as unknown as { _connecting?: boolean; _connected?: boolean };
    if (
      typeof client?.connect !== 'function' ||
      typeof client.query !== 'function' ||
      flags._connecting === true ||
      flags._connected === true
    ) {
      throw new PgNotifyError(
        ErrorCode.INVALID_OPTION,
        'option connection: the factory must return a new, unconnected pg.Client',
      );
    }
    return client;
  }
  // Throws INVALID_OPTION (never retried) for no configuration at all or a URL that does not parse.
  const config = resolveConnection(connection);
  config.keepAlive ??= true;
  config.application_name ??= applicationName;
  return new pg.Client(config);
}

/** What the session handles of a client's events. */
export interface ClientHandlers {
  notification(message: pg.Notification): void;
  error(error: Error): void;
  end(): void;
}

/**
 * Attaches handlers to a client's events; returns what detaches them. A no-op 'error'
 * listener stays: a dropped client may still emit 'error', and with no listener at all that
 * would crash the process.
 */
export function attach(client: pg.Client, handlers: ClientHandlers): () => void {
  client.on('notification', handlers.notification);
  client.on('error', handlers.error);
  client.on('end', handlers.end);
  return () => {
    client.off('notification', handlers.notification);
    client.off('error', handlers.error);
    client.off('end', handlers.end);
    client.on('error', noop);
  };
}

/** The backend pid pg read from BackendKeyData at connect (not in pg's type declarations). */
export function backendPid(client: pg.Client): number | undefined {
  return (client as unknown as { processID?: number | null }).processID ?? undefined;
}

/** Cuts the client's socket at once: pending queries fail, 'end' follows. */
export function destroySocket(client: pg.Client): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
  stream?.destroy();
}

/**
 * Connects a client and runs `sql` on it, within `timeoutMs` for both together; past it the
 * socket is destroyed and the call rejects `PGNOTIFY_CONNECTION_FAILED` (retryable).
 */
export function connectAndRun(client: pg.Client, sql: string, timeoutMs: number): Promise<void> {
  return withinTimeout(
    client,
    (async () => {
      await client.connect();
      await client.query(sql);
    })(),
    timeoutMs,
    'connecting',
  );
}

/**
 * Waits for `work` on `client` (connecting, a statement) for at most `timeoutMs`: past it the
 * socket is destroyed (so `work` fails too) and the call rejects `PGNOTIFY_CONNECTION_FAILED`
 * (retryable), "`what` took longer than connectTimeoutMs (… ms)". A link gone silent is noticed
 * by the OS only after hours.
 */
export async function withinTimeout<T>(
  client: pg.Client,
  work: Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          destroySocket(client);
          reject(
            new PgNotifyError(
              ErrorCode.CONNECTION_FAILED,
              `${what} took longer than connectTimeoutMs (${timeoutMs} ms)`,
              { retryable: true },
            ),
          );
        }, timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends a client politely, or destroys its socket when that takes longer than a second. */
export async function closeClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(noop),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        destroySocket(client);
        resolve();
      }, 1000);
    }),
  ]);
  clearTimeout(timer);
}

/** Whether a connection error may go away by retrying. Credentials and missing databases won't. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof PgNotifyError) {
    if (error.code === ErrorCode.INVALID_OPTION) return false;
    const state = error.sqlState;
    return state === undefined ? error.retryable : isRetryableSqlState(state);
  }
  const state = sqlStateOf(error);
  return state === undefined || isRetryableSqlState(state);
}

function isRetryableSqlState(state: string): boolean {
  // 28xxx invalid authorization (bad password, missing role), 3D000 missing database,
  // 42501 insufficient privilege: retrying cannot help.
  return !(state.startsWith('28') || state === '3D000' || state === '42501');
}

/** Errors that mean the connection itself is unusable (socket errors, shutdown, 08xxx). */
export function isConnectionError(error: unknown): boolean {
  const state = sqlStateOf(error);
  return state === undefined || state.startsWith('08') || state.startsWith('57P');
}

/** A connection attempt's failure as `PGNOTIFY_CONNECTION_FAILED` (other pgnotify errors pass). */
export function connectionFailed(cause: unknown): PgNotifyError {
  if (cause instanceof PgNotifyError && cause.code !== ErrorCode.CONNECTION_LOST) return cause;
  const retryable = isRetryable(cause);
  return new PgNotifyError(
    ErrorCode.CONNECTION_FAILED,
    `could not connect the listener: ${toError(cause).message}`,
    { cause, retryable },
  );
}
