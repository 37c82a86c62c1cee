/**
 * Reading the journal for durable subscriptions, with memory bounded and one query per wake:
 *
 * - A {@link Feed} is one subscription's reader. It starts at its cursor and reads pages on
 *   its own (replay, "behind") — each page no larger than the room left in the subscription's
 *   buffer, so nothing is ever dropped to overflow and a backlog never sits in memory — until
 *   it has caught up with its {@link Tail}, then joins it.
 * - A Tail (durable-tail.ts) is the one live reader per (listener, schema, mode): a wake-up (the
 *   schema's wake channel, see durable-wake.ts), a poll tick or a reconnect triggers ONE read
 *   after the tail's cursor, shared by every caught-up member. A member whose buffer cannot
 *   take its share of a page leaves the tail where it stands and reads on its own again once
 *   it has room.
 *
 * Every feed delivers only rows after its own position, so a row is never delivered twice
 * within one running subscription, whichever reader (its own or the tail) fetched it.
 */

import type { Tail } from './durable-tail.js';
import { ErrorCode, type PgNotifyError } from './errors.js';
import { type JournalPage, type JournalRow, readPage } from './journal-read.js';
import type { Queryable } from './notifier.js';
import { isConnectionError } from './pg-client.js';
import type { ExpiredGap } from './types.js';

/** Most rows per page (also bounded by the subscription's room). */
export const PAGE_ROWS = 1000;
/** Byte budget of a page's payloads (a page always holds at least one row). */
export const PAGE_BYTES = 4 * 1024 * 1024;
/** A catch-up's page: half the budget, as it may hold two (one handed over, one read ahead). */
const CATCHUP_PAGE_BYTES = PAGE_BYTES / 2;
const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 30_000;

/** What a feed reads for and hands rows to: one durable subscription. */
export interface FeedTarget {
  readonly ended: boolean;
  /** The subscription's buffer size (`buffer.max`). */
  readonly capacity: number;
  /** How many more notifications the subscription's buffer can take now. */
  room(): number;
  /**
   * How many more rows may be read ahead of the hand-over (memory only): a named consumer's
   * room() also waits for its cursor writes (MAX_UNSTORED), which a read need not wait for.
   * Default room().
   */
  readRoom?(): number;
  /**
   * Hands one row over (decoded by the target); `cache` shares decoding among the feeds a page
   * is handed to (undefined: this feed's alone, nothing to share).
   */
  offer(row: JournalRow, cache: Map<unknown, unknown> | undefined): void;
  /** Hands an expired gap over, in its place. */
  offerGap(gap: ExpiredGap): void;
  /**
   * Reading failed for good (the journal's schema is missing): end the subscription. At the
   * start of an awaited subscription (`afterStart` false) its `subscribe()` rejects instead.
   */
  failed(error: PgNotifyError, afterStart?: boolean): void;
}

/** What feeds and tails need from the listener. */
export interface FeedHost {
  /** Runs SQL on the listener connection (waits for a live one; rejects once stopped). */
  readonly queryable: Queryable;
  /**
   * Whether `queryable` is one session of pgnotify's own (the listener's connection), where a
   * listen-mode reader may keep a prepared statement. Default false (e.g. a pool).
   */
  readonly ownSession?: boolean;
  /** Whether the listener is over (stopped or failed): readers then stop. */
  closed(): boolean;
  report(error: Error): void;
  /** The listener's `'gap'` event, once per expired gap a read found. */
  emitGap(gap: ExpiredGap): void;
}

/** Waits `ms`, or less when `cancel` is called; resolves false when cancelled. */
function sleep(ms: number, hold: { cancel?: (() => void) | undefined }): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      hold.cancel = undefined;
      resolve(true);
    }, ms);
    timer.unref?.();
    hold.cancel = () => {
      clearTimeout(timer);
      hold.cancel = undefined;
      resolve(false);
    };
  });
}

/** The backoff before retry `attempt` (0-based): 100 ms doubling to 30 s. */
export function retryDelay(attempt: number): number {
  return Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** Math.min(attempt, 16));
}

/**
 * Whether a read failed for good: the journal is not installed (dropped under a running
 * subscription). Retrying would only report it every 30 s while nothing is delivered.
 */
