/**
 * The Listener: what users hold. It owns the registry (who listens to what), the delivery
 * index derived from it, the subscriptions, and one Session; it turns session hooks into
 * events and keeps every error away from the host process (they go to `onError`).
 */
import {
  type Decode,
  type DecodeFunction,
  decoderFor,
  type Schema,
  type Validated,
  validate,
} from './codec.js';
import { type DispatchFunction, defaultDispatch, Router, type UnroutedReason } from './dispatch.js';
import { abortedError, ErrorCode, listenerClosedError, PgNotifyError, toError } from './errors.js';
import {
  type BufferOptions,
  bufferOption,
  type ChannelMap,
  decodeOption,
  functionOption,
  intOption,
  type ListenerOptions,
  type ResolvedListenerOptions,
  resolveListenerOptions,
  timeoutOption,
} from './options.js';
import type { ChannelInfo, Registry, SubscriberId, SubscriberInfo } from './registry.js';
import * as reg from './registry.js';
import { type Gap, type ListenerState, Session } from './session.js';
import { checkChannel } from './sql.js';
import {
  type Handler,
  type Notification,
  type OverflowSource,
  Subscription,
  type SubscriptionOwner,
} from './subscription.js';

/** Options of `listener.subscribe()`. Unset fields inherit the listener's. */
export interface SubscribeOptions {
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
   * Call `onIdle` whenever nothing arrived for this long (PyGreSQL's timeout callback,
   * pgpubsub's idle ticks for keep-alives). Default: never.
   */
  idleTimeoutMs?: number;
  /** See `idleTimeoutMs`. */
  onIdle?: (info: { idleMs: number }) => unknown;
  /**
   * A channel whose notification ends this subscription (PyGreSQL's stop event; its
   * convention is `'stop_' + channel`). The stop notification itself is not delivered.
   * Send one with `notifier.notifyStop(channel)`.
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

/**
 * What `listener.once()` returns: the promise of the notification, with `ready`, which
 * resolves once the channel is listened to (arm, trigger, await: nothing is missed).
 */
export type OncePromise<T> = Promise<Notification<T>> & { readonly ready: Promise<void> };

/** Options of `listener.route()`. */
export interface RouteOptions<P> {
  /** Maps a payload to `[action, data]`, or undefined. Default: reads `{ action, data }`. */
  dispatch?: DispatchFunction<P, Notification<P>>;
  /** Handler calls in flight (see the listener option). */
  concurrency?: number;
  /** Called for payloads the dispatcher rejects or whose action has no handler. Default: counted in stats. */
  onUnrouted?: (reason: UnroutedReason, notification: Notification<P>, error?: unknown) => void;
  /** Subscriber id of the route. Default: generated. */
  id?: SubscriberId;
}

/** A router bound to a listener channel: `route.on(action, handler)`. */
export interface Route<P = unknown> extends Router<P, Notification<P>> {
  /** Resolves once the channel is listened to. Rejects like `subscribe()` would. */
  readonly ready: Promise<void>;
  /** Stops routing (unsubscribes). */
  close(): Promise<void>;
}

/** The listener's events. Errors are not events: they go to `onError`. */
export interface ListenerEvents {
  /** A connection is established and every wanted channel is listened to. */
  connected: [info: { pid: number }];
  /** The connection was lost. */
  disconnected: [info: { cause: PgNotifyError }];
  /** A reconnection attempt is about to be made after `delayMs`. */
  reconnecting: [info: { attempt: number; delayMs: number; cause: Error }];
  /** A replacement connection listens again; a `gap` follows. */
  reconnected: [info: { pid: number; downtimeMs: number }];
  /** Notifications on `gap.channels` were lost during an outage. Resync now. */
  gap: [gap: Gap];
  /** A subscriber's buffer was full and notifications were dropped. */
  overflow: [
    info: {
      subscriberId: SubscriberId;
      channels: readonly string[];
      dropped: number;
      totalDropped: number;
    },
  ];
  /** The state changed (see {@link ListenerState}). */
  state: [state: ListenerState];
}

/** Counters and gauges from `listener.stats()`. */
export interface ListenerStats {
  readonly state: ListenerState;
  /** Backend pid of the listener connection, when connected. */
  readonly pid: number | undefined;
  /** Notifications read from the server. */
  readonly received: number;
  /** Deliveries to subscribers (one notification to three subscribers counts three). */
  readonly delivered: number;
  /** Notifications lost to buffer overflow, all subscribers together. */
  readonly dropped: number;
  readonly handlerErrors: number;
  readonly decodeErrors: number;
  /** Payloads that failed their channel's schema (never delivered). */
  readonly validationErrors: number;
  /** Routed notifications that had no action or no handler. */
  readonly unrouted: number;
  readonly reconnects: number;
  /** When the last notification was read (ms since the epoch). */
  readonly lastNotificationAt: number | undefined;
  /** Channels that must be listened to, and those the server confirmed. */
  readonly channels: { readonly active: number; readonly listening: number };
  readonly subscribers: readonly {
    readonly id: SubscriberId;
    readonly buffered: number;
    readonly dropped: number;
    readonly inFlight: number;
  }[];
}

type AnySubscription = Subscription<unknown>;
/** A channel's entry in the delivery index. */
interface IndexEntry {
  /** The channel (the string it was subscribed with, long-lived). */
  readonly channel: string;
  readonly subscribers: AnySubscription[];
  /**
   * No schema on the channel, every subscriber uses the listener's decoder and none has it as
   * its stop channel: decode once and hand the same notification to all (the fast path).
   */
  readonly plain: boolean;
  /** The subscriber when there is exactly one: delivery then skips the array (a cold line). */
  readonly single: AnySubscription | undefined;
}
type Listeners = { [E in keyof ListenerEvents]?: ((...args: ListenerEvents[E]) => void)[] };

/**
 * One dedicated PostgreSQL connection that multiplexes every channel and subscriber.
 * Create it with {@link createListener}.
 */
export class Listener<Channels extends ChannelMap = ChannelMap> implements SubscriptionOwner {
  private readonly options: ResolvedListenerOptions;
  private readonly session: Session;
  private readonly decoder: DecodeFunction;
  private registry: Registry<AnySubscription> = reg.emptyRegistry();
  /** channel → subscribers to deliver to; rebuilt for touched channels only. */
  private readonly index = new Map<string, IndexEntry>();
  /** The entry the last notification went to (cleared on every change). */
  private lastRoute: IndexEntry | undefined;
  private readonly events: Listeners = {};
  private nextId = 1;
  private chain: Promise<void> | undefined;
  private chainLength = 0;
  private pendingOverflow = new Map<OverflowSource, number>();
  private overflowTimer: NodeJS.Immediate | undefined;
  private stopPromise: Promise<void> | undefined;
  private failure: PgNotifyError | undefined;
  private resolveClosed!: () => void;
  private readonly counters = {
    received: 0,
    delivered: 0,
    dropped: 0,
    handlerErrors: 0,
    decodeErrors: 0,
    validationErrors: 0,
    unrouted: 0,
    // 0 until the first notification: a number field from the start, so storing the clock
    // reading (not a small integer) never allocates. stats() reports 0 as undefined.
    lastNotificationAt: 0,
  };

  /** Resolves once the listener is stopped or has failed for good (classic-pg-listener's join). */
  readonly closed: Promise<void>;

  /** @internal Use {@link createListener}. */
  constructor(options: ListenerOptions<Channels> = {}) {
    this.options = resolveListenerOptions(options as ListenerOptions<ChannelMap>);
    this.decoder = decoderFor(this.options.decode);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.session = new Session(this.options, {
      // Bound, not a closure: the delivery path's optimized code is shared by all listeners.
      notification: this.onNotification.bind(this),
      state: (state) => {
        this.emit('state', state);
        if (state === 'failed') this.resolveClosed();
      },
      connected: (pid) => this.emit('connected', { pid }),
      disconnected: (cause) => this.emit('disconnected', { cause }),
      reconnecting: (attempt, delayMs, cause) =>
        this.emit('reconnecting', { attempt, delayMs, cause }),
      reconnected: (gap) => this.onReconnected(gap),
      failed: (error) => {
        this.failure = error;
        this.reportError(error);
        // Nothing more will arrive: loops and next() end with the failure, after their buffers.
        for (const [, entry] of this.registry.subscribers) entry.value.end(error);
      },
      error: (error) => this.reportError(error),
    });
    const stopChannel = this.options.stopChannel;
    if (stopChannel !== undefined) {
      // Registered synchronously (before subscribe's first await), so start() LISTENs it.
      this.subscribe(stopChannel, () => void this.stop(), {
        id: 'pgnotify:stop',
        concurrency: 0,
        decode: 'text',
      }).catch((error: unknown) => this.reportError(toError(error)));
    }
  }

  /** The lifecycle state: `idle`, `connecting`, `listening`, `reconnecting`, `failed` or `stopped`. */
  get state(): ListenerState {
    return this.session.state;
  }

  /** Backend process id of the listener connection, when connected. */
  get pid(): number | undefined {
    return this.session.pid;
  }

  /**
   * Connects and LISTENs every channel subscribed so far. Resolves once the server confirmed;
   * rejects with `PGNOTIFY_CONNECTION_FAILED` when the first connection fails (no retry: a
   * bad URL or password should fail fast). Idempotent while running.
   */
  start(): Promise<void> {
    return this.session.start();
  }

  /**
   * Stops: closes the connection (the server drops its LISTENs), aborts a pending
   * reconnection, ends every subscription, lets running and buffered handler work finish
   * for up to `stopTimeoutMs`, then resolves. Safe to call twice; later calls that need the
   * connection reject with `PGNOTIFY_CLOSED`.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  /**
   * Delivers what has arrived and returns (PyGreSQL's `timeout=0` poll): one round trip to
   * the server, so every notification committed before the call has been read, then waits
   * until every handler has worked through its buffer.
   */
  async drain(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.session.state === 'listening') await this.session.ping();
    const subscriptions = this.registry.subscribers
      .valueSeq()
      .map((entry) => entry.value)
      .toArray();
    const drained = Promise.all(subscriptions.map((s) => s.drained())).then(() => undefined);
    const { signal } = options;
    if (signal === undefined) return drained;
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

  /** `await using listener = createListener(…)` stops the listener at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Blocking mode (classic-pg-listener's `run()`): starts, then resolves when the listener is
   * stopped (by `stop()` or `signal`), or rejects when it fails for good.
   */
  async run(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const onAbort = (): void => void this.stop();
    if (signal?.aborted) return this.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      try {
        await this.start();
      } catch (error) {
        // Stopped while starting (the signal, or stop() elsewhere): that is a normal end.
        if (this.session.state === 'stopped') return;
        throw error;
      }
      await this.closed;
      if (this.session.state === 'failed') {
        throw new PgNotifyError(ErrorCode.CONNECTION_FAILED, 'the listener failed for good', {
          cause: this.failure,
        });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Subscribes a handler to one or more channels. Resolves once the server confirmed LISTEN,
   * so a notification sent after the await is never missed (before `start()`, at once).
   * @example
   * const sub = await listener.subscribe('orders', (n) => console.log(n.payload), { id: 42 })
   */
  subscribe<K extends keyof Channels & string>(
    channels: K | readonly K[],
    handler: Handler<Channels[K]>,
    options?: SubscribeOptions,
  ): Promise<Subscription<Channels[K]>>;
  /**
   * Subscribes without a handler: the subscription is an async iterable with `poll()` and
   * `next()`, over a bounded buffer.
   * @example
   * const feed = await listener.subscribe(['a', 'b'])
   * for await (const n of feed) console.log(n.channel, n.payload)
   */
  subscribe<K extends keyof Channels & string>(
    channels: K | readonly K[],
    options?: SubscribeOptions,
  ): Promise<Subscription<Channels[K]>>;
  async subscribe<T>(
    channels: string | readonly string[],
    handlerOrOptions?: Handler<T> | SubscribeOptions,
    maybeOptions?: SubscribeOptions,
  ): Promise<Subscription<T>> {
    this.assertOpen();
    const handler = typeof handlerOrOptions === 'function' ? handlerOrOptions : undefined;
    const options =
      (typeof handlerOrOptions === 'function' ? maybeOptions : handlerOrOptions) ?? {};
    const stopChannel =
      options.stopChannel === undefined ? undefined : checkChannel(options.stopChannel);
    const list = channelList(channels);
    if (stopChannel !== undefined && !list.includes(stopChannel)) list.push(stopChannel);
    const id = options.id ?? this.generateId();
    if (typeof id !== 'string' && typeof id !== 'number') {
      throw new PgNotifyError(
        ErrorCode.INVALID_OPTION,
        `option id: expected a string or a number, got ${typeof id}`,
      );
    }
    const buffer = bufferOption('buffer', options.buffer, this.options.buffer);
    // Every option is validated before the Subscription exists: its constructor arms the idle
    // timer, which a throw after it would leave running.
    const decoder =
      options.decode === undefined ? undefined : decoderFor(decodeOption('decode', options.decode));
    const subscription = new Subscription<unknown>(this, {
      id,
      handler: handler as Handler<unknown> | undefined,
      concurrency: intOption('concurrency', options.concurrency, this.options.concurrency, 0),
      max: buffer.max,
      overflow: buffer.overflow,
      onGap: functionOption<SubscribeOptions['onGap']>('onGap', options.onGap, undefined),
      idleTimeoutMs: timeoutOption('idleTimeoutMs', options.idleTimeoutMs),
      onIdle: functionOption<SubscribeOptions['onIdle']>('onIdle', options.onIdle, undefined),
      stopChannel,
    });
    if (decoder !== undefined && decoder !== this.decoder) subscription.decoder = decoder;
    try {
      this.apply(reg.subscribe(this.registry, id, subscription, list));
    } catch (error) {
      subscription.end();
      throw error;
    }
    const signal = options.signal;
    if (signal !== undefined) {
      // Only this subscription: the id may belong to a later subscriber once this one ended.
      const onAbort = (): void => {
        if (this.registry.subscribers.get(id)?.value !== subscription) return;
        this.unsubscribe(id).catch((error: unknown) => this.reportError(toError(error)));
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        subscription.onEnd = () => signal.removeEventListener('abort', onAbort);
      }
    }
    try {
      await this.session.sync();
    } catch (error) {
      if (this.registry.subscribers.get(id)?.value === subscription) {
        this.apply(reg.unsubscribe(this.registry, id));
        subscription.end();
      }
      throw error;
    }
    return subscription as Subscription<T>;
  }

  /**
   * Removes a subscriber from `channels` (all of its channels when omitted); a subscriber left
   * with no channel ends. Resolves once the server stopped listening where nobody else does.
   * Unknown ids are ignored.
   */
  async unsubscribe(id: SubscriberId, channels?: string | readonly string[]): Promise<void> {
    const entry = this.registry.subscribers.get(id);
    if (entry === undefined) return;
    const list = channels === undefined ? undefined : channelList(channels);
    this.apply(reg.unsubscribe(this.registry, id, list));
    if (!this.registry.subscribers.has(id)) entry.value.end(undefined, true);
    // While (re)connecting nothing is listened to, and the connection being made UNLISTENs
    // what is no longer wanted as soon as it is adopted: nothing to wait for.
    const state = this.session.state;
    if (state === 'reconnecting' || state === 'connecting') return;
    await this.syncUnlessStopped();
  }

  /** Mutes channels (all when omitted): the server stops listening to them. */
  async mute(channels?: string | readonly string[]): Promise<void> {
    this.assertOpen();
    this.apply(
      reg.muteChannels(this.registry, channels === undefined ? undefined : channelList(channels)),
    );
    await this.session.sync();
  }

  /** Unmutes channels (all when omitted); those with an unmuted subscriber are listened to again. */
  async unmute(channels?: string | readonly string[]): Promise<void> {
    this.assertOpen();
    this.apply(
      reg.unmuteChannels(this.registry, channels === undefined ? undefined : channelList(channels)),
    );
    await this.session.sync();
  }

  /** Mutes a subscriber on `channels` (all of its channels when omitted). */
  async muteSubscriber(id: SubscriberId, channels?: string | readonly string[]): Promise<void> {
    this.assertOpen();
    this.apply(
      reg.muteSubscriber(
        this.registry,
        id,
        channels === undefined ? undefined : channelList(channels),
      ),
    );
    await this.session.sync();
  }

  /** Unmutes a subscriber on `channels` (all of its channels when omitted). */
  async unmuteSubscriber(id: SubscriberId, channels?: string | readonly string[]): Promise<void> {
    this.assertOpen();
    this.apply(
      reg.unmuteSubscriber(
        this.registry,
        id,
        channels === undefined ? undefined : channelList(channels),
      ),
    );
    await this.session.sync();
  }

  /** A frozen snapshot of every channel: mute flag, activity, server confirmation, subscribers. */
  channels(): readonly ChannelInfo[] {
    return reg.channelInfos(this.registry, (channel) => this.session.isListening(channel));
  }

  /** A frozen snapshot of every subscriber and its channels with mute flags. */
  subscribers(): readonly SubscriberInfo[] {
    return reg.subscriberInfos(this.registry);
  }

  /**
   * Resolves with the first notification on `channel` that passes `filter`.
   * @example
   * const n = await listener.once('job_done', { timeoutMs: 5000, filter: (n) => n.payload.id === 7 })
   */
  once<K extends keyof Channels & string>(
    channel: K,
    options: OnceOptions<Channels[K]> = {},
  ): OncePromise<Channels[K]> {
    const timeoutMs = timeoutOption('timeoutMs', options.timeoutMs);
    const { filter, signal } = options;
    if (signal?.aborted) {
      const ready = Promise.reject(abortedError(signal));
      ready.catch(() => undefined);
      return Object.assign(Promise.reject(abortedError(signal)), { ready });
    }
    let ready: Promise<void> = Promise.resolve();
    const result = new Promise<Notification<Channels[K]>>((resolve, reject) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const id = this.generateId();
      const finish = (error: Error | undefined, notification?: Notification<Channels[K]>): void => {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        void this.unsubscribe(id).catch(() => undefined);
        if (error !== undefined) reject(error);
        else resolve(notification as Notification<Channels[K]>);
      };
      const onAbort = (): void => finish(abortedError(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            finish(
              new PgNotifyError(
                ErrorCode.TIMEOUT,
                `no notification on ${JSON.stringify(channel)} within ${timeoutMs} ms`,
                { channel },
              ),
            ),
          timeoutMs,
        );
      }
      ready = this.subscribe(
        channel,
        (notification) => {
          if (done) return;
          try {
            if (filter !== undefined && !filter(notification)) return;
          } catch (error) {
            finish(toError(error));
            return;
          }
          finish(undefined, notification);
        },
        { id, concurrency: 0 },
      ).then(
        () => undefined,
        (error: unknown) => {
          finish(toError(error));
          throw error;
        },
      );
    });
    // `ready` rejects like the wait itself; nobody has to await it.
    ready.catch(() => undefined);
    return Object.assign(result, { ready });
  }

  /**
   * Routes a channel's payloads to handlers per action (pgnotifpy). Returns at once; the
   * route's `ready` resolves once the channel is listened to.
   * @example
   * const jobs = listener.route('job')
   * jobs.on('new_user', (user) => greet(user)).on('delete_user', (user) => bye(user))
   */
  route<K extends keyof Channels & string>(
    channel: K,
    options: RouteOptions<Channels[K]> = {},
  ): Route<Channels[K]> {
    this.assertOpen();
    type N = Notification<Channels[K]>;
    const dispatch = functionOption<DispatchFunction<Channels[K], N>>(
      'dispatch',
      options.dispatch,
      defaultDispatch as DispatchFunction<Channels[K], N>,
    );
    const onUnrouted = functionOption<RouteOptions<Channels[K]>['onUnrouted']>(
      'onUnrouted',
      options.onUnrouted,
      undefined,
    );
    const id = options.id ?? this.generateId();
    const router = new Router<Channels[K], N>(
      dispatch,
      (reason, notification, error) => {
        this.counters.unrouted++;
        if (onUnrouted === undefined) return;
        try {
          onUnrouted(reason, notification, error);
        } catch (hookError) {
          this.reportError(toError(hookError));
        }
      },
      (error, notification, action) =>
        this.handlerFailed(error, id, notification.channel, `action ${JSON.stringify(action)}`),
    ) as Route<Channels[K]>;
    const ready = this.subscribe(channel, (n) => router.handle(n.payload, n), {
      id,
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    }).then(() => undefined);
    ready.catch(() => undefined);
    Object.defineProperties(router, {
      ready: { value: ready },
      close: { value: () => this.unsubscribe(id) },
    });
    return router;
  }

  /** Adds an event listener. A throwing listener is reported to `onError`. */
  on<E extends keyof ListenerEvents>(
    event: E,
    listener: (...args: ListenerEvents[E]) => void,
  ): this {
    const list = (this.events[event] ?? []) as ((...args: ListenerEvents[E]) => void)[];
    list.push(listener);
    (this.events as Record<string, unknown>)[event] = list;
    return this;
  }

  /** Removes an event listener. */
  off<E extends keyof ListenerEvents>(
    event: E,
    listener: (...args: ListenerEvents[E]) => void,
  ): this {
    const list = this.events[event] as ((...args: ListenerEvents[E]) => void)[] | undefined;
    if (list !== undefined) {
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
    }
    return this;
  }

  /** Counters and gauges for health checks and metrics. */
  stats(): ListenerStats {
    const subscribers = [];
    let active = 0;
    for (const [, entry] of this.registry.subscribers) {
      const s = entry.value;
      subscribers.push({
        id: s.id,
        buffered: s.buffered,
        dropped: s.dropped,
        inFlight: s.inFlight,
      });
    }
    for (const [name] of this.registry.channels) if (reg.isActive(this.registry, name)) active++;
    return {
      state: this.session.state,
      pid: this.session.pid,
      ...this.counters,
      lastNotificationAt: this.counters.lastNotificationAt || undefined,
      reconnects: this.session.reconnects,
      channels: { active, listening: this.session.listeningCount },
      subscribers,
    };
  }

  // ---- SubscriptionOwner -------------------------------------------------------------

  /** @internal */
  reportHandlerError(error: unknown, subscriberId: SubscriberId, notification: Notification): void {
    this.handlerFailed(error, subscriberId, notification.channel, 'handler');
  }

  /** @internal */
  reportOverflow(subscription: OverflowSource, dropped: number): void {
    this.counters.dropped += dropped;
    this.pendingOverflow.set(subscription, (this.pendingOverflow.get(subscription) ?? 0) + dropped);
    this.overflowTimer ??= setImmediate(() => this.flushOverflow());
  }

  /** @internal Hands an error to `onError`; never throws. */
  reportError(error: Error): void {
    try {
      this.options.onError(error);
    } catch (hookError) {
      process.stderr.write(
        `pgnotify: onError threw: ${toError(hookError).message} (reporting: ${error.message})\n`,
      );
    }
  }

  // ---- internals ----------------------------------------------------------------------

  private onNotification(channel: string, raw: string, pid: number, receivedAt: number): void {
    const counters = this.counters;
    counters.received++;
    counters.lastNotificationAt = receivedAt;
    if (this.options.ignoreOwn && pid === this.session.pid) return;
    // Bursts usually stay on one channel: comparing with the last entry's channel is cheaper
    // than hashing the fresh string pg made for every notification. That fresh string is
    // never stored: keeping a reference to a new string in this long-lived object costs a
    // write barrier per notification, which made spread-out traffic ~15 % dearer.
    let route = this.lastRoute;
    if (route === undefined || route.channel !== channel) {
      route = this.index.get(channel);
      if (route === undefined) return;
      this.lastRoute = route;
    }
    if (!route.plain || this.chain !== undefined) {
      this.deliverChecked(route.subscribers, channel, raw, pid, receivedAt);
      return;
    }
    // The common case: decode once, hand the same notification to every subscriber. Kept
    // small, with the rare paths in other methods, so the JIT inlines it whole. It carries the
    // index's channel string (equal to pg's): buffered notifications then share one string
    // instead of each keeping its own copy alive.
    const notification = this.decode(this.decoder, route.channel, raw, pid, receivedAt);
    if (notification === null) return;
    const single = route.single;
    if (single !== undefined) {
      single.deliver(notification);
      counters.delivered++;
      return;
    }
    const subscribers = route.subscribers;
    for (let i = 0; i < subscribers.length; i++) {
      (subscribers[i] as AnySubscription).deliver(notification);
    }
    counters.delivered += subscribers.length;
  }

  /** Channels with a schema, a per-subscriber decoder or a stop channel; arrival order kept. */
  private deliverChecked(
    subscribers: readonly AnySubscription[],
    channel: string,
    raw: string,
    pid: number,
    receivedAt: number,
  ): void {
    if (this.chain !== undefined) {
      this.enqueue(() => this.process(subscribers, channel, raw, pid, receivedAt));
      return;
    }
    const pending = this.process(subscribers, channel, raw, pid, receivedAt);
    if (pending !== undefined) this.enqueue(() => pending);
  }

  /** Keeps arrival order once an asynchronous schema is involved. */
  private enqueue(step: () => Promise<void> | undefined): void {
    this.chainLength++;
    const run = async (): Promise<void> => {
      try {
        await step();
      } finally {
        if (--this.chainLength === 0) this.chain = undefined;
      }
    };
    this.chain = (this.chain ?? Promise.resolve()).then(run, run);
  }

  /** Decodes once per decoder, validates, delivers. Returns a promise only for async schemas. */
  private process(
    subscribers: readonly AnySubscription[],
    channel: string,
    raw: string,
    pid: number,
    receivedAt: number,
  ): Promise<void> | undefined {
    const schema = this.options.schemas.get(channel);
    let shared: Notification | null | undefined;
    let custom: Map<DecodeFunction, Notification | null> | undefined;
    let waits: Promise<void>[] | undefined;
    for (let i = 0; i < subscribers.length; i++) {
      const subscriber = subscribers[i] as AnySubscription;
      if (subscriber.stopChannel === channel) {
        // A stop notification ends the subscription whatever its payload: never decoded.
        subscriber.deliver({ channel, payload: raw, raw, pid, receivedAt });
        continue;
      }
      const decoder = subscriber.decoder;
      let notification: Notification | null | undefined;
      if (decoder === undefined) {
        if (shared === undefined) shared = this.decode(this.decoder, channel, raw, pid, receivedAt);
        notification = shared;
      } else {
        custom ??= new Map();
        notification = custom.get(decoder);
        if (notification === undefined) {
          notification = this.decode(decoder, channel, raw, pid, receivedAt);
          custom.set(decoder, notification);
        }
      }
      if (notification === null) continue;
      if (schema === undefined) {
        subscriber.deliver(notification);
        this.counters.delivered++;
        continue;
      }
      const checked = this.checked(schema, notification);
      if (checked instanceof Promise) {
        waits ??= [];
        waits.push(
          checked.then((n) => {
            if (n !== null) {
              subscriber.deliver(n);
              this.counters.delivered++;
            }
          }),
        );
      } else if (checked !== null) {
        subscriber.deliver(checked);
        this.counters.delivered++;
      }
    }
    return waits === undefined ? undefined : Promise.all(waits).then(() => undefined);
  }

  private readonly validated = new WeakMap<
    Notification,
    Notification | null | Promise<Notification | null>
  >();

  /** Validates a decoded notification once; null when it fails (reported). */
  private checked(
    schema: Schema,
    notification: Notification,
  ): Notification | null | Promise<Notification | null> {
    const cached = this.validated.get(notification);
    if (cached !== undefined) return cached;
    const finish = (result: Validated): Notification | null => {
      if (!result.ok) {
        this.counters.validationErrors++;
        this.reportError(result.error);
        return null;
      }
      return result.value === notification.payload
        ? notification
        : { ...notification, payload: result.value };
    };
    const result = validate(schema, notification.payload, notification.channel);
    const out = result instanceof Promise ? result.then(finish) : finish(result);
    this.validated.set(notification, out);
    return out;
  }

  private decode(
    decoder: DecodeFunction,
    channel: string,
    raw: string,
    pid: number,
    receivedAt: number,
  ): Notification | null {
    let payload: unknown;
    try {
      payload = decoder(raw, channel);
    } catch (cause) {
      this.decodeFailed(cause, channel);
      return null;
    }
    return { channel, payload, raw, pid, receivedAt };
  }

  private decodeFailed(cause: unknown, channel: string): void {
    this.counters.decodeErrors++;
    this.reportError(
      new PgNotifyError(
        ErrorCode.DECODE_FAILED,
        `payload on ${JSON.stringify(channel)} could not be decoded: ${toError(cause).message}`,
        { cause, channel },
      ),
    );
  }

  private onReconnected(gap: Gap): void {
    this.emit('reconnected', { pid: this.session.pid ?? 0, downtimeMs: gap.downtimeMs });
    this.emit('gap', gap);
    if (gap.channels.length === 0) return;
    let lost: Set<string> | undefined;
    for (const [, entry] of this.registry.subscribers) {
      // Most subscriptions read no gaps: they cost nothing here, even by the ten thousand.
      if (!entry.value.readsGaps) continue;
      lost ??= new Set(gap.channels);
      const mine: string[] = [];
      for (const channel of entry.channels) if (lost.has(channel)) mine.push(channel);
      if (mine.length > 0)
        entry.value.gap(mine.length === gap.channels.length ? gap : { ...gap, channels: mine });
    }
  }

  private handlerFailed(
    error: unknown,
    subscriberId: SubscriberId,
    channel: string,
    what: string,
  ): void {
    this.counters.handlerErrors++;
    this.reportError(
      new PgNotifyError(
        ErrorCode.HANDLER_FAILED,
        `${what} of subscriber ${JSON.stringify(subscriberId)} failed on ${JSON.stringify(channel)}: ${toError(error).message}`,
        { cause: error, channel, subscriberId },
      ),
    );
  }

  private flushOverflow(): void {
    this.overflowTimer = undefined;
    const pending = this.pendingOverflow;
    this.pendingOverflow = new Map();
    for (const [subscription, dropped] of pending) {
      const channels = reg.channelsOf(this.registry, subscription.id) ?? [];
      this.emit('overflow', {
        subscriberId: subscription.id,
        channels,
        dropped,
        totalDropped: subscription.dropped,
      });
      this.reportError(
        new PgNotifyError(
          ErrorCode.BUFFER_OVERFLOW,
          `subscriber ${JSON.stringify(subscription.id)} dropped ${dropped} notification(s): its buffer is full` +
            ' (a consumer slower than the notification rate; raise buffer.max or read faster)',
          { subscriberId: subscription.id },
        ),
      );
    }
  }

  /** Applies a registry change: index and wanted set for the touched channels only. */
  private apply(change: reg.Change<AnySubscription>): void {
    this.registry = change.registry;
    this.lastRoute = undefined;
    for (const channel of change.touched) {
      const recipients = reg.recipients(this.registry, channel);
      if (recipients.length === 0) this.index.delete(channel);
      else
        this.index.set(channel, {
          channel,
          subscribers: recipients,
          plain:
            !this.options.schemas.has(channel) &&
            recipients.every((s) => s.decoder === undefined && s.stopChannel !== channel),
          single: recipients.length === 1 ? recipients[0] : undefined,
        });
      this.session.want(channel, reg.isActive(this.registry, channel));
    }
  }

  /** Syncs for an unsubscribe; a stop that cuts it short has met the goal (nothing listened). */
  private async syncUnlessStopped(): Promise<void> {
    if (this.stopPromise !== undefined) return;
    if (this.session.state === 'stopped' || this.session.state === 'failed') return;
    try {
      await this.session.sync();
    } catch (error) {
      if (this.stopPromise !== undefined && (error as PgNotifyError).code === ErrorCode.CLOSED)
        return;
      throw error;
    }
  }

  private async shutdown(): Promise<void> {
    await this.session.stop();
    const subscriptions = this.registry.subscribers
      .valueSeq()
      .map((entry) => entry.value)
      .toArray();
    for (const subscription of subscriptions) subscription.end();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(subscriptions.map((s) => s.drained())).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), this.options.stopTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!finished) {
      const running = subscriptions.reduce((n, s) => n + s.inFlight + s.buffered, 0);
      this.reportError(
        new PgNotifyError(
          ErrorCode.TIMEOUT,
          `stop() abandoned ${running} handler call(s) still running or queued after stopTimeoutMs (${this.options.stopTimeoutMs} ms)`,
        ),
      );
    }
    if (this.overflowTimer !== undefined) {
      clearImmediate(this.overflowTimer);
      this.flushOverflow();
    }
    this.resolveClosed();
  }

  private emit<E extends keyof ListenerEvents>(event: E, ...args: ListenerEvents[E]): void {
    const list = this.events[event] as ((...a: ListenerEvents[E]) => void)[] | undefined;
    if (list === undefined) return;
    for (const listener of [...list]) {
      try {
        listener(...args);
      } catch (error) {
        this.reportError(toError(error));
      }
    }
  }

  private generateId(): string {
    let id: string;
    do id = `pgnotify:${this.nextId++}`;
    while (this.registry.subscribers.has(id));
    return id;
  }

  private assertOpen(): void {
    if (this.session.state === 'stopped' || this.stopPromise !== undefined) {
      throw listenerClosedError();
    }
  }
}

/**
 * Creates a listener. Nothing connects until `start()`.
 * @example
 * const listener = createListener<{ orders: { id: number } }>({ connection: process.env.DATABASE_URL })
 * await listener.subscribe('orders', (n) => console.log(n.payload.id))
 * await listener.start()
 */
export function createListener<Channels extends ChannelMap = ChannelMap>(
  options: ListenerOptions<Channels> = {},
): Listener<Channels> {
  return new Listener<Channels>(options);
}

function channelList(channels: unknown): string[] {
  if (typeof channels === 'string') return [checkChannel(channels)];
  if (!Array.isArray(channels) || channels.length === 0) {
    throw new PgNotifyError(
      ErrorCode.INVALID_CHANNEL,
      'expected a channel name or a non-empty array of channel names',
    );
  }
  return channels.map(checkChannel);
}
