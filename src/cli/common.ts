/**
 * What every subcommand shares: exit codes, where the connection comes from, how an error
 * maps to an exit code, option parsers, and signal handling.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { ErrorCode, PgNotifyError } from '../index.js';
import { formatError } from './format.js';

/** The documented exit codes (see `pgnotify --help`). */
export const ExitCode = {
  OK: 0,
  /** listen --timeout ran out; doctor found a failing check. */
  TIMEOUT: 1,
  /** Bad usage or input: unknown option, invalid channel, payload or JSON. */
  USAGE: 2,
  /** Could not connect, lost the connection for good, or the server refused. */
  CONNECTION: 3,
  SIGINT: 130,
  SIGTERM: 143,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    listen --timeout ran out before enough notifications arrived; doctor found a failing check
  2    usage error or bad input (invalid channel name, payload too large, invalid JSON)
  3    connection failure, the server refused the statement, or the durable journal is not
       installed (PGNOTIFY_SCHEMA_MISSING: run pgnotify setup)
  130  interrupted (SIGINT, Ctrl-C); 143 on SIGTERM`;

export const CONNECTION_HELP = `
Connection: --url, else DATABASE_URL, else the PG* environment variables (PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE) as node-postgres reads them.`;

/** Global options, available to every subcommand. */
export interface GlobalOptions {
  url?: string;
}

/** The connection string from `--url`, else DATABASE_URL; undefined lets pg read PG* itself. */
export function connectionFrom(command: Command): string | undefined {
  const { url } = command.optsWithGlobals<GlobalOptions>();
  if (url !== undefined && url !== '') return url;
  const env = process.env.DATABASE_URL;
  return env === undefined || env === '' ? undefined : env;
}

const USAGE_CODES = new Set<string>([
  ErrorCode.INVALID_CHANNEL,
  ErrorCode.PAYLOAD_TOO_LARGE,
  ErrorCode.INVALID_PAYLOAD,
  ErrorCode.INVALID_OPTION,
]);

/** The exit code for an error a subcommand could not handle. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof PgNotifyError) {
    if (USAGE_CODES.has(error.code)) return ExitCode.USAGE;
    if (error.code === ErrorCode.TIMEOUT) return ExitCode.TIMEOUT;
    return ExitCode.CONNECTION;
  }
  return ExitCode.CONNECTION; // pg and socket errors
}

/** Prints the error on stderr and returns its exit code. */
export function reportFailure(error: unknown): number {
  process.stderr.write(`${formatError(error)}\n`);
  return exitCodeFor(error);
}

/** A stderr line with the `pgnotify: ` prefix. */
export function note(message: string): void {
  process.stderr.write(`pgnotify: ${message}\n`);
}

/** Commander parser for integers ≥ `min`. */
export function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/**
 * Calls `onSignal` on the first SIGINT/SIGTERM (the subcommand stops cleanly and returns the
 * matching exit code); a second signal exits at once. Returns a function that uninstalls it.
 */
export function onInterrupt(onSignal: (code: number) => void): () => void {
  let seen = false;
  const handler = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? ExitCode.SIGINT : ExitCode.SIGTERM;
    if (seen) process.exit(code);
    seen = true;
    onSignal(code);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** The URL without its password, for printing (an unparseable URL gets a best-effort mask). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
