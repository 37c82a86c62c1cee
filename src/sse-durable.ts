/**
 * The one place where the bridge meets durable channels. Everything else in the bridge is
 * already cursor-aware: a notification with a string `cursor` is framed with `id: <cursor>`,
 * and `Last-Event-ID` / `?after=` reach this function as `after`.
 */
import { resolveNowOn } from './durable.js';
import type { Gap, Listener, Notification, Subscription } from './index.js';
import { internalsOf } from './listener.js';

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
export interface DurableGap {
  readonly channels?: readonly string[];
  readonly channel?: string;
}

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

/** Whether the listener in this build has durable subscriptions. */
export const DURABLE_SUBSCRIPTIONS = true;

/**
 * Opens one client's durable subscription on `channels`: replays the journal after `after`
 * (the client's `Last-Event-ID`; `undefined`: from now), then continues live, with no
 * duplicate between the two. `'now'` is resolved first, so the stream's first `id:` names its
 * starting point and a reconnect before any event misses nothing. A malformed `after` rejects
 * with `PGNOTIFY_INVALID_CURSOR` (the bridge answers 400). A `live-<ms>` id (a plain stream's
 * marker) arrives here as `undefined`.
 */
export async function openDurable(
  listener: Listener,
  channels: readonly string[],
  after: string | undefined,
  sink: DurableSink,
): Promise<DurableStream> {
  const { session } = internalsOf(listener);
  const start = after ?? (await resolveNowOn((text, values) => session.query(text, values)));
  const subscription = await listener.subscribe(channels, sink.deliver, {
    durable: { after: start },
    concurrency: 0,
    onGap: (gap: Gap) => {
      if (gap.kind === 'expired') sink.gap(gap);
    },
  });
  return { subscription, cursor: after === undefined ? start : undefined };
}
