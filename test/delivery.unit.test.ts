/**
 * Unit tests of src/delivery.ts with fake recipients: the index derived from the registry,
 * decoding once per decoder, schemas, stop channels, arrival order with asynchronous schemas,
 * and the last-entry cache (the bug class it invites: a stale or initially empty cache).
 * No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { decoderFor, type Schema } from '../src/codec.js';
import { Delivery, type Recipient } from '../src/delivery.js';
import { ErrorCode, type PgNotifyError } from '../src/errors.js';
import { Registry } from '../src/registry.js';
import type { Notification } from '../src/types.js';

class Fake implements Recipient {
  readonly got: Notification[] = [];
  constructor(
    readonly name: string,
    readonly decoder: ((raw: string, channel: string) => unknown) | undefined = undefined,
    readonly stopChannel: string | undefined = undefined,
    readonly rawChannel: string | undefined = undefined,
  ) {}
  deliver(notification: Notification): void {
    this.got.push(notification);
  }
  get payloads(): unknown[] {
    return this.got.map((n) => n.payload);
  }
}

function rig(
  options: {
    schemas?: Record<string, Schema>;
    decode?: (raw: string, channel: string) => unknown;
  } = {},
) {
  const errors: PgNotifyError[] = [];
  const registry = new Registry<Fake>();
  const delivery = new Delivery<Fake>({
    decoder: options.decode ?? decoderFor('auto'),
    schemas: new Map(Object.entries(options.schemas ?? {})),
    report: (error) => errors.push(error as PgNotifyError),
  });
  const apply = (touched: readonly string[]): void =>
    delivery.update(touched, (channel) => registry.recipients(channel));
  const send = (channel: string, raw: string): void => delivery.deliver(channel, raw, 42, 1_000);
  return { errors, registry, delivery, apply, send };
}

/** A Standard Schema whose validation is sync or async, accepting numbers only. */
function numberSchema(mode: 'sync' | 'async', gate?: Promise<void>): Schema<number> {
  const check = (value: unknown): StandardSchemaV1.Result<number> =>
    typeof value === 'number' ? { value } : { issues: [{ message: 'not a number' }] };
  return {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (value) =>
        mode === 'sync' ? check(value) : (gate ?? Promise.resolve()).then(() => check(value)),
    },
  };
}

describe('the index is derived from the registry', () => {
  test('a notification goes to the channel’s unmuted subscribers, decoded once', () => {
    const { registry, delivery, apply, send } = rig();
    const [a, b, c] = [new Fake('a'), new Fake('b'), new Fake('c')];
    apply(registry.subscribe(1, a, ['x']));
    apply(registry.subscribe(2, b, ['x', 'y']));
    apply(registry.subscribe(3, c, ['y']));
    send('x', '{"n":1}');
    assert.deepEqual(a.payloads, [{ n: 1 }]);
    assert.equal(a.got[0], b.got[0], 'the same notification object for every plain recipient');
    assert.deepEqual(c.got, []);
    assert.deepEqual(a.got[0], {
      channel: 'x',
      payload: { n: 1 },
      raw: '{"n":1}',
      pid: 42,
      receivedAt: 1_000,
    });
    assert.equal(delivery.counters.delivered, 2);
    apply(registry.muteSubscriber(2));
    send('x', '2');
    assert.deepEqual(a.payloads, [{ n: 1 }, 2]);
    assert.deepEqual(b.payloads, [{ n: 1 }]);
    apply(registry.muteChannels(['y']));
    send('y', '3');
    assert.deepEqual(c.got, []);
    assert.deepEqual(delivery.recipientsOf('y'), []);
  });

  test('a channel nobody subscribes to is dropped, even as the very first notification', () => {
    const { registry, delivery, apply, send } = rig();
    send('nobody', 'first'); // the last-entry cache is still empty
    const a = new Fake('a');
    apply(registry.subscribe(1, a, ['x']));
    send('nobody', 'second');
    send('x', 'third');
    assert.deepEqual(a.payloads, ['third']);
    assert.equal(delivery.counters.delivered, 1);
  });

  test('an update after a notification is obeyed by the next one (no stale cache)', () => {
    const { registry, apply, send } = rig();
    const [a, b] = [new Fake('a'), new Fake('b')];
    apply(registry.subscribe(1, a, ['x']));
    send('x', '1'); // 'x' is now the last entry used
    apply(registry.subscribe(2, b, ['x']));
    send('x', '2');
    apply(registry.unsubscribe(1));
    send('x', '3');
    apply(registry.unsubscribe(2));
    send('x', '4');
    assert.deepEqual(a.payloads, [1, 2]);
    assert.deepEqual(b.payloads, [2, 3]);
  });

  test('alternating channels reach their own subscribers', () => {
    const { registry, apply, send } = rig();
    const [a, b] = [new Fake('a'), new Fake('b')];
    apply(registry.subscribe(1, a, ['x']));
    apply(registry.subscribe(2, b, ['y']));
    for (let i = 0; i < 6; i++) send(i % 2 === 0 ? 'x' : 'y', String(i));
    assert.deepEqual(a.payloads, [0, 2, 4]);
    assert.deepEqual(b.payloads, [1, 3, 5]);
  });

  test('a change made while delivering does not disturb the delivery in progress', () => {
    const { registry, apply, send } = rig();
    const late = new Fake('late');
    const first = new Fake('first');
    first.deliver = (n) => {
      first.got.push(n);
      if (first.got.length > 1) return;
      // A handler that unsubscribes the next recipient and subscribes another, mid-delivery.
      apply(registry.unsubscribe(2));
      apply(registry.subscribe(3, late, ['x']));
    };
    const second = new Fake('second');
    apply(registry.subscribe(1, first, ['x']));
    apply(registry.subscribe(2, second, ['x']));
    send('x', '1');
    assert.deepEqual(second.payloads, [1], 'the list taken when the notification arrived');
    assert.deepEqual(late.payloads, []);
    send('x', '2');
    assert.deepEqual(late.payloads, [2]);
    assert.deepEqual(second.payloads, [1]);
  });
});

