/**
 * A durable subscription: a Subscription fed from the journal (durable-feed.ts) instead of by
 * NOTIFY, with a named consumer's acknowledgements (durable-acks.ts). Made by DurableHub
 * (durable.ts) for `listener.subscribe(…, { durable })`.
 */

import { clock } from './connect.js';
import type { DurableConfig, DurableHub } from './durable.js';
import { ConsumerAcks, MAX_UNSTORED } from './durable-acks.js';
import { Feed, type FeedHost, retryDelay } from './durable-feed.js';
import type { Tail } from './durable-tail.js';
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import type { JournalRow } from './journal-read.js';
import { isThenable } from './runner.js';
import { Subscription, type SubscriptionOwner, type SubscriptionSetup } from './subscription.js';
import type { Gap, Handler, Notification, WaitOptions } from './types.js';

/** @internal A payload that failed its channel's schema (passed over, reported). */
export const FAILED = Symbol('failed');

/** A row as handed over: its notification, null (passed over), or either once validated. */
type Offered<T> = Notification<T> | null | Promise<Notification<T> | null>;

/** @internal What a durable subscription is made of. */
export interface DurableParts {
  hub: DurableHub;
  feedHost: FeedHost;
  tail: Tail;
  channels: readonly string[];
  config: DurableConfig;
  decoder: (raw: string, channel: string) => unknown;
  /** Whether `subscribe()` awaits the start (the listener was running): it then rejects instead. */
  awaited: boolean;
  /** The subscription ended; `stored` settles once a named consumer's last cursor write is done. */
  release(stored: Promise<void> | undefined): void;
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
  /** The backoff waits of handler retries under way (several with concurrency > 1). */
  readonly #retryWaits = new Set<() => void>();
  /** Handler calls failed and not yet retried successfully (their rows are unacknowledged). */
  #failing = 0;
  /** The last step held back behind an asynchronous validation, and how many are held. */
  #held: Promise<void> | undefined;
  #pending = 0;
  #stored: Promise<void> | undefined;

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
    const named = config.consumer !== undefined;
    // What the buffer can still hold; a named consumer's hand-over is also bounded by MAX_UNSTORED.
    const readRoom = (): number => max - this.buffered - this.#pending;
    this.#feed = new Feed(
      parts.feedHost,
      parts.tail,
      {
        get ended() {
          return (self as DurableSubscription<T>).ended;
        },
        capacity: named ? Math.min(max, MAX_UNSTORED) : max,
        room: () =>
          named ? Math.min(readRoom(), MAX_UNSTORED - (this.#acks?.unstored ?? 0)) : readRoom(),
        readRoom,
        offer: (row, cache) => this.#offer(row, cache),
        offerGap: (gap) => this.#inOrder(gap, (g) => super.gap(g)),
        failed: (error, afterStart = false) => {
          if (parts.awaited && !afterStart) return;
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
        () => this.#feed.roomFreed(),
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

  #offer(row: JournalRow, cache: Map<unknown, unknown> | undefined): void {
    const decoder = this.decoder ?? this.#parts.decoder;
    let n: Offered<T> | undefined;
    if (cache === undefined) n = this.#notification(row, decoder);
    else {
      let byRow = cache.get(decoder) as Map<JournalRow, Offered<T>> | undefined;
      if (byRow === undefined) {
        byRow = new Map();
        cache.set(decoder, byRow);
      }
      n = byRow.get(row);
      if (n === undefined) {
        n = this.#notification(row, decoder);
        byRow.set(row, n);
      }
    }
    const acks = this.#acks;
    if (acks !== undefined) {
      // Counted as handed over now, in journal order, not once delivered: the feed's position
      // already covers the row, and one held for an asynchronous validation must keep the
      // stored cursor behind it until it is handled (or passed over: never deliverable).
      const cursor = row.cursor;
      acks.delivered(cursor);
      if (n === null) acks.ack(cursor);
      else if (n instanceof Promise)
        n = n.then((value) => {
          if (value === null) acks.ack(cursor);
          return value;
        });
    }
    this.#inOrder(n, this.#deliverRow);
  }

  /** Delivers an offered row in its turn (one function per subscription, not one per row). */
  readonly #deliverRow = (value: Notification<T> | null): void => {
    if (value === null) return; // never deliverable: passed over, like a plain decode failure
    super.deliver(value);
  };

  /** The row as a notification, null when it fails to decode or validate (reported). */
  #notification(row: JournalRow, decoder: (raw: string, channel: string) => unknown): Offered<T> {
    let checked: unknown;
    try {
      checked = this.#parts.hub.check(row.channel, decoder(row.payload, row.channel));
    } catch (cause) {
      this.#parts.hub.report(
        new PgNotifyError(
          ErrorCode.DECODE_FAILED,
          `durable payload at ${row.cursor} on ${JSON.stringify(row.channel)} could not be decoded: ${toError(cause).message}`,
          { cause, channel: row.channel },
        ),
      );
      return null;
    }
    return checked instanceof Promise
      ? checked.then((payload) => this.#build(row, payload))
      : this.#build(row, checked);
  }

  #build(row: JournalRow, payload: unknown): Notification<T> | null {
    if (payload === FAILED) return null;
    return {
      channel: row.channel,
      payload: payload as T,
      raw: row.payload,
      pid: row.pid,
      receivedAt: clock(),
      cursor: row.cursor,
    };
  }

