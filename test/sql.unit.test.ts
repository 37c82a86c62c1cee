/**
 * Unit tests of src/sql.ts: PostgreSQL's channel and payload limits, and the SQL text built
 * from channel names. No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '../src/errors.js';
import {
  checkChannel,
  checkPayload,
  listenSql,
  MAX_CHANNEL_BYTES,
  MAX_PAYLOAD_BYTES,
  quoteIdent,
  unlistenSql,
} from '../src/sql.js';
import { throwsCode } from './helpers/assert.js';

/**
 * Splits a string of `KEYWORD "ident";` statements back into names, reading quoted
 * identifiers the way PostgreSQL does ("" is one quote). Fails on anything else, so a name
 * that escaped its quotes shows up as a parse failure or a wrong name.
 */
function parseStatements(sql: string, keyword: string): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const head = `${keyword} "`;
    assert.equal(
      sql.slice(i, i + head.length),
      head,
      `statement at ${i} in ${JSON.stringify(sql)}`,
    );
    i += head.length;
    let name = '';
    for (;;) {
      assert.ok(i < sql.length, `unterminated identifier in ${JSON.stringify(sql)}`);
      const ch = sql[i] as string;
      if (ch === '"') {
        if (sql[i + 1] === '"') {
          name += '"';
          i += 2;
          continue;
        }
        i += 1;
        break;
      }
      name += ch;
      i += 1;
    }
    assert.equal(sql[i], ';', `expected ';' after the identifier in ${JSON.stringify(sql)}`);
    i += 1;
    names.push(name);
  }
  return names;
}

describe('checkChannel', () => {
  test('returns a valid name unchanged', () => {
    assert.equal(checkChannel('orders'), 'orders');
    assert.equal(checkChannel('MixedCase With Spaces'), 'MixedCase With Spaces');
  });

  test('refuses an empty name', () => {
    const error = throwsCode(() => checkChannel(''), ErrorCode.INVALID_CHANNEL);
    assert.match(error.message, /empty/);
    assert.equal(error.channel, '');
  });

  test('refuses a NUL character', () => {
    const error = throwsCode(() => checkChannel('a\0b'), ErrorCode.INVALID_CHANNEL);
    assert.match(error.message, /NUL/);
  });

  test('refuses a lone surrogate (high or low)', () => {
    throwsCode(() => checkChannel('a\uD800'), ErrorCode.INVALID_CHANNEL);
    throwsCode(() => checkChannel('\uDC00b'), ErrorCode.INVALID_CHANNEL);
    // A proper pair is fine.
    assert.equal(checkChannel('\uD83D\uDE00'), '😀');
  });

  test('refuses non-strings with an "expected … got …" message', () => {
    for (const value of [undefined, null, 42, {}, ['a'], Symbol('x'), () => 'a']) {
      const error = throwsCode(() => checkChannel(value), ErrorCode.INVALID_CHANNEL);
      assert.match(error.message, /expected a channel name string, got /);
      assert.equal(error.channel, undefined);
    }
  });

  test('63 ASCII bytes are accepted, 64 refused', () => {
    assert.equal(MAX_CHANNEL_BYTES, 63);
    const ok = 'a'.repeat(63);
    assert.equal(checkChannel(ok), ok);
    const error = throwsCode(() => checkChannel('a'.repeat(64)), ErrorCode.INVALID_CHANNEL);
    assert.match(error.message, /64 bytes/);
    assert.match(error.message, /at most 63/);
  });

  test('multibyte names are measured in UTF-8 bytes, not characters', () => {
    const e21 = 'é'.repeat(21); // 42 bytes
    assert.equal(checkChannel(e21), e21);
    const e31 = `${'é'.repeat(31)}a`; // 63 bytes
    assert.equal(checkChannel(e31), e31);
    // 32 characters would pass a length check; 64 bytes must not.
    const e32 = 'é'.repeat(32);
    assert.equal(e32.length, 32);
    const error = throwsCode(() => checkChannel(e32), ErrorCode.INVALID_CHANNEL);
    assert.match(error.message, /64 bytes/);
    // 3-byte characters: 21 × '€' = 63 bytes, 22 = 66.
    assert.equal(checkChannel('€'.repeat(21)), '€'.repeat(21));
    throwsCode(() => checkChannel('€'.repeat(22)), ErrorCode.INVALID_CHANNEL);
  });

  test('emoji count 4 bytes each', () => {
    const fifteen = '😀'.repeat(15); // 60 bytes, 30 UTF-16 units
    assert.equal(checkChannel(fifteen), fifteen);
    assert.equal(checkChannel(`${fifteen}abc`), `${fifteen}abc`); // 63 bytes
    throwsCode(() => checkChannel('😀'.repeat(16)), ErrorCode.INVALID_CHANNEL); // 64 bytes
    throwsCode(() => checkChannel(`${fifteen}abcd`), ErrorCode.INVALID_CHANNEL); // 64 bytes
  });

  test('hostile but valid names pass untouched', () => {
    for (const name of ["'; DROP TABLE users; --", 'a"b', '""', 'Ünïcödé 通知', ' ', '$1']) {
      assert.equal(checkChannel(name), name);
    }
  });
});

