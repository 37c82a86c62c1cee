/**
 * The one place where the bridge meets durable channels. Everything else in the bridge is
 * already cursor-aware: a notification with a string `cursor` is framed with `id: <cursor>`,
 * and `Last-Event-ID` / `?after=` reach this function as `after`.
 *
 * A durable stream is paced by its client: its subscription is read by a loop that waits
 * whenever the client's queue is full, so the subscription's buffer fills and its journal read
 * pauses (a durable feed reads only as much as its buffer has room for) until the client reads.
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
  /**
   * Settles once the stream stops reading its subscription (the client or the subscription
   * ended); rejects with the error that ended the subscription, if one did.
   */
  readonly done: Promise<void>;
}

/** The part of a durable subscription's gap the bridge reads. */
export interface DurableGap {
  readonly channels?: readonly string[];
  readonly channel?: string;
}

/** What a durable stream reports back to its client. */
export interface DurableSink {
  /**
   * Each notification, replayed or live; `n.cursor` becomes the event's `id:`. A promise
   * means "the client is behind": nothing more is taken from the subscription until it settles.
   */
  deliver(notification: Notification<unknown>): Promise<void> | undefined;
  /**
   * A loss the journal cannot fill (a cursor older than retention: kind `'expired'`), for the
   * channels it names (`channels`, or the journal's one `channel`; neither: all of the stream's).
   */
  gap(gap: DurableGap): void;
  /** Whether the client is gone: reading stops. */
  readonly gone: boolean;
}

/** Whether the listener in this build has durable subscriptions. */
export const DURABLE_SUBSCRIPTIONS = true;

/**
 * Opens one client's durable subscription on `channels`: replays the journal after `after`
 * (the client's `Last-Event-ID`; `undefined`: from now), then continues live, with no
 * duplicate between the two. `'now'` is resolved first, so the stream's first `id:` names its
 * starting point and a reconnect before any event misses nothing. A malformed `after` rejects
 * with `PGNOTIFY_INVALID_CURSOR` (the bridge answers 400). A `live-<ms>` id (a plain stream's
 * marker) arrives here as `undefined`. `bufferMax` bounds the rows read ahead of the client;
 * `schema` is the journal's schema (the bridge's `schema` option), for both.
 */
export async function openDurable(
  listener: Listener,
  channels: readonly string[],
  after: string | undefined,
  sink: DurableSink,
  bufferMax: number,
  schema: string,
): Promise<DurableStream> {
  const { session } = internalsOf(listener);
  const start =
    after ?? (await resolveNowOn((text, values) => session.query(text, values), schema));
  // The first page may be read before subscribe() resolves: its expired gaps are kept here
  // until the loop below reads gaps itself, in their place among the notifications.
  let early: Gap[] | undefined = [];
  const subscription = await listener.subscribe(channels, {
    durable: { after: start, schema },
    buffer: { max: bufferMax },
    onGap: (gap: Gap) => {
      if (gap.kind === 'expired') early?.push(gap);
    },
  });
  const gaps = early;
  early = undefined;
  const done = pump(subscription, sink, gaps);
  return { subscription, cursor: after === undefined ? start : undefined, done };
}

/**
 * Hands the subscription's items to the client one at a time, waiting while it is behind.
 * (A handler would run ahead of gaps: those reach `onGap` at once, before buffered rows.)
 * Starts reading gaps before it returns (an async generator runs to its first `await`).
 */
async function pump(
  subscription: Subscription<unknown>,
  sink: DurableSink,
  early: readonly Gap[],
): Promise<void> {
  for (const gap of early) sink.gap(gap);
  for await (const item of subscription.withGaps()) {
    if (sink.gone) return;
    if (item.kind === undefined) {
      const behind = sink.deliver(item);
      if (behind !== undefined) await behind;
    } else if (item.kind === 'expired') sink.gap(item);
  }
}