export function gone(error: unknown): error is PgNotifyError {
  return (error as PgNotifyError).code === ErrorCode.SCHEMA_MISSING;
}

/**
 * After a failed read: false when the reader should stop (listener over, subscription ended,
 * or a failure retrying cannot fix); else reports what is worth reporting, waits the backoff
 * and resolves true.
 */
export async function retry(
  host: FeedHost,
  error: unknown,
  attempt: number,
  ended: () => boolean,
  hold: { cancel?: (() => void) | undefined },
): Promise<boolean> {
  if (host.closed() || ended()) return false;
  if ((error as PgNotifyError).code === ErrorCode.CLOSED) return false;
  // A lost connection is the session's to report (and a gap re-reads); the rest is news.
  if (attempt === 0 && !isConnectionError((error as PgNotifyError).cause ?? error))
    host.report(error as Error);
  if (!(await sleep(retryDelay(attempt), hold))) return false;
  return !host.closed() && !ended();
}

/** One durable subscription's reader. */
export class Feed {
  /** Everything up to here has been handed over (or was not on this feed's channels). */
  position = '';
  readonly channels: ReadonlySet<string>;
  readonly #list: string[];
  readonly #host: FeedHost;
  readonly #tail: Tail;
  readonly #target: FeedTarget;
  #roomWaiter: (() => void) | undefined;
  readonly #hold: { cancel?: (() => void) | undefined } = {};
  #reading = false;
  /** A wake-up for this feed arrived while it read on its own: its read may have missed it. */
  #missed = false;

