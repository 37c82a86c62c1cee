/**
 * Journal cursors. A cursor names a point in the journal's one order: commit order, and within
 * one transaction insert order. It is `"<seq>-<id>"`, both parts zero-padded to 19 decimal
 * digits, so two cursors compare correctly as plain strings (`a < b` means a is earlier) and a
 * cursor is readable as SQL (`seq`, `id`). Treat it as opaque otherwise: the format may gain a
 * prefix in a later major version, never lose its string order.
 */
import { describe, ErrorCode, PgNotifyError } from './errors.js';

/** A position in the journal as the two bigints of a row's order key (decimal text). */
export interface CursorKey {
  readonly seq: string;
  readonly id: string;
}

/** Where a read starts: a cursor, `'start'` (everything kept) or `'now'` (only what follows). */
export type CursorPosition = string | 'start' | 'now';

const WIDTH = 19;
const MAX_INT8 = '9223372036854775807';
const PATTERN = /^(\d{19})-(\d{19})$/;

/** The cursor before every row: reading after it yields the whole retained journal. */
export const START_CURSOR = cursorOf('0', '0');

/** The cursor of the row with commit seq `seq` and row id `id` (decimal text). */
export function cursorOf(seq: string, id: string): string {
  return `${seq.padStart(WIDTH, '0')}-${id.padStart(WIDTH, '0')}`;
}

/** The cursor after every row of commit `seq`: what `'now'` resolves to. */
export function cursorAfterCommit(seq: string): string {
  return cursorOf(seq, MAX_INT8);
}

/**
 * Parses a cursor, or throws `PGNOTIFY_INVALID_CURSOR` (anything not made by pgnotify, e.g. a
 * tampered `Last-Event-ID`).
 */
export function parseCursor(cursor: unknown): CursorKey {
  const match = typeof cursor === 'string' ? PATTERN.exec(cursor) : null;
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new PgNotifyError(
      ErrorCode.INVALID_CURSOR,
      `expected a journal cursor ("<19 digits>-<19 digits>"), 'start' or 'now', got ${describe(cursor)}`,
    );
  }
  const [seq, id] = [match[1], match[2]];
  if (seq > MAX_INT8 || id > MAX_INT8) {
    throw new PgNotifyError(ErrorCode.INVALID_CURSOR, `cursor out of range: ${cursor as string}`);
  }
  return { seq: trim(seq), id: trim(id) };
}

/** Whether `cursor` is a well-formed journal cursor. */
export function isCursor(cursor: unknown): cursor is string {
  try {
    parseCursor(cursor);
    return true;
  } catch {
    return false;
  }
}

/** Orders two cursors: negative when `a` is earlier, 0 when equal, positive when later. */
export function compareCursors(a: string, b: string): number {
  parseCursor(a);
  parseCursor(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function trim(digits: string): string {
  return digits.replace(/^0+(?=\d)/, '');
}
