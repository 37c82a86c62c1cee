/**
 * A named consumer's acknowledgements: in order, batched into few cursor writes.
 *
 * Rows are acknowledged in any order (handlers with concurrency > 1 settle out of order), but
 * the stored cursor only moves to the newest row whose predecessors were all acknowledged: a
 * restart never skips a row that was not handled. Writes go out at most every
 * {@link FLUSH_INTERVAL_MS} or once {@link FLUSH_EVERY} acknowledgements are waiting, one at a
 * time, and on unsubscribe/stop. So a crash handles again at most the rows acknowledged since
 * the last completed write: normally those of the last FLUSH_INTERVAL_MS (at most FLUSH_EVERY),
 * and never more than MAX_UNSTORED, because delivery pauses while that many rows are past the
 * stored cursor (a write stuck on a dead connection holds delivery back, not the bound).
 */

/** A consumer's cursor is written at most this often while acknowledgements arrive. */
export const FLUSH_INTERVAL_MS = 100;
/** ...or as soon as this many acknowledgements wait. */
export const FLUSH_EVERY = 1000;
/**
 * Most rows a named consumer has handed over past its stored cursor: delivery pauses there
 * until a cursor write catches up, so a crash never redelivers more than this.
 */
export const MAX_UNSTORED = 2 * FLUSH_EVERY;

/**
 * The flush timer's period, FLUSH_INTERVAL_MS. Bench (g) sets it to `Infinity` (no timer: a
 * write per FLUSH_EVERY acknowledgements and at the end), so that its count of cursor writes is
 * the same at valgrind's speed as natively.
 * @internal
 */
export const flushTiming = { intervalMs: FLUSH_INTERVAL_MS };

/** @internal */
export class ConsumerAcks {
  /** Cursors of the rows handed to the subscription, from #head on not yet acknowledged in order. */
  #pending: string[] = [];
  #head = 0;
  /** Rows acknowledged ahead of an earlier one still unacknowledged (handlers run concurrently). */
  readonly #early = new Set<string>();
  /** The newest cursor every row up to which is acknowledged. */
  #acked: string | undefined;
  /** The cursor last stored. */
  #stored: string | undefined;
  #waiting = 0;
  /** Acknowledgements counted since the start, and how many of them the stored cursor covers. */
  #ackedTotal = 0;
  #storedTotal = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The write loop in progress. */
  #writing: Promise<void> | undefined;
  /** flush() asked for everything acknowledged to be stored. */
  #all = false;
  /** The timer fired: one write is due whatever the count. */
  #due = false;
  /** The subscription ended: a failed write is no longer tried again on the timer. */
  #ended = false;
  readonly #write: (cursor: string) => Promise<void>;
  readonly #report: (error: unknown) => void;
  readonly #position: () => string;
  readonly #onStored: () => void;

  /**
   * `write` stores a cursor; `position` is the feed's read position, stored when nothing
   * delivered is waiting for its ack (so a quiet consumer's cursor keeps up with the journal).
   */
  constructor(
    write: (cursor: string) => Promise<void>,
    report: (error: unknown) => void,
    position: () => string,
    onStored: () => void,
  ) {
    this.#onStored = onStored;
    this.#write = write;
    this.#report = report;
    this.#position = position;
  }

  /**
   * Rows handed over since the stored cursor: what a crash now would deliver again. The feed
   * delivers no more while this reaches {@link MAX_UNSTORED}.
   */
  get unstored(): number {
    return this.#pending.length - this.#head + this.#ackedTotal - this.#storedTotal;
  }

  /** A row was handed to the subscription. */
  delivered(cursor: string): void {
    this.#pending.push(cursor);
  }

  /** A row was handled: the cursor may move past it once everything before it is. */
  ack(cursor: string): void {
    const pending = this.#pending;
    if (pending[this.#head] !== cursor) {
      // Out of order: remembered until the rows before it are acknowledged.
      if (pending.indexOf(cursor, this.#head + 1) !== -1) this.#early.add(cursor);
      return;
    }
    const early = this.#early;
    do {
      this.#acked = pending[this.#head] as string;
      this.#head++;
      this.#waiting++;
      this.#ackedTotal++;
    } while (
      early.size > 0 &&
      this.#head < pending.length &&
      early.delete(pending[this.#head] as string)
    );
    if (this.#head === pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#pending = pending.slice(this.#head);
      this.#head = 0;
    }
    if (this.#waiting >= FLUSH_EVERY) void this.#run();
    else this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || flushTiming.intervalMs === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#due = true;
      void this.#run();
    }, flushTiming.intervalMs);
    this.#timer.unref?.();
  }

  /**
   * The subscription ended: from now on a failed write is reported and left (the rows after
   * the stored cursor are delivered again on the next start), not tried again every tick for
   * the rest of the process, each time on a connection of its own. Writes still go out for
   * acknowledgements that arrive later (handlers finishing) and on flush().
   */
  end(): void {
    this.#ended = true;
  }

  /**
   * Stores the newest acknowledged cursor now; a write in progress is followed by one more
   * when acknowledgements arrived meanwhile. Never rejects: a failed write is reported and,
   * until end(), tried again on the next tick of the flush timer.
   */
  flush(): Promise<void> {
    this.#all = true;
    return this.#run();
  }

  #run(): Promise<void> {
    this.#writing ??= this.#writeLoop().finally(() => {
      this.#writing = undefined;
      this.#all = false;
    });
    return this.#writing;
  }

  /** The cursor to store: the newest acknowledged one, or the read position when nothing waits. */
  #target(): string | undefined {
    let cursor = this.#acked;
    // Nothing delivered is waiting: the read position is safe to store (rows on other
    // channels, or none at all, lie between).
    if (this.#head === this.#pending.length) {
      const position = this.#position();
      if (position !== '' && (cursor === undefined || position > cursor)) cursor = position;
    }
    return cursor;
  }

  async #writeLoop(): Promise<void> {
    for (;;) {
      const cursor = this.#target();
      if (cursor === undefined || (this.#stored !== undefined && cursor <= this.#stored)) return;
      // Unless flushed or due, what was acknowledged during a write waits for the timer or for
      // FLUSH_EVERY more: writing again at once would keep the connection busy with cursor
      // writes (each a commit) that the reads of a catch-up queue behind.
      if (!this.#all && !this.#due && this.#waiting < FLUSH_EVERY) {
        this.#schedule();
        return;
      }
      this.#due = false;
      this.#waiting = 0;
      const total = this.#ackedTotal;
      try {
        await this.#write(cursor);
        this.#stored = cursor;
        this.#storedTotal = total;
        this.#onStored();
      } catch (error) {
        this.#report(error);
        if (!this.#ended) this.#schedule();
        return;
      }
    }
  }
}
