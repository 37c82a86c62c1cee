/**
 * Unit tests of src/codec.ts: decoders, payload encoding and Standard Schema validation.
 * No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { decoderFor, encodePayload, type Validated, validate } from '../src/codec.js';
import { ErrorCode, PgNotifyError, ValidationError } from '../src/errors.js';
import { throwsCode } from './helpers/assert.js';

/** A hand-written Standard Schema around a validate function. */
function schema<T>(
  validateFn: (value: unknown) => StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>>,
): StandardSchemaV1<unknown, T> {
  return { '~standard': { version: 1, vendor: 'pgnotify-test', validate: validateFn } };
}

/** `{ id: number }` → `{ id, doubled }`, with issues carrying a path. */
const orderSchema = schema<{ id: number; doubled: number }>((value) => {
  const id = (value as { id?: unknown } | null)?.id;
  if (typeof id !== 'number') {
    return { issues: [{ message: 'expected a number', path: ['order', { key: 'id' }] }] };
  }
  return { value: { id, doubled: id * 2 } };
});

function failure(result: Validated): ValidationError {
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  assert.ok(result.error instanceof ValidationError);
  assert.ok(result.error instanceof PgNotifyError);
  assert.equal(result.error.code, ErrorCode.VALIDATION_FAILED);
  return result.error;
}

describe("decoderFor('auto')", () => {
  const auto = decoderFor('auto');

  test('parses text that is JSON', () => {
    assert.deepEqual(auto('{"id":1,"tags":["a"]}', 'c'), { id: 1, tags: ['a'] });
    assert.deepEqual(auto('[1,2,3]', 'c'), [1, 2, 3]);
    assert.equal(auto('42', 'c'), 42);
    assert.equal(auto('-1.5e2', 'c'), -150);
    assert.equal(auto('0', 'c'), 0);
    assert.equal(auto('true', 'c'), true);
    assert.equal(auto('false', 'c'), false);
    assert.equal(auto('null', 'c'), null);
    assert.equal(auto('"quoted"', 'c'), 'quoted');
    assert.deepEqual(auto(' \n\t{"a":1} ', 'c'), { a: 1 });
  });

  test('keeps text that is not JSON', () => {
    for (const raw of [
      'hello',
      '{broken',
      '',
      'trueish',
      'nullable',
      '12 apples',
      '-',
      '"unterminated',
      'NaN',
      '  ',
      'Infinity',
    ]) {
      assert.equal(auto(raw, 'c'), raw, `for ${JSON.stringify(raw)}`);
    }
  });

  test('the same option gives the same function', () => {
    assert.equal(decoderFor('auto'), auto);
    assert.equal(decoderFor('json'), decoderFor('json'));
    assert.equal(decoderFor('text'), decoderFor('text'));
    assert.notEqual(decoderFor('json'), auto);
  });
});

describe("decoderFor('json') and ('text')", () => {
  test('json parses strictly and throws on invalid text', () => {
    const json = decoderFor('json');
    assert.deepEqual(json('{"a":[1]}', 'c'), { a: [1] });
    assert.equal(json('"s"', 'c'), 's');
    assert.throws(() => json('{broken', 'c'), SyntaxError);
    assert.throws(() => json('hello', 'c'), SyntaxError);
    assert.throws(() => json(' ', 'c'), SyntaxError);
  });

  test('json decodes the empty payload (NOTIFY without payload) to undefined', () => {
    assert.equal(decoderFor('json')('', 'c'), undefined);
  });

  test('text is the identity', () => {
    const text = decoderFor('text');
    for (const raw of ['{"a":1}', '42', '', 'true', 'hello']) assert.equal(text(raw, 'c'), raw);
  });

  test('a custom function is used as given', () => {
    const seen: [string, string][] = [];
    const custom = (raw: string, channel: string): unknown => {
      seen.push([raw, channel]);
      return raw.length;
    };
    const decoder = decoderFor(custom);
    assert.equal(decoder, custom);
    assert.equal(decoder('abc', 'orders'), 3);
    assert.deepEqual(seen, [['abc', 'orders']]);
  });
});

