/**
 * One subscriber's delivery: a bounded buffer with a stated overflow policy, drained either
 * by a handler (through a HandlerRunner) or by the consumer: `for await`, `poll()`,
 * `next({ timeoutMs })`.
 */
import { HandlerRunner, type Source } from './dispatch.js';
import { abortedError, ErrorCode, PgNotifyError, toError } from './errors.js';
import type { OverflowPolicy } from './options.js';
import type { SubscriberId } from './registry.js';
import type { Gap } from './session.js';

/** One notification as delivered. */
export interface Notification<T = unknown> {
  /** The channel it was sent on, exactly as given to NOTIFY (case kept). */
  readonly channel: string;
  /** The decoded payload (see the `decode` option). */
  readonly payload: T;
  /** The payload text as received. */
  readonly raw: string;
  /** Server process id of the sending session (`pg_backend_pid()` there). */
  readonly pid: number;
  /** When the listener read it, in ms since the epoch. */
  readonly receivedAt: number;
  /** Never set: lets `item.kind === 'gap'` tell a gap from a notification in `withGaps()`. */
  readonly kind?: undefined;
}

/** A handler for notifications; may return a promise, which is awaited per `concurrency`. */
export type Handler<T = unknown> = (notification: Notification<T>) => unknown;

/** Options of one `next()` wait. */
export interface WaitOptions {
  /** Resolve `undefined` after this long with nothing (an idle tick). Default: wait forever. */
  timeoutMs?: number;
  /** Abort the wait: it rejects with `PGNOTIFY_ABORTED`. */
  signal?: AbortSignal;
}

/** What a subscription tells its listener. */
export interface SubscriptionOwner {
  unsubscribe(id: SubscriberId): Promise<void>;
  reportHandlerError(error: unknown, subscriberId: SubscriberId, notification: Notification): void;
  reportOverflow(subscriber: OverflowSource, dropped: number): void;
  reportError(error: Error): void;
}

/** What the owner learns of a subscriber that dropped notifications. */
export interface OverflowSource {
  readonly id: SubscriberId;
  readonly dropped: number;
}

interface Waiter<T> {
  /** Whether this waiter takes gap reports too (a `withGaps()` loop). */
  gaps: boolean;
  resolve(value: Notification<T> | Gap | undefined): void;
  reject(error: Error): void;
}

type Item<T> = Notification<T> | Gap;

/** Internal knobs of a subscription, resolved by the listener. */
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
}

/**
 * A subscriber on one or more channels. With a handler, notifications are handed to it;
 * without one, the subscription is an async iterable with `poll()` and `next()`.
 * Created by `listener.subscribe()`.
 */
