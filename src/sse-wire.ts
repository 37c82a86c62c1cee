/**
 * The bridge's wire format (the standard EventSource protocol), as pure functions from values
 * to the exact text sent: tested byte by byte. Every frame ends with the blank line that
 * dispatches it; `data:` is always ONE line of JSON (JSON.stringify escapes CR and LF).
 */
import type { Notification } from './index.js';

/** Why the bridge reports a loss to a client (`event: gap`, field `reason`). */
export type SseGapReason =
  /** The listener's connection was lost; notifications sent meanwhile on these channels are gone. */
  | 'connection'
  /**
   * The client reconnected (it sent `Last-Event-ID` or `?after=`) on channels that are not
   * durable: what was sent while it was away is gone.
   */
  | 'resume'
  /** Durable channels: the client's cursor is older than the journal keeps. */
  | 'expired';

/** The JSON of an `event: gap`. Times are ms since the epoch. */
export interface SseGap {
  readonly reason: SseGapReason;
  /** The client's channels concerned. */
  readonly channels: readonly string[];
  /** A short human-readable explanation. */
  readonly message: string;
  /** `'connection'`: when the listener noticed the loss. */
  readonly disconnectedAt?: number;
  /** `'connection'`: when LISTEN was confirmed again. */
  readonly reconnectedAt?: number;
  /** `'connection'`: `reconnectedAt - disconnectedAt`. */
  readonly downtimeMs?: number;
  /** `'resume'`, `'expired'`: the `Last-Event-ID` (or `?after=`) the client sent. */
  readonly after?: string;
}

/** Why the bridge ended a stream (`event: end`, field `reason`). */
export type SseEndReason =
  /** `handler.close()`: the server is going away; reconnect (to another instance). */
  | 'shutdown'
  /** The client did not read fast enough and its queue passed `maxQueuedEvents`/`maxQueuedBytes`. */
  | 'slow-client'
  /** The listener stopped or failed for good: nothing more will arrive from this instance. */
  | 'listener-stopped'
  /**
   * The stream's subscription ended under it while the listener runs: it failed for good (a
   * durable one whose journal is not installed, …; `code` names the error) or was unsubscribed
   * by someone else (`code: 'PGNOTIFY_CLOSED'`). Reconnecting later may succeed.
   */
  | 'error';

/** The JSON of an `event: end`. */
export interface SseEnd {
  readonly reason: SseEndReason;
  /** A short human-readable explanation. */
  readonly message: string;
  /** `'error'`: the `PgNotifyError` code of what ended the stream's subscription, when it has one. */
  readonly code?: string;
}

/** The heartbeat: an SSE comment, ignored by EventSource, that keeps proxies from timing out. */
export const HEARTBEAT = ':\n\n';

/**
 * The `id:` the bridge gives a stream with no durable channel when it opens. It dispatches no
 * event, but EventSource stores it and sends it back as `Last-Event-ID` when it reconnects: that
 * is how the bridge knows a plain-channel client was away, and sends it a `'resume'` gap.
 */
export function liveMarker(openedAt: number): string {
  return `live-${openedAt}`;
}

/** Whether `id` is a {@link liveMarker} (not a journal cursor: a durable replay starts from now). */
export function isLiveMarker(id: string | undefined): boolean {
  return id !== undefined && /^live-\d+$/.test(id);
}

/** Whether `id` can go in an `id:` field: no CR, LF or NUL (EventSource ignores such ids). */
export function isValidEventId(id: string): boolean {
  return !/[\r\n\0]/.test(id);
}

/**
 * The first bytes of a stream: `retry:` and, when given, an `id:`, in one block that dispatches
 * no event (it has no `data:`).
 */
export function openFrame(retryMs: number, id: string | undefined): string {
  return id === undefined ? `retry: ${retryMs}\n\n` : `retry: ${retryMs}\nid: ${id}\n\n`;
}

/**
 * One notification: `data: {"channel","payload","pid","receivedAt"}` and, on durable channels
 * (a notification with a string `cursor`), `id: <cursor>` before it. A payload JSON cannot
 * represent (a BigInt from a custom decoder) is sent as its raw text.
 */
export function notificationFrame(n: Notification): string {
  let json: string;
  try {
    json = JSON.stringify({
      channel: n.channel,
      payload: n.payload === undefined ? null : n.payload,
      pid: n.pid,
      receivedAt: n.receivedAt,
    });
  } catch {
    json = JSON.stringify({
      channel: n.channel,
      payload: n.raw,
      pid: n.pid,
      receivedAt: n.receivedAt,
    });
  }
  const cursor = (n as { readonly cursor?: unknown }).cursor;
  return typeof cursor === 'string' && isValidEventId(cursor)
    ? `id: ${cursor}\ndata: ${json}\n\n`
    : `data: ${json}\n\n`;
}

/** `event: gap` with the gap as JSON. */
export function gapFrame(gap: SseGap): string {
  return `event: gap\ndata: ${JSON.stringify(gap)}\n\n`;
}

/**
 * The last event of a stream the bridge ends: `event: end` with `{"reason","message"}` (and
 * `"code"` when given), after a `retry:` (the bridge jitters it on shutdown and errors, so the
 * reconnections of many clients spread out).
 */
export function endFrame(
  reason: SseEndReason,
  message: string,
  retryMs: number,
  code?: string,
): string {
  const end: SseEnd = code === undefined ? { reason, message } : { reason, message, code };
  return `retry: ${retryMs}\nevent: end\ndata: ${JSON.stringify(end)}\n\n`;
}
