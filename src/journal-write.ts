/**
 * Writing durable messages: the payload rules (up to 64 MiB, byte-exact) and the statements that
 * insert journal rows together with their wake-up NOTIFY. `notify(client, …, { durable: true })`
 * and the notifier's durable batches call these.
 */
import { checkLossless, stringifyPayload } from './codec.js';
import { describe, ErrorCode, PgNotifyError, toError } from './errors.js';
import { journalError } from './journal.js';
import { DEFAULT_SCHEMA, journalNames, journalStatements } from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { checkChannel } from './sql.js';

/** Largest durable payload, in UTF-8 bytes: 64 MiB. (Plain NOTIFY keeps its 7 999.) */
export const MAX_DURABLE_PAYLOAD_BYTES = 64 * 1024 * 1024;
/** Largest JSON text one batched append may send (PostgreSQL caps a value at 1 GB). */
export const MAX_DURABLE_BATCH_BYTES = 256 * 1024 * 1024;

/**
 * Checks a durable payload's text and returns it: `PGNOTIFY_PAYLOAD_TOO_LARGE` over
 * {@link MAX_DURABLE_PAYLOAD_BYTES}, `PGNOTIFY_INVALID_PAYLOAD` for NUL or a lone surrogate
 * (PostgreSQL text holds neither). Stored byte-exact otherwise.
 */
export function checkDurablePayload(payload: string, channel?: string): string {
  const details = channel === undefined ? {} : { channel };
  if (typeof payload !== 'string') {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `expected a payload string, got ${describe(payload)}`,
      details,
    );
  }
  if (payload.length * 3 > MAX_DURABLE_PAYLOAD_BYTES) {
    const bytes = Buffer.byteLength(payload);
    if (bytes > MAX_DURABLE_PAYLOAD_BYTES) {
      throw new PgNotifyError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `durable payload is ${bytes} bytes; the limit is ${MAX_DURABLE_PAYLOAD_BYTES} (64 MiB)`,
        details,
      );
    }
  }
  if (payload.includes('\0')) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      'payload contains a NUL character, which PostgreSQL text cannot hold',
      details,
    );
  }
  if (!payload.isWellFormed()) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      'payload contains a lone UTF-16 surrogate, which cannot be sent as UTF-8',
      details,
    );
  }
  return payload;
}

/** A value as durable payload text: strings as they are, `undefined` as '', anything else JSON. */
export function encodeDurablePayload(payload: unknown, channel: string): string {
  if (typeof payload === 'string') return checkDurablePayload(payload, channel);
  if (payload === undefined) return '';
  const text = stringifyPayload(payload, channel);
  checkDurablePayload(text, channel);
  try {
    checkLossless(payload, text, channel);
  } catch (error) {
    // Up to 64 MiB of JSON can nest deeper than the walk's stack, where stringify's held.
    if (error instanceof PgNotifyError) throw error;
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `payload cannot be checked: ${toError(error).message}`,
      { cause: error, channel },
    );
  }
  return text;
}

/**
 * Writes one durable message in `queryable`'s transaction: the journal row and the wake-up
 * `pg_notify(<wake channel>, channel)`, in one statement. Visible to readers on COMMIT, never on
 * rollback; repeated wake-ups of one channel in one transaction fold into one.
 * @example
 * await client.query('BEGIN')
 * await appendDurable(client, 'orders', JSON.stringify(order))
 * await client.query('COMMIT')
 */
export async function appendDurable(
  queryable: Queryable,
  channel: string,
  payload: string,
  schema: string = DEFAULT_SCHEMA,
): Promise<void> {
  checkDurablePayload(payload, checkChannel(channel));
  const { wakeChannel } = journalNames(schema);
  try {
    await queryable.query(journalStatements(schema).append, [channel, payload, wakeChannel]);
  } catch (error) {
    throw journalError(error, 'durable notify failed', schema, ErrorCode.NOTIFY_FAILED, channel);
  }
}

/**
 * Writes many durable messages in one statement, in array order: on one channel, or with
 * `channel` an array parallel to `payloads`. One wake-up per distinct channel. Every payload is
 * checked before anything is sent. Duplicates are distinct messages (they are not folded).
 * @example
 * await appendDurableBatch(pool, 'orders', ['a', 'b', 'c'])
 */
export async function appendDurableBatch(
  queryable: Queryable,
  channel: string | readonly string[],
  payloads: readonly string[],
  schema: string = DEFAULT_SCHEMA,
): Promise<void> {
  if (!Array.isArray(payloads)) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `expected an array of payloads, got ${describe(payloads)}`,
    );
  }
  const many = typeof channel !== 'string';
  if (many && channel.length !== payloads.length) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `expected one channel per payload (${payloads.length}), got ${channel.length}`,
    );
  }
  if (many) for (const c of channel) checkChannel(c);
  else checkChannel(channel);
  for (let i = 0; i < payloads.length; i++) {
    checkDurablePayload(payloads[i] as string, many ? channel[i] : channel);
  }
  if (payloads.length === 0) return;
  const array = JSON.stringify(payloads);
  if (array.length > MAX_DURABLE_BATCH_BYTES) {
    throw new PgNotifyError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `batch is ${array.length} bytes as JSON; split it (limit ${MAX_DURABLE_BATCH_BYTES})`,
    );
  }
  const sql = journalStatements(schema).appendBatch.text;
  try {
    await queryable.query(many ? sql.many : sql.one, [
      many ? JSON.stringify(channel) : channel,
      array,
      journalNames(schema).wakeChannel,
    ]);
  } catch (error) {
    throw journalError(error, 'durable notify failed', schema, ErrorCode.NOTIFY_FAILED);
  }
}

/**
 * The journal schema of a call with `{ durable }` (undefined for a plain call), or
 * `PGNOTIFY_INVALID_OPTION` when `durable` is not a boolean.
 * @internal
 */
export function durableSchema(
  options: { durable?: boolean } | undefined,
  schema: string,
): string | undefined {
  const durable = (options as { durable?: unknown } | null | undefined)?.durable;
  if (durable !== undefined && typeof durable !== 'boolean') {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `durable: expected a boolean, got ${describe(durable)}`,
    );
  }
  return durable === true ? schema : undefined;
}

/** Options of {@link notifyDurable}. */
export interface DurableNotifyOptions {
  /** The journal's schema. Default `'pgnotify'`. */
  schema?: string;
}

/**
 * `notify(client, channel, payload, { durable: true })`: encodes like `notify()` (strings as
 * they are, other values as JSON) but up to 64 MiB, then {@link appendDurable}.
 */
export function notifyDurable(
  queryable: Queryable,
  channel: string,
  payload?: unknown,
  options: DurableNotifyOptions = {},
): Promise<void> {
  try {
    const text = encodeDurablePayload(payload, checkChannel(channel));
    return appendDurable(queryable, channel, text, options.schema);
  } catch (error) {
    return Promise.reject(error);
  }
}