describe('decoding', () => {
  test('once per distinct decoder; recipients sharing a decoder share the notification', () => {
    let calls = 0;
    const upper = (raw: string): string => {
      calls++;
      return raw.toUpperCase();
    };
    const { registry, apply, send } = rig();
    const [plain, u1, u2] = [new Fake('plain'), new Fake('u1', upper), new Fake('u2', upper)];
    apply(registry.subscribe(1, plain, ['x']));
    apply(registry.subscribe(2, u1, ['x']));
    apply(registry.subscribe(3, u2, ['x']));
    send('x', '"hi"');
    assert.deepEqual(plain.payloads, ['hi']);
    assert.deepEqual(u1.payloads, ['"HI"']);
    assert.equal(u1.got[0], u2.got[0]);
    assert.equal(calls, 1);
  });

  test('a decoder that throws: DECODE_FAILED reported and counted, nothing delivered', () => {
    const { registry, delivery, errors, apply, send } = rig({
      decode: (raw) => {
        if (raw === 'bad') throw new Error('nope');
        return raw;
      },
    });
    const a = new Fake('a');
    apply(registry.subscribe(1, a, ['x']));
    send('x', 'bad');
    send('x', 'good');
    assert.deepEqual(a.payloads, ['good']);
    assert.equal(delivery.counters.decodeErrors, 1);
    assert.equal(errors[0]?.code, ErrorCode.DECODE_FAILED);
    assert.equal(errors[0]?.channel, 'x');
  });

  test('a stop channel’s notification is handed over raw, never decoded', () => {
    const { registry, errors, apply, send } = rig({ decode: decoderFor('json') });
    const a = new Fake('a', undefined, 'stop');
    apply(registry.subscribe(1, a, ['x', 'stop']));
    send('stop', 'not json');
    assert.deepEqual(a.got, [
      { channel: 'stop', payload: 'not json', raw: 'not json', pid: 42, receivedAt: 1_000 },
    ]);
    assert.deepEqual(errors, []);
  });

  test('a raw channel (a durable wake channel) is never decoded, whatever the decoder', () => {
    const { registry, errors, apply, send } = rig({ decode: decoderFor('json') });
    const refuse = () => {
      throw new Error('decoded');
    };
    const [a, b] = [
      new Fake('a', undefined, undefined, 'w'),
      new Fake('b', refuse, undefined, 'w'),
    ];
    apply(registry.subscribe(1, a, ['w']));
    apply(registry.subscribe(2, b, ['w']));
    send('w', 'orders');
    const raw = { channel: 'w', payload: 'orders', raw: 'orders', pid: 42, receivedAt: 1_000 };
    assert.deepEqual([a.got, b.got], [[raw], [raw]]);
    assert.deepEqual(errors, []);
  });
});

describe('schemas', () => {
  test('a failing payload is reported (VALIDATION_FAILED) and never delivered', () => {
    const { registry, delivery, errors, apply, send } = rig({
      schemas: { x: numberSchema('sync') },
    });
    const [a, b] = [new Fake('a'), new Fake('b')];
    apply(registry.subscribe(1, a, ['x']));
    apply(registry.subscribe(2, b, ['x']));
    send('x', '"text"');
    send('x', '5');
    assert.deepEqual(a.payloads, [5]);
    assert.deepEqual(b.payloads, [5]);
    assert.equal(delivery.counters.validationErrors, 1, 'validated once, not per recipient');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, ErrorCode.VALIDATION_FAILED);
  });

  test('an asynchronous schema keeps arrival order, across channels too', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const { registry, delivery, apply, send } = rig({
      schemas: { slow: numberSchema('async', gate) },
    });
    const order: string[] = [];
    const a = new Fake('a');
    a.deliver = (n) => order.push(`${n.channel}:${n.raw}`);
    apply(registry.subscribe(1, a, ['slow', 'fast']));
    send('slow', '1');
    send('fast', '2'); // plain, but must wait behind the pending validation
    send('slow', '3');
    assert.deepEqual(order, []);
    open();
    await delivery.settled();
    assert.deepEqual(order, ['slow:1', 'fast:2', 'slow:3']);
    send('fast', '4'); // the chain is empty again: straight through
    assert.deepEqual(order, ['slow:1', 'fast:2', 'slow:3', 'fast:4']);
  });
});