export class Subscription<T = unknown>
  implements AsyncIterable<Notification<T>>, Source<Notification<T>>
{
  // The fields deliver() reads come first, so that they share the object's first cache line:
  // with thousands of subscriptions, each notification meets a cold one.
  private ended = false;
  /** @internal The channel whose notification ends this subscription. */
  readonly stopChannel: string | undefined;
  /**
   * The handler, called right here when nothing is queued or in flight; otherwise the runner
   * schedules it. deliver() never touches the runner for a synchronous handler.
   */
  private readonly handler: Handler<T> | undefined;
  /** Items in the buffer (buffer.length - head), kept so deliver() never touches the buffer. */
  private queued = 0;
  /** Handler calls in flight (the runner's count, as it reports it). */
  private running = 0;
  private runner: HandlerRunner<Notification<T>> | undefined;
  /** Set while an idle timeout is armed; only then is lastActivity kept. */
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();
  /** This subscriber's id: given in the options, or generated. */
  readonly id: SubscriberId;
  /** @internal Called once when the subscription ends (the listener detaches its signal). */
  onEnd: (() => void) | undefined;
  /** @internal This subscriber's own decoder, when it differs from the listener's. */
  decoder: ((raw: string, channel: string) => unknown) | undefined;
  private buffer: (Item<T> | undefined)[] = [];
  private head = 0;
  private waiters: Waiter<T>[] = [];
  private endError: Error | undefined;
  private droppedCount = 0;
  private readonly max: number;
  private readonly overflow: OverflowPolicy;
  private readonly onGap: ((gap: Gap) => unknown) | undefined;
  private gapReaders = 0;

  /** @internal */
  constructor(
    private readonly owner: SubscriptionOwner,
    setup: SubscriptionSetup<T>,
  ) {
    this.id = setup.id;
    this.max = setup.max;
    this.overflow = setup.overflow;
    this.onGap = setup.onGap;
    this.stopChannel = setup.stopChannel;
    const { idleTimeoutMs, onIdle } = setup;
    if (idleTimeoutMs !== undefined && onIdle !== undefined)
      this.armIdle(idleTimeoutMs, idleTimeoutMs, onIdle);
    this.handler = setup.handler;
    if (setup.handler !== undefined) {
      this.runner = new HandlerRunner(setup.handler, setup.concurrency, this, (error, n) =>
        owner.reportHandlerError(error, this.id, n),
      );
    }
  }

  /** Whether the subscription has ended (unsubscribed, listener stopped, or overflow error). */
  get closed(): boolean {
    return this.ended;
  }

  /** Notifications waiting in the buffer. */
  get buffered(): number {
    return this.queued;
  }

  /** Notifications this subscription lost to its overflow policy. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Handler calls in flight. */
  get inFlight(): number {
    return this.runner?.inFlight ?? 0;
  }

  /** Stops this subscriber on every channel. Idempotent. */
  unsubscribe(): Promise<void> {
    return this.owner.unsubscribe(this.id);
  }

  /** `await using sub = await listener.subscribe(…)` unsubscribes at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.unsubscribe();
  }

  /**
   * The next buffered notification, or `undefined` when none is buffered. Never blocks, never
   * throws (pgpubsub's `get_event()`). Always `undefined` for a subscription with a handler.
   */
  poll(): Notification<T> | undefined {
    return this.runner === undefined ? this.take() : undefined;
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
    this.gapReaders++;
    try {
      yield* this.iterate(true);
    } finally {
      this.gapReaders--;
    }
  }

  /**
   * The next notification: at once when one is buffered, else when one arrives. Resolves
   * `undefined` when `timeoutMs` passes with nothing (an idle tick). Rejects with
   * `PGNOTIFY_CLOSED` once the subscription has ended and its buffer is empty, and with
   * `PGNOTIFY_ABORTED` when `signal` aborts.
   */
  next(options: WaitOptions = {}): Promise<Notification<T> | undefined> {
    return this.wait(options, false) as Promise<Notification<T> | undefined>;
  }

  private wait(options: WaitOptions, gaps: boolean): Promise<Item<T> | undefined> {
    if (this.runner !== undefined) {
      return Promise.reject(
        new PgNotifyError(
          ErrorCode.INVALID_OPTION,
          'next() is for subscriptions without a handler',
        ),
      );
    }
    const item = this.takeItem(gaps);
    if (item !== undefined) return Promise.resolve(item);
    if (this.ended) return Promise.reject(this.endReason());
    const { timeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    return new Promise((resolve, reject) => {
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
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        if (error === undefined) resolve(value);
        else reject(error);
      };
      this.waiters.push(waiter);
      if (timeoutMs !== undefined)
        timer = setTimeout(() => settle(undefined, undefined), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Iterates notifications in arrival order. The loop ends when the subscription or the
   * listener stops (after what was buffered); `break` unsubscribes.
   */
  [Symbol.asyncIterator](): AsyncGenerator<Notification<T>, void, undefined> {
    return this.iterate(false) as AsyncGenerator<Notification<T>, void, undefined>;
  }

  private async *iterate(gaps: boolean): AsyncGenerator<Item<T>, void, undefined> {
    try {
      for (;;) {
        let item: Item<T> | undefined;
        try {
          item = await this.wait({}, gaps);
        } catch (error) {
          if ((error as PgNotifyError).code === ErrorCode.CLOSED && this.endError === undefined)
            return;
          throw error;
        }
        if (item !== undefined) yield item;
      }
    } finally {
      if (!this.ended) await this.unsubscribe();
    }
  }

  /** @internal Takes the next buffered notification (the runner's source), skipping gap reports. */
  take(): Notification<T> | undefined {
    return this.takeItem(false) as Notification<T> | undefined;
  }

  private takeItem(gaps: boolean): Item<T> | undefined {
    let item = this.shift();
    while (item !== undefined && !gaps && isGap(item)) item = this.shift();
    return item;
  }

  private shift(): Item<T> | undefined {
    if (this.queued === 0) return undefined;
    const item = this.buffer[this.head];
    this.buffer[this.head++] = undefined;
    this.queued--;
    if (this.queued === 0) {
      this.buffer.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** @internal Hands one notification to this subscriber. */
  deliver(notification: Notification<T>): void {
    if (this.ended) return;
    if (this.stopChannel !== undefined && notification.channel === this.stopChannel) {
      this.stop();
      return;
    }
    if (this.idleTimer !== undefined) this.lastActivity = notification.receivedAt;
    const handler = this.handler;
    if (handler !== undefined && this.queued === 0 && this.running === 0) {
      // What the runner would do (it may run now: nothing is in flight), without touching it.
      let result: unknown;
      let threw = false;
      try {
        result = handler(notification);
      } catch (error) {
        threw = true;
        result = error;
      }
      if (threw || (result !== undefined && result !== null))
        this.runner?.after(threw, result, notification);
      return;
    }
    const runner = this.runner;
    if (runner !== undefined && this.queued === 0 && runner.canRunNow()) {
      runner.run(notification);
      return;
    }
    this.queue(notification);
  }

  /** @internal The runner's count of handler calls in flight. */
  busy(inFlight: number): void {
    this.running = inFlight;
  }

  /** The stop notification: ends the subscription and removes it from the listener. */
  private stop(): void {
    this.end();
    void this.owner.unsubscribe(this.id).catch(() => undefined);
  }

  /** A notification that cannot go straight to a handler: to a waiting next() or the buffer. */
  private queue(notification: Notification<T>): void {
    const runner = this.runner;
    if (runner !== undefined) {
      if (this.push(notification)) runner.pump();
      return;
    }
    const waiter = this.waiters[0];
    if (waiter !== undefined) {
      waiter.resolve(notification);
      return;
    }
    this.push(notification);
  }

  private armIdle(
    delayMs: number,
    idleMs: number,
    onIdle: (info: { idleMs: number }) => unknown,
  ): void {
    this.idleTimer = setTimeout(() => {
      if (this.ended) return;
      const quietMs = Date.now() - this.lastActivity;
      if (quietMs < idleMs) {
        this.armIdle(idleMs - quietMs, idleMs, onIdle);
        return;
      }
      this.lastActivity = Date.now();
      this.armIdle(idleMs, idleMs, onIdle);
      try {
        const result = onIdle({ idleMs: quietMs });
        if (result instanceof Promise)
          result.catch((error: unknown) => this.owner.reportError(toError(error)));
      } catch (error) {
        this.owner.reportError(toError(error));
      }
    }, delayMs);
  }

  /** @internal Whether anything here reads gaps: `onGap`, or a `withGaps()` loop. */
  get readsGaps(): boolean {
    return (
      !this.ended &&
      (this.onGap !== undefined || (this.runner === undefined && this.gapReaders > 0))
    );
  }

  /** @internal Reports a gap: to `onGap`, and to `withGaps()` loops in arrival position. */
  gap(gap: Gap): void {
    if (this.ended) return;
    if (this.runner === undefined && this.gapReaders > 0) {
      const waiter = this.waiters.find((w) => w.gaps);
      if (waiter !== undefined) waiter.resolve(gap);
      else {
        this.buffer.push(gap);
        this.queued++;
      }
    }
    if (this.onGap === undefined) return;
    try {
      const result = this.onGap(gap);
      if (result instanceof Promise)
        result.catch((error: unknown) => this.owner.reportError(toError(error)));
    } catch (error) {
      this.owner.reportError(toError(error));
    }
  }

  /**
   * @internal Ends delivery. Buffered notifications stay readable by the consumer; with a
   * handler they still run (a graceful stop) unless `discard` (an unsubscribe). `error` ends
   * iterators with that error instead of quietly.
   */
  end(error?: Error, discard = false): void {
    if (discard && this.runner !== undefined) {
      // Unsubscribed: queued handler work is dropped, not run after the caller said stop.
      this.buffer = [];
      this.head = 0;
      this.queued = 0;
    }
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.onEnd?.();
    this.onEnd = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.endReason());
  }

  /** @internal Resolves once the handler has worked through the buffer. */
  async drained(): Promise<void> {
    const runner = this.runner;
    if (runner === undefined) return;
    runner.pump();
    while (runner.inFlight > 0) {
      await runner.idle();
      runner.pump();
    }
  }

  /** Adds to the buffer under the overflow policy; false when the item was dropped. */
  private push(notification: Notification<T>): boolean {
    if (this.queued < this.max) {
      this.buffer.push(notification);
      this.queued++;
      return true;
    }
    this.droppedCount++;
    switch (this.overflow) {
      case 'drop-oldest':
        this.take();
        this.buffer.push(notification);
        this.queued++;
        this.owner.reportOverflow(this, 1);
        return true;
      case 'drop-newest':
        this.owner.reportOverflow(this, 1);
        return false;
      case 'error': {
        const error = new PgNotifyError(
          ErrorCode.BUFFER_OVERFLOW,
          `subscriber ${JSON.stringify(this.id)}: buffer full (${this.max}); subscription ended`,
          { subscriberId: this.id, channel: notification.channel },
        );
        this.owner.reportOverflow(this, 1);
        this.end(error);
        this.owner.reportError(error);
        void this.owner.unsubscribe(this.id).catch(() => undefined);
        return false;
      }
    }
  }

  private endReason(): Error {
    return (
      this.endError ??
      new PgNotifyError(ErrorCode.CLOSED, `subscriber ${JSON.stringify(this.id)} has ended`, {
        subscriberId: this.id,
      })
    );
  }
}

function isGap<T>(item: Item<T>): item is Gap {
  return (item as Partial<Gap>).kind === 'gap';
}
