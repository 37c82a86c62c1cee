/**
 * Sending notifications. `createNotifier()` batches concurrent `notify()` calls into one
 * statement, one batch at a time, so calls arrive in call order at a fraction of the round
 * trips; `notify(client, …)` sends inside the caller's own transaction.
 */
import pg from 'pg';
import { encodePayload } from './codec.js';
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import { defaultOnError, type ErrorHandler, functionOption, intOption } from './options.js';
import { checkChannel, NOTIFY_BATCH_SQL, NOTIFY_SQL } from './sql.js';

/** Anything with pg's `query(text, values)`: a `pg.Client`, a `pg.PoolClient`, a `pg.Pool`. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** Options of {@link createNotifier}. Give `connection` or `pool`, not both. */
export interface NotifierOptions {
  /** A URL or `pg.PoolConfig`; the notifier owns a small pool and closes it. Default `DATABASE_URL`. */
  connection?: string | pg.PoolConfig | undefined;
  /** A pool of your own; the notifier borrows it and never ends it. */
  pool?: pg.Pool;
  /** Most notifications per statement. Default 1 000. */
  maxBatch?: number;
  /**
   * With `connection`: the longest wait, in ms, for a connection (pg's
   * `connectionTimeoutMillis` of the notifier's pool, unless your config sets it) and then for
   * the server to answer one statement. Past it the batch's callers reject with
   * `PGNOTIFY_NOTIFY_FAILED` instead of waiting on a dead or stalled connection forever; a
   * statement that timed out (or lost its connection) may still have been committed, and the
   * message says so. Default 30 000. With `pool`, your pool's own settings apply.
   */
  timeoutMs?: number;
  /** Receives errors no call can reject (an idle pool connection dying). Default: stderr. */
  onError?: ErrorHandler;
}

/**
 * Calls that go out as one statement. It is open (calls join it) until the send loop takes
 * it. Every call of a batch shares its outcome: the batch settles one promise, from which
 * each call's own is derived, and its JSON parameters are built as calls join, not at send
 * time.
 */
class Batch {
  /**
   * The payloads in call order, as the elements of a JSON array: JSON strings, or when `json`,
   * the JSON text the client encoded (see NOTIFY_BATCH_SQL).
   */
  readonly payloads: string[] = [];
  /** The channels as JSON strings, once the batch holds more than one channel. */
  channels: string[] | undefined;
  /**
   * Payload (as its element, which is one-to-one with the text) → channel(s) already in this
   * batch: PostgreSQL folds repeated pairs into one.
   */
  private readonly seen = new Map<string, string | Set<string>>();
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor(
    readonly channel: string,
    private readonly channelJson: string,
    /** Whether the elements are JSON values as encoded, not JSON strings. */
    readonly json: boolean,
    readonly firstPayload: string,
    payloadJson: string,
  ) {
    this.payloads.push(payloadJson);
    this.seen.set(payloadJson, channel);
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Callers get promises derived from this one; it is never the one left unhandled.
    this.done.catch(() => undefined);
  }

  /** Adds a call, or returns false when the batch already holds this (channel, payload). */
  add(channel: string, channelJson: string, payloadJson: string): boolean {
    const seen = this.seen.get(payloadJson);
    if (seen === undefined) this.seen.set(payloadJson, channel);
    else if (typeof seen === 'string') {
      if (seen === channel) return false;
      this.seen.set(payloadJson, new Set([seen, channel]));
    } else {
      if (seen.has(channel)) return false;
      seen.add(channel);
    }
    if (this.channels === undefined && channel !== this.channel) {
      this.channels = new Array<string>(this.payloads.length).fill(this.channelJson);
    }
    this.channels?.push(channelJson);
    this.payloads.push(payloadJson);
    return true;
  }

  /** The statement and parameters that send this batch. */
  query(): [text: string, values: string[]] {
    const payloads = this.payloads;
    if (payloads.length === 1) return [NOTIFY_SQL, [this.channel, this.firstPayload]];
    const sql = NOTIFY_BATCH_SQL[this.json ? 'json' : 'text'];
    const array = `[${payloads.join(',')}]`;
    if (this.channels === undefined) return [sql.one, [this.channel, array]];
    return [sql.many, [`[${this.channels.join(',')}]`, array]];
  }
}

/**
 * Sends notifications through a pool. Concurrent calls are batched into one statement and
 * batches run one at a time, so notifications arrive in call order. A batch never holds the
 * same (channel, payload) twice — PostgreSQL would fold them into one — so every call
 * delivers exactly one notification, as a lone NOTIFY would.
 */
