/**
 * Reading the journal for durable subscriptions, with memory bounded and one query per wake:
 *
 * - A {@link Feed} is one subscription's reader. It starts at its cursor and reads pages on
 *   its own (replay, "behind") — each page no larger than the room left in the subscription's
 *   buffer, so nothing is ever dropped to overflow and a backlog never sits in memory — until
 *   it has caught up with its {@link Tail}, then joins it.
 * - A Tail is the one live reader per (listener, schema, mode): a wake-up (the schema's wake
 *   channel, payload = the channel written to), a poll tick or a reconnect triggers ONE read
 *   after the tail's cursor, shared by every caught-up member. A member whose buffer cannot
 *   take its share of a page leaves the tail where it stands and reads on its own again once
 *   it has room.
 *
 * Every feed delivers only rows after its own position, so a row is never delivered twice
 * within one running subscription, whichever reader (its own or the tail) fetched it.
 */
import { ErrorCode, type PgNotifyError } from './errors.js';
import { type JournalPage, type JournalRow, readJournal } from './journal.js';
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
  /** Hands one row over (decoded by the target); `cache` shares decoding within one page. */
  offer(row: JournalRow, cache: Map<unknown, unknown>): void;
  /** Hands an expired gap over, in its place. */
  offerGap(gap: ExpiredGap): void;
  /** The start failed for good (e.g. the schema is missing): end the subscription. */
  failed(error: PgNotifyError): void;
}

