/**
 * One listener connection's life: connect, keep the server's LISTEN set equal to the wanted
 * set (coalesced batches, one round trip each), find a dead connection (heartbeat with a
 * timeout, TCP keepalive), replace it (backoff with jitter, abortable), re-LISTEN every wanted
 * channel in one round trip, and only then report the gap. Knows channels, not subscribers.
 */
import pg from 'pg';
import { ErrorCode, listenerClosedError, PgNotifyError, sqlStateOf, toError } from './errors.js';
import type { ConnectionOption, HeartbeatOptions, ReconnectOptions } from './options.js';
import { HEARTBEAT_SQL, listenSql, SESSION_SETUP_SQL, unlistenSql } from './sql.js';

/**
 * The listener's lifecycle:
 * `idle` (created) → `connecting` (start) → `listening` ⇄ `reconnecting` → `stopped`,
 * or `failed` when reconnecting gave up or met a non-retryable error (bad password,
 * missing database or role).
 */
export type ListenerState =
  | 'idle'
  | 'connecting'
  | 'listening'
  | 'reconnecting'
  | 'failed'
  | 'stopped';

/**
 * An outage report. Sent once the replacement connection LISTENs again: from then on nothing
 * is missed, and whatever was sent on `channels` between `disconnectedAt` and
 * `reconnectedAt` was lost. Resync from your source of truth now; handlers must tolerate
 * seeing an event both in the resync and as a notification.
 */
export interface Gap {
  /** Tells a gap from a notification in `subscription.withGaps()` loops. */
  readonly kind: 'gap';
  /** Channels that were listened to when the connection was lost and are listened to again. */
  readonly channels: readonly string[];
  /** When the loss was noticed (ms since the epoch). */
  readonly disconnectedAt: number;
  /** When LISTEN was confirmed on the new connection (ms since the epoch). */
  readonly reconnectedAt: number;
  /** `reconnectedAt - disconnectedAt`. */
  readonly downtimeMs: number;
  /** Why the connection was lost. */
  readonly cause: Error;
}

/** What the session tells its owner. Hooks must not throw (the listener guards them). */
export interface SessionHooks {
  notification(channel: string, payload: string, pid: number, receivedAt: number): void;
  state(state: ListenerState): void;
  connected(pid: number): void;
  disconnected(cause: PgNotifyError): void;
  reconnecting(attempt: number, delayMs: number, cause: Error): void;
  reconnected(gap: Gap): void;
  failed(error: PgNotifyError): void;
  error(error: Error): void;
}

/** The options the session uses. */
export interface SessionConfig {
  connection: ConnectionOption | undefined;
  connectTimeoutMs: number;
  heartbeat: Required<HeartbeatOptions> | false;
  reconnect: Required<ReconnectOptions> | false;
  applicationName: string;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody awaits must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

const noop = (): void => undefined;

/**
 * Date.now() read once per turn of the event loop: pg emits every notification of one socket
 * read synchronously, so they share one reading (it is when the chunk was read).
 */
let clockValue = 0;
let clockFresh = false;
const expireClock = (): void => {
  clockFresh = false;
};
function clock(): number {
  if (!clockFresh) {
    clockValue = Date.now();
    clockFresh = true;
    queueMicrotask(expireClock);
  }
  return clockValue;
}

/** Per-client event handlers, kept so they can be detached when the client is dropped. */
interface Attached {
  /** Notifications read before the client was adopted; replayed after the connect/gap report. */
  early: [channel: string, payload: string, pid: number, receivedAt: number][];
  notification(message: pg.Notification): void;
  error(error: Error): void;
  end(): void;
}

export class Session {
  state: ListenerState = 'idle';
  /** Backend process id of the current connection. */
  pid: number | undefined;
  /** Completed reconnections. */
  reconnects = 0;
  private client: pg.Client | undefined;
  /** The client of a connection attempt in progress, so stop() can abort it. */
  private connecting: pg.Client | undefined;
  private readonly attached = new WeakMap<pg.Client, Attached>();
  private readonly wanted = new Set<string>();
  private confirmed = new Set<string>();
  private readonly dirty = new Set<string>();
  private pending: Deferred | undefined;
  private inflight: Deferred | undefined;
  private connectWaiters: Deferred[] = [];
  private cancelBackoff: (() => void) | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastActivity = 0;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private failure: PgNotifyError | undefined;

  constructor(
    private readonly config: SessionConfig,
    private readonly hooks: SessionHooks,
  ) {}

