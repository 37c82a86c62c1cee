/**
 * The SSE bridge without a browser: the wire format byte by byte over raw sockets,
 * authorization, limits, slow clients, cleanup, CORS, heartbeats, hostile channel names,
 * gaps, shutdown, the fetch form, and durable replays paced by their client.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { resolveNowOn } from '../src/durable.js';
import { ErrorCode, PgNotifyError } from '../src/index.js';
import { installSchema } from '../src/journal.js';
import { prune } from '../src/journal-admin.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { createSseHandler } from '../src/sse.js';
import { endFrame, gapFrame, notificationFrame, openFrame } from '../src/sse-wire.js';
import { adminClient, uniqueChannel, waitFor } from './helpers/db.js';
import { dropSchema, readAll, testPool, uniqueSchema } from './helpers/journal.js';
import { type Bridge, parseEvents, RawSse, type SseEvent, startBridge } from './helpers/sse.js';

let admin: pg.Client;
let adminPid: number;
before(async () => {
  admin = await adminClient();
  adminPid =
    (await admin.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid ?? 0;
});
after(async () => {
  await admin.end();
});

/** A bridge whose `authorize` waits until `release(answer)`; `asked()` counts its calls. */
async function gatedBridge() {
  let release!: (ok: boolean) => void;
  const gate = new Promise<boolean>((resolve) => (release = resolve));
  let calls = 0;
  const bridge = await startBridge({
    authorize: () => {
      calls++;
      return gate;
    },
  });
  return { bridge, release, asked: () => calls };
}

async function notify(channel: string, payload: string): Promise<void> {
  await admin.query('select pg_notify($1, $2)', [channel, payload]);
}

const q = (...channels: string[]): string =>
  `/events?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;

describe('wire format', () => {
  test('frames are exact (pure)', () => {
    const n = { channel: 'a"b', payload: { x: 'line1\nline2' }, raw: '', pid: 7, receivedAt: 1 };
    assert.equal(
      notificationFrame(n),
      'data: {"channel":"a\\"b","payload":{"x":"line1\\nline2"},"pid":7,"receivedAt":1}\n\n',
    );
    const durable = { ...n, cursor: '0000a1' } as typeof n;
    assert.match(notificationFrame(durable), /^id: 0000a1\ndata: \{/);
    const badCursor = { ...n, cursor: 'a\nb' } as typeof n;
    assert.match(notificationFrame(badCursor), /^data: /, 'an id with LF is never sent');
    const big = { ...n, payload: 10n };
    assert.equal(
      notificationFrame(big),
      'data: {"channel":"a\\"b","payload":"","pid":7,"receivedAt":1}\n\n',
    );
    assert.equal(openFrame(2000, 'live-5'), 'retry: 2000\nid: live-5\n\n');
    assert.equal(openFrame(2000, undefined), 'retry: 2000\n\n');
    assert.equal(
      gapFrame({ reason: 'resume', channels: ['a'], message: 'm', after: 'x' }),
      'event: gap\ndata: {"reason":"resume","channels":["a"],"message":"m","after":"x"}\n\n',
    );
    assert.equal(
      endFrame('shutdown', 'bye', 3000),
      'retry: 3000\nevent: end\ndata: {"reason":"shutdown","message":"bye"}\n\n',
    );
    assert.equal(
      endFrame('error', 'later', 3000, 'PGNOTIFY_SCHEMA_MISSING'),
      'retry: 3000\nevent: end\ndata: {"reason":"error","message":"later","code":"PGNOTIFY_SCHEMA_MISSING"}\n\n',
    );
  });

  test('headers, the opening block and one notification, byte by byte', async () => {
    const ch = uniqueChannel('wire');
    const bridge = await startBridge({ channels: [ch], retryMs: 1500 });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      assert.equal(client.status, 200);
      assert.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.equal(client.headers['cache-control'], 'no-cache');
      assert.equal(client.headers['x-accel-buffering'], 'no');
      assert.equal(client.headers.connection, 'keep-alive');
      assert.equal(client.headers['access-control-allow-origin'], undefined);
      await waitFor(() => client.body.length > 0);
      assert.match(client.body, /^retry: 1500\nid: live-\d{13}\n\n$/);
      await notify(ch, '{"n":1,"text":"two\\nlines"}');
      await notify(ch, 'plain text, "quoted"\r\n');
      await client.waitEvents(3);
      const rest = client.body.replace(/^retry: 1500\nid: live-\d{13}\n\n/, '');
      const m = /^data: (.*)\n\ndata: (.*)\n\n$/.exec(rest);
      assert.ok(m, JSON.stringify(rest));
      const first = JSON.parse(m[1] ?? '');
      assert.deepEqual(Object.keys(first), ['channel', 'payload', 'pid', 'receivedAt']);
      assert.deepEqual(first.payload, { n: 1, text: 'two\nlines' });
      assert.equal(first.channel, ch);
      assert.equal(first.pid, adminPid);
      assert.ok(Math.abs(first.receivedAt - Date.now()) < 10_000);
      assert.equal(JSON.parse(m[2] ?? '').payload, 'plain text, "quoted"\r\n');
      client.close();
    } finally {
      await bridge.close();
    }
  });
});

describe('authorization', () => {
  test('with no channels and no authorize nothing is allowed', async () => {
    const bridge = await startBridge({});
    try {
      const client = await RawSse.openToEnd(bridge.port, q('anything'));
      assert.equal(client.status, 403);
      assert.equal(client.body, 'no channel is allowed (configure channels or authorize)\n');
    } finally {
      await bridge.close();
    }
  });

  test('401 and 403 with a short reason; nothing subscribed or streamed before authorize passes', async () => {
    const ch = uniqueChannel('auth');
    let release!: (ok: boolean) => void;
    const gate = new Promise<boolean>((resolve) => (release = resolve));
    const bridge = await startBridge({
      authorize: (request, channel) => {
        const token = request.headers.get('authorization') ?? '';
        if (token === '') return { status: 401, reason: 'missing token' };
        if (token !== 'Bearer good') return false;
        return channel === ch ? gate : false;
      },
    });
    try {
      const missing = await RawSse.openToEnd(bridge.port, q(ch));
      assert.equal(missing.status, 401);
      assert.equal(missing.headers['www-authenticate'], 'Bearer');
      assert.equal(missing.body, 'missing token\n');

      const wrong = await RawSse.openToEnd(bridge.port, q(ch), { Authorization: 'Bearer bad' });
      assert.equal(wrong.status, 403);
      assert.match(wrong.body, /^not authorized for channel "auth_/);

      const opening = RawSse.open(bridge.port, q(ch, 'other'), { Authorization: 'Bearer good' });
      // `ch` waits on the gate, `other` is refused: one refusal refuses the request.
      release(true);
      const other = await opening;
      await waitFor(() => other.ended);
      assert.equal(other.status, 403);
      assert.match(other.body, /"other"/);
    } finally {
      await bridge.close();
    }
  });

  test('a pending authorize holds the response: no header, no byte, no subscription', async () => {
    const ch = uniqueChannel('pending');
    const { bridge, release, asked } = await gatedBridge();
    try {
      const socket = (await import('node:net')).connect(bridge.port, '127.0.0.1');
      let received = '';
      socket.on('data', (d) => (received += d.toString()));
      socket.write(`GET ${q(ch)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await waitFor(() => asked() === 1);
      await notify(ch, 'before');
      assert.equal(received, '');
      assert.equal(bridge.listener.subscribers().length, 0);
      release(true);
      await waitFor(() => received.includes('retry:'));
      assert.equal(bridge.listener.subscribers().length, 1);
      assert.doesNotMatch(received, /before/);
      socket.destroy();
    } finally {
      await bridge.close();
    }
  });

  test('close() while authorize runs: that request is answered 503, nothing subscribed or streamed', async () => {
    // close() ends the streams it knows of; one admitted after it would never be ended, and
    // its heartbeat would hold a graceful shutdown open.
    const ch = uniqueChannel('closing');
    const { bridge, release, asked } = await gatedBridge();
    try {
      const pending = RawSse.open(bridge.port, q(ch));
      await waitFor(() => asked() === 1);
      await bridge.sse.close();
      release(true);
      const client = await pending;
      assert.equal(client.status, 503);
      assert.equal(bridge.listener.subscribers().length, 0);
      assert.equal(bridge.sse.stats().clients, 0);
    } finally {
      await bridge.close();
    }
  });

  test('a throwing authorize is reported and answered 500', async () => {
    const errors: Error[] = [];
    const bridge = await startBridge({
      authorize: () => {
        throw new Error('boom');
      },
      onError: (e) => errors.push(e),
    });
    try {
      const client = await RawSse.openToEnd(bridge.port, q('x'));
      assert.equal(client.status, 500);
      assert.equal(client.body, 'authorization failed\n');
      assert.equal(errors[0]?.message, 'boom');
    } finally {
      await bridge.close();
    }
  });
});

