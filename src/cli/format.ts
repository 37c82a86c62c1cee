/**
 * Everything the CLI prints, in one place: notification lines (pretty or NDJSON), verdict
 * lines, headings, error lines, and the colour decision (a TTY, and NO_COLOR unset or empty).
 */
import type { Gap, Notification } from '../index.js';

type Stream = { isTTY?: boolean };

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function colorFor(stream: Stream): boolean {
  const noColor = process.env.NO_COLOR;
  return stream.isTTY === true && (noColor === undefined || noColor === '');
}

const CODES = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
} as const;

export type Style = keyof typeof CODES;

/** Wraps `text` in an ANSI style when `on`. */
export function paint(style: Style, text: string, on: boolean): string {
  if (!on) return text;
  const [open, close] = CODES[style];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

/** Local wall-clock time as HH:MM:SS.mmm. */
export function clock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/**
 * A channel name as shown to people: bare when it is a plain word, else as a JSON string so
 * hostile names (spaces, quotes, control characters) cannot be mistaken for something else.
 */
export function showChannel(name: string): string {
  return /^[\p{L}\p{N}_.:$-]+$/u.test(name) ? name : JSON.stringify(name);
}

/** `a, b, "c d"`. */
export function showChannels(names: readonly string[]): string {
  return names.map(showChannel).join(', ');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * One notification for people: `time  channel  pid  payload`. With `indent`, JSON payloads
 * are pretty-printed over several lines; without it, everything stays on one line (text with
 * control characters is shown as a JSON string).
 */
export function formatNotification(
  n: Notification,
  options: { color: boolean; indent: boolean },
): string {
  const { color, indent } = options;
  const head = [
    paint('dim', clock(n.receivedAt), color),
    paint('cyan', paint('bold', showChannel(n.channel), color), color),
    paint('magenta', `pid ${n.pid}`, color),
  ].join('  ');
  return `${head}  ${formatPayload(n.payload, { color, indent })}`;
}

/** A decoded payload: text as it is, anything else as (optionally indented) JSON. */
export function formatPayload(
  payload: unknown,
  options: { color: boolean; indent: boolean },
): string {
  if (typeof payload === 'string') {
    if (payload === '') return paint('dim', '(empty)', options.color);
    return CONTROL.test(payload) ? JSON.stringify(payload) : payload;
  }
  const json = JSON.stringify(payload, null, options.indent ? 2 : undefined) ?? String(payload);
  return options.color ? highlightJson(json) : json;
}

/** Colours JSON text: keys, strings, numbers, literals. */
export function highlightJson(json: string): string {
  return json.replace(
    /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g,
    (match, str: string | undefined, colon: string | undefined, num, literal) => {
      if (str !== undefined) {
        return colon !== undefined ? paint('blue', str, true) + colon : paint('green', str, true);
      }
      if (num !== undefined) return paint('yellow', match, true);
      if (literal !== undefined) return paint('magenta', match, true);
      return match;
    },
  );
}

/**
 * One NDJSON line: `{ channel, payload, raw, pid, receivedAt }`, `receivedAt` in ms since the
 * epoch as on the library's `Notification` (and the SSE bridge's events).
 */
export function ndjson(n: Notification): string {
  return JSON.stringify({
    channel: n.channel,
    payload: n.payload,
    raw: n.raw,
    pid: n.pid,
    receivedAt: n.receivedAt,
  });
}

/** What a gap report says on stderr. */
export function formatGap(gap: Gap): string {
  if (gap.kind === 'expired') {
    const lost = gap.count === undefined ? 'messages' : `${gap.count} message(s)`;
    return `gap: ${lost} on ${showChannels([gap.channel])} up to ${gap.to} expired (pruned by retention before this reader got to them)`;
  }
  const channels = gap.channels.length > 0 ? showChannels(gap.channels) : '(no channel)';
  return (
    `gap: ${gap.downtimeMs} ms without a connection (${clock(gap.disconnectedAt)} to ` +
    `${clock(gap.reconnectedAt)}); notifications sent then on ${channels} were lost (cause: ${gap.cause.message})`
  );
}

export type Verdict = 'ok' | 'warn' | 'fail';

const VERDICT_STYLE: Record<Verdict, Style> = { ok: 'green', warn: 'yellow', fail: 'red' };

/** `ok    check name            detail` with the verdict coloured. */
export function verdictLine(
  verdict: Verdict,
  check: string,
  detail: string,
  color: boolean,
): string {
  return `${paint(VERDICT_STYLE[verdict], verdict.padEnd(5), color)} ${check.padEnd(26)} ${detail}`;
}

/** A demo section heading. */
export function heading(text: string, color: boolean): string {
  return `\n${paint('bold', `== ${text} ==`, color)}`;
}

/**
 * An error for stderr: `pgnotify: PGNOTIFY_CODE: message (cause: …)`. Errors without a code
 * (from pg or Node) show their message only.
 */
export function formatError(error: unknown): string {
  if (!(error instanceof Error)) return `pgnotify: ${String(error)}`;
  const code = (error as { code?: unknown }).code;
  const prefix = typeof code === 'string' && code.startsWith('PGNOTIFY_') ? `${code}: ` : '';
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  const tail = cause !== undefined && !error.message.includes(cause) ? ` (cause: ${cause})` : '';
  return `pgnotify: ${prefix}${error.message}${tail}`;
}

/** 50000 → "50 000"; 1234.5 → "1 235". */
export function thousands(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}
