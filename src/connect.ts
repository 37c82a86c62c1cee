/**
 * One connection attempt of the listener session: build the client, attach its handlers,
 * connect, and set the session up and LISTEN every wanted channel in one round trip, within
 * `connectTimeoutMs`. What the session does with the result (adopt it, retry, give up) is
 * session.ts; pg's internals are pg-client.ts. Also the notification clock.
 */
import type pg from 'pg';
import { attach, closeClient, connectAndRun, makeClient } from './pg-client.js';
import { listenSql, SESSION_SETUP_SQL } from './sql.js';
import type { ConnectionOption } from './types.js';

let clockValue = 0;
let clockFresh = false;
const expireClock = (): void => {
  clockFresh = false;
};

/**
 * `Date.now()` read once per turn of the event loop: pg emits every notification of one
 * socket read synchronously, so they share one reading (when the chunk was read). The reading
 * expires at the next microtask checkpoint, so a later read is never stale.
 */
export function clock(): number {
  if (!clockFresh) {
    clockValue = Date.now();
    clockFresh = true;
    queueMicrotask(expireClock);
  }
  return clockValue;
}

/** Notifications read before their client was adopted; replayed after the connect/gap report. */
export type Early = [channel: string, payload: string, pid: number, receivedAt: number][];

/** A connected client, LISTENing, with what detaches its handlers and what it read early. */
export interface Connection {
  readonly client: pg.Client;
  /** Stops reacting to the client's events (a no-op 'error' listener stays). */
  readonly detach: () => void;
  /** Notifications read while the client was not the session's current one yet. */
  readonly early: Early;
  /** The channels LISTENed on it. */
  readonly channels: readonly string[];
}

/** What one attempt needs from the session. */
export interface Attempt {
  connection: ConnectionOption | undefined;
  applicationName: string;
  connectTimeoutMs: number;
  /** The client exists (the session keeps it so stop() can cut the attempt); may throw to abort. */
  created(client: pg.Client): void;
  /** The channels to LISTEN, asked once the client exists (subscriptions made meanwhile count). */
  channels(): string[];
  /** The attempt failed after `channels()` was asked. */
  failed(channels: string[]): void;
  /** Whether `client` is the session's current connection (else its notifications wait). */
  isCurrent(client: pg.Client): boolean;
  /** Traffic from the server, at `now` (the heartbeat's clock). */
  activity(now: number): void;
  notification(channel: string, payload: string, pid: number, receivedAt: number): void;
  /** The client's socket failed or the server closed it. */
  lost(client: pg.Client, cause: unknown): void;
}

/**
 * Creates, connects and prepares one client: session settings and LISTEN, one round trip.
 * Rejects with the connection's error (the client closed and detached); never retries.
 */
export async function connectOnce(attempt: Attempt): Promise<Connection> {
  const client = await makeClient(attempt.connection, attempt.applicationName);
  attempt.created(client);
  const early: Early = [];
  const detach = attach(client, {
    notification: (message) => {
      const now = clock();
      attempt.activity(now);
      const payload = message.payload ?? '';
      if (attempt.isCurrent(client))
        attempt.notification(message.channel, payload, message.processId, now);
      // LISTEN is live but the connection is not adopted yet: hold these until the
      // connected/gap reports went out, so nothing overtakes the gap.
      else early.push([message.channel, payload, message.processId, now]);
    },
    error: (error) => attempt.lost(client, error),
    end: () => attempt.lost(client, new Error('the server closed the connection')),
  });
  const channels = attempt.channels();
  try {
    await connectAndRun(client, SESSION_SETUP_SQL + listenSql(channels), attempt.connectTimeoutMs);
  } catch (error) {
    attempt.failed(channels);
    detach();
    void closeClient(client);
    throw error;
  }
  return { client, detach, early, channels };
}