describe('checkPayload', () => {
  test('7999 bytes are accepted, 8000 refused', () => {
    assert.equal(MAX_PAYLOAD_BYTES, 7999);
    const ok = 'x'.repeat(7999);
    assert.equal(checkPayload(ok), ok);
    const error = throwsCode(() => checkPayload('x'.repeat(8000)), ErrorCode.PAYLOAD_TOO_LARGE);
    assert.match(error.message, /8000 bytes/);
    assert.equal(error.channel, undefined);
  });

  test('the size is counted in UTF-8 bytes', () => {
    const ok = 'é'.repeat(3999); // 7998 bytes
    assert.equal(checkPayload(ok), ok);
    // 4000 characters, 8000 bytes: refused although far below 8000 characters.
    throwsCode(() => checkPayload('é'.repeat(4000)), ErrorCode.PAYLOAD_TOO_LARGE);
    // 2667 × '€' = 8001 bytes in only 2667 UTF-16 units (just above the fast-path bound).
    throwsCode(() => checkPayload('€'.repeat(2667)), ErrorCode.PAYLOAD_TOO_LARGE);
    assert.equal(checkPayload('€'.repeat(2666)), '€'.repeat(2666)); // 7998 bytes
    throwsCode(() => checkPayload('😀'.repeat(2000)), ErrorCode.PAYLOAD_TOO_LARGE); // 8000 bytes
    assert.equal(checkPayload(`${'😀'.repeat(1999)}abc`).length, 4001); // 7999 bytes
  });

  test('the channel is carried on the error when given', () => {
    const error = throwsCode(
      () => checkPayload('x'.repeat(9000), 'orders'),
      'PGNOTIFY_PAYLOAD_TOO_LARGE',
    );
    assert.equal(error.channel, 'orders');
  });

  test('refuses NUL and lone surrogates as INVALID_PAYLOAD', () => {
    const nul = throwsCode(() => checkPayload('a\0b', 'c'), ErrorCode.INVALID_PAYLOAD);
    assert.match(nul.message, /NUL/);
    assert.equal(nul.channel, 'c');
    throwsCode(() => checkPayload(`${'x'.repeat(5000)}\0`), ErrorCode.INVALID_PAYLOAD);
    throwsCode(() => checkPayload('\uD800'), ErrorCode.INVALID_PAYLOAD);
  });

  test('empty and ordinary payloads pass', () => {
    assert.equal(checkPayload(''), '');
    assert.equal(checkPayload('{"id":1}'), '{"id":1}');
  });
});

describe('quoteIdent', () => {
  test('wraps in double quotes and keeps case', () => {
    assert.equal(quoteIdent('Orders'), '"Orders"');
  });

  test('doubles embedded double quotes', () => {
    assert.equal(quoteIdent('a"b'), '"a""b"');
    assert.equal(quoteIdent('"'), '""""');
    assert.equal(quoteIdent('""x""'), '"""""x"""""');
  });

  test('leaves other characters alone', () => {
    assert.equal(quoteIdent("it's; --"), '"it\'s; --"');
    assert.equal(quoteIdent('é 通知 😀'), '"é 通知 😀"');
  });
});

describe('listenSql / unlistenSql', () => {
  const hostile = [
    "'; DROP TABLE users; --",
    'a"b',
    '"; UNLISTEN *; --',
    'Ünïcödé 通知 😀',
    'plain',
    '\\',
    '/* c */',
  ];

  test('one quoted LISTEN per channel, in order', () => {
    assert.equal(listenSql(['a', 'B']), 'LISTEN "a";LISTEN "B";');
    assert.equal(unlistenSql(['a', 'B']), 'UNLISTEN "a";UNLISTEN "B";');
  });

  test('an empty set gives an empty string', () => {
    assert.equal(listenSql([]), '');
    assert.equal(unlistenSql(new Set<string>()), '');
  });

  test('hostile names stay inside their quoted identifiers', () => {
    assert.equal(listenSql(["'; DROP TABLE users; --"]), 'LISTEN "\'; DROP TABLE users; --";');
    assert.equal(listenSql(['a"b']), 'LISTEN "a""b";');
    assert.equal(unlistenSql(['"; UNLISTEN *; --']), 'UNLISTEN """; UNLISTEN *; --";');
    assert.deepEqual(parseStatements(listenSql(hostile), 'LISTEN'), hostile);
    assert.deepEqual(parseStatements(unlistenSql(hostile), 'UNLISTEN'), hostile);
  });

  test('accepts any iterable', () => {
    function* names(): Generator<string> {
      yield 'x';
      yield 'y"z';
    }
    assert.deepEqual(parseStatements(listenSql(names()), 'LISTEN'), ['x', 'y"z']);
  });
});
