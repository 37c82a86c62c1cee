/**
 * Durable subscriptions: `listener.subscribe(channels, handler?, { durable })`. A durable
 * subscription is a normal Subscription (handler, `for await`, `poll()`, `next()`,
 * `withGaps()`) fed from the journal by durable-feed.ts instead of by NOTIFY. In the registry
 * it stands on its schema's wake channel only (muted there in poll mode), so its data
 * channels are never LISTENed and plain NOTIFYs on them never reach it; a wake-up it receives
 * goes to its tail (durable-tail.ts: the commit's rows handed over, or one shared read), and an outage gap starts a re-read from where it stands (nothing is
 * lost, so it reports no outage gap).
 *
 * Named consumers acknowledge in order (durable-acks.ts): the stored cursor moves to the newest row
 * whose predecessors were all acknowledged, written at most every 100 ms or 1 000 messages
 * and on unsubscribe/stop.
 */

import { type Validated, validate } from './codec.js';
import { CursorWriter } from './durable-cursor-writer.js';
import type { FeedHost } from './durable-feed.js';
import { DurableSubscription, FAILED } from './durable-subscription.js';
import { Tail } from './durable-tail.js';
import { ErrorCode, PgNotifyError } from './errors.js';
import { loadCursor, resolveCursor, saveCursor, wakeChannel } from './journal.js';
import { parseCursor } from './journal-cursor.js';
import { DEFAULT_SCHEMA } from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { invalid, msOption } from './options.js';
import type { SubscriptionOwner, SubscriptionSetup } from './subscription.js';
import type { ConnectionOption, ExpiredGap, ListenerState, Schema, SubscriberId } from './types.js';

/** Default time between journal reads in poll mode. */
export const DEFAULT_POLL_INTERVAL_MS = 1000;

/** @internal A validated `durable` option. */
export interface DurableConfig {
  readonly schema: string;
  readonly mode: 'listen' | 'poll';
  readonly pollIntervalMs: number;
  readonly consumer: string | undefined;
  /** `after`, or the consumer's `startAt` when it has no stored cursor. */
  readonly start: string;
  readonly wake: string;
}

/** @internal Validates a `durable` option (before anything is recorded). */
export function durableConfig(value: unknown): DurableConfig {
  if (typeof value !== 'object' || value === null) throw invalid('durable', 'an object', value);
  const v = value as Partial<Record<string, unknown>>;
  const schema = v.schema ?? DEFAULT_SCHEMA;
  if (typeof schema !== 'string') throw invalid('durable.schema', 'a string', schema);
  const wake = wakeChannel(schema);
  const mode = v.mode ?? 'listen';
  if (mode !== 'listen' && mode !== 'poll')
    throw invalid('durable.mode', "'listen' or 'poll'", mode);
  const pollIntervalMs = msOption(
    'durable.pollIntervalMs',
    v.pollIntervalMs,
    DEFAULT_POLL_INTERVAL_MS,
    1,
  );
  const hasConsumer = v.consumer !== undefined;
  if (hasConsumer === (v.after !== undefined)) {
    throw invalid('durable', '{ consumer } or { after } (exactly one)', value);
  }
  if (hasConsumer) {
    const consumer = v.consumer;
    if (typeof consumer !== 'string' || consumer === '' || consumer.includes('\0'))
      throw invalid('durable.consumer', 'a non-empty name without NUL', consumer);
    const startAt = v.startAt ?? 'now';
    if (startAt !== 'start' && startAt !== 'now')
      throw invalid('durable.startAt', "'start' or 'now'", startAt);
    return { schema, mode, pollIntervalMs, consumer, start: startAt, wake };
  }
  const after = v.after;
  if (after !== 'start' && after !== 'now') parseCursor(after);
  return { schema, mode, pollIntervalMs, consumer: undefined, start: after as string, wake };
}

/** @internal What the durable side needs from the listener. */
export interface DurableHost {
  query(text: string, values?: readonly unknown[]): Promise<unknown>;
  state(): ListenerState;
  report(error: Error): void;
  emitGap(gap: ExpiredGap): void;
  handlerFailed(error: unknown, id: SubscriberId, channel: string): void;
  readonly connection: ConnectionOption | undefined;
  /** The listener's per-channel schemas: durable payloads are validated like plain ones. */
  readonly schemas: ReadonlyMap<string, Schema>;
  readonly applicationName: string;
  readonly connectTimeoutMs: number;
}

/** @internal The durable side of one listener: its tails and its consumers. */
export class DurableHub {
  readonly #host: DurableHost;
  readonly #feedHost: FeedHost;
  readonly #tails = new Map<string, Tail>();
  readonly #consumers = new Set<string>();
  /** Consumers' last cursor writes, by `schema\0name`, while in progress. */
  readonly #lastWrites = new Map<string, Promise<void>>();
  #writer: CursorWriter | undefined;

