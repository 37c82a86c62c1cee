/**
 * The Listener's foundation against the real server of the pass: start/stop, one backend per
 * listener, subscribers and ids, mute rules, batching, snapshots, hostile channel names,
 * payload limits and decoding, ignoreOwn, handler errors, the connection factory, and a
 * process that exits by itself.
 *
 * "Nothing was delivered" is proven with a barrier: a notification on a sentinel channel sent
 * after the one that must not arrive. The server hands a session its notifications in commit
 * order, so once the sentinel is in, anything sent earlier would be in too.
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
  type ListenerOptions,
  type Notification,
  type Notifier,
  notify,
  PgNotifyError,
  type Queryable,
} from '../src/index.js';
import { internalsOf } from '../src/listener.js';
import {
  adminClient,
  backendPids,
  databaseUrl,
  onceEvent,
  serverKind,
  uniqueChannel,
  waitFor,
  withAdmin,
} from './helpers/db.js';
import { freePort } from './helpers/embedded.js';
import { collect, barrier as rigBarrier } from './helpers/rig.js';
import { runScript, type ScriptOutcome } from './helpers/script.js';

const DEADLINE = { timeoutMs: 10_000 };

let admin: pg.Client;
let adminPid: number;
let notifier: Notifier;

before(async () => {
  admin = await adminClient();
  const { rows } = await admin.query<{ pid: number }>('select pg_backend_pid() as pid');
  adminPid = rows[0]?.pid ?? -1;
  notifier = createNotifier({ connection: databaseUrl() });
});

after(async () => {
  await notifier?.close();
  await admin?.end().catch(() => undefined);
});

// ---- helpers ------------------------------------------------------------------------------

/** Sends one notification from the admin session (committed when this resolves). */
async function send(channel: string, payload = ''): Promise<void> {
  await admin.query('select pg_notify($1, $2)', [channel, payload]);
}

function rand(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

function listen(options: ListenerOptions = {}): Listener {
  return createListener({ connection: databaseUrl(), ...options });
}

/** Waits until every notification committed before the call has been read by `listener`. */
function barrier(listener: Listener): Promise<void> {
  return rigBarrier(listener, send);
}

/**
 * Asserts that `check` still holds once everything committed before the call has been read
 * (the barrier: a notification sent after it arrives after every earlier one).
 */
async function stillQuiet(listener: Listener, check: () => void): Promise<void> {
  check();
  await barrier(listener);
  check();
}

function code(expected: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PgNotifyError, `expected a PgNotifyError, got ${String(error)}`);
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

function infoOf(listener: Listener, channel: string) {
  return listener.channels().find((c) => c.name === channel);
}

function urlWith(change: (url: URL) => void): string {
  const url = new URL(databaseUrl());
  change(url);
  return url.toString();
}

// ---- start / stop -------------------------------------------------------------------------

describe('start()', () => {
  test('resolves once LISTEN is confirmed: a notification sent right after is delivered', async () => {
    await using listener = listen();
    const c = collect();
    const channel = uniqueChannel('start');
    await listener.subscribe(channel, c.handler);
    assert.equal(listener.state, 'idle');
    await listener.start();
    assert.equal(listener.state, 'listening');
    const before = Date.now();
    await send(channel, '{"a":1}');
    await c.atLeast(1);
    const n = c.got[0] as Notification;
    assert.equal(n.channel, channel);
    assert.deepEqual(n.payload, { a: 1 });
    assert.equal(n.raw, '{"a":1}');
    assert.equal(n.pid, adminPid, "pid is the notifying session's pg_backend_pid()");
    assert.equal(typeof n.receivedAt, 'number');
    assert.ok(
      n.receivedAt >= before - 1000 && n.receivedAt <= Date.now() + 1000,
      `receivedAt ${n.receivedAt} is near now`,
    );
    assert.equal(typeof listener.pid, 'number');
    assert.notEqual(listener.pid, adminPid);
  });

  test('subscribe after start resolves only after LISTEN: a notification sent right after is delivered', async () => {
    await using listener = listen();
    await listener.start();
    for (let i = 0; i < 10; i++) {
      const c = collect();
      const channel = uniqueChannel(`late${i}`);
      await listener.subscribe(channel, c.handler);
      await send(channel, `late ${i}`);
      await c.atLeast(1, `delivery on subscription ${i}`);
      assert.equal(c.got[0]?.payload, `late ${i}`);
      assert.equal(c.got[0]?.channel, channel);
      assert.equal(c.got[0]?.pid, adminPid);
    }
  });

  test('rejects with PGNOTIFY_CONNECTION_FAILED when nothing listens on the port', async () => {
    const port = await freePort();
    const url = urlWith((u) => {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    });
    await using listener = createListener({ connection: url, onError: () => undefined });
    await listener.subscribe(uniqueChannel('refused'), () => undefined);
    await assert.rejects(listener.start(), (error: unknown) => {
      code(ErrorCode.CONNECTION_FAILED)(error);
      assert.equal((error as PgNotifyError).retryable, true, 'a refused connection may come back');
      return true;
    });
    assert.notEqual(listener.state, 'listening');
    assert.equal(listener.pid, undefined);
  });

  test('rejects with PGNOTIFY_CONNECTION_FAILED, not retryable, 3D000 for a missing database', async () => {
    const url = urlWith((u) => {
      u.pathname = `/no_such_db_${rand(6)}`;
    });
    await using listener = createListener({ connection: url, onError: () => undefined });
    await assert.rejects(listener.start(), (error: unknown) => {
      code(ErrorCode.CONNECTION_FAILED)(error);
      assert.equal((error as PgNotifyError).retryable, false);
      assert.equal((error as PgNotifyError).sqlState, '3D000');
      return true;
    });
    assert.notEqual(listener.state, 'listening');
  });

  test('rejects with PGNOTIFY_CONNECTION_FAILED, not retryable, for a wrong password', async (t) => {
    if (serverKind() !== 'embedded') {
      t.skip('only the embedded server is known to use password auth');
      return;
    }
    const url = urlWith((u) => {
      u.password = `wrong_${rand()}`;
    });
    const trusts = await adminClient(url).then(
      async (c) => {
        await c.end();
        return true;
      },
      () => false,
    );
    if (trusts) {
      t.skip('server trusts');
      return;
    }
    await using listener = createListener({ connection: url, onError: () => undefined });
    await assert.rejects(listener.start(), (error: unknown) => {
      code(ErrorCode.CONNECTION_FAILED)(error);
      assert.equal((error as PgNotifyError).retryable, false);
      assert.match((error as PgNotifyError).sqlState ?? '', /^28/);
      return true;
    });
  });
});

describe('start() failures tell the fix', () => {
  /** Calls start() with the environment holding no connection settings (restored at once). */
  function startWithoutEnv(listener: Listener): Promise<void> {
    const names = ['DATABASE_URL', 'PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD'];
    const saved = names.map((name) => [name, process.env[name]] as const);
    for (const name of names) delete process.env[name];
    try {
      // The connection is resolved synchronously inside start(), before its first await.
      return listener.start();
    } finally {
      for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
    }
  }

  test('nothing configured: PGNOTIFY_INVALID_OPTION naming the fix; state idle with lastError; retryable', async () => {
    await using listener = createListener({ onError: () => undefined });
    const states: string[] = [];
    listener.on('state', (state) => states.push(state));
    await assert.rejects(startWithoutEnv(listener), (error: unknown) => {
      code(ErrorCode.INVALID_OPTION)(error);
      assert.match(
        (error as Error).message,
        /^no PostgreSQL connection configured: pass `connection`, set DATABASE_URL or PG\* variables/,
      );
      assert.equal((error as PgNotifyError).retryable, false);
      return true;
    });
    assert.equal(listener.state, 'idle');
    assert.deepEqual(states, ['connecting', 'idle']);
    assert.equal(listener.lastError?.code, ErrorCode.INVALID_OPTION);
    // With the environment back (DATABASE_URL), the same listener starts.
    await listener.start();
    assert.equal(listener.state, 'listening');
    assert.equal(listener.lastError, undefined);
  });

  test('a URL that does not parse is PGNOTIFY_INVALID_OPTION at once, never retried', async () => {
    let attempts = 0;
    await using listener = createListener({
      connection: 'localhost:5432/base',
      onError: () => undefined,
    });
    listener.on('reconnecting', () => attempts++);
    await assert.rejects(listener.start(), code(ErrorCode.INVALID_OPTION));
    assert.equal(attempts, 0);
    assert.equal(listener.state, 'idle');
  });

  test('run() rejects with the error itself, not a wrapper', async () => {
    const port = await freePort();
    const url = urlWith((u) => {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    });
    await using refused = createListener({ connection: url, onError: () => undefined });
    await assert.rejects(refused.run(), (error: unknown) => {
      code(ErrorCode.CONNECTION_FAILED)(error);
      assert.match((error as Error).message, /could not connect the listener/);
      return true;
    });
    await using invalid = createListener({ connection: 'mysql://x@y/z', onError: () => undefined });
    await assert.rejects(invalid.run(), (error: unknown) => {
      code(ErrorCode.INVALID_OPTION)(error);
      assert.match((error as Error).message, /scheme mysql/);
      return true;
    });
  });

  test('an event listener that throws reaches onError as PGNOTIFY_HANDLER_FAILED with the cause', async () => {
    const errors: PgNotifyError[] = [];
    await using listener = listen({ onError: (error) => errors.push(error) });
    const thrown = new Error('listener bug');
    listener.on('connected', () => {
      throw thrown;
    });
    await listener.start();
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof PgNotifyError);
    assert.equal(errors[0]?.code, ErrorCode.HANDLER_FAILED);
    assert.equal(errors[0]?.cause, thrown);
    assert.match(errors[0]?.message ?? '', /"connected" event listener threw: listener bug/);
  });
});