  /** Marks a channel as wanted or not; {@link sync} sends the difference. */
  want(channel: string, wanted: boolean): void {
    if (wanted === this.wanted.has(channel)) return;
    if (wanted) this.wanted.add(channel);
    else this.wanted.delete(channel);
    this.dirty.add(channel);
  }

  /** Whether the server confirmed LISTEN on `channel` on the current connection. */
  isListening(channel: string): boolean {
    return this.confirmed.has(channel);
  }

  /** How many channels the server confirmed. */
  get listeningCount(): number {
    return this.confirmed.size;
  }

  /**
   * Resolves once the server's LISTEN set includes every change made before the call.
   * Changes made in the same tick go out as one batch. Before start() it resolves at once
   * (start LISTENs everything); while reconnecting, once the new connection LISTENs.
   */
  sync(): Promise<void> {
    switch (this.state) {
      case 'idle':
        return Promise.resolve();
      case 'stopped':
        return Promise.reject(listenerClosedError());
      case 'failed':
        return Promise.reject(this.failure ?? listenerClosedError());
      case 'connecting':
      case 'reconnecting':
        return this.nextConnection();
      case 'listening':
        break;
    }
    if (this.dirty.size === 0)
      return this.pending?.promise ?? this.inflight?.promise ?? Promise.resolve();
    if (this.pending === undefined) {
      this.pending = deferred();
      if (this.inflight === undefined) queueMicrotask(() => void this.flush());
    }
    return this.pending.promise;
  }

  /** One round trip on the listener connection: what the server sent before it has been read. */
  async ping(): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    try {
      await client.query('SELECT 1');
      this.lastActivity = Date.now();
    } catch (error) {
      this.lost(client, error);
    }
  }

  /** Connects and LISTENs every wanted channel. Rejects on the first failure (no retry). */
  start(): Promise<void> {
    if (this.state === 'stopped') return Promise.reject(listenerClosedError());
    if (this.state === 'failed') return Promise.reject(this.failure ?? listenerClosedError());
    this.startPromise ??= this.firstConnect();
    return this.startPromise;
  }

  /** Closes the connection and aborts any reconnection. Idempotent. */
  stop(): Promise<void> {
    if (this.stopPromise !== undefined) return this.stopPromise;
    this.setState('stopped');
    this.clearHeartbeat();
    this.cancelBackoff?.();
    const closed = listenerClosedError();
    this.rejectWaiters(closed);
    if (this.connecting !== undefined) destroySocket(this.connecting);
    const client = this.client;
    this.client = undefined;
    this.pid = undefined;
    this.confirmed = new Set();
    if (client !== undefined) this.detach(client);
    this.stopPromise = client === undefined ? Promise.resolve() : closeClient(client);
    return this.stopPromise;
  }

  private async firstConnect(): Promise<void> {
    this.setState('connecting');
    let client: pg.Client;
    try {
      client = await this.connectOnce();
    } catch (cause) {
      this.startPromise = undefined;
      const error = this.state === 'stopped' ? listenerClosedError() : connectionFailed(cause);
      if (this.state !== 'stopped') this.setState('idle');
      this.rejectWaiters(error);
      throw error;
    }
    if (this.state === 'stopped') {
      this.detach(client);
      void closeClient(client);
      throw listenerClosedError();
    }
    if (!this.adopt(client)) throw listenerClosedError();
    this.hooks.connected(backendPid(client) ?? 0);
    this.replayEarly(client);
  }

  private replayEarly(client: pg.Client): void {
    const early = this.attached.get(client)?.early;
    if (early === undefined || early.length === 0) return;
    const held = early.splice(0);
    for (const [channel, payload, pid, receivedAt] of held) {
      if (client !== this.client) return;
      this.hooks.notification(channel, payload, pid, receivedAt);
    }
  }

  /** Makes a connected client current: state, heartbeat, waiters, changes made meanwhile. */
  private adopt(client: pg.Client): boolean {
    this.client = client;
    this.pid = backendPid(client);
    this.failure = undefined;
    this.lastActivity = Date.now();
    this.setState('listening');
    // A 'state' listener may have called stop().
    if ((this.state as ListenerState) !== 'listening') return false;
    this.armHeartbeat();
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    if (waiters.length === 0 && this.dirty.size === 0) return true;
    const synced = this.sync();
    for (const waiter of waiters) synced.then(waiter.resolve, waiter.reject);
    return true;
  }

