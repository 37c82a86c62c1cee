/**
 * `pgnotify setup`: installs or upgrades the durable journal's schema (or prints its SQL for
 * teams that run their own migrations), and `pgnotify prune`: applies retention to it.
 */
import { type Command, InvalidArgumentError } from 'commander';
import pg from 'pg';
import { plural } from '../errors.js';
import { installSchema } from '../journal.js';
import { prune } from '../journal-admin.js';
import { installSql, SCHEMA_VERSION } from '../journal-install.js';
import { DEFAULT_SCHEMA } from '../journal-sql.js';
import {
  CONNECTION_HELP,
  connectionFrom,
  ExitCode,
  integer,
  note,
  reportFailure,
} from './common.js';

/** Options of `pgnotify setup`, as commander parses them. */
export interface SetupOptions {
  schema: string;
  print?: boolean;
}

/** Options of `pgnotify prune`, as commander parses them (durations already in ms). */
export interface PruneCommandOptions {
  schema: string;
  maxAge?: number;
  maxPerChannel?: number;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Commander parser for durations such as `7d`, `12h`, `30m`, `45s`, `500ms`; returns ms. */
export function duration(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  const ms = match === null ? Number.NaN : Number(match[1]) * (UNITS[match[2] as string] ?? 0);
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError(
      `expected a duration such as 7d, 12h, 30m, 45s or 500ms, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** Registers `setup` and `prune` on the `pgnotify` program. */
export function registerSetup(program: Command): void {
  program
    .command('setup')
    .description('install or upgrade the durable journal schema (idempotent), or print its SQL')
    .option('--schema <name>', 'schema to install into', DEFAULT_SCHEMA)
    .option('--print', 'print the SQL instead of running it (no connection is made)')
    .addHelpText(
      'after',
      `
The script is one transaction under an advisory lock: safe to run again, and from several
processes at once. It records its version (now ${SCHEMA_VERSION}) and runs only the newer upgrade
steps. --print shows it with the GRANTs a least-privileged publisher, consumer and pruner need.
${CONNECTION_HELP}

Exit codes: 0 installed or already current, 2 bad schema name, 3 connection failure or the
server refused.

Examples:
  pgnotify setup
  pgnotify setup --schema app_events --print > migrations/042_pgnotify.sql`,
    )
    .action(async (options: SetupOptions, command: Command) => {
      process.exitCode = await setupCommand(options, connectionFrom(command));
    });

  program
    .command('prune')
    .description('delete old durable messages in small batches (readers behind get a gap)')
    .option('--schema <name>', 'schema of the journal', DEFAULT_SCHEMA)
    .option('--max-age <duration>', 'delete messages older than this: 7d, 12h, 30m, 45s', duration)
    .option('--max-per-channel <n>', 'keep at most the newest n messages per channel', integer(0))
    .addHelpText(
      'after',
      `
Deletes 1 000 rows per statement, each its own short transaction, so writers are never blocked.
A reader whose cursor is behind what was pruned gets an 'expired' gap saying what was lost.
Give --max-age, --max-per-channel or both; run it from cron or a scheduler.
${CONNECTION_HELP}

Exit codes: 0 pruned (possibly nothing), 2 bad option, 3 connection failure, schema missing or
the server refused.

Examples:
  pgnotify prune --max-age 7d
  pgnotify prune --max-per-channel 100000 --schema app_events`,
    )
    .action(async (options: PruneCommandOptions, command: Command) => {
      process.exitCode = await pruneCommand(options, connectionFrom(command));
    });
}

/** Runs `pgnotify setup`; returns the exit code. */
export async function setupCommand(
  options: SetupOptions,
  connection: string | undefined,
): Promise<number> {
  try {
    if (options.print === true) {
      process.stdout.write(installSql(options.schema));
      return ExitCode.OK;
    }
    const result = await installSchema({
      schema: options.schema,
      connection: connection === undefined ? {} : { connectionString: connection },
    });
    note(
      result.previousVersion === result.version
        ? `journal schema ${JSON.stringify(result.schema)} is already at version ${result.version}`
        : `journal schema ${JSON.stringify(result.schema)} installed: version ${result.previousVersion} -> ${result.version}`,
    );
    return ExitCode.OK;
  } catch (error) {
    return reportFailure(error);
  }
}

/** Runs `pgnotify prune`; returns the exit code. */
export async function pruneCommand(
  options: PruneCommandOptions,
  connection: string | undefined,
): Promise<number> {
  if (options.maxAge === undefined && options.maxPerChannel === undefined) {
    note('prune: give --max-age, --max-per-channel or both');
    return ExitCode.USAGE;
  }
  const client = new pg.Client({
    ...(connection === undefined ? {} : { connectionString: connection }),
    application_name: 'pgnotify-prune',
  });
  client.on('error', () => {
    // A lost connection fails the statement that is running, which reports it.
  });
  try {
    await client.connect();
    const result = await prune(client, {
      schema: options.schema,
      ...(options.maxAge === undefined ? {} : { maxAgeMs: options.maxAge }),
      ...(options.maxPerChannel === undefined ? {} : { maxPerChannel: options.maxPerChannel }),
    });
    note(
      `pruned ${plural(result.rows, 'message')} and ${plural(result.commits, 'commit record')} in ${plural(result.statements, 'statement')}`,
    );
    return ExitCode.OK;
  } catch (error) {
    return reportFailure(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}
