/**
 * Where a connection goes, decided once when a notifier (or listener) is created: a mistake in
 * it is a synchronous `PGNOTIFY_INVALID_OPTION` that says how to fix it, instead of a server
 * error on the first statement ("no PostgreSQL user name specified in startup packet") or a
 * reconnect loop against a host that a relative string made up (`ENOTFOUND base`).
 */
import type pg from 'pg';
import { parse } from 'pg-connection-string';
import { describe, ErrorCode, PgNotifyError } from './errors.js';
import { isQueryable } from './options.js';

/** The environment variables pg reads for a connection when it is given no URL. */
export const PG_ENV_VARIABLES = ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD'] as const;

/** What the connection-string checks accept: a postgres:// URL (or pg's socket forms). */
const SCHEME = /^(postgres|postgresql|socket):/i;

/**
 * Resolves a `connection` option against the environment and returns the config to give
 * `new pg.Client()` or `new pg.Pool()`, a fresh object the caller may extend. Throws
 * `PGNOTIFY_INVALID_OPTION` when there is nothing to connect to or the URL does not parse.
 *
 * - A string is a connection URL: `postgres://` or `postgresql://` (pg also takes `socket:`
 *   URLs and `/socket/dir dbname`). It becomes `{ connectionString }`. A string that does not
 *   parse, or has another scheme, is refused (pg would resolve a relative string against a
 *   placeholder host and retry `ENOTFOUND base` forever).
 * - A config object is copied; its `connectionString`, if any, is checked the same way.
 * - Nothing (`undefined`): `DATABASE_URL` when set and not empty, else `{}` so pg reads
 *   `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`. With none of them set (and no
 *   host, user, database or URL in a config object) it throws "no PostgreSQL connection
 *   configured", rather than let pg try its implicit default (localhost as the OS user).
 *
 * `env` defaults to `process.env`. No message ever shows a password.
 * @example
 * const config = resolveConnection(options.connection) // throws on a bad URL
 * const pool = new pg.Pool({ ...config, max: 2 })
 */
export function resolveConnection<C extends pg.ClientConfig = pg.ClientConfig>(
  connection: string | C | undefined,
  env: NodeJS.ProcessEnv = process.env,
): C {
  if (typeof connection === 'string') {
    return { connectionString: checkUrl(connection, 'option connection') } as C;
  }
  if (connection === undefined) {
    const url = env.DATABASE_URL;
    if (url !== undefined && url !== '') {
      return { connectionString: checkUrl(url, 'DATABASE_URL') } as C;
    }
    if (!configuredByEnv(env)) throw notConfigured();
    return {} as C;
  }
  if (typeof connection !== 'object' || connection === null || Array.isArray(connection)) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `option connection: expected a postgres:// URL or a pg config object, got ${describe(connection)}`,
    );
  }
  if (isQueryable(connection)) {
    // Copying a client would copy its live socket (pg's `connection.stream`) into a new client.
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      'option connection: expected a postgres:// URL or a pg config object, got a client or pool' +
        ' (a connection of yours goes in `client` or `pool` where the call takes one)',
    );
  }
  const config = { ...connection };
  const url = config.connectionString;
  if (url !== undefined) {
    if (typeof url !== 'string') {
      throw new PgNotifyError(
        ErrorCode.INVALID_OPTION,
        `option connection.connectionString: expected a postgres:// URL, got ${describe(url)}`,
      );
    }
    checkUrl(url, 'option connection.connectionString');
  } else if (
    config.host === undefined &&
    config.user === undefined &&
    config.database === undefined &&
    (env.DATABASE_URL === undefined || env.DATABASE_URL === '') &&
    !configuredByEnv(env)
  ) {
    throw notConfigured();
  }
  return config;
}

function configuredByEnv(env: NodeJS.ProcessEnv): boolean {
  return PG_ENV_VARIABLES.some((name) => env[name] !== undefined && env[name] !== '');
}

function notConfigured(): PgNotifyError {
  return new PgNotifyError(
    ErrorCode.INVALID_OPTION,
    'no PostgreSQL connection configured: pass `connection`, set DATABASE_URL or PG* variables' +
      ' (PGHOST, PGUSER, PGDATABASE, …)',
  );
}

/** Returns `url` when pg can parse it as a PostgreSQL URL; `source` names it in messages. */
function checkUrl(url: string, source: string): string {
  const example = 'postgres://user:password@host:5432/database';
  if (url === '') {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `${source} is empty: expected a URL like ${example}`,
    );
  }
  if (!SCHEME.test(url) && !url.startsWith('/')) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      scheme === undefined
        ? `${source} is not a URL (it has no postgres:// scheme): expected a URL like ${example}`
        : `${source} has the scheme ${scheme}://: expected postgres:// or postgresql://, like ${example}`,
    );
  }
  try {
    parse(url);
  } catch (cause) {
    // The parser's own message never holds the URL (pg redacts it): safe to show.
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `${source} does not parse as a URL (${(cause as Error).message}): expected a URL like ${example},` +
        ' with special characters in the user name or password percent-encoded',
      { cause },
    );
  }
  return url;
}
