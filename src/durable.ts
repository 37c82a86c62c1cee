/**
 * Durable subscriptions: `listener.subscribe(channels, handler?, { durable })`. A durable
 * subscription is a normal Subscription (handler, `for await`, `poll()`, `next()`,
 * `withGaps()`) fed from the journal by durable-feed.ts instead of by NOTIFY. In the registry
 * it stands on its schema's wake channel only (muted there in poll mode), so its data
 * channels are never LISTENed and plain NOTIFYs on them never reach it; a wake-up it receives
 * starts the shared read, and an outage gap starts a re-read from where it stands (nothing is
 * lost, so it reports no outage gap).
 *
 * Named consumers acknowledge in order (acks.ts): the stored cursor moves to the newest row
 * whose predecessors were all acknowledged, written at most every 100 ms or 1 000 messages
 * and on unsubscribe/stop.
 */
import { ConsumerAcks } from './durable-acks.js';
import { Feed, type FeedHost, retryDelay, Tail } from './durable-feed.js';
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import { type JournalRow, loadCursor, resolveCursor, saveCursor, wakeChannel } from './journal.js';
import { parseCursor } from './journal-cursor.js';
import { DEFAULT_SCHEMA } from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { intOption, invalid } from './options.js';
import { closeClient, makeClient } from './pg-client.js';
import { Subscription, type SubscriptionOwner, type SubscriptionSetup } from './subscription.js';
import type {
  ConnectionOption,
  ExpiredGap,
  Gap,
  Handler,
  ListenerState,
  Notification,
  SubscriberId,
  WaitOptions,
} from './types.js';

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
  const pollIntervalMs = intOption(
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
  readonly applicationName: string;
  readonly connectTimeoutMs: number;
}

/** @internal The durable side of one listener: its tails and its consumers. */
export class DurableHub {
  readonly #host: DurableHost;
  readonly #feedHost: FeedHost;
  readonly #tails = new Map<string, Tail>();
  readonly #consumers = new Set<string>();

