/**
 * The Notifier and the standalone notify() against the real server of the pass: encoding,
 * call order under concurrency, identical pairs, per-call refusals, notifyMany, transactions,
 * pool ownership, close(), and server-side failures.
 *
 * Deliveries are observed with a pgnotify listener (decode 'text', so `raw` and `payload` are
 * the text sent). "Not delivered" is proven with a barrier: a later notification on a sentinel
 * channel arrives, so anything sent before it would have arrived first.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  createListener,
  createNotifier,
  ErrorCode,
  type Listener,
  type Notification,
  type Notifier,
  notify,
  PgNotifyError,
  type Subscription,
} from '../src/index.js';
import {
  adminClient,
  backendPids,
  databaseUrl,
  terminate,
  uniqueChannel,
  waitFor,
} from './helpers/db.js';
import { freePort } from './helpers/embedded.js';
import { startProxy } from './helpers/proxy.js';

const DEADLINE = { timeoutMs: 10_000 };

let admin: pg.Client;
let listener: Listener;

before(async () => {
  admin = await adminClient();
  listener = createListener({ connection: databaseUrl(), decode: 'text' });
  await listener.start();
});

after(async () => {
  await listener?.stop();
  await admin?.end().catch(() => undefined);
});

/** "1 notification", "2 notifications". */
function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function rand(bytes = 4): string {
  return randomBytes(bytes).toString('hex');
}

interface Feed {
  readonly channel: string;
  readonly got: Notification[];
  readonly subscription: Subscription;
  raws(): string[];
  atLeast(count: number): Promise<void>;
}

/** A fresh channel the shared listener collects (LISTEN confirmed when this resolves). */
async function feed(prefix = 'n'): Promise<Feed> {
  const channel = uniqueChannel(prefix);
  const got: Notification[] = [];
  const subscription = await listener.subscribe(channel, (n) => {
    got.push(n);
  });
  return {
    channel,
    got,
    subscription,
    raws: () => got.map((n) => n.raw),
    async atLeast(count) {
      await waitFor(() => got.length >= count, {
        ...DEADLINE,
        message: `${plural(count, 'notification')} on ${channel} (have ${got.length})`,
      });
    },
  };
}

/** Resolves once everything committed before the call has reached the listener. */
async function barrier(): Promise<void> {
  const sentinel = await feed('barrier');
  await admin.query('select pg_notify($1, $2)', [sentinel.channel, 'sentinel']);
  await sentinel.atLeast(1);
  await sentinel.subscription.unsubscribe();
}

function code(expected: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PgNotifyError, `expected a PgNotifyError, got ${String(error)}`);
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

/** A fault-injecting proxy to the test server (see helpers/proxy.ts). */
function proxyToServer(): ReturnType<typeof startProxy> {
  const url = new URL(databaseUrl());
  return startProxy({
    targetHost: url.hostname || '127.0.0.1',
    targetPort: Number(url.port || 5432),
  });
}