  constructor(host: DurableHost) {
    this.#host = host;
    this.#feedHost = {
      // The listener's session runs one statement at a time on its connection, in order.
      queryable: { query: (text, values) => host.query(text, values) } as Queryable,
      ownSession: true,
      closed: () => host.state() === 'stopped' || host.state() === 'failed',
      report: (error) => host.report(error),
      emitGap: (gap) => host.emitGap(gap),
    };
  }

  /** Wake channels of the schemas in use (the listener's outage gap leaves them out). */
  isWake(channel: string): boolean {
    for (const tail of this.#tails.values()) if (wakeChannel(tail.schema) === channel) return true;
    return false;
  }

  /** A durable subscription, not yet recorded in the registry. */
  create<T>(
    owner: SubscriptionOwner,
    setup: SubscriptionSetup<T>,
    channels: readonly string[],
    config: DurableConfig,
    decoder: (raw: string, channel: string) => unknown,
  ): DurableSubscription<T> {
    const name = config.consumer === undefined ? undefined : `${config.schema}\0${config.consumer}`;
    if (name !== undefined && this.#consumers.has(name)) {
      throw new PgNotifyError(
        ErrorCode.INVALID_OPTION,
        `durable consumer ${JSON.stringify(config.consumer)} is already subscribed on this listener`,
        { subscriberId: setup.id },
      );
    }
    const key = `${config.mode}\0${config.schema}\0${config.mode === 'poll' ? config.pollIntervalMs : ''}`;
    let tail = this.#tails.get(key);
    if (tail === undefined) {
      tail = new Tail(
        this.#feedHost,
        config.schema,
        config.mode === 'poll' ? config.pollIntervalMs : undefined,
      );
      this.#tails.set(key, tail);
    }
    if (name !== undefined) this.#consumers.add(name);
    const awaited = this.#host.state() !== 'idle';
    const sub = new DurableSubscription<T>(owner, setup, {
      hub: this,
      feedHost: this.#feedHost,
      tail,
      channels,
      config,
      decoder,
      awaited,
      release: (stored) => {
        if (name === undefined) return;
        this.#consumers.delete(name);
        if (stored === undefined) return;
        // The next subscription of this consumer here starts from what this one stores.
        this.#lastWrites.set(name, stored);
        void stored.finally(() => {
          if (this.#lastWrites.get(name) === stored) this.#lastWrites.delete(name);
        });
      },
    });
    return sub;
  }

  /** Where a subscription starts: the consumer's stored cursor (stored at once when new), or `after`. */
  async startCursor(config: DurableConfig): Promise<string> {
    const q = this.#feedHost.queryable;
    const { schema, consumer } = config;
    if (consumer === undefined) return resolveCursor(q, config.start, { schema });
    await this.#lastWrites.get(`${schema}\0${consumer}`);
    const stored = await loadCursor(q, consumer, { schema });
    if (stored !== undefined) return stored;
    // Stored before anything is read: a restart before the first ack starts here, not later.
    const start = await resolveCursor(q, config.start, { schema });
    await saveCursor(q, consumer, start, { schema });
    return (await loadCursor(q, consumer, { schema })) ?? start;
  }

  /**
   * Stores a consumer's cursor on the listener's cursor writer (durable-cursor-writer.ts): a
   * connection of its own, so a write's WAL flush never holds up the journal reads.
   */
  writeCursor(schema: string, consumer: string, cursor: string): Promise<void> {
    this.#writer ??= new CursorWriter(this.#host);
    return this.#writer.write(schema, consumer, cursor);
  }

  /** The listener stopped and its subscriptions are done: closes the cursor writer. */
  async close(): Promise<void> {
    await this.#writer?.close();
  }

  report(error: Error): void {
    this.#host.report(error);
  }

  handlerFailed(error: unknown, id: SubscriberId, channel: string): void {
    this.#host.handlerFailed(error, id, channel);
  }

  /**
   * A decoded payload through its channel's schema: the value to deliver, or `FAILED` (reported:
   * like a plain notification that fails its schema, the row is passed over); a promise of
   * either when the schema validates asynchronously (the subscription holds its later rows
   * back until it settles, so journal order is kept).
   */
  check(channel: string, payload: unknown): unknown {
    const schema = this.#host.schemas.get(channel);
    if (schema === undefined) return payload;
    const result = validate(schema, payload, channel);
    if (result instanceof Promise) return result.then((r) => this.#settled(r));
    return this.#settled(result);
  }

  #settled(result: Validated): unknown {
    if (result.ok) return result.value;
    this.#host.report(result.error);
    return FAILED;
  }
}

/**
 * @internal `'now'` as a cursor, read on the listener's connection (waits for it to be live):
 * the SSE bridge names a stream's starting point with it.
 */
export function resolveNowOn(
  query: (text: string, values?: readonly unknown[]) => Promise<unknown>,
  schema: string = DEFAULT_SCHEMA,
): Promise<string> {
  return resolveCursor({ query } as Queryable, 'now', { schema });
}

/** @internal Whether a subscription is durable. */
export function isDurable(subscription: unknown): subscription is DurableSubscription<unknown> {
  return subscription instanceof DurableSubscription;
}
