/**
 * The Listener: what users hold. A facade over the registry (who listens to what), delivery
 * (derived from it), the subscriptions and one Session; it turns session hooks into events
 * and keeps every error away from the host process (they go to `onError`). The events, the
 * error hook, the session hooks that feed them and the stats snapshot live in listener-events.ts.
 */

import { publishReceived, receivedChannel } from './diagnostics.js';
import { asPgNotifyError, ErrorCode, listenerClosedError, PgNotifyError } from './errors.js';
import { ListenerEventHub, lifecycleHooks, listenerStats } from './listener-events.js';
import { once } from './once.js';
import { type ResolvedListenerOptions, resolveListenerOptions } from './options.js';
import { createRoute } from './router.js';
import { Session } from './session.js';
import { channelList, Subscribers } from './subscribers.js';
import type { Subscription } from './subscription.js';
import type {
  ActionsOf,
  ChannelInfo,
  ChannelMap,
  DefaultDispatched,
  Handler,
  ListenerEvents,
  ListenerOptions,
  ListenerState,
  ListenerStats,
  OnceOptions,
  OncePromise,
  Route,
  RouteOptions,
  SubscribeOptions,
  SubscriberId,
  SubscriberInfo,
} from './types.js';

/** @internal What pgnotify's own modules (durable channels) reach inside a listener. */
export interface ListenerInternals {
  readonly session: Session;
  readonly subscribers: Subscribers;
}

/** @internal The internals of a listener, for pgnotify's own modules. */
export let internalsOf: (listener: Listener) => ListenerInternals;

/**
 * One dedicated PostgreSQL connection that multiplexes every channel and subscriber.
 * Create it with {@link createListener}.
 */
export class Listener<Channels extends ChannelMap = ChannelMap> {
  readonly #options: ResolvedListenerOptions;
  readonly #subs: Subscribers;
  readonly #session: Session;
  readonly #events: ListenerEventHub;
  #stopPromise: Promise<void> | undefined;
  readonly #counters = { received: 0, lastAt: 0 };

