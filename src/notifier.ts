/**
 * Sending notifications. `createNotifier()` batches concurrent `notify()` calls into one
 * statement, one batch at a time, so calls arrive in call order at a fraction of the round
 * trips; `notify(client, …)` sends inside the caller's own transaction.
 */
import pg from 'pg';
import { encodePayload } from './codec.js';
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import { defaultOnError, type ErrorHandler, functionOption, intOption } from './options.js';
import { checkChannel, NOTIFY_MANY_SQL, NOTIFY_SQL } from './sql.js';

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
  /** Receives errors no call can reject (an idle pool connection dying). Default: stderr. */
  onError?: ErrorHandler;
}

interface Pending {
  channel: string;
  payload: string;
  resolve(): void;
  reject(error: Error): void;
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
  private readonly onError: ErrorHandler;
  private queue: Pending[] = [];
  private sending = false;
  private scheduled = false;
  private closing: Promise<void> | undefined;
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
    this.onError = functionOption('onError', options.onError, defaultOnError);
    if (options.pool !== undefined) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else {
      const connection = options.connection ?? process.env.DATABASE_URL;
      const config: pg.PoolConfig =
        typeof connection === 'string'
          ? { connectionString: connection }
          : { ...(connection ?? {}) };
      config.max ??= 2;
      config.application_name ??= 'pgnotify-notifier';
      this.pool = new pg.Pool(config);
      this.ownsPool = true;
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
    let text: string;
    try {
      if (this.closing !== undefined)
        throw new PgNotifyError(ErrorCode.CLOSED, 'the notifier is closed');
      text = encodePayload(payload, checkChannel(channel));
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ channel, payload: text, resolve, reject });
      this.schedule();
    });
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
    const texts = payloads.map((payload) => encodePayload(payload, channel));
    await Promise.all(texts.map((text) => this.notify(channel, text)));
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
      while (this.queue.length > 0) {
        const batch = this.takeBatch();
        try {
          if (batch.length === 1) {
            const only = batch[0] as Pending;
            await this.pool.query(NOTIFY_SQL, [only.channel, only.payload]);
          } else {
            await this.pool.query(NOTIFY_MANY_SQL, [
              JSON.stringify(batch.map((p) => [p.channel, p.payload])),
            ]);
          }
          for (const pending of batch) pending.resolve();
        } catch (cause) {
          const error = new PgNotifyError(
            ErrorCode.NOTIFY_FAILED,
            `notify failed${batch.length > 1 ? ` (a batch of ${batch.length})` : ''}: ${toError(cause).message}`,
            { cause, retryable: true },
          );
          for (const pending of batch) pending.reject(error);
        }
      }
    } finally {
      this.sending = false;
      const waiters = this.flushWaiters;
      this.flushWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** The longest prefix of the queue with no repeated (channel, payload), up to maxBatch. */
  private takeBatch(): Pending[] {
    const seen = new Set<string>();
    let count = 0;
    for (const pending of this.queue) {
      if (count === this.maxBatch) break;
      const key = `${pending.channel}\0${pending.payload}`;
      if (seen.has(key)) break;
      seen.add(key);
      count++;
    }
    return this.queue.splice(0, count);
  }

  private report(error: Error): void {
    try {
      this.onError(error);
    } catch {
      // onError must not throw; there is nowhere further to report to.
    }
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
