/**
 * Workload (g): the client's work per notification counted, not timed. Each contestant
 * receives notifications under valgrind (cachegrind, with its cache simulation), which counts
 * the instructions the process executes and the cache misses it would take. The counts do not
 * depend on what else the machine is doing, so they resolve differences that the CPU times of
 * (a) and (d) cannot on a VM whose speed moves by 30 % from one round to the next. And because
 * a client under valgrind is ~50× slower than the server, it always finds its socket full:
 * the server's pace (which, up to PostgreSQL 18, falls with the channel count) does not leak
 * into the figures, and 10 000 channels against one channel measures the client alone.
 *
 * Per notification = (count(3n) − count(n)) / 2n, over two runs of each contestant and layout:
 * the difference cancels start-up, connecting, LISTEN and the JIT's first tiers. Estimated
 * cycles weigh a first-level miss as 10 instructions and a last-level miss as 100 (the
 * estimate of callgrind's and cachegrind's own tooling).
 *
 * With pgnotify selected, one more row: a durable subscription catching up a journal backlog,
 * per message, the same way (countDurable).
 *
 * Every contestant runs with V8's `--predictable`: garbage collection and compilation on the
 * main thread, no time-based heuristics. Without it, when a background compile lands or an
 * incremental marking step runs depends on timing, and the same contestant's figure moved by
 * ±5 % between runs; with it, by under 1 %. The count then includes the work V8 would do on
 * its helper threads, which `process.cpuUsage()` in (a) and (d) counts too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installSchema } from '../src/index.js';
import { quoteIdent } from '../src/sql.js';
import {
  benchChannel,
  type Context,
  connectedClient,
  deadline,
  RUN_ID,
  runAppName,
  type WorkloadResult,
} from './common.js';
import { BASELINE, LISTENERS, type ListenerName, PEERS } from './contestants.js';
import { writeBacklog } from './durable-catchup.js';
import { best, fmt, ratio, table } from './report.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The row of the durable consumer (with pgnotify selected). */
const DURABLE = 'pgnotify durable consumer';
/** Messages of the durable row's smaller run (its larger one reads 3×). */
const DURABLE_N = 50_000;
/** The durable rows: a subscription with `after` (no cursor writes), and a named consumer. */
const DURABLE_ROWS = [
  ['after', 'durable catch-up'],
  ['named', 'durable catch-up, named'],
] as const;

interface Layout {
  label: string;
  channels: number;
}

/** Cachegrind's totals for one process. */
interface Counts {
  instructions: number;
  /** Instructions + 10 × first-level misses + 100 × last-level misses. */
  cycles: number;
}

/** The version valgrind prints, or undefined when it is not installed. */
function valgrindVersion(): string | undefined {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : undefined;
}

/** Parses the `events:` and `summary:` lines of a cachegrind output file. */
function parseCachegrind(text: string): Counts {
  const events = /^events: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/);
  const summary = /^summary: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/).map(Number);
  if (events === undefined || summary === undefined) throw new Error('no cachegrind summary');
  const get = (event: string): number => summary[events.indexOf(event)] ?? Number.NaN;
  const instructions = get('Ir');
  const l1 = get('I1mr') + get('D1mr') + get('D1mw');
  const last = get('ILmr') + get('DLmr') + get('DLmw');
  return { instructions, cycles: instructions + 10 * l1 + 100 * last };
}

/** One process under valgrind receiving `count` notifications spread over the layout's channels. */
async function countOne(
  ctx: Context,
  dir: string,
  name: ListenerName,
  layout: Layout,
  count: number,
): Promise<Counts> {
  const prefix = `${benchChannel('ins')}_`;
  return countChild(
    dir,
    ctx.url,
    name,
    [name, prefix, String(layout.channels), String(count)],
    count,
    () => ctx.sender.spread(prefix, count, layout.channels),
  );
}

/**
 * One instructions-child.ts under cachegrind with `args`: once it is ready, `send` (the
 * notifications it waits for), then its counts once it exits having received `count`.
 */