describe('stop()', () => {
  test('is idempotent; closed resolves; later calls reject with PGNOTIFY_CLOSED', async () => {
    const app = `pgn_stop_${rand(6)}`;
    const listener = listen({ applicationName: app });
    try {
      const channel = uniqueChannel('stop');
      await listener.subscribe(channel, () => undefined, { id: 's1' });
      await listener.start();
      assert.equal((await backendPids(app)).length, 1);
      const first = listener.stop();
      const second = listener.stop();
      await Promise.all([first, second]);
      await listener.closed;
      assert.equal(listener.state, 'stopped');
      assert.equal(listener.pid, undefined);
      await listener.stop();
      await assert.rejects(
        listener.subscribe(uniqueChannel('after'), () => undefined),
        code(ErrorCode.CLOSED),
      );
      await assert.rejects(listener.mute(channel), code(ErrorCode.CLOSED));
      await assert.rejects(listener.mute(), code(ErrorCode.CLOSED));
      await listener.unsubscribe('s1');
      await listener.unsubscribe('s1', channel);
      await listener.unsubscribe('never-existed');
      await waitFor(async () => (await backendPids(app)).length === 0, {
        ...DEADLINE,
        message: 'the listener backend to be gone after stop()',
      });
    } finally {
      await listener.stop();
    }
  });

  test('`await using` stops the listener at the end of the block', async () => {
    let outside: Listener | undefined;
    {
      await using listener = listen();
      outside = listener;
      await listener.subscribe(uniqueChannel('using'), () => undefined);
      await listener.start();
      assert.equal(listener.state, 'listening');
    }
    assert.equal(outside.state, 'stopped');
    await outside.closed;
  });

  test('stop() during the first connection attempt aborts it', async () => {
    // A server that accepts TCP connections and never answers: the connect cannot finish.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => {
      socket.on('error', () => undefined);
      sockets.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const accepted = onceEvent<[net.Socket]>(silent, 'connection', DEADLINE);
      const listener = createListener({
        connection: `postgres://nobody:x@127.0.0.1:${port}/none`,
        connectTimeoutMs: 120_000,
        onError: () => undefined,
      });
      const started = listener.start().then(
        () => 'resolved',
        (error: unknown) => (error as PgNotifyError).code,
      );
      const [socket] = await accepted;
      const socketClosed = onceEvent(socket, 'close', { timeoutMs: 5000 });
      await listener.stop();
      assert.equal(listener.state, 'stopped');
      await socketClosed;
      assert.equal(await started, ErrorCode.CLOSED);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('run({ signal }) resolves after the AbortController aborts', async () => {
    const listener = listen();
    try {
      const connected = new Promise<void>((resolve) => listener.on('connected', () => resolve()));
      const controller = new AbortController();
      let settled = false;
      const running = listener.run({ signal: controller.signal }).finally(() => {
        settled = true;
      });
      await connected;
      assert.equal(listener.state, 'listening');
      assert.equal(settled, false, 'run() is still running while listening');
      controller.abort();
      await running;
      assert.equal(listener.state, 'stopped');
    } finally {
      await listener.stop();
    }
  });

  test('run() resolves after stop() is called elsewhere', async () => {
    const listener = listen();
    try {
      const connected = new Promise<void>((resolve) => listener.on('connected', () => resolve()));
      let settled = false;
      const running = listener.run().finally(() => {
        settled = true;
      });
      await connected;
      await barrier(listener);
      assert.equal(settled, false, 'run() is still running while listening');
      await listener.stop();
      await running;
      assert.equal(listener.state, 'stopped');
    } finally {
      await listener.stop();
    }
  });
});

// ---- one connection -----------------------------------------------------------------------

test('one backend per listener whatever the channel and subscriber count', async () => {
  const app = `pgn_one_${rand(6)}`;
  await using listener = listen({ applicationName: app });
  const channels = Array.from({ length: 50 }, (_, i) => uniqueChannel(`one${i}`));
  const collectors = Array.from({ length: 20 }, () => collect());
  // Half the subscribers before start, half after.
  for (let i = 0; i < 10; i++) {
    const mine = channels.filter((_, j) => j % 20 === i);
    await listener.subscribe(mine, collectors[i]?.handler ?? (() => undefined));
  }
  await listener.start();
  for (let i = 10; i < 20; i++) {
    const mine = channels.filter((_, j) => j % 20 === i);
    await listener.subscribe(mine, collectors[i]?.handler ?? (() => undefined));
  }
  const pids = await backendPids(app);
  assert.deepEqual(pids, [listener.pid]);
  assert.equal(listener.channels().length, 50);
  assert.ok(listener.channels().every((c) => c.listening));
  assert.equal(listener.stats().channels.listening, 50);
  assert.equal(listener.subscribers().length, 20);
  // Every channel is really listened to on that one backend.
  await Promise.all(channels.map((channel) => notifier.notify(channel, channel)));
  await waitFor(() => collectors.reduce((n, c) => n + c.got.length, 0) >= 50, {
    ...DEADLINE,
    message: '50 deliveries',
  });
  collectors.forEach((c, i) => {
    assert.deepEqual(
      c.raws().sort(),
      channels.filter((_, j) => j % 20 === i).sort(),
      `subscriber ${i} got its own channels`,
    );
  });
});

// ---- subscribers --------------------------------------------------------------------------

describe('subscribers', () => {
  test('several subscribers on one channel each receive it; one subscriber on many channels', async () => {
    await using listener = listen();
    await listener.start();
    const shared = uniqueChannel('shared');
    const many = [uniqueChannel('m1'), uniqueChannel('m2'), uniqueChannel('m3')];
    const a = collect();
    const b = collect();
    const c = collect();
    const wide = collect();
    await listener.subscribe(shared, a.handler);
    await listener.subscribe(shared, b.handler);
    await listener.subscribe(shared, c.handler);
    await listener.subscribe(many, wide.handler);
    await send(shared, 'to all');
    for (const channel of many) await send(channel, channel);
    await Promise.all([a.atLeast(1), b.atLeast(1), c.atLeast(1), wide.atLeast(3)]);
    await barrier(listener);
    for (const x of [a, b, c]) assert.deepEqual(x.raws(), ['to all']);
    assert.deepEqual(
      wide.got.map((n) => n.channel),
      many,
    );
  });

  test('ids: numbers and strings, generated when omitted, duplicates refused', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('ids');
    const num = collect();
    const str = collect();
    const s42 = await listener.subscribe(channel, num.handler, { id: 42 });
    const sAlpha = await listener.subscribe(channel, str.handler, { id: 'alpha' });
    const g1 = await listener.subscribe(channel, () => undefined);
    const g2 = await listener.subscribe(channel, () => undefined);
    // Falsy ids are ids too.
    const zero = await listener.subscribe(channel, () => undefined, { id: 0 });
    const empty = await listener.subscribe(channel, () => undefined, { id: '' });
    assert.equal(s42.id, 42);
    assert.equal(sAlpha.id, 'alpha');
    assert.equal(zero.id, 0);
    assert.equal(empty.id, '');
    assert.ok(typeof g1.id === 'string' || typeof g1.id === 'number');
    const ids = [s42.id, sAlpha.id, g1.id, g2.id, zero.id, empty.id];
    assert.equal(new Set(ids).size, 6, `ids are unique: ${JSON.stringify(ids)}`);
    assert.deepEqual(
      listener.subscribers().map((s) => s.id),
      ids,
    );
    await assert.rejects(
      listener.subscribe(uniqueChannel('dup'), () => undefined, { id: 42 }),
      (error: unknown) => {
        code(ErrorCode.DUPLICATE_SUBSCRIBER)(error);
        assert.equal((error as PgNotifyError).subscriberId, 42);
        return true;
      },
    );
    await assert.rejects(
      listener.subscribe(channel, () => undefined, { id: 'alpha' }),
      code(ErrorCode.DUPLICATE_SUBSCRIBER),
    );
    await assert.rejects(
      listener.subscribe(channel, () => undefined, { id: g1.id }),
      code(ErrorCode.DUPLICATE_SUBSCRIBER),
    );
    await assert.rejects(
      listener.subscribe(channel, () => undefined, { id: 0 }),
      code(ErrorCode.DUPLICATE_SUBSCRIBER),
    );
    // The refused duplicates changed nothing.
    assert.equal(listener.subscribers().length, 6);
    await send(channel, 'still here');
    await Promise.all([num.atLeast(1), str.atLeast(1)]);
    await barrier(listener);
    assert.deepEqual(num.raws(), ['still here']);
    assert.deepEqual(str.raws(), ['still here']);
  });

  test('unsubscribe(id, [a]) keeps the subscriber on its other channel', async () => {
    await using listener = listen();
    await listener.start();
    const a = uniqueChannel('ua');
    const b = uniqueChannel('ub');
    const c = collect();
    await listener.subscribe([a, b], c.handler, { id: 'two' });
    await listener.unsubscribe('two', [a]);
    assert.deepEqual(
      listener
        .subscribers()
        .find((s) => s.id === 'two')
        ?.channels.map((x) => x.name),
      [b],
    );
    assert.equal(infoOf(listener, a), undefined);
    assert.equal(infoOf(listener, b)?.listening, true);
    await send(a, 'gone');
    await send(b, 'kept');
    await c.atLeast(1);
    await barrier(listener);
    assert.deepEqual(c.raws(), ['kept']);
  });

  test('sub.unsubscribe() ends it; the last subscriber leaving makes the server stop listening', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('last');
    const first = collect();
    const second = collect();
    const s1 = await listener.subscribe(channel, first.handler);
    const s2 = await listener.subscribe(channel, second.handler);
    await s1.unsubscribe();
    assert.equal(s1.ended, true);
    assert.equal(infoOf(listener, channel)?.listening, true, 'one subscriber is left');
    await send(channel, 'one left');
    await second.atLeast(1);
    await s2.unsubscribe();
    assert.equal(infoOf(listener, channel), undefined, 'the channel left the snapshot');
    assert.equal(listener.stats().channels.listening, 0);
    await barrier(listener);
    const received = listener.stats().received;
    await send(channel, 'nobody');
    await stillQuiet(listener, () => {
      assert.deepEqual(first.raws(), []);
      assert.deepEqual(second.raws(), ['one left']);
    });
    // Only the barrier's own notification was read: the server no longer sends `channel`.
    assert.equal(listener.stats().received, received + 1);
  });
});

