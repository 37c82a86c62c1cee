/**
 * Every option, its default and its unit, validated once when a listener or notifier is
 * created. A wrong option is a synchronous {@link PgNotifyError} `PGNOTIFY_INVALID_OPTION`
 * saying what was expected and what was given.
 */
import type pg from 'pg';
import type { Decode, Schema } from './codec.js';
import { describe, ErrorCode, PgNotifyError } from './errors.js';
import { checkChannel } from './sql.js';
import type {
  BufferOptions,
  ChannelMap,
  ConnectionOption,
  ErrorHandler,
  HeartbeatOptions,
  ListenerOptions,
  ReconnectOptions,
} from './types.js';

// The notifier takes its ErrorHandler type from here.
export type { ErrorHandler } from './types.js';

/** The listener options with every default filled in. */
export interface ResolvedListenerOptions {
  connection: ConnectionOption | undefined;
  decode: Decode;
  schemas: ReadonlyMap<string, Schema>;
  concurrency: number;
  ignoreOwn: boolean;
  heartbeat: Required<HeartbeatOptions> | false;
  reconnect: Required<ReconnectOptions> | false;
  buffer: Required<BufferOptions>;
  connectTimeoutMs: number;
  stopTimeoutMs: number;
  applicationName: string;
  onError: ErrorHandler<PgNotifyError>;
  stopChannel: string | undefined;
}

/** Defaults, in one place. */
export const DEFAULTS = {
  decode: 'auto',
  concurrency: 1,
  heartbeat: { intervalMs: 10_000, timeoutMs: 5_000, queueWarnRatio: 0.5 },
  reconnect: { minDelayMs: 100, maxDelayMs: 10_000, maxAttempts: Number.POSITIVE_INFINITY },
  buffer: { max: 10_000, overflow: 'drop-oldest' },
  connectTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  applicationName: 'pgnotify',
} as const;

/**
 * The default `onError`: one block on stderr, never a throw. The first line holds the code,
 * then the channel and subscriber when known; the second the message; then the cause: a
 * handler's error with its stack (where the fix is), another cause by its message.
 * @example
 * // pgnotify: PGNOTIFY_HANDLER_FAILED channel="orders" subscriber=42
 * //   handler of subscriber 42 failed on "orders": boom
 * //   Error: boom
 * //       at handler (/app/orders.ts:12:11)
 */
export function defaultOnError(error: Error): void {
  process.stderr.write(formatError(error));
}

