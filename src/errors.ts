import type { StandardSchemaV1 } from '@standard-schema/spec';
/**
 * The error family. Every error pgnotify creates is a {@link PgNotifyError} with a stable
 * `code`; match on the code, never on the message. Server errors stay attached as `cause`
 * and their SQLSTATE is copied to `sqlState`.
 */

/** Every code pgnotify can put on an error. The catalogue with fixes is in the README. */
export const ErrorCode = {
  /** A channel name is empty, longer than 63 UTF-8 bytes, contains NUL or is not well-formed. */
  INVALID_CHANNEL: 'PGNOTIFY_INVALID_CHANNEL',
  /**
   * A payload is 8000 bytes or more once encoded (UTF-8 bytes, not characters); for a durable
   * payload, more than 64 MiB.
   */
  PAYLOAD_TOO_LARGE: 'PGNOTIFY_PAYLOAD_TOO_LARGE',
  /** A payload cannot be encoded: circular, BigInt, a function, NUL characters. */
  INVALID_PAYLOAD: 'PGNOTIFY_INVALID_PAYLOAD',
  /** An option has the wrong type or range. Thrown synchronously by the factory. */
  INVALID_OPTION: 'PGNOTIFY_INVALID_OPTION',
  /** Connecting (or LISTENing after connecting) failed. `retryable` says whether a retry may help. */
  CONNECTION_FAILED: 'PGNOTIFY_CONNECTION_FAILED',
  /** An established listener connection was lost. */
  CONNECTION_LOST: 'PGNOTIFY_CONNECTION_LOST',
  /** The heartbeat query did not answer within `heartbeat.timeoutMs`: the connection is dead. */
  HEARTBEAT_TIMEOUT: 'PGNOTIFY_HEARTBEAT_TIMEOUT',
  /** The server listens to other channels than wanted; the listener repaired it. */
  LISTEN_MISMATCH: 'PGNOTIFY_LISTEN_MISMATCH',
  /** The server's notification queue is filling up (`pg_notification_queue_usage()`). */
  QUEUE_USAGE_HIGH: 'PGNOTIFY_QUEUE_USAGE_HIGH',
  /** The listener, notifier or subscription was stopped; the call cannot proceed. */
  CLOSED: 'PGNOTIFY_CLOSED',
  /** A wait ran out of time (`once`, `stop` waiting for handlers). */
  TIMEOUT: 'PGNOTIFY_TIMEOUT',
  /** A wait was aborted through its `AbortSignal`. */
  ABORTED: 'PGNOTIFY_ABORTED',
  /** A payload could not be decoded (strict `'json'`, or a throwing custom decoder). Not delivered. */
  DECODE_FAILED: 'PGNOTIFY_DECODE_FAILED',
  /** A payload failed its channel's schema. Not delivered. */
  VALIDATION_FAILED: 'PGNOTIFY_VALIDATION_FAILED',
  /** A handler threw or rejected. Other subscribers were not affected. */
  HANDLER_FAILED: 'PGNOTIFY_HANDLER_FAILED',
  /** A subscription's buffer was full; notifications were dropped per its overflow policy. */
  BUFFER_OVERFLOW: 'PGNOTIFY_BUFFER_OVERFLOW',
  /** A subscriber id is already in use on this listener. */
  DUPLICATE_SUBSCRIBER: 'PGNOTIFY_DUPLICATE_SUBSCRIBER',
  /** No subscriber has that id. */
  UNKNOWN_SUBSCRIBER: 'PGNOTIFY_UNKNOWN_SUBSCRIBER',
  /** Sending a notification failed on the server. */
  NOTIFY_FAILED: 'PGNOTIFY_NOTIFY_FAILED',
  /**
   * The server refused LISTEN/UNLISTEN on a live connection (e.g. a permission or a
   * statement error). The connection stays; the channels are tried again with the next batch.
   */
  LISTEN_FAILED: 'PGNOTIFY_LISTEN_FAILED',
  /**
   * `next()`, `withGaps()` or `for await` on a subscription that has a handler: its
   * notifications go to the handler, so there is nothing to iterate.
   */
  NOT_ITERABLE: 'PGNOTIFY_NOT_ITERABLE',
  /**
   * The durable journal's schema is not installed (or not at the version this library needs)
   * in the database. Fix: run `pgnotify setup` or `installSchema()` once.
   */
  SCHEMA_MISSING: 'PGNOTIFY_SCHEMA_MISSING',
  /** A string given as a journal cursor was not made by pgnotify (or is out of range). */
  INVALID_CURSOR: 'PGNOTIFY_INVALID_CURSOR',
  /** Reading, pruning or keeping cursors in the journal failed on the server (see `cause`). */
  JOURNAL_FAILED: 'PGNOTIFY_JOURNAL_FAILED',
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Extra, code-specific facts carried by an error. */
export interface ErrorDetails {
  /** The underlying error (a server error, a socket error, what a handler threw). */
  cause?: unknown;
  /** The channel concerned, when there is one. */
  channel?: string;
  /** The subscriber concerned, when there is one. */
  subscriberId?: string | number;
  /** Whether retrying the same operation may succeed (connection errors). */
  retryable?: boolean;
}

/**
 * The base of every error pgnotify creates.
 * @example
 * try { await notifier.notify(name, payload) } catch (e) {
 *   if (e instanceof PgNotifyError && e.code === ErrorCode.INVALID_CHANNEL) { ... }
 * }
 */
export class PgNotifyError extends Error {
  /** Stable machine-readable code, `PGNOTIFY_…`. */
  readonly code: ErrorCode;
  /** SQLSTATE of the server error behind this one, when there is one (e.g. `28P01`). */
  readonly sqlState: string | undefined;
  /** The channel concerned, when there is one. */
  readonly channel: string | undefined;
  /** The subscriber concerned, when there is one. */
  readonly subscriberId: string | number | undefined;
  /** Whether retrying may help. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PgNotifyError';
    this.code = code;
    this.sqlState = sqlStateOf(details.cause);
    this.channel = details.channel;
    this.subscriberId = details.subscriberId;
    this.retryable = details.retryable ?? false;
  }
}

/** The SQLSTATE of a server error (`pg`'s `DatabaseError.code`), else undefined. */
export function sqlStateOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  // pg puts SQLSTATEs (5 chars, digits and capitals) and Node puts errno names (ECONNREFUSED)
  // in the same field; only the former is a SQLSTATE.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The error of a call that needs a listener that was stopped. */
export function listenerClosedError(): PgNotifyError {
  return new PgNotifyError(ErrorCode.CLOSED, 'the listener is stopped');
}

/** The error of a wait cut short by its `AbortSignal`; the signal's reason is the cause. */
export function abortedError(signal: AbortSignal | undefined): PgNotifyError {
  return new PgNotifyError(ErrorCode.ABORTED, 'the wait was aborted', { cause: signal?.reason });
}

/**
 * What `onError` is handed for anything thrown: a `PgNotifyError` as it is, anything else
 * wrapped as `code` with the message `context: <its message>`, the original as `cause`
 * (so a handler's stack stays on `error.cause`).
 */
export function asPgNotifyError(
  error: unknown,
  code: ErrorCode,
  context: string,
  details: Omit<ErrorDetails, 'cause'> = {},
): PgNotifyError {
  if (error instanceof PgNotifyError) return error;
  return new PgNotifyError(code, `${context}: ${toError(error).message}`, {
    ...details,
    cause: error,
  });
}

/** Wraps anything thrown into an Error, for places that must hand an Error on. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** "a string", "a number (3)", "null": for "expected X, got Y" messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `a string (${JSON.stringify(shorten(value))})`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof value} (${String(value)})`;
    case 'function':
      return 'a function';
    default:
      return `an ${typeof value}`;
  }
}

/** "1 notification", "2 notifications": a count with its noun, for messages. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** Cuts long text for messages. */
export function shorten(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** A validation failure; the schema's issues are on `.issues`. */
export class ValidationError extends PgNotifyError {
  /** What the schema reported, as given by the schema library. */
  readonly issues: readonly StandardSchemaV1.Issue[];
  constructor(channel: string, issues: readonly StandardSchemaV1.Issue[], cause: unknown) {
    const summary = issues.length
      ? issues
          .slice(0, 3)
          .map((i) => (i.path?.length ? `${i.path.map(pathKey).join('.')}: ` : '') + i.message)
          .join('; ')
      : String((cause as Error | undefined)?.message ?? cause);
    super(
      ErrorCode.VALIDATION_FAILED,
      `payload on ${JSON.stringify(channel)} failed its schema: ${summary}`,
      cause === undefined ? { channel } : { channel, cause },
    );
    this.name = 'ValidationError';
    this.issues = issues;
  }
}

function pathKey(segment: PropertyKey | StandardSchemaV1.PathSegment): string {
  return String(typeof segment === 'object' ? segment.key : segment);
}