/** A notifier whose own pool holds one connection, through `proxy`. */
function notifierVia(proxy: { url(base: string): string }, timeoutMs?: number) {
  return createNotifier({
    connection: { connectionString: proxy.url(databaseUrl()), max: 1 },
    onError: () => undefined,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

/** Restores the network: the next call is delivered, and nothing sent during the fault was. */
async function recovers(
  proxy: { resume(): void },
  notifier: ReturnType<typeof createNotifier>,
  f: Feed,
): Promise<void> {
  proxy.resume();
  await notifier.notify(f.channel, 'after');
  await f.atLeast(2);
  await barrier();
  assert.deepEqual(f.raws(), ['before', 'after']);
}

function closedPortUrl(port: number): string {
  const url = new URL(databaseUrl());
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.toString();
}

describe('encoding', () => {
  test('strings go as they are, other values as JSON, undefined as the empty payload', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const f = await feed('enc');
    const sent: [unknown, string][] = [
      ['plain text', 'plain text'],
      ['{"a":1}', '{"a":1}'],
      ['', ''],
      [{ a: 1, b: 'é🚀' }, '{"a":1,"b":"é🚀"}'],
      [[1, 'two', null], '[1,"two",null]'],
      [42, '42'],
      [null, 'null'],
      [true, 'true'],
      [undefined, ''],
    ];
    for (const [payload] of sent) await notifier.notify(f.channel, payload);
    await notifier.notify(f.channel);
    await notify(admin, f.channel, { via: 'standalone' });
    await notify(admin, f.channel);
    await f.atLeast(sent.length + 3);
    assert.deepEqual(f.raws(), [...sent.map(([, raw]) => raw), '', '{"via":"standalone"}', '']);
  });

  test('payloads that cannot be sent are refused with PGNOTIFY_INVALID_PAYLOAD', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const channel = uniqueChannel('bad');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const lossy = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      { total: Number.NEGATIVE_INFINITY },
      new Map([['a', 1]]),
      { tags: new Set(['a']) },
      [1, [Number.NaN]],
    ];
    for (const payload of [
      circular,
      10n,
      () => 1,
      Symbol('s'),
      'nul\0inside',
      'lone \uD800',
      ...lossy,
    ]) {
      await assert.rejects(notifier.notify(channel, payload), code(ErrorCode.INVALID_PAYLOAD));
      await assert.rejects(notify(admin, channel, payload), code(ErrorCode.INVALID_PAYLOAD));
      await assert.rejects(
        notifier.notifyMany(channel, ['fine', payload]),
        code(ErrorCode.INVALID_PAYLOAD),
      );
    }
  });
});

