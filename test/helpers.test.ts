/**
 * Self-test of the test helpers against the real server of the current pass.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import pg from 'pg';
import {
  backendPids,
  databaseUrl,
  onceEvent,
  serverKind,
  terminate,
  uniqueChannel,
  waitFor,
  withAdmin,
} from './helpers/db.js';
import { startProxy } from './helpers/proxy.js';
import { startPrivateServer } from './helpers/server.js';

function target(): { targetHost: string; targetPort: number } {
  const url = new URL(databaseUrl());
  return { targetHost: url.hostname || '127.0.0.1', targetPort: Number(url.port || 5432) };
}

/** A pg.Client whose 'error' events are recorded instead of crashing the process. */
function client(connectionString: string, applicationName = 'pgnotify-helpers-test') {
  const c = new pg.Client({
    connectionString,
    application_name: applicationName,
    connectionTimeoutMillis: 5000,
  });
  const errors: Error[] = [];
  c.on('error', (err: Error) => errors.push(err));
  return { c, errors };
}

const NOT_YET = Symbol('not answered');

describe('db helpers', () => {
  test('databaseUrl and serverKind reflect the pass', () => {
    assert.match(databaseUrl(), /^postgres(ql)?:\/\//);
    assert.equal(serverKind(), process.env.PGNOTIFY_TEST_SERVER ?? 'external');
  });

  test('withAdmin runs a query', async () => {
    const one = await withAdmin(async (c) => (await c.query<{ n: number }>('select 1 as n')).rows);
    assert.deepEqual(one, [{ n: 1 }]);
  });

  test('uniqueChannel is unique, lower-case ASCII, at most 40 bytes', () => {
    const names = new Set<string>();
    for (let i = 0; i < 2000; i++) names.add(uniqueChannel());
    assert.equal(names.size, 2000);
    const long = uniqueChannel('A Very-Long Prefix That Keeps Going And Going');
    for (const name of [...names, long, uniqueChannel('x')]) {
      assert.match(name, /^[a-z0-9_]+$/);
      assert.ok(Buffer.byteLength(name) <= 40, `${name} is ${Buffer.byteLength(name)} bytes`);
    }
    assert.ok(long.startsWith('a_very_long'));
  });

  test('waitFor resolves with the first truthy value', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), { intervalMs: 1 });
    assert.deepEqual(value, { calls: 3 });
    assert.equal(
      await waitFor(async () => 0),
      0,
      '0 is a value, only undefined/false mean not yet',
    );
  });

  test('waitFor rejects at the deadline naming what it waited for', async () => {
    const started = Date.now();
    await assert.rejects(
      waitFor(() => false, { timeoutMs: 50, message: 'the moon' }),
      /timed out after \d+ ms waiting for the moon/,
    );
    assert.ok(Date.now() - started < 1000);
  });

  test('onceEvent resolves with the event arguments and rejects on deadline', async () => {
    const emitter = new EventEmitter();
    const next = onceEvent<[number, string]>(emitter, 'ping');
    emitter.emit('ping', 1, 'a');
    assert.deepEqual(await next, [1, 'a']);
    assert.equal(emitter.listenerCount('ping'), 0);
    await assert.rejects(onceEvent(emitter, 'never', { timeoutMs: 20 }), /no 'never' event/);
    assert.equal(emitter.listenerCount('never'), 0);
  });

  test('backendPids finds a session and terminate ends it', async () => {
    const app = uniqueChannel('app');
    const { c } = client(databaseUrl(), app);
    await c.connect();
    try {
      const { rows } = await c.query<{ pid: number }>('select pg_backend_pid() as pid');
      const pids = await backendPids(app);
      assert.deepEqual(pids, [rows[0]?.pid]);
      const errored = onceEvent(c, 'error');
      assert.equal(await terminate(pids[0] ?? 0), true);
      const [err] = await errored;
      assert.ok(err instanceof Error);
      await waitFor(async () => (await backendPids(app)).length === 0, {
        message: 'the terminated backend to leave pg_stat_activity',
      });
    } finally {
      await c.end().catch(() => undefined);
    }
  });
});

