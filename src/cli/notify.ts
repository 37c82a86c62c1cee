/**
 * `pgnotify notify <channel> [payload]`: the payload argument as given, or one notification per
 * line of stdin, sent through the notifier's auto-batching.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { plural } from '../errors.js';
import { checkChannel, createNotifier, ErrorCode, type Notifier, PgNotifyError } from '../index.js';
import {
  CONNECTION_HELP,
  connectionFrom,
  ExitCode,
  exitCodeFor,
  note,
  onInterrupt,
  reportFailure,
} from './common.js';
import { formatError, showChannel } from './format.js';

export interface NotifyOptions {
  json?: boolean;
  /** Write durable messages (journal rows) instead of plain notifications. */
  durable?: boolean;
  /** The durable journal's schema (with --durable). */
  schema?: string;
}

/** Pending notify() calls allowed before reading more of stdin (keeps memory bounded). */
const MAX_PENDING = 10_000;
/** Pending payload text (UTF-16 units) allowed before reading more: durable lines may be 64 MiB. */
const MAX_PENDING_CHARS = 64 * 1024 * 1024;

export function registerNotify(program: Command): void {
  program
    .command('notify')
    .description('send a notification: the payload argument, or one per line of stdin')
    .argument('<channel>', 'channel name, exactly as listened to (case kept, ≤ 63 bytes)')
    .argument(
      '[payload]',
      'text sent exactly as given (< 8000 bytes; durable: up to 64 MiB); omitted: read stdin',
    )
    .option(
      '--json',
      'parse each payload as JSON first (invalid JSON is refused) and send it compact',
    )
    .option(
      '--durable',
      'durable: each payload is also a journal row that durable subscriptions read after any outage',
    )
    .option('--schema <name>', 'with --durable: the journal schema (default pgnotify)')
    .addHelpText(
      'after',
      `
Without [payload], every line of stdin is one notification (an empty line is an empty payload;
with --json, empty lines are skipped). Lines are sent as they are read, batched into a few
statements, in order; the count goes to stderr. A refused line is reported with its number and
the others are still sent (exit 2).

--durable writes journal rows (run \`pgnotify setup\` once first): every line is one row, in
order, never folded with an identical one, payloads up to 64 MiB.
${CONNECTION_HELP}

Exit codes: 0 sent, 2 bad channel, payload, JSON or option, 3 connection failure, journal not
installed or the server refused, 130 SIGINT.

Examples:
  pgnotify notify orders '{"id": 1}'
  printf 'a\\nb\\n' | pgnotify notify jobs
  pgnotify notify --durable --schema app_events orders '{"id": 1}'`,
    )
    .action(
      async (
        channel: string,
        payload: string | undefined,
        options: NotifyOptions,
        command: Command,
      ) => {
        process.exitCode = await notifyCommand(channel, payload, options, connectionFrom(command));
      },
    );
}

/** Sends what the command line asks for; returns the exit code. */
export async function notifyCommand(
  channel: string,
  payload: string | undefined,
  options: NotifyOptions,
  connection: string | undefined,
): Promise<number> {
  const encode = (text: string): string => {
    if (!options.json) return text;
    try {
      return JSON.stringify(JSON.parse(text));
    } catch (error) {
      throw new PgNotifyError(
        ErrorCode.INVALID_PAYLOAD,
        `invalid JSON: ${(error as Error).message}`,
        { channel },
      );
    }
  };
  if (options.schema !== undefined && options.durable !== true) {
    note('--schema applies to --durable only');
    return ExitCode.USAGE;
  }
  let notifier: Notifier;
  try {
    checkChannel(channel);
    if (payload !== undefined) encode(payload);
    notifier = createNotifier({
      ...(connection === undefined ? {} : { connection }),
      ...(options.schema === undefined ? {} : { schema: options.schema }),
      onError: (error) => process.stderr.write(`${formatError(error)}\n`),
    });
  } catch (error) {
    return reportFailure(error);
  }
  const send = { durable: options.durable === true };
  const what = send.durable ? 'durable message' : 'notification';
  try {
    if (payload !== undefined) {
      await notifier.notify(channel, encode(payload), send);
      note(`sent 1 ${what} on ${showChannel(channel)}`);
      return ExitCode.OK;
    }
    return await fromStdin(notifier, channel, encode, { ...options, ...send });
  } catch (error) {
    return reportFailure(error);
  } finally {
    await notifier.close();
  }
}

async function fromStdin(
  notifier: Notifier,
  channel: string,
  encode: (text: string) => string,
  options: NotifyOptions,
): Promise<number> {
  if (process.stdin.isTTY) note('reading payloads from stdin, one per line (Ctrl-D to end)');
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let interrupted: number | undefined;
  const uninstall = onInterrupt((code) => {
    interrupted = code;
    lines.close();
    process.stdin.destroy();
  });
  let lineNo = 0;
  let sent = 0;
  let refused = 0;
  let fatal: unknown;
  let pending: Promise<void>[] = [];
  let pendingChars = 0;
  const refuse = (at: number, error: unknown): void => {
    refused++;
    note(`line ${at}: ${formatError(error).replace(/^pgnotify: /, '')}`);
  };
  try {
    for await (const line of lines) {
      lineNo++;
      if (options.json && line.trim() === '') continue;
      const at = lineNo;
      let text: string;
      try {
        text = encode(line);
      } catch (error) {
        refuse(at, error);
        continue;
      }
      // Not awaited one by one: calls made while a batch is in flight join the next batch.
      pending.push(
        notifier.notify(channel, text, { durable: options.durable === true }).then(
          () => {
            sent++;
          },
          (error: unknown) => {
            if (exitCodeFor(error) === ExitCode.USAGE) refuse(at, error);
            else fatal ??= error;
          },
        ),
      );
      pendingChars += text.length;
      if (pending.length >= MAX_PENDING || pendingChars >= MAX_PENDING_CHARS) {
        await Promise.all(pending);
        pending = [];
        pendingChars = 0;
      }
      if (fatal !== undefined) break;
    }
    await Promise.all(pending);
  } finally {
    uninstall();
  }
  note(
    `sent ${plural(sent, options.durable === true ? 'durable message' : 'notification')} on ${showChannel(channel)}` +
      (refused > 0 ? `; ${plural(refused, 'line')} refused` : ''),
  );
  if (fatal !== undefined) return reportFailure(fatal);
  if (interrupted !== undefined) return interrupted;
  return refused > 0 ? ExitCode.USAGE : ExitCode.OK;
}