async function countChild(
  dir: string,
  url: string,
  name: string,
  args: string[],
  count: number,
  send: () => Promise<void>,
): Promise<Counts> {
  const out = path.join(dir, `${benchChannel('cg')}.cg`);
  const child = spawn(
    'valgrind',
    [
      '--tool=cachegrind',
      '--cache-sim=yes',
      // V8 writes machine code into memory it then runs: valgrind must notice.
      '--smc-check=all-non-file',
      `--cachegrind-out-file=${out}`,
      process.execPath,
      '--predictable',
      '--import',
      'tsx',
      path.join(HERE, 'instructions-child.ts'),
      ...args,
    ],
    { env: { ...process.env, DATABASE_URL: url }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', resolve);
    // A failed spawn may emit only 'error'.
    child.once('error', (error) => {
      stderr += `\n${error.message}`;
      resolve(null);
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) resolve();
    });
    void exited.then((code) =>
      reject(new Error(`${name} exited (${code}) before it was ready:\n${stderr}`)),
    );
  });
  ready.catch(() => undefined);
  try {
    await deadline(ready, 10 * 60_000, `${name} under valgrind: ready`);
    await send();
    const code = await deadline(
      exited,
      20 * 60_000,
      `${name} under valgrind: ${count} notifications`,
    );
    if (code !== 0 || !stdout.includes(`done ${count}`))
      throw new Error(`${name} under valgrind exited with ${code}:\n${stdout}\n${stderr}`);
    return parseCachegrind(await readFile(out, 'utf8'));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(out, { force: true });
  }
}

/**
 * The durable consumer's work per message, counted the same way: a durable subscription catching
 * up the first n, then the first 3n, messages of one journal backlog ((j)'s payloads, statements
 * of 1 000 rows); reads, decoding and delivery. `after`: no cursor writes; `named`: a named
 * consumer, its cursor written per 1 000 acknowledgements (its timer off: instructions-child.ts).
 */