describe('limits', () => {
  test('channels per request: 400 with the limit', async () => {
    const bridge = await startBridge({ channels: () => true, maxChannelsPerRequest: 2 });
    try {
      const client = await RawSse.openToEnd(bridge.port, q('a', 'b', 'c'));
      assert.equal(client.status, 400);
      assert.equal(client.body, 'too many channels: 3 (at most 2 per request)\n');
      const none = await RawSse.openToEnd(bridge.port, '/events');
      assert.equal(none.status, 400);
      assert.equal(none.body, 'no channel: add ?channel=NAME\n');
    } finally {
      await bridge.close();
    }
  });

  test('clients per handler: 503 with Retry-After past maxClients, a slot frees on leave', async () => {
    const ch = uniqueChannel('max');
    const bridge = await startBridge({ channels: [ch], maxClients: 1 });
    try {
      const first = await RawSse.open(bridge.port, q(ch));
      assert.equal(first.status, 200);
      const second = await RawSse.openToEnd(bridge.port, q(ch));
      assert.equal(second.status, 503);
      assert.equal(second.headers['retry-after'], '5');
      assert.equal(second.body, 'too many clients (at most 1)\n');
      first.close();
      await waitFor(() => bridge.sse.stats().clients === 0);
      const third = await RawSse.open(bridge.port, q(ch));
      assert.equal(third.status, 200);
      third.close();
    } finally {
      await bridge.close();
    }
  });
});

