/**
 * One subscriber's delivery: its bounded buffer (buffer.ts, with the overflow policy) drained
 * either by a handler (through a HandlerRunner) or by the consumer: `for await`, `withGaps()`,
 * `poll()`, `next({ timeoutMs })`. Gap reports go into the buffer in their arrival position
 * for `withGaps()` loops, and are never dropped by the overflow policy.
 */
import { type Item, NotificationBuffer } from './buffer.js';
import { abortedError, asPgNotifyError, ErrorCode, PgNotifyError } from './errors.js';
import { timeoutOption } from './options.js';
import { HandlerRunner } from './runner.js';
import type {
  Gap,
  Handler,
  Notification,
  OverflowPolicy,
  SubscriberId,
  WaitOptions,
} from './types.js';

/** @internal What a subscription tells its listener. */
export interface SubscriptionOwner {
  unsubscribe(id: SubscriberId): Promise<void>;
  reportHandlerError(error: unknown, subscriberId: SubscriberId, notification: Notification): void;
  reportOverflow(subscription: Subscription<unknown>, dropped: number): void;
  reportError(error: PgNotifyError): void;
}

/** @internal Knobs of a subscription, resolved by the listener. */
export interface SubscriptionSetup<T> {
  id: SubscriberId;
  handler: Handler<T> | undefined;
  concurrency: number;
  max: number;
  overflow: OverflowPolicy;
  onGap: ((gap: Gap) => unknown) | undefined;
  idleTimeoutMs: number | undefined;
  onIdle: ((info: { idleMs: number }) => unknown) | undefined;
  stopChannel: string | undefined;
  /** This subscriber's own decoder, when it differs from the listener's. */
  decoder: ((raw: string, channel: string) => unknown) | undefined;
}

interface Waiter<T> {
  /** Whether this waiter takes gap reports too (a `withGaps()` loop). */
  gaps: boolean;
  resolve(value: Notification<T> | Gap | undefined): void;
  reject(error: Error): void;
}

/**
 * A subscriber on one or more channels. With a handler, notifications are handed to it;
 * without one, the subscription is an async iterable with `poll()` and `next()`.
 * Created by `listener.subscribe()`.
 */
export class Subscription<T = unknown> implements AsyncIterable<Notification<T>> {
  /** This subscriber's id: given in the options, or generated. */
  readonly id: SubscriberId;
  /** @internal The channel whose notification ends this subscription. */
  readonly stopChannel: string | undefined;
  /** @internal This subscriber's own decoder, when it differs from the listener's. */
  readonly decoder: ((raw: string, channel: string) => unknown) | undefined;

  /** @internal A channel of pgnotify's own it takes raw, never decoded (none here). */
  get rawChannel(): string | undefined {
    return undefined;
  }
  /** Called once when the subscription ends, in the order added (see {@link afterEnd}). */
  #endHooks: ((error: Error | undefined) => void)[] = [];
  #ended = false;
  readonly #owner: SubscriptionOwner;
  readonly #runner: HandlerRunner<Notification<T>> | undefined;
  readonly #buffer: NotificationBuffer<T>;
  #waiters: Waiter<T>[] = [];
  #endError: Error | undefined;
  readonly #onGap: ((gap: Gap) => unknown) | undefined;
  #gapReaders = 0;
  /** Set while an idle timeout is armed; only then is `lastActivity` kept. */
  #idleTimer: NodeJS.Timeout | undefined;
  #lastActivity = Date.now();

  /** @internal Subscriptions are made by `listener.subscribe()`. */
  constructor(owner: SubscriptionOwner, setup: SubscriptionSetup<T>) {
    this.#owner = owner;
    this.id = setup.id;
    this.#buffer = new NotificationBuffer(setup.max, setup.overflow);
    this.#onGap = setup.onGap;
    this.stopChannel = setup.stopChannel;
    this.decoder = setup.decoder;
    const { idleTimeoutMs, onIdle } = setup;
    if (idleTimeoutMs !== undefined && onIdle !== undefined)
      this.#armIdle(idleTimeoutMs, idleTimeoutMs, onIdle);
    if (setup.handler !== undefined) {
      this.#runner = new HandlerRunner(
        setup.handler,
        setup.concurrency,
        { take: () => this.#takeItem(false) as Notification<T> | undefined },
        (error, n) => owner.reportHandlerError(error, this.id, n),
      );
    }
  }

  /** Whether the subscription has ended (unsubscribed, listener stopped, or overflow error). */
  get ended(): boolean {
    return this.#ended;
  }

  /** @deprecated Use {@link Subscription.ended}; `listener.closed` is a promise, this was a boolean. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Items waiting in the buffer. */
  get buffered(): number {
    return this.#buffer.size;
  }

  /** Notifications this subscription lost to its overflow policy. */
  get dropped(): number {
    return this.#buffer.dropped;
  }

