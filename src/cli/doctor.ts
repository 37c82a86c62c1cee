/**
 * `pgnotify doctor`: is this server (and the path to it) fit for LISTEN/NOTIFY? One verdict
 * line per check: ok, warn or fail.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import pg from 'pg';
import { createListener, ErrorCode, notify, PgNotifyError } from '../index.js';
import { DEFAULT_SCHEMA } from '../journal-sql.js';
import { CONNECTION_HELP, connectionFrom, ExitCode, integer } from './common.js';
import { journalChecks, modeCheck } from './doctor-durable.js';
import { colorFor, paint, type Verdict, verdictLine } from './format.js';

export interface DoctorOptions {
  timeout: number;
  /** The durable journal's schema; given, a missing journal fails the check. */
  schema?: string;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check a server for LISTEN/NOTIFY readiness, with a verdict per check')
    .option(
      '-t, --timeout <ms>',
      'how long the LISTEN/NOTIFY round trip may take before it fails',
      integer(1),
      3000,
    )
    .option(
      '--schema <name>',
      `durable journal schema to check (default ${DEFAULT_SCHEMA}; given, a missing journal fails)`,
    )
    .addHelpText(
      'after',
      `
Checks: connection, server version, hot standby (LISTEN and NOTIFY are refused on a replica),
pg_notification_queue_usage(), a LISTEN/NOTIFY round trip through the configured path (a
transaction-pooling PgBouncer never delivers), idle_session_timeout, max_notify_queue_pages
(PostgreSQL 17+). Durable channels: the journal schema (installed? at the version this pgnotify
writes? rows, head cursor, named consumers and their lag) and the mode durable subscriptions
need here: listen, or poll where a pooler (PgBouncer in transaction mode) swallows LISTEN.
Each problem is printed with its fix.
${CONNECTION_HELP}

Exit codes: 0 no check failed (warnings allowed), 1 a check failed, 3 cannot connect.`,
    )
    .action(async (options: DoctorOptions, command: Command) => {
      process.exitCode = await doctor(options, connectionFrom(command));
    });
}

interface Check {
  verdict: Verdict;
  name: string;
  detail: string;
}

