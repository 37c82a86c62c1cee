/**
 * The listener's lifecycle and delivery events on `node:diagnostics_channel`, undici's
 * pattern: named channels anyone in the process can subscribe to (an APM agent, a metrics
 * exporter) without a reference to the listener or an option. Publishing costs nothing while
 * nobody subscribes: the message is built only when `channel.hasSubscribers`.
 *
 * @example
 * import diagnostics_channel from 'node:diagnostics_channel'
 * import { DiagnosticsChannel } from 'pgnotify'
 * diagnostics_channel.subscribe(DiagnosticsChannel.GAP, (message) => {
 *   const { gap } = message as DiagnosticsMessages[typeof DiagnosticsChannel.GAP]
 *   console.log('lost', gap.downtimeMs, 'ms on', gap.channels)
 * })
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { PgNotifyError } from './errors.js';
import type { Listener } from './listener.js';
import type { DiagnosticsMessages, ListenerEvents } from './types.js';

/**
 * The names of pgnotify's diagnostics channels. Every message carries the `listener` it
 * comes from; the rest is the matching listener event's argument (see
 * {@link DiagnosticsMessages} for each shape).
 */
export const DiagnosticsChannel = {
  /** `{ listener, state }`: the lifecycle state changed (as the `'state'` event). */
  STATE: 'pgnotify:listener:state',
  /** `{ listener, pid }`: a connection listens to every wanted channel. */
  CONNECTED: 'pgnotify:listener:connected',
  /** `{ listener, cause }`: the connection was lost. */
  DISCONNECTED: 'pgnotify:listener:disconnected',
  /** `{ listener, attempt, delayMs, cause }`: a reconnection attempt is about to be made. */
  RECONNECTING: 'pgnotify:listener:reconnecting',
  /** `{ listener, pid, downtimeMs }`: a replacement connection listens again. */
  RECONNECTED: 'pgnotify:listener:reconnected',
  /** `{ listener, gap }`: notifications on `gap.channels` were lost during an outage. */
  GAP: 'pgnotify:listener:gap',
  /** `{ listener, subscriberId, channels, dropped, totalDropped }`: a buffer overflowed. */
  OVERFLOW: 'pgnotify:listener:overflow',
  /**
   * `{ listener, channel, payload, pid, receivedAt }`: a notification was read from the
   * server (before decoding; `payload` is the raw text). Published for every notification,
   * including those `ignoreOwn` skips.
   */
  NOTIFICATION_RECEIVED: 'pgnotify:notification:received',
  /** `{ listener, error }`: an error was handed to `onError` (a `PgNotifyError`; see its `code`). */
  ERROR: 'pgnotify:listener:error',
} as const;

const channel = diagnostics_channel.channel;

const eventChannels: { [E in keyof ListenerEvents]: diagnostics_channel.Channel } = {
  state: channel(DiagnosticsChannel.STATE),
  connected: channel(DiagnosticsChannel.CONNECTED),
  disconnected: channel(DiagnosticsChannel.DISCONNECTED),
  reconnecting: channel(DiagnosticsChannel.RECONNECTING),
  reconnected: channel(DiagnosticsChannel.RECONNECTED),
  gap: channel(DiagnosticsChannel.GAP),
  overflow: channel(DiagnosticsChannel.OVERFLOW),
};

/** @internal Checked on the hot path (`hasSubscribers`) before anything is built. */
export const receivedChannel = channel(DiagnosticsChannel.NOTIFICATION_RECEIVED);

const errorChannel = channel(DiagnosticsChannel.ERROR);

/** @internal Publishes a listener event on its channel, when anyone subscribes to it. */
export function publishEvent<E extends keyof ListenerEvents>(
  listener: unknown,
  event: E,
  args: ListenerEvents[E],
): void {
  const target = eventChannels[event];
  if (!target.hasSubscribers) return;
  const [arg] = args;
  const message =
    event === 'state'
      ? { listener, state: arg }
      : event === 'gap'
        ? { listener, gap: arg }
        : { listener, ...(arg as object) };
  target.publish(message);
}

/** @internal Publishes a notification as read; call only when `receivedChannel.hasSubscribers`. */
export function publishReceived(
  listener: unknown,
  channelName: string,
  payload: string,
  pid: number,
  receivedAt: number,
): void {
  const message: DiagnosticsMessages['pgnotify:notification:received'] = {
    listener: listener as Listener,
    channel: channelName,
    payload,
    pid,
    receivedAt,
  };
  receivedChannel.publish(message);
}

/** @internal Publishes an error handed to `onError`, when anyone subscribes. */
export function publishError(listener: unknown, error: PgNotifyError): void {
  if (errorChannel.hasSubscribers) errorChannel.publish({ listener, error });
}
