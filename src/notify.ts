/**
 * `notify(client, …)`: one notification through a connection of the caller's, inside
 * whatever transaction it is in.
 */
import pg from 'pg';
import { encodePayload } from './codec.js';
import { ErrorCode, PgNotifyError, shorten, toError } from './errors.js';
import { isSchemaMissing, journalError } from './journal.js';
import { DEFAULT_SCHEMA, journalNames, journalStatements } from './journal-sql.js';
import { durableSchema, encodeDurablePayload } from './journal-write.js';
import { checkChannel, NOTIFY_SQL } from './sql.js';
import type { ChannelMap } from './types.js';

/**
 * Anything with pg's `query(text, values)`: a `pg.Client`, a `pg.PoolClient`, a `pg.Pool`, or
 * an object of yours whose `query` returns a promise that rejects when the statement fails.
 */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** Per-call options of `notifier.notify` and `notifier.notifyMany`. */
export interface SendOptions {
  /**
   * Also write the message to the durable journal (a row per call, up to 64 MiB, read back by
   * durable subscriptions after any outage). Default false: a plain NOTIFY (< 8000 bytes).
   */
  durable?: boolean;
}

/** Options of the standalone {@link notify}. */
export interface NotifyOptions extends SendOptions {
  /** The journal's schema, for `durable: true`. Default `'pgnotify'`. */
  schema?: string;
}

/**
 * The payload argument of a channel whose payloads have type `T`, then the call's options:
 * the payload is required, or optional when `T` admits `undefined` (as `unknown`, the untyped
 * default, does); pass `undefined` to give options without a payload.
 */
export type PayloadArg<T, O = SendOptions> = undefined extends T
  ? [payload?: T, options?: O]
  : [payload: T, options?: O];

/** `(channel, payload, options)` of any channel of a map, each channel with its own payload type. */
export type NotifyArgs<Channels extends ChannelMap> = {
  [C in keyof Channels & string]: [channel: C, ...payload: PayloadArg<Channels[C], NotifyOptions>];
}[keyof Channels & string];

/**
 * Sends one notification through `queryable`, inside whatever transaction it is in: the
 * notification is delivered when that transaction commits and never if it rolls back. The
 * channel and payload are checked and encoded as `notifier.notify` does, and refused before
 * anything is sent. A failure of the statement rejects with `PGNOTIFY_NOTIFY_FAILED`, the pg
 * error as `cause`, its SQLSTATE as `sqlState`, and a message saying what to do: in an
 * aborted transaction (25P02), roll back first; with a closed client, pass a connected one.
 * It is not `retryable`: a transaction must be retried whole, by its owner.
 *
 * `{ durable: true }` writes a durable message instead: a journal row (payload up to 64 MiB)
 * and its wake-up, visible to durable subscriptions when the transaction commits and never if
 * it rolls back. A journal not installed in `schema` (default `'pgnotify'`) rejects with
 * `PGNOTIFY_SCHEMA_MISSING` (run `pgnotify setup` or `installSchema()`).
 *
 * Typed by a channel map with `notify<Channels>(client, 'orders', order)`.
 * @example
 * await client.query('BEGIN')
 * await client.query('INSERT INTO orders …')
 * await notify<Channels>(client, 'orders', { id })
 * await notify<Channels>(client, 'orders', { id }, { durable: true })
 * await client.query('COMMIT')
 */
export function notify<Channels extends ChannelMap = ChannelMap>(
  queryable: Queryable,
  ...args: NotifyArgs<Channels>
): Promise<void>;
export async function notify(
  queryable: Queryable,
  channel: string,
  payload?: unknown,
  options?: NotifyOptions,
): Promise<void> {
  if (typeof (queryable as Partial<Queryable> | null)?.query !== 'function') {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      'notify: expected a pg.Client, pg.PoolClient or pg.Pool (anything with query()) as the first argument',
    );
  }
  checkChannel(channel);
  const schema = durableSchema(options, options?.schema ?? DEFAULT_SCHEMA);
  if (schema === undefined) {
    const text = encodePayload(payload, channel);
    try {
      await queryable.query(NOTIFY_SQL, [channel, text]);
    } catch (cause) {
      throw notifyError(cause, channel);
    }
    return;
  }
  const { wakeChannel } = journalNames(schema);
  const text = encodeDurablePayload(payload, channel);
  try {
    await queryable.query(journalStatements(schema).append, [channel, text, wakeChannel]);
  } catch (cause) {
    throw isSchemaMissing(cause)
      ? journalError(cause, 'durable notify failed', schema, ErrorCode.NOTIFY_FAILED, channel)
      : notifyError(cause, channel);
  }
}

/** The error of a standalone notify() whose statement failed, with the fix in its message. */
function notifyError(cause: unknown, channel: string): PgNotifyError {
  const error = toError(cause);
  let what: string;
  if (error instanceof pg.DatabaseError && error.code === '25P02') {
    what =
      'the transaction is aborted by an earlier failed statement (SQLSTATE 25P02): roll it back' +
      ' (ROLLBACK, or ROLLBACK TO SAVEPOINT) and run it again; nothing was sent';
  } else if (error instanceof pg.DatabaseError) {
    what = `${error.message} (SQLSTATE ${error.code ?? 'unknown'}); nothing was sent`;
  } else if (/not queryable/i.test(error.message)) {
    what =
      `the client is closed (${error.message}): pass a connected client (a pg.Client after` +
      ' connect(), a pool client before release(), or a pg.Pool); nothing was sent';
  } else if (/Connection terminated/i.test(error.message)) {
    what =
      `the connection was lost during the call (${error.message}): inside a transaction nothing` +
      ' was sent; outside one it may or may not have been';
  } else {
    what = error.message;
  }
  return new PgNotifyError(
    ErrorCode.NOTIFY_FAILED,
    `notify on ${JSON.stringify(shorten(channel))} failed: ${what}`,
    { cause, channel },
  );
}
