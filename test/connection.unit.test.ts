/**
 * Unit tests of src/connection.ts: resolving a `connection` option against an environment.
 * No database needed: every case passes its own environment.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type pg from 'pg';
import { resolveConnection } from '../src/connection.js';
import { ErrorCode } from '../src/errors.js';
import { createNotifier } from '../src/notifier.js';
import { throwsCode } from './helpers/assert.js';

const NONE: NodeJS.ProcessEnv = {};
const URL_ENV: NodeJS.ProcessEnv = { DATABASE_URL: 'postgres://app@db.example:5432/app' };

/** Asserts a PGNOTIFY_INVALID_OPTION whose message matches, and that it shows no password. */
function refused(fn: () => unknown, message: RegExp): void {
  const error = throwsCode(fn, ErrorCode.INVALID_OPTION);
  assert.match(error.message, message);
  assert.doesNotMatch(error.message, /s3cret/);
}

describe('resolveConnection: where the connection goes', () => {
  test('a URL string becomes { connectionString }', () => {
    for (const url of [
      'postgres://app:s3cret@db.example:5432/app',
      'postgresql://db.example/app?sslmode=require',
      'POSTGRES://db.example/app',
      'postgres://app@/app',
      'postgres:///app?host=/var/run/postgresql',
      'socket:/var/run/postgresql?db=app',
      '/var/run/postgresql app',
      'postgres://app:p@ss w0rd@db.example/app',
    ]) {
      assert.deepEqual(resolveConnection(url, NONE), { connectionString: url });
    }
  });

  test('a config object is copied, not changed', () => {
    const config = { host: 'db.example', user: 'app', max: 3 };
    const resolved = resolveConnection(config, NONE);
    assert.deepEqual(resolved, config);
    assert.notEqual(resolved, config);
    const withUrl = { connectionString: 'postgres://db.example/app', max: 1 };
    assert.deepEqual(resolveConnection(withUrl, NONE), withUrl);
  });

  test('nothing: DATABASE_URL, else {} for pg to read the PG* variables', () => {
    assert.deepEqual(resolveConnection(undefined, URL_ENV), {
      connectionString: URL_ENV.DATABASE_URL,
    });
    for (const name of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD']) {
      assert.deepEqual(resolveConnection(undefined, { [name]: 'x' }), {}, name);
    }
    // An empty DATABASE_URL counts as unset.
    assert.deepEqual(resolveConnection(undefined, { DATABASE_URL: '', PGHOST: 'h' }), {});
    // A config object without a host, user, database or URL leans on the environment too.
    assert.deepEqual(resolveConnection<pg.PoolConfig>({ max: 1 }, { PGUSER: 'app' }), { max: 1 });
  });
});

describe('resolveConnection: refusals that say how to fix them', () => {
  test('no connection configured anywhere', () => {
    const message =
      /^no PostgreSQL connection configured: pass `connection`, set DATABASE_URL or PG\* variables/;
    refused(() => resolveConnection(undefined, NONE), message);
    refused(() => resolveConnection(undefined, { DATABASE_URL: '', PGHOST: '' }), message);
    refused(() => resolveConnection<pg.PoolConfig>({ max: 2 }, NONE), message);
    refused(() => resolveConnection({ password: 's3cret' }, NONE), message);
  });

  test('a string that is not a postgres URL (pg would dial the placeholder host "base")', () => {
    refused(
      () => resolveConnection('db.example/app', NONE),
      /^option connection is not a URL \(it has no postgres:\/\/ scheme\)/,
    );
    refused(() => resolveConnection('localhost:5432/app', NONE), /no postgres:\/\/ scheme/);
    refused(() => resolveConnection('app', NONE), /no postgres:\/\/ scheme/);
    refused(
      () => resolveConnection('mysql://app:s3cret@db.example/app', NONE),
      /has the scheme mysql:\/\/: expected postgres:\/\/ or postgresql:\/\//,
    );
    refused(() => resolveConnection('', NONE), /^option connection is empty/);
  });

  test('a postgres URL that does not parse (new URL and pg-connection-string refuse it)', () => {
    for (const url of [
      'postgres://app:s3cret@db.example:99999/app', // port out of range
      'postgres://app:s3cret@[::1/app', // unclosed IPv6 bracket
      'postgres://app:s3cret#x@db.example/app', // an unencoded # ends the authority
      'postgres://app:s3cret@db example:5432:1/app',
    ]) {
      refused(
        () => resolveConnection(url, NONE),
        /^option connection does not parse as a URL \(Invalid URL\).*percent-encoded/,
      );
    }
  });

  test('the source is named: DATABASE_URL, connection.connectionString', () => {
    refused(
      () => resolveConnection(undefined, { DATABASE_URL: 'db.example/app' }),
      /^DATABASE_URL is not a URL/,
    );
    refused(
      () => resolveConnection({ connectionString: 'postgres://db.example:99999/app' }, NONE),
      /^option connection\.connectionString does not parse/,
    );
    refused(
      () => resolveConnection({ connectionString: 42 } as never, NONE),
      /^option connection\.connectionString: expected a postgres:\/\/ URL, got number \(42\)/,
    );
  });

  test('a value of the wrong type', () => {
    for (const value of [42, null, true, ['postgres://x/y']]) {
      refused(
        () => resolveConnection(value as never, NONE),
        /^option connection: expected a postgres:\/\/ URL or a pg config object/,
      );
    }
  });
});

describe('createNotifier resolves its connection up front', () => {
  test('throws synchronously for a URL that does not parse and for no connection at all', () => {
    refused(() => createNotifier({ connection: 'localhost/app' }), /no postgres:\/\/ scheme/);
    refused(
      () => createNotifier({ connection: 'postgres://app:s3cret@db.example:99999/app' }),
      /does not parse/,
    );
    const saved = { ...process.env };
    try {
      for (const name of [
        'DATABASE_URL',
        'PGHOST',
        'PGPORT',
        'PGUSER',
        'PGDATABASE',
        'PGPASSWORD',
      ]) {
        delete process.env[name];
      }
      refused(() => createNotifier(), /^no PostgreSQL connection configured/);
      process.env.DATABASE_URL = 'db.example/app';
      refused(() => createNotifier(), /^DATABASE_URL is not a URL/);
    } finally {
      for (const name of Object.keys(process.env)) {
        if (!(name in saved)) delete process.env[name];
      }
      Object.assign(process.env, saved);
    }
  });
});