/** A streaming GET that counts events without keeping the body (for megabytes of traffic). */
function countingClient(port: number, target: string): Promise<{ count(): number; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: target }, (res) => {
      let events = 0;
      let tail = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const text = tail + chunk;
        const blocks = text.split('\n\n');
        tail = blocks.pop() ?? '';
        for (const block of blocks) if (block.includes('data: ')) events++;
      });
      resolve({ count: () => events, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

describe('slow clients', () => {
  test('a client that stops reading is ended with event: end; the others get everything', async () => {
    const ch = uniqueChannel('slow');
    const bridge = await startBridge({ channels: [ch], maxQueuedBytes: 2 * 1024 * 1024 });
    try {
      const slow = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => slow.body.includes('retry:'));
      slow.socket.pause();
      const fast = await countingClient(bridge.port, q(ch));
      await waitFor(() => bridge.sse.stats().clients === 2);
      // Batches of 100 notifications of ~7 kB, each sent once the fast client has the previous
      // one: the paused client's kernel buffers fill, then its Node buffer passes the limit.
      let total = 0;
      let endedAt: number | undefined;
      for (let batch = 0; batch < 80; batch++) {
        await admin.query(
          `select pg_notify($1, i || repeat('x', 7000)) from generate_series(1, 100) i`,
          [ch],
        );
        total += 100;
        await waitFor(() => fast.count() === total, {
          timeoutMs: 20_000,
          message: `${total} events on the fast client (has ${fast.count()})`,
        });
        // Five more batches after the slow client was ended: the others go on.
        if (endedAt === undefined && bridge.sse.stats().slowClients === 1) endedAt = batch;
        if (endedAt !== undefined && batch >= endedAt + 5) break;
      }
      assert.equal(bridge.sse.stats().slowClients, 1, 'the slow client was ended');
      assert.equal(bridge.sse.stats().clients, 1);
      assert.equal(bridge.listener.stats().dropped, 0);
      slow.socket.resume();
      await waitFor(() => slow.ended, { timeoutMs: 10_000, message: 'the slow stream to end' });
      const last = slow.events.at(-1);
      assert.equal(last?.event, 'end');
      assert.deepEqual(JSON.parse(last?.data ?? ''), {
        reason: 'slow-client',
        message: 'more than 2097152 bytes queued',
      });
      assert.ok(slow.events.length < total, 'the slow client was cut short');
      fast.close();
    } finally {
      await bridge.close();
    }
  });
});

describe('cleanup', () => {
  const timers = (): number =>
    process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  test('a client that disconnects is removed at once: subscription, heartbeat timer', async () => {
    const ch = uniqueChannel('gone');
    const bridge = await startBridge({ channels: [ch], heartbeatMs: 60_000 });
    try {
      const baseTimers = timers();
      const client = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => client.body.includes('retry:'));
      assert.deepEqual(
        bridge.listener.subscribers().map((s) => s.channels.map((c) => c.name)),
        [[ch]],
      );
      assert.equal(timers(), baseTimers + 1, 'one heartbeat interval for the handler');
      const second = await RawSse.open(bridge.port, q(ch));
      assert.equal(
        bridge.listener.subscribers().length,
        1,
        'clients of a channel share one subscription',
      );
      assert.equal(timers(), baseTimers + 1);
      second.close();
      client.close();
      await waitFor(() => bridge.listener.subscribers().length === 0, {
        message: 'the subscription to go',
      });
      assert.deepEqual(bridge.sse.stats(), {
        clients: 0,
        channels: 0,
        events: 0,
        slowClients: 0,
        pausedClients: 0,
      });
      assert.equal(timers(), baseTimers);
      await waitFor(() => bridge.listener.stats().channels.listening === 0);
    } finally {
      await bridge.close();
    }
  });

  test('close() ends every stream with event: end and a jittered retry, then answers 503', async () => {
    const ch = uniqueChannel('close');
    const bridge = await startBridge({ channels: [ch], retryMs: 1000 });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => client.body.includes('retry:'));
      await bridge.sse.close();
      await waitFor(() => client.ended);
      const last = client.events.at(-1);
      assert.equal(last?.event, 'end');
      assert.equal(JSON.parse(last?.data ?? '').reason, 'shutdown');
      assert.ok((last?.retry ?? 0) >= 1000 && (last?.retry ?? 0) < 2000, String(last?.retry));
      assert.equal(bridge.listener.subscribers().length, 0);
      const late = await RawSse.openToEnd(bridge.port, q(ch));
      assert.equal(late.status, 503);
      await bridge.sse.close(); // safe twice
    } finally {
      await bridge.close();
    }
  });

  test('the listener stopping ends the streams with reason listener-stopped', async () => {
    const ch = uniqueChannel('stop');
    const bridge = await startBridge({ channels: [ch] });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => client.body.includes('retry:'));
      await bridge.listener.stop();
      await waitFor(() => client.ended);
      assert.equal(JSON.parse(client.events.at(-1)?.data ?? '').reason, 'listener-stopped');
      const late = await RawSse.openToEnd(bridge.port, q(ch));
      assert.equal(late.status, 503);
      assert.equal(late.body, 'the listener is stopped\n');
    } finally {
      await bridge.close();
    }
  });
});

describe('CORS', () => {
  test('off by default: no Access-Control header whatever the Origin', async () => {
    const ch = uniqueChannel('cors');
    const bridge = await startBridge({ channels: [ch] });
    try {
      const client = await RawSse.open(bridge.port, q(ch), { Origin: 'https://evil.example' });
      assert.equal(client.status, 200);
      assert.equal(
        Object.keys(client.headers).filter((h) => h.startsWith('access-control')).length,
        0,
      );
      client.close();
      const preflight = await RawSse.open(
        bridge.port,
        q(ch),
        { Origin: 'https://evil.example' },
        'OPTIONS',
      );
      await waitFor(() => preflight.ended || preflight.status !== 0);
      assert.equal(preflight.status, 405);
    } finally {
      await bridge.close();
    }
  });

  test('on for the listed origins only, with a preflight', async () => {
    const ch = uniqueChannel('cors');
    const bridge = await startBridge({ channels: [ch], cors: ['https://app.example'] });
    try {
      const ok = await RawSse.open(bridge.port, q(ch), { Origin: 'https://app.example' });
      assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(ok.headers['access-control-allow-credentials'], 'true');
      assert.equal(ok.headers.vary, 'Origin');
      ok.close();
      const other = await RawSse.open(bridge.port, q(ch), { Origin: 'https://evil.example' });
      assert.equal(other.headers['access-control-allow-origin'], undefined);
      other.close();
      const preflight = await RawSse.open(
        bridge.port,
        q(ch),
        { Origin: 'https://app.example' },
        'OPTIONS',
      );
      assert.equal(preflight.status, 204);
      assert.equal(
        preflight.headers['access-control-allow-headers'],
        'Authorization, Cache-Control, Last-Event-ID',
      );
      preflight.close();
    } finally {
      await bridge.close();
    }
  });
});

