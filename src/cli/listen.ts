/**
 * `pgnotify listen <channel...>`: one line per notification (pretty on a terminal, NDJSON with
 * --json), reconnects and gaps on stderr, --count / --timeout for scripts.
 */
import { type Command, Option } from 'commander';
import { plural } from '../errors.js';
import { createListener, type DurableOptions, type Notification } from '../index.js';
import {
  CONNECTION_HELP,
  connectionFrom,
  ExitCode,
  integer,
  note,
  onInterrupt,
  reportFailure,
} from './common.js';
import {
  colorFor,
  formatError,
  formatGap,
  formatNotification,
  ndjson,
  showChannels,
} from './format.js';

export interface ListenOptions {
  json?: boolean;
  count?: number;
  timeout?: number;
  decode: 'auto' | 'json' | 'text';
  durable?: boolean;
  consumer?: string;
  after?: string;
  schema?: string;
  poll?: number;
}

export function registerListen(program: Command): void {
  program
    .command('listen')
    .description('print notifications on one or more channels, one line each')
    .argument(
      '<channel...>',
      'channel names, exactly as sent (case kept, any characters, ≤ 63 bytes)',
    )
    .option('--json', 'print NDJSON: {"channel","payload","raw","pid","receivedAt"} per line')
    .option('-n, --count <n>', 'exit 0 after <n> notifications', integer(1))
    .option(
      '-t, --timeout <ms>',
      'give up after <ms>: exit 1 if nothing arrived (with --count: fewer than <n>)',
      integer(1),
    )
    .addOption(
      new Option(
        '--decode <mode>',
        'payload decoding: JSON if it parses (auto), strict JSON, or text',
      )
        .choices(['auto', 'json', 'text'])
        .default('auto'),
    )
    .option('--durable', 'read the durable journal (replay from a cursor, nothing lost)')
    .option(
      '--consumer <name>',
      'with --durable: a named consumer, its cursor stored in the database',
    )
    .option(
      '--after <cursor>',
      "with --durable: start after this cursor, 'start' or 'now' (default)",
    )
    .option('--schema <name>', "with --durable: the journal's schema (default pgnotify)")
    .option(
      '--poll <ms>',
      'with --durable: poll the journal every <ms> instead of LISTEN (poolers)',
      integer(1),
    )
    .addHelpText(
      'after',
      `
Output: on a terminal, "HH:MM:SS.mmm  channel  pid <sender>  payload" with JSON indented and
coloured (NO_COLOR turns colour off); piped, the same on one line; --json gives NDJSON.
A line "pgnotify: listening on …" goes to stderr once the server confirmed LISTEN; reconnects
and gap reports (what was lost while disconnected) go to stderr too.
${CONNECTION_HELP}

Exit codes: 0 --count reached (or stopped), 1 --timeout ran out, 2 bad channel name,
3 connection failure, 130 SIGINT, 143 SIGTERM.

Durable (--durable): each line carries the message's cursor ("cursor" in NDJSON); resume with
--after <cursor>, or let --consumer <name> keep it in the database (acknowledged once printed).

Examples:
  pgnotify listen orders
  pgnotify listen --durable --consumer audit-log orders
  pgnotify listen --json --count 1 --timeout 5000 job_done | jq .payload`,
    )
    .action(async (channels: string[], options: ListenOptions, command: Command) => {
      process.exitCode = await listen(channels, options, connectionFrom(command));
    });
}