// ---- mute rules ---------------------------------------------------------------------------

describe('mute rules', () => {
  test('mute(channel) stops delivery to everyone and the LISTEN; unmute restores both', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('mute');
    const a = collect();
    const b = collect();
    await listener.subscribe(channel, a.handler);
    await listener.subscribe(channel, b.handler);
    await listener.mute(channel);
    const info = infoOf(listener, channel);
    assert.equal(info?.muted, true);
    assert.equal(info?.active, false);
    assert.equal(info?.listening, false);
    await barrier(listener);
    const received = listener.stats().received;
    await send(channel, 'muted');
    await stillQuiet(listener, () => {
      assert.equal(a.got.length + b.got.length, 0);
    });
    assert.equal(listener.stats().received, received + 1, 'the server did not send it');
    await listener.unmute(channel);
    assert.equal(infoOf(listener, channel)?.muted, false);
    assert.equal(infoOf(listener, channel)?.listening, true);
    await send(channel, 'unmuted');
    await Promise.all([a.atLeast(1), b.atLeast(1)]);
    assert.deepEqual(a.raws(), ['unmuted']);
    assert.deepEqual(b.raws(), ['unmuted']);
  });

  test('mute() with no arguments mutes every channel; unmute() restores them', async () => {
    await using listener = listen();
    await listener.start();
    const one = uniqueChannel('all1');
    const two = uniqueChannel('all2');
    const c = collect();
    await listener.subscribe([one, two], c.handler);
    await listener.mute();
    for (const channel of [one, two]) {
      assert.equal(infoOf(listener, channel)?.muted, true);
      assert.equal(infoOf(listener, channel)?.listening, false);
    }
    await send(one, 'x');
    await send(two, 'y');
    await stillQuiet(listener, () => assert.deepEqual(c.raws(), []));
    await listener.unmute();
    await send(one, 'back1');
    await send(two, 'back2');
    await c.atLeast(2);
    assert.deepEqual(c.raws(), ['back1', 'back2']);
  });

  test('muteSubscriber(id, [ch]) silences that subscriber on ch only', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('ms');
    const other = uniqueChannel('ms_other');
    const quiet = collect();
    const loud = collect();
    await listener.subscribe([channel, other], quiet.handler, { id: 'quiet' });
    await listener.subscribe(channel, loud.handler, { id: 'loud' });
    await listener.muteSubscriber('quiet', [channel]);
    const mine = listener.subscribers().find((s) => s.id === 'quiet');
    assert.deepEqual(mine?.channels, [
      { name: channel, muted: true },
      { name: other, muted: false },
    ]);
    assert.equal(infoOf(listener, channel)?.listening, true, 'loud still needs it');
    await send(channel, 'for loud');
    await send(other, 'for quiet');
    await Promise.all([loud.atLeast(1), quiet.atLeast(1)]);
    await barrier(listener);
    assert.deepEqual(loud.raws(), ['for loud']);
    assert.deepEqual(quiet.raws(), ['for quiet']);
  });

  test('a channel whose every subscriber is muted is not listened to; unmuteSubscriber restores', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('allmuted');
    const a = collect();
    const b = collect();
    await listener.subscribe(channel, a.handler, { id: 'a' });
    await listener.subscribe(channel, b.handler, { id: 'b' });
    await listener.muteSubscriber('a');
    assert.equal(infoOf(listener, channel)?.listening, true);
    await listener.muteSubscriber('b', channel);
    const info = infoOf(listener, channel);
    assert.equal(info?.muted, false, 'the channel itself is not muted');
    assert.equal(info?.active, false);
    assert.equal(info?.listening, false);
    assert.deepEqual(info?.subscribers, [
      { id: 'a', muted: true },
      { id: 'b', muted: true },
    ]);
    await barrier(listener);
    const received = listener.stats().received;
    await send(channel, 'nobody');
    await stillQuiet(listener, () => assert.equal(a.got.length + b.got.length, 0));
    assert.equal(listener.stats().received, received + 1, 'the server did not send it');
    await listener.unmuteSubscriber('a');
    assert.equal(infoOf(listener, channel)?.listening, true);
    await send(channel, 'a only');
    await a.atLeast(1);
    await barrier(listener);
    assert.deepEqual(a.raws(), ['a only']);
    assert.deepEqual(b.raws(), []);
    await assert.rejects(listener.muteSubscriber('nobody'), code(ErrorCode.UNKNOWN_SUBSCRIBER));
  });

  test('muting a channel before anyone subscribes: the subscriber starts muted on it', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('premute');
    await listener.mute(channel);
    const c = collect();
    await listener.subscribe(channel, c.handler);
    const info = infoOf(listener, channel);
    assert.equal(info?.muted, true);
    assert.equal(info?.active, false);
    assert.equal(info?.listening, false);
    await send(channel, 'muted');
    await stillQuiet(listener, () => assert.deepEqual(c.raws(), []));
    await listener.unmute(channel);
    await send(channel, 'open');
    await c.atLeast(1);
    assert.deepEqual(c.raws(), ['open']);
  });
});

