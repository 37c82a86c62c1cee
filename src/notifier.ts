/**
 * Sending notifications. `createNotifier()` batches concurrent `notify()` calls into one
 * statement, one batch at a time, so calls arrive in call order at a fraction of the round
 * trips; `notify(client, …)` sends inside the caller's own transaction.
 */
import pg from 'pg';
import { Batch, batchError, OutcomeUnknown } from './batch.js';
import { encodePayload } from './codec.js';
import { resolveConnection } from './connection.js';
import { ErrorCode, PgNotifyError } from './errors.js';
import { DEFAULT_SCHEMA, journalNames } from './journal-sql.js';
import { durableSchema, encodeDurablePayload } from './journal-write.js';
import type { PayloadArg, SendOptions } from './notify.js';
import { defaultOnError, functionOption, intOption, msOption, optionsArgument } from './options.js';
import { checkChannel } from './sql.js';
import type { ChannelMap, ErrorHandler } from './types.js';
import type { NotifierOptions } from './types-options.js';

// The standalone notify() lives in notify.ts; it is exported from here too, beside the notifier.
export { type NotifyOptions, notify, type Queryable, type SendOptions } from './notify.js';

/**
 * Sends notifications through a pool. Concurrent calls are batched into one statement and
 * batches run one at a time, so notifications arrive in call order. A batch never holds the
 * same (channel, payload) twice — PostgreSQL would fold them into one — so every call
 * delivers exactly one notification, as a lone NOTIFY would.
 *
 * Typed by a channel map (`createNotifier<{ orders: Order }>()`), `notify` and `notifyMany`
 * accept only the map's channels, each with its payload type; untyped, any channel name and
 * any payload compile.
 */