describe('heartbeats, gaps and resume', () => {
  test('comment heartbeats every heartbeatMs', async () => {
    const ch = uniqueChannel('hb');
    const bridge = await startBridge({ channels: [ch], heartbeatMs: 40 });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      await waitFor(() => client.comments >= 3, { message: 'three heartbeats' });
      assert.match(client.body, /\n\n:\n\n:\n\n:\n\n/);
      assert.equal(client.events.length, 1, 'heartbeats dispatch no event');
      client.close();
    } finally {
      await bridge.close();
    }
  });

  test("the listener's lost connection is an event: gap on the clients of those channels", async () => {
    const ch = uniqueChannel('gap');
    const other = uniqueChannel('nogap');
    const bridge = await startBridge({ channels: [ch, other] });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      const bystander = await RawSse.open(bridge.port, q(other));
      await waitFor(() => client.body.includes('retry:') && bystander.body.includes('retry:'));
      await admin.query('select pg_terminate_backend($1)', [bridge.listener.pid]);
      const [, gap] = await client.waitEvents(2, 20_000);
      assert.equal(gap?.event, 'gap');
      const data = JSON.parse(gap?.data ?? '');
      assert.equal(data.reason, 'connection');
      assert.deepEqual(data.channels, [ch]);
      assert.equal(data.downtimeMs, data.reconnectedAt - data.disconnectedAt);
      await notify(ch, 'after');
      const [, , n] = await client.waitEvents(3);
      assert.equal(JSON.parse(n?.data ?? '').payload, 'after');
      // The other client's channel was in the gap too (the listener had it).
      const [, otherGap] = await bystander.waitEvents(2);
      assert.deepEqual(JSON.parse(otherGap?.data ?? '').channels, [other]);
      client.close();
      bystander.close();
    } finally {
      await bridge.close();
    }
  });

  test('a client resuming on a plain channel gets a resume gap (Last-Event-ID over ?after=)', async () => {
    const ch = uniqueChannel('resume');
    const bridge = await startBridge({ channels: [ch] });
    try {
      const client = await RawSse.open(bridge.port, `${q(ch)}&after=from-query`, {
        'Last-Event-ID': 'live-1700000000000',
      });
      const [open, gap] = await client.waitEvents(2);
      assert.equal(open?.id, undefined, 'a resumed stream keeps the id the client has');
      assert.equal(gap?.event, 'gap');
      assert.deepEqual(JSON.parse(gap?.data ?? ''), {
        reason: 'resume',
        channels: [ch],
        message: 'reconnected on channels that are not durable: what was sent meanwhile is lost',
        after: 'live-1700000000000',
      });
      client.close();
      const byQuery = await RawSse.open(bridge.port, `${q(ch)}&after=c42`);
      const [, gap2] = await byQuery.waitEvents(2);
      assert.equal(JSON.parse(gap2?.data ?? '').after, 'c42');
      byQuery.close();
    } finally {
      await bridge.close();
    }
  });
});

