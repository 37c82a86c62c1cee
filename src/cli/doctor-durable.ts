/**
 * The durable-channel checks of `pgnotify doctor`: the journal schema (installed, at the version
 * this pgnotify writes, its size, head and consumers' lag) and the mode durable subscriptions
 * need on this path to the server (`listen`, or `poll` where a pooler swallows LISTEN).
 */
import pg from 'pg';
import { plural } from '../errors.js';
import { type DurableStatus, detectPooler, durableStatus } from '../journal-admin.js';
import { SCHEMA_VERSION } from '../journal-install.js';
import { journalNames } from '../journal-sql.js';
import type { Verdict } from './format.js';

/** Prints one verdict line; the doctor's own. */
export type Report = (verdict: Verdict, name: string, detail: string) => void;

/** `name` as one shell word. */
function shellWord(name: string): string {
  return /^[\w.-]+$/.test(name) ? name : `'${name.replaceAll("'", "'\\''")}'`;
}

/** A consumer whose cursor has not moved for this long while behind the head is reported. */
const STALE_MS = 3_600_000;

/**
 * Checks the journal in `schema`. Not installed is `ok` when the schema was not asked for (plain
 * LISTEN/NOTIFY needs no journal) and `fail` when it was (`--schema`).
 */
export async function journalChecks(
  client: pg.Client,
  schema: string,
  asked: boolean,
  report: Report,
): Promise<void> {
  let status: DurableStatus;
  try {
    status = await durableStatus(client, schema);
  } catch (error) {
    report(
      'fail',
      'durable journal',
      `reading schema ${JSON.stringify(schema)} failed: ${(error as Error).message}` +
        ' (a least-privileged role needs SELECT on its tables: see `pgnotify setup --print`)',
    );
    return;
  }
  const name = JSON.stringify(schema);
  if (!status.installed) {
    const fix = `run \`pgnotify setup${asked ? ` --schema ${shellWord(schema)}` : ''}\` or installSchema()`;
    if (status.version === 0 && !asked) {
      report(
        'ok',
        'durable journal',
        `not installed in schema ${name}: only durable channels need it (${fix})`,
      );
    } else {
      report(
        'fail',
        'durable journal',
        `not installed in schema ${name}${status.version > 0 ? ` (version ${status.version})` : ''}: durable notify and subscriptions fail with PGNOTIFY_SCHEMA_MISSING; ${fix}`,
      );
    }
    return;
  }
  const head = status.headCursor ?? 'none (nothing committed yet)';
  const facts = `${plural(status.rows, 'row')}, head cursor ${head}, wake-up channel ${JSON.stringify(status.wakeChannel)}`;
  if (status.version < SCHEMA_VERSION) {
    report(
      'fail',
      'durable journal',
      `schema ${name} is at version ${status.version}, this pgnotify needs ${SCHEMA_VERSION}: run \`pgnotify setup --schema ${shellWord(schema)}\` (upgrades in place); ${facts}`,
    );
  } else if (status.version > SCHEMA_VERSION) {
    report(
      'warn',
      'durable journal',
      `schema ${name} is at version ${status.version}, newer than this pgnotify knows (${SCHEMA_VERSION}): upgrade pgnotify; ${facts}`,
    );
  } else {
    report('ok', 'durable journal', `schema ${name} version ${status.version}: ${facts}`);
  }
  if (status.consumers.length === 0) {
    report('ok', 'durable consumers', 'none named yet');
    return;
  }
  const now = Date.now();
  const stale = status.consumers.filter((c) => c.lag > 0 && now - c.updatedAt > STALE_MS);
  const list = status.consumers
    .map((c) => `${JSON.stringify(c.name)} lag ${plural(c.lag, 'commit')} at ${c.cursor}`)
    .join('; ');
  if (stale.length === 0) report('ok', 'durable consumers', list);
  else {
    const names = stale.map((c) => JSON.stringify(c.name)).join(', ');
    report(
      'warn',
      'durable consumers',
      `${names} behind the head and not moved for over an hour: is it running? A consumer no longer used keeps nothing but its row: DELETE FROM ${journalNames(schema).q}.consumers WHERE name = '…'; ${list}`,
    );
  }
}

/**
 * Finds out which mode durable subscriptions need through this connection: a second session
 * LISTENs and the doctor's session notifies it (detectPooler).
 */
export async function modeCheck(
  client: pg.Client,
  connection: string | undefined,
  timeoutMs: number,
  report: Report,
): Promise<void> {
  const probe = new pg.Client({
    ...(connection === undefined ? {} : { connectionString: connection }),
    application_name: 'pgnotify-doctor',
    connectionTimeoutMillis: 10_000,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const found = await detectPooler(probe, client, { timeoutMs });
    if (found.mode === 'listen') {
      report(
        'ok',
        'durable mode',
        'listen: LISTEN delivers on this path; durable subscriptions wake on NOTIFY (the default)',
      );
    } else {
      report(
        'warn',
        'durable mode',
        `poll: LISTEN does not deliver on this path${found.pooler ? ' (a pooler answers: the backend pid differs from the one given at startup)' : ''}; subscribe with { durable: …, mode: 'poll' }, or connect listeners directly or through session pooling`,
      );
    }
  } catch (error) {
    report('fail', 'durable mode', `the LISTEN probe failed: ${(error as Error).message}`);
  } finally {
    await probe.end().catch(() => undefined);
  }
}
