/**
 * Unit tests of src/options.ts (validation and defaults) and of the pure helpers of
 * src/session.ts (backoff arithmetic, retryable errors). No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { ErrorCode, PgNotifyError } from '../src/errors.js';
import { installSchema } from '../src/journal.js';
import { createListener } from '../src/listener.js';
import { createNotifier } from '../src/notifier.js';
import {
  bufferOption,
  DEFAULTS,
  defaultOnError,
  formatError,
  resolveListenerOptions,
  timeoutOption,
} from '../src/options.js';
import { isRetryable } from '../src/pg-client.js';
import { backoffDelay } from '../src/reconnect.js';
import type { ListenerOptions } from '../src/types.js';

const fakeSchema = {
  '~standard': { version: 1, vendor: 'test', validate: (value: unknown) => ({ value }) },
} as const;

function resolveError(options: unknown): PgNotifyError {
  let caught: unknown;
  try {
    resolveListenerOptions(options as ListenerOptions);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PgNotifyError, `expected a PgNotifyError, got ${String(caught)}`);
  return caught;
}

describe('resolveListenerOptions defaults', () => {
  test('{} gives DEFAULTS', () => {
    const resolved = resolveListenerOptions({});
    assert.equal(resolved.connection, undefined);
    assert.equal(resolved.decode, DEFAULTS.decode);
    assert.equal(resolved.decode, 'auto');
    assert.equal(resolved.schemas.size, 0);
    assert.equal(resolved.concurrency, DEFAULTS.concurrency);
    assert.equal(resolved.ignoreOwn, false);
    assert.deepEqual(resolved.heartbeat, DEFAULTS.heartbeat);
    assert.deepEqual(resolved.reconnect, DEFAULTS.reconnect);
    assert.equal((resolved.reconnect || undefined)?.maxAttempts, Number.POSITIVE_INFINITY);
    assert.deepEqual(resolved.buffer, DEFAULTS.buffer);
    assert.equal(resolved.connectTimeoutMs, DEFAULTS.connectTimeoutMs);
    assert.equal(resolved.stopTimeoutMs, DEFAULTS.stopTimeoutMs);
    assert.equal(resolved.applicationName, DEFAULTS.applicationName);
    assert.equal(resolved.onError, defaultOnError);
    assert.equal(resolved.stopChannel, undefined);
  });

  test('the defaults documented in DESIGN/README', () => {
    assert.deepEqual(DEFAULTS, {
      decode: 'auto',
      concurrency: 1,
      heartbeat: { intervalMs: 10_000, timeoutMs: 5_000, queueWarnRatio: 0.5 },
      reconnect: { minDelayMs: 100, maxDelayMs: 10_000, maxAttempts: Number.POSITIVE_INFINITY },
      buffer: { max: 10_000, overflow: 'drop-oldest' },
      connectTimeoutMs: 10_000,
      stopTimeoutMs: 5_000,
      applicationName: 'pgnotify',
    });
  });

  test('resolved nested options are copies, not DEFAULTS itself', () => {
    const a = resolveListenerOptions({});
    assert.notEqual(a.heartbeat, DEFAULTS.heartbeat);
    assert.notEqual(a.reconnect, DEFAULTS.reconnect);
    assert.notEqual(a.buffer, DEFAULTS.buffer);
  });

  test('partial nested options are completed from the defaults', () => {
    const resolved = resolveListenerOptions({
      heartbeat: { intervalMs: 50 },
      reconnect: { maxAttempts: 3 },
      buffer: { overflow: 'error' },
    });
    assert.deepEqual(resolved.heartbeat, { ...DEFAULTS.heartbeat, intervalMs: 50 });
    assert.deepEqual(resolved.reconnect, { ...DEFAULTS.reconnect, maxAttempts: 3 });
    assert.deepEqual(resolved.buffer, { max: DEFAULTS.buffer.max, overflow: 'error' });
  });

  test('heartbeat: false and reconnect: false are accepted', () => {
    const resolved = resolveListenerOptions({ heartbeat: false, reconnect: false });
    assert.equal(resolved.heartbeat, false);
    assert.equal(resolved.reconnect, false);
  });

  test('valid values are kept', () => {
    const onError = (): void => {};
    const decode = (raw: string): unknown => raw;
    const factory = (): pg.Client => new pg.Client();
    const resolved = resolveListenerOptions({
      connection: 'postgres://u@h/db',
      decode: 'json',
      schemas: { orders: fakeSchema },
      concurrency: 0,
      ignoreOwn: true,
      heartbeat: { intervalMs: 1, timeoutMs: 1, queueWarnRatio: 0 },
      reconnect: { minDelayMs: 0, maxDelayMs: 0, maxAttempts: Number.POSITIVE_INFINITY },
      buffer: { max: 1, overflow: 'drop-newest' },
      connectTimeoutMs: 1,
      stopTimeoutMs: 0,
      applicationName: '',
      onError,
      stopChannel: 'stop_all',
    });
    assert.equal(resolved.connection, 'postgres://u@h/db');
    assert.equal(resolved.decode, 'json');
    assert.equal(resolved.schemas.get('orders'), fakeSchema);
    assert.equal(resolved.concurrency, 0);
    assert.equal(resolved.ignoreOwn, true);
    assert.deepEqual(resolved.heartbeat, { intervalMs: 1, timeoutMs: 1, queueWarnRatio: 0 });
    assert.deepEqual(resolved.reconnect, {
      minDelayMs: 0,
      maxDelayMs: 0,
      maxAttempts: Number.POSITIVE_INFINITY,
    });
    assert.deepEqual(resolved.buffer, { max: 1, overflow: 'drop-newest' });
    assert.equal(resolved.connectTimeoutMs, 1);
    assert.equal(resolved.stopTimeoutMs, 0);
    assert.equal(resolved.applicationName, '');
    assert.equal(resolved.onError, onError);
    assert.equal(resolved.stopChannel, 'stop_all');
    assert.equal(resolveListenerOptions({ decode }).decode, decode);
    assert.equal(resolveListenerOptions({ connection: factory }).connection, factory);
    const config = { host: 'h', port: 1 };
    assert.equal(resolveListenerOptions({ connection: config }).connection, config);
  });
});

describe('invalid listener options', () => {
  // [options, option name as it must appear in the message, what "got" must say]
  const cases: [unknown, string, string][] = [
    [{ heartbeat: { intervalMs: '10' } }, 'heartbeat.intervalMs', 'a string ("10")'],
    [{ heartbeat: { intervalMs: 0 } }, 'heartbeat.intervalMs', 'number (0)'],
    [{ heartbeat: { timeoutMs: 1.5 } }, 'heartbeat.timeoutMs', 'number (1.5)'],
    [{ heartbeat: { queueWarnRatio: 2 } }, 'heartbeat.queueWarnRatio', 'number (2)'],
    [{ heartbeat: { queueWarnRatio: Number.NaN } }, 'heartbeat.queueWarnRatio', 'number (NaN)'],
    [{ heartbeat: { queueWarnRatio: '0.5' } }, 'heartbeat.queueWarnRatio', 'a string ("0.5")'],
    [{ heartbeat: true }, 'heartbeat', 'boolean (true)'],
    [{ heartbeat: null }, 'heartbeat', 'null'],
    [{ concurrency: -1 }, 'concurrency', 'number (-1)'],
    // Longer than a Node.js timer holds: it would fire after 1 ms.
    [{ connectTimeoutMs: 2 ** 31 }, 'connectTimeoutMs', 'number (2147483648)'],
    [{ heartbeat: { intervalMs: 2 ** 31 } }, 'heartbeat.intervalMs', 'number (2147483648)'],
    [{ reconnect: { maxDelayMs: 2 ** 31 } }, 'reconnect.maxDelayMs', 'number (2147483648)'],
    [{ concurrency: 1.5 }, 'concurrency', 'number (1.5)'],
    [{ concurrency: Number.POSITIVE_INFINITY }, 'concurrency', 'number (Infinity)'],
    [{ concurrency: Number.NaN }, 'concurrency', 'number (NaN)'],
    [{ concurrency: '2' }, 'concurrency', 'a string ("2")'],
    [{ buffer: { overflow: 'nope' } }, 'buffer.overflow', 'a string ("nope")'],
    [{ buffer: { max: 0 } }, 'buffer.max', 'number (0)'],
    [{ buffer: 100 }, 'buffer', 'number (100)'],
    [{ reconnect: { minDelayMs: 500, maxDelayMs: 100 } }, 'reconnect.maxDelayMs', 'number (100)'],
    [{ reconnect: { maxDelayMs: 50 } }, 'reconnect.maxDelayMs', 'number (50)'],
    [{ reconnect: { minDelayMs: -1 } }, 'reconnect.minDelayMs', 'number (-1)'],
    [{ reconnect: { maxAttempts: 0 } }, 'reconnect.maxAttempts', 'number (0)'],
    [{ reconnect: { maxAttempts: 2.5 } }, 'reconnect.maxAttempts', 'number (2.5)'],
    [{ reconnect: 'yes' }, 'reconnect', 'a string ("yes")'],
    [{ schemas: { orders: {} } }, 'schemas["orders"]', 'an object'],
    [{ schemas: { orders: { '~standard': {} } } }, 'schemas["orders"]', 'an object'],
    [{ schemas: { orders: (v: unknown) => v } }, 'schemas["orders"]', 'a function'],
    [{ schemas: 'zod' }, 'schemas', 'a string ("zod")'],
    [{ connection: 42 }, 'connection', 'number (42)'],
    [{ connection: ['postgres://h/db'] }, 'connection', 'an array'],
    [{ connection: null }, 'connection', 'null'],
    [{ connection: true }, 'connection', 'boolean (true)'],
    [{ decode: 'yaml' }, 'decode', 'a string ("yaml")'],
    [{ decode: 1 }, 'decode', 'number (1)'],
    [{ ignoreOwn: 'yes' }, 'ignoreOwn', 'a string ("yes")'],
    [{ connectTimeoutMs: 0 }, 'connectTimeoutMs', 'number (0)'],
    [{ stopTimeoutMs: -5 }, 'stopTimeoutMs', 'number (-5)'],
    [{ applicationName: 5 }, 'applicationName', 'number (5)'],
    [{ onError: 'console' }, 'onError', 'a string ("console")'],
    [null, 'options', 'null'],
    ['postgres://h/db', 'options', 'a string ("postgres://h/db")'],
  ];

  for (const [options, name, got] of cases) {
    test(`${JSON.stringify(options, (_k, v) => (typeof v === 'function' ? '<fn>' : Number.isNaN(v) || v === Number.POSITIVE_INFINITY ? String(v) : v))} → ${name}`, () => {
      const error = resolveError(options);
      assert.equal(error.code, ErrorCode.INVALID_OPTION);
      assert.equal(error.code, 'PGNOTIFY_INVALID_OPTION');
      assert.ok(
        error.message.startsWith(`option ${name}: expected `),
        `message names the option: ${error.message}`,
      );
      assert.ok(
        error.message.endsWith(`, got ${got}`),
        `message says what was given: ${error.message}`,
      );
    });
  }

  test('the expected part is specific', () => {
    assert.match(resolveError({ concurrency: -1 }).message, /expected an integer ≥ 0/);
    assert.match(
      resolveError({ buffer: { overflow: 'nope' } }).message,
      /expected 'drop-oldest', 'drop-newest' or 'error'/,
    );
    assert.match(
      resolveError({ reconnect: { minDelayMs: 500, maxDelayMs: 100 } }).message,
      /expected at least reconnect\.minDelayMs \(500\)/,
    );
    assert.match(resolveError({ schemas: { a: {} } }).message, /expected a Standard Schema/);
    assert.match(resolveError({ heartbeat: { queueWarnRatio: 2 } }).message, /from 0 to 1/);
    assert.match(
      resolveError({ connection: 42 }).message,
      /expected a URL string, a pg\.ClientConfig or a client factory/,
    );
  });

  test('an invalid stopChannel is refused as an invalid channel', () => {
    for (const stopChannel of ['', 'x'.repeat(64), 'a\0b', 42]) {
      const error = resolveError({ stopChannel });
      assert.equal(error.code, ErrorCode.INVALID_CHANNEL);
    }
  });
});

describe('a client or pool where options go', () => {
  // Read as options, a pg.Client's `connection` (its live protocol object, socket and all) was
  // copied into a new client's config, which wrote a startup message into the caller's socket;
  // a pg.Pool silently connected wherever DATABASE_URL pointed.
  const client = new pg.Client();
  const pool = new pg.Pool();
  test('createListener, createNotifier and installSchema refuse one, saying where it goes', async () => {
    for (const value of [client, pool]) {
      const listener = resolveError(value);
      assert.equal(listener.code, ErrorCode.INVALID_OPTION);
      assert.match(
        listener.message,
        /^createListener: expected an options object, got a client or pool \(.*\{ connection \}/,
      );
      assert.throws(
        () => createNotifier(value as never),
        (e: PgNotifyError) => e.code === ErrorCode.INVALID_OPTION && /\{ pool \}/.test(e.message),
      );
      await assert.rejects(
        installSchema(value as never),
        (e: PgNotifyError) => e.code === ErrorCode.INVALID_OPTION && /\{ client \}/.test(e.message),
      );
    }
    assert.match(
      resolveError(42).message,
      /^option options: expected an object, got number \(42\)/,
    );
  });
  test('so does the connection option', () => {
    for (const value of [client, pool]) {
      assert.throws(
        () => createListener({ connection: value as never }),
        (e: PgNotifyError) =>
          e.code === ErrorCode.INVALID_OPTION && /got a client or pool/.test(e.message),
      );
      assert.throws(
        () => createNotifier({ connection: value as never }),
        (e: PgNotifyError) =>
          e.code === ErrorCode.INVALID_OPTION && /got a client or pool/.test(e.message),
      );
    }
  });
});

describe('other option validators', () => {
  test('bufferOption falls back to the given buffer and names the option', () => {
    const fallback = { max: 5, overflow: 'error' as const };
    assert.deepEqual(bufferOption('buffer', undefined, fallback), fallback);
    assert.notEqual(bufferOption('buffer', undefined, fallback), fallback);
    assert.deepEqual(bufferOption('buffer', { max: 2 }, fallback), { max: 2, overflow: 'error' });
    assert.throws(() => bufferOption('sub.buffer', { max: -1 }, fallback), {
      code: ErrorCode.INVALID_OPTION,
      message: /^option sub\.buffer\.max: expected an integer ≥ 1, got number \(-1\)$/,
    });
  });

  test('timeoutOption: undefined stays undefined, else ms from 0 to what a timer holds', () => {
    assert.equal(timeoutOption('timeoutMs', undefined), undefined);
    assert.equal(timeoutOption('timeoutMs', 0), 0);
    assert.equal(timeoutOption('timeoutMs', 250), 250);
    assert.equal(timeoutOption('timeoutMs', 2994.87), 2994.87, 'a deadline minus now');
    assert.throws(() => timeoutOption('timeoutMs', -1), {
      code: ErrorCode.INVALID_OPTION,
      message:
        /^option timeoutMs: expected a number of ms from 0 to 2147483647 .*, got number \(-1\)$/,
    });
    for (const bad of ['5s', Number.NaN, 2 ** 31, Number.POSITIVE_INFINITY])
      assert.throws(() => timeoutOption('timeoutMs', bad), { code: ErrorCode.INVALID_OPTION });
  });
});

describe('the default onError block', () => {
  test("a handler's error: code, channel, subscriber, message, then the handler's stack", () => {
    const cause = new Error('boom');
    const text = formatError(
      new PgNotifyError(
        ErrorCode.HANDLER_FAILED,
        'handler of subscriber 42 failed on "orders": boom',
        {
          cause,
          channel: 'orders',
          subscriberId: 42,
        },
      ),
    );
    const lines = text.split('\n');
    assert.equal(lines[0], 'pgnotify: PGNOTIFY_HANDLER_FAILED channel="orders" subscriber=42');
    assert.equal(lines[1], '  handler of subscriber 42 failed on "orders": boom');
    assert.equal(lines[2], '  Error: boom');
    assert.match(lines[3] ?? '', /^ {6}at /, 'the stack follows, indented under the block');
    assert.ok(text.endsWith('\n'));
  });

  test('another error: its cause by message, no stack; no channel or subscriber when absent', () => {
    const text = formatError(
      new PgNotifyError(ErrorCode.CONNECTION_LOST, 'listener connection lost: reset', {
        cause: new Error('read ECONNRESET'),
      }),
    );
    assert.equal(
      text,
      'pgnotify: PGNOTIFY_CONNECTION_LOST\n  listener connection lost: reset\n  cause: read ECONNRESET\n',
    );
  });
});

describe('backoffDelay', () => {
  const min = 100;
  const max = 10_000;
  const low = (): number => 0;
  const high = (): number => 0.999_999_999;
  const mid = (): number => 0.5;

  test('attempt 2 waits between min/2 and min', () => {
    assert.equal(backoffDelay(2, min, max, low), 50);
    assert.equal(backoffDelay(2, min, max, high), 100);
    assert.equal(backoffDelay(2, min, max, mid), 75);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(2, min, max);
      assert.ok(d >= min / 2 && d <= min, `delay ${d} outside [${min / 2}, ${min}]`);
    }
  });

  test('doubles per attempt', () => {
    const expected = [75, 150, 300, 600, 1200, 2400, 4800];
    for (let i = 0; i < expected.length; i++) {
      assert.equal(backoffDelay(i + 2, min, max, mid), expected[i], `attempt ${i + 2}`);
    }
    assert.equal(backoffDelay(3, min, max, low), 100);
    assert.equal(backoffDelay(3, min, max, high), 200);
  });

  test('is capped at maxDelayMs', () => {
    for (const attempt of [9, 10, 20, 100, 10_000]) {
      assert.equal(backoffDelay(attempt, min, max, high), max, `attempt ${attempt}`);
      assert.equal(backoffDelay(attempt, min, max, low), max / 2, `attempt ${attempt}`);
    }
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(50, min, max);
      assert.ok(d >= max / 2 && d <= max, `delay ${d} outside [${max / 2}, ${max}]`);
    }
    // max == min: a constant window.
    assert.equal(backoffDelay(30, 200, 200, high), 200);
  });

  test('uses the injected random source', () => {
    let calls = 0;
    const random = (): number => {
      calls++;
      return 0.25;
    };
    assert.equal(backoffDelay(4, 1000, 60_000, random), 2500); // base 4000: 2000 + 500
    assert.equal(calls, 1);
  });

  test('stays a finite number for a zero minDelayMs after many attempts', () => {
    // minDelayMs 0 and unlimited maxAttempts are both valid options.
    for (const attempt of [1025, 1026, 5000]) {
      const d = backoffDelay(attempt, 0, 1000, mid);
      assert.ok(Number.isFinite(d), `attempt ${attempt}: delay ${d}`);
      assert.equal(d, 0);
    }
  });
});

describe('isRetryable', () => {
  function withCode(code: string): Error {
    return Object.assign(new Error(`server said ${code}`), { code });
  }
  function dbError(code: string): pg.DatabaseError {
    const e = new pg.DatabaseError(`server said ${code}`, 0, 'error');
    e.code = code;
    return e;
  }

  test('credentials and a missing database are not retryable', () => {
    for (const code of ['28P01', '28000', '3D000', '42501']) {
      assert.equal(isRetryable(withCode(code)), false, code);
      assert.equal(isRetryable(dbError(code)), false, `DatabaseError ${code}`);
    }
  });

  test('shutdowns, startup, connection failures and socket errors are retryable', () => {
    for (const code of ['57P01', '57P03', '08006', '08001', '53300']) {
      assert.equal(isRetryable(withCode(code)), true, code);
      assert.equal(isRetryable(dbError(code)), true, `DatabaseError ${code}`);
    }
    // An errno name is not a SQLSTATE.
    assert.equal(isRetryable(withCode('ECONNREFUSED')), true);
    assert.equal(isRetryable(withCode('ETIMEDOUT')), true);
    assert.equal(isRetryable(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isRetryable('a string'), true);
  });

  test('a PgNotifyError uses the SQLSTATE of its cause, else its retryable flag', () => {
    const wrappedAuth = new PgNotifyError(ErrorCode.CONNECTION_FAILED, 'x', {
      cause: withCode('28P01'),
      retryable: true,
    });
    assert.equal(wrappedAuth.sqlState, '28P01');
    assert.equal(isRetryable(wrappedAuth), false);
    const wrappedShutdown = new PgNotifyError(ErrorCode.CONNECTION_LOST, 'x', {
      cause: withCode('57P01'),
    });
    assert.equal(isRetryable(wrappedShutdown), true);
    assert.equal(
      isRetryable(new PgNotifyError(ErrorCode.CONNECTION_FAILED, 'x', { retryable: true })),
      true,
    );
    assert.equal(isRetryable(new PgNotifyError(ErrorCode.CONNECTION_FAILED, 'x')), false);
    assert.equal(
      isRetryable(new PgNotifyError(ErrorCode.INVALID_OPTION, 'x', { retryable: true })),
      false,
    );
  });
});
