/**
 * What a listener tells the outside world: its events (`on`/`off`; a throwing event listener
 * is reported, never thrown), errors handed to `onError` (never thrown; a throwing hook is
 * written to stderr), both mirrored on `node:diagnostics_channel`; the session's lifecycle
 * hooks turned into those events, gap reports and the listener's end (`closed`); and the
 * `stats()` snapshot. Reached only from the listener; it never calls back into it.
 */
import { publishError, publishEvent } from './diagnostics.js';
import { asPgNotifyError, ErrorCode, type PgNotifyError, toError } from './errors.js';
import type { Session, SessionHooks } from './session.js';
import type { Subscribers } from './subscribers.js';
import type { ErrorHandler, ListenerEvents, ListenerStats } from './types.js';

type EventListener<E extends keyof ListenerEvents> = (...args: ListenerEvents[E]) => void;
type Listeners = { [E in keyof ListenerEvents]?: EventListener<E>[] };

/** @internal A listener's event listeners and its error hook. */
export class ListenerEventHub {
  /** The listener itself, as named in diagnostics messages. */
  readonly #source: object;
  readonly #onError: ErrorHandler<PgNotifyError>;
  readonly #events: Listeners = {};
  #resolveClosed!: () => void;
  /** Resolves once the listener is stopped or has failed for good (`listener.closed`). */
  readonly closed: Promise<void>;
  /** Why the listener failed for good, once it has. */
  failure: PgNotifyError | undefined;

  constructor(source: object, onError: ErrorHandler<PgNotifyError>) {
    this.#source = source;
    this.#onError = onError;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Resolves `closed`: the listener is stopped or failed for good. */
  end(): void {
    this.#resolveClosed();
  }

  /** Adds an event listener. */
  on<E extends keyof ListenerEvents>(event: E, listener: EventListener<E>): void {
    const list = (this.#events[event] ?? []) as EventListener<E>[];
    list.push(listener);
    (this.#events as Record<string, unknown>)[event] = list;
  }

  /** Removes an event listener. */
  off<E extends keyof ListenerEvents>(event: E, listener: EventListener<E>): void {
    const list = this.#events[event] as EventListener<E>[] | undefined;
    const at = list?.indexOf(listener) ?? -1;
    if (at >= 0) list?.splice(at, 1);
  }

  /** Publishes an event on its diagnostics channel, then calls each listener; never throws. */
  emit<E extends keyof ListenerEvents>(event: E, ...args: ListenerEvents[E]): void {
    publishEvent(this.#source, event, args);
    const list = this.#events[event] as EventListener<E>[] | undefined;
    if (list === undefined) return;
    for (const listener of [...list]) {
      try {
        listener(...args);
      } catch (error) {
        const what = `a ${JSON.stringify(event)} event listener threw`;
        this.report(asPgNotifyError(error, ErrorCode.HANDLER_FAILED, what));
      }
    }
  }

  /** Hands an error to `onError`; never throws. */
  report(error: PgNotifyError): void {
    publishError(this.#source, error);
    try {
      this.#onError(error);
    } catch (hookError) {
      process.stderr.write(
        `pgnotify: onError threw: ${toError(hookError).message} (reporting: ${error.message})\n`,
      );
    }
  }
}

/**
 * @internal The session hooks but `notification` (the listener delivers those itself): each
 * becomes an event; a reconnection also reports the gap to subscribers, a failure ends them.
 */
export function lifecycleHooks(
  hub: ListenerEventHub,
  subs: Subscribers,
  pid: () => number | undefined,
): Omit<SessionHooks, 'notification'> {
  return {
    state: (state) => {
      hub.emit('state', state);
      if (state === 'failed') hub.end();
    },
    connected: (pid) => hub.emit('connected', { pid }),
    disconnected: (cause) => hub.emit('disconnected', { cause }),
    reconnecting: (attempt, delayMs, cause) =>
      hub.emit('reconnecting', { attempt, delayMs, cause }),
    reconnected: (gap) => {
      hub.emit('reconnected', { pid: pid() ?? 0, downtimeMs: gap.downtimeMs });
      const visible = subs.publicGap(gap);
      if (visible !== undefined) hub.emit('gap', visible);
      subs.gap(gap);
    },
    failed: (error) => {
      hub.failure = error;
      hub.report(error);
      // Nothing more will arrive: loops and next() end with the failure, after their buffers.
      for (const subscription of subs.registry.values()) subscription.end(error);
    },
    error: (error) => hub.report(error),
  };
}

/** @internal The `listener.stats()` snapshot from the session, the subscribers and the read counters. */
export function listenerStats(
  session: Session,
  subs: Subscribers,
  read: { readonly received: number; readonly lastAt: number },
): ListenerStats {
  const { registry, delivery, counters } = subs;
  return {
    state: session.state,
    pid: session.pid,
    received: read.received,
    ...delivery.counters,
    ...counters,
    reconnects: session.reconnects,
    lastNotificationAt: read.lastAt || undefined,
    channels: { active: registry.activeCount(), listening: session.listening.size },
    subscribers: registry.values().map(({ id, buffered, dropped, inFlight }) => ({
      id,
      buffered,
      dropped,
      inFlight,
    })),
  };
}
