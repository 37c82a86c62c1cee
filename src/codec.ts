/**
 * Payload text ⇄ values. Decoding happens once per notification (per distinct decoder), not
 * once per subscriber; encoding happens once per notify() call, before validation.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ErrorCode, PgNotifyError, ValidationError } from './errors.js';
import { checkPayload, checkPayloadSize } from './sql.js';

/** A decoder turns the raw payload text of a channel into a value. It may throw. */
export type DecodeFunction = (raw: string, channel: string) => unknown;

/**
 * How payload text becomes `notification.payload`:
 * - `'auto'` (default): JSON when the text parses as JSON, else the text unchanged.
 * - `'json'`: strict JSON; text that does not parse is reported to `onError` and not delivered.
 *   The empty payload decodes to `undefined`.
 * - `'text'`: the text unchanged.
 * - a function `(raw, channel) => value`; a throw is reported and the notification skipped.
 */
export type Decode = 'auto' | 'json' | 'text' | DecodeFunction;

/** Any Standard Schema (zod, valibot, arktype, …). */
export type Schema<T = unknown> = StandardSchemaV1<unknown, T>;

/** Returns the function for a {@link Decode} option. The same option gives the same function. */
export function decoderFor(decode: Decode): DecodeFunction {
  switch (decode) {
    case 'auto':
      return decodeAuto;
    case 'json':
      return decodeJson;
    case 'text':
      return decodeText;
    default:
      return decode;
  }
}

function decodeText(raw: string): string {
  return raw;
}

function decodeJson(raw: string): unknown {
  // NOTIFY without a payload sends '': that is "no payload", not broken JSON.
  return raw === '' ? undefined : JSON.parse(raw);
}

function decodeAuto(raw: string): unknown {
  // Only text that starts like a JSON value is tried, so plain text never pays for an
  // exception: { [ " - 0-9 t(rue) f(alse) n(ull), or leading JSON whitespace.
  const c = raw.charCodeAt(0);
  if (
    c === 123 ||
    c === 91 ||
    c === 34 ||
    c === 45 ||
    (c >= 48 && c <= 57) ||
    c === 116 ||
    c === 102 ||
    c === 110 ||
    c === 32 ||
    c === 10 ||
    c === 13 ||
    c === 9
  ) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

/**
 * Turns a payload into the text sent to the server and checks PostgreSQL's limits.
 * Strings go as they are; `undefined` is the empty payload; anything else is JSON.
 */
export function encodePayload(payload: unknown, channel: string): string {
  if (typeof payload === 'string') return checkPayload(payload, channel);
  if (payload === undefined) return '';
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (cause) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `payload cannot be encoded as JSON: ${(cause as Error).message}`,
      { cause, channel },
    );
  }
  if (text === undefined) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `payload of type ${typeof payload} cannot be encoded as JSON`,
      { channel },
    );
  }
  // JSON.stringify escapes NUL and lone surrogates: only the size can be wrong.
  return checkPayloadSize(text, channel);
}

/** The result of validating one payload: the (possibly transformed) value or a failure. */
export type Validated = { ok: true; value: unknown } | { ok: false; error: PgNotifyError };

/**
 * Validates a decoded payload against a Standard Schema. Returns synchronously when the
 * schema does, so the common case costs no promise.
 */
export function validate(
  schema: Schema,
  value: unknown,
  channel: string,
): Validated | Promise<Validated> {
  let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
  try {
    result = schema['~standard'].validate(value);
  } catch (cause) {
    return { ok: false, error: new ValidationError(channel, [], cause) };
  }
  if (result instanceof Promise) {
    return result.then(
      (r) => settle(r, channel),
      (cause: unknown) => ({ ok: false, error: new ValidationError(channel, [], cause) }),
    );
  }
  return settle(result, channel);
}

function settle(result: StandardSchemaV1.Result<unknown>, channel: string): Validated {
  if (result.issues === undefined) return { ok: true, value: result.value };
  return { ok: false, error: new ValidationError(channel, result.issues, undefined) };
}