  private nextConnection(): Promise<void> {
    const waiter = deferred();
    this.connectWaiters.push(waiter);
    return waiter.promise;
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }

  /** Sends one LISTEN/UNLISTEN batch for the channels changed since the last one. */
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = undefined;
    if (batch === undefined) return;
    const client = this.client;
    if (this.state === 'stopped' || this.state === 'failed') {
      batch.reject(this.state === 'failed' && this.failure ? this.failure : listenerClosedError());
      return;
    }
    if (client === undefined || this.state !== 'listening') {
      this.connectWaiters.push(batch);
      return;
    }
    const listen: string[] = [];
    const unlisten: string[] = [];
    for (const channel of this.dirty) {
      const wanted = this.wanted.has(channel);
      if (wanted && !this.confirmed.has(channel)) listen.push(channel);
      else if (!wanted && this.confirmed.has(channel)) unlisten.push(channel);
    }
    this.dirty.clear();
    if (listen.length === 0 && unlisten.length === 0) {
      batch.resolve();
      return;
    }
    this.inflight = batch;
    try {
      await client.query(unlistenSql(unlisten) + listenSql(listen));
      this.lastActivity = Date.now();
      if (client === this.client) {
        for (const channel of unlisten) this.confirmed.delete(channel);
        for (const channel of listen) this.confirmed.add(channel);
      }
      batch.resolve();
    } catch (cause) {
      if (client === this.client && !isConnectionError(cause)) {
        // The server refused the batch but the connection lives: try these channels again
        // with the next batch, and tell the callers.
        for (const channel of [...listen, ...unlisten]) this.dirty.add(channel);
        batch.reject(
          new PgNotifyError(
            ErrorCode.CONNECTION_FAILED,
            `LISTEN/UNLISTEN failed: ${toError(cause).message}`,
            {
              cause,
              retryable: true,
            },
          ),
        );
      } else {
        this.lost(client, cause);
        // The replacement connection LISTENs every wanted channel; these callers wait for it.
        const state = this.state as ListenerState;
        if (state === 'reconnecting') this.connectWaiters.push(batch);
        else
          batch.reject(state === 'failed' && this.failure ? this.failure : listenerClosedError());
      }
    } finally {
      this.inflight = undefined;
      if (this.pending !== undefined) void this.flush();
    }
  }

  /** A notification read on `client` (bound to it in connectOnce). */
  private onClientNotification(client: pg.Client, message: pg.Notification): void {
    const now = clock();
    this.lastActivity = now;
    if (client !== this.client) {
      // LISTEN is live but the connection is not adopted yet: hold these until the
      // connected/gap reports went out, so nothing overtakes the gap.
      this.attached
        .get(client)
        ?.early.push([message.channel, message.payload ?? '', message.processId, now]);
      return;
    }
    this.hooks.notification(message.channel, message.payload ?? '', message.processId, now);
  }

  /** Creates, connects and prepares one client: session settings and LISTEN, one round trip. */
  private async connectOnce(): Promise<pg.Client> {
    const client = await this.makeClient();
    if (this.state === 'stopped') throw listenerClosedError();
    this.connecting = client;
    const attached: Attached = {
      early: [],
      // A bound method, not a closure: its optimized code is shared by every connection and
      // listener, so a new one never recompiles the delivery path.
      notification: this.onClientNotification.bind(this, client),
      error: (error) => this.lost(client, error),
      end: () => this.lost(client, new Error('the server closed the connection')),
    };
    this.attached.set(client, attached);
    client.on('notification', attached.notification);
    client.on('error', attached.error);
    client.on('end', attached.end);
    const channels = [...this.wanted];
    this.dirty.clear();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        (async () => {
          await client.connect();
          await client.query(SESSION_SETUP_SQL + listenSql(channels));
        })(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            destroySocket(client);
            reject(
              new PgNotifyError(
                ErrorCode.CONNECTION_FAILED,
                `connecting took longer than connectTimeoutMs (${this.config.connectTimeoutMs} ms)`,
                { retryable: true },
              ),
            );
          }, this.config.connectTimeoutMs);
        }),
      ]);
    } catch (error) {
      // Channels wanted meanwhile were snapshotted; mark them so the next attempt includes them.
      for (const channel of channels) this.dirty.add(channel);
      this.detach(client);
      void closeClient(client);
      throw error;
    } finally {
      clearTimeout(timer);
      if (this.connecting === client) this.connecting = undefined;
    }
    this.confirmed = new Set(channels);
    return client;
  }

  private async makeClient(): Promise<pg.Client> {
    const connection = this.config.connection;
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
    const config: pg.ClientConfig =
      typeof connection === 'string'
        ? { connectionString: connection }
        : connection !== undefined
          ? { ...connection }
          : process.env.DATABASE_URL
            ? { connectionString: process.env.DATABASE_URL }
            : {};
    config.keepAlive ??= true;
    config.application_name ??= this.config.applicationName;
    return new pg.Client(config);
  }

  /** Stops reacting to a client's events; keeps a no-op 'error' listener. */
  private detach(client: pg.Client): void {
    const attached = this.attached.get(client);
    if (attached !== undefined) {
      client.off('notification', attached.notification);
      client.off('error', attached.error);
      client.off('end', attached.end);
      this.attached.delete(client);
    }
    // A dropped client may still emit 'error'; with no listener that would crash the process.
    client.on('error', noop);
  }

  /** The current connection is gone: report, then reconnect or fail. */
  private lost(client: pg.Client, cause: unknown): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.detach(client);
    destroySocket(client);
    this.clearHeartbeat();
    const disconnectedAt = Date.now();
    const channels = [...this.confirmed];
    this.confirmed = new Set();
    this.pid = undefined;
    const error =
      cause instanceof PgNotifyError
        ? cause
        : new PgNotifyError(
            ErrorCode.CONNECTION_LOST,
            `listener connection lost: ${toError(cause).message}`,
            {
              cause,
              retryable: true,
            },
          );
    if (this.state === 'stopped') return;
    this.hooks.disconnected(error);
    // A 'disconnected' listener may have called stop(): stay stopped.
    if ((this.state as ListenerState) === 'stopped') return;
    if (this.config.reconnect === false) {
      this.fail(error);
      return;
    }
    void this.reconnect(error, disconnectedAt, channels);
  }

  private async reconnect(
    cause: PgNotifyError,
    disconnectedAt: number,
    lost: readonly string[],
  ): Promise<void> {
    const policy = this.config.reconnect;
    if (policy === false || this.state === 'stopped') return;
    this.setState('reconnecting');
    let lastError: Error = cause;
    let client: pg.Client | undefined;
    for (let attempt = 1; client === undefined; attempt++) {
      const delayMs =
        attempt === 1 ? 0 : backoffDelay(attempt, policy.minDelayMs, policy.maxDelayMs);
      // A 'state' or 'reconnecting' listener may have called stop().
      if (this.state !== 'reconnecting') return;
      this.hooks.reconnecting(attempt, delayMs, lastError);
      if ((this.state as ListenerState) !== 'reconnecting') return;
      if (delayMs > 0 && !(await this.sleep(delayMs))) return;
      if (this.state !== 'reconnecting') return;
      try {
        client = await this.connectOnce();
      } catch (error) {
        lastError = toError(error);
        if (this.state !== 'reconnecting') return;
        const retryable = isRetryable(error);
        if (!retryable || attempt >= policy.maxAttempts) {
          const failure = connectionFailed(error);
          this.fail(
            retryable
              ? new PgNotifyError(
                  ErrorCode.CONNECTION_FAILED,
                  `gave up reconnecting after ${attempt} attempts: ${failure.message}`,
                  { cause: error, retryable: true },
                )
              : failure,
          );
          return;
        }
      }
    }
    if (this.state !== 'reconnecting') {
      this.detach(client);
      void closeClient(client);
      return;
    }
    this.reconnects++;
    const listening = this.confirmed;
    if (!this.adopt(client)) return;
    this.hooks.connected(backendPid(client) ?? 0);
    const reconnectedAt = Date.now();
    this.hooks.reconnected({
      kind: 'gap',
      // Lost, listened to again, and still wanted (not unsubscribed during the attempt).
      channels: lost.filter((channel) => listening.has(channel) && this.wanted.has(channel)),
      disconnectedAt,
      reconnectedAt,
      downtimeMs: reconnectedAt - disconnectedAt,
      cause,
    });
    this.replayEarly(client);
  }

  /** Waits for a backoff delay; false when stop() cut it short. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.cancelBackoff = undefined;
        resolve(true);
      }, ms);
      this.cancelBackoff = () => {
        clearTimeout(timer);
        this.cancelBackoff = undefined;
        resolve(false);
      };
    });
  }

  private fail(error: PgNotifyError): void {
    this.failure = error;
    this.setState('failed');
    this.rejectWaiters(error);
    this.hooks.failed(error);
  }

  private setState(state: ListenerState): void {
    if (this.state === state) return;
    this.state = state;
    this.hooks.state(state);
  }

  private armHeartbeat(): void {
    const heartbeat = this.config.heartbeat;
    if (heartbeat === false) return;
    this.clearHeartbeat();
    this.heartbeatTimer = setTimeout(this.beat, heartbeat.intervalMs);
  }

  private clearHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private readonly beat = (): void => {
    const heartbeat = this.config.heartbeat;
    const client = this.client;
    this.heartbeatTimer = undefined;
    if (heartbeat === false || client === undefined || this.state !== 'listening') return;
    const quietMs = Date.now() - this.lastActivity;
    if (quietMs < heartbeat.intervalMs) {
      this.heartbeatTimer = setTimeout(this.beat, heartbeat.intervalMs - quietMs);
      return;
    }
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      this.lost(
        client,
        new PgNotifyError(
          ErrorCode.HEARTBEAT_TIMEOUT,
          `heartbeat got no answer within ${heartbeat.timeoutMs} ms; the connection is dead`,
          { retryable: true },
        ),
      );
    }, heartbeat.timeoutMs);
    client.query<{ channels: string[]; usage: number }>(HEARTBEAT_SQL).then(
      (result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (client !== this.client) return;
        this.lastActivity = Date.now();
        const row = result.rows[0];
        if (row !== undefined)
          this.checkServerState(row.channels, Number(row.usage), heartbeat.queueWarnRatio);
        this.armHeartbeat();
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.lost(client, error);
      },
    );
  };

  /** Repairs a LISTEN set that drifted from what we confirmed, and warns of a filling queue. */
  private checkServerState(
    serverChannels: readonly string[],
    usage: number,
    warnRatio: number,
  ): void {
    if (this.inflight === undefined && this.pending === undefined) {
      const onServer = new Set(serverChannels);
      const drifted: string[] = [];
      for (const channel of this.confirmed) {
        if (!onServer.has(channel) && !this.dirty.has(channel)) drifted.push(channel);
      }
      for (const channel of onServer) {
        if (!this.confirmed.has(channel) && !this.dirty.has(channel)) drifted.push(channel);
      }
      if (drifted.length > 0) {
        this.confirmed = onServer;
        for (const channel of drifted) this.dirty.add(channel);
        this.hooks.error(
          new PgNotifyError(
            ErrorCode.LISTEN_MISMATCH,
            `the server's LISTEN set differed from the wanted one on ${drifted.length} channel(s); repairing`,
          ),
        );
        this.sync().catch((error: unknown) => this.hooks.error(toError(error)));
      }
    }
    if (usage > warnRatio) {
      this.hooks.error(
        new PgNotifyError(
          ErrorCode.QUEUE_USAGE_HIGH,
          `the server's notification queue is ${(usage * 100).toFixed(1)}% full; a stalled listener` +
            ' somewhere in the cluster is holding it, and notifying commits fail when it is full',
        ),
      );
    }
  }
}