  constructor(host: DurableHost) {
    this.#host = host;
    this.#feedHost = {
      queryable: { query: (text, values) => host.query(text, values) } as Queryable,
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
      release: () => {
        if (name !== undefined) this.#consumers.delete(name);
      },
    });
    return sub;
  }

  /** Where a subscription starts: the consumer's stored cursor (stored at once when new), or `after`. */
  async startCursor(config: DurableConfig): Promise<string> {
    const q = this.#feedHost.queryable;
    const { schema, consumer } = config;
    if (consumer === undefined) return resolveCursor(q, config.start, { schema });
    const stored = await loadCursor(q, consumer, { schema });
    if (stored !== undefined) return stored;
    // Stored before anything is read: a restart before the first ack starts here, not later.
    const start = await resolveCursor(q, config.start, { schema });
    await saveCursor(q, consumer, start, { schema });
    return (await loadCursor(q, consumer, { schema })) ?? start;
  }

  /**
   * Stores a consumer's cursor: on the listener connection while it runs, else (a flush on
   * stop, after the connection closed) on a connection of its own.
   */
  async writeCursor(schema: string, consumer: string, cursor: string): Promise<void> {
    if (!this.#feedHost.closed()) {
      try {
        await saveCursor(this.#feedHost.queryable, consumer, cursor, { schema });
        return;
      } catch (error) {
        if ((error as PgNotifyError).code !== ErrorCode.CLOSED) throw error;
      }
    }
    const client = await makeClient(this.#host.connection, this.#host.applicationName);
    client.on('error', () => undefined);
    try {
      await withTimeout(client.connect(), this.#host.connectTimeoutMs);
      await saveCursor(client, consumer, cursor, { schema });
    } finally {
      await closeClient(client);
    }
  }

  report(error: Error): void {
    this.#host.report(error);
  }

  handlerFailed(error: unknown, id: SubscriberId, channel: string): void {
    this.#host.handlerFailed(error, id, channel);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new PgNotifyError(ErrorCode.CONNECTION_FAILED, `connecting took longer than ${ms} ms`, {
              retryable: true,
            }),
          ),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

interface DurableParts {
  hub: DurableHub;
  feedHost: FeedHost;
  tail: Tail;
  channels: readonly string[];
  config: DurableConfig;
  decoder: (raw: string, channel: string) => unknown;
  /** Whether `subscribe()` awaits the start (the listener was running): it then rejects instead. */
  awaited: boolean;
  release(): void;
}

/**
 * A durable subscription: a Subscription fed from the journal. Every notification carries
 * `cursor`. With a named consumer, a notification is acknowledged (the stored cursor may move
 * past it) when the handler settles successfully; a handler that throws is retried with backoff
 * (100 ms doubling to 30 s, each failure reported as `PGNOTIFY_HANDLER_FAILED`) until it
 * succeeds or the subscription ends, and nothing after it is handled meanwhile (order kept).
 * Without a handler, a notification is acknowledged when the consumer asks for the next item:
 * the next `poll()`/`next()` call, or the `for await` loop's next turn (its body completed);
 * `break` or a throw out of the loop does not acknowledge it.
 */
export class DurableSubscription<T = unknown> extends Subscription<T> {
  readonly #parts: DurableParts;
  readonly #feed: Feed;
  readonly #acks: ConsumerAcks | undefined;
  /** The last item a consumer took without a handler, acknowledged when it asks again. */
  #taken: Notification<T> | undefined;
  readonly #ready: Promise<void>;
  readonly #retryHold: { cancel?: (() => void) | undefined } = {};

  /** @internal Made by `listener.subscribe(…, { durable })`. */
  constructor(owner: SubscriptionOwner, setup: SubscriptionSetup<T>, parts: DurableParts) {
    const { config } = parts;
    const user = setup.handler;
    let self: DurableSubscription<T> | undefined;
    const handler: Handler<T> | undefined =
      user === undefined
        ? undefined
        : config.consumer === undefined
          ? (n) => {
              (self as DurableSubscription<T>).#feed.roomFreed();
              return user(n);
            }
          : (n) => (self as DurableSubscription<T>).#handle(user, n);
    super(owner, { ...setup, handler });
    self = this;
    this.#parts = parts;
    const max = setup.max;
    this.#feed = new Feed(
      parts.feedHost,
      parts.tail,
      {
        get ended() {
          return (self as DurableSubscription<T>).ended;
        },
        capacity: max,
        room: () => max - this.buffered,
        offer: (row, cache) => this.#offer(row, cache),
        offerGap: (gap) => super.gap(gap),
        failed: (error) => {
          if (parts.awaited) return;
          parts.hub.report(error);
          this.end(error);
          void this.unsubscribe().catch(() => undefined);
        },
      },
      parts.channels,
    );
    if (config.consumer !== undefined) {
      const consumer = config.consumer;
      this.#acks = new ConsumerAcks(
        (cursor) => parts.hub.writeCursor(config.schema, consumer, cursor),
        (error) => parts.hub.report(toError(error)),
        () => this.#feed.position,
      );
    }
    this.#ready = new Promise<void>((resolve, reject) => {
      void this.#feed.start(
        () => parts.hub.startCursor(config),
        (error) => (error === undefined ? resolve() : reject(error)),
      );
    });
    // Nobody awaits it before start(): a failure goes to onError through `failed`.
    this.#ready.catch(() => undefined);
  }

  /** @internal Resolves once the start position is known (subscribe awaits it on a running listener). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** @internal The data channels (the registry holds the wake channel). */
  get durableChannels(): readonly string[] {
    return [...this.#feed.channels];
  }

  #offer(row: JournalRow, cache: Map<unknown, unknown>): void {
    const decoder = this.decoder ?? this.#parts.decoder;
    let byRow = cache.get(decoder) as Map<JournalRow, Notification<T> | null> | undefined;
    if (byRow === undefined) {
      byRow = new Map();
      cache.set(decoder, byRow);
    }
    let n = byRow.get(row);
    if (n === undefined) {
      try {
        const payload = decoder(row.payload, row.channel) as T;
        n = {
          channel: row.channel,
          payload,
          raw: row.payload,
          pid: row.pid,
          receivedAt: Date.now(),
          cursor: row.cursor,
        };
      } catch (cause) {
        n = null;
        this.#parts.hub.report(
          new PgNotifyError(
            ErrorCode.DECODE_FAILED,
            `durable payload at ${row.cursor} on ${JSON.stringify(row.channel)} could not be decoded: ${toError(cause).message}`,
            { cause, channel: row.channel },
          ),
        );
      }
      byRow.set(row, n);
    }
    if (n === null) return; // never deliverable: passed over, like a plain decode failure
    this.#acks?.delivered(row.cursor);
    super.deliver(n);
  }

  async #handle(user: Handler<T>, n: Notification<T>): Promise<void> {
    this.#feed.roomFreed();
    for (let attempt = 0; ; attempt++) {
      try {
        await user(n);
        this.#acks?.ack(n.cursor as string);
        return;
      } catch (error) {
        this.#parts.hub.handlerFailed(error, this.id, n.channel);
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, retryDelay(attempt));
          this.#retryHold.cancel = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#retryHold.cancel = undefined;
        if (this.ended) return;
      }
    }
  }

  #took(n: Notification<T> | Gap | undefined): void {
    const previous = this.#taken;
    this.#taken = undefined;
    if (previous !== undefined) this.#acks?.ack(previous.cursor as string);
    if (n !== undefined && n.kind === undefined) this.#taken = n;
    this.#feed.roomFreed();
  }

  /** The next buffered notification; asking acknowledges the one taken before (named consumers). */
  override poll(): Notification<T> | undefined {
    const n = super.poll();
    this.#took(n);
    return n;
  }

  /** The next notification; asking acknowledges the one taken before (named consumers). */
  override async next(options: WaitOptions = {}): Promise<Notification<T> | undefined> {
    this.#took(undefined);
    const n = await super.next(options);
    if (n !== undefined) this.#took(n);
    return n;
  }

  /** Iterates in journal order; a turn of the loop acknowledges the item before (named consumers). */
  override [Symbol.asyncIterator](): AsyncGenerator<Notification<T>, void, undefined> {
    return this.#acking(super[Symbol.asyncIterator]()) as AsyncGenerator<
      Notification<T>,
      void,
      undefined
    >;
  }

  /** As the iterator, with expired gaps in their place. */
  override withGaps(): AsyncGenerator<Notification<T> | Gap, void, undefined> {
    return this.#acking(super.withGaps());
  }

  async *#acking<I extends Notification<T> | Gap>(
    inner: AsyncGenerator<I, void, undefined>,
  ): AsyncGenerator<I, void, undefined> {
    try {
      for (;;) {
        this.#feed.roomFreed();
        const r = await inner.next();
        if (r.done === true) return;
        yield r.value;
        // The loop asked for the next item: its body completed with this one.
        if (r.value.kind === undefined) this.#acks?.ack(r.value.cursor as string);
      }
    } finally {
      await inner.return(undefined);
    }
  }

  /** @internal Wake-ups (the wake channel) start the shared read; the stop channel ends it. */
  override deliver(notification: Notification<T>): void {
    if (notification.channel === this.#parts.config.wake) {
      if (!this.ended) this.#feed.wake(notification.raw);
    } else super.deliver(notification);
  }

  /** @internal Always reads outage gaps: each means "re-read", never a loss. */
  override get readsGaps(): boolean {
    return !this.ended;
  }

  /** @internal An outage: wake-ups may have been lost, so the journal is read again. */
  override gap(gap: Gap): void {
    if (gap.kind === 'gap') {
      if (!this.ended) this.#feed.wake(undefined);
    } else super.gap(gap);
  }

  /** @internal Ends reading, stops a handler retry, flushes the consumer's cursor. */
  override end(error?: Error, discard = false): void {
    const wasEnded = this.ended;
    super.end(error, discard);
    if (wasEnded) return;
    this.#feed.stop();
    this.#retryHold.cancel?.();
    this.#parts.release();
    void this.#acks?.flush();
  }

  /** @internal Resolves once the handler has worked through the buffer and, once ended, the cursor is stored. */
  override async drained(): Promise<void> {
    await super.drained();
    if (this.ended) await this.#acks?.flush();
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
