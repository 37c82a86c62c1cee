/**
 * The benchmark (bench/run.ts) still runs against the library as it is now: every workload
 * with `--quick --only=pgnotify` against this pass's server (5–10 s; the other contestants are
 * other libraries, which the library's changes cannot break: .ci/run runs the whole `--quick`
 * benchmark as a step of its own), every table printed, JSON written, every session closed,
 * and the process exits by itself. No timing is asserted here: the figures live in bench/.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor, withAdmin } from './helpers/db.js';
import { runScript } from './helpers/script.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TABLES = {
  delivery: '(a) delivery',
  latency: '(b) latency',
  publish: '(c) publish',
  fanout: '(d) fan-out',
  recovery: '(e) recovery',
  memory: '(f) memory',
  'durable-publish': '(h) durable publish',
  'durable-latency': '(i) durable latency',
  'durable-catchup': '(j) durable catch-up',
} as const;

/** The lines of the table titled `title` (up to the next blank line). */
function tableLines(stdout: string, title: string): string[] {
  const lines = stdout.split('\n');
  const start = lines.findIndex((line) => line.startsWith(title));
  if (start < 0) return [];
  const end = lines.findIndex((line, i) => i > start && line.trim() === '');
  return lines.slice(start, end < 0 ? undefined : end);
}

describe('bench --quick', () => {
  test('runs every workload for pgnotify on the test server, prints its tables and JSON, closes every session and exits', {
    timeout: 300_000,
  }, async () => {
    // 7 s on an idle 2-core machine, 40-55 s at a load average of 10-15 (most of it starting
    // the bench's child processes): the deadline is there for a wedged run, not a slow one.
    const outcome = await runScript('bench/run.ts', ['--quick', '--only=pgnotify'], 240_000);
    const tail = (text: string): string => text.split('\n').slice(-30).join('\n');
    assert.equal(
      outcome.timedOut,
      false,
      `the bench did not exit within 240 s:\n${tail(outcome.stdout)}`,
    );
    assert.equal(
      outcome.code,
      0,
      `exit code ${outcome.code} (signal ${outcome.signal})\n--- stdout ---\n${tail(outcome.stdout)}\n--- stderr ---\n${tail(outcome.stderr)}`,
    );
    assert.doesNotMatch(outcome.stdout, /FAILED/);
    assert.match(outcome.stdout, /^machine: .+, \d+ cores/m);
    assert.match(outcome.stdout, /^node v\d+\.\d+\.\d+; PostgreSQL \d+/m);

    for (const title of Object.values(TABLES)) {
      const lines = tableLines(outcome.stdout, title);
      assert.ok(lines.length > 0, `no table ${title} in:\n${outcome.stdout}`);
      // Every table has a pgnotify row with a measured (numeric) first figure.
      assert.ok(
        lines.some((line) => /\bpgnotify\b.*?\s\d[\d,]*(\.\d+)?\s/.test(line)),
        `no pgnotify figures in ${title}:\n${lines.join('\n')}`,
      );
    }
    // (g) counts under valgrind, a minute or more per process: --quick skips it, and says so.
    assert.match(outcome.stdout, /^\(g\) instructions.*\n {2}skipped: --quick/m);
    assert.match(tableLines(outcome.stdout, TABLES.delivery).join('\n'), /^pgnotify\s+\d/m);
    assert.match(
      tableLines(outcome.stdout, TABLES.recovery).join('\n'),
      /pgnotify.*yes: gap/,
      'pgnotify reports the loss after a killed backend',
    );

    const file = /^JSON: (.+\.json)$/m.exec(outcome.stdout)?.[1];
    assert.ok(file !== undefined, 'the JSON path is printed');
    const absolute = path.resolve(ROOT, file);
    try {
      const json = JSON.parse(await readFile(absolute, 'utf8')) as {
        machine: { cores: number; postgres: string };
        results: Record<string, { medians: Record<string, Record<string, number>> }>;
        failures: unknown[];
      };
      assert.ok(json.machine.cores > 0);
      assert.match(json.machine.postgres, /^\d+/);
      assert.deepEqual(json.failures, []);
      assert.deepEqual(Object.keys(json.results.delivery?.medians ?? {}), ['pgnotify']);
      assert.deepEqual(
        Object.keys(json.results).sort(),
        [...Object.keys(TABLES), 'instructions'].sort(),
      );
      const cpu = json.results.delivery?.medians.pgnotify?.cpuUsPerMsg;
      assert.ok(typeof cpu === 'number' && cpu > 0, `delivery CPU/notification: ${cpu}`);
    } finally {
      await rm(absolute, { force: true });
    }

    // Every session of the run is gone (the backend of a closed connection may take a moment).
    const run = /^run ([0-9a-f]+): /m.exec(outcome.stdout)?.[1];
    assert.ok(run !== undefined, 'the run id is printed');
    await waitFor(
      async () => {
        const { rows } = await withAdmin((client) =>
          client.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1',
            [`pgnotify-bench-${run}-%`],
          ),
        );
        return rows[0]?.n === 0;
      },
      { timeoutMs: 10_000, message: `sessions named pgnotify-bench-${run}-… to end` },
    );
  });
});
