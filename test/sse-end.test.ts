/**
 * Streams whose subscription ends under them while the listener runs: a durable stream whose
 * journal is missing, a durable or plain stream whose subscription someone else unsubscribes.
 * Each ends at once with `event: end` (`reason: 'error'`, the error's code, a jittered
 * `retry:`) and leaves nothing behind; the listener stopping ends both kinds alike.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { createListener, type Listener } from '../src/index.js';
import { installSchema } from '../src/journal.js';
import { quoteIdent } from '../src/sql.js';
import { createSseHandler, type SseHandler, type SseStats } from '../src/sse.js';
import { adminClient, databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { testPool } from './helpers/journal.js';
import { RawSse, type SseEvent, startBridge } from './helpers/sse.js';

const q = (...channels: string[]): string =>
  `/events?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;

/** A cursor of the right form (any journal's): a reconnecting client's `Last-Event-ID`. */
const SOME_CURSOR = '0000000000000000001-0000000000000000001';

const IDLE: SseStats = { clients: 0, channels: 0, events: 0, slowClients: 0, pausedClients: 0 };

/** The stream's last event, once it has ended: `event: end` and its data. */
async function endOf(client: RawSse): Promise<{ end: SseEvent; data: Record<string, unknown> }> {
  await waitFor(() => client.ended, {
    message: `the stream to end; body so far: ${JSON.stringify(client.body.slice(-300))}`,
  });
  const end = client.events.at(-1);
  assert.equal(end?.event, 'end', client.body);
  return { end, data: JSON.parse(end.data) as Record<string, unknown> };
}

/** The final event of a stream ended for its subscription: reason, code, a jittered retry. */
function assertErrorEnd(
  { end, data }: { end: SseEvent; data: Record<string, unknown> },
  code: string,
  retryMs: number,
): void {
  assert.equal(data.reason, 'error');
  assert.equal(data.code, code);
  assert.equal(typeof data.message, 'string');
  assert.ok(
    end.retry !== undefined && end.retry >= retryMs && end.retry < 2 * retryMs,
    String(end.retry),
  );
}

describe('a durable stream whose journal is missing', () => {
  let admin: pg.Client;
  let database: string | undefined;
  before(async () => {
    admin = await adminClient();
  });
  after(async () => {
    if (database !== undefined)
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
    await admin.end();
  });

  test('ends with event: end (reason error, PGNOTIFY_SCHEMA_MISSING) once its subscription fails, and is cleaned up', async (t) => {
    // A database of its own: the bridge reads the default schema, which other files use.
    const name = `pgn_sse_end_${process.pid.toString(36)}_${randomBytes(4).toString('hex')}`;
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error;
      t.skip('CREATE DATABASE is not allowed on this server');
      return;
    }
    database = name;
    const url = new URL(databaseUrl());
    url.pathname = `/${name}`;
    const errors: Error[] = [];
    const listener: Listener = createListener({
      connection: url.toString(),
      applicationName: 'pgnotify-sse-test',
      onError: () => undefined,
    });
    const sse = createSseHandler(listener, {
      channels: ['orders'],
      durable: true,
      retryMs: 1000,
      onError: (error) => errors.push(error),
    });
    const server = http.createServer(sse);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      // Served before the listener runs: the subscription's start waits for it, so the
      // failure comes after the stream opened, from the subscription itself.
      const client = await RawSse.open(port, q('orders'), { 'Last-Event-ID': SOME_CURSOR });
      assert.equal(client.status, 200);
      await waitFor(() => client.body.includes('retry:'));
      await listener.start();
      assertErrorEnd(await endOf(client), 'PGNOTIFY_SCHEMA_MISSING', 1000);
      assert.deepEqual(sse.stats(), IDLE);
      assert.deepEqual(listener.subscribers(), []);
      assert.ok(
        errors.some((e) => (e as { code?: string }).code === 'PGNOTIFY_SCHEMA_MISSING'),
        'reported to onError',
      );
      // While it stays missing, a new stream is refused (its starting point cannot be read).
      const next = await RawSse.openToEnd(port, q('orders'));
      assert.equal(next.status, 500);
    } finally {
      await closeAll(sse, server, listener);
    }
  });
});