describe('fault proxy', () => {
  test('forwards queries and counts connections', async () => {
    await using proxy = await startProxy(target());
    const url = proxy.url(databaseUrl());
    assert.equal(new URL(url).port, String(proxy.port));
    const { c } = client(url);
    await c.connect();
    try {
      assert.equal(proxy.connections, 1);
      const { rows } = await c.query<{ s: string }>("select repeat('x', 100000) as s");
      assert.equal(rows[0]?.s.length, 100000);
    } finally {
      await c.end();
    }
    await waitFor(() => proxy.connections === 0, { message: 'the proxy to see the close' });
  });

  test('stall blackholes a live connection; cut then fails it', async () => {
    await using proxy = await startProxy(target());
    const { c, errors } = client(proxy.url(databaseUrl()));
    await c.connect();
    try {
      proxy.stall();
      const query = c.query('select 1');
      query.catch(() => undefined);
      // The one place a timer is acceptable: proving that nothing arrives.
      const raced = await Promise.race([
        query,
        new Promise((resolve) => setTimeout(resolve, 300, NOT_YET)),
      ]);
      assert.equal(raced, NOT_YET, 'a stalled connection must not answer');
      assert.equal(proxy.connections, 1, 'the stalled socket stays open');
      proxy.cut();
      await assert.rejects(query);
      assert.equal(proxy.connections, 0);
      assert.ok(errors.length <= 1);
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  test('a new connection while stalled is accepted but never answered; resume restores', async () => {
    await using proxy = await startProxy(target());
    proxy.stall();
    const stalled = client(proxy.url(databaseUrl()));
    const connecting = stalled.c.connect();
    connecting.catch(() => undefined);
    await waitFor(() => proxy.connections === 1, { message: 'the stalled connection' });
    proxy.resume();
    const fresh = client(proxy.url(databaseUrl()));
    await fresh.c.connect();
    assert.deepEqual((await fresh.c.query('select 2 as n')).rows, [{ n: 2 }]);
    await fresh.c.end();
    proxy.cut();
    await assert.rejects(connecting);
  });

  test('cut fails an idle client with an error event', async () => {
    await using proxy = await startProxy(target());
    const { c } = client(proxy.url(databaseUrl()));
    await c.connect();
    const errored = onceEvent<[Error]>(c, 'error');
    proxy.cut();
    const [err] = await errored;
    assert.ok(err instanceof Error);
    await c.end().catch(() => undefined);
  });

  test('refuse closes new connections; close stops listening', async () => {
    const proxy = await startProxy(target());
    proxy.refuse(true);
    const { c } = client(proxy.url(databaseUrl()));
    await assert.rejects(c.connect());
    proxy.refuse(false);
    await proxy.close();
    const late = client(proxy.url(databaseUrl()));
    await assert.rejects(late.c.connect(), /ECONNREFUSED/);
    await proxy.close();
  });
});

describe('private server', () => {
  test('starts, restarts on the same port, and is destroyed', async () => {
    const server = await startPrivateServer();
    try {
      assert.ok(server.running);
      const first = client(server.url);
      await first.c.connect();
      const errored = onceEvent<[Error & { code?: string }]>(first.c, 'error', {
        timeoutMs: 10_000,
      });
      await server.restart();
      const [err] = await errored;
      assert.equal(err.code, '57P01', 'fast shutdown terminates sessions (admin_shutdown)');
      await first.c.end().catch(() => undefined);
      const second = client(server.url);
      await second.c.connect();
      assert.deepEqual((await second.c.query('select 3 as n')).rows, [{ n: 3 }]);
      await second.c.end();
      await server.stop('immediate');
      assert.equal(server.running, false);
      await server.start();
      assert.ok(server.running);
    } finally {
      await server.destroy();
    }
    assert.equal(server.running, false);
  });

  test('destroy removes the data directory', async () => {
    await using server = await startPrivateServer();
    const { c } = client(server.url);
    await c.connect();
    const { rows } = await c.query<{ dir: string }>(
      "select current_setting('data_directory') as dir",
    );
    await c.end();
    const dataDir = rows[0]?.dir ?? '';
    assert.ok(existsSync(dataDir));
    await server.destroy();
    assert.equal(existsSync(dataDir), false);
  });
});