/** What feeds and tails need from the listener. */
export interface FeedHost {
  /** Runs SQL on the listener connection (waits for a live one; rejects once stopped). */
  readonly queryable: Queryable;
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
 * After a failed read: false when the reader should stop (listener over, subscription ended,
 * or a failure retrying cannot fix); else reports what is worth reporting, waits the backoff
 * and resolves true.
 */
async function retry(
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
   * reads it meanwhile. Each holds at most half of PAGE_BYTES, and at most a quarter of the
   * capacity in rows, so a named consumer's cursor write (per 1 000 acks) never stops reading.
   */
  async catchUp(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    const pageRows = Math.max(1, Math.min(PAGE_ROWS, Math.floor(this.#target.capacity / 4)));
    const read = (after: string, room: number): Promise<JournalPage> => {
      this.#missed = false;
      const limitRows = Math.min(room, pageRows);
      const options = { schema: this.#tail.schema, channels: this.#list, after, limitRows };
      return readJournal(this.#host.queryable, { ...options, limitBytes: CATCHUP_PAGE_BYTES });
    };
    let ahead: Promise<JournalPage> | undefined;
    try {
      let attempt = 0;
      while (!this.#target.ended) {
        const room = this.#target.room();
        if (ahead === undefined && room <= 0) {
          await new Promise<void>((resolve) => {
            this.#roomWaiter = resolve;
          });
          continue;
        }
        let page: JournalPage;
        try {
          page = await (ahead ?? read(this.position, room));
          ahead = undefined;
          attempt = 0;
        } catch (error) {
          ahead = undefined;
          if (!(await retry(this.#host, error, attempt++, () => this.#target.ended, this.#hold)))
            return;
          continue;
        }
        if (this.#target.ended) return;
        const left = this.#target.room() - page.rows.length - page.gaps.length;
        if (!page.caughtUp && left >= pageRows / 2) {
          ahead = read(page.next, left);
          ahead.catch(() => undefined); // awaited on the next turn, or dropped once ended
        }
        this.take(page.rows, page.gaps, page.next, new Map(), false);
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
    cache: Map<unknown, unknown>,
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
   * A wake-up (`channel`; undefined after a reconnect): a member hands it to the tail (one
   * read for all); a feed reading on its own notes it and reads once more before it joins.
   */
  wake(channel: string | undefined): void {
    if (this.#tail.has(this)) this.#tail.wake(channel);
    else if (channel === undefined || this.channels.has(channel)) this.#missed = true;
  }
}

/** The one live reader of a schema (per mode) on one listener. */
export class Tail {
  readonly schema: string;
  /** Where the last shared read ended; undefined until a first member joins. */
  cursor: string | undefined;
  readonly #members = new Set<Feed>();
  readonly #host: FeedHost;
  readonly #pollMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #dirty = false;
  readonly #hold: { cancel?: (() => void) | undefined } = {};

  constructor(host: FeedHost, schema: string, pollMs: number | undefined) {
    this.#host = host;
    this.schema = schema;
    this.#pollMs = pollMs;
  }

  /** Joins a caught-up feed; false when the tail has read past it (it must read on). */
  join(feed: Feed): boolean {
    if (this.cursor !== undefined && feed.position < this.cursor) return false;
    if (this.cursor === undefined || this.#members.size === 0) this.cursor = feed.position;
    this.#members.add(feed);
    if (this.#pollMs !== undefined && this.#timer === undefined) {
      this.#timer = setInterval(() => this.pump(), this.#pollMs);
      this.#timer.unref?.();
    }
    return true;
  }

  /** Whether `feed` is a member (caught up, fed by the shared read). */
  has(feed: Feed): boolean {
    return this.#members.has(feed);
  }

  leave(feed: Feed): void {
    if (!this.#members.delete(feed) || this.#members.size > 0) return;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#hold.cancel?.();
  }

  /** A wake-up for `channel` (undefined: any, e.g. after a reconnect). */
  wake(channel: string | undefined): void {
    if (this.#members.size === 0) return;
    if (channel !== undefined) {
      let wanted = false;
      for (const member of this.#members) {
        if (member.channels.has(channel)) {
          wanted = true;
          break;
        }
      }
      if (!wanted) return;
    }
    this.pump();
  }

  /** Reads until caught up; wakes meanwhile fold into one more read. */
  pump(): void {
    if (this.#running) {
      this.#dirty = true;
      return;
    }
    this.#running = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    try {
      let attempt = 0;
      // One notification is handed to every durable subscription in one synchronous loop: let
      // those calls land first, so they fold into this read instead of asking for another.
      await null;
      do {
        this.#dirty = false;
        if (this.#members.size === 0 || this.cursor === undefined) return;
        const union = new Set<string>();
        for (const member of this.#members) for (const c of member.channels) union.add(c);
        const after = this.cursor;
        let page: JournalPage;
        try {
          page = await readJournal(this.#host.queryable, {
            schema: this.schema,
            channels: [...union],
            after,
            limitRows: PAGE_ROWS,
            limitBytes: PAGE_BYTES,
          });
          attempt = 0;
        } catch (error) {
          if (
            !(await retry(this.#host, error, attempt++, () => this.#members.size === 0, this.#hold))
          )
            return;
          this.#dirty = true;
          continue;
        }
        this.#distribute(page, union);
        if (this.cursor === undefined || page.next > this.cursor) this.cursor = page.next;
        if (!page.caughtUp) this.#dirty = true;
      } while (this.#dirty);
    } finally {
      // In this function, not in a callback a microtask later: a wake landing in between
      // (e.g. from a microtask queued while a page was handed over) would find the tail
      // running and be lost.
      this.#running = false;
    }
  }

  #distribute(page: JournalPage, union: ReadonlySet<string>): void {
    const cache = new Map<unknown, unknown>();
    // The listener's 'gap' event: once per expired gap this read found, not once per member.
    for (const gap of page.gaps) this.#host.emitGap(gap);
    for (const member of [...this.#members]) {
      let covered = true;
      for (const c of member.channels) if (!union.has(c)) covered = false;
      // Joined during the read with a channel it did not cover, or no room for its share:
      // it reads on its own from where it stands, and joins again once caught up.
      if (!covered || member.share(page.rows) > member.room()) {
        this.leave(member);
        void member.catchUp();
        continue;
      }
      member.take(page.rows, page.gaps, page.next, cache, true);
    }
  }
}