async function closeAll(sse: SseHandler, server: http.Server, listener: Listener): Promise<void> {
  await sse.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await listener.stop();
}

describe('a subscription unsubscribed under its streams', () => {
  let pool: pg.Pool;
  before(async () => {
    pool = testPool(1);
    await installSchema({ client: pool });
  });
  after(async () => {
    await pool.end();
  });

  test('a durable stream ends with reason error (PGNOTIFY_CLOSED); stats and subscribers show it gone', async () => {
    const ch = uniqueChannel('dunsub');
    const bridge = await startBridge({ channels: [ch], durable: true, retryMs: 1000 });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      await client.waitEvents(1); // the opening id
      const [sub] = bridge.listener.subscribers();
      assert.ok(sub !== undefined && bridge.listener.subscribers().length === 1);
      assert.equal(bridge.sse.stats().clients, 1);
      await bridge.listener.unsubscribe(sub.id);
      assertErrorEnd(await endOf(client), 'PGNOTIFY_CLOSED', 1000);
      assert.deepEqual(bridge.sse.stats(), IDLE);
      assert.deepEqual(bridge.listener.subscribers(), []);
    } finally {
      await bridge.close();
    }
  });

  test('the plain streams of a channel end alike, and a new client gets a subscription of its own', async () => {
    const ch = uniqueChannel('punsub');
    const other = uniqueChannel('pother');
    const bridge = await startBridge({ channels: [ch, other], retryMs: 1000 });
    try {
      const a = await RawSse.open(bridge.port, q(ch));
      const b = await RawSse.open(bridge.port, q(ch, other));
      const bystander = await RawSse.open(bridge.port, q(other));
      for (const c of [a, b, bystander]) await waitFor(() => c.body.includes('retry:'));
      const hub = bridge.listener.subscribers().find((s) => s.channels.some((c) => c.name === ch));
      assert.ok(hub !== undefined);
      await bridge.listener.unsubscribe(hub.id);
      assertErrorEnd(await endOf(a), 'PGNOTIFY_CLOSED', 1000);
      assertErrorEnd(await endOf(b), 'PGNOTIFY_CLOSED', 1000);
      // b's other channel is left to the bystander alone.
      await waitFor(() => bridge.sse.stats().clients === 1);
      assert.equal(bridge.sse.stats().channels, 1);
      assert.deepEqual(
        bridge.listener.subscribers().map((s) => s.channels.map((c) => c.name)),
        [[other]],
      );
      assert.equal(bystander.ended, false);

      const again = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => again.body.includes('retry:'));
      await pool.query('select pg_notify($1, $2)', [ch, '"back"']);
      const [, n] = await again.waitEvents(2);
      assert.equal(JSON.parse(n?.data ?? '').payload, 'back');
      again.close();
      bystander.close();
      await waitFor(() => bridge.listener.subscribers().length === 0);
      assert.deepEqual({ ...bridge.sse.stats(), events: 0 }, IDLE);
    } finally {
      await bridge.close();
    }
  });

  test('the listener stopping ends durable and plain streams alike, with reason listener-stopped', async () => {
    const durable = uniqueChannel('dstop');
    const plain = uniqueChannel('pstop');
    const bridge = await startBridge({ channels: [durable, plain], durable: [durable] });
    try {
      const d = await RawSse.open(bridge.port, q(durable));
      const p = await RawSse.open(bridge.port, q(plain));
      await d.waitEvents(1);
      await waitFor(() => p.body.includes('retry:'));
      await bridge.listener.stop();
      for (const c of [d, p]) assert.equal((await endOf(c)).data.reason, 'listener-stopped');
      assert.deepEqual(bridge.sse.stats(), IDLE);
    } finally {
      await bridge.close();
    }
  });
});
