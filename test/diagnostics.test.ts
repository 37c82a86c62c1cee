/**
 * src/diagnostics.ts against the real server: the listener's lifecycle, delivery and error
 * events reach `node:diagnostics_channel` subscribers with the documented shapes, each
 * message naming its listener; with nobody subscribed nothing is built.
 */
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import {
  DiagnosticsChannel,
  type DiagnosticsMessages,
  ErrorCode,
  type ListenerState,
} from '../src/index.js';
import { adminClient, terminate, uniqueChannel, waitFor } from './helpers/db.js';
import { listenerRig } from './helpers/rig.js';

let admin: pg.Client;

before(async () => {
  admin = await adminClient();
});

after(async () => {
  await admin?.end().catch(() => undefined);
});

/** Collects every message published on `name` until `stop()`. */
function record<N extends keyof DiagnosticsMessages>(name: N) {
  const messages: DiagnosticsMessages[N][] = [];
  const onMessage = (message: unknown): void => {
    messages.push(message as DiagnosticsMessages[N]);
  };
  diagnostics_channel.subscribe(name, onMessage);
  return { messages, stop: () => diagnostics_channel.unsubscribe(name, onMessage) };
}

describe('diagnostics_channel', () => {
  test('the channel names are the documented ones', () => {
    assert.deepEqual(Object.values(DiagnosticsChannel).sort(), [
      'pgnotify:listener:connected',
      'pgnotify:listener:disconnected',
      'pgnotify:listener:error',
      'pgnotify:listener:gap',
      'pgnotify:listener:overflow',
      'pgnotify:listener:reconnected',
      'pgnotify:listener:reconnecting',
      'pgnotify:listener:state',
      'pgnotify:notification:received',
    ]);
  });

  test('lifecycle, notifications, a lost connection and its gap, handler errors', async () => {
    const state = record(DiagnosticsChannel.STATE);
    const connected = record(DiagnosticsChannel.CONNECTED);
    const disconnected = record(DiagnosticsChannel.DISCONNECTED);
    const reconnecting = record(DiagnosticsChannel.RECONNECTING);
    const reconnected = record(DiagnosticsChannel.RECONNECTED);
    const gap = record(DiagnosticsChannel.GAP);
    const received = record(DiagnosticsChannel.NOTIFICATION_RECEIVED);
    const errors = record(DiagnosticsChannel.ERROR);
    const all = [state, connected, disconnected, reconnecting, reconnected, gap, received, errors];
    try {
      const { listener } = listenerRig({ reconnect: { minDelayMs: 10, maxDelayMs: 50 } });
      await using _ = listener;
      const channel = uniqueChannel('diag');
      const handled: unknown[] = [];
      await listener.subscribe(channel, (n) => {
        handled.push(n.payload);
        if (n.payload === 'boom') throw new Error('handler bug');
      });
      await listener.start();
      assert.deepEqual(
        state.messages.map((m) => m.state),
        ['connecting', 'listening'] satisfies ListenerState[],
      );
      assert.equal(state.messages[0]?.listener, listener);
      assert.equal(connected.messages[0]?.pid, listener.pid);

      await admin.query('select pg_notify($1, $2)', [channel, '{"id":1}']);
      await waitFor(() => handled.length === 1, { message: 'the first notification' });
      const first = received.messages.find((m) => m.channel === channel);
      assert.ok(first, 'published on pgnotify:notification:received');
      assert.equal(first.listener, listener);
      assert.equal(first.payload, '{"id":1}', 'the raw text, before decoding');
      assert.equal(typeof first.pid, 'number');
      assert.ok(Math.abs(Date.now() - first.receivedAt) < 60_000);

      await admin.query('select pg_notify($1, $2)', [channel, 'boom']);
      await waitFor(() => errors.messages.length > 0, { message: 'the handler error' });
      assert.equal(errors.messages[0]?.error.code, ErrorCode.HANDLER_FAILED);
      assert.equal(errors.messages[0]?.listener, listener);

      const pid = listener.pid ?? -1;
      await terminate(pid);
      await waitFor(() => gap.messages.length > 0, { message: 'the gap', timeoutMs: 10_000 });
      const lost = gap.messages[0]?.gap;
      assert.equal(lost?.kind, 'gap');
      if (lost?.kind !== 'gap') return;
      assert.deepEqual(lost?.channels, [channel]);
      assert.equal(disconnected.messages[0]?.cause.code, ErrorCode.CONNECTION_LOST);
      assert.equal(reconnecting.messages[0]?.attempt, 1);
      assert.equal(reconnected.messages[0]?.downtimeMs, lost?.downtimeMs);
      assert.equal(connected.messages.length, 2);
      assert.deepEqual(
        state.messages.map((m) => m.state),
        ['connecting', 'listening', 'reconnecting', 'listening'],
      );
    } finally {
      for (const recorder of all) recorder.stop();
    }
  });

  test('nothing is published while nobody subscribes', () => {
    for (const name of Object.values(DiagnosticsChannel)) {
      assert.equal(diagnostics_channel.hasSubscribers(name), false, name);
    }
  });
});