// ---- batching and snapshots ---------------------------------------------------------------

test('100 subscribe() calls in the same tick all resolve and everything is delivered', async () => {
  await using listener = listen();
  await listener.start();
  const channels = Array.from({ length: 100 }, (_, i) => uniqueChannel(`batch${i}`));
  const c = collect();
  const subs = await Promise.all(channels.map((channel) => listener.subscribe(channel, c.handler)));
  assert.equal(subs.length, 100);
  assert.ok(listener.channels().every((info) => info.listening));
  await Promise.all(channels.map((channel) => notifier.notify(channel, channel)));
  await c.atLeast(100);
  assert.deepEqual(c.raws().sort(), [...channels].sort());
  assert.deepEqual(
    c.got.map((n) => n.channel),
    c.raws(),
  );
});

test('channels() and subscribers() snapshots are frozen and do not change later', async () => {
  await using listener = listen();
  await listener.start();
  const channel = uniqueChannel('snap');
  await listener.subscribe(channel, () => undefined, { id: 'snap' });
  const channels = listener.channels();
  const subscribers = listener.subscribers();
  const ch = channels[0];
  const sub = subscribers[0];
  assert.ok(ch !== undefined && sub !== undefined);
  for (const value of [channels, subscribers, ch, ch.subscribers, ch.subscribers[0], sub]) {
    assert.ok(Object.isFrozen(value));
  }
  assert.ok(Object.isFrozen(sub.channels) && Object.isFrozen(sub.channels[0]));
  const mutable = <T>(value: T) => value as { -readonly [K in keyof T]: T[K] };
  assert.throws(() => (channels as unknown as unknown[]).push({}), TypeError);
  assert.throws(() => (subscribers as unknown as unknown[]).pop(), TypeError);
  assert.throws(() => {
    mutable(ch).muted = true;
  }, TypeError);
  assert.throws(() => {
    mutable(ch).name = 'other';
  }, TypeError);
  assert.throws(() => (ch.subscribers as unknown as unknown[]).push({}), TypeError);
  assert.throws(() => {
    mutable(sub).id = 'x';
  }, TypeError);
  await listener.subscribe(uniqueChannel('snap2'), () => undefined, { id: 'later' });
  await listener.mute(channel);
  assert.equal(channels.length, 1);
  assert.equal(subscribers.length, 1);
  assert.equal(ch.muted, false);
  assert.equal(listener.channels().length, 2);
  assert.equal(listener.subscribers().length, 2);
});

