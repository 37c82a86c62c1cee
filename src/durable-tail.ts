/**
 * The one live reader of a schema (per mode) on one listener: a wake-up, a poll tick or a
 * reconnect triggers ONE read after the tail's cursor, shared by every caught-up member feed
 * (durable-feed.ts). A signed commit wake-up (durable-wake.ts) for the commit right after the
 * cursor carries that commit's rows: they are handed over without a read.
 */
import { type Feed, type FeedHost, gone, PAGE_BYTES, PAGE_ROWS, retry } from './durable-feed.js';
import { loadWakeKey, parseWake, type Wake } from './durable-wake.js';
import { cursorAfterCommit, parseCursor } from './journal-cursor.js';
import { type JournalPage, readPage } from './journal-read.js';

/** The one live reader of a schema (per mode) on one listener. */
export class Tail {
  readonly schema: string;
  /**
   * Reads through a prepared statement: on the listener's own session in listen mode (LISTEN
   * needs a session of its own); poll mode may go through a transaction pooler.
   */
  readonly prepared: boolean;
  /** Where the last shared read ended; undefined until a first member joins. */
  cursor: string | undefined;
  readonly #members = new Set<Feed>();
  readonly #host: FeedHost;
  readonly #pollMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #dirty = false;
  readonly #hold: { cancel?: (() => void) | undefined } = {};
  /** The schema's wake key: undefined before version 2 (every wake-up then means "read"). */
  #key: Buffer | undefined;
  #keyLoad: Promise<void> | undefined;
  /** The last wake-up parsed and handled: each member hands the same one over. */
  #lastRaw: string | undefined;
  #lastWake: Wake | undefined;
  #handled: Wake | undefined;

  constructor(host: FeedHost, schema: string, pollMs: number | undefined) {
    this.#host = host;
    this.schema = schema;
    this.#pollMs = pollMs;
    this.prepared = host.ownSession === true && pollMs === undefined;
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

  /**
   * Loads the schema's wake key once (before a member's first read, so no member is fed by
   * wake-ups before it is known). Rejects like a read; a later call tries again.
   */
  prepare(): Promise<void> {
    this.#keyLoad ??= loadWakeKey(this.#host.queryable, this.schema).then(
      (key) => {
        this.#key = key;
        this.#lastRaw = undefined;
      },
      (error: unknown) => {
        this.#keyLoad = undefined;
        throw error;
      },
    );
    return this.#keyLoad;
  }

  /** A wake-up's payload, parsed (the last one is kept: every member hands it over). */
  parse(raw: string): Wake {
    if (raw !== this.#lastRaw || this.#lastWake === undefined) {
      this.#lastWake = parseWake(raw, this.#key);
      this.#lastRaw = raw;
    }
    return this.#lastWake;
  }

  /** Whether a wake-up may bring rows on `channels` (undefined: a reconnect, anything may). */
  concerns(wake: Wake | undefined, channels: ReadonlySet<string>): boolean {
    if (wake === undefined || wake.kind === 'unknown') return true;
    // With a key every commit sends a commit wake-up: the write statements' add nothing.
    if (wake.kind === 'channel') return this.#key === undefined && channels.has(wake.channel);
    return wake.rows === undefined || wake.rows.some((row) => channels.has(row.channel));
  }

  /** A wake-up (undefined: any channel, e.g. after a reconnect). */
  wake(wake: Wake | undefined): void {
    if (this.#members.size === 0) return;
    // undefined (a reconnect) is never "already handled": #handled starts out undefined too.
    if (wake !== undefined && wake === this.#handled) return;
    if (wake === undefined || wake.kind !== 'commit') {
      const union = new Set<string>();
      for (const member of this.#members) for (const c of member.channels) union.add(c);
      if (this.concerns(wake, union)) this.pump();
      return;
    }
    this.#handled = wake;
    const cursor = this.cursor;
    if (cursor === undefined) {
      this.pump();
      return;
    }
    const at = parseCursor(cursor);
    const seq = BigInt(at.seq);
    // Read already (a read's end is past its head commit, whose wake-up may come after it).
    if (wake.seq < seq || (wake.seq === seq && cursor === cursorAfterCommit(at.seq))) return;
    // The commit right after the cursor (or more rows of the cursor's own commit: a transaction
    // whose trigger ran early sends them in a later wake-up, before any later commit's): every
    // commit in between would have sent its wake-up first.
    const next = wake.seq === seq || wake.seq === seq + 1n;
    const rows = wake.rows;
    if (this.#running || !next || rows === undefined) {
      this.pump();
      return;
    }
    const last = (rows[rows.length - 1] as (typeof rows)[number]).cursor;
    this.#distribute({ rows, gaps: [], next: last, caughtUp: true }, undefined);
    if (last > cursor) this.cursor = last;
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
          page = await readPage(
            this.#host.queryable,
            {
              schema: this.schema,
              channels: [...union],
              after,
              limitRows: PAGE_ROWS,
              limitBytes: PAGE_BYTES,
            },
            this.prepared,
          );
          attempt = 0;
        } catch (error) {
          if (gone(error)) {
            for (const member of [...this.#members]) {
              this.leave(member);
              member.fail(error);
            }
            return;
          }
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

  /** Hands a page to the members; `union`: the channels it was read for (undefined: all). */
  #distribute(page: JournalPage, union: ReadonlySet<string> | undefined): void {
    const cache = new Map<unknown, unknown>();
    // The listener's 'gap' event: once per expired gap this read found, not once per member.
    for (const gap of page.gaps) this.#host.emitGap(gap);
    for (const member of [...this.#members]) {
      let covered = true;
      if (union !== undefined) for (const c of member.channels) if (!union.has(c)) covered = false;
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
