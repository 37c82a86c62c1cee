/**
 * pgnotify's public API, listed by hand: values from the modules that define them, every
 * type from types.ts.
 *
 * Deliberately private (may change in any release): the registry, delivery, the session and
 * its LISTEN set, the heartbeat, the handler runner, pg-client, the SQL builders beyond
 * `checkChannel`, option resolution, and the internal members of Listener, Subscription and
 * Router (hidden from the published declarations).
 */

export { DiagnosticsChannel } from './diagnostics.js';
export { ErrorCode, PgNotifyError, ValidationError } from './errors.js';
export { installSchema, loadCursor, saveCursor, wakeChannel } from './journal.js';
export { durableStatus, prune } from './journal-admin.js';
export { compareCursors, isCursor } from './journal-cursor.js';
export { readJournal } from './journal-read.js';
export { MAX_DURABLE_PAYLOAD_BYTES } from './journal-write.js';
export { createListener, Listener } from './listener.js';
export { createNotifier, Notifier, notify } from './notifier.js';
export { handles, Router } from './router.js';
export { checkChannel, MAX_CHANNEL_BYTES, MAX_PAYLOAD_BYTES } from './sql.js';
export { Subscription } from './subscription.js';
export type {
  ActionHandler,
  ActionMap,
  ActionsOf,
  BufferOptions,
  ChannelInfo,
  ChannelMap,
  ConnectionOption,
  Decode,
  DecodeFunction,
  DefaultDispatched,
  DiagnosticsChannelName,
  DiagnosticsMessages,
  Dispatched,
  DispatchFunction,
  DurableOptions,
  DurableStart,
  DurableStatus,
  ErrorHandler,
  ExpiredGap,
  Gap,
  Handler,
  HeartbeatOptions,
  InstallResult,
  InstallSchemaOptions,
  JournalPage,
  JournalRow,
  ListenerEvents,
  ListenerOptions,
  ListenerState,
  ListenerStats,
  Notification,
  NotifierOptions,
  NotifyOptions,
  OnceOptions,
  OncePromise,
  OutageGap,
  OverflowPolicy,
  PayloadActions,
  PruneOptions,
  PruneResult,
  Queryable,
  ReadJournalOptions,
  ReconnectOptions,
  Route,
  RouteOptions,
  Schema,
  SendOptions,
  SubscribeOptions,
  SubscriberId,
  SubscriberInfo,
  UnroutedReason,
  WaitOptions,
} from './types.js';
