/**
 * pgnotify's public API, listed by hand. Everything else (the registry, the session, the
 * SQL builders, the handler runner) is deliberately private and may change in any release.
 */

export type { Decode, DecodeFunction, Schema } from './codec.js';
export type { ActionHandler, DispatchFunction, UnroutedReason } from './dispatch.js';
export { handles, Router } from './dispatch.js';
export { ErrorCode, PgNotifyError, ValidationError } from './errors.js';
export type {
  ListenerEvents,
  ListenerStats,
  OnceOptions,
  OncePromise,
  Route,
  RouteOptions,
  SubscribeOptions,
} from './listener.js';
export { createListener, Listener } from './listener.js';
export type { NotifierOptions, Queryable } from './notifier.js';
export { createNotifier, Notifier, notify } from './notifier.js';
export type {
  BufferOptions,
  ChannelMap,
  ConnectionOption,
  ErrorHandler,
  HeartbeatOptions,
  ListenerOptions,
  OverflowPolicy,
  ReconnectOptions,
} from './options.js';
export type { ChannelInfo, SubscriberId, SubscriberInfo } from './registry.js';
export type { Gap, ListenerState } from './session.js';
export { checkChannel, MAX_CHANNEL_BYTES, MAX_PAYLOAD_BYTES } from './sql.js';
export type { Handler, Notification, WaitOptions } from './subscription.js';
export { Subscription } from './subscription.js';