describe('durable channels (the journal in the default schema)', () => {
  let pool: pg.Pool;
  const CURSOR = /^\d{19}-\d{19}$/;
  before(async () => {
    pool = testPool(2);
    await installSchema({ client: pool });
  });
  after(async () => {
    await pool.end();
  });
  const write = (ch: string, payloads: string[]) => appendDurableBatch(pool, ch, payloads);
  const isNote = (e: SseEvent) => e.event === 'message' && e.data !== '';
  const payloadsOf = (events: SseEvent[]) =>
    events.filter(isNote).map((e) => JSON.parse(e.data).payload);
  const range = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i);

  test('each event carries id: <n.cursor>, and a stream opened with no cursor starts with id: <cursor of now>', async () => {
    const ch = uniqueChannel('did');
    await write(ch, ['1']); // before the stream: not replayed
    const bridge = await startBridge({ channels: [ch], durable: true });
    try {
      const client = await RawSse.open(bridge.port, q(ch));
      const [open] = await client.waitEvents(1);
      assert.match(open?.id ?? '', CURSOR, 'the first id names the starting point');
      await write(ch, ['2', '3']);
      const events = await client.waitEvents(3);
      assert.deepEqual(payloadsOf(events.slice(1)), [2, 3]);
      for (const e of events.slice(1)) assert.match(e.id ?? '', CURSOR);
      assert.ok((events[1]?.id ?? '') > (open?.id ?? ''));
      client.close();
    } finally {
      await bridge.close();
    }
  });

  test('reconnecting with Last-Event-ID = cursor(m_i) replays exactly m_(i+1)..m_k in order, then live, no duplicate and no resume gap', async () => {
    const ch = uniqueChannel('dre');
    const bridge = await startBridge({ channels: [ch], durable: true });
    try {
      const first = await RawSse.open(bridge.port, q(ch));
      await first.waitEvents(1);
      await write(ch, ['1', '2', '3']);
      const got = await first.waitEvents(4);
      first.close();
      await write(ch, ['4', '5']); // while away
      const resumed = await RawSse.open(bridge.port, q(ch), {
        'Last-Event-ID': got[1]?.id as string,
      });
      await resumed.waitEvents(5); // open + 2, 3, 4, 5
      await write(ch, ['6']);
      const events = await resumed.waitEvents(6);
      assert.deepEqual(payloadsOf(events), [2, 3, 4, 5, 6]);
      assert.ok(!events.some((e) => e.event === 'gap'));
      resumed.close();
    } finally {
      await bridge.close();
    }
  });

  test('?after=<cursor> on a first connection replays the same way as Last-Event-ID', async () => {
    const ch = uniqueChannel('daf');
    await write(ch, ['1', '2', '3']);
    const rows = await readAll(pool, 'pgnotify', 'start', { channels: [ch] });
    const bridge = await startBridge({ channels: [ch], durable: true });
    try {
      const client = await RawSse.open(
        bridge.port,
        `${q(ch)}&after=${encodeURIComponent(rows[0]?.cursor as string)}`,
      );
      const events = await client.waitEvents(3);
      assert.deepEqual(payloadsOf(events), [2, 3]);
      client.close();
    } finally {
      await bridge.close();
    }
  });

  test("a cursor older than retention gets event: gap with reason 'expired' and the after it sent", async () => {
    const ch = uniqueChannel('dex');
    // A journal of its own: pruning the shared one would cut into other files' backlogs.
    const schema = uniqueSchema('ssedex');
    await installSchema({ client: pool, schema });
    await appendDurableBatch(pool, ch, ['1', '2', '3', '4', '5'], schema);
    const rows = await readAll(pool, schema, 'start', { channels: [ch] });
    await prune(pool, { schema, maxPerChannel: 2 });
    const bridge = await startBridge({ channels: [ch], durable: true, schema });
    try {
      const cursor = rows[0]?.cursor as string;
      const client = await RawSse.open(bridge.port, q(ch), { 'Last-Event-ID': cursor });
      const events = await client.waitEvents(4);
      const gap = events[1];
      assert.equal(gap?.event, 'gap');
      const data = JSON.parse(gap?.data ?? '');
      assert.equal(data.reason, 'expired');
      assert.deepEqual(data.channels, [ch]);
      assert.equal(data.after, cursor);
      assert.deepEqual(payloadsOf(events.slice(2)), [4, 5]);
      client.close();
    } finally {
      await bridge.close();
      await dropSchema(pool, schema);
    }
  });

  test('a client that stops reading live durable traffic is ended with slow-client and resumes from its Last-Event-ID with nothing lost', async () => {
    const ch = uniqueChannel('dslow');
    const bridge = await startBridge({
      channels: [ch],
      durable: true,
      maxQueuedBytes: 256 * 1024,
      stallTimeoutMs: 200,
    });
    try {
      const slow = await RawSse.open(bridge.port, q(ch));
      await slow.waitEvents(1);
      slow.socket.pause();
      const big = 'x'.repeat(7000);
      let sent = 0;
      while (bridge.sse.stats().slowClients === 0 && sent < 3000) {
        await write(
          ch,
          range(sent + 1, sent + 100).map((i) => `${i}${big}`),
        );
        sent += 100;
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => bridge.sse.stats().slowClients === 1, { timeoutMs: 20_000 });
      slow.socket.resume();
      await waitFor(() => slow.ended, { timeoutMs: 20_000, message: 'the slow stream to end' });
      assert.equal(slow.events.at(-1)?.event, 'end');
      const had = slow.events.filter(isNote);
      const lastId = had.at(-1)?.id ?? (slow.events[0]?.id as string);
      // The replay is paced by the client: the same limits do not cut it.
      const resumed = await RawSse.open(bridge.port, q(ch), { 'Last-Event-ID': lastId });
      await resumed.waitEvents(1 + sent - had.length, 30_000);
      assert.equal(bridge.sse.stats().slowClients, 1);
      const all = [...had, ...resumed.events.filter(isNote)];
      assert.deepEqual(
        all.map((e) => Number.parseInt(JSON.parse(e.data).payload, 10)),
        range(1, sent),
      );
      resumed.close();
    } finally {
      await bridge.close();
    }
  });

  test('a stream mixing durable and plain channels replays the durable ones and sends a resume gap for the plain ones only', async () => {
    const dch = uniqueChannel('dmix');
    const pch = uniqueChannel('pmix');
    const bridge = await startBridge({ channels: [dch, pch], durable: [dch] });
    try {
      const first = await RawSse.open(bridge.port, q(dch, pch));
      await first.waitEvents(1);
      await write(dch, ['1']);
      const [, one] = await first.waitEvents(2);
      first.close();
      await write(dch, ['2']);
      const resumed = await RawSse.open(bridge.port, q(dch, pch), {
        'Last-Event-ID': one?.id as string,
      });
      const events = await resumed.waitEvents(3);
      const gaps = events.filter((e) => e.event === 'gap').map((e) => JSON.parse(e.data));
      assert.equal(gaps.length, 1);
      assert.equal(gaps[0].reason, 'resume');
      assert.deepEqual(gaps[0].channels, [pch]);
      assert.deepEqual(payloadsOf(events), [2]);
      await notify(pch, 'plain');
      const more = await resumed.waitEvents(4);
      assert.equal(JSON.parse(more[3]?.data ?? '').payload, 'plain');
      resumed.close();
    } finally {
      await bridge.close();
    }
  });

  test('two bridges on one database: a client that resumes on the other gets exactly what it missed', async () => {
    const ch = uniqueChannel('dtwo');
    const a = await startBridge({ channels: [ch], durable: true });
    const b = await startBridge({ channels: [ch], durable: true });
    try {
      const onA = await RawSse.open(a.port, q(ch));
      await onA.waitEvents(1);
      await write(ch, ['1', '2']);
      const got = await onA.waitEvents(3);
      onA.close();
      await write(ch, ['3', '4']);
      const onB = await RawSse.open(b.port, q(ch), { 'Last-Event-ID': got[2]?.id as string });
      await write(ch, ['5']);
      const events = await onB.waitEvents(4);
      assert.deepEqual(payloadsOf(events), [3, 4, 5]);
      assert.deepEqual(
        events.slice(1).map((e) => e.id),
        [...events.slice(1).map((e) => e.id)].sort(),
      );
      onB.close();
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('channel names', () => {
  test('hostile names in the query string are just names', async () => {
    const names = [
      "Quote\"d 'name'",
      'semi;colon & amp=eq',
      '100% literal %22',
      'plus+space here',
      'émoji 🚀 ünïcödé',
      'new\nline',
      'x'.repeat(63),
      'é'.repeat(31),
    ];
    const reported: Error[] = [];
    const bridge = await startBridge({ channels: () => true, onError: (e) => reported.push(e) });
    try {
      for (const name of names) {
        const client = await RawSse.open(bridge.port, q(name));
        assert.equal(client.status, 200, name);
        await waitFor(() => client.body.includes('retry:'));
        await notify(name, 'hi');
        const [, n] = await client.waitEvents(2);
        assert.equal(JSON.parse(n?.data ?? '').channel, name);
        client.close();
      }
      const tooLong = await RawSse.openToEnd(bridge.port, q('x'.repeat(64)));
      assert.equal(tooLong.status, 400);
      assert.match(tooLong.body, /^invalid channel: .*63/);
      const empty = await RawSse.openToEnd(bridge.port, '/events?channel=');
      assert.equal(empty.status, 400);
      const nul = await RawSse.openToEnd(bridge.port, '/events?channel=a%00b');
      assert.equal(nul.status, 400);
      // A request target that does not parse as a URL is the client's mistake: 400, unreported.
      const target = await RawSse.openToEnd(bridge.port, '//[');
      assert.equal(target.status, 400);
      assert.deepEqual(reported, []);
      assert.equal(bridge.listener.subscribers().length, 0);
    } finally {
      await bridge.close();
    }
  });
});

describe('fetch form', () => {
  test('streams a notification as a Response; refusals are plain text; cancel cleans up', async () => {
    const ch = uniqueChannel('fetch');
    const bridge = await startBridge({ channels: [ch], path: '/events' });
    try {
      const refused = await bridge.sse.fetch(new Request('http://x/events?channel=nope'));
      assert.equal(refused.status, 403);
      assert.equal(await refused.text(), 'channel not allowed: "nope"\n');
      const missing = await bridge.sse.fetch(new Request('http://x/other?channel=nope'));
      assert.equal(missing.status, 404);

      const response = await bridge.sse.fetch(new Request(`http://x${q(ch)}`));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(response.headers.get('x-accel-buffering'), 'no');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      const readUntil = async (pattern: RegExp): Promise<void> => {
        while (!pattern.test(text)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended: ${text}`);
          text += decoder.decode(value, { stream: true });
        }
      };
      await readUntil(/^retry: 2000\nid: live-\d+\n\n/);
      await notify(ch, '[1,2]');
      await readUntil(/data: .*\n\n/);
      const { events } = parseEvents(text);
      assert.deepEqual(JSON.parse(events[1]?.data ?? '').payload, [1, 2]);
      assert.equal(bridge.sse.stats().clients, 1);
      await reader.cancel();
      await waitFor(() => bridge.sse.stats().clients === 0);
      await waitFor(() => bridge.listener.subscribers().length === 0);
    } finally {
      await bridge.close();
    }
  });
});

describe('fetch form under @hono/node-server', () => {
  test('a client that disconnects is cleaned up (the Response body is cancelled)', async () => {
    const { serve } = await import('@hono/node-server');
    const ch = uniqueChannel('hono');
    const bridge = await startBridge({ channels: [ch] });
    const server = serve({
      fetch: (request: Request) => bridge.sse.fetch(request),
      port: 0,
      hostname: '127.0.0.1',
    });
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const client = await RawSse.open(port, q(ch));
      await waitFor(() => client.body.includes('retry:'));
      await notify(ch, 'via hono');
      const [, n] = await client.waitEvents(2);
      assert.equal(JSON.parse(n?.data ?? '').payload, 'via hono');
      assert.equal(bridge.listener.subscribers().length, 1);
      client.close();
      await waitFor(() => bridge.sse.stats().clients === 0, {
        message: 'the client to be removed',
      });
      await waitFor(() => bridge.listener.subscribers().length === 0);
    } finally {
      server.close();
      await bridge.close();
    }
  });
});

describe('node:http form', () => {
  test('with path set, other paths call next() when given, else get 404', async () => {
    const ch = uniqueChannel('path');
    const bridge = await startBridge({ channels: [ch], path: '/events' });
    let nexted = 0;
    const server = http.createServer((req, res) =>
      bridge.sse(req, res, () => {
        nexted++;
        res.end('next');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const other = await RawSse.open(port, `/other?channel=${ch}`);
      await waitFor(() => other.body === 'next');
      assert.equal(nexted, 1);
      const missing = await RawSse.openToEnd(bridge.port, `/other?channel=${ch}`);
      assert.equal(missing.status, 404);
      const served = await RawSse.open(port, q(ch));
      assert.equal(served.status, 200);
      served.close();
      other.close();
    } finally {
      server.closeAllConnections();
      server.close();
      await bridge.close();
    }
  });
});

describe('options', () => {
  test('bad options throw PGNOTIFY_INVALID_OPTION', async () => {
    const bridge = await startBridge({ channels: [] });
    try {
      for (const bad of [
        { heartbeatMs: 0 },
        { maxClients: 1.5 },
        { channels: 'a' },
        { cors: 'https://x' },
        { path: 'events' },
        { durable: 'yes' },
      ]) {
        assert.throws(
          () => createSseHandler(bridge.listener, bad as never),
          (e: unknown) => e instanceof PgNotifyError && e.code === ErrorCode.INVALID_OPTION,
          JSON.stringify(bad),
        );
      }
    } finally {
      await bridge.close();
    }
  });
});

/*
 * Durable streams are paced by their client: a replay far larger than the client's queue
 * reaches a client that keeps reading, whatever its pace, with the bridge's memory bounded; a
 * client that stops reading is still ended as slow-client. Readers pause and resume on
 * signals (bytes counted, the bridge's stats), never on sleeps.
 */
let pacePool: pg.Pool;
/** The client queue bound: pacing starts at half of it. */
const LIMITS = { maxQueuedEvents: 64, maxQueuedBytes: 64 * 1024 };
/** Rows of ~2 kB: the backlog below is ~190 times the queue's byte bound. */
const PAD = 'x'.repeat(2000);
const ROWS = 6000;

const payload = (i: number): string => `n${i}-${PAD}`;

/** Writes `rows` durable rows on `ch` after the cursor it returns (where a client resumes). */
async function backlog(ch: string, rows: number): Promise<string> {
  const start = await resolveNowOn((text, values) => pacePool.query(text, values as unknown[]));
  for (let from = 1; from <= rows; from += 1000) {
    const batch: string[] = [];
    for (let i = from; i < from + 1000 && i <= rows; i++) batch.push(payload(i));
    await appendDurableBatch(pacePool, ch, batch);
  }
  return start;
}

/** The numbers of the notifications among `events`, in arrival order. */
function numbers(events: readonly SseEvent[]): number[] {
  return events
    .filter((e) => e.event === 'message' && e.data !== '')
    .map((e) => Number(/^n(\d+)-/.exec(JSON.parse(e.data).payload)?.[1]));
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/** What a bridge has written to its clients, and the rows its subscriptions read ahead. */
function holding(bridge: Bridge): { written: number; buffered: number } {
  const buffered = bridge.listener.stats().subscribers.reduce((sum, s) => sum + s.buffered, 0);
  return { written: bridge.sse.stats().events, buffered };
}

// In this file, not one of its own: the 'expired' test above prunes every channel of the default
// schema (the bridge's journal), which would cut into these backlogs from a file run alongside.
describe('durable replay paced by the client', () => {
  before(async () => {
    pacePool = testPool(2);
    await installSchema({ client: pacePool });
  });
  after(async () => {
    await pacePool.end();
  });

  test('a node:http client reading in bursts gets a backlog far past its queue bound, each event once and in order, and is never cut', async () => {
    const ch = uniqueChannel('pace');
    const start = await backlog(ch, ROWS);
    const bridge = await startBridge({
      channels: [ch],
      durable: true,
      heartbeatMs: 600_000,
      ...LIMITS,
    });
    try {
      const client = await RawSse.open(bridge.port, q(ch), { 'Last-Event-ID': start });
      const res = bridge.responses[0];
      assert.ok(res !== undefined);
      const burst = 128 * 1024;
      let waits = 0;
      let maxNodeQueue = 0;
      let maxBuffered = 0;
      // Blocks: the opening one, then one per notification.
      while (client.blocks < 1 + ROWS && !client.ended) {
        const target = client.received + burst;
        await waitFor(
          () => client.received >= target || client.blocks >= 1 + ROWS || client.ended,
          {
            timeoutMs: 20_000,
            message: `a burst of ${burst} bytes (has ${client.received}, ${client.blocks} blocks)`,
          },
        );
        if (client.blocks >= 1 + ROWS || client.ended) break;
        client.socket.pause();
        // Hold until the bridge waits for this client (or has written everything, or gave up).
        const why = await waitFor(
          () => {
            const s = bridge.sse.stats();
            if (s.pausedClients === 1) {
              const held = holding(bridge);
              maxNodeQueue = Math.max(maxNodeQueue, res.writableLength);
              maxBuffered = Math.max(maxBuffered, held.buffered);
              return 'paused';
            }
            if (s.slowClients > 0 || s.clients === 0) return 'cut';
            if (s.events >= ROWS) return 'all written';
            return false;
          },
          { timeoutMs: 20_000, message: 'the bridge to wait for the client' },
        );
        if (why === 'paused') waits++;
        client.socket.resume();
      }
      await waitFor(() => client.blocks >= 1 + ROWS || client.ended, {
        timeoutMs: 20_000,
        message: `every event (has ${client.blocks - 1})`,
      });
      const { events } = parseEvents(client.body);
      assert.ok(!events.some((e) => e.event === 'end'), 'the client was never cut');
      assert.equal(bridge.sse.stats().slowClients, 0);
      assert.deepEqual(numbers(events), upTo(ROWS), 'every event once, in order');
      assert.equal(bridge.sse.stats().clients, 1, 'the stream goes on');
      // The replay waited for the client, and what it held meanwhile stayed within bounds.
      assert.ok(waits > 0, 'the bridge waited for the client');
      assert.ok(
        maxNodeQueue < LIMITS.maxQueuedBytes,
        `Node's queue stays below the cut (${maxNodeQueue})`,
      );
      assert.ok(
        maxBuffered <= LIMITS.maxQueuedEvents,
        `rows read ahead stay within maxQueuedEvents (${maxBuffered})`,
      );
      client.close();
    } finally {
      await bridge.close();
    }
  });

  test('the fetch form: a reader pulling one chunk at a time gets the whole backlog; what waits is bounded', async () => {
    const ch = uniqueChannel('pacefetch');
    const rows = 1500;
    const start = await backlog(ch, rows);
    const bridge = await startBridge({
      channels: [ch],
      durable: true,
      heartbeatMs: 600_000,
      ...LIMITS,
    });
    try {
      const response = await bridge.sse.fetch(
        new Request(`http://localhost${q(ch)}`, { headers: { 'Last-Event-ID': start } }),
      );
      assert.equal(response.status, 200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      let waits = 0;
      while (numbers(parseEvents(text).events).length < rows) {
        // Read only once the bridge waits for this reader (or has written everything).
        const why = await waitFor(
          () => {
            const s = bridge.sse.stats();
            if (s.pausedClients === 1) {
              const held = holding(bridge);
              assert.ok(held.buffered <= LIMITS.maxQueuedEvents, `buffered ${held.buffered}`);
              return 'paused';
            }
            if (s.slowClients > 0 || s.clients === 0) return 'cut';
            return s.events >= rows ? 'all written' : false;
          },
          { timeoutMs: 20_000, message: 'the bridge to wait for the reader' },
        );
        if (why === 'paused') waits++;
        const chunk = await reader.read();
        assert.equal(chunk.done, false, 'the stream goes on');
        // One pull takes what was queued: at most half the bound plus one frame.
        assert.ok((chunk.value?.byteLength ?? 0) < LIMITS.maxQueuedBytes);
        text += decoder.decode(chunk.value, { stream: true });
      }
      const { events } = parseEvents(text);
      assert.ok(!events.some((e) => e.event === 'end'), 'the reader was never cut');
      assert.deepEqual(numbers(events), upTo(rows));
      assert.ok(waits > 10, `the bridge waited for the reader (${waits} times)`);
      await reader.cancel();
    } finally {
      await bridge.close();
    }
  });

  test('a client that stops reading is ended as slow-client once it reads nothing for stallTimeoutMs; the journal read stops meanwhile; it resumes from its last id', async () => {
    const ch = uniqueChannel('pacestop');
    const start = await backlog(ch, ROWS);
    const bridge = await startBridge({
      channels: [ch],
      durable: true,
      heartbeatMs: 600_000,
      stallTimeoutMs: 200,
      ...LIMITS,
    });
    try {
      const stopped = await RawSse.open(bridge.port, q(ch), { 'Last-Event-ID': start });
      stopped.socket.pause();
      const res = bridge.responses[0];
      assert.ok(res !== undefined);
      // Once the kernel's buffers are full, the bridge waits: sample what it holds then.
      const held = await waitFor(
        () => {
          if (bridge.sse.stats().slowClients > 0)
            return { late: true, nodeQueue: 0, written: 0, buffered: 0 };
          if (bridge.sse.stats().pausedClients !== 1) return false;
          return {
            late: false,
            nodeQueue: res.writableLength,
            ...holding(bridge),
          };
        },
        { timeoutMs: 20_000, message: 'the bridge to wait for the stopped client' },
      );
      assert.equal(held.late, false, 'seen waiting before it was cut');
      assert.ok(held.nodeQueue < LIMITS.maxQueuedBytes, `Node's queue ${held.nodeQueue}`);
      assert.ok(held.buffered <= LIMITS.maxQueuedEvents, `read ahead ${held.buffered}`);
      assert.ok(held.written + held.buffered < ROWS, 'the rest is still in the journal');
      await waitFor(() => bridge.sse.stats().slowClients === 1, {
        timeoutMs: 20_000,
        message: 'the stopped client to be cut',
      });
      const written = bridge.sse.stats().events;
      assert.ok(written < ROWS, `the journal read stopped (${written} written)`);
      assert.equal(bridge.sse.stats().clients, 0);
      assert.deepEqual(bridge.listener.stats().subscribers, [], 'its subscription is gone');
      stopped.socket.resume();
      await waitFor(() => stopped.ended, {
        timeoutMs: 20_000,
        message: 'the stopped stream to end',
      });
      const { events } = parseEvents(stopped.body);
      assert.deepEqual(JSON.parse(events.at(-1)?.data ?? ''), {
        reason: 'slow-client',
        message: 'nothing read for 200 ms',
      });
      const had = numbers(events);
      assert.deepEqual(had, upTo(had.length));
      // It comes back from its last id and gets exactly the rest.
      const lastId = events.filter((e) => e.id !== undefined).at(-1)?.id as string;
      const back = await RawSse.open(bridge.port, q(ch), { 'Last-Event-ID': lastId });
      await waitFor(() => back.blocks >= 1 + ROWS - had.length, {
        timeoutMs: 20_000,
        message: 'the rest of the backlog',
      });
      assert.deepEqual([...had, ...numbers(back.events)], upTo(ROWS));
      back.close();
    } finally {
      await bridge.close();
    }
  });
});
