/**
 * The option shapes users pass in: `createListener`'s, `subscribe`'s, `once`'s and `next`'s,
 * with their defaults and units. Public through `types.ts` (which re-exports every one) and
 * the package root; `options.ts` validates them.
 */
import type pg from 'pg';
import type { Decode, Schema } from './codec.js';
import type { PgNotifyError } from './errors.js';
import type { Gap, Notification, SubscriberId } from './types.js';

// ---- consuming -----------------------------------------------------------------------------

/** Options of one `next()` wait. */
export interface WaitOptions {
  /** Resolve `undefined` after this long with nothing (an idle tick). Default: wait forever. */
  timeoutMs?: number;
  /** Abort the wait: it rejects with `PGNOTIFY_ABORTED`. */
  signal?: AbortSignal;
}

/**
 * Where a durable subscription starts, and who keeps its cursor:
 * - `{ consumer: 'billing' }`: a named consumer. Its cursor is stored in `<schema>.consumers`,
 *   loaded at start and advanced once each message is acknowledged (at-least-once): with a
 *   handler, when the handler settles successfully; without one, when the consumer asks for
 *   the next item (`for await` body completed, next `poll()`/`next()` call). A consumer with no
 *   stored cursor starts at `startAt` (default `'now'`) and stores that position at once.
 * - `{ after }`: the caller keeps the cursor (`n.cursor`); nothing is stored. `'start'` replays
 *   everything retained, `'now'` only what commits after the subscription starts, a cursor
 *   what follows it.
 */
export type DurableStart =
  | { readonly consumer: string; readonly startAt?: 'start' | 'now' }
  | { readonly after: string | 'start' | 'now' };

/** Options of a durable subscription (`subscribe(…, { durable })`). */
export type DurableOptions = DurableStart & {
  /** The journal's schema (see `installSchema`). Default `'pgnotify'`. */
  readonly schema?: string;
  /**
   * `'listen'` (default): woken by the schema's wake channel (one LISTEN for all durable
   * traffic). `'poll'`: no LISTEN at all, the journal is read every `pollIntervalMs` — for
   * PgBouncer in transaction mode and other poolers where LISTEN never delivers.
   */
  readonly mode?: 'listen' | 'poll';
  /** Poll mode: time between journal reads, in ms. Default 1 000. */
  readonly pollIntervalMs?: number;
};

/** Options of `listener.subscribe()`. Unset fields inherit the listener's. */
export interface SubscribeOptions {
  /**
   * Makes the subscription durable: it reads the journal written by durable notifies
   * (`notify(…, { durable: true })`), replays from its cursor on start and after every
   * reconnect, then continues live, in journal order (commit order), never dropping a row to
   * overflow (reading pauses while the buffer is full). Every notification carries `cursor`.
   * Default: a plain subscription. See docs/durable.md.
   * @example
   * await listener.subscribe('orders', handle, { durable: { consumer: 'billing' } })
   */
  durable?: DurableOptions;
  /** Subscriber id (string or number), unique per listener. Default: generated. */
  id?: SubscriberId;
  /** Decoder for this subscriber. Default: the listener's `decode`. */
  decode?: Decode;
  /** Handler calls in flight for this subscriber (see the listener option). */
  concurrency?: number;
  /** This subscriber's buffer. */
  buffer?: BufferOptions;
  /** Called with each gap on this subscriber's channels, after they are listened to again. */
  onGap?: (gap: Gap) => unknown;
  /** Unsubscribes when aborted. */
  signal?: AbortSignal;
  /**
   * Call `onIdle` whenever nothing arrived for this long: a tick for keep-alives or periodic
   * work in a quiet subscription. Default: never.
   */
  idleTimeoutMs?: number;
  /** See `idleTimeoutMs`. */
  onIdle?: (info: { idleMs: number }) => unknown;
  /**
   * A channel whose notification ends this subscription (a conventional name is
   * `'stop_' + channel`). The stop notification itself is not delivered, whatever its
   * payload. Send one with `notifier.notifyStop(channel)`.
   */
  stopChannel?: string;
}

/** Options of `listener.once()`. */
export interface OnceOptions<T> {
  /** Reject with `PGNOTIFY_TIMEOUT` after this long. Default: wait forever. */
  timeoutMs?: number;
  /** Only a notification for which this returns true resolves the wait. */
  filter?: (notification: Notification<T>) => boolean;
  /** Reject with `PGNOTIFY_ABORTED` when aborted. */
  signal?: AbortSignal;
}

// ---- the listener --------------------------------------------------------------------------

/**
 * Where the listener connects:
 * - a connection string (`postgres://user:pass@host:5432/db`),
 * - a `pg.ClientConfig`,
 * - a factory returning a new, unconnected `pg.Client` (or a promise of one). It is called
 *   again for every reconnect attempt, so it can rotate credentials or hosts.
 *
 * Default: `DATABASE_URL` when set, else `pg`'s own `PG*` environment variables.
 */
export type ConnectionOption = string | pg.ClientConfig | (() => pg.Client | Promise<pg.Client>);

/** How a dead connection is found. */
export interface HeartbeatOptions {
  /** Quiet time (no traffic from the server) before a heartbeat query is sent. Default 10 000 ms. */
  intervalMs?: number;
  /** How long the heartbeat may take before the connection is declared dead. Default 5 000 ms. */
  timeoutMs?: number;
  /**
   * Warn through `onError` (`PGNOTIFY_QUEUE_USAGE_HIGH`) when the server's notification queue
   * is fuller than this fraction (0–1). Default 0.5.
   */
  queueWarnRatio?: number;
}

