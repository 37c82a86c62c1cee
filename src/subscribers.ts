/**
 * The listener's subscribers: building a Subscription from `subscribe()` options, recording
 * it in the registry and keeping what is derived from the registry (the delivery index, the
 * LISTEN work list) in step, and what subscriptions report back: handler failures, overflow
 * (batched per turn of the event loop), gaps fanned out to those that read them.
 */
import { decoderFor } from './codec.js';
import { Delivery } from './delivery.js';
import { DurableHub, durableConfig, isDurable } from './durable.js';
import {
  abortedError,
  asPgNotifyError,
  ErrorCode,
  PgNotifyError,
  plural,
  toError,
} from './errors.js';
import {
  bufferOption,
  decodeOption,
  functionOption,
  intOption,
  type ResolvedListenerOptions,
  timeoutOption,
} from './options.js';
import { Registry } from './registry.js';
import type { RouteHost } from './router.js';
import { checkChannel } from './sql.js';
import { Subscription, type SubscriptionEnd, type SubscriptionOwner } from './subscription.js';
import type {
  ExpiredGap,
  Handler,
  ListenerEvents,
  ListenerState,
  OutageGap,
  SubscribeOptions,
  SubscriberId,
} from './types.js';

type AnySubscription = Subscription<unknown>;

/** What the subscribers need from the listener. */
export interface SubscribersHost {
  /** The public unsubscribe (it also brings the server's LISTEN set along). */
  unsubscribe(id: SubscriberId): Promise<void>;
  /** The public subscribe, for routes and once(). */
  subscribe(channel: string, handler: Handler, options: SubscribeOptions): Promise<SubscriptionEnd>;
  /** Channels whose LISTEN state may have changed (the session's work list). */
  touch(channels: readonly string[]): void;
  emitOverflow(info: ListenerEvents['overflow'][0]): void;
  /** Hands an error to `onError`; never throws. */
  report(error: PgNotifyError): void;
  /** Durable subscriptions: SQL on the listener connection, its state, the `'gap'` event. */
  query(text: string, values?: readonly unknown[]): Promise<unknown>;
  state(): ListenerState;
  emitGap(gap: ExpiredGap): void;
}

/** The subscribers of one listener: the registry, the delivery derived from it, the reports. */
export class Subscribers {
  readonly registry = new Registry<AnySubscription>();
  readonly delivery: Delivery<AnySubscription>;
  /** What every subscription, route and once() reports to. */
  readonly owner: SubscriptionOwner & RouteHost;
  readonly counters = { dropped: 0, handlerErrors: 0, unrouted: 0 };
  readonly #options: ResolvedListenerOptions;
  readonly #host: SubscribersHost;
  #nextId = 1;
  #pendingOverflow = new Map<AnySubscription, number>();
  #overflowTimer: NodeJS.Immediate | undefined;
  #durable: DurableHub | undefined;

  constructor(options: ResolvedListenerOptions, host: SubscribersHost) {
    this.#options = options;
    this.#host = host;
    this.delivery = new Delivery({
      decoder: decoderFor(options.decode),
      schemas: options.schemas,
      report: host.report,
    });
    this.owner = {
      unsubscribe: host.unsubscribe,
      subscribe: host.subscribe,
      reportError: host.report,
      reportHandlerError: (error, id, n) => this.#handlerFailed(error, id, n.channel, 'handler'),
      reportOverflow: (subscription, dropped) => this.#overflowed(subscription, dropped),
      generateId: () => this.generateId(),
      unrouted: () => void this.counters.unrouted++,
      handlerFailed: (error, id, channel, what) => this.#handlerFailed(error, id, channel, what),
    };
  }

