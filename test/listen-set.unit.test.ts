/**
 * Unit tests of src/listen-set.ts with a fake query: what is wanted comes from the registry,
 * changes in one tick go out as one batch, refusals and lost connections, drift repair.
 * No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '../src/errors.js';
import { type Deferred, ListenSet, type Query } from '../src/listen-set.js';
import { Registry } from '../src/registry.js';
import { isCode } from './helpers/assert.js';

/** A fake connection: records each query; `fail` makes the next ones reject. */
function fakeConnection() {
  const sent: string[] = [];
  let failure: unknown;
  let hold: Promise<void> | undefined;
  const query: Query = async (sql) => {
    sent.push(sql);
    if (hold !== undefined) await hold;
    if (failure !== undefined) throw failure;
    return { rows: [] };
  };
  return {
    query,
    sent,
    fail(error: unknown) {
      failure = error;
    },
    holdUntil(gate: Promise<void>) {
      hold = gate;
    },
  };
}

function rig() {
  const registry = new Registry<string>();
  const conn = fakeConnection();
  let live: Query | undefined = conn.query;
  const parked: Deferred[] = [];
  const lost: unknown[] = [];
  const set = new ListenSet({
    isWanted: (channel) => registry.isActive(channel),
    live: () => live,
    park: (batch) => parked.push(batch),
    lost: (query, cause) => {
      assert.equal(query, conn.query);
      lost.push(cause);
      live = undefined;
    },
  });
  return {
    registry,
    conn,
    set,
    parked,
    lost,
    /** A registry change, as the listener applies it. */
    change(touched: readonly string[]) {
      set.touch(touched);
      return set.sync();
    },
    drop() {
      live = undefined;
    },
  };
}

/** A server error with a SQLSTATE (the connection stays usable). */
function serverError(code: string): Error {
  return Object.assign(new Error('permission denied'), { code });
}

describe('batches', () => {
  test('changes made in one tick go out as one query, LISTEN what is wanted', async () => {
    const { registry, conn, set, change } = rig();
    const a = change(registry.subscribe(1, 'v1', ['a', 'b']));
    const b = change(registry.subscribe(2, 'v2', ['c']));
    await Promise.all([a, b]);
    assert.deepEqual(conn.sent, ['LISTEN "a";LISTEN "b";LISTEN "c";']);
    assert.equal(set.size, 3);
    assert.ok(set.isListening('b'));
  });

  test('UNLISTEN what is no longer wanted; unchanged channels send nothing', async () => {
    const { registry, conn, set, change } = rig();
    await change(registry.subscribe(1, 'v1', ['a', 'b']));
    await change(registry.subscribe(2, 'v2', ['a']));
    assert.equal(conn.sent.length, 1, 'a channel already listened to sends nothing');
    await change(registry.unsubscribe(1));
    assert.deepEqual(conn.sent.at(-1), 'UNLISTEN "b";');
    await change(registry.muteSubscriber(2));
    assert.deepEqual(conn.sent.at(-1), 'UNLISTEN "a";');
    assert.equal(set.size, 0);
    await change(registry.muteChannels(['x']));
    assert.equal(conn.sent.length, 3, 'muting an unknown channel sends nothing');
  });

  test('what changes while a batch is in flight goes in the next one', async () => {
    const { registry, conn, change } = rig();
    let open!: () => void;
    conn.holdUntil(
      new Promise((resolve) => {
        open = resolve;
      }),
    );
    const first = change(registry.subscribe(1, 'v1', ['a']));
    await new Promise((resolve) => setImmediate(resolve));
    const second = change(registry.subscribe(2, 'v2', ['b']));
    const third = change(registry.subscribe(3, 'v3', ['c']));
    assert.equal(second, third, 'coalesced into one pending batch');
    open();
    await Promise.all([first, second]);
    assert.deepEqual(conn.sent, ['LISTEN "a";', 'LISTEN "b";LISTEN "c";']);
  });

  test('sync() with nothing touched resolves without a query', async () => {
    const { conn, set } = rig();
    await set.sync();
    assert.deepEqual(conn.sent, []);
  });
});

describe('failures', () => {
  test('a refused LISTEN rejects PGNOTIFY_LISTEN_FAILED and is retried with the next batch', async () => {
    const { registry, conn, set, change, lost } = rig();
    conn.fail(serverError('42501'));
    await assert.rejects(change(registry.subscribe(1, 'v1', ['a'])), (error: unknown) => {
      assert.ok(isCode(ErrorCode.LISTEN_FAILED)(error));
      assert.equal((error as { sqlState?: string }).sqlState, '42501');
      return true;
    });
    assert.equal(set.isListening('a'), false);
    assert.deepEqual(lost, [], 'the connection is not declared lost');
    conn.fail(undefined);
    await change(registry.subscribe(2, 'v2', ['b']));
    assert.deepEqual(conn.sent.at(-1), 'LISTEN "a";LISTEN "b";');
    assert.ok(set.isListening('a'));
  });

  test('a connection error loses the connection and parks the batch for the next one', async () => {
    const { registry, conn, set, change, lost, parked } = rig();
    const socket = new Error('read ECONNRESET');
    conn.fail(socket);
    const pending = change(registry.subscribe(1, 'v1', ['a']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(lost, [socket]);
    assert.equal(parked.length, 1);
    assert.equal(set.isListening('a'), false);
    parked[0]?.resolve();
    await pending;
  });

  test('without a live connection the batch is parked, not sent', async () => {
    const { registry, conn, change, parked, drop } = rig();
    drop();
    const pending = change(registry.subscribe(1, 'v1', ['a']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(conn.sent, []);
    assert.equal(parked.length, 1);
    parked[0]?.reject(new Error('stopped'));
    await assert.rejects(pending, /stopped/);
  });

  test('abandon() rejects the batch waiting to go out', async () => {
    const { registry, set } = rig();
    set.touch(registry.subscribe(1, 'v1', ['a']));
    const pending = set.sync();
    set.abandon(new Error('closed'));
    await assert.rejects(pending, /closed/);
  });
});

describe('connections', () => {
  test('a new connection LISTENs what is wanted; a failed attempt hands its channels on', async () => {
    const { registry, conn, set } = rig();
    set.touch(registry.subscribe(1, 'v1', ['a', 'b']));
    set.connecting();
    assert.equal(set.dirty, false);
    set.connectFailed(registry.activeChannels());
    assert.equal(set.dirty, true);
    set.connecting();
    set.connected(registry.activeChannels());
    assert.ok(set.isListening('a') && set.isListening('b'));
    await set.sync();
    assert.deepEqual(conn.sent, [], 'the connection already listens to them');
    assert.deepEqual(set.reset(), ['a', 'b']);
    assert.equal(set.size, 0);
  });

  test('repair() adopts the server’s set where it drifted and marks the differences', async () => {
    const { registry, conn, set, change } = rig();
    await change(registry.subscribe(1, 'v1', ['a', 'b']));
    assert.equal(set.repair(['a', 'b']), 0, 'no drift');
    // The server lost "b" (someone ran UNLISTEN on our connection) and gained "z".
    assert.equal(set.repair(['a', 'z']), 2);
    assert.equal(set.isListening('b'), false);
    await set.sync();
    assert.deepEqual(conn.sent.at(-1), 'UNLISTEN "z";LISTEN "b";');
    assert.ok(set.isListening('b'));
    assert.equal(set.isListening('z'), false);
  });
});