  static {
    internalsOf = (listener) => ({ session: listener.#session, subscribers: listener.#subs });
  }

  /** Resolves once the listener is stopped or has failed for good. */
  readonly closed: Promise<void>;

  /** @internal Use {@link createListener}. */
  constructor(options: ListenerOptions<Channels> = {}) {
    const resolved = resolveListenerOptions(options as ListenerOptions<ChannelMap>);
    this.#options = resolved;
    this.#events = new ListenerEventHub(this, resolved.onError);
    this.closed = this.#events.closed;
    const report = (error: PgNotifyError): void => this.#events.report(error);
    this.#subs = new Subscribers(resolved, {
      unsubscribe: (id) => this.unsubscribe(id),
      subscribe: (channel, handler, opts) => this.subscribe(channel, handler, opts),
      touch: (channels) => this.#session.listening.touch(channels),
      emitOverflow: (info) => this.#events.emit('overflow', info),
      report,
      query: (text, values) => this.#session.query(text, values),
      state: () => this.#session.state,
      emitGap: (gap) => this.#events.emit('gap', gap),
    });
    const { registry, delivery } = this.#subs;
    this.#session = new Session(
      {
        ...resolved,
        isWanted: (channel) => registry.isActive(channel),
        wanted: () => registry.activeChannels(),
      },
      {
        notification: (channel, raw, pid, receivedAt) => {
          const counters = this.#counters;
          counters.received++;
          counters.lastAt = receivedAt;
          if (receivedChannel.hasSubscribers) publishReceived(this, channel, raw, pid, receivedAt);
          if (resolved.ignoreOwn && pid === this.#session.pid) return;
          delivery.deliver(channel, raw, pid, receivedAt);
        },
        ...lifecycleHooks(this.#events, this.#subs, () => this.#session.pid),
      },
    );
    const stopChannel = resolved.stopChannel;
    if (stopChannel !== undefined) {
      // Registered synchronously (before subscribe's first await), so start() LISTENs it.
      this.subscribe(stopChannel, () => void this.stop(), {
        id: 'pgnotify:stop',
        concurrency: 0,
        decode: 'text',
      }).catch((error: unknown) =>
        report(
          asPgNotifyError(error, ErrorCode.LISTEN_FAILED, 'stopChannel could not be subscribed', {
            channel: stopChannel,
          }),
        ),
      );
    }
  }

  /** The lifecycle state: `idle`, `connecting`, `listening`, `reconnecting`, `failed` or `stopped`. */
  get state(): ListenerState {
    return this.#session.state;
  }

  /** Backend process id of the listener connection, when connected. */
  get pid(): number | undefined {
    return this.#session.pid;
  }

  /**
   * Why the last `start()` failed (state back to `idle`), or why the listener failed for good
   * (state `failed`); `undefined` once a connection listens.
   */
  get lastError(): PgNotifyError | undefined {
    return this.#session.lastError;
  }

  /**
   * Connects and LISTENs every channel subscribed so far. Resolves once the server confirmed.
   * The first connection does not retry (a bad URL or password should fail fast): it rejects
   * with `PGNOTIFY_CONNECTION_FAILED` (`retryable` says whether trying again may help), or
   * `PGNOTIFY_INVALID_OPTION` when no connection is configured or the URL does not parse.
   * After a failure the state is back to `idle` with {@link Listener.lastError} set, and
   * `start()` may be called again. Idempotent while running. Durable subscriptions made before
   * it have their start position (`'now'`, a consumer's stored cursor) when it resolves.
   */
  async start(): Promise<void> {
    await this.#session.start();
    // Durable subscriptions made before start() take their start position once connected
    // ('now' is read then): resolve after that, so nothing committed after start() resolved
    // can be taken for "before now".
    await this.#subs.durableStarted();
  }

  /**
   * Stops: closes the connection (the server drops its LISTENs), aborts a pending
   * reconnection, ends every subscription, lets running and buffered handler work finish
   * for up to `stopTimeoutMs`, then resolves. Safe to call twice; later calls that need the
   * connection reject with `PGNOTIFY_CLOSED`.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#shutdown();
    return this.#stopPromise;
  }

  /**
   * Delivers what has arrived and returns: one round trip to the server, so every
   * notification committed before the call has been read, then waits until every handler
   * has worked through its buffer.
   */
  async drain(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#session.state === 'listening') await this.#session.ping();
    await this.#subs.drained(options.signal);
  }

  /** `await using listener = createListener(…)` stops the listener at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Blocking mode: starts, then resolves when the listener is stopped (by `stop()` or
   * `signal`). Rejects with the error itself when `start()` fails, or with the failure that
   * ended the listener (e.g. `PGNOTIFY_CONNECTION_FAILED` "gave up reconnecting after …").
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
        if (this.#session.state === 'stopped') return;
        throw error;
      }
      await this.closed;
      if (this.#session.state === 'failed') {
        throw (
          this.#events.failure ??
          new PgNotifyError(ErrorCode.CONNECTION_FAILED, 'the listener failed for good')
        );
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
    this.#assertOpen();
    const handler = typeof handlerOrOptions === 'function' ? handlerOrOptions : undefined;
    const options =
      (typeof handlerOrOptions === 'function' ? maybeOptions : handlerOrOptions) ?? {};
    const subscription = this.#subs.add(channels, handler as Handler | undefined, options);
    try {
      await this.#session.sync();
      await this.#subs.started(subscription);
    } catch (error) {
      const { registry } = this.#subs;
      if (registry.get(subscription.id) === subscription) {
        this.#subs.apply(registry.unsubscribe(subscription.id));
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
    const subscription = this.#subs.registry.get(id);
    if (!this.#subs.remove(id, channels)) return;
    // While (re)connecting nothing is listened to, and the connection being made UNLISTENs
    // what is no longer wanted as soon as it is adopted: nothing to wait for.
    const state = this.#session.state;
    if (state === 'reconnecting' || state === 'connecting' || this.#stopPromise !== undefined)
      return;
    if (state === 'stopped' || state === 'failed') return;
    // A named consumer's last cursor write (on a connection of its own): done when this resolves.
    const stored = subscription?.ended === true ? subscription.stored : undefined;
    try {
      await this.#session.sync();
    } catch (error) {
      // A stop that cuts it short has met the goal: nothing is listened to any more.
      if (this.#stopPromise === undefined || (error as PgNotifyError).code !== ErrorCode.CLOSED)
        throw error;
    }
    await stored;
  }

  /** Mutes channels (all when omitted): the server stops listening to them. */
  mute(channels?: string | readonly string[]): Promise<void> {
    return this.#change((registry) => registry.muteChannels(channelList(channels)));
  }

  /** Unmutes channels (all when omitted); those with an unmuted subscriber are listened to again. */
  unmute(channels?: string | readonly string[]): Promise<void> {
    return this.#change((registry) => registry.unmuteChannels(channelList(channels)), true);
  }

  /** Mutes a subscriber on `channels` (all of its channels when omitted). */
  muteSubscriber(id: SubscriberId, channels?: string | readonly string[]): Promise<void> {
    return this.#change((registry) => registry.muteSubscriber(id, channelList(channels)));
  }

  /** Unmutes a subscriber on `channels` (all of its channels when omitted). */
  unmuteSubscriber(id: SubscriberId, channels?: string | readonly string[]): Promise<void> {
    return this.#change((registry) => registry.unmuteSubscriber(id, channelList(channels)), true);
  }

  /** A frozen snapshot of every channel: mute flag, activity, server confirmation, subscribers. */
  channels(): readonly ChannelInfo[] {
    return this.#subs.registry.channelInfos((channel) =>
      this.#session.listening.isListening(channel),
    );
  }