/** How a lost connection is replaced. */
export interface ReconnectOptions {
  /** Delay before the second attempt (the first is immediate); doubles per attempt. Default 100 ms. */
  minDelayMs?: number;
  /** Longest delay between attempts. Default 10 000 ms. */
  maxDelayMs?: number;
  /** Attempts before the listener gives up and enters the `failed` state. Default unlimited. */
  maxAttempts?: number;
}

/** What a subscription does with notifications its consumer has not taken yet. */
export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'error';

/** A subscription's bounded buffer. */
export interface BufferOptions {
  /** Most notifications held per subscription. Default 10 000. */
  max?: number;
  /**
   * When full: `'drop-oldest'` (default) keeps the newest, `'drop-newest'` keeps the oldest,
   * `'error'` ends the subscription with `PGNOTIFY_BUFFER_OVERFLOW`. Every loss is reported.
   * A gap report in a `withGaps()` loop's buffer is never dropped.
   */
  overflow?: OverflowPolicy;
}

/**
 * Where errors that no call can reject go: handler failures, decode failures, lost connections.
 * `E` is what it receives: the notifier's handler always gets a `PgNotifyError`.
 */
export type ErrorHandler<E extends Error = Error> = (error: E) => void;

/** A map of channel name to payload type, for typed listeners: `createListener<{ orders: Order }>()`. */
export type ChannelMap = Record<string, unknown>;

/** Options of `createListener`. Every field is optional. */
export interface ListenerOptions<Channels extends ChannelMap = ChannelMap> {
  /** Where to connect. Default `DATABASE_URL`, else `PG*` environment variables. */
  connection?: ConnectionOption | undefined;
  /** How payload text is decoded. Default `'auto'`. */
  decode?: Decode;
  /** Per-channel Standard Schemas; a payload that fails is reported, never delivered. */
  schemas?: { [K in keyof Channels]?: Schema<Channels[K]> };
  /**
   * Handler invocations in flight per subscription: 0 runs the handler inline as the
   * notification is read, 1 (default) one at a time in arrival order, N at most N at once.
   */
  concurrency?: number;
  /** Skip notifications sent from the listener's own backend. Default false. */
  ignoreOwn?: boolean;
  /** Dead-connection detection, or `false` to turn the heartbeat off. */
  heartbeat?: HeartbeatOptions | false;
  /** Reconnection with backoff and jitter, or `false` to stop at the first loss. */
  reconnect?: ReconnectOptions | false;
  /** Default buffer of each subscription. */
  buffer?: BufferOptions;
  /** How long one connection attempt may take. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** How long `stop()` waits for running handlers before abandoning them. Default 5 000 ms. */
  stopTimeoutMs?: number;
  /** `application_name` of the listener session when pgnotify builds the client. Default `'pgnotify'`. */
  applicationName?: string;
  /**
   * Receives every error no call can reject, always a `PgNotifyError` (switch on `error.code`).
   * Default: one block on stderr (code, channel, subscriber, message; a handler's stack).
   */
  onError?: ErrorHandler<PgNotifyError>;
  /**
   * A channel whose notification stops the whole listener, whatever its payload; send one
   * from anywhere with `notifier.notifyStop(channel)`. Default: none.
   */
  stopChannel?: string;
}

/** Options of {@link createNotifier}. Give `connection` or `pool`, not both. */
export interface NotifierOptions {
  /**
   * Where the notifier's own small pool connects: a `postgres://` URL or a `pg.PoolConfig`
   * (its `max` defaults to 2, `application_name` to `'pgnotify-notifier'`). Default
   * `DATABASE_URL`, else pg's `PG*` variables; with none of them `createNotifier()` throws
   * `PGNOTIFY_INVALID_OPTION`, as it does for a URL that does not parse. The notifier closes
   * this pool in `close()`.
   */
  connection?: string | pg.PoolConfig | undefined;
  /** A pool of your own; the notifier borrows it and never ends it. */
  pool?: pg.Pool;
  /** Most notifications per statement. Default 1 000. */
  maxBatch?: number;
  /**
   * The schema of the durable journal that `{ durable: true }` calls write to (installed with
   * `pgnotify setup` or `installSchema()`). Default `'pgnotify'`.
   */
  schema?: string;
  /**
   * With `connection`: the longest wait, in ms, for a connection (pg's
   * `connectionTimeoutMillis` of the notifier's pool, unless your config sets it) and then for
   * the server to answer one statement. Past it the batch's callers reject with
   * `PGNOTIFY_NOTIFY_FAILED` instead of waiting on a dead or stalled connection forever; a
   * statement that timed out (or lost its connection) may still have been committed, and the
   * message says so. The calls queued behind it then reject at once, unsent, rather than each
   * wait its own timeoutMs against the same dead server. `close()` also waits at most this long
   * for a socket to close before it destroys it. Default 30 000. With `pool`, your pool's own
   * settings apply.
   */
  timeoutMs?: number;
  /**
   * Receives errors no call can reject (an idle pool connection dying), always as a
   * {@link PgNotifyError}. Must not throw. Default: one line on stderr.
   */
  onError?: ErrorHandler<PgNotifyError>;
}
