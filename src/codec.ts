/**
 * Payload text ⇄ values. Decoding happens once per notification (per distinct decoder), not
 * once per subscriber; encoding happens once per notify() call, before validation.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ErrorCode, PgNotifyError, shorten, toError, ValidationError } from './errors.js';
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
 * Turns a payload into the text sent to the server and checks PostgreSQL's limits, or throws
 * `PGNOTIFY_INVALID_PAYLOAD` / `PGNOTIFY_PAYLOAD_TOO_LARGE`. Strings go as they are (no NUL,
 * no lone surrogate); `undefined` is the empty payload; anything else is `JSON.stringify`'s
 * text. Values JSON would change silently are refused, at any depth, with their path in the
 * message: `NaN`, `Infinity` and `-Infinity` (JSON writes `null`), `Map` and `Set` (JSON
 * writes `{}`). An object with a `toJSON()` method is taken as it encodes itself; so is a Map or
 * Set carrying enumerable properties of its own, which JSON writes as those properties.
 * @example
 * encodePayload({ id: 1 }, 'orders') // '{"id":1}'
 * encodePayload({ total: NaN }, 'orders') // throws: payload.total is NaN …
 */
export function encodePayload(payload: unknown, channel: string): string {
  if (typeof payload === 'string') return checkPayload(payload, channel);
  if (payload === undefined) return '';
  const text = stringifyPayload(payload, channel);
  // JSON.stringify escapes NUL and lone surrogates: only the size can be wrong. The size comes
  // first: it bounds the depth of what the walk below recurses into.
  checkPayloadSize(text, channel);
  checkLossless(payload, text, channel);
  return text;
}

/**
 * `JSON.stringify(payload)`, or `PGNOTIFY_INVALID_PAYLOAD` when it throws (circular, BigInt) or
 * gives nothing (a function, a symbol). Shared by plain and durable encoding.
 * @internal
 */
export function stringifyPayload(payload: unknown, channel: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (cause) {
    throw new PgNotifyError(
      ErrorCode.INVALID_PAYLOAD,
      `payload cannot be encoded as JSON: ${toError(cause).message}`,
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
  return text;
}

/**
 * Refuses (`PGNOTIFY_INVALID_PAYLOAD`) a value whose JSON `text` silently lost something: NaN or
 * ±Infinity written as null, a Map or Set written as {}. Shared by plain and durable encoding.
 * @internal
 */
export function checkLossless(payload: unknown, text: string, channel: string): void {
  if (typeof payload === 'object' && payload !== null) {
    // NaN and ±Infinity come out as null, a Map or Set as {}: text with neither hides none of
    // them, and the walk (slow while the code is cold: +1 µs a notification in the publish
    // bench) runs only for text that has one.
    if (text.includes('null') || text.includes('{}')) {
      const found = unencodable(payload);
      if (found !== undefined) throw lossy(found, channel);
    }
  } else if (typeof payload === 'number' && payload - payload !== 0) {
    throw lossy({ path: [], value: payload }, channel);
  }
}

/** A value JSON.stringify would silently turn into something else, and where it sits. */
interface Lossy {
  /** Keys from the value up to the payload: innermost first (pushed on the way back up). */
  path: (string | number)[];
  value: unknown;
}

/**
 * Finds the first NaN, ±Infinity, or Map or Set that JSON writes as `{}`, in what
 * JSON.stringify just encoded (so the walk meets no cycle: stringify would have thrown). It
 * visits what stringify visits: array items by index, own enumerable string keys, and no
 * deeper than an object with `toJSON()`. Nothing is allocated unless something is found.
 */
function unencodable(value: object): Lossy | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unencodableItem(value[i]);
      if (found !== undefined) {
        found.path.push(i);
        return found;
      }
    }
    return undefined;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
  const keys = Object.keys(value);
  if (keys.length === 0 && (value instanceof Map || value instanceof Set)) {
    return { path: [], value };
  }
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const found = unencodableItem((value as Record<string, unknown>)[key]);
    if (found !== undefined) {
      found.path.push(key);
      return found;
    }
  }
  return undefined;
}

function unencodableItem(item: unknown): Lossy | undefined {
  if (typeof item === 'number') {
    // NaN - NaN and Infinity - Infinity are NaN; every finite number gives 0.
    return item - item === 0 ? undefined : { path: [], value: item };
  }
  return typeof item === 'object' && item !== null ? unencodable(item) : undefined;
}

function lossy(found: Lossy, channel: string): PgNotifyError {
  const where = found.path.reduceRight<string>(
    (text, key) =>
      typeof key === 'number'
        ? `${text}[${key}]`
        : /^[A-Za-z_$][\w$]*$/.test(key)
          ? `${text}.${key}`
          : `${text}[${JSON.stringify(shorten(key))}]`,
    'payload',
  );
  const value = found.value;
  const what =
    typeof value === 'number'
      ? `${where} is ${String(value)}, which JSON would send as null; send null or a finite number`
      : `${where} is a ${value instanceof Map ? 'Map' : 'Set'}, which JSON would send as {}; ` +
        `convert it first (${value instanceof Map ? 'Object.fromEntries(map)' : '[...set]'})`;
  return new PgNotifyError(ErrorCode.INVALID_PAYLOAD, `invalid payload: ${what}`, { channel });
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