  /**
   * Creates a subscription and records it. Every option is validated first: a throw leaves
   * nothing behind (the Subscription's constructor arms its idle timer).
   */
  add(channels: unknown, handler: Handler | undefined, options: SubscribeOptions): AnySubscription {
    const stopChannel =
      options.stopChannel === undefined ? undefined : checkChannel(options.stopChannel);
    const durable = options.durable === undefined ? undefined : durableConfig(options.durable);
    const list = [...(channelList(channels ?? null) as readonly string[])];
    const data = [...list];
    if (stopChannel !== undefined && !list.includes(stopChannel)) list.push(stopChannel);
    const id = options.id ?? this.generateId();
    if (typeof id !== 'string' && typeof id !== 'number') {
      throw new PgNotifyError(
        ErrorCode.INVALID_OPTION,
        `option id: expected a string or a number, got ${typeof id}`,
      );
    }
    const buffer = bufferOption('buffer', options.buffer, this.#options.buffer);
    const decoder =
      options.decode === undefined ? undefined : decoderFor(decodeOption('decode', options.decode));
    const setup = {
      id,
      handler,
      concurrency: intOption('concurrency', options.concurrency, this.#options.concurrency, 0),
      max: buffer.max,
      overflow: buffer.overflow,
      onGap: functionOption<SubscribeOptions['onGap']>('onGap', options.onGap, undefined),
      idleTimeoutMs: timeoutOption('idleTimeoutMs', options.idleTimeoutMs),
      onIdle: functionOption<SubscribeOptions['onIdle']>('onIdle', options.onIdle, undefined),
      stopChannel,
      decoder: decoder === decoderFor(this.#options.decode) ? undefined : decoder,
    };
    const subscription =
      durable === undefined
        ? new Subscription<unknown>(this.owner, setup)
        : this.#durableHub().create(
            this.owner,
            setup,
            data,
            durable,
            decoderFor(this.#options.decode),
          );
    try {
      if (durable === undefined) this.apply(this.registry.subscribe(id, subscription, list));
      else {
        // On the wake channel only (muted there in poll mode: nothing is LISTENed for it).
        const on = stopChannel === undefined ? [durable.wake] : [durable.wake, stopChannel];
        this.registry.subscribe(id, subscription, on);
        if (durable.mode === 'poll') this.registry.muteSubscriber(id, [durable.wake]);
        this.apply(on);
      }
    } catch (error) {
      subscription.end();
      throw error;
    }
    const signal = options.signal;
    if (signal !== undefined) {
      // Only this subscription: the id may belong to a later subscriber once this one ended.
      const onAbort = (): void => {
        if (this.registry.get(id) !== subscription) return;
        this.#host.unsubscribe(id).catch((error: unknown) =>
          this.#host.report(
            asPgNotifyError(error, ErrorCode.LISTEN_FAILED, 'unsubscribing on abort failed', {
              subscriberId: id,
            }),
          ),
        );
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        subscription.afterEnd(() => signal.removeEventListener('abort', onAbort));
      }
    }
    return subscription;
  }

  /**
   * Takes a subscriber off `channels` (all when undefined); one left with no channel ends,
   * its queued handler work dropped. Returns false for an unknown id.
   */
  remove(id: SubscriberId, channels: unknown): boolean {
    const subscription = this.registry.get(id);
    if (subscription === undefined) return false;
    this.apply(this.registry.unsubscribe(id, channelList(channels)));
    if (!this.registry.has(id)) subscription.end(undefined, true);
    return true;
  }

  /** Applies a registry change to what is derived from it, for the touched channels only. */
  apply(touched: readonly string[]): void {
    this.delivery.update(touched, (channel) => this.registry.recipients(channel));
    this.#host.touch(touched);
  }

  /**
   * What `subscribe()` waits for after LISTEN is confirmed: a durable subscription's start
   * position, on a running listener (before start() it is taken once connected).
   */
  started(subscription: AnySubscription): Promise<void> | undefined {
    return isDurable(subscription) && this.#host.state() !== 'idle'
      ? subscription.ready
      : undefined;
  }

  /** Resolves once every durable subscription has its start position (failures go to onError). */
  async durableStarted(): Promise<void> {
    const durable = this.registry.values().filter(isDurable);
    if (durable.length > 0) await Promise.allSettled(durable.map((s) => s.ready));
  }

  /**
   * The listener's `'gap'` event for an outage: without durable wake channels (durable
   * subscriptions re-read the journal and lose nothing); undefined when nothing is left.
   */
  publicGap(gap: OutageGap): OutageGap | undefined {
    const hub = this.#durable;
    if (hub === undefined) return gap;
    const channels = gap.channels.filter((c) => !hub.isWake(c));
    if (channels.length === gap.channels.length) return gap;
    return channels.length === 0 ? undefined : { ...gap, channels };
  }

  #durableHub(): DurableHub {
    const host = this.#host;
    const options = this.#options;
    this.#durable ??= new DurableHub({
      query: (text, values) => host.query(text, values),
      state: () => host.state(),
      report: host.report,
      emitGap: (gap) => host.emitGap(gap),
      handlerFailed: (error, id, channel) => this.#handlerFailed(error, id, channel, 'handler'),
      connection: options.connection,
      schemas: options.schemas,
      applicationName: options.applicationName,
      connectTimeoutMs: options.connectTimeoutMs,
    });
    return this.#durable;
  }

  /**
   * `channels` are listened to again after an unmute: durable subscriptions on a wake channel
   * among them read the journal again (the wake-ups sent while muted were never received).
   */
  relistened(channels: readonly string[]): void {
    const hub = this.#durable;
    if (hub === undefined) return;
    const wakes = new Set(channels.filter((c) => hub.isWake(c)));
    if (wakes.size === 0) return;
    for (const subscription of this.registry.values()) {
      if (this.registry.channelsOf(subscription.id)?.some((c) => wakes.has(c)))
        subscription.relistened();
    }
  }

  /** A gap report: to every subscription that reads gaps, narrowed to its own channels. */
  gap(gap: OutageGap): void {
    if (gap.channels.length === 0) return;
    const lost = new Set(gap.channels);
    for (const subscription of this.registry.values()) {
      // Most subscriptions read no gaps: they cost nothing here, even by the ten thousand.
      if (!subscription.readsGaps) continue;
      const mine = (this.registry.channelsOf(subscription.id) ?? []).filter((c) => lost.has(c));
      if (mine.length > 0)
        subscription.gap(mine.length === gap.channels.length ? gap : { ...gap, channels: mine });
    }
  }

  /** Resolves once every handler has worked through its buffer; rejects when `signal` aborts. */
  async drained(signal?: AbortSignal): Promise<void> {
    const drained = Promise.all(this.registry.values().map((s) => s.drained()));
    if (signal === undefined) return void (await drained);
    if (signal.aborted) throw abortedError(signal);
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        drained,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(abortedError(signal));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The listener stopped: ends every subscription, lets running and buffered handler work
   * finish for up to `timeoutMs` (reporting what it abandons), then reports pending overflow.
   */
  async close(timeoutMs: number): Promise<void> {
    const subscriptions = this.registry.values();
    for (const subscription of subscriptions) subscription.end();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(subscriptions.map((s) => s.drained())).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // After the subscriptions' last cursor writes (or the timeout): nothing else uses it.
    await this.#durable?.close();
    if (!finished) {
      const running = subscriptions.reduce((n, s) => n + s.inFlight + s.buffered, 0);
      this.#host.report(
        new PgNotifyError(
          ErrorCode.TIMEOUT,
          `stop() abandoned ${plural(running, 'handler call')} still running or queued after stopTimeoutMs (${timeoutMs} ms)`,
        ),
      );
    }
    if (this.#overflowTimer !== undefined) {
      clearImmediate(this.#overflowTimer);
      this.#flushOverflow();
    }
  }

  /** A fresh `pgnotify:N` id. */
  generateId(): string {
    let id: string;
    do id = `pgnotify:${this.#nextId++}`;
    while (this.registry.has(id));
    return id;
  }

  #handlerFailed(error: unknown, id: SubscriberId, channel: string, what: string): void {
    this.counters.handlerErrors++;
    this.#host.report(
      new PgNotifyError(
        ErrorCode.HANDLER_FAILED,
        `${what} of subscriber ${JSON.stringify(id)} failed on ${JSON.stringify(channel)}: ${toError(error).message}`,
        { cause: error, channel, subscriberId: id },
      ),
    );
  }

  #overflowed(subscription: AnySubscription, dropped: number): void {
    this.counters.dropped += dropped;
    const pending = this.#pendingOverflow;
    pending.set(subscription, (pending.get(subscription) ?? 0) + dropped);
    this.#overflowTimer ??= setImmediate(() => this.#flushOverflow());
  }

  #flushOverflow(): void {
    this.#overflowTimer = undefined;
    const pending = this.#pendingOverflow;
    this.#pendingOverflow = new Map();
    for (const [subscription, dropped] of pending) {
      const { id } = subscription;
      this.#host.emitOverflow({
        subscriberId: id,
        channels: this.registry.channelsOf(id) ?? [],
        dropped,
        totalDropped: subscription.dropped,
      });
      this.#host.report(
        new PgNotifyError(
          ErrorCode.BUFFER_OVERFLOW,
          `subscriber ${JSON.stringify(id)} dropped ${plural(dropped, 'notification')}: its buffer is full` +
            ' (a consumer slower than the notification rate; raise buffer.max or read faster)',
          { subscriberId: id },
        ),
      );
    }
  }
}

/** A validated channel list; undefined (meaning "all of them") stays undefined. */
export function channelList(channels: unknown): readonly string[] | undefined {
  if (channels === undefined) return undefined;
  if (typeof channels === 'string') return [checkChannel(channels)];
  if (!Array.isArray(channels) || channels.length === 0) {
    throw new PgNotifyError(
      ErrorCode.INVALID_CHANNEL,
      'expected a channel name or a non-empty array of channel names',
    );
  }
  return channels.map(checkChannel);
}