  constructor(host: FeedHost, tail: Tail, target: FeedTarget, channels: readonly string[]) {
    this.#host = host;
    this.#tail = tail;
    this.#target = target;
    this.#list = [...new Set(channels)];
    this.channels = new Set(this.#list);
  }

  /** Positions the feed (`resolve` gives the start cursor), then replays and joins the tail. */
  async start(resolve: () => Promise<string>, ready: (error?: PgNotifyError) => void) {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#tail.prepare();
        this.position = await resolve();
        break;
      } catch (error) {
        const e = error as PgNotifyError;
        if (
          e.code !== ErrorCode.CLOSED &&
          e.retryable !== true &&
          !isConnectionError(e.cause ?? e)
        ) {
          ready(e);
          this.#target.failed(e);
          return;
        }
        if (!(await retry(this.#host, e, attempt, () => this.#target.ended, this.#hold))) {
          ready(e.code === ErrorCode.CLOSED ? e : undefined);
          return;
        }
      }
    }
    ready();
    void this.catchUp();
  }

  /**
   * Reads on its own from `position` until caught up with the tail, then joins it. The next
   * page is sent before this one is handed over when the buffer has room for both: the server
   * reads it meanwhile (a named consumer's cursor writes hold back the hand-over, not that
   * read: readRoom). Each holds at most half of PAGE_BYTES, and at most half of the capacity
   * in rows: a named consumer (capacity MAX_UNSTORED, 2 000) reads pages of 1 000, and still
   * reads one while its cursor write for the 1 000 before is under way. (Pages of a quarter of
   * the capacity made more round trips and counted more instructions per message in bench (g).)
   */
  async catchUp(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    const pageRows = Math.max(1, Math.min(PAGE_ROWS, Math.floor(this.#target.capacity / 2)));
    const read = (after: string, room: number): Promise<JournalPage> => {
      this.#missed = false;
      const limitRows = Math.min(room, pageRows);
      const options = { schema: this.#tail.schema, channels: this.#list, after, limitRows };
      const page = { ...options, limitBytes: CATCHUP_PAGE_BYTES };
      return readPage(this.#host.queryable, page, this.#tail.prepared);
    };
    let ahead: Promise<JournalPage> | undefined;
    try {
      let attempt = 0;
      while (!this.#target.ended) {
        const room = this.#target.room();
        if (ahead === undefined && room <= 0) {
          await this.#untilRoom();
          continue;
        }
        let page: JournalPage;
        try {
          page = await (ahead ?? read(this.position, room));
          ahead = undefined;
          attempt = 0;
        } catch (error) {
          ahead = undefined;
          if (gone(error)) {
            this.fail(error);
            return;
          }
          if (!(await retry(this.#host, error, attempt++, () => this.#target.ended, this.#hold)))
            return;
          continue;
        }
        if (this.#target.ended) return;
        const size = page.rows.length + page.gaps.length;
        const left = (this.#target.readRoom?.() ?? this.#target.room()) - size;
        if (!page.caughtUp && left >= pageRows / 2) {
          ahead = read(page.next, left);
          ahead.catch(() => undefined); // awaited on the next turn, or dropped once ended
        }
        // A page read ahead may wait here for a cursor write (see readRoom) while the server
        // reads the next one: the write and that read were taking turns. Only its rows wait:
        // they are at most pageRows, room the buffer always gets back, while a page may hold a
        // gap per channel (which no cursor write waits for).
        const rows = page.rows.length;
        while (this.#target.room() < rows && !this.#target.ended) await this.#untilRoom();
        if (this.#target.ended) return;
        this.take(page.rows, page.gaps, page.next, undefined, false);
        // Woken during the read: what woke it may have committed after the read's snapshot.
        if (page.caughtUp && !this.#missed && this.#tail.join(this)) return;
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Hands over the rows and gaps of a page that lie after this feed's position and on its
   * channels, each gap before the rows after it, then moves the position to `next`.
   */
  take(
    rows: readonly JournalRow[],
    gaps: readonly ExpiredGap[],
    next: string,
    cache: Map<unknown, unknown> | undefined,
    emitted: boolean,
  ): void {
    const target = this.#target;
    let g = 0;
    const sorted = gaps.length > 1 ? [...gaps].sort((a, b) => (a.to < b.to ? -1 : 1)) : gaps;
    const gapUntil = (cursor: string | undefined): void => {
      while (g < sorted.length) {
        const gap = sorted[g] as ExpiredGap;
        if (cursor !== undefined && gap.to >= cursor) return;
        g++;
        if (gap.to <= this.position || !this.channels.has(gap.channel)) continue;
        const mine: ExpiredGap = { ...gap, from: this.position };
        if (!emitted) this.#host.emitGap(mine);
        target.offerGap(mine);
      }
    };
    for (const row of rows) {
      if (row.cursor <= this.position || !this.channels.has(row.channel)) continue;
      gapUntil(row.cursor);
      if (target.ended) return;
      target.offer(row, cache);
      this.position = row.cursor;
    }
    gapUntil(undefined);
    if (next > this.position) this.position = next;
  }

  /** Ends the subscription: reading failed for good (see {@link gone}). */
  fail(error: PgNotifyError): void {
    this.#target.failed(error, true);
  }

  /** Room left in the subscription's buffer. */
  room(): number {
    return this.#target.room();
  }

  /** How many rows of a page this feed would take. */
  share(rows: readonly JournalRow[]): number {
    let n = 0;
    for (const row of rows) if (row.cursor > this.position && this.channels.has(row.channel)) n++;
    return n;
  }

  /** Resolves at the next roomFreed() that lets a reader go on, or at stop(). */
  #untilRoom(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#roomWaiter = resolve;
    });
  }

  /** The consumer took something from the buffer: a reader waiting for room may go on. */
  roomFreed(): void {
    const wake = this.#roomWaiter;
    if (wake === undefined) return;
    // Resume at half the buffer free: pages of a useful size, not one row at a time.
    const room = this.#target.room();
    if (room * 2 < this.#target.capacity && room < PAGE_ROWS) return;
    this.#roomWaiter = undefined;
    wake();
  }

  /** Leaves the tail and stops reading (the subscription ended). */
  stop(): void {
    this.#tail.leave(this);
    this.#hold.cancel?.();
    const wake = this.#roomWaiter;
    this.#roomWaiter = undefined;
    wake?.();
  }

  /**
   * A wake-up's payload (undefined after a reconnect): a member hands it to the tail (one read,
   * or none, for all); a feed reading on its own notes it and reads once more before it joins.
   */
  wake(raw: string | undefined): void {
    const wake = raw === undefined ? undefined : this.#tail.parse(raw);
    if (this.#tail.has(this)) this.#tail.wake(wake);
    else if (this.#tail.concerns(wake, this.channels)) this.#missed = true;
  }
}
