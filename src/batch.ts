/**
 * A batch of the notifier: calls that go out as one statement, and that statement. A batch is
 * plain (NOTIFY) or durable (journal rows and their wake-up), never both.
 */
import { ErrorCode, PgNotifyError, sqlStateOf, toError } from './errors.js';
import { isSchemaMissing, journalError } from './journal.js';
import { journalNames, journalStatements } from './journal-sql.js';
import { MAX_DURABLE_BATCH_BYTES } from './journal-write.js';
import { NOTIFY_BATCH_SQL, NOTIFY_SQL } from './sql.js';

/**
 * Calls that go out as one statement. It is open (calls join it) until the send loop takes
 * it. Every call of a batch shares its outcome: the batch settles one promise, from which
 * each call's own is derived, and its JSON parameters are built as calls join, not at send
 * time.
 * @internal
 */
export class Batch {
  /**
   * The payloads in call order, as the elements of a JSON array: JSON strings, or when `json`,
   * the JSON text the client encoded (see NOTIFY_BATCH_SQL).
   */
  readonly payloads: string[] = [];
  /**
   * The channels as JSON strings, once the batch holds more than one channel: a batch on one
   * channel (the common case) never encodes its channel.
   */
  channels: string[] | undefined;
  /**
   * Payload (as its element, which is one-to-one with the text) → the channel, or the
   * channels, it already goes to in this batch: PostgreSQL folds repeated pairs into one.
   * Unused by a durable batch, whose every call is a journal row of its own.
   */
  private readonly seen = new Map<string, string | Set<string>>();
  /** Length of the payloads' JSON array so far (UTF-16 units, as appendDurableBatch counts). */
  private length = 0;
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor(
    readonly channel: string,
    /** Whether the elements are JSON values as encoded, not JSON strings. */
    readonly json: boolean,
    readonly firstPayload: string,
    payloadJson: string,
    /** The journal's schema for a durable batch; undefined for a plain one. */
    readonly schema?: string,
  ) {
    this.payloads.push(payloadJson);
    this.length = payloadJson.length + 2;
    if (schema === undefined) this.seen.set(payloadJson, channel);
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Callers get promises derived from this one; it is never the one left unhandled.
    this.done.catch(() => undefined);
  }

  /**
   * Adds a call, or returns false when it cannot join: a plain batch already holds this
   * (channel, payload), or a durable batch would pass MAX_DURABLE_BATCH_BYTES.
   */
  add(channel: string, payloadJson: string): boolean {
    if (this.schema !== undefined) {
      // The channels' array counts too: at most 63 bytes, 6 UTF-16 units a byte escaped, + 3.
      if (this.length + payloadJson.length + 1 + 400 > MAX_DURABLE_BATCH_BYTES) return false;
    } else {
      const seen = this.seen.get(payloadJson);
      if (seen === undefined) this.seen.set(payloadJson, channel);
      else if (typeof seen === 'string') {
        if (seen === channel) return false;
        this.seen.set(payloadJson, new Set([seen, channel]));
      } else {
        if (seen.has(channel)) return false;
        seen.add(channel);
      }
    }
    if (this.channels === undefined && channel !== this.channel) {
      this.channels = new Array<string>(this.payloads.length).fill(JSON.stringify(this.channel));
    }
    this.channels?.push(JSON.stringify(channel));
    this.payloads.push(payloadJson);
    this.length += payloadJson.length + 1;
    return true;
  }

  /** The statement and parameters that send this batch. */
  query(): [text: string, values: string[]] {
    const payloads = this.payloads;
    if (this.schema !== undefined) return this.durableQuery();
    if (payloads.length === 1) return [NOTIFY_SQL, [this.channel, this.firstPayload]];
    const sql = NOTIFY_BATCH_SQL[this.json ? 'json' : 'text'];
    const array = `[${payloads.join(',')}]`;
    if (this.channels === undefined) return [sql.one, [this.channel, array]];
    return [sql.many, [`[${this.channels.join(',')}]`, array]];
  }

  /** Journal rows in call order and one wake-up per channel (appendBatch of journal-sql.ts). */
  private durableQuery(): [text: string, values: string[]] {
    const schema = this.schema as string;
    const statements = journalStatements(schema);
    const wake = journalNames(schema).wakeChannel;
    if (this.payloads.length === 1) {
      return [statements.append, [this.channel, this.firstPayload, wake]];
    }
    const sql = statements.appendBatch[this.json ? 'json' : 'text'];
    const array = `[${this.payloads.join(',')}]`;
    if (this.channels === undefined) return [sql.one, [this.channel, array, wake]];
    return [sql.many, [`[${this.channels.join(',')}]`, array, wake]];
  }
}

/**
 * A statement that was sent and then got no answer: whether it committed is unknown.
 * @internal
 */
export class OutcomeUnknown extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

/**
 * What every caller of a failed batch gets: `PGNOTIFY_NOTIFY_FAILED` (`retryable`) with a hint
 * (sent, then no answer: the outcome is unknown; a server error or a failure to connect means
 * nothing was delivered), or for a durable batch whose journal is not installed,
 * `PGNOTIFY_SCHEMA_MISSING` with the fix.
 * @internal
 */
export function batchError(batch: Batch, error: unknown): PgNotifyError {
  const count = batch.payloads.length;
  const unknown = error instanceof OutcomeUnknown;
  const cause = unknown ? error.reason : error;
  if (batch.schema !== undefined && isSchemaMissing(cause)) {
    return journalError(cause, 'durable notify failed', batch.schema);
  }
  const hint = unknown
    ? `; ${count > 1 ? 'the notifications' : 'it'} may or may not have been sent`
    : sqlStateOf(cause) === '25P02'
      ? '; a connection came back to your pool inside a failed transaction: roll back before release()'
      : '';
  return new PgNotifyError(
    ErrorCode.NOTIFY_FAILED,
    `notify failed${count > 1 ? ` (a batch of ${count} notifications)` : ''}: ${toError(cause).message}${hint}`,
    { cause, retryable: true },
  );
}