/** Runs every check, prints one line per check and a summary; returns the exit code. */
export async function doctor(
  options: DoctorOptions,
  connection: string | undefined,
): Promise<number> {
  const color = colorFor(process.stdout);
  const checks: Check[] = [];
  const report = (verdict: Verdict, name: string, detail: string): void => {
    checks.push({ verdict, name, detail });
    process.stdout.write(`${verdictLine(verdict, name, detail, color)}\n`);
  };

  const client = new pg.Client({
    ...(connection === undefined ? {} : { connectionString: connection }),
    application_name: 'pgnotify-doctor',
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => {
    // A lost connection fails the query that is running; nothing else to do.
  });
  try {
    await client.connect();
  } catch (error) {
    report('fail', 'connection', (error as Error).message || String(error));
    return ExitCode.CONNECTION;
  }
  try {
    const facts = (
      await client.query<{
        version: string;
        num: number;
        recovery: boolean;
        usage: number;
        idle: string | null;
        pages: string | null;
        block: string;
        who: string;
        db: string;
        pid: number;
      }>(
        `SELECT current_setting('server_version') AS version,
                current_setting('server_version_num')::int AS num,
                pg_is_in_recovery() AS recovery,
                pg_notification_queue_usage() AS usage,
                current_setting('idle_session_timeout', true) AS idle,
                current_setting('max_notify_queue_pages', true) AS pages,
                current_setting('block_size') AS block,
                current_user AS who, current_database() AS db, pg_backend_pid() AS pid`,
      )
    ).rows[0];
    if (facts === undefined) throw new Error('the server returned no row');
    report(
      'ok',
      'connection',
      `${facts.who}@${client.host}:${client.port}/${facts.db} (backend pid ${facts.pid})`,
    );

    const major = Math.floor(facts.num / 10000);
    if (major >= 14) report('ok', 'server version', `PostgreSQL ${facts.version}`);
    else {
      report(
        'warn',
        'server version',
        `PostgreSQL ${facts.version}: older than 14, not tested with pgnotify (it needs 9.6+; 14+ recommended)`,
      );
    }

    if (facts.recovery) {
      report(
        'fail',
        'hot standby',
        'the server is a replica in recovery: NOTIFY (and LISTEN) are refused; connect to the primary',
      );
    } else report('ok', 'hot standby', 'primary (pg_is_in_recovery() = false): NOTIFY allowed');

    const usage = Number(facts.usage);
    const percent = `${(usage * 100).toFixed(usage < 0.01 ? 3 : 1)}% of the notification queue in use`;
    if (usage >= 0.9) {
      report(
        'fail',
        'queue usage',
        `${percent}: notifying commits will fail when it is full; a listener is not reading (find it in pg_stat_activity)`,
      );
    } else if (usage >= 0.5) {
      report(
        'warn',
        'queue usage',
        `${percent}: a listener somewhere is not reading its notifications (pg_stat_activity)`,
      );
    } else report('ok', 'queue usage', percent);

    if (facts.recovery) {
      report('fail', 'LISTEN/NOTIFY round trip', 'skipped: refused on a hot standby');
    } else {
      const { verdict, detail } = await roundTrip(client, connection, options.timeout);
      report(verdict, 'LISTEN/NOTIFY round trip', detail);
    }

    await journalChecks(
      client,
      options.schema ?? DEFAULT_SCHEMA,
      options.schema !== undefined,
      report,
    );
    if (facts.recovery)
      report('fail', 'durable mode', 'skipped: LISTEN is refused on a hot standby');
    else await modeCheck(client, connection, options.timeout, report);

    if (facts.idle === null) {
      report('ok', 'idle_session_timeout', 'not present (PostgreSQL < 14)');
    } else if (facts.idle === '0') {
      report('ok', 'idle_session_timeout', '0 (idle sessions are never ended)');
    } else {
      report(
        'warn',
        'idle_session_timeout',
        `${facts.idle}: quiet sessions are ended; pgnotify's listener sets it to 0 for its own session, ` +
          'but other listeners and pooled connections may be cut',
      );
    }

    if (facts.pages === null) {
      report(
        'ok',
        'max_notify_queue_pages',
        'not present (before PostgreSQL 17 the queue is 8 GB)',
      );
    } else {
      const bytes = Number(facts.pages) * Number(facts.block);
      const size = bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GB` : `${Math.round(bytes / 2 ** 20)} MB`;
      const line = `${facts.pages} pages (a queue of ${size})`;
      if (bytes < 2 ** 30) {
        report('warn', 'max_notify_queue_pages', `${line}: a stalled listener fills it quickly`);
      } else report('ok', 'max_notify_queue_pages', line);
    }
  } catch (error) {
    report('fail', 'checks', `a check query failed: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }

  const count = (v: Verdict): number => checks.filter((c) => c.verdict === v).length;
  const failed = count('fail');
  const summary =
    failed === 0
      ? `verdict: ready for LISTEN/NOTIFY (${count('ok')} ok, ${count('warn')} warn)`
      : `verdict: NOT ready (${failed} fail, ${count('warn')} warn, ${count('ok')} ok)`;
  process.stdout.write(`${paint('bold', summary, color)}\n`);
  return failed === 0 ? ExitCode.OK : ExitCode.TIMEOUT;
}

/**
 * LISTEN on a pgnotify listener session, NOTIFY from the doctor's session, and wait. Through
 * a transaction-pooling PgBouncer the LISTEN lands on a server connection that is handed to
 * other clients after the statement, so the notification never comes back.
 */
async function roundTrip(
  client: pg.Client,
  connection: string | undefined,
  timeoutMs: number,
): Promise<{ verdict: Verdict; detail: string }> {
  const channel = `pgnotify_doctor_${process.pid}_${randomBytes(4).toString('hex')}`;
  const token = randomBytes(8).toString('hex');
  const listener = createListener({
    ...(connection === undefined ? {} : { connection }),
    applicationName: 'pgnotify-doctor',
    decode: 'text',
    reconnect: false,
    heartbeat: false,
    onError: () => {
      // A failure shows up as the round trip's verdict.
    },
  });
  try {
    const feed = await listener.subscribe(channel);
    await listener.start();
    const started = performance.now();
    await notify(client, channel, token);
    const deadline = started + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      const n = left > 0 ? await feed.next({ timeoutMs: left }) : undefined;
      if (n === undefined) {
        return {
          verdict: 'fail',
          detail:
            `LISTEN was accepted but nothing arrived within ${timeoutMs} ms. A PgBouncer in ` +
            'transaction pooling mode (or another transaction pooler) in the path never delivers ' +
            'notifications: connect the listener directly, or through session pooling',
        };
      }
      if (n.raw === token) {
        const ms = (performance.now() - started).toFixed(1);
        return {
          verdict: 'ok',
          detail: `a NOTIFY from backend ${n.pid} reached the listener (backend ${listener.pid}) in ${ms} ms`,
        };
      }
    }
  } catch (error) {
    const message =
      error instanceof PgNotifyError && error.code === ErrorCode.CONNECTION_FAILED
        ? `the listener could not connect: ${error.message}`
        : (error as Error).message;
    return { verdict: 'fail', detail: message };
  } finally {
    await listener.stop();
  }
}