  /** Handler calls in flight. */
  get inFlight(): number {
    return this.#runner?.inFlight ?? 0;
  }

  /** Stops this subscriber on every channel. Idempotent. */
  unsubscribe(): Promise<void> {
    return this.#owner.unsubscribe(this.id);
  }

  /** `await using sub = await listener.subscribe(…)` unsubscribes at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.unsubscribe();
  }

  /**
   * The next buffered notification, or `undefined` when none is buffered: never blocks, never
   * throws. Always `undefined` for a subscription with a handler.
   */
  poll(): Notification<T> | undefined {
    return this.#runner === undefined ? (this.#takeItem(false) as Notification<T>) : undefined;
  }

  /**
   * Like iterating the subscription, but gap reports come through the loop too, in their
   * place among the notifications (after the outage, before what arrived after it):
   * @example
   * for await (const item of feed.withGaps()) {
   *   if (item.kind === 'gap') await resyncFromTables(item.channels)
   *   else handle(item.payload)
   * }
   */
  async *withGaps(): AsyncGenerator<Notification<T> | Gap, void, undefined> {
    this.#gapReaders++;
    try {
      yield* this.#iterate(true);
    } finally {
      this.#gapReaders--;
    }
  }

  /**
   * The next notification: at once when one is buffered, else when one arrives. Resolves
   * `undefined` when `timeoutMs` passes with nothing (an idle tick). Rejects with
   * `PGNOTIFY_CLOSED` once the subscription has ended and its buffer is empty, with
   * `PGNOTIFY_ABORTED` when `signal` aborts, and with `PGNOTIFY_NOT_ITERABLE` on a
   * subscription that has a handler.
   */
  next(options: WaitOptions = {}): Promise<Notification<T> | undefined> {
    return this.#wait(options, false) as Promise<Notification<T> | undefined>;
  }

  /**
   * Iterates notifications in arrival order. The loop ends when the subscription or the
   * listener stops (after what was buffered); `break` unsubscribes.
   */
  [Symbol.asyncIterator](): AsyncGenerator<Notification<T>, void, undefined> {
    return this.#iterate(false) as AsyncGenerator<Notification<T>, void, undefined>;
  }

