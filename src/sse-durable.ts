/**
 * The one place where the bridge meets durable channels. Everything else in the bridge is
 * already cursor-aware: a notification with a string `cursor` is framed with `id: <cursor>`,
 * and `Last-Event-ID` / `?after=` reach this function as `after`.
 *
 * Until the listener has durable subscriptions, `openDurable` returns `undefined`: the bridge
 * then serves the channels live, like plain ones (a resuming client gets a `'resume'` gap).
 */
import type { Gap, Listener, Notification, Subscription } from './index.js';

/** A durable client's own subscription, opened by {@link openDurable}. */
export interface DurableStream {
  readonly subscription: Subscription<unknown>;
  /**
   * The cursor of the stream's starting point when the client did not send one, so that a
   * reconnect before any event resumes from there (sent as the stream's first `id:`).
   */
  readonly cursor: string | undefined;
}

/** The part of a durable subscription's gap the bridge reads. */
export type DurableGap = Partial<Pick<Gap, 'channels'>> & { readonly channel?: string };

/** What a durable stream reports back to its client. */
export interface DurableSink {
  /** Each notification, replayed or live; `n.cursor` becomes the event's `id:`. */
  deliver(notification: Notification<unknown>): void;
  /**
   * A loss the journal cannot fill (a cursor older than retention: kind `'expired'`), for the
   * channels it names (`channels`, or the journal's one `channel`; neither: all of the stream's).
   */
  gap(gap: DurableGap): void;
}

/** Whether the listener in this build has durable subscriptions (flip when they land). */
export const DURABLE_SUBSCRIPTIONS = false;

/**
 * Opens one client's durable subscription on `channels`: replays the journal after `after`
 * (the client's `Last-Event-ID`; `undefined`: from now), then continues live, with no
 * duplicate between the two. Returns `undefined` while durable subscriptions do not exist.
 *
 * The wiring once they land (the listener API of issue 14):
 * ```ts
 * // Resolve 'now' first (resolveCursor(pool, 'now') in journal.ts), so the stream's first
 * // id names its starting point and a reconnect before any event misses nothing.
 * const start = after ?? (await resolveCursor(pool, 'now'))
 * const subscription = await listener.subscribe(channels, sink.deliver, {
 *   durable: { after: start },
 *   concurrency: 0,
 *   onGap: sink.gap,
 * })
 * return { subscription, cursor: after === undefined ? start : undefined }
 * ```
 * A malformed `after` should reject with `PGNOTIFY_INVALID_CURSOR` (or `INVALID_OPTION`): the
 * bridge answers 400 with its message. A `live-<ms>` id (a plain stream's marker) arrives here as `undefined`.
 */
export function openDurable(
  listener: Listener,
  channels: readonly string[],
  after: string | undefined,
  sink: DurableSink,
): Promise<DurableStream> | undefined {
  if (!DURABLE_SUBSCRIPTIONS) return undefined;
  // Unreachable until DURABLE_SUBSCRIPTIONS is true; kept so the types stay checked.
  void after;
  return listener
    .subscribe(channels, sink.deliver, { concurrency: 0, onGap: sink.gap })
    .then((subscription) => ({ subscription, cursor: undefined }));
}