async function countDurable(
  ctx: Context,
  dir: string,
  n: number,
): Promise<Record<'after' | 'named', Counts>> {
  const schema = `bench_ins_${RUN_ID}`;
  const q = quoteIdent(schema);
  const channel = benchChannel('insd');
  const admin = await connectedClient(ctx.url, runAppName('ins-admin'));
  try {
    await installSchema({ client: admin, schema });
    await writeBacklog(admin, q, channel, 3 * n);
    const per = async (consumer: (count: number) => string[]): Promise<Counts> => {
      const run = (count: number) =>
        countChild(
          dir,
          ctx.url,
          DURABLE,
          ['durable', schema, channel, String(count), ...consumer(count)],
          count,
          () => Promise.resolve(),
        );
      const [small, large] = [await run(n), await run(3 * n)];
      return {
        instructions: (large.instructions - small.instructions) / (2 * n),
        cycles: (large.cycles - small.cycles) / (2 * n),
      };
    };
    return {
      after: await per(() => []),
      // A consumer of its own per run: each starts from the start.
      named: await per((count) => [`bench-ins-${count}`]),
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`).catch(() => undefined);
    await admin.end();
  }
}

/** Runs `jobs` with at most `limit` at a time; results in job order. The first failure stops it. */
async function limited<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && !failed) {
      const i = next++;
      try {
        results[i] = await (jobs[i] as () => Promise<T>)();
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return results;
}

export async function instructions(ctx: Context): Promise<WorkloadResult> {
  const title = '(g) instructions: the client work per notification, counted under valgrind';
  const skipped = (why: string): WorkloadResult => ({
    key: 'instructions',
    title,
    params: { skipped: why },
    samples: {},
    medians: {},
    text: `\n${title}\n  skipped: ${why}`,
  });
  if (ctx.quick) return skipped('--quick (each valgrind run takes a minute or more)');
  const valgrind = valgrindVersion();
  if (valgrind === undefined) return skipped('valgrind is not installed');
  const n = 50_000;
  const listeners = ctx.pick(LISTENERS);
  const layouts: Layout[] = [
    { label: '1 channel', channels: 1 },
    { label: '10 000 channels', channels: 10_000 },
  ];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgnotify-bench-cg-'));
  const medians: WorkloadResult['medians'] = {};
  const samples: WorkloadResult['samples'] = {};
  try {
    const cells = layouts.flatMap((layout) => listeners.map((name) => ({ layout, name })));
    // Two processes at a time: the counts do not depend on how busy the machine is.
    const counted = await limited(
      cells.map(({ layout, name }) => async () => {
        const [small, large] = [
          await countOne(ctx, dir, name, layout, n),
          await countOne(ctx, dir, name, layout, 3 * n),
        ];
        const per = {
          instructions: (large.instructions - small.instructions) / (2 * n),
          cycles: (large.cycles - small.cycles) / (2 * n),
        };
        ctx.progress(
          `instructions ${layout.label} ${name}: ${fmt(per.instructions)} instructions, ${fmt(per.cycles)} est. cycles per notification`,
        );
        return per;
      }),
      Math.max(1, Math.min(2, os.cpus().length)),
    );
    cells.forEach(({ layout, name }, i) => {
      const per = counted[i] as Counts;
      const row = `${layout.label} / ${name}`;
      medians[row] = { ...per };
      samples[row] = { instructions: [per.instructions], cycles: [per.cycles] };
    });
    if (listeners.includes('pgnotify')) {
      const counts = await countDurable(ctx, dir, DURABLE_N);
      for (const [kind, label] of DURABLE_ROWS) {
        const per = counts[kind];
        ctx.progress(
          `instructions ${label}: ${fmt(per.instructions)} instructions, ${fmt(per.cycles)} est. cycles per message`,
        );
        medians[`${label} / ${DURABLE}`] = { ...per };
        samples[`${label} / ${DURABLE}`] = {
          instructions: [per.instructions],
          cycles: [per.cycles],
        };
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const rows: string[][] = [];
  const first = layouts[0] as Layout;
  for (const layout of layouts) {
    const at = (name: string, metric: keyof Counts): number | undefined =>
      medians[`${layout.label} / ${name}`]?.[metric];
    for (const name of listeners) {
      const cells = [layout.label, name];
      for (const metric of ['instructions', 'cycles'] as const) {
        const value = at(name, metric);
        cells.push(
          fmt(value),
          ratio(value, at(BASELINE, metric)),
          ratio(
            value,
            best(
              PEERS.map((peer) => at(peer, metric)),
              'lower',
            ),
          ),
        );
      }
      cells.push(ratio(at(name, 'cycles'), medians[`${first.label} / ${name}`]?.cycles));
      rows.push(cells);
    }
  }
  for (const [, label] of DURABLE_ROWS) {
    const durable = medians[`${label} / ${DURABLE}`];
    if (durable === undefined) continue;
    // Against the plain delivery of one channel: pg's (the baseline) and pgnotify's own.
    const plain = (name: string, metric: keyof Counts) =>
      medians[`${first.label} / ${name}`]?.[metric];
    rows.push([
      label,
      DURABLE,
      fmt(durable.instructions),
      ratio(durable.instructions, plain(BASELINE, 'instructions')),
      '—',
      fmt(durable.cycles),
      ratio(durable.cycles, plain(BASELINE, 'cycles')),
      '—',
      ratio(durable.cycles, plain('pgnotify', 'cycles')),
    ]);
  }
  return {
    key: 'instructions',
    title,
    params: { n, layouts, valgrind, durableN: DURABLE_N },
    samples,
    medians,
    text: table(
      title,
      [
        'layout',
        'contestant',
        'instructions',
        `×${BASELINE}`,
        '×best peer',
        'est. cycles',
        `×${BASELINE}`,
        '×best peer',
        `×${first.label}`,
      ],
      rows,
      [
        `per notification (lower is better), = (count after ${fmt(3 * n)} − count after ${fmt(n)}) / ${fmt(2 * n)}, one subscriber per channel;`,
        `${valgrind} --tool=cachegrind --cache-sim=yes, node --predictable; est. cycles = instructions + 10 × L1 misses + 100 × last-level misses;`,
        'every figure is the whole process (pg, JSON.parse, garbage collection, compilation, the library); counts, not timings (within ~1 % run to run);',
        `durable catch-up: a durable subscription (after: 'start', no cursor writes) reading the first ${fmt(DURABLE_N)}, then ${fmt(3 * DURABLE_N)}, messages of a journal backlog ((j)'s payloads); named: the same as a named consumer, its cursor written per 1 000 acknowledgements (the 100 ms timer off, so the count is the same at valgrind's speed); ×${first.label}: against pgnotify's plain delivery`,
      ],
      2,
    ),
  };
}