/** Runs the listener until --count, --timeout, a signal, or a failure; returns the exit code. */
export async function listen(
  channels: string[],
  options: ListenOptions,
  connection: string | undefined,
): Promise<number> {
  const color = colorFor(process.stdout);
  const indent = process.stdout.isTTY === true;
  const format = options.json
    ? ndjson
    : (n: Notification): string =>
        n.cursor === undefined
          ? formatNotification(n, { color, indent })
          : `${formatNotification(n, { color, indent })}  ${n.cursor}`;
  let received = 0;
  let done = false;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => {
    finish = (code) => {
      done = true;
      resolve(code);
    };
  });

  const durable = durableOption(options);
  if (durable instanceof Error) {
    note(durable.message);
    return ExitCode.USAGE;
  }
  const listener = createListener({
    ...(connection === undefined ? {} : { connection }),
    decode: options.decode,
    onError: (error) => process.stderr.write(`${formatError(error)}\n`),
  });
  listener.on('disconnected', ({ cause }) => note(`connection lost: ${cause.message}`));
  listener.on('reconnecting', ({ attempt, delayMs }) =>
    note(`reconnecting (attempt ${attempt}${delayMs > 0 ? `, in ${delayMs} ms` : ''})`),
  );
  listener.on('reconnected', ({ pid, downtimeMs }) =>
    note(`reconnected (backend pid ${pid}) after ${downtimeMs} ms`),
  );
  listener.on('gap', (gap) => note(formatGap(gap)));

  const onStdoutError = (error: NodeJS.ErrnoException): void => {
    // The reader went away (`| head -1`): that is a normal end, not a failure.
    if (error.code === 'EPIPE') finish(ExitCode.OK);
    else {
      note(`cannot write to stdout: ${error.message}`);
      finish(ExitCode.CONNECTION);
    }
  };
  process.stdout.on('error', onStdoutError);
  const uninstall = onInterrupt(finish);
  let timer: NodeJS.Timeout | undefined;
  try {
    // Before start(), subscribe() only checks the names (bad ones reject, exit 2).
    await listener.subscribe(
      channels,
      (n) => {
        if (done) return;
        received++;
        process.stdout.write(`${format(n)}\n`);
        if (options.count !== undefined && received >= options.count) finish(ExitCode.OK);
      },
      durable === undefined ? { concurrency: 0 } : { concurrency: 0, durable },
    );
    const started = listener.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    const first = await Promise.race([started.then((error) => ({ error })), finished]);
    if (typeof first === 'number') return first; // interrupted while connecting
    if (first.error !== undefined) return reportFailure(first.error);

    note(`listening on ${showChannels(channels)} (backend pid ${listener.pid})`);
    void listener.closed.then(() => {
      // Reconnecting gave up (or met a bad password): the failure itself went to onError.
      if (listener.state === 'failed') finish(ExitCode.CONNECTION);
    });
    if (options.timeout !== undefined) {
      const { timeout } = options;
      timer = setTimeout(() => {
        const wanted = options.count ?? 1;
        if (received >= wanted) {
          finish(ExitCode.OK);
          return;
        }
        note(
          options.count === undefined
            ? `timed out: nothing arrived within ${timeout} ms`
            : `timed out: ${received} of ${plural(options.count, 'notification')} arrived within ${timeout} ms`,
        );
        finish(ExitCode.TIMEOUT);
      }, timeout);
    }
    return await finished;
  } catch (error) {
    return reportFailure(error);
  } finally {
    done = true;
    clearTimeout(timer);
    await listener.stop();
    uninstall();
    process.stdout.off('error', onStdoutError);
  }
}

/** The `durable` subscribe option from the flags, an Error for a bad combination, or undefined. */
function durableOption(options: ListenOptions): DurableOptions | Error | undefined {
  const { durable, consumer, after, schema, poll } = options;
  if (durable !== true) {
    if (consumer !== undefined || after !== undefined || schema !== undefined || poll !== undefined)
      return new Error('--consumer, --after, --schema and --poll need --durable');
    return undefined;
  }
  if (consumer !== undefined && after !== undefined)
    return new Error('give --consumer or --after, not both');
  return {
    ...(consumer === undefined ? { after: after ?? 'now' } : { consumer }),
    ...(schema === undefined ? {} : { schema }),
    ...(poll === undefined ? {} : { mode: 'poll' as const, pollIntervalMs: poll }),
  };
}