// ---- channel names ------------------------------------------------------------------------

describe('channel names', () => {
  test('hostile and unicode names are listened to and notified exactly, and harm nothing', async () => {
    const canary = `pgn_canary_${rand(4)}`;
    await admin.query(`create table ${canary} (id int)`);
    let client: pg.Client | undefined;
    try {
      await using listener = listen({
        connection: () => {
          client = new pg.Client({ connectionString: databaseUrl() });
          return client;
        },
      });
      const suffix = `_${rand(3)}`;
      const names = [
        `'; DROP TABLE users; --`,
        `a"b`,
        `Robert'); DROP TABLE students;--`,
        `with space`,
        `ünïcødé_频道_🚀`,
        `'; DROP TABLE ${canary}; --`,
        `"; DROP TABLE ${canary}; --`,
        `$$; DROP TABLE ${canary}; $$`,
        `back\\slash`,
        `new\nline`,
      ].map((name) => name + suffix);
      for (const name of names) assert.ok(Buffer.byteLength(name) <= 63, name);
      const collectors = new Map(names.map((name) => [name, collect()]));
      // Half before start (connect-time LISTEN), half after (batch LISTEN).
      // The names double as subscriber ids.
      const handler = (name: string) => collectors.get(name)?.handler ?? (() => undefined);
      for (const name of names.slice(0, 5))
        await listener.subscribe(name, handler(name), { id: name });
      await listener.start();
      for (const name of names.slice(5))
        await listener.subscribe(name, handler(name), { id: name });
      // The server listens to exactly these names: no truncation, no case folding.
      assert.ok(client !== undefined);
      const { rows } = await client.query<{ name: string }>(
        'select pg_listening_channels() as name',
      );
      assert.deepEqual(rows.map((r) => r.name).sort(), [...names].sort());
      for (const name of names) {
        await notifier.notify(name, `notifier:${name}`);
        await notify(admin, name, `standalone:${name}`);
        await send(name, `admin:${name}`);
      }
      for (const [name, c] of collectors) {
        await c.atLeast(3, `3 deliveries on ${JSON.stringify(name)}`);
        assert.deepEqual(
          c.got.map((n) => [n.channel, n.raw]),
          [
            [name, `notifier:${name}`],
            [name, `standalone:${name}`],
            [name, `admin:${name}`],
          ],
        );
      }
      // UNLISTEN with the same names, by id and by (id, channel).
      for (const name of names.slice(0, 5)) await listener.unsubscribe(name);
      for (const name of names.slice(5)) await listener.unsubscribe(name, [name]);
      assert.deepEqual(listener.channels(), []);
      assert.deepEqual(listener.subscribers(), []);
      const left = await client.query('select pg_listening_channels() as name');
      assert.deepEqual(left.rows, []);
    } finally {
      const { rows } = await admin.query<{ t: string | null }>(
        'select to_regclass($1)::text as t',
        [canary],
      );
      await admin.query(`drop table if exists ${canary}`);
      assert.equal(rows[0]?.t, canary, 'the canary table survived every hostile name');
    }
  });

  test('MixedCase and mixedcase are two different channels', async () => {
    await using listener = listen();
    await listener.start();
    const suffix = `_${rand()}`;
    const upper = `MixedCase${suffix}`;
    const lower = `mixedcase${suffix}`;
    const up = collect();
    const low = collect();
    await listener.subscribe(upper, up.handler);
    await listener.subscribe(lower, low.handler);
    await notifier.notify(upper, 'UP');
    await notifier.notify(lower, 'low');
    await Promise.all([up.atLeast(1), low.atLeast(1)]);
    await barrier(listener);
    assert.deepEqual(
      up.got.map((n) => [n.channel, n.raw]),
      [[upper, 'UP']],
    );
    assert.deepEqual(
      low.got.map((n) => [n.channel, n.raw]),
      [[lower, 'low']],
    );
  });

  test('a 63-byte name works end to end; a 64-byte name is refused before the server', async () => {
    await using listener = listen();
    await listener.start();
    const suffix = `_${rand(5)}`; // 11 bytes
    const ascii63 = `${'x'.repeat(63 - suffix.length)}${suffix}`;
    const multibyte63 = `${'é'.repeat(26)}${suffix}`; // 52 + 11 = 63
    assert.equal(Buffer.byteLength(ascii63), 63);
    assert.equal(Buffer.byteLength(multibyte63), 63);
    for (const name of [ascii63, multibyte63]) {
      const c = collect();
      await listener.subscribe(name, c.handler);
      await notifier.notify(name, 'sixty-three');
      await send(name, 'via admin');
      await c.atLeast(2);
      assert.deepEqual(
        c.got.map((n) => [n.channel, n.raw]),
        [
          [name, 'sixty-three'],
          [name, 'via admin'],
        ],
      );
    }
    const ascii64 = `y${ascii63}`;
    const multibyte64 = `é${multibyte63.slice(1)}x`; // 2 + 50 + 11 + 1
    assert.equal(Buffer.byteLength(ascii64), 64);
    assert.equal(Buffer.byteLength(multibyte64), 64);
    const calls: string[] = [];
    const spy: Queryable = {
      query: async (text: string) => {
        calls.push(text);
        return { rows: [] };
      },
    };
    for (const name of [ascii64, multibyte64]) {
      await assert.rejects(
        listener.subscribe(name, () => undefined),
        (error: unknown) => {
          code(ErrorCode.INVALID_CHANNEL)(error);
          assert.equal((error as PgNotifyError).channel, name);
          return true;
        },
      );
      await assert.rejects(notifier.notify(name, 'x'), code(ErrorCode.INVALID_CHANNEL));
      await assert.rejects(notify(spy, name, 'x'), code(ErrorCode.INVALID_CHANNEL));
    }
    assert.deepEqual(calls, [], 'nothing reached the server');
    assert.equal(
      listener.channels().length,
      2,
      'the refused subscriptions left nothing in the registry',
    );
  });
});

