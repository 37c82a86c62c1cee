/**
 * Every public type of pgnotify, in one place. Behaviour lives in the modules; `index.ts`
 * re-exports these. The option shapes (with their defaults) live in `types-options.ts`
 * and are re-exported here; `options.ts` validates them.
 */
import type { PgNotifyError } from './errors.js';
import type { Listener } from './listener.js';
import type { Router } from './router.js';

export type { Decode, DecodeFunction, Schema } from './codec.js';
export type { InstallResult, InstallSchemaOptions, JournalOptions } from './journal.js';
export type { DurableStatus, PruneOptions, PruneResult } from './journal-admin.js';
export type { JournalPage, JournalRow, ReadJournalOptions } from './journal-read.js';
export type { NotifyOptions, Queryable, SendOptions } from './notifier.js';
export type {
  BufferOptions,
  ChannelMap,
  ConnectionOption,
  DurableOptions,
  DurableStart,
  ErrorHandler,
  HeartbeatOptions,
  ListenerOptions,
  NotifierOptions,
  OnceOptions,
  OverflowPolicy,
  ReconnectOptions,
  SubscribeOptions,
  WaitOptions,
} from './types-options.js';

// ---- notifications and gaps ---------------------------------------------------------------

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
  /**
   * Set on durable notifications only: the message's position in the journal (opaque, ordered
   * as strings). `subscribe(…, { durable: { after: n.cursor } })` resumes right after it.
   */
  readonly cursor?: string;
  /** Never set: lets `item.kind !== undefined` tell a gap from a notification in `withGaps()`. */
  readonly kind?: undefined;
}

/**
 * A loss report, in one of two kinds: `'gap'` ({@link OutageGap}, plain channels: the listener
 * connection was down) or `'expired'` ({@link ExpiredGap}, durable channels: retention pruned
 * messages before this reader got to them). Both reach `onGap`, `withGaps()` loops and the
 * listener's `'gap'` event.
 */
export type Gap = OutageGap | ExpiredGap;

/**
 * An outage report. Sent once the replacement connection LISTENs again: from then on nothing
 * is missed, and whatever was sent on `channels` between `disconnectedAt` and
 * `reconnectedAt` was lost. Resync from your source of truth now; handlers must tolerate
 * seeing an event both in the resync and as a notification.
 */
export interface OutageGap {
  /** Tells a gap from a notification in `subscription.withGaps()` loops. */
  readonly kind: 'gap';
  /** Channels that were listened to when the connection was lost and are listened to again. */
  readonly channels: readonly string[];
  /** When the loss was noticed (ms since the epoch). */
  readonly disconnectedAt: number;
  /** When LISTEN was confirmed on the new connection (ms since the epoch). */
  readonly reconnectedAt: number;
  /** `reconnectedAt - disconnectedAt`. */
  readonly downtimeMs: number;
  /** Why the connection was lost. */
  readonly cause: Error;
}

/**
 * Durable messages pruned by retention before a reader got to them: every message of `channel`
 * after `from` up to and including `to` is gone. Delivered in its place: after the messages
 * before `from`'s successors that were still there, before the messages after `to`.
 */
export interface ExpiredGap {
  readonly kind: 'expired';
  readonly channel: string;
  /** The reader's cursor: what the reader had. */
  readonly from: string;
  /** The last pruned message's cursor: every message of `channel` up to it is gone. */
  readonly to: string;
  /** How many were lost, when known (the reader started from the beginning), else undefined. */
  readonly count: number | undefined;
  /** When the latest prune of `channel` ran (ms since the epoch). */
  readonly prunedAt: number;
}

/**
 * The listener's lifecycle:
 * `idle` (created) → `connecting` (start) → `listening` ⇄ `reconnecting` → `stopped`,
 * or `failed` when reconnecting gave up or met a non-retryable error (bad password,
 * missing database or role).
 */
export type ListenerState =
  | 'idle'
  | 'connecting'
  | 'listening'
  | 'reconnecting'
  | 'failed'
  | 'stopped';

/** A subscriber id: a string or a number, unique per listener. */
export type SubscriberId = string | number;

/** A frozen view of one channel, as returned by `listener.channels()`. */
export interface ChannelInfo {
  readonly name: string;
  readonly muted: boolean;
  /** Active: not muted and with an unmuted subscriber, so the server must listen to it. */
  readonly active: boolean;
  /** Whether the server has confirmed LISTEN on the current connection. */
  readonly listening: boolean;
  readonly subscribers: readonly { readonly id: SubscriberId; readonly muted: boolean }[];
}

/** A frozen view of one subscriber, as returned by `listener.subscribers()`. */
export interface SubscriberInfo {
  readonly id: SubscriberId;
  readonly channels: readonly { readonly name: string; readonly muted: boolean }[];
}

// ---- consuming -----------------------------------------------------------------------------

/** A handler for notifications; may return a promise, which is awaited per `concurrency`. */
export type Handler<T = unknown> = (notification: Notification<T>) => unknown;

/**
 * What `listener.once()` returns: the promise of the notification, with `ready`, which
 * resolves once the channel is listened to (arm, trigger, await: nothing is missed).
 */
export type OncePromise<T> = Promise<Notification<T>> & { readonly ready: Promise<void> };

// ---- routing -------------------------------------------------------------------------------

/**
 * Actions and the type of each one's data, e.g. `{ resize: { url: string }; delete: { id: number } }`.
 * An open map (`Record<string, unknown>`) takes any action with `unknown` data.
 */
export type ActionMap = Record<string, unknown>;

/**
 * The `[action, data]` pairs of an action map: what a dispatcher for it returns.
 * `Dispatched<{ resize: { url: string } }>` is `readonly ['resize', { url: string }]`.
 */