/** The block {@link defaultOnError} writes (ends with a newline). */
export function formatError(error: Error): string {
  const e = error as Error & { code?: unknown; channel?: unknown; subscriberId?: unknown };
  const where = [
    e.channel === undefined ? '' : ` channel=${JSON.stringify(e.channel)}`,
    e.subscriberId === undefined ? '' : ` subscriber=${JSON.stringify(e.subscriberId)}`,
  ].join('');
  const lines = [`pgnotify: ${String(e.code ?? e.name)}${where}`, `  ${e.message}`];
  const cause = e.cause;
  if (e.code === ErrorCode.HANDLER_FAILED && cause instanceof Error && cause.stack) {
    lines.push(...cause.stack.split('\n').map((line) => `  ${line}`));
  } else if (cause instanceof Error) {
    lines.push(`  cause: ${cause.message}`);
  } else if (cause !== undefined) {
    lines.push(`  cause: ${String(cause)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Validates listener options and fills in defaults. */
export function resolveListenerOptions(
  options: ListenerOptions<ChannelMap>,
): ResolvedListenerOptions {
  optionsArgument(
    'createListener',
    options,
    'a listener opens a session of its own: pass { connection }, a URL, a pg config or a factory',
  );
  return {
    connection: connectionOption(options.connection),
    decode: decodeOption('decode', options.decode ?? DEFAULTS.decode),
    schemas: schemasOption(options.schemas),
    concurrency: intOption('concurrency', options.concurrency, DEFAULTS.concurrency, 0),
    ignoreOwn: boolOption('ignoreOwn', options.ignoreOwn, false),
    heartbeat: heartbeatOption(options.heartbeat),
    reconnect: reconnectOption(options.reconnect),
    buffer: bufferOption('buffer', options.buffer, DEFAULTS.buffer),
    connectTimeoutMs: msOption(
      'connectTimeoutMs',
      options.connectTimeoutMs,
      DEFAULTS.connectTimeoutMs,
      1,
    ),
    stopTimeoutMs: msOption('stopTimeoutMs', options.stopTimeoutMs, DEFAULTS.stopTimeoutMs, 0),
    applicationName: stringOption(
      'applicationName',
      options.applicationName,
      DEFAULTS.applicationName,
    ),
    onError: functionOption('onError', options.onError, defaultOnError),
    stopChannel: options.stopChannel === undefined ? undefined : checkChannel(options.stopChannel),
  };
}

export function connectionOption(value: unknown): ConnectionOption | undefined {
  if (value === undefined || typeof value === 'string' || typeof value === 'function') {
    return value as ConnectionOption | undefined;
  }
  const expected = 'a URL string, a pg.ClientConfig or a client factory';
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('connection', expected, value);
  if (isQueryable(value)) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `option connection: expected ${expected}, got a client or pool`,
    );
  }
  return value as pg.ClientConfig;
}

export function decodeOption(name: string, value: unknown): Decode {
  if (value === 'auto' || value === 'json' || value === 'text' || typeof value === 'function') {
    return value as Decode;
  }
  throw invalid(name, "'auto', 'json', 'text' or a function", value);
}

function schemasOption(value: unknown): ReadonlyMap<string, Schema> {
  if (value === undefined) return new Map();
  if (typeof value !== 'object' || value === null) throw invalid('schemas', 'an object', value);
  for (const [channel, schema] of Object.entries(value)) {
    const std = (schema as { '~standard'?: { validate?: unknown } } | undefined)?.['~standard'];
    if (typeof std?.validate !== 'function') {
      throw invalid(`schemas[${JSON.stringify(channel)}]`, 'a Standard Schema', schema);
    }
  }
  return new Map(Object.entries(value as Record<string, Schema>));
}

function heartbeatOption(value: unknown): Required<HeartbeatOptions> | false {
  if (value === false) return false;
  if (value === undefined) return { ...DEFAULTS.heartbeat };
  if (typeof value !== 'object' || value === null)
    throw invalid('heartbeat', 'an object or false', value);
  const v = value as HeartbeatOptions;
  const ratio = v.queueWarnRatio ?? DEFAULTS.heartbeat.queueWarnRatio;
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) {
    throw invalid('heartbeat.queueWarnRatio', 'a number from 0 to 1', ratio);
  }
  return {
    intervalMs: msOption('heartbeat.intervalMs', v.intervalMs, DEFAULTS.heartbeat.intervalMs, 1),
    timeoutMs: msOption('heartbeat.timeoutMs', v.timeoutMs, DEFAULTS.heartbeat.timeoutMs, 1),
    queueWarnRatio: ratio,
  };
}

function reconnectOption(value: unknown): Required<ReconnectOptions> | false {
  if (value === false) return false;
  if (value === undefined) return { ...DEFAULTS.reconnect };
  if (typeof value !== 'object' || value === null)
    throw invalid('reconnect', 'an object or false', value);
  const v = value as ReconnectOptions;
  const minDelayMs = msOption(
    'reconnect.minDelayMs',
    v.minDelayMs,
    DEFAULTS.reconnect.minDelayMs,
    0,
  );
  const maxDelayMs = msOption(
    'reconnect.maxDelayMs',
    v.maxDelayMs,
    DEFAULTS.reconnect.maxDelayMs,
    0,
  );
  if (maxDelayMs < minDelayMs) {
    throw invalid(
      'reconnect.maxDelayMs',
      `at least reconnect.minDelayMs (${minDelayMs})`,
      maxDelayMs,
    );
  }
  const maxAttempts = v.maxAttempts ?? DEFAULTS.reconnect.maxAttempts;
  if (maxAttempts !== Number.POSITIVE_INFINITY)
    intOption('reconnect.maxAttempts', maxAttempts, 0, 1);
  return { minDelayMs, maxDelayMs, maxAttempts };
}

/** Validates a buffer option against a fallback (the listener's buffer for subscriptions). */
export function bufferOption(
  name: string,
  value: unknown,
  fallback: Required<BufferOptions> | typeof DEFAULTS.buffer,
): Required<BufferOptions> {
  if (value === undefined) return { ...fallback };
  if (typeof value !== 'object' || value === null) throw invalid(name, 'an object', value);
  const v = value as BufferOptions;
  const overflow = v.overflow ?? fallback.overflow;
  if (overflow !== 'drop-oldest' && overflow !== 'drop-newest' && overflow !== 'error') {
    throw invalid(`${name}.overflow`, "'drop-oldest', 'drop-newest' or 'error'", overflow);
  }
  return { max: intOption(`${name}.max`, v.max, fallback.max, 1), overflow };
}

/** An integer option ≥ min, or its default when undefined. */
export function intOption(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalid(name, `an integer ≥ ${min}`, value);
  }
  return value;
}

/** The longest delay a Node.js timer takes (~24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** A delay in ms for a timer: {@link intOption}, at most {@link MAX_TIMER_MS}. */
export function msOption(name: string, value: unknown, fallback: number, min: number): number {
  const ms = intOption(name, value, fallback, min);
  if (ms > MAX_TIMER_MS) {
    throw invalid(name, `an integer from ${min} to ${MAX_TIMER_MS} (ms, a timer's limit)`, value);
  }
  return ms;
}

/**
 * An optional timeout in ms, fractions allowed (a deadline minus now): undefined stays
 * undefined (wait forever).
 */
export function timeoutOption(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_TIMER_MS)) {
    throw invalid(name, `a number of ms from 0 to ${MAX_TIMER_MS} (a timer's limit)`, value);
  }
  return value;
}

function boolOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalid(name, 'a boolean', value);
  return value;
}

function stringOption(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw invalid(name, 'a string', value);
  return value;
}

export function functionOption<F>(name: string, value: unknown, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw invalid(name, 'a function', value);
  return value as F;
}

/**
 * Checks the options argument of `fn`: an object, and not a client or pool of the caller's
 * (`createListener(client)`, `installSchema(pool)`, a mistake the types reject but JavaScript
 * does not). Such an object would otherwise be read as options: its `connection` (pg's live
 * protocol object) copied into a config writes a startup message into the caller's socket, and a
 * pool without one silently connects to `DATABASE_URL` instead. `hint` says where it belongs.
 */
export function optionsArgument(fn: string, value: unknown, hint: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('options', 'an object', value);
  }
  if (isQueryable(value)) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `${fn}: expected an options object, got a client or pool (${hint})`,
    );
  }
}

/** Whether `value` is a client or pool (it has a `query` method), not a plain options object. */
export function isQueryable(value: object): boolean {
  return typeof (value as { query?: unknown }).query === 'function';
}

/** "option X: expected Y, got Z". */
export function invalid(name: string, expected: string, got: unknown): PgNotifyError {
  return new PgNotifyError(
    ErrorCode.INVALID_OPTION,
    `option ${name}: expected ${expected}, got ${describe(got)}`,
  );
}