  /**
   * Runs `step` with `value` now, or, while a row's asynchronous validation is pending, after
   * every step offered before it: rows and gaps keep journal order. Held steps count against
   * the buffer's room, so the feed reads no further ahead than it would otherwise.
   */
  #inOrder<V>(value: V | Promise<V>, step: (value: V) => void): void {
    if (this.#held === undefined && !(value instanceof Promise)) {
      step(value);
      return;
    }
    this.#pending++;
    const chain: Promise<void> = (this.#held ?? Promise.resolve())
      .then(() => value)
      .then((settled) => {
        if (!this.ended) step(settled);
      })
      .catch((error: unknown) => this.#parts.hub.report(toError(error)))
      .finally(() => {
        this.#pending--;
        if (this.#held === chain) this.#held = undefined;
        this.#feed.roomFreed();
      });
    this.#held = chain;
  }

  /**
   * Runs the handler and acknowledges the row once it settles successfully. A handler that
   * returns no promise is acknowledged at once, with no promise of ours (the runner's
   * synchronous path); one that throws or rejects is retried (#retry).
   */
  #handle(user: Handler<T>, n: Notification<T>): Promise<void> | undefined {
    this.#feed.roomFreed();
    let result: unknown;
    try {
      result = user(n);
    } catch (error) {
      return this.#retry(user, n, error);
    }
    if (!isThenable(result)) {
      this.#acks?.ack(n.cursor as string);
      return undefined;
    }
    return Promise.resolve(result).then(
      () => this.#acks?.ack(n.cursor as string),
      (error: unknown) => this.#retry(user, n, error),
    );
  }

  /** After a failed attempt: waits, runs the handler again until it succeeds or the subscription ends. */
  async #retry(user: Handler<T>, n: Notification<T>, failure: unknown): Promise<void> {
    let error = failure;
    this.#failing++;
    try {
      for (let attempt = 0; ; attempt++) {
        this.#parts.hub.handlerFailed(error, this.id, n.channel);
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          const cancel = (): void => {
            clearTimeout(timer);
            this.#retryWaits.delete(cancel);
            resolve();
          };
          const timer = setTimeout(cancel, retryDelay(attempt));
          this.#retryWaits.add(cancel);
        });
        if (this.ended) return;
        try {
          await user(n);
          this.#acks?.ack(n.cursor as string);
          return;
        } catch (next) {
          error = next;
        }
      }
    } finally {
      this.#failing--;
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

  /** @internal The wake channel: its payloads are pgnotify's own, never the subscriber's to decode. */
  override get rawChannel(): string {
    return this.#parts.config.wake;
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
    if (gap.kind === 'gap') this.relistened();
    else super.gap(gap);
  }

  /** @internal Unmuted: the wake-ups sent while muted were not received, so the journal is read again. */
  override relistened(): void {
    if (!this.ended) this.#feed.wake(undefined);
  }

  /** @internal Ends reading, stops a handler retry, flushes the consumer's cursor. */
  override end(error?: Error, discard = false): void {
    const wasEnded = this.ended;
    // A row that failed stays unacknowledged: a graceful stop must not handle the rows buffered
    // behind it (out of order, and again after the restart, which starts at the failed row).
    super.end(error, discard || this.#failing > 0);
    if (wasEnded) return;
    this.#feed.stop();
    for (const cancel of [...this.#retryWaits]) cancel();
    this.#acks?.end();
    this.#stored = this.#acks?.flush();
    this.#parts.release(this.#stored);
  }

  /** @internal A named consumer's last cursor write, once ended (never rejects). */
  override get stored(): Promise<void> | undefined {
    return this.#stored;
  }

  /** @internal Resolves once the handler has worked through the buffer and, once ended, the cursor is stored. */
  override async drained(): Promise<void> {
    await super.drained();
    if (this.ended) await this.#acks?.flush();
  }
}