// ---- payloads and decoding ----------------------------------------------------------------

describe('payloads', () => {
  test('size limits in bytes: 7999 delivered, 8000 refused; 3999 × é delivered, 4000 × é refused', async () => {
    await using listener = listen({ decode: 'text' });
    await listener.start();
    const channel = uniqueChannel('size');
    const c = collect();
    await listener.subscribe(channel, c.handler);
    const big = `${'x'.repeat(7990)}${rand(4)}z`.slice(0, 7999);
    const accents = 'é'.repeat(3999);
    assert.equal(Buffer.byteLength(big), 7999);
    assert.equal(Buffer.byteLength(accents), 7998);
    await notifier.notify(channel, big);
    await notifier.notify(channel, accents);
    const spy: Queryable = { query: async () => ({ rows: [] }) };
    for (const tooBig of ['x'.repeat(8000), 'é'.repeat(4000)]) {
      await assert.rejects(notifier.notify(channel, tooBig), code(ErrorCode.PAYLOAD_TOO_LARGE));
      await assert.rejects(notify(admin, channel, tooBig), code(ErrorCode.PAYLOAD_TOO_LARGE));
      await assert.rejects(notify(spy, channel, tooBig), code(ErrorCode.PAYLOAD_TOO_LARGE));
    }
    await c.atLeast(2);
    await barrier(listener);
    assert.equal(c.got.length, 2);
    assert.equal(c.got[0]?.raw, big);
    assert.equal(c.got[1]?.raw, accents);
  });

  test('unicode payloads and invalid JSON under decode auto arrive intact', async () => {
    await using listener = listen();
    await listener.start();
    const channel = uniqueChannel('auto');
    const c = collect();
    await listener.subscribe(channel, c.handler);
    const unicode = 'ünïcødé 频道 🚀 \u2028 "quoted" \\ \t end';
    await notifier.notify(channel, unicode);
    await notifier.notify(channel, '{"a":');
    await notifier.notify(channel, { emoji: '🚀', nested: [1, 'é'] });
    await c.atLeast(3);
    assert.equal(c.got[0]?.payload, unicode);
    assert.equal(c.got[0]?.raw, unicode);
    assert.equal(c.got[1]?.payload, '{"a":');
    assert.equal(c.got[1]?.raw, '{"a":');
    assert.deepEqual(c.got[2]?.payload, { emoji: '🚀', nested: [1, 'é'] });
  });

  test("decode 'json': invalid JSON goes to onError with PGNOTIFY_DECODE_FAILED and is not delivered", async () => {
    const errors: Error[] = [];
    await using listener = listen({ decode: 'json', onError: (e) => errors.push(e) });
    await listener.start();
    const channel = uniqueChannel('json');
    const c = collect();
    await listener.subscribe(channel, c.handler);
    await send(channel, '{"a":');
    await send(channel, '{"a":1}');
    await c.atLeast(1);
    await barrier(listener);
    assert.equal(c.got.length, 1);
    assert.deepEqual(c.got[0]?.payload, { a: 1 });
    assert.equal(errors.length, 1);
    code(ErrorCode.DECODE_FAILED)(errors[0]);
    assert.equal((errors[0] as PgNotifyError).channel, channel);
    assert.equal(listener.stats().decodeErrors, 1);
  });

  test("decode 'json' does not swallow stop notifications (their payload is empty)", async () => {
    const errors: Error[] = [];
    const listenerStop = uniqueChannel('lstop');
    const listener = listen({
      decode: 'json',
      stopChannel: listenerStop,
      onError: (e) => errors.push(e),
    });
    try {
      const subStop = uniqueChannel('sstop');
      const feed = await listener.subscribe(uniqueChannel('data'), { stopChannel: subStop });
      const after = uniqueChannel('after');
      const c = collect();
      await listener.subscribe(after, c.handler, { decode: 'text' });
      await listener.start();
      await notifier.notifyStop(subStop);
      await barrier(listener);
      assert.equal(feed.ended, true, 'the subscription ended on its stop channel');
      // The listener stops as the stop notification is read, before anything sent after it.
      await notifier.notifyStop(listenerStop);
      await send(after, 'after');
      await waitFor(() => listener.state === 'stopped' || c.got.length > 0, DEADLINE);
      assert.equal(listener.state, 'stopped');
      await listener.closed;
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test("decode 'text' keeps JSON text as a string", async () => {
    await using listener = listen({ decode: 'text' });
    await listener.start();
    const channel = uniqueChannel('text');
    const c = collect();
    await listener.subscribe(channel, c.handler);
    await send(channel, '{"a":1}');
    await c.atLeast(1);
    assert.equal(c.got[0]?.payload, '{"a":1}');
  });

  test('a custom decoder gets (raw, channel); a per-subscription decoder overrides the listener', async () => {
    const seen: [string, string][] = [];
    await using listener = listen({
      decode: (raw, channel) => {
        seen.push([raw, channel]);
        return { listenerDecoded: raw };
      },
    });
    await listener.start();
    const channel = uniqueChannel('custom');
    const byListener = collect();
    const bySub = collect();
    const byText = collect();
    await listener.subscribe(channel, byListener.handler);
    await listener.subscribe(channel, bySub.handler, {
      decode: (raw, ch) => `sub:${ch}:${raw}`,
    });
    await listener.subscribe(channel, byText.handler, { decode: 'text' });
    await send(channel, '{"v":2}');
    await Promise.all([byListener.atLeast(1), bySub.atLeast(1), byText.atLeast(1)]);
    assert.deepEqual(seen, [['{"v":2}', channel]]);
    assert.deepEqual(byListener.got[0]?.payload, { listenerDecoded: '{"v":2}' });
    assert.equal(bySub.got[0]?.payload, `sub:${channel}:{"v":2}`);
    assert.equal(byText.got[0]?.payload, '{"v":2}');
  });

  test('decoding happens once per notification, not once per subscriber', async () => {
    let listenerCalls = 0;
    let sharedCalls = 0;
    const shared = (raw: string) => {
      sharedCalls++;
      return raw.toUpperCase();
    };
    await using listener = listen({
      decode: (raw) => {
        listenerCalls++;
        return raw;
      },
    });
    await listener.start();
    const channel = uniqueChannel('once');
    const plain = [collect(), collect(), collect()];
    const custom = [collect(), collect(), collect()];
    for (const c of plain) await listener.subscribe(channel, c.handler);
    for (const c of custom) await listener.subscribe(channel, c.handler, { decode: shared });
    for (let i = 0; i < 3; i++) await send(channel, `n${i}`);
    await Promise.all([...plain, ...custom].map((c) => c.atLeast(3)));
    assert.equal(listenerCalls, 3, 'the listener decoder ran once per notification');
    assert.equal(sharedCalls, 3, 'a decoder shared by 3 subscriptions ran once per notification');
    for (const c of custom)
      assert.deepEqual(
        c.got.map((n) => n.payload),
        ['N0', 'N1', 'N2'],
      );
    assert.equal(listener.stats().delivered, 18);
  });
});

// ---- ignoreOwn ----------------------------------------------------------------------------

describe('ignoreOwn', () => {
  async function ownAndOther(ignoreOwn: boolean): Promise<Notification[]> {
    let client: pg.Client | undefined;
    await using listener = listen({
      ignoreOwn,
      connection: () => {
        client = new pg.Client({ connectionString: databaseUrl() });
        return client;
      },
    });
    const channel = uniqueChannel('own');
    const c = collect();
    await listener.subscribe(channel, c.handler);
    await listener.start();
    assert.ok(client !== undefined);
    await client.query('SELECT pg_notify($1, $2)', [channel, 'own']);
    await send(channel, 'other');
    await c.atLeast(1);
    await barrier(listener);
    for (const n of c.got) {
      assert.equal(n.pid, n.raw === 'own' ? listener.pid : adminPid);
    }
    return c.got;
  }

  test('with ignoreOwn true, notifications from the listener backend are skipped', async () => {
    const got = await ownAndOther(true);
    assert.deepEqual(
      got.map((n) => n.raw),
      ['other'],
    );
  });

  test('with ignoreOwn false, they are delivered', async () => {
    const got = await ownAndOther(false);
    assert.deepEqual(
      got.map((n) => n.raw),
      ['own', 'other'],
    );
  });
});

// ---- handler errors -----------------------------------------------------------------------

test('a throwing or rejecting handler goes to onError; other subscribers still receive', async () => {
  const errors: Error[] = [];
  await using listener = listen({ onError: (e) => errors.push(e) });
  await listener.start();
  const channel = uniqueChannel('herr');
  const calls = { thrower: 0, rejecter: 0 };
  const c = collect();
  await listener.subscribe(
    channel,
    () => {
      calls.thrower++;
      throw new Error('sync boom');
    },
    { id: 'thrower' },
  );
  await listener.subscribe(
    channel,
    async () => {
      calls.rejecter++;
      await Promise.resolve();
      throw new Error('async boom');
    },
    { id: 7 },
  );
  await listener.subscribe(channel, c.handler, { id: 'fine' });
  await send(channel, 'first');
  await send(channel, 'second');
  await c.atLeast(2);
  await waitFor(() => errors.length >= 4, { ...DEADLINE, message: '4 handler errors' });
  assert.deepEqual(c.raws(), ['first', 'second']);
  assert.deepEqual(calls, { thrower: 2, rejecter: 2 }, 'a failing handler keeps its subscription');
  for (const error of errors) {
    code(ErrorCode.HANDLER_FAILED)(error);
    assert.equal((error as PgNotifyError).channel, channel);
    assert.ok(error.cause instanceof Error);
  }
  const byId = (id: string | number) =>
    errors.filter((e) => (e as PgNotifyError).subscriberId === id);
  assert.equal(byId('thrower').length, 2);
  assert.equal(byId(7).length, 2);
  assert.equal((byId('thrower')[0]?.cause as Error | undefined)?.message, 'sync boom');
  assert.equal((byId(7)[0]?.cause as Error | undefined)?.message, 'async boom');
  assert.equal(listener.stats().handlerErrors, 4);
});

// ---- connection factory -------------------------------------------------------------------

test('a connection factory is used for the connection and again for a reconnect', async () => {
  const app = `pgn_factory_${rand(6)}`;
  let calls = 0;
  await using listener = listen({
    reconnect: { minDelayMs: 10, maxDelayMs: 50 },
    onError: () => undefined,
    connection: () => {
      calls++;
      return new pg.Client({ connectionString: databaseUrl(), application_name: app });
    },
  });
  const channel = uniqueChannel('factory');
  const c = collect();
  await listener.subscribe(channel, c.handler);
  assert.equal(calls, 0, 'nothing connects before start()');
  await listener.start();
  await listener.subscribe(uniqueChannel('factory2'), () => undefined);
  await listener.mute(channel);
  await listener.unmute(channel);
  assert.equal(calls, 1);
  const first = listener.pid;
  assert.deepEqual(await backendPids(app), [first]);
  // Our own backend (listener.pid) only.
  const reconnected = new Promise<void>((resolve) => listener.on('reconnected', () => resolve()));
  await withAdmin((a) => a.query('select pg_terminate_backend($1)', [first]));
  await reconnected;
  assert.equal(calls, 2);
  assert.notEqual(listener.pid, first);
  await send(channel, 'after reconnect');
  await c.atLeast(1);
  assert.deepEqual(c.raws(), ['after reconnect']);
});

// ---- the process exits by itself ----------------------------------------------------------

/** Runs test/fixtures/exit-script.ts in `mode`; killed if it has not exited within 20 s. */
function runExitScript(mode: string, env: NodeJS.ProcessEnv = {}): Promise<ScriptOutcome> {
  return runScript('test/fixtures/exit-script.ts', [mode], 20_000, env);
}

describe('a process using pgnotify exits by itself', () => {
  test('after stop() and close(); the default onError printed the handler failure', async () => {
    const result = await runExitScript('ok');
    const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
    assert.equal(result.timedOut, false, `the script did not exit within 20 s\n${detail}`);
    assert.equal(result.code, 0, detail);
    assert.match(result.stdout, /^received hello,boom$/m, detail);
    assert.match(result.stdout, /^done$/m, detail);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('pgnotify:'));
    assert.equal(lines.length, 1, detail);
    assert.match(lines[0] ?? '', /PGNOTIFY_HANDLER_FAILED channel="exit_script_.*" subscriber=/);
    // One block: the message on the next line, then the handler's error with its stack.
    assert.match(
      result.stderr,
      /\n {2}handler of subscriber .* failed on .*: boom from the exit script\n/,
    );
    assert.match(result.stderr, /\n {2}Error: boom from the exit script\n {6}at /, detail);
  });

  test('after subscribe() calls that were refused (duplicate id, bad decode) with an idle timer', async () => {
    const result = await runExitScript('refused');
    const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
    assert.equal(result.timedOut, false, `the script did not exit within 20 s\n${detail}`);
    assert.match(result.stdout, /^refused PGNOTIFY_DUPLICATE_SUBSCRIBER$/m, detail);
    assert.match(result.stdout, /^refused PGNOTIFY_INVALID_OPTION$/m, detail);
    assert.doesNotMatch(result.stdout, /leak:/, detail);
    assert.equal(result.code, 0, detail);
  });

  test('after a failed start() that the script caught (closed port)', async () => {
    const port = await freePort();
    const url = urlWith((u) => {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    });
    const result = await runExitScript('fail', { EXIT_SCRIPT_URL: url });
    const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
    assert.equal(result.timedOut, false, `the script did not exit within 20 s\n${detail}`);
    assert.equal(result.code, 0, detail);
    assert.match(result.stdout, /^caught PGNOTIFY_CONNECTION_FAILED$/m, detail);
  });

  test('after a failed start() that the script caught (missing database)', async () => {
    const url = urlWith((u) => {
      u.pathname = `/no_such_db_${rand(6)}`;
    });
    const result = await runExitScript('fail', { EXIT_SCRIPT_URL: url });
    const detail = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
    assert.equal(result.timedOut, false, `the script did not exit within 20 s\n${detail}`);
    assert.equal(result.code, 0, detail);
    assert.match(result.stdout, /^caught PGNOTIFY_CONNECTION_FAILED$/m, detail);
  });
});

describe("internals for pgnotify's own modules", () => {
  test('session.query() waits for the connection, runs on the listener backend, rejects once stopped', async () => {
    const listener = listen({ onError: () => undefined });
    const { session } = internalsOf(listener);
    const early = session.query<{ pid: number }>('select pg_backend_pid() as pid');
    await listener.start();
    const { rows } = await early;
    assert.equal(rows[0]?.pid, listener.pid, 'queued before start, run on the listener connection');
    const { rows: echoed } = await session.query<{ v: string }>('select $1::text as v', ['x']);
    assert.equal(echoed[0]?.v, 'x');
    await listener.stop();
    await assert.rejects(session.query('select 1'), code(ErrorCode.CLOSED));
  });
});