  #wait(options: WaitOptions, gaps: boolean): Promise<Item<T> | undefined> {
    if (this.#runner !== undefined) {
      return Promise.reject(
        new PgNotifyError(
          ErrorCode.NOT_ITERABLE,
          `subscriber ${JSON.stringify(this.id)} has a handler: its notifications go there, not to next() or a loop`,
          { subscriberId: this.id },
        ),
      );
    }
    const item = this.#takeItem(gaps);
    if (item !== undefined) return Promise.resolve(item);
    if (this.#ended) return Promise.reject(this.#endReason());
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    return new Promise((resolve, reject) => {
      const timeoutMs = timeoutOption('timeoutMs', options.timeoutMs); // a throw rejects
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(undefined, abortedError(signal));
      const waiter: Waiter<T> = {
        gaps,
        resolve: (value) => settle(value, undefined),
        reject: (error) => settle(undefined, error),
      };
      const settle = (value: Item<T> | undefined, error: Error | undefined): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        if (error === undefined) resolve(value);
        else reject(error);
      };
      this.#waiters.push(waiter);
      if (timeoutMs !== undefined)
        timer = setTimeout(() => settle(undefined, undefined), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async *#iterate(gaps: boolean): AsyncGenerator<Item<T>, void, undefined> {
    try {
      for (;;) {
        let item: Item<T> | undefined;
        try {
          item = await this.#wait({}, gaps);
        } catch (error) {
          if ((error as PgNotifyError).code === ErrorCode.CLOSED && this.#endError === undefined)
            return;
          throw error;
        }
        if (item !== undefined) yield item;
      }
    } finally {
      if (!this.#ended && this.#runner === undefined) await this.unsubscribe();
    }
  }

  /** The next buffered item; gap reports are skipped unless `gaps`. */
  #takeItem(gaps: boolean): Item<T> | undefined {
    return this.#buffer.take(gaps);
  }

  /**
   * @internal Once ended: resolves when what the subscription stores on its way out is stored
   * (a named consumer's last cursor write; never rejects). Undefined when there is nothing.
   */
  get stored(): Promise<void> | undefined {
    return undefined;
  }

  /** @internal Hands one notification to this subscriber. */
  deliver(notification: Notification<T>): void {
    if (this.#ended) return;
    if (this.stopChannel !== undefined && notification.channel === this.stopChannel) {
      // The stop notification: ends the subscription and removes it from the listener.
      this.end();
      this.#leave();
      return;
    }
    if (this.#idleTimer !== undefined) this.#lastActivity = notification.receivedAt;
    const runner = this.#runner;
    if (runner !== undefined) {
      if (this.#buffer.size === 0 && runner.canRunNow()) runner.run(notification);
      else if (this.#push(notification)) runner.pump();
      return;
    }
    const waiter = this.#waiters[0];
    if (waiter !== undefined) waiter.resolve(notification);
    else this.#push(notification);
  }

  /**
   * Ended from inside delivery (a stop notification, an overflow error): leaves the listener
   * once the delivery in progress is done, so delivery never calls back into the registry.
   */
  #leave(): void {
    queueMicrotask(() => void this.#owner.unsubscribe(this.id).catch(() => undefined));
  }

  #armIdle(delayMs: number, idleMs: number, onIdle: (info: { idleMs: number }) => unknown): void {
    this.#idleTimer = setTimeout(() => {
      if (this.#ended) return;
      const quietMs = Date.now() - this.#lastActivity;
      if (quietMs < idleMs) {
        this.#armIdle(idleMs - quietMs, idleMs, onIdle);
        return;
      }
      this.#lastActivity = Date.now();
      this.#armIdle(idleMs, idleMs, onIdle);
      this.#callHook(() => onIdle({ idleMs: quietMs }));
    }, delayMs);
  }

  /** Calls a user hook; a throw or a rejection goes to `onError`. */
  #callHook(hook: () => unknown): void {
    const failed = (error: unknown): void =>
      this.#owner.reportError(
        asPgNotifyError(
          error,
          ErrorCode.HANDLER_FAILED,
          `a hook of subscriber ${String(this.id)}`,
          {
            subscriberId: this.id,
          },
        ),
      );
    try {
      const result = hook();
      if (result instanceof Promise) result.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /** @internal Whether anything here reads gaps: `onGap`, or a `withGaps()` loop. */
  get readsGaps(): boolean {
    return (
      !this.#ended &&
      (this.#onGap !== undefined || (this.#runner === undefined && this.#gapReaders > 0))
    );
  }

  /** @internal Its channel is listened to again after a mute: nothing to do (durable ones read). */
  relistened(): void {}

  /** @internal Reports a gap: to `onGap`, and to `withGaps()` loops in arrival position. */
  gap(gap: Gap): void {
    if (this.#ended) return;
    if (this.#runner === undefined && this.#gapReaders > 0) {
      const waiter = this.#waiters.find((w) => w.gaps);
      if (waiter !== undefined) waiter.resolve(gap);
      else this.#buffer.pushGap(gap);
    }
    const onGap = this.#onGap;
    if (onGap !== undefined) this.#callHook(() => onGap(gap));
  }

  /**
   * @internal Ends delivery. Buffered notifications stay readable by the consumer; with a
   * handler they still run (a graceful stop) unless `discard` (an unsubscribe). `error` ends
   * iterators with that error instead of quietly.
   */
  end(error?: Error, discard = false): void {
    if (discard && this.#runner !== undefined) {
      // Unsubscribed: queued handler work is dropped, not run after the caller said stop.
      this.#buffer.clear();
    }
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    const hooks = this.#endHooks;
    this.#endHooks = [];
    for (const hook of hooks) hook(error);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(this.#endReason());
  }

  /**
   * @internal Calls `fn` once when the subscription ends, with the error that ended it if one
   * did, after the hooks added before it; at once, with undefined, when it has already ended
   * (the listener detaches a signal; `once()` rejects; the SSE bridge ends a hub's streams).
   */
  afterEnd(fn: (error: Error | undefined) => void): void {
    if (this.#ended) fn(undefined);
    else this.#endHooks.push(fn);
  }

  /** @internal Resolves once the handler has worked through the buffer. */
  async drained(): Promise<void> {
    const runner = this.#runner;
    if (runner === undefined) return;
    runner.pump();
    while (runner.inFlight > 0) {
      await runner.idle();
      runner.pump();
    }
  }

  /** Adds to the buffer under the overflow policy and reports any loss; false when not kept. */
  #push(notification: Notification<T>): boolean {
    const outcome = this.#buffer.push(notification);
    if (outcome === 'added') return true;
    this.#owner.reportOverflow(this as Subscription<unknown>, 1);
    if (outcome === 'evicted') return true;
    if (this.#buffer.overflow === 'error') {
      const error = new PgNotifyError(
        ErrorCode.BUFFER_OVERFLOW,
        `subscriber ${JSON.stringify(this.id)}: buffer full (${this.#buffer.max}); subscription ended`,
        { subscriberId: this.id, channel: notification.channel },
      );
      this.end(error);
      this.#owner.reportError(error);
      this.#leave();
    }
    return false;
  }

  #endReason(): Error {
    return (
      this.#endError ??
      new PgNotifyError(ErrorCode.CLOSED, `subscriber ${JSON.stringify(this.id)} has ended`, {
        subscriberId: this.id,
      })
    );
  }
}

/** @internal What `once()` and routes see of the subscription `subscribe()` made: its end. */
export type SubscriptionEnd = Pick<Subscription, 'afterEnd'>;
