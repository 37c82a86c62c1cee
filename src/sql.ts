/**
 * PostgreSQL's rules for channels and payloads, and the SQL text built from them.
 * Every channel name reaches the server as a quoted identifier or a bind parameter, never
 * spliced raw, so any string is a safe channel name.
 */
import { describe, ErrorCode, PgNotifyError, shorten } from './errors.js';

/** Longest channel name PostgreSQL keeps, in UTF-8 bytes (NAMEDATALEN - 1). */
export const MAX_CHANNEL_BYTES = 63;
/** Largest payload PostgreSQL accepts, in UTF-8 bytes (it must be shorter than 8000). */
export const MAX_PAYLOAD_BYTES = 7999;

/**
 * Checks a channel name and returns it, or throws `PGNOTIFY_INVALID_CHANNEL`: empty, NUL,
 * ill-formed UTF-16, or over 63 UTF-8 bytes. LISTEN silently truncates long names and
 * pg_notify rejects them, so pgnotify refuses them before either can happen. Any other string
 * is a safe channel name. Use it to validate untrusted names up front.
 * @example
 * const channel = checkChannel(`user:${userId}`)
 */
export function checkChannel(channel: unknown): string {
  if (typeof channel !== 'string') {
    throw invalidChannel(`expected a channel name string, got ${describe(channel)}`, undefined);
  }
  if (channel.length === 0) throw invalidChannel('channel name is empty', channel);
  if (channel.includes('\0'))
    throw invalidChannel('channel name contains a NUL character', channel);
  if (!channel.isWellFormed()) {
    throw invalidChannel('channel name contains a lone UTF-16 surrogate', channel);
  }
  const bytes = Buffer.byteLength(channel, 'utf8');
  if (bytes > MAX_CHANNEL_BYTES) {
    throw invalidChannel(
      `channel name is ${bytes} bytes; PostgreSQL allows at most ${MAX_CHANNEL_BYTES}`,
      channel,
    );
  }
  return channel;
}

/**
 * Checks payload text against PostgreSQL's limits and returns it: fewer than 8000 UTF-8 bytes
 * (else `PGNOTIFY_PAYLOAD_TOO_LARGE`), no NUL and no lone UTF-16 surrogate (else
 * `PGNOTIFY_INVALID_PAYLOAD`: text columns cannot hold the one, UTF-8 cannot carry the other).
 */
export function checkPayload(payload: string, channel?: string): string {
  checkPayloadSize(payload, channel);
  if (payload.includes('\0')) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      'payload contains a NUL character, which PostgreSQL text cannot hold',
      channel === undefined ? {} : { channel },
    );
  }
  if (!payload.isWellFormed()) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      'payload contains a lone UTF-16 surrogate, which cannot be sent as UTF-8',
      channel === undefined ? {} : { channel },
    );
  }
  return payload;
}

/**
 * Checks only the size of an encoded payload. Enough for `JSON.stringify` output, which
 * escapes NUL and lone surrogates and so never holds either.
 */
export function checkPayloadSize(payload: string, channel?: string): string {
  // Fast path: a payload of at most MAX/3 UTF-16 units cannot exceed MAX bytes.
  if (payload.length > MAX_PAYLOAD_BYTES / 3) {
    const bytes = Buffer.byteLength(payload, 'utf8');
    if (bytes > MAX_PAYLOAD_BYTES) {
      throw new PgNotifyError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `payload is ${bytes} bytes; PostgreSQL requires fewer than ${MAX_PAYLOAD_BYTES + 1}` +
          ' (send a key and let the listener read the row)',
        channel === undefined ? {} : { channel },
      );
    }
  }
  return payload;
}

/** Quotes a name as an SQL identifier: `a"b` becomes `"a""b"`. Case is kept. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Quotes text as an SQL string literal in the `E'…'` form, whose meaning does not depend on
 * `standard_conforming_strings`: `it's` becomes `E'it''s'`.
 */
export function quoteLiteral(text: string): string {
  return `E'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/**
 * One simple-query string that LISTENs to every channel given, each quoted: one round trip
 * whatever the count ('' for none). The names must have passed {@link checkChannel}.
 */
export function listenSql(channels: Iterable<string>): string {
  let sql = '';
  for (const channel of channels) sql += `LISTEN ${quoteIdent(channel)};`;
  return sql;
}

/** One simple-query string that UNLISTENs every channel given, each quoted ('' for none). */
export function unlistenSql(channels: Iterable<string>): string {
  let sql = '';
  for (const channel of channels) sql += `UNLISTEN ${quoteIdent(channel)};`;
  return sql;
}

/**
 * Turns server-side session timeouts off for the listener connection, so a quiet listener is
 * not killed. Reads pg_settings so servers that lack a setting (idle_session_timeout is 14+)
 * do not fail.
 */
export const SESSION_SETUP_SQL =
  "SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings" +
  " WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout');";

/** The heartbeat: what the server listens to, and how full its notification queue is. */
export const HEARTBEAT_SQL =
  'SELECT ARRAY(SELECT pg_catalog.pg_listening_channels()) AS channels,' +
  ' pg_catalog.pg_notification_queue_usage() AS usage';

// Functions are schema-qualified so a search_path with a look-alike function cannot intercept them.

/** One notification, bound as parameters. */
export const NOTIFY_SQL = 'SELECT pg_catalog.pg_notify($1, $2)';

/**
 * Many notifications in one statement. $2 is a JSON array of the payloads: JSON strings
 * (`text`), or, for payloads the client encoded as JSON, those JSON values as they are
 * (`json`: json's element functions return an element's text verbatim, so the client never
 * escapes a payload a second time). $1 is the channel (`one`), or a JSON array of channels
 * parallel to $2 (`many`). The function scan yields the elements in array order and count()
 * evaluates pg_notify once per element as they come, so notifications are queued in call
 * order, and the result is one row instead of one per notification. Flat JSON arrays are the
 * cheapest bulk parameter for both sides: one JSON.stringify (at most) per payload on the
 * client, and the server lexes them about twice as fast as per-element `->>` lookups.
 */
export const NOTIFY_BATCH_SQL = {
  text: {
    one:
      'SELECT pg_catalog.count(pg_catalog.pg_notify($1, e.p))' +
      ' FROM pg_catalog.json_array_elements_text($2::json) AS e(p)',
    many:
      'SELECT pg_catalog.count(pg_catalog.pg_notify(e.c, e.p))' +
      ' FROM ROWS FROM (pg_catalog.json_array_elements_text($1::json),' +
      ' pg_catalog.json_array_elements_text($2::json)) AS e(c, p)',
  },
  json: {
    one:
      'SELECT pg_catalog.count(pg_catalog.pg_notify($1, e.p::text))' +
      ' FROM pg_catalog.json_array_elements($2::json) AS e(p)',
    many:
      'SELECT pg_catalog.count(pg_catalog.pg_notify(e.c, e.p::text))' +
      ' FROM ROWS FROM (pg_catalog.json_array_elements_text($1::json),' +
      ' pg_catalog.json_array_elements($2::json)) AS e(c, p)',
  },
} as const;

function invalidChannel(reason: string, channel: string | undefined): PgNotifyError {
  const shown = channel === undefined ? '' : ` (${JSON.stringify(shorten(channel))})`;
  return new PgNotifyError(
    ErrorCode.INVALID_CHANNEL,
    `invalid channel${shown}: ${reason}`,
    channel === undefined ? {} : { channel },
  );
}
