/**
 * One subscriber's bounded buffer: notifications and gap reports in arrival order, at most
 * `max` notifications, and the overflow policy that decides what a full buffer loses. Gap
 * reports do not count against `max` and are never dropped (a `withGaps()` loop must see every
 * one). Pure state, no I/O: the subscription reports what this says was lost.
 */
import type { Gap, Notification, OverflowPolicy } from './types.js';

/** @internal A buffered item: a notification, or a gap report for a `withGaps()` loop. */
export type Item<T> = Notification<T> | Gap;

/**
 * @internal What `push` did: `'added'` (kept, nothing lost), `'evicted'` (kept, the oldest
 * notification dropped: `drop-oldest`), `'rejected'` (not kept: `drop-newest` or `error`).
 */
export type PushOutcome = 'added' | 'evicted' | 'rejected';

/** @internal Whether a buffered item is a gap report. */
export function isGap<T>(item: Item<T>): item is Gap {
  return item.kind !== undefined;
}

/** @internal A FIFO of notifications and gap reports under an overflow policy. */
export class NotificationBuffer<T> {
  /** Most notifications held (gap reports excluded). */
  readonly max: number;
  /** What a full buffer does with the next notification. */
  readonly overflow: OverflowPolicy;
  #items: (Item<T> | undefined)[] = [];
  #head = 0;
  /** Items held (`items.length - head`), gap reports included. */
  #size = 0;
  /** Gap reports held: they do not count against `max`. */
  #gaps = 0;
  #dropped = 0;

  constructor(max: number, overflow: OverflowPolicy) {
    this.max = max;
    this.overflow = overflow;
  }

  /** Items held, gap reports included. */
  get size(): number {
    return this.#size;
  }

  /** Notifications lost to the overflow policy so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Adds a notification under the overflow policy (see {@link PushOutcome}). */
  push(notification: Notification<T>): PushOutcome {
    if (this.#size - this.#gaps < this.max) {
      this.#items.push(notification);
      this.#size++;
      return 'added';
    }
    this.#dropped++;
    if (this.overflow !== 'drop-oldest') return 'rejected';
    this.#dropOldest();
    this.#items.push(notification);
    this.#size++;
    return 'evicted';
  }

  /** Adds a gap report; never refused, never dropped by the policy. */
  pushGap(gap: Gap): void {
    this.#items.push(gap);
    this.#size++;
    this.#gaps++;
  }

  /** The oldest item; gap reports are skipped (and discarded) unless `gaps`. */
  take(gaps: boolean): Item<T> | undefined {
    let item = this.#shift();
    while (item !== undefined && !gaps && isGap(item)) item = this.#shift();
    return item;
  }

  /** Empties the buffer (an unsubscribed handler's queued work). `dropped` is kept. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.#size = 0;
    this.#gaps = 0;
  }

  #shift(): Item<T> | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    this.#size--;
    if (item !== undefined && isGap(item)) this.#gaps--;
    if (this.#size === 0) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      // Compact once half the array is consumed slots: memory stays bounded by `max`.
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Drops the oldest notification; gap reports before it stay (a loop must see every gap). */
  #dropOldest(): void {
    let at = this.#head;
    while (isGap(this.#items[at] as Item<T>)) at++;
    if (at === this.#head) this.#shift();
    else {
      this.#items.splice(at, 1);
      this.#size--;
    }
  }
}