describe('encodePayload', () => {
  test('strings go as they are, never re-encoded', () => {
    assert.equal(encodePayload('hello', 'c'), 'hello');
    assert.equal(encodePayload('{"a":1}', 'c'), '{"a":1}');
    assert.equal(encodePayload('', 'c'), '');
  });

  test('undefined is the empty payload', () => {
    assert.equal(encodePayload(undefined, 'c'), '');
  });

  test('anything else is JSON', () => {
    assert.equal(encodePayload({ id: 1, tags: ['a'] }, 'c'), '{"id":1,"tags":["a"]}');
    assert.equal(encodePayload([1, 'b'], 'c'), '[1,"b"]');
    assert.equal(encodePayload(42, 'c'), '42');
    assert.equal(encodePayload(true, 'c'), 'true');
    assert.equal(encodePayload(null, 'c'), 'null');
    assert.equal(encodePayload({ toJSON: () => 'custom' }, 'c'), '"custom"');
    // A NUL inside a JSON string is escaped, so it is a valid payload.
    assert.equal(encodePayload({ s: 'a\0b' }, 'c'), '{"s":"a\\u0000b"}');
    // So is a lone surrogate (only the size of JSON text is checked), and it round-trips.
    const lone = encodePayload({ s: 'x\uD800y' }, 'c');
    assert.equal(lone, '{"s":"x\\ud800y"}');
    assert.equal(lone.isWellFormed(), true);
    assert.deepEqual(JSON.parse(lone), { s: 'x\uD800y' });
  });

  test('a circular object is INVALID_PAYLOAD with the JSON error as cause', () => {
    const circular: { self?: unknown } = {};
    circular.self = circular;
    const error = throwsCode(() => encodePayload(circular, 'orders'), ErrorCode.INVALID_PAYLOAD);
    assert.ok(error.cause instanceof TypeError);
    assert.equal(error.channel, 'orders');
    assert.match(error.message, /JSON/);
  });

  test('a BigInt is INVALID_PAYLOAD', () => {
    throwsCode(() => encodePayload(10n, 'c'), ErrorCode.INVALID_PAYLOAD);
    throwsCode(() => encodePayload({ n: 10n }, 'c'), ErrorCode.INVALID_PAYLOAD);
  });

  test('a function or a symbol is INVALID_PAYLOAD', () => {
    const fn = throwsCode(() => encodePayload(() => 1, 'c'), ErrorCode.INVALID_PAYLOAD);
    assert.match(fn.message, /function/);
    throwsCode(() => encodePayload(Symbol('s'), 'c'), ErrorCode.INVALID_PAYLOAD);
  });

  test('NaN, Infinity, -Infinity, Map and Set are INVALID_PAYLOAD at any depth, path named', () => {
    const cases: [unknown, RegExp][] = [
      [Number.NaN, /payload is NaN, which JSON would send as null/],
      [Number.POSITIVE_INFINITY, /payload is Infinity/],
      [Number.NEGATIVE_INFINITY, /payload is -Infinity/],
      [new Map([['a', 1]]), /payload is a Map, which JSON would send as \{\}.*Object\.fromEntries/],
      [new Set([1]), /payload is a Set.*\[\.\.\.set\]/],
      [{ total: Number.NaN }, /payload\.total is NaN/],
      [[1, 2, Number.POSITIVE_INFINITY], /payload\[2\] is Infinity/],
      [{ 'a b': [{ tags: new Set() }] }, /payload\["a b"\]\[0\]\.tags is a Set/],
      [{ ok: 1, deep: { deeper: [{ m: new Map() }] } }, /payload\.deep\.deeper\[0\]\.m is a Map/],
      [[[Number.NEGATIVE_INFINITY]], /payload\[0\]\[0\] is -Infinity/],
    ];
    for (const [payload, message] of cases) {
      const error = throwsCode(() => encodePayload(payload, 'orders'), ErrorCode.INVALID_PAYLOAD);
      assert.match(error.message, message);
      assert.equal(error.channel, 'orders');
    }
  });

  test('what JSON encodes faithfully still passes: finite numbers, toJSON, Map with toJSON', () => {
    assert.equal(
      encodePayload({ n: -0, big: 1e308, small: 5e-324 }, 'c'),
      '{"n":0,"big":1e+308,"small":5e-324}',
    );
    assert.equal(encodePayload(new Date(0), 'c'), '"1970-01-01T00:00:00.000Z"');
    // An object that encodes itself is taken as it encodes, whatever it holds.
    const custom = { toJSON: () => ({ entries: 1 }), inner: new Map() };
    assert.equal(encodePayload(custom, 'c'), '{"entries":1}');
    // Properties JSON skips are not checked either: they are not sent.
    const hidden = Object.defineProperty({ a: 1 }, 'nan', { value: Number.NaN, enumerable: false });
    assert.equal(encodePayload(hidden, 'c'), '{"a":1}');
    assert.equal(encodePayload({ [Symbol('s')]: Number.NaN, b: [null] }, 'c'), '{"b":[null]}');
    // A Map with enumerable properties of its own is written as them, as JSON does.
    const tagged = Object.assign(new Map([['lost', 1]]), { kind: 'tagged' });
    assert.equal(encodePayload(tagged, 'c'), '{"kind":"tagged"}');
    assert.equal(encodePayload({ empty: {}, list: [] }, 'c'), '{"empty":{},"list":[]}');
    assert.equal(encodePayload({ s: 'null {}' }, 'c'), '{"s":"null {}"}');
  });

  test('a string with NUL is INVALID_PAYLOAD', () => {
    throwsCode(() => encodePayload('a\0b', 'c'), ErrorCode.INVALID_PAYLOAD);
  });

  test('too large once encoded is PAYLOAD_TOO_LARGE', () => {
    throwsCode(() => encodePayload('x'.repeat(8000), 'c'), ErrorCode.PAYLOAD_TOO_LARGE);
    // 7997 characters plus the two JSON quotes: 7999 bytes, accepted.
    assert.equal(encodePayload('x'.repeat(7997), 'c').length, 7997);
    assert.equal(encodePayload({ s: 'x'.repeat(7991) }, 'c').length, 7999);
    const error = throwsCode(
      () => encodePayload({ s: 'x'.repeat(7992) }, 'big'),
      ErrorCode.PAYLOAD_TOO_LARGE,
    );
    assert.equal(error.channel, 'big');
    throwsCode(() => encodePayload({ s: 'é'.repeat(4000) }, 'c'), ErrorCode.PAYLOAD_TOO_LARGE);
  });
});

