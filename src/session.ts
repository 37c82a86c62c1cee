/**
 * One listener connection's life: connect (session settings and every wanted LISTEN in one
 * round trip), watch it (heartbeat.ts, TCP keepalive), replace it when lost (backoff with
 * jitter, abortable by stop()), LISTEN every wanted channel again in one round trip, and only
 * then report the gap. One connection attempt is connect.ts; the LISTEN set, listen-set.ts;
 * pg's internals, pg-client.ts.
 * Knows channels, never subscribers: what is wanted is asked of the registry.
 */
import type pg from 'pg';
import { connectOnce, type Early } from './connect.js';
import {
  asPgNotifyError,
  ErrorCode,
  listenerClosedError,
  PgNotifyError,
  toError,
} from './errors.js';
import { Heartbeat, type Timers } from './heartbeat.js';
import { type Deferred, deferred, ListenSet, type Query } from './listen-set.js';
import { backendPid, closeClient, connectionFailed, destroySocket } from './pg-client.js';
import { QueryQueue } from './query-queue.js';
import { Backoff, reconnect } from './reconnect.js';
import type {
  ConnectionOption,
  HeartbeatOptions,
  ListenerState,
  OutageGap,
  ReconnectOptions,
} from './types.js';

/** What the session tells its owner. Hooks must not throw (the listener guards them). */
export interface SessionHooks {
  notification(channel: string, payload: string, pid: number, receivedAt: number): void;
  state(state: ListenerState): void;
  connected(pid: number): void;
  disconnected(cause: PgNotifyError): void;
  reconnecting(attempt: number, delayMs: number, cause: Error): void;
  reconnected(gap: OutageGap): void;
  failed(error: PgNotifyError): void;
  error(error: PgNotifyError): void;
}

/** The options the session uses, and where "wanted" comes from. */
export interface SessionConfig {
  connection: ConnectionOption | undefined;
  connectTimeoutMs: number;
  heartbeat: Required<HeartbeatOptions> | false;
  reconnect: Required<ReconnectOptions> | false;
  applicationName: string;
  /** Whether the server must listen to a channel (the registry's rule). */
  isWanted(channel: string): boolean;
  /** Every channel the server must listen to. */
  wanted(): string[];
  /** Fake timers for tests; the real ones by default. */
  timers?: Timers;
}

/** The connection of one listener, across reconnections. */
export class Session {
  state: ListenerState = 'idle';
  /** Backend process id of the current connection. */
  pid: number | undefined;
  /** Completed reconnections. */
  reconnects = 0;
  /** Why the last start() or the session failed; cleared once a connection listens. */
  lastError: PgNotifyError | undefined;
  /** The server's LISTEN set on the current connection. */
  readonly listening: ListenSet;
  #client: pg.Client | undefined;
  /** The session's own statements on the current connection, one function per connection. */
  #query: Query | undefined;
  /** Every statement on the current connection goes through it, one at a time. */
  #queue: QueryQueue | undefined;
  /** The client of a connection attempt in progress, so stop() can abort it. */
  #connecting: pg.Client | undefined;
  /** Per client: what detaches its handlers, and what it read before it was adopted. */
  readonly #attached = new WeakMap<pg.Client, { detach(): void; early: Early }>();
  #connectWaiters: Deferred[] = [];
  readonly #backoff = new Backoff();
  readonly #heartbeat: Heartbeat;
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  #failure: PgNotifyError | undefined;
  readonly #config: SessionConfig;
  readonly #hooks: SessionHooks;