describe('concurrency and order', () => {
  test('many batches in flight at once (small maxBatch, calls over several ticks) keep call order', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), maxBatch: 3 });
    const f = await feed('pipe');
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      calls.push(notifier.notify(f.channel, String(i)));
      // New batches also form while earlier ones are on the wire.
      if (i % 50 === 49) await Promise.resolve();
    }
    const results = await Promise.allSettled(calls);
    assert.ok(results.every((r) => r.status === 'fulfilled'));
    await f.atLeast(300);
    assert.deepEqual(
      f.raws(),
      Array.from({ length: 300 }, (_, i) => String(i)),
    );
  });

  test('200 concurrent notify() calls all resolve and arrive in call order', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const f = await feed('order');
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) calls.push(notifier.notify(f.channel, String(i)));
    const results = await Promise.allSettled(calls);
    assert.ok(results.every((r) => r.status === 'fulfilled'));
    await f.atLeast(200);
    assert.deepEqual(
      f.raws(),
      Array.from({ length: 200 }, (_, i) => String(i)),
    );
  });

  test('one batch over several channels keeps every payload byte for byte, in call order', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const arrived: [string, string][] = [];
    const channels = [
      uniqueChannel('mix'),
      `it's "quoted"; DROP TABLE x; -- ${rand()}`,
      `ünï🚀 ${rand()}`,
      `${rand()}${'x'.repeat(55)}`, // 63 bytes
    ];
    assert.equal(Buffer.byteLength(channels[3] as string), 63);
    const subs = await Promise.all(
      channels.map((channel) => listener.subscribe(channel, (n) => arrived.push([channel, n.raw]))),
    );
    const strings = [
      '',
      'plain',
      `quote ' double " backslash \\ slash / tab \t newline \n cr \r`,
      'json-looking {"a":"\\u0000"} and \\u0041',
      'control \u0001\u001f and del \u007f',
      'unicode é ü 中文 🚀 \u2028\u2029',
      'é'.repeat(3999),
      'x'.repeat(7999),
    ];
    const values: unknown[] = [
      { a: 'quote " and \\ and \u0001', b: ['é🚀', null, 1.5e300] },
      [1, 'two', { three: [] }],
      new Date(0),
      'same',
      'same',
      42,
      null,
    ];
    const sent: [string, unknown, string][] = [];
    // Interleaved over the channels, with the same payload on several channels.
    for (const [i, payload] of [...strings, ...values].entries()) {
      for (let k = 0; k < 2; k++) {
        const channel = channels[(i + k) % channels.length] as string;
        const raw = typeof payload === 'string' ? payload : JSON.stringify(payload);
        sent.push([channel, payload, raw]);
      }
    }
    await Promise.all(sent.map(([channel, payload]) => notifier.notify(channel, payload)));
    await waitFor(() => arrived.length >= sent.length, {
      ...DEADLINE,
      message: `${sent.length} notifications (have ${arrived.length})`,
    });
    await barrier();
    assert.deepEqual(
      arrived,
      sent.map(([channel, , raw]) => [channel, raw]),
    );
    for (const sub of subs) await sub.unsubscribe();
  });

  test('identical (channel, payload) pairs sent concurrently are all delivered', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const same = await feed('same');
    const mixed = await feed('mixed');
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) calls.push(notifier.notify(same.channel, 'same'));
    const pattern = ['a', 'b', 'a', 'a', 'b', 'c', 'a'];
    for (const p of pattern) calls.push(notifier.notify(mixed.channel, p));
    await Promise.all(calls);
    await Promise.all([same.atLeast(10), mixed.atLeast(pattern.length)]);
    await barrier();
    assert.deepEqual(same.raws(), Array(10).fill('same'));
    assert.deepEqual(mixed.raws(), pattern);
  });

  test('a bad call in a concurrent group rejects alone with its code; the others deliver', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const f = await feed('group');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const tooLong = `${'x'.repeat(60)}${rand(2)}`;
    const calls = [
      // First: a fresh notifier has checked no channel yet, not even ''.
      notifier.notify('', 'empty channel'),
      notifier.notify(f.channel, 'ok0'),
      notifier.notify(tooLong, 'ok?'),
      notifier.notify(f.channel, 'ok1'),
      notifier.notify(f.channel, circular),
      notifier.notify(f.channel, 'ok2'),
      notifier.notify(f.channel, 'x'.repeat(8000)),
      notifier.notify(f.channel, 'ok3'),
      notifier.notify(f.channel, { n: 1n }),
      notifier.notify(f.channel, 'ok4'),
    ];
    const results = await Promise.allSettled(calls);
    const codes = results.map((r) =>
      r.status === 'fulfilled' ? 'ok' : (r.reason as PgNotifyError).code,
    );
    assert.deepEqual(codes, [
      ErrorCode.INVALID_CHANNEL,
      'ok',
      ErrorCode.INVALID_CHANNEL,
      'ok',
      ErrorCode.INVALID_PAYLOAD,
      'ok',
      ErrorCode.PAYLOAD_TOO_LARGE,
      'ok',
      ErrorCode.INVALID_PAYLOAD,
      'ok',
    ]);
    await f.atLeast(5);
    await barrier();
    assert.deepEqual(f.raws(), ['ok0', 'ok1', 'ok2', 'ok3', 'ok4']);
  });

  test('notifyMany(channel, payloads) delivers in order; one bad payload refuses them all', async () => {
    await using notifier = createNotifier({ connection: databaseUrl() });
    const f = await feed('many');
    const payloads = ['one', { two: 2 }, 'one', 3, 'one', undefined, 'last'];
    await notifier.notifyMany(f.channel, payloads);
    await f.atLeast(payloads.length);
    assert.deepEqual(f.raws(), ['one', '{"two":2}', 'one', '3', 'one', '', 'last']);
    const refused = await feed('many_refused');
    await assert.rejects(
      notifier.notifyMany(refused.channel, ['fine', 'x'.repeat(8000), 'fine too']),
      code(ErrorCode.PAYLOAD_TOO_LARGE),
    );
    await assert.rejects(
      notifier.notifyMany(`${'x'.repeat(64)}`, ['a']),
      code(ErrorCode.INVALID_CHANNEL),
    );
    await barrier();
    assert.deepEqual(refused.raws(), []);
  });
});