export class Notifier<Channels extends ChannelMap = ChannelMap> {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #maxBatch: number;
  readonly #schema: string;
  /** The longest wait for one statement's answer (0 with a pool of yours), and for a socket to close. */
  readonly #timeoutMs: number;
  readonly #onError: ErrorHandler<PgNotifyError>;
  /** Batches in call order; the first may be in flight, the last may be open. */
  #queue: Batch[] = [];
  /** The batch being sent: closed to new calls. */
  #inflight: Batch | undefined;
  #sending = false;
  #scheduled = false;
  #closing: Promise<void> | undefined;
  /** Connections of the notifier's own pool whose sockets have not closed yet, each with its close. */
  readonly #sockets = new Map<pg.Client, Promise<void>>();
  readonly #poolError = (error: Error): void => {
    this.#report(
      new PgNotifyError(
        ErrorCode.CONNECTION_LOST,
        `notifier pool connection error: ${error.message}`,
        { cause: error },
      ),
    );
  };

  /** @internal Use {@link createNotifier}. */
  constructor(options: NotifierOptions = {}) {
    optionsArgument('createNotifier', options, 'pass a pg.Pool as { pool }');
    if (options.connection !== undefined && options.pool !== undefined) {
      throw new PgNotifyError(ErrorCode.INVALID_OPTION, 'give connection or pool, not both');
    }
    this.#maxBatch = intOption('maxBatch', options.maxBatch, 1000, 1);
    this.#schema = journalNames(options.schema ?? DEFAULT_SCHEMA).schema;
    const timeoutMs = msOption('timeoutMs', options.timeoutMs, 30_000, 1);
    this.#onError = functionOption('onError', options.onError, defaultOnError);
    if (options.pool !== undefined) {
      this.#pool = options.pool;
      this.#ownsPool = false;
      this.#timeoutMs = 0;
    } else {
      const config = resolveConnection<pg.PoolConfig>(options.connection);
      config.max ??= 2;
      config.application_name ??= 'pgnotify-notifier';
      config.connectionTimeoutMillis ??= timeoutMs;
      this.#pool = new pg.Pool(config);
      this.#ownsPool = true;
      this.#timeoutMs = timeoutMs;
      // pg's pool.end() resolves once it has asked its connections to end, not once their
      // sockets have closed: close() waits for each one's 'end'.
      this.#pool.on('connect', (client) => {
        this.#sockets.set(
          client,
          new Promise((resolve) => {
            client.once('end', () => {
              this.#sockets.delete(client);
              resolve();
            });
          }),
        );
      });
    }
    // An idle pooled connection that dies emits 'error' on the pool: unhandled, it would crash.
    this.#pool.on('error', this.#poolError);
  }

  /**
   * Sends one notification. Strings go as they are, `undefined` (or no payload) as the empty
   * payload, anything else as JSON (see the refusals of `encodePayload`). Resolves once the
   * server has committed it. Rejects alone, before anything is sent, when this call's channel
   * (`PGNOTIFY_INVALID_CHANNEL`) or payload (`PGNOTIFY_INVALID_PAYLOAD`,
   * `PGNOTIFY_PAYLOAD_TOO_LARGE`) is refused, or after `close()` (`PGNOTIFY_CLOSED`); with its
   * whole batch, `PGNOTIFY_NOTIFY_FAILED` (`retryable`), when the statement fails.
   *
   * With `{ durable: true }` the message is also a row of the durable journal (schema option
   * `schema`): payloads up to 64 MiB, every call one row (never folded), batched like plain
   * calls but never in the same statement as them, so call order holds across both. A journal
   * that is not installed rejects with `PGNOTIFY_SCHEMA_MISSING` (run `pgnotify setup`).
   * @example
   * await notifier.notify('orders', { id: 1 })
   * await notifier.notify('orders', { id: 2 }, { durable: true })
   */
  notify<C extends keyof Channels & string>(
    channel: C,
    ...payload: PayloadArg<Channels[C], SendOptions>
  ): Promise<void>;
  notify(channel: string, payload?: unknown, options?: SendOptions): Promise<void> {
    return this.#enqueue(channel, payload, options);
  }

  #enqueue(channel: string, payload: unknown, options?: SendOptions): Promise<void> {
    let batch: Batch;
    try {
      if (this.#closing !== undefined) throw closedError();
      // Every call checks its channel (~30 ns). A last-channel cache once skipped it, and
      // skipped it wrongly for a first call whose channel matched the cache's initial value;
      // the publish bench cannot tell the two apart.
      checkChannel(channel);
      const schema = durableSchema(options, this.#schema);
      const text =
        schema === undefined
          ? encodePayload(payload, channel)
          : encodeDurablePayload(payload, channel);
      batch = this.#add(channel, text, isJson(payload), schema);
    } catch (error) {
      return Promise.reject(error);
    }
    // A promise of its own per call (an ignored failure is reported as unhandled, per call),
    // derived from the batch's one.
    return batch.done.then();
  }

  /** Adds a validated call to the open batch, or to a new one. */
  #add(channel: string, text: string, json: boolean, schema?: string): Batch {
    // A value the client encoded is JSON already: it goes into the batch as it is.
    const element = json ? text : JSON.stringify(text);
    const open = this.#queue.length > 0 ? this.#queue[this.#queue.length - 1] : undefined;
    if (
      open !== undefined &&
      open !== this.#inflight &&
      open.json === json &&
      open.schema === schema &&
      open.payloads.length < this.#maxBatch &&
      open.add(channel, element)
    ) {
      return open;
    }
    const batch = new Batch(channel, json, text, element, schema);
    this.#queue.push(batch);
    this.#schedule();
    return batch;
  }

  /**
   * Sends the empty payload on `stopChannel`: a listener or subscription created with that
   * `stopChannel` ends when it arrives. The channel need not be in the channel map.
   */
  notifyStop(stopChannel: string): Promise<void> {
    return this.#enqueue(stopChannel, '');
  }

  /**
   * Sends many payloads on one channel, in order, encoded as `notify` does. Checks all of them
   * first: one refused payload rejects the call and sends none. Resolves once all are
   * committed; they may travel in several statements, so a failure may come after some were.
   * `{ durable: true }`: one journal row per payload, as `notify` with it.
   * @example
   * await notifier.notifyMany('orders', [{ id: 1 }, { id: 2 }])
   */
  async notifyMany<C extends keyof Channels & string>(
    channel: C,
    payloads: readonly Channels[C][],
    options?: SendOptions,
  ): Promise<void> {
    if (this.#closing !== undefined) throw closedError();
    if (!Array.isArray(payloads)) {
      throw new PgNotifyError(
        ErrorCode.INVALID_PAYLOAD,
        `notifyMany: expected an array of payloads, got ${typeof payloads}`,
      );
    }
    checkChannel(channel);
    const schema = durableSchema(options, this.#schema);
    const encode = schema === undefined ? encodePayload : encodeDurablePayload;
    const texts = payloads.map((payload) => encode(payload, channel));
    const batches = new Set<Batch>();
    for (let i = 0; i < texts.length; i++) {
      batches.add(this.#add(channel, texts[i] as string, isJson(payloads[i]), schema));
    }
    await Promise.all([...batches].map((batch) => batch.done));
  }

  /**
   * Closes the notifier: new calls reject with `PGNOTIFY_CLOSED`, queued ones are sent, and
   * then, if the notifier created its pool, the pool is ended. Resolves once every socket of
   * that pool has closed (one that has not within `timeoutMs` is destroyed). A pool of yours
   * stays open. Safe to call more than once: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#queue.length > 0 || this.#sending) await this.#flushed();
      if (this.#ownsPool) await this.#endPool();
      else this.#pool.off('error', this.#poolError);
    })();
    return this.#closing;
  }

  /** `await using notifier = createNotifier(…)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #endPool(): Promise<void> {
    await this.#pool.end();
    const closed = Promise.all(this.#sockets.values());
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<true>((resolve) => {
      timer = setTimeout(resolve, this.#timeoutMs, true);
    });
    // A peer that never answers our goodbye (a stalled network) would hold a socket open.
    if ((await Promise.race([closed, late])) === true) {
      for (const client of this.#sockets.keys()) client.connection.stream.destroy();
    }
    clearTimeout(timer);
    await closed;
  }

  #flushWaiters: (() => void)[] = [];

  #flushed(): Promise<void> {
    return new Promise((resolve) => this.#flushWaiters.push(resolve));
  }

  #schedule(): void {
    if (this.#sending || this.#scheduled) return;
    this.#scheduled = true;
    // Calls made in the same tick join one batch.
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#send();
    });
  }

  async #send(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      for (let batch = this.#queue[0]; batch !== undefined; batch = this.#queue[0]) {
        this.#inflight = batch;
        try {
          await this.#run(...batch.query());
          batch.resolve();
        } catch (error) {
          batch.reject(batchError(batch, error));
          const cause = error instanceof OutcomeUnknown ? error.reason : error;
          if (unreachable.has(cause as Error)) this.#failQueued(cause as Error);
        } finally {
          this.#inflight = undefined;
          this.#queue.shift();
        }
      }
    } finally {
      this.#sending = false;
      const waiters = this.#flushWaiters;
      this.#flushWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * The database could not be reached, or did not answer, within timeoutMs: the batches queued
   * behind the one that found out are rejected unsent (each would wait timeoutMs of its own,
   * and a caller all those before it), instead of waiting their turn against a dead server.
   */
  #failQueued(cause: Error): void {
    for (const batch of this.#queue.splice(1)) {
      batch.reject(
        batchError(
          batch,
          new Error(`not sent: the database did not answer the batch before it (${cause.message})`),
        ),
      );
    }
  }

  /**
   * Runs one statement on a pooled connection, as `pool.query` does (its callback forms, which
   * cost measurably less CPU per batch than the promise ones), and with a timeout stops
   * waiting after it and has the pool discard that connection. (pg's own `query_timeout` does
   * the same but cost ~1.3 µs more CPU per notification in the publish bench.)
   */
  #run(text: string, values: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pool.connect((connectError, client, release) => {
        if (connectError || client === undefined) {
          const error = connectError ?? new Error('no connection');
          unreachable.add(error);
          reject(error);
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
        if (this.#timeoutMs > 0) {
          const timeoutMs = this.#timeoutMs;
          timer = setTimeout(() => {
            const error = new Error(`no answer within timeoutMs (${timeoutMs} ms)`);
            unreachable.add(error);
            settle(error);
          }, timeoutMs);
        }
        client.query(text, values, (queryError: Error | null | undefined) =>
          settle(queryError ?? undefined),
        );
      });
    });
  }

  #report(error: PgNotifyError): void {
    try {
      this.#onError(error);
    } catch {
      // onError must not throw; there is nowhere further to report to.
    }
  }
}

const noop = (): void => undefined;

/** Errors meaning the database could not be reached or did not answer in time (see #failQueued). */
const unreachable = new WeakSet<Error>();

function isJson(payload: unknown): boolean {
  return typeof payload !== 'string' && payload !== undefined;
}

function closedError(): PgNotifyError {
  return new PgNotifyError(ErrorCode.CLOSED, 'the notifier is closed');
}

/**
 * Creates a notifier on its own small pool (`connection`, default `DATABASE_URL`) or on yours
 * (`pool`). Throws `PGNOTIFY_INVALID_OPTION` synchronously for a wrong option, a connection
 * URL that does not parse, or no connection configured at all. Give a channel map to type
 * `notify` and `notifyMany`.
 * @example
 * type Channels = { orders: { id: number }; audit: string }
 * const notifier = createNotifier<Channels>({ connection: process.env.DATABASE_URL })
 * await notifier.notify('orders', { id: 1 }) // 'order' or { id: '1' } would not compile
 * await notifier.close()
 */
export function createNotifier<Channels extends ChannelMap = ChannelMap>(
  options: NotifierOptions = {},
): Notifier<Channels> {
  return new Notifier<Channels>(options);
}