export class Notifier {
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly maxBatch: number;
  /** With the notifier's own pool: the longest wait for one statement's answer, else 0. */
  private readonly timeoutMs: number;
  private readonly onError: ErrorHandler;
  /** Batches in call order; the first may be in flight, the last may be open. */
  private queue: Batch[] = [];
  /** The batch being sent: closed to new calls. */
  private inflight: Batch | undefined;
  private sending = false;
  private scheduled = false;
  private closing: Promise<void> | undefined;
  /** The last channel checked (undefined: none yet, so any string, even '', is checked). */
  private lastChannel: string | undefined;
  private lastChannelJson = '';
  private readonly poolError = (error: Error): void => {
    this.report(
      new PgNotifyError(
        ErrorCode.CONNECTION_LOST,
        `notifier pool connection error: ${error.message}`,
        { cause: error },
      ),
    );
  };

  /** @internal Use {@link createNotifier}. */
  constructor(options: NotifierOptions = {}) {
    if (options.connection !== undefined && options.pool !== undefined) {
      throw new PgNotifyError(ErrorCode.INVALID_OPTION, 'give connection or pool, not both');
    }
    this.maxBatch = intOption('maxBatch', options.maxBatch, 1000, 1);
    const timeoutMs = intOption('timeoutMs', options.timeoutMs, 30_000, 1);
    this.onError = functionOption('onError', options.onError, defaultOnError);
    if (options.pool !== undefined) {
      this.pool = options.pool;
      this.ownsPool = false;
      this.timeoutMs = 0;
    } else {
      const connection = options.connection ?? process.env.DATABASE_URL;
      const config: pg.PoolConfig =
        typeof connection === 'string'
          ? { connectionString: connection }
          : { ...(connection ?? {}) };
      config.max ??= 2;
      config.application_name ??= 'pgnotify-notifier';
      config.connectionTimeoutMillis ??= timeoutMs;
      this.pool = new pg.Pool(config);
      this.ownsPool = true;
      this.timeoutMs = timeoutMs;
    }
    // An idle pooled connection that dies emits 'error' on the pool: unhandled, it would crash.
    this.pool.on('error', this.poolError);
  }

  /**
   * Sends one notification. Strings go as they are, anything else as JSON. Resolves once the
   * server has committed it; rejects alone when this call's channel or payload is refused.
   * @example
   * await notifier.notify('orders', { id: 1 })
   */
  notify(channel: string, payload?: unknown): Promise<void> {
    let batch: Batch;
    try {
      batch = this.enqueue(channel, payload);
    } catch (error) {
      return Promise.reject(error);
    }
    // A promise of its own per call (an ignored failure is reported as unhandled, per call),
    // derived from the batch's one.
    return batch.done.then();
  }

  /** Validates and encodes one call and adds it to the open batch. Throws when refused. */
  private enqueue(channel: string, payload: unknown): Batch {
    if (this.closing !== undefined)
      throw new PgNotifyError(ErrorCode.CLOSED, 'the notifier is closed');
    if (channel !== this.lastChannel) {
      this.lastChannel = checkChannel(channel);
      this.lastChannelJson = JSON.stringify(channel);
    }
    const text = encodePayload(payload, channel);
    // A value the client encoded is JSON already: it goes into the batch as it is.
    const json = typeof payload !== 'string' && payload !== undefined;
    const element = json ? text : JSON.stringify(text);
    const open = this.queue.length > 0 ? this.queue[this.queue.length - 1] : undefined;
    if (
      open !== undefined &&
      open !== this.inflight &&
      open.json === json &&
      open.payloads.length < this.maxBatch &&
      open.add(channel, this.lastChannelJson, element)
    ) {
      return open;
    }
    const batch = new Batch(channel, this.lastChannelJson, json, text, element);
    this.queue.push(batch);
    this.schedule();
    return batch;
  }

  /**
   * Sends the stop notification on `stopChannel`: a listener or subscription created with that
   * `stopChannel` ends (PyGreSQL's `notify(stop=True)`).
   */
  notifyStop(stopChannel: string): Promise<void> {
    return this.notify(stopChannel, '');
  }

  /** Sends many payloads on one channel, in order. Refuses them all if any is invalid. */
  async notifyMany(channel: string, payloads: readonly unknown[]): Promise<void> {
    if (!Array.isArray(payloads)) {
      throw new PgNotifyError(
        ErrorCode.INVALID_PAYLOAD,
        'notifyMany: expected an array of payloads',
      );
    }
    checkChannel(channel);
    // Validate every payload before any is queued.
    const texts = payloads.map((payload) => encodePayload(payload, channel));
    const batches = new Set<Batch>();
    for (const text of texts) batches.add(this.enqueue(channel, text));
    await Promise.all([...batches].map((batch) => batch.done));
  }