export type Dispatched<A extends ActionMap = ActionMap> = {
  [K in keyof A & string]: readonly [action: K, data: A[K]];
}[keyof A & string];

/** The action map of a dispatcher's result type: `['a', X] | ['b', Y]` → `{ a: X; b: Y }`. */
export type ActionsOf<R extends readonly [string, unknown]> = { [T in R as T[0]]: T[1] };

/**
 * The action map the default dispatcher reads from payload type `P`: every member of a
 * union with a string `action` is an action, its `data` the data (`undefined` when absent).
 * `{ action: 'resize'; data: { url: string } } | { action: 'delete'; data: { id: number } }`
 * gives `{ resize: { url: string }; delete: { id: number } }`. A payload type with no
 * `action` (or `unknown`) gives the open map.
 */
export type PayloadActions<P> = ActionsOf<DefaultDispatched<P>>;

/** What the default dispatcher returns for payload type `P` (see {@link PayloadActions}). */
export type DefaultDispatched<P> = 0 extends 1 & P
  ? Dispatched
  : unknown extends P
    ? Dispatched
    : [ActionPair<P>] extends [never]
      ? Dispatched
      : ActionPair<P>;

type ActionPair<P> = P extends { readonly action: infer A extends string }
  ? readonly [
      action: A,
      data: P extends { readonly data: infer D }
        ? D
        : P extends { readonly data?: infer D }
          ? D | undefined
          : undefined,
    ]
  : never;

/**
 * A dispatcher maps a payload to `[action, data]`, or `undefined` when the payload is not
 * routable. The default reads `{ action, data }` objects. `A` types the actions it returns:
 * `DispatchFunction<string, Notification<string>, JobActions>` makes `route.on()` take only
 * `JobActions`' actions, each handler typed with its data.
 */
export type DispatchFunction<P = unknown, N = unknown, A extends ActionMap = ActionMap> = (
  payload: P,
  notification: N,
) => Dispatched<A> | undefined;

/** A handler for one action: receives the dispatched data and the whole notification. */
export type ActionHandler<D = unknown, N = unknown> = (data: D, notification: N) => unknown;

/** Why a notification was not routed. */
export type UnroutedReason = 'rejected' | 'no-handler';

/**
 * Options of `listener.route()`. `R` is what the dispatcher returns, `[action, data]` pairs:
 * inferred from `dispatch`, else those the default dispatcher reads from `P`.
 */
export interface RouteOptions<P, R extends readonly [string, unknown] = DefaultDispatched<P>> {
  /**
   * Maps a payload to `[action, data]`, or undefined. Default: reads `{ action, data }`.
   * Its return type types the route's actions (return `as const` tuples, or annotate it
   * with `Dispatched<YourActions>`).
   */
  dispatch?: (payload: P, notification: Notification<P>) => R | undefined;
  /** Handler calls in flight (see the listener option). */
  concurrency?: number;
  /** Called for payloads the dispatcher rejects or whose action has no handler. Default: counted in stats. */
  onUnrouted?: (reason: UnroutedReason, notification: Notification<P>, error?: unknown) => void;
  /** Called with each gap on the route's channel, after it is listened to again (as `subscribe`'s `onGap`). */
  onGap?: (gap: Gap) => unknown;
  /** Subscriber id of the route. Default: generated. */
  id?: SubscriberId;
}

/**
 * A router bound to a listener channel: `route.on(action, handler)`. `A` maps its actions to
 * their data types (see {@link PayloadActions}); `on()` takes only those actions.
 */
export interface Route<P = unknown, A extends ActionMap = PayloadActions<P>>
  extends Router<P, Notification<P>, A> {
  /** Resolves once the channel is listened to. Rejects like `subscribe()` would. */
  readonly ready: Promise<void>;
  /** Stops routing: unsubscribes the route from its channel. Idempotent. */
  unsubscribe(): Promise<void>;
  /** @deprecated The same as {@link Route.unsubscribe}, under the name it had first. */
  close(): Promise<void>;
}

// ---- the listener --------------------------------------------------------------------------

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

// ---- diagnostics_channel -------------------------------------------------------------------

/** One of the `DiagnosticsChannel` names (`'pgnotify:listener:state'`, …). */
export type DiagnosticsChannelName = keyof DiagnosticsMessages;

/**
 * The message published on each of pgnotify's `node:diagnostics_channel` channels (names in
 * `DiagnosticsChannel`), keyed by channel name. Each carries the listener it comes from.
 */
export interface DiagnosticsMessages {
  'pgnotify:listener:state': { readonly listener: Listener; readonly state: ListenerState };
  'pgnotify:listener:connected': { readonly listener: Listener } & ListenerEvents['connected'][0];
  'pgnotify:listener:disconnected': {
    readonly listener: Listener;
  } & ListenerEvents['disconnected'][0];
  'pgnotify:listener:reconnecting': {
    readonly listener: Listener;
  } & ListenerEvents['reconnecting'][0];
  'pgnotify:listener:reconnected': {
    readonly listener: Listener;
  } & ListenerEvents['reconnected'][0];
  'pgnotify:listener:gap': { readonly listener: Listener; readonly gap: Gap };
  'pgnotify:listener:overflow': { readonly listener: Listener } & ListenerEvents['overflow'][0];
  'pgnotify:notification:received': {
    readonly listener: Listener;
    readonly channel: string;
    /** The payload text as received (not decoded). */
    readonly payload: string;
    readonly pid: number;
    /** When the listener read it, in ms since the epoch. */
    readonly receivedAt: number;
  };
  'pgnotify:listener:error': { readonly listener: Listener; readonly error: PgNotifyError };
}