describe('validate', () => {
  test('sync success returns the transformed value, not a promise', () => {
    const result = validate(orderSchema, { id: 4 }, 'orders');
    assert.ok(!(result instanceof Promise));
    assert.deepEqual(result, { ok: true, value: { id: 4, doubled: 8 } });
  });

  test('sync failure is a ValidationError with the issues and their paths', () => {
    const result = validate(orderSchema, { id: 'x' }, 'orders');
    assert.ok(!(result instanceof Promise));
    const error = failure(result);
    assert.equal(error.issues.length, 1);
    assert.equal(error.issues[0]?.message, 'expected a number');
    assert.deepEqual(error.issues[0]?.path, ['order', { key: 'id' }]);
    assert.equal(error.channel, 'orders');
    assert.match(error.message, /order\.id: expected a number/);
    assert.match(error.message, /"orders"/);
    assert.equal(error.name, 'ValidationError');
  });

  test('async success resolves to the value', async () => {
    const async = schema(async (value) => ({ value: String(value).toUpperCase() }));
    const result = validate(async, 'abc', 'c');
    assert.ok(result instanceof Promise);
    assert.deepEqual(await result, { ok: true, value: 'ABC' });
  });

  test('async failure resolves to a ValidationError', async () => {
    const async = schema(async () => ({ issues: [{ message: 'nope' }] }));
    const result = validate(async, 1, 'c');
    assert.ok(result instanceof Promise);
    const error = failure(await result);
    assert.deepEqual(
      error.issues.map((i) => i.message),
      ['nope'],
    );
  });

  test('an async rejection resolves to a ValidationError with the cause', async () => {
    const boom = new Error('schema crashed');
    const rejecting = schema(() => Promise.reject(boom));
    const result = validate(rejecting, 1, 'c');
    assert.ok(result instanceof Promise);
    const error = failure(await result);
    assert.equal(error.cause, boom);
    assert.deepEqual(error.issues, []);
    assert.match(error.message, /schema crashed/);
  });

  test('a throwing validate is a failure, not a throw', () => {
    const boom = new Error('validate threw');
    const throwing = schema(() => {
      throw boom;
    });
    const result = validate(throwing, 1, 'c');
    assert.ok(!(result instanceof Promise));
    const error = failure(result);
    assert.equal(error.cause, boom);
    assert.match(error.message, /validate threw/);
  });

  test('the message summarizes at most three issues', () => {
    const many = schema(() => ({
      issues: [1, 2, 3, 4].map((n) => ({ message: `issue ${n}`, path: [n] })),
    }));
    const error = failure(validate(many, 1, 'c') as Validated);
    assert.equal(error.issues.length, 4);
    assert.match(error.message, /1: issue 1; 2: issue 2; 3: issue 3$/);
  });
});