  /** A frozen snapshot of every subscriber and its channels with mute flags. */
  subscribers(): readonly SubscriberInfo[] {
    return this.#subs.registry.subscriberInfos();
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
    return once(this.#subs.owner, channel, options);
  }

  /**
   * Routes a channel's payloads to handlers per action. Returns at once; the route's `ready`
   * resolves once the channel is listened to, `unsubscribe()` ends it.
   * @example
   * const jobs = listener.route('job')
   * jobs.on('new_user', (user) => greet(user)).on('delete_user', (user) => bye(user))
   */
  route<
    K extends keyof Channels & string,
    R extends readonly [string, unknown] = DefaultDispatched<Channels[K]>,
  >(channel: K, options: RouteOptions<Channels[K], R> = {}): Route<Channels[K], ActionsOf<R>> {
    this.#assertOpen();
    return createRoute(this.#subs.owner, channel, options) as unknown as Route<
      Channels[K],
      ActionsOf<R>
    >;
  }

  /** Adds an event listener. A throwing listener is reported to `onError`. */
  on<E extends keyof ListenerEvents>(
    event: E,
    listener: (...args: ListenerEvents[E]) => void,
  ): this {
    this.#events.on(event, listener);
    return this;
  }

  /** Removes an event listener. */
  off<E extends keyof ListenerEvents>(
    event: E,
    listener: (...args: ListenerEvents[E]) => void,
  ): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Counters and gauges for health checks and metrics. */
  stats(): ListenerStats {
    return listenerStats(this.#session, this.#subs, this.#counters);
  }

  // ---- internals ----------------------------------------------------------------------

  /** Applies a mute change; after an unmute, once listened to, durable subscriptions read again. */
  async #change(
    transition: (registry: Subscribers['registry']) => readonly string[],
    unmuted = false,
  ) {
    this.#assertOpen();
    const touched = transition(this.#subs.registry);
    this.#subs.apply(touched);
    await this.#session.sync();
    if (unmuted) this.#subs.relistened(touched);
  }

  async #shutdown(): Promise<void> {
    await this.#session.stop();
    await this.#subs.close(this.#options.stopTimeoutMs);
    this.#events.end();
  }

  #assertOpen(): void {
    if (this.#session.state === 'stopped' || this.#stopPromise !== undefined) {
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