  constructor(config: SessionConfig, hooks: SessionHooks) {
    this.#config = config;
    this.#hooks = hooks;
    const live = (): Query | undefined => this.#query;
    const lost = (query: Query, cause: unknown): void => {
      if (query === this.#query && this.#client !== undefined) this.#lost(this.#client, cause);
    };
    this.listening = new ListenSet({
      isWanted: config.isWanted,
      live,
      lost,
      park: (batch) => {
        if (this.state === 'stopped' || this.state === 'failed')
          batch.reject(this.#failure ?? listenerClosedError());
        else this.#connectWaiters.push(batch);
      },
    });
    this.#heartbeat = new Heartbeat(
      config.heartbeat,
      {
        live,
        dead: lost,
        repair: (channels) => {
          const drifted = this.listening.repair(channels);
          if (drifted > 0)
            this.sync().catch((error: unknown) =>
              hooks.error(
                asPgNotifyError(error, ErrorCode.LISTEN_FAILED, 'repairing LISTEN failed'),
              ),
            );
          return drifted;
        },
        error: (error) => hooks.error(error),
      },
      config.timers,
    );
  }

  /**
   * Resolves once the server's LISTEN set includes every change touched before the call.
   * Changes made in the same tick go out as one batch. Before start() it resolves at once
   * (start LISTENs everything); while (re)connecting, once the new connection LISTENs.
   */
  sync(): Promise<void> {
    switch (this.state) {
      case 'idle':
        return Promise.resolve();
      case 'stopped':
        return Promise.reject(listenerClosedError());
      case 'failed':
        return Promise.reject(this.#failure ?? listenerClosedError());
      case 'connecting':
      case 'reconnecting': {
        const waiter = deferred();
        this.#connectWaiters.push(waiter);
        return waiter.promise;
      }
      case 'listening':
        return this.listening.sync();
    }
  }

  /**
   * Runs a query on the listener's own connection, once one is live: waits while idle or
   * (re)connecting, rejects `PGNOTIFY_CLOSED` (or the failure) once the session is over.
   * Notifications keep flowing meanwhile; the query waits its turn on the connection (after the
   * session's own queued statements) and holds it while it runs, so keep it short. For
   * pgnotify's own modules (durable channels), not public.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: readonly unknown[],
  ): Promise<pg.QueryResult<R>> {
    for (;;) {
      const queue = this.#queue;
      if (queue !== undefined && this.state === 'listening')
        return queue.run<R>('data', text, values);
      if (this.state === 'stopped' || this.state === 'failed')
        throw this.#failure ?? listenerClosedError();
      const waiter = deferred();
      this.#connectWaiters.push(waiter);
      await waiter.promise;
    }
  }

  /** One round trip on the listener connection: what the server sent before it has been read. */
  async ping(): Promise<void> {
    const client = this.#client;
    const queue = this.#queue;
    if (client === undefined || queue === undefined) return;
    try {
      await queue.run('control', 'SELECT 1');
      this.#heartbeat.lastActivity = Date.now();
    } catch (error) {
      this.#lost(client, error);
    }
  }

  /** Connects and LISTENs every wanted channel. Rejects on the first failure (no retry). */
  start(): Promise<void> {
    if (this.state === 'stopped') return Promise.reject(listenerClosedError());
    if (this.state === 'failed') return Promise.reject(this.#failure ?? listenerClosedError());
    this.#startPromise ??= this.#firstConnect();
    return this.#startPromise;
  }

  /** Closes the connection and aborts any reconnection. Idempotent. */
  stop(): Promise<void> {
    if (this.#stopPromise !== undefined) return this.#stopPromise;
    this.#setState('stopped');
    this.#heartbeat.stop();
    this.#backoff.cancel();
    this.#rejectWaiters(listenerClosedError());
    if (this.#connecting !== undefined) destroySocket(this.#connecting);
    const client = this.#client;
    this.#client = undefined;
    this.#query = undefined;
    this.#queue = undefined;
    this.pid = undefined;
    this.listening.reset();
    if (client !== undefined) this.#detach(client);
    this.#stopPromise = client === undefined ? Promise.resolve() : closeClient(client);
    return this.#stopPromise;
  }

  async #firstConnect(): Promise<void> {
    this.#setState('connecting');
    let client: pg.Client;
    try {
      client = await this.#connectOnce();
    } catch (cause) {
      this.#startPromise = undefined;
      const error = this.state === 'stopped' ? listenerClosedError() : connectionFailed(cause);
      if (this.state !== 'stopped') {
        this.lastError = error;
        this.#setState('idle');
      }
      this.#rejectWaiters(error);
      throw error;
    }
    if (this.state === 'stopped') {
      this.#detach(client);
      void closeClient(client);
      throw listenerClosedError();
    }
    if (!this.#adopt(client)) throw listenerClosedError();
    this.#hooks.connected(backendPid(client) ?? 0);
    this.#replayEarly(client);
  }

  #replayEarly(client: pg.Client): void {
    const early = this.#attached.get(client)?.early;
    if (early === undefined || early.length === 0) return;
    for (const [channel, payload, pid, receivedAt] of early.splice(0)) {
      if (client !== this.#client) return;
      this.#hooks.notification(channel, payload, pid, receivedAt);
    }
  }

  /** Makes a connected client current: state, heartbeat, waiters, changes made meanwhile. */
  #adopt(client: pg.Client): boolean {
    this.#client = client;
    const queue = new QueryQueue(client);
    this.#queue = queue;
    this.#query = (sql) => queue.run('control', sql);
    this.pid = backendPid(client);
    this.#failure = undefined;
    this.lastError = undefined;
    this.#setState('listening');
    // A 'state' listener may have called stop().
    if ((this.state as ListenerState) !== 'listening') return false;
    this.#heartbeat.start();
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    if (waiters.length === 0 && !this.listening.dirty) return true;
    const synced = this.listening.sync();
    for (const waiter of waiters) synced.then(waiter.resolve, waiter.reject);
    return true;
  }

  #rejectWaiters(error: Error): void {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
    this.listening.abandon(error);
  }

  /** One connection attempt (connect.ts), wired to this session's state. */
  async #connectOnce(): Promise<pg.Client> {
    let attempted: pg.Client | undefined;
    try {
      const { client, detach, early, channels } = await connectOnce({
        connection: this.#config.connection,
        applicationName: this.#config.applicationName,
        connectTimeoutMs: this.#config.connectTimeoutMs,
        created: (client) => {
          if (this.state === 'stopped') throw listenerClosedError();
          attempted = client;
          this.#connecting = client;
        },
        channels: () => {
          const channels = this.#config.wanted();
          this.listening.connecting();
          return channels;
        },
        failed: (channels) => this.listening.connectFailed(channels),
        isCurrent: (client) => client === this.#client,
        activity: (now) => {
          this.#heartbeat.lastActivity = now;
        },
        notification: (channel, payload, pid, receivedAt) =>
          this.#hooks.notification(channel, payload, pid, receivedAt),
        lost: (client, cause) => this.#lost(client, cause),
      });
      this.#attached.set(client, { detach, early });
      this.listening.connected(channels);
      return client;
    } finally {
      if (attempted !== undefined && this.#connecting === attempted) this.#connecting = undefined;
    }
  }

  /** Stops reacting to a client's events (a no-op 'error' listener stays). */
  #detach(client: pg.Client): void {
    this.#attached.get(client)?.detach();
    this.#attached.delete(client);
  }

  /** The current connection is gone: report, then reconnect or fail. */
  #lost(client: pg.Client, cause: unknown): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#query = undefined;
    this.#queue = undefined;
    this.#detach(client);
    destroySocket(client);
    this.#heartbeat.stop();
    const disconnectedAt = Date.now();
    const channels = this.listening.reset();
    this.pid = undefined;
    const error =
      cause instanceof PgNotifyError
        ? cause
        : new PgNotifyError(
            ErrorCode.CONNECTION_LOST,
            `listener connection lost: ${toError(cause).message}`,
            { cause, retryable: true },
          );
    if (this.state === 'stopped') return;
    this.#hooks.disconnected(error);
    // A 'disconnected' listener may have called stop(): stay stopped.
    if ((this.state as ListenerState) === 'stopped') return;
    if (this.#config.reconnect === false) {
      this.#fail(error);
      return;
    }
    void this.#reconnect(error, disconnectedAt, channels);
  }

  async #reconnect(cause: PgNotifyError, disconnectedAt: number, lost: string[]): Promise<void> {
    const policy = this.#config.reconnect;
    if (policy === false || this.state === 'stopped') return;
    this.#setState('reconnecting');
    const client = await reconnect(
      policy,
      cause,
      {
        active: () => this.state === 'reconnecting',
        reconnecting: (attempt, delayMs, lastError) =>
          this.#hooks.reconnecting(attempt, delayMs, lastError),
        connect: () => this.#connectOnce(),
        fail: (error) => this.#fail(error),
      },
      this.#backoff,
    );
    if (client === undefined) return;
    if (this.state !== 'reconnecting') {
      this.#detach(client);
      void closeClient(client);
      return;
    }
    this.reconnects++;
    // Lost, listened to again, and still wanted (not unsubscribed during the attempt).
    const channels = lost.filter((c) => this.listening.isListening(c) && this.#config.isWanted(c));
    if (!this.#adopt(client)) return;
    this.#hooks.connected(backendPid(client) ?? 0);
    const reconnectedAt = Date.now();
    this.#hooks.reconnected({
      kind: 'gap',
      channels,
      disconnectedAt,
      reconnectedAt,
      downtimeMs: reconnectedAt - disconnectedAt,
      cause,
    });
    this.#replayEarly(client);
  }

  #fail(error: PgNotifyError): void {
    this.#failure = error;
    this.lastError = error;
    this.#setState('failed');
    this.#rejectWaiters(error);
    this.#hooks.failed(error);
  }

  #setState(state: ListenerState): void {
    if (this.state === state) return;
    this.state = state;
    this.#hooks.state(state);
  }
}
