/**
 * The install and upgrade script of durable channels: what `installSchema()` runs and
 * `pgnotify setup --print` prints. Versioned: each step of {@link MIGRATIONS} takes a schema one
 * version up, and a schema records the version it is at. Why the commit trigger orders commits
 * the way it does: journal-sql.ts.
 */
import { DEFAULT_SCHEMA, type JournalNames, journalNames } from './journal-sql.js';
import { quoteLiteral } from './sql.js';

/** One step of the upgrade path: the statements that take a schema from `version - 1` to `version`. */
export interface Migration {
  readonly version: number;
  /** What the step does, for the printed script. */
  readonly summary: string;
  readonly sql: (names: JournalNames) => string;
}

/** Picks a dollar-quote tag that does not occur in `body` (a schema name may contain `$x$`). */
export function dollarQuote(body: string, base: string): string {
  let tag = `$${base}$`;
  for (let i = 0; body.includes(tag); i++) tag = `$${base}${i}$`;
  return `${tag}${body}${tag}`;
}

/** Version 1: the journal, commit sequencing, consumers' cursors and prune watermarks. */
function v1({ q, marker, commitLockKey }: JournalNames): string {
  const trigger = dollarQuote(
    `
BEGIN
  -- Held until this transaction's commit is visible: seq order is visibility order.
  PERFORM pg_catalog.pg_advisory_xact_lock(${commitLockKey});
  INSERT INTO ${q}.commits (xid) VALUES (pg_catalog.pg_current_xact_id())
    ON CONFLICT (xid) DO NOTHING;
  RETURN NULL;
END`,
    'fn',
  );
  return `
-- One index, (xid, id): readers join it from commits and get a transaction's rows in insert
-- order; a second one on id alone cost ~15-30 % of insert throughput.
CREATE TABLE ${q}.journal (
  id bigint GENERATED ALWAYS AS IDENTITY,
  xid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  channel text NOT NULL,
  payload text NOT NULL,
  pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
  PRIMARY KEY (xid, id)
);
CREATE TABLE ${q}.commits (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  xid pg_catalog.xid8 NOT NULL UNIQUE,
  committed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE TABLE ${q}.consumers (
  name text PRIMARY KEY,
  seq bigint NOT NULL,
  id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE ${q}.pruned (
  channel text PRIMARY KEY,
  seq bigint NOT NULL,
  id bigint NOT NULL,
  count bigint NOT NULL,
  pruned_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE FUNCTION ${q}.sequence_commit() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${trigger};
REVOKE ALL ON FUNCTION ${q}.sequence_commit() FROM PUBLIC;
-- Queued once per transaction: the WHEN is evaluated at insert (not deferred) and marks the
-- transaction in a transaction-local setting, which a rolled-back savepoint undoes together
-- with the trigger event it queued.
CREATE CONSTRAINT TRIGGER sequence_commit AFTER INSERT ON ${q}.journal
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (CASE WHEN pg_catalog.current_setting('${marker}', true) = pg_catalog.pg_current_xact_id()::text
    THEN false
    ELSE pg_catalog.set_config('${marker}', pg_catalog.pg_current_xact_id()::text, true) IS NOT NULL END)
  EXECUTE FUNCTION ${q}.sequence_commit();`;
}

/**
 * Version 2: the wake-up carries the commit. The commit trigger sends, on the wake channel,
 * `<signature><json>` where json is `[seq, committedAt, rows?]` and rows (when the transaction
 * has at most 64 rows and they fit a NOTIFY payload) is `[[id, channel, pid, payload], …]`, every
 * row of the transaction in insert order. A listener that has read everything up to seq − 1
 * hands those rows over without reading the journal. Every committing transaction sends one, in
 * commit order (the trigger holds the commit lock until the commit is visible, and the notify
 * queue keeps commit order), so a listener sees every seq while it listens; a seq it did not
 * see (a hole left by a transaction that failed after taking its seq, or a wake-up lost in a
 * reconnect) sends it to the journal. The signature is the first 128 bits of
 * sha256(json ‖ meta.wake_key) in hex: any role can NOTIFY any channel, and only a wake-up the
 * trigger made may stand in for a read (the key is readable by consumers, as the journal is).
 * A row inserted after the trigger ran (SET CONSTRAINTS … IMMEDIATE) queues it once more: the
 * transaction then sends a later wake-up listing all its rows, still before any later commit's.
 */