describe('standalone notify(client, …) in a transaction', () => {
  test('is delivered only after COMMIT', async () => {
    const client = await adminClient();
    try {
      const f = await feed('commit');
      await client.query('BEGIN');
      await notify(client, f.channel, { in: 'tx' });
      // Anything committed before the barrier's sentinel arrives before it.
      await barrier();
      assert.deepEqual(f.raws(), [], 'nothing before COMMIT');
      await client.query('COMMIT');
      await f.atLeast(1);
      assert.deepEqual(f.raws(), ['{"in":"tx"}']);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    }
  });

  test('is never delivered after ROLLBACK', async () => {
    const client = await adminClient();
    try {
      const f = await feed('rollback');
      await client.query('BEGIN');
      await notify(client, f.channel, 'rolled back');
      await client.query('ROLLBACK');
      await client.query('select pg_notify($1, $2)', [f.channel, 'after']);
      await f.atLeast(1);
      await barrier();
      assert.deepEqual(f.raws(), ['after']);
    } finally {
      await client.end();
    }
  });
});

describe('standalone notify(client, …) failures', () => {
  test('in an aborted transaction (25P02): PGNOTIFY_NOTIFY_FAILED with cause, sqlState and the fix', async () => {
    const client = await adminClient();
    try {
      const f = await feed('aborted');
      await client.query('BEGIN');
      await client.query('select 1/0').catch(() => undefined);
      const error = await notify(client, f.channel, { id: 1 }).then(
        () => assert.fail('notify in an aborted transaction resolved'),
        (e: unknown) => e,
      );
      code(ErrorCode.NOTIFY_FAILED)(error);
      const failure = error as PgNotifyError;
      assert.equal(failure.sqlState, '25P02');
      assert.ok(failure.cause instanceof pg.DatabaseError);
      assert.equal(failure.channel, f.channel);
      assert.equal(failure.retryable, false);
      assert.match(failure.message, /aborted/);
      assert.match(failure.message, /ROLLBACK/);
      await client.query('ROLLBACK');
      // The same client works again once the transaction is rolled back.
      await notify(client, f.channel, 'after rollback');
      await f.atLeast(1);
      await barrier();
      assert.deepEqual(f.raws(), ['after rollback']);
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  test('on an ended client: PGNOTIFY_NOTIFY_FAILED with the pg error as cause', async () => {
    const client = await adminClient();
    await client.end();
    const error = await notify(client, uniqueChannel('ended'), 'x').then(
      () => assert.fail('notify on an ended client resolved'),
      (e: unknown) => e,
    );
    code(ErrorCode.NOTIFY_FAILED)(error);
    const failure = error as PgNotifyError;
    assert.ok(failure.cause instanceof Error);
    assert.equal(failure.sqlState, undefined);
    assert.match(failure.message, /client is closed.*pass a connected client/);
  });

  test('any other server error is wrapped with its SQLSTATE', async () => {
    const client = await adminClient();
    try {
      await client.query('SET statement_timeout = 1');
      // A queryable of your own is anything with query(): this one's statement gets cancelled.
      const slow = { query: () => client.query('select pg_catalog.pg_sleep(1)') };
      const error = await notify(slow, 'c', 'x').then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
      code(ErrorCode.NOTIFY_FAILED)(error);
      assert.equal((error as PgNotifyError).sqlState, '57014');
      assert.ok((error as PgNotifyError).cause instanceof pg.DatabaseError);
      assert.match((error as Error).message, /SQLSTATE 57014.*nothing was sent/);
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  test('not a queryable: refused before anything is sent', async () => {
    for (const queryable of [undefined, null, {}, { query: 1 }]) {
      await assert.rejects(
        notify(queryable as never, uniqueChannel('q'), 'x'),
        code(ErrorCode.INVALID_OPTION),
      );
    }
  });
});

describe('channel checks', () => {
  /** A notifier whose pool can never connect: a call that reaches the pool fails NOTIFY_FAILED. */
  async function unreachable(): Promise<Notifier> {
    return createNotifier({
      connection: { connectionString: closedPortUrl(await freePort()), max: 1 },
      onError: () => undefined,
    });
  }
  /** notify() with the channel map set aside, as a JavaScript caller sees it. */
  const untyped = (notifier: Notifier) =>
    notifier.notify.bind(notifier) as (channel: unknown, payload?: unknown) => Promise<void>;
  const invalid = [undefined, null, '', 42, 'x'.repeat(64), 'nul\0', 'lone \uD800'];

  test('a first call with an invalid channel is refused before anything is sent', async () => {
    for (const channel of invalid) {
      await using notifier = await unreachable();
      await assert.rejects(untyped(notifier)(channel, 'x'), code(ErrorCode.INVALID_CHANNEL));
    }
  });

  test('every call checks its channel, whatever the calls before it were', async () => {
    await using notifier = await unreachable();
    const send = untyped(notifier);
    // After refused calls only, after a call that reached the pool, and repeated: a check never
    // depends on an earlier call's channel.
    for (const channel of [...invalid, ...invalid]) {
      await assert.rejects(send(channel, 'x'), code(ErrorCode.INVALID_CHANNEL));
    }
    await assert.rejects(send('valid', 'x'), code(ErrorCode.NOTIFY_FAILED));
    for (const channel of invalid) {
      await assert.rejects(send(channel, 'x'), code(ErrorCode.INVALID_CHANNEL));
    }
    // In one tick too: each call of a forming batch is checked alone.
    const codes = await Promise.allSettled([send(undefined), send('valid'), send(undefined)]);
    assert.deepEqual(
      codes.map((r) => (r.status === 'rejected' ? (r.reason as PgNotifyError).code : 'ok')),
      [ErrorCode.INVALID_CHANNEL, ErrorCode.NOTIFY_FAILED, ErrorCode.INVALID_CHANNEL],
    );
  });
});

describe('pools and close()', () => {
  test('with { pool }: close() leaves your pool running; notify after close rejects', async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    try {
      const notifier = createNotifier({ pool });
      const f = await feed('own_pool');
      await notifier.notify(f.channel, 'through your pool');
      await notifier.close();
      const { rows } = await pool.query<{ n: number }>('select 1 as n');
      assert.deepEqual(rows, [{ n: 1 }]);
      await assert.rejects(notifier.notify(f.channel, 'late'), code(ErrorCode.CLOSED));
      await f.atLeast(1);
      await barrier();
      assert.deepEqual(f.raws(), ['through your pool']);
    } finally {
      await pool.end();
    }
  });

  test('with { connection }: close() resolves only once every pooled socket has closed', async () => {
    const app = `pgn_notifier_${rand(6)}`;
    const sockets: net.Socket[] = [];
    const notifier = createNotifier({
      connection: {
        connectionString: databaseUrl(),
        application_name: app,
        // Watch the pool's sockets: pg calls this once per connection.
        stream: () => {
          const socket = new net.Socket();
          sockets.push(socket);
          return socket;
        },
      },
    });
    try {
      const f = await feed('owned');
      await notifier.notify(f.channel, 'x');
      const open = (await backendPids(app)).length;
      assert.ok(open >= 1, 'the notifier holds a pooled connection');
      assert.equal(sockets.length, open);
      const first = notifier.close();
      const second = notifier.close();
      assert.equal(first, second, 'a second close() returns the same promise');
      await first;
      assert.deepEqual(
        sockets.map((socket) => socket.closed),
        sockets.map(() => true),
        'every socket closed when close() resolved',
      );
      assert.equal((await backendPids(app)).length, 0, 'no backend of the notifier is left');
      await notifier.close();
      await assert.rejects(notifier.notify(f.channel, 'late'), code(ErrorCode.CLOSED));
      await assert.rejects(notifier.notifyMany(f.channel, ['late']), code(ErrorCode.CLOSED));
    } finally {
      await notifier.close();
    }
  });

  test('close() destroys a socket whose peer never answers the goodbye, after timeoutMs', async () => {
    // A relay that, once muted, neither forwards nor answers anything, a FIN included.
    const target = new URL(databaseUrl());
    const muted = new Set<net.Socket>();
    let mute = false;
    const relay = net.createServer({ allowHalfOpen: true }, (socket) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname || '127.0.0.1');
      socket.on('error', () => undefined);
      upstream.on('error', () => undefined);
      socket.on('data', (chunk) => mute || upstream.write(chunk));
      upstream.on('data', (chunk) => mute || socket.write(chunk));
      socket.on('end', () => (mute ? muted.add(socket) : upstream.end()));
      socket.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const url = new URL(databaseUrl());
    url.hostname = '127.0.0.1';
    url.port = String((relay.address() as net.AddressInfo).port);
    const sockets: net.Socket[] = [];
    const notifier = createNotifier({
      connection: {
        connectionString: url.toString(),
        max: 1,
        // Connecting on a loaded machine may take a while; only the goodbye must time out.
        connectionTimeoutMillis: 10_000,
        stream: () => {
          const socket = new net.Socket();
          sockets.push(socket);
          return socket;
        },
      },
      timeoutMs: 1500,
    });
    try {
      const f = await feed('mute');
      await notifier.notify(f.channel, 'x');
      mute = true;
      const started = Date.now();
      await notifier.close();
      assert.ok(Date.now() - started >= 1400, 'close() waited timeoutMs for the goodbye first');
      assert.equal(muted.size, 1, 'the relay got the goodbye and kept quiet');
      assert.deepEqual(
        sockets.map((socket) => socket.closed),
        [true],
      );
    } finally {
      await notifier.close();
      for (const socket of muted) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  test('close() is idempotent and waits for queued notifications', async () => {
    const notifier = createNotifier({ connection: databaseUrl() });
    const f = await feed('drain');
    const settled: boolean[] = Array(50).fill(false);
    const calls = Array.from({ length: 50 }, (_, i) =>
      notifier.notify(f.channel, String(i)).then(() => {
        settled[i] = true;
      }),
    );
    const first = notifier.close();
    const second = notifier.close();
    await Promise.all([first, second]);
    assert.ok(settled.every(Boolean), 'every queued notify() resolved before close() did');
    await Promise.all(calls);
    await notifier.close();
    await f.atLeast(50);
    assert.deepEqual(
      f.raws(),
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
  });
});

describe('failures', () => {
  test('a pool on a closed port rejects every caller of the batch with PGNOTIFY_NOTIFY_FAILED', async () => {
    const errors: Error[] = [];
    const notifier = createNotifier({
      connection: {
        connectionString: closedPortUrl(await freePort()),
        connectionTimeoutMillis: 5000,
      },
      onError: (e) => errors.push(e),
    });
    try {
      const channel = uniqueChannel('refused');
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => notifier.notify(channel, String(i))),
      );
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        code(ErrorCode.NOTIFY_FAILED)(r.reason);
        assert.equal((r.reason as PgNotifyError).retryable, true);
      }
      // A later, lone call fails the same way: the notifier is still usable.
      await assert.rejects(notifier.notify(channel, 'again'), code(ErrorCode.NOTIFY_FAILED));
      // Local refusals still come first, without touching the server.
      await assert.rejects(notifier.notify('x'.repeat(64), 'x'), code(ErrorCode.INVALID_CHANNEL));
    } finally {
      await notifier.close();
    }
  });

  test('a stalled connection: the batch rejects after timeoutMs, and the notifier recovers', async () => {
    await using proxy = await proxyToServer();
    const notifier = notifierVia(proxy, 500);
    try {
      const f = await feed('stall');
      await notifier.notify(f.channel, 'before');
      proxy.stall();
      const results = await Promise.allSettled(
        ['x', 'y'].map((p) => notifier.notify(f.channel, p)),
      );
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        code(ErrorCode.NOTIFY_FAILED)(r.reason);
        assert.match((r.reason as Error).message, /may or may not have been sent/);
      }
      // A new connection is still blackholed: connecting times out too.
      await assert.rejects(notifier.notify(f.channel, 'z'), code(ErrorCode.NOTIFY_FAILED));
      // Once the network is back, the pool has dropped the stalled connection and reconnects.
      await recovers(proxy, notifier, f);
    } finally {
      await notifier.close();
    }
  });

  test('a stalled server: the calls queued behind the batch that timed out reject at once, unsent', async () => {
    // Each batch used to wait timeoutMs of its own, one after the other: the last of 60 queued
    // calls rejected after 60 timeouts.
    await using proxy = await proxyToServer();
    const notifier = notifierVia(proxy, 500);
    try {
      const f = await feed('queued');
      await notifier.notify(f.channel, 'before');
      proxy.stall();
      const first = notifier.notify(f.channel, 'first');
      // Later ticks: batches of their own, queued behind the first.
      await new Promise((resolve) => setImmediate(resolve));
      const queued = [notifier.notify(f.channel, 'q1')];
      await new Promise((resolve) => setImmediate(resolve));
      queued.push(notifier.notify(f.channel, 'q2'));
      await assert.rejects(first, (error: unknown) => {
        code(ErrorCode.NOTIFY_FAILED)(error);
        assert.match((error as Error).message, /may or may not have been sent/);
        return true;
      });
      for (const call of queued) {
        await assert.rejects(call, (error: unknown) => {
          code(ErrorCode.NOTIFY_FAILED)(error);
          assert.match((error as Error).message, /not sent: the database did not answer/);
          return true;
        });
      }
      assert.equal(proxy.accepted, 1, 'no connection was tried for the queued calls');
      await recovers(proxy, notifier, f);
    } finally {
      await notifier.close();
    }
  });

  test('a connection cut while a statement is in flight rejects its batch; no crash, and the next call works', async () => {
    await using proxy = await proxyToServer();
    const notifier = notifierVia(proxy);
    try {
      const f = await feed('cut');
      await notifier.notify(f.channel, 'before');
      proxy.stall();
      const lost = notifier.notify(f.channel, 'lost');
      // Let the statement reach the (stalled) socket, then reset the connection under it.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      proxy.cut();
      await assert.rejects(lost, (error: unknown) => {
        code(ErrorCode.NOTIFY_FAILED)(error);
        // It was sent: whether it committed is unknown, and the message says so.
        assert.match((error as Error).message, /may or may not have been sent/);
        return true;
      });
      await recovers(proxy, notifier, f);
    } finally {
      await notifier.close();
    }
  });

  test('a server error rejects every caller of the batch with PGNOTIFY_NOTIFY_FAILED and its SQLSTATE', async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      // Leave the pool's only connection in a failed transaction: every statement fails (25P02).
      const poisoned = await pool.connect();
      await poisoned.query('BEGIN');
      await poisoned.query('select 1/0').catch(() => undefined);
      poisoned.release();
      const notifier = createNotifier({ pool });
      const f = await feed('srv');
      const results = await Promise.allSettled(
        ['a', 'b', 'c', 'd'].map((p) => notifier.notify(f.channel, p)),
      );
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        code(ErrorCode.NOTIFY_FAILED)(r.reason);
        assert.equal((r.reason as PgNotifyError).sqlState, '25P02');
        assert.equal((r.reason as PgNotifyError).retryable, true);
        assert.match((r.reason as Error).message, /a batch of 4 notifications.*roll back/);
      }
      // pg's pool discards a client whose query failed: the next call gets a fresh connection.
      await notifier.notify(f.channel, 'recovered');
      await f.atLeast(1);
      await barrier();
      assert.deepEqual(f.raws(), ['recovered'], 'nothing of the failed batch was delivered');
      await notifier.close();
    } finally {
      await pool.end();
    }
  });

  test('an idle pooled connection dying goes to onError and the next notify works', async () => {
    const app = `pgn_idle_${rand(6)}`;
    const errors: Error[] = [];
    const notifier = createNotifier({
      connection: { connectionString: databaseUrl(), application_name: app, max: 1 },
      onError: (e) => errors.push(e),
    });
    try {
      const f = await feed('idle');
      await notifier.notify(f.channel, 'before');
      const pids = await backendPids(app);
      assert.equal(pids.length, 1);
      // Our notifier's own backend, identified by its unique application_name.
      assert.ok(await terminate(pids[0] as number));
      await waitFor(() => errors.length > 0, { ...DEADLINE, message: 'onError' });
      code(ErrorCode.CONNECTION_LOST)(errors[0]);
      await notifier.notify(f.channel, 'after');
      await f.atLeast(2);
      assert.deepEqual(f.raws(), ['before', 'after']);
    } finally {
      await notifier.close();
    }
  });
});