/** Exponential backoff with equal jitter: attempt 2 waits ~minDelay, then doubling up to maxDelay. */
export function backoffDelay(
  attempt: number,
  minDelayMs: number,
  maxDelayMs: number,
  random = Math.random,
): number {
  // The exponent is capped so 0 * 2 ** n never becomes 0 * Infinity = NaN.
  const base = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(64, Math.max(0, attempt - 2)));
  return Math.round(base / 2 + (random() * base) / 2);
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
function isConnectionError(error: unknown): boolean {
  const state = sqlStateOf(error);
  return state === undefined || state.startsWith('08') || state.startsWith('57P');
}

function connectionFailed(cause: unknown): PgNotifyError {
  if (cause instanceof PgNotifyError && cause.code !== ErrorCode.CONNECTION_LOST) return cause;
  const retryable = isRetryable(cause);
  return new PgNotifyError(
    ErrorCode.CONNECTION_FAILED,
    `could not connect the listener: ${toError(cause).message}`,
    { cause, retryable },
  );
}

/** The backend pid pg read from BackendKeyData at connect (not in pg's type declarations). */
function backendPid(client: pg.Client): number | undefined {
  return (client as unknown as { processID?: number | null }).processID ?? undefined;
}

function destroySocket(client: pg.Client): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
  stream?.destroy();
}

/** Ends a client politely, or destroys its socket when that takes longer than a second. */
async function closeClient(client: pg.Client): Promise<void> {
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