function v2({ q, marker, commitLockKey, wakeChannel }: JournalNames): string {
  const ms = "pg_catalog.date_part('epoch', t) * 1000";
  const trigger = dollarQuote(
    `
DECLARE
  x pg_catalog.xid8 := pg_catalog.pg_current_xact_id();
  s bigint;
  t timestamptz;
  body text;
BEGIN
  -- Held until this transaction's commit is visible: seq order is visibility order.
  PERFORM pg_catalog.pg_advisory_xact_lock(${commitLockKey});
  INSERT INTO ${q}.commits (xid) VALUES (x) ON CONFLICT (xid) DO NOTHING RETURNING seq, committed_at INTO s, t;
  IF s IS NULL THEN
    SELECT c.seq, c.committed_at INTO s, t FROM ${q}.commits AS c WHERE c.xid = x;
  END IF;
  -- Rows only for a transaction of at most 64 rows and 7 000 payload bytes: one look at its
  -- first 65 rows (octet_length reads a stored size, no large payload is fetched for it).
  SELECT CASE WHEN r.n <= 64 AND r.b <= 7000 THEN pg_catalog.json_build_array(s::text, ${ms}, r.rows)::text END
    INTO body
    FROM (SELECT pg_catalog.count(*) AS n, pg_catalog.sum(pg_catalog.octet_length(l.payload)) AS b,
        pg_catalog.json_agg(pg_catalog.json_build_array(l.id::text, l.channel, l.pid, l.payload) ORDER BY l.id)
          FILTER (WHERE pg_catalog.octet_length(l.payload) <= 7000) AS rows
      FROM (SELECT j.id, j.channel, j.pid, j.payload FROM ${q}.journal AS j WHERE j.xid = x
        ORDER BY j.id LIMIT 65) AS l) AS r;
  IF body IS NULL OR pg_catalog.octet_length(body) > 7960 THEN
    body := pg_catalog.json_build_array(s::text, ${ms})::text;
  END IF;
  -- A row inserted from here on queues this trigger again (see the WHEN of the trigger).
  PERFORM pg_catalog.set_config('${marker}', 'fired', true),
    pg_catalog.pg_notify(${quoteLiteral(wakeChannel)}, pg_catalog.substr(pg_catalog.encode(
      pg_catalog.sha256(pg_catalog.convert_to(body, 'UTF8') || m.wake_key), 'hex'), 1, 32) || body)
    FROM ${q}.meta AS m;
  RETURN NULL;
END`,
    'fn',
  );
  return `
-- 244 random bits from the server's strong random source (gen_random_uuid, PostgreSQL 13+); a
-- volatile default fills the existing row (the meta insert above checks NOT NULL before its
-- ON CONFLICT, so the column needs a default).
ALTER TABLE ${q}.meta ADD COLUMN wake_key bytea NOT NULL DEFAULT pg_catalog.decode(pg_catalog.replace(
  pg_catalog.gen_random_uuid()::text OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid()::text, '-', ''), 'hex');
CREATE OR REPLACE FUNCTION ${q}.sequence_commit() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${trigger};`;
}

/** The upgrade path, oldest first. Append a step for every schema change; never edit one. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, summary: 'journal, commits, consumers, pruned, commit trigger', sql: v1 },
  { version: 2, summary: 'the wake-up carries the commit (seq, rows), signed', sql: v2 },
];

/** The newest journal schema version this library installs. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const GRANTS = (q: string) => `-- Least privilege (run as the owner of the schema; roles are yours):
--   publisher (notify durable): GRANT USAGE ON SCHEMA ${q} TO publisher;
--                               GRANT INSERT ON ${q}.journal TO publisher;
--     (the commit trigger is SECURITY DEFINER: publishers need nothing on commits)
--   consumer (read, keep a cursor): GRANT USAGE ON SCHEMA ${q} TO consumer;
--     GRANT SELECT ON ${q}.journal, ${q}.commits, ${q}.pruned, ${q}.meta TO consumer;
--     GRANT SELECT, INSERT, UPDATE ON ${q}.consumers TO consumer;
--   pruner (pgnotify prune): consumer's grants plus
--     GRANT DELETE ON ${q}.journal, ${q}.commits TO pruner;
--     GRANT INSERT, UPDATE ON ${q}.pruned TO pruner;`;

/**
 * The install/upgrade script: one transaction that takes an advisory lock (concurrent installs
 * wait for each other), creates the schema and its version table when missing, then runs every
 * migration newer than the recorded version, in order. Running it again changes nothing.
 * `migrations` is for tests of the upgrade path.
 */
export function installSql(
  schema: string = DEFAULT_SCHEMA,
  migrations: readonly Migration[] = MIGRATIONS,
  options: { forClient?: boolean } = {},
): string {
  // forClient: without BEGIN/COMMIT (one simple-query string is one implicit transaction, which
  // an error rolls back whole, never leaving a pooled connection inside a failed transaction),
  // reporting the version found and the version left.
  const client = options.forClient === true;
  const names = journalNames(schema);
  const { q } = names;
  const steps = migrations.map((m) => {
    const body = `
BEGIN
  IF (SELECT version FROM ${q}.meta) < ${m.version} THEN
${m.sql(names)}
    UPDATE ${q}.meta SET version = ${m.version}, upgraded_at = pg_catalog.now();
  END IF;
END`;
    return `-- version ${m.version}: ${m.summary}\nDO ${dollarQuote(body, 'pgnotify')};`;
  });
  // A name with a line break would end a comment line early: comments show a placeholder.
  const shown = /[\p{Cc}\p{Zl}\p{Zp}]/u.test(q) ? '<schema>' : q;
  return `-- pgnotify durable channels, schema ${shown}, version ${migrations.at(-1)?.version ?? 0}.
-- Idempotent: safe to run again and from several processes at once.
${GRANTS(shown)}
${client ? '' : 'BEGIN;\n'}SET LOCAL standard_conforming_strings = on;
SELECT pg_catalog.pg_advisory_xact_lock(${names.installLockKey});
CREATE SCHEMA IF NOT EXISTS ${q};
CREATE TABLE IF NOT EXISTS ${q}.meta (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL,
  upgraded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO ${q}.meta (version) VALUES (0) ON CONFLICT DO NOTHING;
${client ? `SELECT version AS previous FROM ${q}.meta;\n` : ''}${steps.join('\n')}
${client ? `SELECT version AS current FROM ${q}.meta;` : 'COMMIT;'}
`;
}