  /** Waits for queued notifications, then closes the pool if the notifier created it. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.queue.length > 0 || this.sending) await this.flushed();
      if (this.ownsPool) await this.pool.end();
      else this.pool.off('error', this.poolError);
    })();
    return this.closing;
  }

  /** `await using notifier = createNotifier(…)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private flushWaiters: (() => void)[] = [];

  private flushed(): Promise<void> {
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.sending || this.scheduled) return;
    this.scheduled = true;
    // Calls made in the same tick join one batch.
    queueMicrotask(() => {
      this.scheduled = false;
      void this.send();
    });
  }

  private async send(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (let batch = this.queue[0]; batch !== undefined; batch = this.queue[0]) {
        this.inflight = batch;
        const count = batch.payloads.length;
        try {
          await this.run(...batch.query());
          batch.resolve();
        } catch (error) {
          // Sent, then no answer (a timeout, a lost connection): the outcome is unknown. A
          // server error or a failure to connect means nothing was delivered.
          const unknown = error instanceof OutcomeUnknown;
          const cause = unknown ? error.reason : error;
          const hint = unknown ? '; the notifications may or may not have been sent' : '';
          batch.reject(
            new PgNotifyError(
              ErrorCode.NOTIFY_FAILED,
              `notify failed${count > 1 ? ` (a batch of ${count})` : ''}: ${toError(cause).message}${hint}`,
              { cause, retryable: true },
            ),
          );
        } finally {
          this.inflight = undefined;
          this.queue.shift();
        }
      }
    } finally {
      this.sending = false;
      const waiters = this.flushWaiters;
      this.flushWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * Runs one statement on a pooled connection, as `pool.query` does (its callback forms, which
   * cost measurably less CPU per batch than the promise ones), and with a timeout stops
   * waiting after it and has the pool discard that connection. (pg's own `query_timeout` does
   * the same but cost ~1.3 µs more CPU per notification in the publish bench.)
   */
  private run(text: string, values: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pool.connect((connectError, client, release) => {
        if (connectError || client === undefined) {
          reject(connectError ?? new Error('no connection'));
          return;
        }
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        const settle = (error: Error | undefined): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          client.off('error', settle);
          // A connection whose statement failed or timed out is discarded, never reused; it
          // may still report errors while it closes.
          if (error !== undefined) client.on('error', noop);
          release(error);
          if (error === undefined) resolve();
          else reject(error instanceof pg.DatabaseError ? error : new OutcomeUnknown(error));
        };
        // The pool listens for errors only on idle connections; pg emits a lost connection as
        // 'error' on the client as well as failing the statement. Unheard, that event would
        // crash the process.
        client.on('error', settle);
        if (this.timeoutMs > 0) {
          const timeoutMs = this.timeoutMs;
          timer = setTimeout(
            () => settle(new Error(`no answer within timeoutMs (${timeoutMs} ms)`)),
            timeoutMs,
          );
        }
        client.query(text, values, (queryError: Error | null | undefined) =>
          settle(queryError ?? undefined),
        );
      });
    });
  }

  private report(error: Error): void {
    try {
      this.onError(error);
    } catch {
      // onError must not throw; there is nowhere further to report to.
    }
  }
}

const noop = (): void => undefined;

/** A statement that was sent and then got no answer: whether it committed is unknown. */
class OutcomeUnknown extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

/**
 * Creates a notifier on its own small pool (`connection`) or on yours (`pool`).
 * @example
 * const notifier = createNotifier({ connection: process.env.DATABASE_URL })
 * await notifier.notify('orders', { id: 1 })
 * await notifier.close()
 */
export function createNotifier(options: NotifierOptions = {}): Notifier {
  return new Notifier(options);
}

/**
 * Sends one notification through `queryable`, inside whatever transaction it is in: the
 * notification is delivered when that transaction commits and never if it rolls back.
 * @example
 * await client.query('BEGIN')
 * await client.query('INSERT INTO orders …')
 * await notify(client, 'orders', { id })
 * await client.query('COMMIT')
 */
export async function notify(
  queryable: Queryable,
  channel: string,
  payload?: unknown,
): Promise<void> {
  const text = encodePayload(payload, checkChannel(channel));
  await queryable.query(NOTIFY_SQL, [channel, text]);
}
