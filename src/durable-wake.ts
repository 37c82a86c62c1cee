/**
 * Durable wake-ups as the listener receives them on a schema's wake channel. Two senders:
 *
 * - The write statements (every schema version) send the channel written to: "read the journal".
 * - The commit trigger (schema version 2, see journal-install.ts) sends the commit itself, signed:
 *   its seq and, for a small transaction, all its rows. A tail that has read everything up to
 *   seq − 1 hands the rows over without a read (commit → handler in one trip, like plain NOTIFY).
 *
 * Any role can NOTIFY any channel, so only a wake-up signed with the schema's key stands in for a
 * read; anything else that looks like one only starts a read (harmless), never a delivery.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { sqlStateOf } from './errors.js';
import { journalError } from './journal.js';
import { cursorOf } from './journal-cursor.js';
import type { JournalRow } from './journal-read.js';
import { journalStatements } from './journal-sql.js';
import type { Queryable } from './notifier.js';

/** A wake-up, parsed. */
export type Wake =
  /** From a write statement: the channel written to. */
  | { readonly kind: 'channel'; readonly channel: string }
  /** From the commit trigger, verified: the commit's seq and, when they fit, all its rows. */
  | {
      readonly kind: 'commit';
      readonly seq: bigint;
      readonly rows: readonly JournalRow[] | undefined;
    }
  /** Shaped like a commit wake-up but not verified (no key, a forgery, another encoding): read. */
  | { readonly kind: 'unknown' };

const SIGNATURE_CHARS = 32;
const SHAPE = /^[0-9a-f]{32}\[/;
const UNKNOWN: Wake = { kind: 'unknown' };

/** The signature the commit trigger puts before `body`: sha256(body ‖ key), 128 bits in hex. */
export function signWake(body: string, key: Buffer): string {
  return createHash('sha256')
    .update(body, 'utf8')
    .update(key)
    .digest('hex')
    .slice(0, SIGNATURE_CHARS);
}

/** Parses a wake-up's payload; `key` is the schema's wake key (undefined: not known). */
export function parseWake(raw: string, key: Buffer | undefined): Wake {
  if (!SHAPE.test(raw)) return { kind: 'channel', channel: raw };
  if (key === undefined) return UNKNOWN;
  const body = raw.slice(SIGNATURE_CHARS);
  const expected = Buffer.from(signWake(body, key));
  const given = Buffer.from(raw.slice(0, SIGNATURE_CHARS));
  if (!timingSafeEqual(expected, given)) return UNKNOWN;
  try {
    const [seq, at, list] = JSON.parse(body) as [unknown, unknown, unknown];
    if (typeof seq !== 'string' || typeof at !== 'number') return UNKNOWN;
    if (list === undefined) return { kind: 'commit', seq: BigInt(seq), rows: undefined };
    if (!Array.isArray(list) || list.length === 0) return UNKNOWN;
    const rows: JournalRow[] = [];
    for (const item of list as unknown[]) {
      const [id, channel, pid, payload] = item as [unknown, unknown, unknown, unknown];
      if (typeof id !== 'string' || typeof channel !== 'string' || typeof payload !== 'string')
        return UNKNOWN;
      rows.push({ cursor: cursorOf(seq, id), channel, payload, pid: Number(pid), committedAt: at });
    }
    return { kind: 'commit', seq: BigInt(seq), rows };
  } catch {
    return UNKNOWN;
  }
}

/**
 * The schema's wake key, or undefined when the schema predates version 2 or the role may not
 * read `meta` (wake-ups then only start reads). Other failures reject (e.g. a missing schema).
 */
export async function loadWakeKey(
  queryable: Queryable,
  schema: string,
): Promise<Buffer | undefined> {
  try {
    const res = (await queryable.query(journalStatements(schema).wakeKey)) as {
      rows: { key: string | null }[];
    };
    const text = res.rows[0]?.key;
    return typeof text === 'string' && text.startsWith('\\x')
      ? Buffer.from(text.slice(2), 'hex')
      : undefined;
  } catch (error) {
    if (sqlStateOf(error) === '42501') return undefined;
    throw journalError(error, 'reading the wake key failed', schema);
  }
}
