/**
 * A named consumer's acknowledgements: in order, batched into few cursor writes.
 *
 * Rows are acknowledged in any order (handlers with concurrency > 1 settle out of order), but
 * the stored cursor only moves to the newest row whose predecessors were all acknowledged: a
 * restart never skips a row that was not handled. Writes go out at most every
 * {@link FLUSH_INTERVAL_MS} or once {@link FLUSH_EVERY} acknowledgements are waiting, one at a
 * time, and on unsubscribe/stop. So a crash redelivers at most the rows acknowledged since the
 * last completed write — under FLUSH_INTERVAL_MS of handling and normally no more than
 * FLUSH_EVERY rows (2 × FLUSH_EVERY while a slow write is in flight) — plus those delivered but
 * not yet acknowledged (the buffer and the handler calls in flight).
 */

/** A consumer's cursor is written at most this often while acknowledgements arrive. */
export const FLUSH_INTERVAL_MS = 100;
/** ...or as soon as this many acknowledgements wait. */
export const FLUSH_EVERY = 1000;

interface Entry {
  readonly cursor: string;
  done: boolean;
}

/** @internal */
export class ConsumerAcks {
  /** Rows handed to the subscription and not yet acknowledged in order. */
  #pending: Entry[] = [];
  #head = 0;
  /** The newest cursor every row up to which is acknowledged. */
  #acked: string | undefined;
  /** The cursor last stored (or being stored). */
  #stored: string | undefined;
  #waiting = 0;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  readonly #write: (cursor: string) => Promise<void>;
  readonly #report: (error: unknown) => void;
  readonly #position: () => string;

  /**
   * `write` stores a cursor; `position` is the feed's read position, stored when nothing
   * delivered is waiting for its ack (so a quiet consumer's cursor keeps up with the journal).
   */
  constructor(
    write: (cursor: string) => Promise<void>,
    report: (error: unknown) => void,
    position: () => string,
  ) {
    this.#write = write;
    this.#report = report;
    this.#position = position;
  }

  /** A row was handed to the subscription. */
  delivered(cursor: string): void {
    this.#pending.push({ cursor, done: false });
  }

  /** A row was handled: the cursor may move past it once everything before it is. */
  ack(cursor: string): void {
    const pending = this.#pending;
    let found = false;
    for (let i = this.#head; i < pending.length; i++) {
      const entry = pending[i] as Entry;
      if (entry.cursor === cursor) {
        entry.done = true;
        found = true;
        break;
      }
    }
    if (!found) return;
    while (this.#head < pending.length && (pending[this.#head] as Entry).done) {
      this.#acked = (pending[this.#head] as Entry).cursor;
      this.#head++;
      this.#waiting++;
    }
    if (this.#head === pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#pending = pending.slice(this.#head);
      this.#head = 0;
    }
    if (this.#waiting >= FLUSH_EVERY) void this.flush();
    else if (this.#timer === undefined && this.#waiting > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, FLUSH_INTERVAL_MS);
      this.#timer.unref?.();
    }
  }

  /** Stores the newest acknowledged cursor now (after a write in progress). Never rejects. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#writing !== undefined) await this.#writing;
    let cursor = this.#acked;
    // Nothing delivered is waiting: the read position is safe to store (rows on other
    // channels, or none at all, lie between).
    if (this.#head === this.#pending.length) {
      const position = this.#position();
      if (position !== '' && (cursor === undefined || position > cursor)) cursor = position;
    }
    if (cursor === undefined || (this.#stored !== undefined && cursor <= this.#stored)) return;
    this.#waiting = 0;
    const previous = this.#stored;
    this.#stored = cursor;
    this.#writing = this.#write(cursor).then(
      () => undefined,
      (error: unknown) => {
        // Not stored: the next flush tries again from the same point.
        if (this.#stored === cursor) this.#stored = previous;
        this.#report(error);
      },
    );
    try {
      await this.#writing;
    } finally {
      this.#writing = undefined;
    }
  }
}
